//! Ports to the social platforms: a `Source` yields new mentions after a cursor, a
//! `Publisher` sends an agent's reply back. One module per platform implements both;
//! nothing else in the program knows a platform's wire format.

pub mod bluesky;
pub mod mastodon;
pub mod webhook;
pub mod x;

use crate::delivery::DeliveryError;
use crate::domain::{text::TextRules, Mention, Platform, TicketId, Visibility};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One batch of mentions, oldest first, and the cursor that follows the batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub mentions: Vec<Mention>,
    pub cursor: Option<String>,
    /// More are waiting right now: poll again without pausing.
    pub more: bool,
}

pub trait Source: Send + Sync {
    /// Stable name of this source's cursor in the store.
    fn cursor_key(&self) -> String;
    fn poll_interval(&self) -> Duration;
    fn poll<'a>(&'a self, cursor: Option<&'a str>) -> BoxFuture<'a, Result<Batch, DeliveryError>>;
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

pub trait Publisher: Send + Sync {
    fn platform(&self) -> Platform;
    fn text_rules(&self) -> TextRules;
    fn publish<'a>(
        &'a self,
        reply: &'a ReplyRequest,
    ) -> BoxFuture<'a, Result<Published, DeliveryError>>;
}

/// The social platforms the config names, connected and checked.
#[derive(Default)]
pub struct Platforms {
    pub sources: Vec<Arc<dyn Source>>,
    pub publishers: Vec<Arc<dyn Publisher>>,
}

#[derive(Debug, Error)]
#[error("{platform} credentials check failed: {message}")]
pub struct ConnectError {
    pub platform: &'static str,
    pub message: String,
}

/// Connect to every configured platform once (checking its credentials), in a fixed
/// order so a failure names the first platform that is wrong.
pub async fn connect_all(
    config: &crate::config::Config,
    store: &crate::store::Store,
) -> Result<Platforms, ConnectError> {
    let mut platforms = Platforms::default();
    if let Some(c) = &config.mastodon {
        let m = Arc::new(
            mastodon::Mastodon::connect(c)
                .await
                .map_err(|e| ConnectError {
                    platform: "Mastodon",
                    message: e.to_string(),
                })?,
        );
        platforms.sources.push(m.clone());
        platforms.publishers.push(m);
    }
    if let Some(c) = &config.bluesky {
        let b = Arc::new(
            bluesky::Bluesky::connect(c, store.clone())
                .await
                .map_err(|e| ConnectError {
                    platform: "Bluesky",
                    message: e.to_string(),
                })?,
        );
        platforms.sources.push(b.clone());
        platforms.publishers.push(b);
    }
    if let Some(c) = &config.x {
        let x = Arc::new(
            x::X::connect(c, store.clone())
                .await
                .map_err(|e| ConnectError {
                    platform: "X",
                    message: e.to_string(),
                })?,
        );
        platforms.sources.push(x.clone());
        platforms.publishers.push(x);
    }
    Ok(platforms)
}
