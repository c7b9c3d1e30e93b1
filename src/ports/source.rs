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

/// A social platform the desk reads mentions from.
///
/// Contract: `poll` has no side effect the desk relies on and may be repeated with the same
/// cursor (after a crash, before the batch was stored) and must then yield the same
/// mentions again or newer ones — never skip one. The desk stores a batch and its cursor in
/// one transaction, durably, before it polls again, so a source never needs to remember
/// anything itself; a mention yielded twice is absorbed by the store's dedupe keys. An
/// error says whether to retry (`DeliveryError::Retry`, with the platform's own wait) or
/// to tell the team (`Permanent`).
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

/// A social platform the desk answers on.
///
/// Contract: `publish` must be idempotent per `idempotency_key`. The outbox marks a job
/// started (durably) before it calls, so after a crash it may call again with
/// `maybe_sent`: the publisher must then look on the platform for a reply it already
/// made (by key or in the thread, never mistaking one of `earlier_replies` for it) and
/// return that one instead of posting a second. `Ok` means the reply exists on the platform; `Retry` means it may
/// be tried again; `Permanent` means the platform refused it for good, in words for the agent.
#[async_trait]
pub trait Publisher: Send + Sync {
    fn platform(&self) -> Platform;
    fn text_rules(&self) -> TextRules;
    async fn publish(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError>;
}
