//! Public replies: an `app.bsky.feed.post` record in the thread, at a record key the reply
//! determines, with its mention and link facets.

use super::wire::{rkey_of, ReplyContext, WriteOutput};
use super::xrpc::Call;
use super::Bluesky;
use crate::ports::{DeliveryError, Published, ReplyRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const POST_COLLECTION: &str = "app.bsky.feed.post";

impl Bluesky {
    pub(super) async fn publish_post(
        &self,
        reply: &ReplyRequest,
    ) -> Result<Published, DeliveryError> {
        let context: ReplyContext = reply
            .reply_context
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| DeliveryError::Permanent {
                reason: "this Bluesky mention carries no thread data (post CID and root); open it on Bluesky to answer there".into(),
            })?;
        let record = reply_record(reply, &context);
        let rkey = tid(
            reply.queued_at.timestamp_micros().max(0) as u64,
            clock_id(&reply.idempotency_key),
        );
        let did = self.did();
        // First try: createRecord with our own key, which refuses to overwrite anything.
        // A retry (the first try may have reached the PDS): putRecord of the identical
        // record at the same key, a no-op if it is there already.
        let (nsid, body) = if reply.maybe_sent {
            (
                "com.atproto.repo.putRecord",
                json!({"repo": did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}),
            )
        } else {
            (
                "com.atproto.repo.createRecord",
                json!({"repo": did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}),
            )
        };
        tracing::debug!(ticket = %reply.ticket, %rkey, nsid, "writing the Bluesky reply");
        let out: WriteOutput = self.call_json(Call::post(nsid, body)).await?;
        Ok(Published {
            url: format!(
                "https://bsky.app/profile/{}/post/{}",
                self.handle(),
                rkey_of(&out.uri).unwrap_or(&rkey)
            ),
            remote_id: out.uri,
        })
    }
}

/// The whole reply record, determined by the request alone (so a retry writes the
/// identical record).
pub(super) fn reply_record(reply: &ReplyRequest, context: &ReplyContext) -> Value {
    let mut facets = Vec::new();
    if let Some(did) = reply.author_id.as_deref().filter(|d| d.starts_with("did:")) {
        if let Some(f) = mention_facet(&reply.text, &reply.author_handle, did) {
            facets.push(f);
        }
    }
    facets.extend(link_facets(&reply.text));
    let mut record = json!({
        "$type": POST_COLLECTION,
        "text": reply.text,
        "createdAt": rfc3339_micros(reply.queued_at),
        "reply": {
            "root": {"uri": context.root.uri, "cid": context.root.cid},
            "parent": {"uri": reply.in_reply_to, "cid": context.cid},
        },
    });
    if !facets.is_empty() {
        record["facets"] = Value::Array(facets);
    }
    record
}

fn rfc3339_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The mention facet for a leading `@handle` (UTF-8 byte offsets).
fn mention_facet(text: &str, handle: &str, did: &str) -> Option<Value> {
    let tag = format!("@{handle}");
    let rest = text.strip_prefix(&tag)?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(json!({
        "index": {"byteStart": 0, "byteEnd": tag.len()},
        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}],
    }))
}

/// Link facets for every `http(s)://` URL (Bluesky shows links only with a facet).
pub(super) fn link_facets(text: &str) -> Vec<Value> {
    let mut facets = Vec::new();
    let mut offset = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        let start = offset;
        offset += word.len();
        let word = word.trim_end_matches(char::is_whitespace);
        if !(word.starts_with("https://") || word.starts_with("http://")) {
            continue;
        }
        let url = word.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
        if url.len() <= "https://".len() {
            continue;
        }
        facets.push(json!({
            "index": {"byteStart": start, "byteEnd": start + url.len()},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
        }));
    }
    facets
}

const S32: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A TID record key: 53 bits of microseconds since the epoch and a 10-bit clock id,
/// as 13 base32-sortable characters.
fn tid(micros: u64, clock_id: u16) -> String {
    let v: u64 = ((micros & ((1u64 << 53) - 1)) << 10) | u64::from(clock_id & 0x3ff);
    (0..13)
        .map(|i| S32[((v >> (60 - 5 * i)) & 0x1f) as usize] as char)
        .collect()
}

/// The TID clock id of a reply: stable for its idempotency key.
fn clock_id(idempotency_key: &str) -> u16 {
    let h = Sha256::digest(idempotency_key.as_bytes());
    u16::from_be_bytes([h[0], h[1]]) & 0x3ff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn untid(s: &str) -> u64 {
        s.bytes().fold(0u64, |acc, b| {
            (acc << 5) | S32.iter().position(|c| *c == b).unwrap() as u64
        })
    }

    #[test]
    fn tids_are_13_sortable_chars_with_time_and_clock_id() {
        let t = tid(1_700_000_000_123_456, 0x2a5);
        assert_eq!(t.len(), 13);
        assert!(matches!(t.as_bytes()[0], b'2'..=b'9' | b'a'..=b'j'), "{t}");
        let v = untid(&t);
        assert_eq!(v >> 63, 0);
        assert_eq!(v >> 10, 1_700_000_000_123_456);
        assert_eq!(v & 0x3ff, 0x2a5);
        // Later means greater, as strings too.
        assert!(tid(1_700_000_000_123_457, 0) > t);
        // The spec's example TID decodes to a plausible 2023 timestamp.
        let example = untid("3jzfcijpj2z2a") >> 10;
        let when = DateTime::from_timestamp_micros(example as i64).unwrap();
        assert_eq!(when.format("%Y").to_string(), "2023");
        // Stable per idempotency key, within 10 bits.
        assert_eq!(clock_id("k-1"), clock_id("k-1"));
        assert!(clock_id("k-1") < 1024);
    }

    #[test]
    fn facets_use_utf8_byte_offsets() {
        let text = "@zoë.test héllo see https://example.com/a?b=1. ok";
        let m = mention_facet(text, "zoë.test", "did:plc:abc").unwrap();
        assert_eq!(m["index"]["byteStart"], 0);
        assert_eq!(m["index"]["byteEnd"], "@zoë.test".len());
        assert_eq!(m["index"]["byteEnd"], 10);
        assert_eq!(m["features"][0]["$type"], "app.bsky.richtext.facet#mention");
        assert_eq!(m["features"][0]["did"], "did:plc:abc");
        assert!(mention_facet("@zoë.testing hi", "zoë.test", "did:plc:abc").is_none());
        let links = link_facets(text);
        assert_eq!(links.len(), 1);
        let start = text.find("https://").unwrap();
        assert_eq!(links[0]["index"]["byteStart"], start);
        assert_eq!(
            links[0]["index"]["byteEnd"],
            start + "https://example.com/a?b=1".len()
        );
        assert_eq!(links[0]["features"][0]["uri"], "https://example.com/a?b=1");
    }
}
