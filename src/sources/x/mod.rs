//! X (API v2): mentions from the user mention timeline and keyword searches, replies as
//! posts in the thread or as direct messages.
//!
//! Every X request costs money, so each one is counted per UTC day in the store
//! (`x:budget:<date>`); polling stops for the day when `x.daily_request_budget` is spent
//! (replies still go out). Post ids are snowflakes: numeric strings that grow with time,
//! so comparing them as integers is correct here (and only here).
//!
//! X has no idempotency for posts or messages: a retry whose first try may have reached
//! X looks among our own recent posts (or the conversation's messages) first, and a
//! "duplicate content" refusal means an earlier try did post, so we look again.
//!
//! With `x.stream = true` mentions also arrive over the filtered stream (`stream.rs`),
//! authorised with the app's Bearer Token; polling stays, as reconciliation.
//!
//! Auth is OAuth 1.0a user context (HMAC-SHA1, RFC 5849, signed here with `hmac` and
//! `sha1`) or OAuth 2.0 user context from a refresh token. X rotates refresh tokens on
//! every use, so the newest one is stored (`x:oauth2:<user id>`) and flushed at once.

mod budget;
mod oauth1;
mod oauth2;
mod poll;
mod publish;
mod request;
mod stream;
mod wire;

pub use budget::spent_today;
pub use poll::mentions_in_page;
pub use stream::mentions_in_stream;

use crate::config::{Secret, XConfig, XCredentials};
use crate::domain::{text::TextRules, Platform};
use crate::ports::SharedStore;
use crate::ports::{
    Batch, DeliveryError, MentionStream, Published, Publisher, ReplyRequest, Source,
};
use crate::sources::http::{self, Gates};
use budget::Budget;
use oauth2::StoredTokens;
use request::Endpoint;
use std::sync::Arc;
use std::time::Duration;
use stream::FilteredStream;
use thiserror::Error;
use wire::{One, User};

/// Why talking to X failed at start-up. The messages say what to check and never
/// contain a secret.
#[derive(Debug, Error)]
pub enum XError {
    /// Network trouble, 429 or 5xx: worth trying again later.
    #[error("{0}")]
    Unavailable(String),
    /// A 4xx: the credentials, the user id or the app's access need fixing.
    #[error("{0}")]
    Refused(String),
    #[error("X sent an unexpected answer for {url}: {reason}")]
    Unexpected { url: String, reason: String },
    #[error("cannot keep X state in the store: {0}")]
    Store(String),
}

impl From<DeliveryError> for XError {
    fn from(e: DeliveryError) -> Self {
        http::failure_at_start(e, XError::Unavailable, XError::Refused)
    }
}

/// How requests are authorised: signed (OAuth 1.0a) or with a bearer token (OAuth 2.0).
enum Auth {
    Oauth1 {
        consumer_key: Secret,
        consumer_secret: Secret,
        token: Secret,
        token_secret: Secret,
    },
    Oauth2 {
        client_id: String,
        client_secret: Option<Secret>,
        session: tokio::sync::Mutex<StoredTokens>,
    },
}

pub struct X {
    http: reqwest::Client,
    base: String,
    config: XConfig,
    store: SharedStore,
    auth: Auth,
    me: User,
    /// Shared with the filtered stream: its requests spend the same budget.
    budget: Arc<Budget>,
    /// Per endpoint: no request before this instant (X said its window is spent).
    gates: Gates<Endpoint>,
    /// `x.stream = true`: the filtered stream, built once the account is verified.
    stream: Option<Arc<FilteredStream>>,
}

impl X {
    /// Check the credentials (`GET /2/users/me`) and that they belong to `x.user_id`.
    pub async fn connect(config: &XConfig, store: SharedStore) -> Result<X, XError> {
        let http = http::client().map_err(XError::Unavailable)?;
        let auth = match &config.credentials {
            XCredentials::Oauth1 {
                consumer_key,
                consumer_secret,
                access_token,
                access_token_secret,
            } => Auth::Oauth1 {
                consumer_key: consumer_key.clone(),
                consumer_secret: consumer_secret.clone(),
                token: access_token.clone(),
                token_secret: access_token_secret.clone(),
            },
            XCredentials::Oauth2 {
                client_id,
                client_secret,
                refresh_token,
            } => Auth::Oauth2 {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                session: tokio::sync::Mutex::new(
                    oauth2::starting_session(store.as_ref(), config, refresh_token).await?,
                ),
            },
        };
        let budget = Arc::new(Budget::open(store.clone(), config.daily_request_budget).await);
        let mut client = X {
            http,
            base: config.api_url.clone(),
            config: config.clone(),
            store,
            auth,
            me: User {
                id: String::new(),
                name: String::new(),
                username: String::new(),
                public_metrics: None,
            },
            budget,
            gates: Gates::default(),
            stream: None,
        };
        let me: One<User> = client
            .get_json(Endpoint::Me, "/2/users/me".into(), vec![])
            .await?;
        if me.data.id != config.user_id {
            return Err(XError::Refused(format!(
                "the X credentials belong to @{} (user id {}), not to x.user_id {}: use that \
                 account's tokens or fix x.user_id",
                me.data.username, me.data.id, config.user_id
            )));
        }
        client.me = me.data;
        if let Some(stream) = &config.stream {
            client.stream = Some(Arc::new(FilteredStream::new(
                &client.base,
                &client.me,
                &config.keywords,
                stream,
                client.budget.clone(),
            )?));
        }
        tracing::info!(
            account = %client.me.username,
            user_id = %client.me.id,
            auth = if matches!(client.auth, Auth::Oauth1 { .. }) { "oauth1" } else { "oauth2" },
            "X account verified"
        );
        client.budget.log(true).await;
        Ok(client)
    }

    pub fn username(&self) -> &str {
        &self.me.username
    }
}

#[async_trait::async_trait]
impl Source for X {
    fn cursor_key(&self) -> String {
        format!("x:{}", self.config.user_id)
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    async fn poll(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        // Never poll faster than configured, not even after a failure: every request
        // costs money.
        self.poll_once(cursor).await.map_err(|e| match e {
            DeliveryError::Retry { after, reason } => DeliveryError::Retry {
                after: Some(after.unwrap_or_default().max(self.config.poll_interval)),
                reason,
            },
            permanent => permanent,
        })
    }

    fn stream(&self) -> Option<Arc<dyn MentionStream>> {
        self.stream.clone().map(|s| s as Arc<dyn MentionStream>)
    }
}

#[async_trait::async_trait]
impl Publisher for X {
    fn platform(&self) -> Platform {
        Platform::X
    }

    fn text_rules(&self) -> TextRules {
        TextRules::x()
    }

    async fn publish(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        if reply.private {
            self.send_dm(reply).await
        } else {
            self.post_reply(reply).await
        }
    }
}

/// A client that never connected, for the unit tests of the parts.
#[cfg(test)]
fn test_client() -> X {
    let store: crate::ports::SharedStore = Arc::new(crate::store::SledStore::temporary().unwrap());
    X {
        http: reqwest::Client::new(),
        base: "http://127.0.0.1:9".into(),
        config: XConfig {
            api_url: "http://127.0.0.1:9".into(),
            user_id: "1500000000000000001".into(),
            credentials: XCredentials::Oauth2 {
                client_id: "c".into(),
                client_secret: None,
                refresh_token: Secret::default(),
            },
            poll_interval: Duration::from_secs(120),
            keywords: vec![],
            daily_request_budget: 10,
            stream: None,
        },
        store: store.clone(),
        auth: Auth::Oauth1 {
            consumer_key: Secret::default(),
            consumer_secret: Secret::default(),
            token: Secret::default(),
            token_secret: Secret::default(),
        },
        me: User {
            id: "1500000000000000001".into(),
            name: "Brand".into(),
            username: "brand".into(),
            public_metrics: None,
        },
        budget: Arc::new(Budget::counted(
            store,
            10,
            chrono::Utc::now().date_naive(),
            0,
        )),
        gates: Gates::default(),
        stream: None,
    }
}
