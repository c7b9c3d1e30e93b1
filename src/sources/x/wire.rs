//! X API v2 JSON: the shapes of posts, users, pages and direct messages we read, and X's
//! own words from an error body.

use crate::sources::http::body_excerpt;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct User {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) username: String,
    /// Asked for with `user.fields=public_metrics`.
    #[serde(default)]
    pub(super) public_metrics: Option<PublicMetrics>,
}

/// A user's `public_metrics` (the part we read).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PublicMetrics {
    #[serde(default, deserialize_with = "crate::sources::follower_count")]
    pub(super) followers_count: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Referenced {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct NoteTweet {
    pub(super) text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Tweet {
    pub(super) id: String,
    #[serde(default)]
    pub(super) text: String,
    #[serde(default)]
    pub(super) author_id: Option<String>,
    #[serde(default)]
    pub(super) created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) lang: Option<String>,
    #[serde(default)]
    pub(super) referenced_tweets: Vec<Referenced>,
    #[serde(default)]
    pub(super) note_tweet: Option<NoteTweet>,
}

impl Tweet {
    pub(super) fn replied_to(&self) -> Option<&str> {
        self.referenced_tweets
            .iter()
            .find(|r| r.kind == "replied_to")
            .map(|r| r.id.as_str())
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Includes {
    #[serde(default)]
    pub(super) users: Vec<User>,
}

impl Includes {
    /// The expanded authors, by user id.
    pub(super) fn users_by_id(self) -> HashMap<String, User> {
        self.users.into_iter().map(|u| (u.id.clone(), u)).collect()
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Meta {
    #[serde(default)]
    pub(super) next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub(super) data: Vec<T>,
    #[serde(default)]
    pub(super) includes: Includes,
    #[serde(default)]
    pub(super) meta: Meta,
}

#[derive(Debug, Deserialize)]
pub(super) struct One<T> {
    pub(super) data: T,
}

#[derive(Debug, Deserialize)]
pub(super) struct DmEvent {
    pub(super) id: String,
    #[serde(default)]
    pub(super) text: String,
    #[serde(default)]
    pub(super) sender_id: Option<String>,
    #[serde(default)]
    pub(super) created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DmCreated {
    pub(super) dm_event_id: String,
}

/// A rule of the filtered stream, as `GET`/`POST /2/tweets/search/stream/rules` show it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct Rule {
    pub(super) id: String,
    pub(super) value: String,
    #[serde(default)]
    pub(super) tag: Option<String>,
}

/// `meta.summary` of a rules change: how many were created, deleted or refused.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RulesSummary {
    pub(super) created: u32,
    pub(super) not_created: u32,
    pub(super) deleted: u32,
    pub(super) not_deleted: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RulesMeta {
    pub(super) summary: RulesSummary,
}

/// The rules endpoints' answer: the rules (all of them, or those just created), the
/// summary of a change, and X's problems with single rules.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Rules {
    pub(super) data: Vec<Rule>,
    pub(super) meta: RulesMeta,
    pub(super) errors: Vec<Value>,
}

/// Which rule of ours (or someone else's) a streamed post matched.
#[derive(Debug, Deserialize)]
pub(super) struct MatchingRule {
    pub(super) id: String,
}

/// One line of the filtered stream: a post with its expansions and the rules it
/// matched, or X's problem that ends the connection (`errors`, or a bare problem).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct StreamLine {
    pub(super) data: Option<Tweet>,
    pub(super) includes: Includes,
    pub(super) matching_rules: Vec<MatchingRule>,
    pub(super) errors: Vec<Value>,
    pub(super) title: Option<String>,
    pub(super) detail: Option<String>,
}

/// X's words from an error body: `{"title","detail","type","status"}` (problem) and/or
/// `{"errors":[{"message"|"detail"}]}`.
pub(super) fn x_said(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = body_excerpt(body);
        return if text.trim().is_empty() {
            "no details".into()
        } else {
            text
        };
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(d) = v["detail"].as_str().or(v["title"].as_str()) {
        parts.push(d.to_string());
    }
    for e in v["errors"].as_array().into_iter().flatten() {
        if let Some(m) = e["message"].as_str().or(e["detail"].as_str()) {
            if !parts.iter().any(|p| p == m) {
                parts.push(m.to_string());
            }
        }
    }
    if parts.is_empty() {
        v.to_string().chars().take(200).collect()
    } else {
        parts.join("; ")
    }
}

pub(super) fn is_duplicate(body: &[u8]) -> bool {
    x_said(body).to_ascii_lowercase().contains("duplicate")
}

/// X escapes `&`, `<` and `>` in post text.
pub(super) fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_x_own_words() {
        let problem = br#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#;
        assert_eq!(
            x_said(problem),
            "You are not allowed to create a Tweet with duplicate content."
        );
        assert!(is_duplicate(problem));
        let errors = br#"{"errors":[{"parameters":{"max_results":["1"]},"message":"The `max_results` query parameter value [1] is not between 5 and 100"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#;
        assert_eq!(
            x_said(errors),
            "One or more parameters to your request was invalid.; The `max_results` query parameter value [1] is not between 5 and 100"
        );
        assert!(!is_duplicate(errors));
        assert_eq!(x_said(b""), "no details");
    }
}
