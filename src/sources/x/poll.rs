//! Polling: the mention timeline and the keyword searches after the last post id seen.

use super::request::{Call, Endpoint};
use super::wire::{unescape, Page, Tweet, User};
use super::X;
use crate::domain::{Author, Mention, Platform, Visibility};
use crate::ports::{Batch, DeliveryError};
use crate::wire::request_path::{self, IdShape};
use chrono::{DateTime, Utc};
use reqwest::Method;
use std::collections::{HashMap, HashSet};

/// Page size of the mention timeline and searches (X's maximum).
const PAGE: u32 = 100;
/// Newest mentions taken on a first start, so a new install does not flood the channel.
const FIRST_PAGE: u32 = 20;
/// Pages read in one poll at most (X serves at most 800 mentions anyway).
const MAX_PAGES: usize = 8;
/// X's epoch for snowflake ids (2010-11-04T01:42:54.657Z).
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;
const TWEET_FIELDS: &str =
    "created_at,lang,conversation_id,referenced_tweets,in_reply_to_user_id,author_id,note_tweet";

/// Posts and their authors gathered by one poll.
#[derive(Default)]
struct Found {
    tweets: Vec<Tweet>,
    users: HashMap<String, User>,
}

impl X {
    pub(super) fn to_mention(
        account: &str,
        tweet: Tweet,
        users: &HashMap<String, User>,
    ) -> Mention {
        let author_id = tweet.author_id.clone().unwrap_or_default();
        let (handle, name, followers) = match users.get(&author_id) {
            Some(u) => (
                u.username.clone(),
                u.name.clone(),
                u.public_metrics.as_ref().and_then(|m| m.followers_count),
            ),
            None => (author_id.clone(), String::new(), None),
        };
        let text = tweet
            .note_tweet
            .as_ref()
            .map(|n| n.text.clone())
            .unwrap_or_else(|| tweet.text.clone());
        Mention {
            platform: Platform::X,
            network: None,
            account: account.to_string(),
            url: format!("https://x.com/{handle}/status/{}", tweet.id),
            author: Author {
                profile_url: format!("https://x.com/{handle}"),
                name: if name.is_empty() {
                    handle.clone()
                } else {
                    name
                },
                handle,
                id: tweet.author_id.clone(),
                followers,
            },
            text: unescape(&text),
            // X's codes for "no language": undetermined, no text, and posts of only
            // mentions, cashtags, hashtags, media or very short text.
            language: tweet.lang.clone().filter(|l| {
                !matches!(
                    l.as_str(),
                    "und" | "zxx" | "qam" | "qct" | "qht" | "qme" | "qst"
                )
            }),
            created_at: tweet.created_at.unwrap_or_else(Utc::now),
            in_reply_to: tweet.replied_to().map(str::to_string),
            visibility: Visibility::Public,
            remote_id: tweet.id,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    /// Read one paginated listing after `since`; newest first on the wire.
    async fn collect(
        &self,
        endpoint: Endpoint,
        path: String,
        base_query: Vec<(&'static str, String)>,
        since: Option<&str>,
        token_param: &'static str,
        found: &mut Found,
    ) -> Result<(), DeliveryError> {
        let mut token: Option<String> = None;
        let pages = if since.is_some() { MAX_PAGES } else { 1 };
        for _ in 0..pages {
            let mut query = base_query.clone();
            query.extend(post_fields());
            query.push((
                "max_results",
                if since.is_some() { PAGE } else { FIRST_PAGE }.to_string(),
            ));
            if let Some(s) = since {
                query.push(("since_id", s.to_string()));
            }
            if let Some(t) = &token {
                query.push((token_param, t.clone()));
            }
            let call = Call {
                method: Method::GET,
                endpoint,
                path: path.clone(),
                query,
                json: None,
            };
            let page: Page<Tweet> = self.fetch_page(&call).await?;
            for u in page.includes.users {
                found.users.insert(u.id.clone(), u);
            }
            found.tweets.extend(page.data);
            match page.meta.next_token {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
        if since.is_some() {
            tracing::warn!(
                ?endpoint,
                pages = MAX_PAGES,
                "more X posts than one poll reads; the oldest of this burst are skipped"
            );
        }
        Ok(())
    }

    pub(super) async fn poll_once(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        if self.budget.spent().await {
            let budget = self.budget.limit();
            return Err(DeliveryError::Permanent {
                reason: format!(
                    "X daily request budget of {budget} spent; polling paused until 00:00 UTC \
                     (x.daily_request_budget)"
                ),
            });
        }
        self.budget.log(false).await;
        // A cursor is a post id; a foreign one (corrupt) restarts like a first start.
        let since = cursor.filter(|c| c.parse::<u64>().is_ok());
        // Anything posted from now on is newer than this id: the cursor of a first start
        // that found nothing, so the next poll reads a burst in full.
        let started = snowflake_at(Utc::now() - chrono::Duration::seconds(30));
        let mut found = Found::default();
        self.collect(
            Endpoint::Mentions,
            request_path::path(
                "/2/users/{}/mentions",
                &[("X user id", IdShape::Snowflake, &self.me.id)],
            )?,
            vec![],
            since,
            "pagination_token",
            &mut found,
        )
        .await?;
        // Recent search only reaches 7 days back and refuses an older `since_id`: after a
        // longer pause, searches restart from their newest page.
        let week_ago =
            snowflake_at(Utc::now() - chrono::Duration::days(7) + chrono::Duration::minutes(10));
        let search_since = since.filter(|s| s.parse::<u64>().is_ok_and(|id| id >= week_ago));
        for keyword in &self.config.keywords {
            self.collect(
                Endpoint::Search,
                "/2/tweets/search/recent".into(),
                vec![(
                    "query",
                    super::stream::keyword_query(keyword, &self.me.username),
                )],
                search_since,
                "next_token",
                &mut found,
            )
            .await?;
        }
        let Found { mut tweets, users } = found;
        let mut seen = HashSet::new();
        tweets.retain(|t| from_someone_else(t, &self.me.id) && seen.insert(t.id.clone()));
        tweets.sort_by_key(|t| t.id.parse::<u64>().unwrap_or(0));
        let newest = tweets
            .last()
            .and_then(|t| t.id.parse::<u64>().ok())
            .into_iter()
            .chain(since.and_then(|s| s.parse::<u64>().ok()))
            .max();
        let next = match (newest, since) {
            (Some(n), _) => n.to_string(),
            (None, _) => started.to_string(),
        };
        let mentions = tweets
            .into_iter()
            .map(|t| Self::to_mention(&self.me.id, t, &users))
            .collect();
        Ok(Batch {
            mentions,
            cursor: Some(next),
            more: false,
        })
    }
}

/// The fields and expansions every read of posts asks for, so a post makes the same
/// mention whichever way it came (poll, search or filtered stream).
pub(super) fn post_fields() -> [(&'static str, String); 3] {
    [
        ("expansions", "author_id".into()),
        ("tweet.fields", TWEET_FIELDS.into()),
        ("user.fields", "username,name,public_metrics".into()),
    ]
}

/// A post with a readable id that the brand account `brand_id` did not write: our own
/// posts are never tickets.
pub(super) fn from_someone_else(t: &Tweet, brand_id: &str) -> bool {
    t.id.parse::<u64>().is_ok() && t.author_id.as_deref() != Some(brand_id)
}

/// A page of mentions or search results read the way the poller reads it, for the
/// brand account `account` (the fuzz tests feed it arbitrary bytes).
pub fn mentions_in_page(account: &str, body: &[u8]) -> Result<Vec<Mention>, serde_json::Error> {
    let page: Page<Tweet> = serde_json::from_slice(body)?;
    let users = page.includes.users_by_id();
    Ok(page
        .data
        .into_iter()
        .map(|t| X::to_mention(account, t, &users))
        .collect())
}

/// The smallest post id X could give a post created at `at`.
fn snowflake_at(at: DateTime<Utc>) -> u64 {
    let ms = (at.timestamp_millis() - SNOWFLAKE_EPOCH_MS).max(0) as u64;
    ms << 22
}

#[cfg(test)]
mod tests {
    use super::super::test_client as client;
    use super::*;

    #[test]
    fn a_mention_page_maps_to_mentions() {
        let x = client();
        let page = r#"{"data":[{"id":"1790000000000000002","text":"@brand where is my order? &amp; refund &lt;3","author_id":"2244994945","created_at":"2024-05-13T10:00:00.000Z","lang":"en","conversation_id":"1790000000000000001","in_reply_to_user_id":"1500000000000000001","referenced_tweets":[{"type":"replied_to","id":"1790000000000000001"}],"edit_history_tweet_ids":["1790000000000000002"]},{"id":"1790000000000000003","text":"@brand hi","author_id":"99","lang":"und","edit_history_tweet_ids":["1790000000000000003"]},{"id":"1790000000000000004","text":"@brand #brandco","author_id":"99","lang":"qht","edit_history_tweet_ids":["1790000000000000004"]}],"includes":{"users":[{"id":"2244994945","name":"X Developers","username":"XDevelopers"}]},"meta":{"newest_id":"1790000000000000003","oldest_id":"1790000000000000002","result_count":2}}"#;
        let mut mentions = mentions_in_page(&x.me.id, page.as_bytes())
            .unwrap()
            .into_iter();
        let m = mentions.next().unwrap();
        assert_eq!(m.platform, Platform::X);
        assert_eq!(m.account, "1500000000000000001");
        assert_eq!(m.remote_id, "1790000000000000002");
        assert_eq!(
            m.url,
            "https://x.com/XDevelopers/status/1790000000000000002"
        );
        assert_eq!(m.author.handle, "XDevelopers");
        assert_eq!(m.author.name, "X Developers");
        assert_eq!(m.author.profile_url, "https://x.com/XDevelopers");
        assert_eq!(m.author.id.as_deref(), Some("2244994945"));
        assert_eq!(m.text, "@brand where is my order? & refund <3");
        assert_eq!(m.language.as_deref(), Some("en"));
        assert_eq!(m.created_at.to_rfc3339(), "2024-05-13T10:00:00+00:00");
        assert_eq!(m.in_reply_to.as_deref(), Some("1790000000000000001"));
        assert_eq!(m.visibility, Visibility::Public);
        // An author missing from `includes` (suspended, say) still makes a mention.
        let m = mentions.next().unwrap();
        assert_eq!(m.author.handle, "99");
        assert_eq!(m.language, None);
        assert_eq!(m.in_reply_to, None);
        let m = mentions.next().unwrap();
        assert_eq!(m.language, None, "hashtags only: no language");
    }

    #[test]
    fn snowflakes_grow_with_time() {
        let a = snowflake_at(
            DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                .unwrap()
                .into(),
        );
        let b = snowflake_at(
            DateTime::parse_from_rfc3339("2024-01-01T00:00:01Z")
                .unwrap()
                .into(),
        );
        assert!(b > a);
        // A real id of early 2024 is of this size.
        assert!(a > 1_741_000_000_000_000_000 && a < 1_742_000_000_000_000_000);
    }
}
