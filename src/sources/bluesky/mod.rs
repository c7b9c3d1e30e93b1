//! Bluesky (AT Protocol): mentions from the notifications (reasons `mention`, `reply`,
//! `quote`) and from keyword searches, public replies as `app.bsky.feed.post` records in
//! the thread, private replies as Bluesky chat messages.
//!
//! Every call goes to the configured PDS or entryway as XRPC (`/xrpc/<nsid>`). The
//! session (`accessJwt`, `refreshJwt`) is kept in the store, because `createSession` is
//! limited to 30 logins per 5 minutes and 300 per day: a start reuses it, an expired
//! access token is renewed with `refreshSession`, and only a refused refresh logs in
//! again. Rate limits are read from `ratelimit-*` on every answer.
//!
//! Exactly once: a public reply's record key is a TID derived from the job's queue time
//! and a hash of its idempotency key, and the record is fully determined by the request,
//! so a retry writes the very same record to the very same key with `putRecord` (a no-op
//! when the first try reached the PDS). Chat has no idempotency: a retry first looks
//! for our message in the conversation.
//!
//! With `jetstream = true` the source also offers Jetstream as its push channel
//! (`jetstream`): every public post on the network, matched on the desk.

mod chat;
pub mod jetstream;
mod keywords;
mod poll;
mod profiles;
mod publish;
mod recognise;
mod session;
mod wire;
mod xrpc;

pub use jetstream::Jetstream;
pub use poll::mentions_in_notifications;

use crate::config::BlueskyConfig;
use crate::domain::{text::TextRules, Platform};
use crate::ports::SharedStore;
use crate::ports::{
    Batch, DeliveryError, MentionStream, Published, Publisher, ReplyRequest, Source,
};
use crate::sources::http::{self, Gates};
use session::{session_key, Session};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use thiserror::Error;
use wire::Profile;
use xrpc::Call;

/// Why talking to Bluesky failed outside the outbox (start-up checks). The messages say
/// what to check and never contain the app password or a token.
#[derive(Debug, Error)]
pub enum BlueskyError {
    /// Network trouble, 429 or 5xx: worth trying again later.
    #[error("{0}")]
    Unavailable(String),
    /// The handle or app password was refused.
    #[error("Bluesky refused the login of {handle} at {service}: {said} (check the app password in bluesky.app_password, e.g. BLUESKY_APP_PASSWORD, and the handle in bluesky.handle)")]
    Login {
        handle: String,
        service: String,
        said: String,
    },
    /// Another refusal: the URL or the account needs fixing.
    #[error("{0}")]
    Refused(String),
    #[error("Bluesky sent an unexpected answer for {nsid}: {reason}")]
    Unexpected { nsid: String, reason: String },
    #[error("the Bluesky session cannot be kept in the store: {0}")]
    Store(String),
}

impl BlueskyError {
    pub(super) fn into_delivery(self) -> DeliveryError {
        match self {
            BlueskyError::Unavailable(reason) => DeliveryError::retry(reason),
            BlueskyError::Store(_) => DeliveryError::retry(self.to_string()),
            other => DeliveryError::Permanent {
                reason: other.to_string(),
            },
        }
    }
}

pub struct Bluesky {
    http: reqwest::Client,
    config: BlueskyConfig,
    store: SharedStore,
    session: Mutex<Session>,
    /// One refresh or login at a time (refresh tokens rotate).
    renewing: tokio::sync::Mutex<()>,
    /// Per kind of call (true: writes), no call before this instant: the server said
    /// the budget is spent.
    gates: Gates<bool>,
    /// This source itself, for the stream it hands out (which calls through it).
    this: Weak<Bluesky>,
    /// Made on the first `stream()`, then the same one (its profile cache lives on).
    jetstream: OnceLock<Arc<Jetstream>>,
    /// The profiles the poll looked up for its authors' reach.
    poll_profiles: std::sync::Mutex<profiles::ProfileCache>,
}

impl Bluesky {
    /// Reuse the stored session (renewing it if needed) or log in, and check it with
    /// `getSession`.
    pub async fn connect(
        config: &BlueskyConfig,
        store: SharedStore,
    ) -> Result<Arc<Bluesky>, BlueskyError> {
        let http = http::client().map_err(BlueskyError::Unavailable)?;
        let stored = store
            .state(&session_key(&config.handle))
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))?
            .and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok());
        let had_session = stored.is_some();
        let client = Arc::new_cyclic(|this| Bluesky {
            http,
            config: config.clone(),
            store,
            session: Mutex::new(stored.unwrap_or(Session {
                access_jwt: String::new(),
                refresh_jwt: String::new(),
                did: String::new(),
                handle: config.handle.clone(),
            })),
            renewing: tokio::sync::Mutex::new(()),
            gates: Gates::default(),
            this: this.clone(),
            jetstream: OnceLock::new(),
            poll_profiles: std::sync::Mutex::new(profiles::ProfileCache::new(
                profiles::CACHE_ENTRIES,
            )),
        });
        if had_session {
            tracing::info!(handle = %config.handle, "reusing the stored Bluesky session");
        } else {
            client.login().await?;
        }
        // getSession through the normal path: an expired token is refreshed, a refused
        // refresh logs in again.
        let answer = client
            .call(Call::get("com.atproto.server.getSession", Vec::new()))
            .await
            .map_err(|e| {
                http::failure_at_start(e, BlueskyError::Unavailable, BlueskyError::Refused)
            })?;
        let me: Profile =
            serde_json::from_slice(&answer).map_err(|e| BlueskyError::Unexpected {
                nsid: "com.atproto.server.getSession".into(),
                reason: e.to_string(),
            })?;
        {
            let mut s = client.session.lock().expect("session lock");
            s.did = me.did.clone();
            s.handle = me.handle.clone();
        }
        tracing::info!(handle = %me.handle, did = %me.did, "Bluesky account verified");
        Ok(client)
    }

    fn did(&self) -> String {
        self.session.lock().expect("session lock").did.clone()
    }

    fn handle(&self) -> String {
        self.session.lock().expect("session lock").handle.clone()
    }

    async fn publish_reply(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        if reply.private {
            self.publish_message(reply).await
        } else {
            self.publish_post(reply).await
        }
    }
}

#[async_trait::async_trait]
impl Source for Bluesky {
    fn cursor_key(&self) -> String {
        format!("bluesky:{}:{}", self.config.service_url, self.did())
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        self.poll_once(cursor).await
    }

    /// Jetstream, when `[bluesky] jetstream = true`; its position is kept under this
    /// source's cursor key plus `:jetstream`.
    fn stream(&self) -> Option<Arc<dyn MentionStream>> {
        let config = self.config.jetstream.as_ref()?;
        let stream = self.jetstream.get_or_init(|| {
            Arc::new(Jetstream::new(
                self.this.clone(),
                config.clone(),
                self.config.keywords.clone(),
                &self.cursor_key(),
            ))
        });
        Some(stream.clone())
    }
}

#[async_trait::async_trait]
impl Publisher for Bluesky {
    fn platform(&self) -> Platform {
        Platform::Bluesky
    }

    fn text_rules(&self) -> TextRules {
        TextRules::bluesky()
    }

    async fn publish(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        self.publish_reply(reply).await
    }
}
