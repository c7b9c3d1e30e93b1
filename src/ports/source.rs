//! The social platforms as the desk reaches them: a `Source` yields new mentions after a
//! cursor, a `Publisher` sends an agent's answer back.

use super::DeliveryError;
use crate::domain::{text::TextRules, Mention, Platform, TicketId, Visibility};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

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

    /// The push channel this source offers beside polling, when it is configured to use
    /// one (Mastodon's streaming API, Bluesky's Jetstream, X's filtered stream).
    fn stream(&self) -> Option<Arc<dyn MentionStream>> {
        None
    }
}

/// What a stream hands the desk while it is connected.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Connected and subscribed. The desk now catches up by polling from the source's
    /// cursor, so nothing said while the stream was down is missed; what the stream and
    /// the poll both deliver is absorbed by the store's dedupe keys.
    Connected,
    /// Mentions as they arrived, oldest first (maybe none: a checkpoint), and the
    /// stream's own position after them when it can resume from one (Jetstream's
    /// `time_us`), stored under [`MentionStream::cursor_key`] with the mentions in one
    /// transaction.
    Mentions {
        mentions: Vec<Mention>,
        cursor: Option<String>,
    },
}

/// Why a stream's connection ended. A stream never ends for good by itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    /// The connection dropped, went quiet past the platform's keep-alive interval, or
    /// could not be made for now: connect again after a backoff (`after`: the
    /// platform's own wait, e.g. a 429's).
    #[error("{reason}")]
    Dropped {
        after: Option<Duration>,
        reason: String,
    },
    /// The platform refused the credentials or the subscription: a person must act.
    /// The desk keeps polling (which reports the same refusal to the team) and tries
    /// the stream again much later.
    #[error("{reason}")]
    Refused { reason: String },
    /// This server offers no stream (an older Mastodon, a GoToSocial without it, a tier
    /// of X without the filtered stream): the desk polls at the usual interval instead
    /// and says so in logs and on `/healthz`.
    #[error("{reason}")]
    Unsupported { reason: String },
}

/// A source's push channel.
///
/// Contract: [`MentionStream::run`] connects (from `cursor`, this stream's own position
/// as last stored, when it has one), sends [`StreamEvent::Connected`] once subscribed
/// and before any mention, then forwards what arrives, in order, until the connection
/// ends, and returns why. It notices a connection that went silent (no event and no
/// keep-alive for the platform's documented interval) and returns
/// [`StreamError::Dropped`]. A mention it forwards may also come from the poll or from
/// an earlier connection: the store absorbs duplicates. Dropping the future closes the
/// connection. Nothing in `describe` is secret (no token, no query string with one).
#[async_trait]
pub trait MentionStream: Send + Sync {
    /// For logs and `/healthz`, e.g. `mastodon websocket wss://example.social/api/v1/streaming`.
    fn describe(&self) -> String;
    /// The store cursor key of this stream's own position, when the platform can resume
    /// from one; `None`: the desk relies on the catch-up poll alone.
    fn cursor_key(&self) -> Option<String> {
        None
    }
    /// How often the source is still polled while the stream is up, as reconciliation.
    fn reconcile_every(&self) -> Duration;
    async fn run(&self, cursor: Option<String>, events: mpsc::Sender<StreamEvent>) -> StreamError;
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
