//! The lexicon types we read and write (`app.bsky.*`, `chat.bsky.*`, the XRPC error body),
//! and the time and at-uri forms they use.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"error": "...", "message": "..."}`, the XRPC error body.
#[derive(Debug, Deserialize)]
pub(super) struct XrpcError {
    #[serde(default)]
    pub(super) error: String,
    #[serde(default)]
    pub(super) message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Profile {
    pub(super) did: String,
    pub(super) handle: String,
    #[serde(default)]
    pub(super) display_name: Option<String>,
    /// Only in the detailed view `getProfiles` answers with (a notification's or a
    /// search result's author has none).
    #[serde(default, deserialize_with = "crate::sources::follower_count")]
    pub(super) followers_count: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub(super) struct StrongRef {
    pub(super) uri: String,
    pub(super) cid: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ReplyRefs {
    pub(super) root: StrongRef,
    pub(super) parent: StrongRef,
}

/// The `app.bsky.feed.post` record (the parts we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PostRecord {
    #[serde(default)]
    pub(super) text: String,
    #[serde(default)]
    pub(super) created_at: Option<String>,
    #[serde(default)]
    pub(super) langs: Vec<String>,
    #[serde(default)]
    pub(super) reply: Option<ReplyRefs>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Notification {
    pub(super) uri: String,
    pub(super) cid: String,
    pub(super) author: Profile,
    pub(super) reason: String,
    pub(super) record: Value,
    pub(super) indexed_at: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct NotificationPage {
    #[serde(default)]
    pub(super) cursor: Option<String>,
    pub(super) notifications: Vec<Notification>,
}

/// `app.bsky.feed.defs#postView` (the parts we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PostView {
    pub(super) uri: String,
    pub(super) cid: String,
    pub(super) author: Profile,
    pub(super) record: Value,
    pub(super) indexed_at: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SearchPage {
    #[serde(default)]
    pub(super) cursor: Option<String>,
    pub(super) posts: Vec<PostView>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WriteOutput {
    pub(super) uri: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConvoOutput {
    pub(super) convo: Convo,
}

#[derive(Debug, Deserialize)]
pub(super) struct Convo {
    pub(super) id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageView {
    pub(super) id: String,
    #[serde(default)]
    pub(super) text: Option<String>,
    pub(super) sender: MessageSender,
    pub(super) sent_at: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct MessageSender {
    pub(super) did: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct MessagesPage {
    pub(super) messages: Vec<Value>,
}

/// What the mention keeps for the reply: the post's CID and its thread root.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct ReplyContext {
    pub(super) cid: String,
    pub(super) root: StrongRef,
}

pub(super) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The record key of an at-uri (`at://did/collection/rkey`).
pub(super) fn rkey_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("at://")?
        .split('/')
        .nth(2)
        .filter(|k| !k.is_empty())
}
