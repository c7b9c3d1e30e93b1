//! What in a Jetstream event concerns the desk. Jetstream's JSON (bluesky-social/jetstream
//! README): `{"did", "time_us", "kind": "commit" | "identity" | "account", ...}`; a commit
//! carries `{"operation", "collection", "rkey", "record", "cid"}`. A new post is ours when
//! it mentions the brand (a `app.bsky.richtext.facet#mention` feature with our DID),
//! replies in a thread of ours (its parent or root is a post of ours), quotes a post of
//! ours (`app.bsky.embed.record`, or `recordWithMedia`'s inner record), or matches a
//! keyword watch; the brand's own posts never are. Every frame is outside data: whatever
//! its shape, it is read as far as it goes and otherwise skipped, never trusted to be a
//! DID, a record key or a number because it says so.

use super::keywords::{KeywordWatch, PostText};
use serde_json::Value;

const POST: &str = "app.bsky.feed.post";
const MENTION: &str = "app.bsky.richtext.facet#mention";

/// One frame, as far as the desk cares.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    /// A new post of ours: build the mention once its author is known.
    Post(NewPost),
    /// `identity`: the DID's handle is now this (None: it has none we may show).
    Identity { did: String, handle: Option<String> },
    /// Anything else with a position: another post, an edit, a delete, an account event.
    Other,
}

#[derive(Debug, PartialEq)]
pub(super) struct NewPost {
    pub(super) author: String,
    pub(super) uri: String,
    pub(super) cid: String,
    pub(super) record: Value,
}

/// A frame read: where it is in the stream, and what it is. None: unreadable (no
/// position to go by).
pub(super) fn read_frame(text: &str, us: &Recogniser) -> Option<(u64, Seen)> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let time_us = frame["time_us"].as_u64()?;
    let did = frame["did"].as_str().filter(|d| is_did(d));
    let seen = match (frame["kind"].as_str(), did) {
        (Some("commit"), Some(did)) => us.commit(did, &frame["commit"]),
        (Some("identity"), Some(did)) => {
            let identity = &frame["identity"];
            if identity["did"].as_str().is_some_and(|d| d != did) {
                Seen::Other
            } else {
                Seen::Identity {
                    did: did.to_string(),
                    handle: identity["handle"]
                        .as_str()
                        .filter(|h| is_handle(h))
                        .map(str::to_ascii_lowercase),
                }
            }
        }
        _ => Seen::Other,
    };
    Some((time_us, seen))
}

/// The brand as Jetstream shows it, and the keyword watches.
pub(super) struct Recogniser {
    did: String,
    /// `at://<our did>/app.bsky.feed.post/`: a post of ours starts so.
    our_posts: String,
    watches: Vec<KeywordWatch>,
}

impl Recogniser {
    pub(super) fn new(did: &str, keywords: &[String]) -> Recogniser {
        Recogniser {
            did: did.to_string(),
            our_posts: format!("at://{did}/{POST}/"),
            watches: keywords.iter().map(|k| KeywordWatch::new(k)).collect(),
        }
    }

    fn commit(&self, author: &str, commit: &Value) -> Seen {
        if commit["operation"] != "create" || commit["collection"] != POST || author == self.did {
            return Seen::Other;
        }
        let (Some(rkey), Some(cid)) = (
            commit["rkey"].as_str().filter(|k| is_record_key(k)),
            commit["cid"].as_str().filter(|c| is_cid(c)),
        ) else {
            return Seen::Other;
        };
        let record = &commit["record"];
        if !record.is_object() || !self.concerns_us(record) {
            return Seen::Other;
        }
        Seen::Post(NewPost {
            author: author.to_string(),
            uri: format!("at://{author}/{POST}/{rkey}"),
            cid: cid.to_string(),
            record: record.clone(),
        })
    }

    fn concerns_us(&self, record: &Value) -> bool {
        let ours = |uri: &Value| uri.as_str().is_some_and(|u| u.starts_with(&self.our_posts));
        let mentions_us = record["facets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["features"].as_array().into_iter().flatten())
            .any(|f| f["$type"] == MENTION && f["did"] == self.did.as_str());
        let reply = &record["reply"];
        let embed = &record["embed"];
        mentions_us
            || ours(&reply["parent"]["uri"])
            || ours(&reply["root"]["uri"])
            || (embed["$type"] == "app.bsky.embed.record" && ours(&embed["record"]["uri"]))
            || (embed["$type"] == "app.bsky.embed.recordWithMedia"
                && ours(&embed["record"]["record"]["uri"]))
            || (!self.watches.is_empty() && {
                let text = PostText::of(record);
                self.watches.iter().any(|w| w.matches(&text))
            })
    }
}

/// `did:<method>:<id>` in the characters the DID syntax allows (atproto "DID" spec: at
/// most 2 KB, method lowercase letters, id of `[A-Za-z0-9._:%-]` not ending in `:`).
pub(super) fn is_did(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("did:") else {
        return false;
    };
    let Some((method, id)) = rest.split_once(':') else {
        return false;
    };
    s.len() <= 2048
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_lowercase())
        && !id.is_empty()
        && !id.ends_with(':')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:%-".contains(&b))
}

/// A record key (atproto "Record Key" spec): 1 to 512 of `[A-Za-z0-9._:~-]`, not `.` or
/// `..`. It becomes part of a URL, so nothing else may pass.
fn is_record_key(s: &str) -> bool {
    (1..=512).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:~-".contains(&b))
}

/// A CID in its base32 or base58 string form: letters and digits, at most 256.
fn is_cid(s: &str) -> bool {
    (8..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A handle (atproto "Handle" spec): dot-separated labels of ASCII letters, digits and
/// hyphens, at least two, at most 253 characters.
fn is_handle(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').count() >= 2
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const US: &str = "did:plc:brand";

    fn frame(did: &str, record: Value) -> String {
        json!({"did": did, "time_us": 1_725_911_162_329_308u64, "kind": "commit",
               "commit": {"rev": "3l3qo2vutsw2b", "operation": "create", "collection": POST,
                          "rkey": "3l3qo2vuowo2b", "record": record, "cid": "bafyreidc6sydkkbch"}})
        .to_string()
    }

    fn seen(text: &str) -> Option<Seen> {
        read_frame(text, &Recogniser::new(US, &["acme".into()])).map(|(_, s)| s)
    }

    fn is_ours(record: Value) -> bool {
        matches!(seen(&frame("did:plc:alice", record)), Some(Seen::Post(_)))
    }

    #[test]
    fn mentions_replies_quotes_and_keywords_are_ours() {
        let mention = json!({"text": "@brand.test help", "facets": [{"index": {"byteStart": 0, "byteEnd": 11},
            "features": [{"$type": MENTION, "did": US}]}]});
        assert!(is_ours(mention.clone()));
        let Some(Seen::Post(p)) = seen(&frame("did:plc:alice", mention)) else {
            panic!()
        };
        assert_eq!(p.uri, "at://did:plc:alice/app.bsky.feed.post/3l3qo2vuowo2b");
        assert_eq!(p.cid, "bafyreidc6sydkkbch");
        assert_eq!(p.author, "did:plc:alice");

        let ours = format!("at://{US}/{POST}/3kroot");
        assert!(is_ours(
            json!({"text": "still broken", "reply": {"root": {"uri": ours, "cid": "c"}, "parent": {"uri": "at://did:plc:bob/app.bsky.feed.post/1", "cid": "c"}}})
        ));
        assert!(is_ours(
            json!({"text": "x", "reply": {"parent": {"uri": ours}}})
        ));
        assert!(is_ours(
            json!({"text": "look", "embed": {"$type": "app.bsky.embed.record", "record": {"uri": ours, "cid": "c"}}})
        ));
        assert!(is_ours(
            json!({"text": "look", "embed": {"$type": "app.bsky.embed.recordWithMedia", "record": {"record": {"uri": ours}}, "media": {}}})
        ));
        assert!(is_ours(json!({"text": "Acme is down"})));
    }

    #[test]
    fn others_posts_our_own_edits_and_deletes_are_not() {
        assert!(!is_ours(json!({"text": "lunch"})));
        // Someone else mentioned, a look-alike DID, a post of someone whose DID starts
        // like ours.
        assert!(!is_ours(json!({"text": "hi", "facets": [{"features": [
            {"$type": MENTION, "did": "did:plc:brandx"}, {"$type": "app.bsky.richtext.facet#link", "uri": US}]}]})));
        assert!(!is_ours(
            json!({"text": "x", "reply": {"parent": {"uri": format!("at://{US}x/{POST}/1")}}})
        ));
        assert!(!is_ours(
            json!({"text": "x", "embed": {"$type": "app.bsky.embed.external", "record": {"uri": format!("at://{US}/{POST}/1")}}})
        ));
        let ours = frame(US, json!({"text": "acme news"}));
        assert_eq!(seen(&ours), Some(Seen::Other));
        let edit = ours
            .replace("\"create\"", "\"update\"")
            .replace(US, "did:plc:alice");
        assert_eq!(seen(&edit), Some(Seen::Other));
    }

    #[test]
    fn hostile_frames_are_skipped_or_read_as_far_as_they_go() {
        for garbage in [
            "",
            "not json",
            "[]",
            "{}",
            "{\"time_us\": \"1\"}",
            "{\"time_us\": -5, \"kind\": \"commit\"}",
            "{\"time_us\": 1.5e300}",
        ] {
            assert_eq!(seen(garbage), None, "{garbage:?}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(seen(&deep), None);
        let mention_of = |did: &str, rkey: &str, cid: &str| {
            json!({"did": did, "time_us": 7, "kind": "commit", "commit": {"operation": "create",
                "collection": POST, "rkey": rkey, "cid": cid, "record": {"text": "acme"}}})
            .to_string()
        };
        assert!(matches!(
            seen(&mention_of("did:plc:alice", "3k", "bafyrei12")),
            Some(Seen::Post(_))
        ));
        for (did, rkey, cid) in [
            ("alice", "3k", "bafyrei12"),
            ("did:plc:alice/../x", "3k", "bafyrei12"),
            ("did:PLC:alice", "3k", "bafyrei12"),
            ("did:plc:alice", "../../admin", "bafyrei12"),
            ("did:plc:alice", "3k?x=1", "bafyrei12"),
            ("did:plc:alice", "..", "bafyrei12"),
            ("did:plc:alice", "3k", "bafy rei"),
            ("did:plc:alice", "3k", ""),
        ] {
            assert_eq!(
                seen(&mention_of(did, rkey, cid)),
                Some(Seen::Other),
                "{did} {rkey} {cid}"
            );
        }
        // Wrong types anywhere in the record: no panic, and the rest is still read.
        for record in [
            json!({"text": "acme", "facets": "x"}),
            json!({"text": "acme", "facets": [{"index": {"byteStart": 999_999, "byteEnd": 2}, "features": {"a": 1}}]}),
            json!({"text": "acme", "reply": "x", "embed": 5}),
        ] {
            assert!(is_ours(record));
        }
        assert!(!is_ours(json!({"text": ["acme"]})));
        assert!(!is_ours(json!("acme")));
        // A bogus byte range still names us: the mention is the feature, not the range.
        assert!(is_ours(
            json!({"text": "hi", "facets": [{"index": {"byteStart": 50, "byteEnd": 3},
            "features": [{"$type": MENTION, "did": US}]}]})
        ));
    }

    #[test]
    fn identity_events_carry_a_handle_only_when_it_is_one() {
        let ev = |handle: Value| {
            json!({"did": "did:plc:alice", "time_us": 9, "kind": "identity",
                   "identity": {"did": "did:plc:alice", "handle": handle, "seq": 1, "time": "2024-09-05T06:11:04.870Z"}})
            .to_string()
        };
        assert_eq!(
            seen(&ev(json!("Alice.Example.com"))),
            Some(Seen::Identity {
                did: "did:plc:alice".into(),
                handle: Some("alice.example.com".into())
            })
        );
        for bad in [
            json!("handle.invalid/x"),
            json!("x"),
            json!(5),
            json!("a..b"),
        ] {
            assert_eq!(
                seen(&ev(bad.clone())),
                Some(Seen::Identity {
                    did: "did:plc:alice".into(),
                    handle: None
                }),
                "{bad}"
            );
        }
    }
}
