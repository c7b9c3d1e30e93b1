//! The social platforms as the desk reaches them: a `Source` yields new mentions after a
//! cursor, a `Publisher` sends an agent's answer back.

use super::DeliveryError;
use crate::domain::{text::TextRules, Mention, Platform, TicketId, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One batch of mentions, oldest first, and the cursor that follows the batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub mentions: Vec<Mention>,
    pub cursor: Option<String>,
    /// More are waiting right now: poll again without pausing.
    pub more: bool,
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Stable name of this source's cursor in the store.
    fn cursor_key(&self) -> String;
    fn poll_interval(&self) -> Duration;
    async fn poll(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError>;
}

/// Everything a publisher needs to send one reply exactly once.
#[derive(Debug, Clone)]
pub struct ReplyRequest {
    pub ticket: TicketId,
    pub seq: u32,
    pub text: String,
    pub visibility: Visibility,
    /// A private message to the author (Mastodon direct, Bluesky chat, X DM).
    pub private: bool,
    pub in_reply_to: String,
    /// The mention's `reply_context` (platform-specific thread data).
    pub reply_context: Option<String>,
    /// The author's platform id and handle, for private messages.
    pub author_id: Option<String>,
    pub author_handle: String,
    /// Stable across retries and restarts.
    pub idempotency_key: String,
    /// A previous try may have reached the platform: look before posting again.
    pub maybe_sent: bool,
    pub queued_at: DateTime<Utc>,
    /// Remote ids of this ticket's earlier replies, never to be mistaken for this one.
    pub earlier_replies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub remote_id: String,
    pub url: String,
}

#[async_trait]
pub trait Publisher: Send + Sync {
    fn platform(&self) -> Platform;
    fn text_rules(&self) -> TextRules;
    async fn publish(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError>;
}
