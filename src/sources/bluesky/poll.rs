//! Polling: the notifications (mentions, replies, quotes) and the keyword searches, each
//! after the newest `indexedAt` it saw.

use super::wire::{
    parse_time, rkey_of, NotificationPage, PostRecord, Profile, ReplyContext, SearchPage, StrongRef,
};
use super::xrpc::Call;
use super::Bluesky;
use crate::domain::{Author, Mention, Platform, Visibility};
use crate::ports::{Batch, DeliveryError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Notifications and search results per page (the lexicons allow 1 to 100).
const PAGE: u32 = 50;
/// A first start reads only this many of the newest (no flood of old mentions).
const FIRST_PAGE: u32 = 20;
/// Pages read per poll and source before giving up on reaching the last position.
const MAX_PAGES: usize = 20;
/// Reasons that make a notification a mention worth a ticket.
const REASONS: [&str; 3] = ["mention", "reply", "quote"];

/// Where the last poll stopped, per source: the newest `indexedAt` seen. Stored by the
/// watcher together with the mentions.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PollCursor {
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    notifications: Option<DateTime<Utc>>,
    #[serde(rename = "s", default, skip_serializing_if = "BTreeMap::is_empty")]
    search: BTreeMap<String, DateTime<Utc>>,
}

impl Bluesky {
    /// Newest pages of the notifications, back to `since` (inclusive), or only the newest
    /// page on a first start. Returns the kept mentions and the newest `indexedAt` seen.
    async fn poll_notifications(
        &self,
        since: Option<DateTime<Utc>>,
        first: bool,
    ) -> Result<(Vec<(DateTime<Utc>, Mention)>, Option<DateTime<Utc>>), DeliveryError> {
        let me = self.did();
        let mut found = Vec::new();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut page_cursor: Option<String> = None;
        for page_no in 0..MAX_PAGES {
            let limit = if first { FIRST_PAGE } else { PAGE };
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            for r in REASONS {
                query.push(("reasons", r.to_string()));
            }
            if let Some(c) = &page_cursor {
                query.push(("cursor", c.clone()));
            }
            let page: NotificationPage = self
                .call_json(Call::get("app.bsky.notification.listNotifications", query))
                .await?;
            let mut reached = false;
            let count = page.notifications.len();
            for n in page.notifications {
                let Some(at) = parse_time(&n.indexed_at) else {
                    continue;
                };
                newest = Some(newest.map_or(at, |x| x.max(at)));
                if since.is_some_and(|s| at < s) {
                    reached = true;
                    continue;
                }
                if !REASONS.contains(&n.reason.as_str()) || n.author.did == me {
                    continue;
                }
                if let Some(m) =
                    record_mention(&self.handle(), &n.uri, &n.cid, &n.author, &n.record, at)
                {
                    found.push((at, m));
                }
            }
            if first || reached || count == 0 {
                break;
            }
            match page.cursor {
                Some(c) if !c.is_empty() => page_cursor = Some(c),
                _ => break,
            }
            if page_no + 1 == MAX_PAGES {
                tracing::warn!(pages = MAX_PAGES, "more Bluesky notifications arrived than one poll reads; the oldest of them are skipped");
            }
        }
        Ok((found, newest))
    }

    async fn poll_keyword(
        &self,
        keyword: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<(DateTime<Utc>, Mention)>, Option<DateTime<Utc>>), DeliveryError> {
        let me = self.did();
        let mut found = Vec::new();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut page_cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, String)> = vec![
                ("q", keyword.to_string()),
                ("sort", "latest".to_string()),
                (
                    "limit",
                    if since.is_none() { FIRST_PAGE } else { PAGE }.to_string(),
                ),
            ];
            if let Some(s) = since {
                query.push(("since", rfc3339(s)));
            }
            if let Some(c) = &page_cursor {
                query.push(("cursor", c.clone()));
            }
            let page: SearchPage = self
                .call_json(Call::get("app.bsky.feed.searchPosts", query))
                .await?;
            let mut reached = false;
            let count = page.posts.len();
            for p in page.posts {
                let Some(at) = parse_time(&p.indexed_at) else {
                    continue;
                };
                newest = Some(newest.map_or(at, |x| x.max(at)));
                if since.is_some_and(|s| at < s) {
                    reached = true;
                    continue;
                }
                if p.author.did == me {
                    continue;
                }
                if let Some(m) =
                    record_mention(&self.handle(), &p.uri, &p.cid, &p.author, &p.record, at)
                {
                    found.push((at, m));
                }
            }
            if since.is_none() || reached || count == 0 {
                break;
            }
            match page.cursor {
                Some(c) if !c.is_empty() => page_cursor = Some(c),
                _ => break,
            }
        }
        Ok((found, newest))
    }

    pub(super) async fn poll_once(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        let parsed = cursor.and_then(|c| serde_json::from_str::<PollCursor>(c).ok());
        if cursor.is_some() && parsed.is_none() {
            tracing::warn!("unreadable Bluesky cursor; starting over from the newest page");
        }
        let previous = parsed.unwrap_or_default();
        let first = previous.notifications.is_none();
        let mut next = PollCursor::default();
        let mut all = Vec::new();

        let (found, newest) = self
            .poll_notifications(previous.notifications, first)
            .await?;
        all.extend(found);
        // An empty first page still fixes a starting point: the beginning of time, so
        // everything that arrives before the next poll is read in full.
        next.notifications = newest
            .or(previous.notifications)
            .or(Some(DateTime::UNIX_EPOCH));

        for keyword in &self.config.keywords {
            let since = previous.search.get(keyword).copied();
            let (found, newest) = self.poll_keyword(keyword, since).await?;
            all.extend(found);
            next.search.insert(
                keyword.clone(),
                newest.or(since).unwrap_or(DateTime::UNIX_EPOCH),
            );
        }

        all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.created_at.cmp(&b.1.created_at)));
        let mut seen = HashSet::new();
        let mentions: Vec<Mention> = all
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| seen.insert(m.remote_id.clone()))
            .collect();
        let mentions = self.with_reach(mentions).await;
        Ok(Batch {
            mentions,
            cursor: Some(serde_json::to_string(&next).expect("a cursor always serializes")),
            more: false,
        })
    }
}

impl Bluesky {
    /// Notifications and search results carry the author's basic profile view, which
    /// has no follower count: the authors are looked up (`getProfiles`, 25 a call,
    /// cached) so each mention carries its author's reach. A lookup that fails leaves
    /// the mention without it; it is never held back.
    async fn with_reach(&self, mut mentions: Vec<Mention>) -> Vec<Mention> {
        let dids: Vec<String> = mentions
            .iter()
            .filter(|m| m.author.followers.is_none())
            .filter_map(|m| m.author.id.clone())
            .collect();
        if dids.is_empty() {
            return mentions;
        }
        let profiles = self.profiles(&self.poll_profiles, &dids).await;
        for m in &mut mentions {
            if m.author.followers.is_none() {
                m.author.followers = m
                    .author
                    .id
                    .as_ref()
                    .and_then(|did| profiles.get(did))
                    .and_then(|p| p.followers_count);
            }
        }
        mentions
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A notifications page read the way the poller reads it (reasons and our own posts
/// aside), for the brand handle `account` (the fuzz tests feed it arbitrary bytes).
pub fn mentions_in_notifications(
    account: &str,
    body: &[u8],
) -> Result<Vec<Mention>, serde_json::Error> {
    let page: NotificationPage = serde_json::from_slice(body)?;
    Ok(page
        .notifications
        .iter()
        .filter_map(|n| {
            let at = parse_time(&n.indexed_at)?;
            record_mention(account, &n.uri, &n.cid, &n.author, &n.record, at)
        })
        .collect())
}

/// A post record as a mention; None when the record is not a post we can read. The
/// notifications, the keyword searches and Jetstream all make their mentions here, so one
/// post is the same mention whichever path brought it.
pub(super) fn record_mention(
    account: &str,
    uri: &str,
    cid: &str,
    author: &Profile,
    record: &Value,
    indexed_at: DateTime<Utc>,
) -> Option<Mention> {
    let post: PostRecord = serde_json::from_value(record.clone()).ok()?;
    Some(mention_from(account, uri, cid, author, &post, indexed_at))
}

fn mention_from(
    account: &str,
    uri: &str,
    cid: &str,
    author: &Profile,
    post: &PostRecord,
    indexed_at: DateTime<Utc>,
) -> Mention {
    let profile_id = if author.handle.is_empty() || author.handle == "handle.invalid" {
        author.did.clone()
    } else {
        author.handle.clone()
    };
    let root = post
        .reply
        .as_ref()
        .map(|r| r.root.clone())
        .unwrap_or_else(|| StrongRef {
            uri: uri.to_string(),
            cid: cid.to_string(),
        });
    let context = ReplyContext {
        cid: cid.to_string(),
        root,
    };
    Mention {
        platform: Platform::Bluesky,
        network: None,
        account: account.to_string(),
        remote_id: uri.to_string(),
        url: format!(
            "https://bsky.app/profile/{profile_id}/post/{}",
            rkey_of(uri).unwrap_or_default()
        ),
        author: Author {
            handle: author.handle.clone(),
            name: author
                .display_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| author.handle.clone()),
            profile_url: format!("https://bsky.app/profile/{profile_id}"),
            id: Some(author.did.clone()),
            followers: author.followers_count,
        },
        text: post.text.clone(),
        language: post.langs.first().cloned(),
        created_at: post
            .created_at
            .as_deref()
            .and_then(parse_time)
            .unwrap_or(indexed_at),
        in_reply_to: post.reply.as_ref().map(|r| r.parent.uri.clone()),
        visibility: Visibility::Public,
        reply_context: Some(serde_json::to_string(&context).expect("context serializes")),
        external_id: None,
        detected_language: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::publish::reply_record;
    use super::*;
    use crate::domain::TicketId;
    use crate::ports::ReplyRequest;
    use serde_json::json;

    fn profile() -> Profile {
        Profile {
            did: "did:plc:alice".into(),
            handle: "alice.test".into(),
            display_name: Some("Alice".into()),
            followers_count: None,
        }
    }

    #[test]
    fn a_top_level_post_is_its_own_thread_root() {
        let record = json!({"$type": "app.bsky.feed.post", "text": "@brand.test help", "createdAt": "2024-05-01T10:00:00.000Z", "langs": ["en", "de"]});
        let post: PostRecord = serde_json::from_value(record).unwrap();
        let uri = "at://did:plc:alice/app.bsky.feed.post/3kabc";
        let m = mention_from(
            "brand.test",
            uri,
            "bafyreipost",
            &profile(),
            &post,
            Utc::now(),
        );
        assert_eq!(m.platform, Platform::Bluesky);
        assert_eq!(m.account, "brand.test");
        assert_eq!(m.remote_id, uri);
        assert_eq!(m.url, "https://bsky.app/profile/alice.test/post/3kabc");
        assert_eq!(m.author.name, "Alice");
        assert_eq!(m.author.profile_url, "https://bsky.app/profile/alice.test");
        assert_eq!(m.author.id.as_deref(), Some("did:plc:alice"));
        assert_eq!(m.language.as_deref(), Some("en"));
        assert_eq!(m.in_reply_to, None);
        assert_eq!(m.created_at.to_rfc3339(), "2024-05-01T10:00:00+00:00");
        let ctx: ReplyContext = serde_json::from_str(m.reply_context.as_deref().unwrap()).unwrap();
        assert_eq!(ctx.cid, "bafyreipost");
        assert_eq!(ctx.root.uri, uri);
        assert_eq!(ctx.root.cid, "bafyreipost");
    }

    #[test]
    fn a_reply_keeps_its_threads_root_and_the_answer_threads_under_it() {
        let record = json!({"text": "still broken", "createdAt": "2024-05-01T10:00:00Z",
            "reply": {"root": {"uri": "at://did:plc:brand/app.bsky.feed.post/root1", "cid": "bafyroot"},
                      "parent": {"uri": "at://did:plc:brand/app.bsky.feed.post/par1", "cid": "bafypar"}}});
        let post: PostRecord = serde_json::from_value(record).unwrap();
        let uri = "at://did:plc:alice/app.bsky.feed.post/3kxyz";
        let mut author = profile();
        author.display_name = Some("  ".into());
        let m = mention_from("brand.test", uri, "bafyme", &author, &post, Utc::now());
        assert_eq!(m.author.name, "alice.test");
        assert_eq!(
            m.in_reply_to.as_deref(),
            Some("at://did:plc:brand/app.bsky.feed.post/par1")
        );
        let ctx: ReplyContext = serde_json::from_str(m.reply_context.as_deref().unwrap()).unwrap();
        assert_eq!(ctx.root.uri, "at://did:plc:brand/app.bsky.feed.post/root1");

        let queued_at = DateTime::parse_from_rfc3339("2024-05-01T11:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let request = ReplyRequest {
            ticket: TicketId(7),
            seq: 1,
            text: "@alice.test Fixed now, see https://status.example".into(),
            visibility: Visibility::Public,
            private: false,
            in_reply_to: uri.into(),
            reply_context: m.reply_context.clone(),
            author_id: Some("did:plc:alice".into()),
            author_handle: "alice.test".into(),
            idempotency_key: "k".into(),
            maybe_sent: false,
            queued_at,
            earlier_replies: vec![],
        };
        let record = reply_record(&request, &ctx);
        assert_eq!(record, reply_record(&request, &ctx), "deterministic");
        assert_eq!(record["$type"], "app.bsky.feed.post");
        assert_eq!(record["createdAt"], "2024-05-01T11:00:00.123456Z");
        assert_eq!(record["reply"]["root"]["cid"], "bafyroot");
        assert_eq!(record["reply"]["parent"]["uri"], uri);
        assert_eq!(record["reply"]["parent"]["cid"], "bafyme");
        assert_eq!(record["facets"][0]["index"]["byteEnd"], 11);
        assert_eq!(
            record["facets"][1]["features"][0]["uri"],
            "https://status.example"
        );
    }

    #[test]
    fn cursors_round_trip_and_rkeys_come_out_of_uris() {
        let mut c = PollCursor {
            notifications: Some(DateTime::UNIX_EPOCH),
            ..Default::default()
        };
        c.search.insert("acme".into(), DateTime::UNIX_EPOCH);
        let s = serde_json::to_string(&c).unwrap();
        let back: PollCursor = serde_json::from_str(&s).unwrap();
        assert_eq!(back.notifications, c.notifications);
        assert_eq!(back.search, c.search);
        assert_eq!(
            rkey_of("at://did:plc:x/app.bsky.feed.post/3k2"),
            Some("3k2")
        );
        assert_eq!(rkey_of("https://x"), None);
    }
}
