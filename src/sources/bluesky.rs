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

use crate::config::BlueskyConfig;
use crate::domain::{text::TextRules, Author, Mention, Platform, Visibility};
use crate::ports::DeliveryError;
use crate::ports::SharedStore;
use crate::ports::{Batch, Published, Publisher, ReplyRequest, Source};
use crate::wire::hints::{header_wait, HintForm};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// Notifications and search results per page (the lexicons allow 1 to 100).
const PAGE: u32 = 50;
/// A first start reads only this many of the newest (no flood of old mentions).
const FIRST_PAGE: u32 = 20;
/// Pages read per poll and source before giving up on reaching the last position.
const MAX_PAGES: usize = 20;
const POST_COLLECTION: &str = "app.bsky.feed.post";
/// The service id chat calls are proxied to through the PDS.
const CHAT_PROXY: &str = "did:web:api.bsky.chat#bsky_chat";
/// Reasons that make a notification a mention worth a ticket.
const REASONS: [&str; 3] = ["mention", "reply", "quote"];
/// Waits shorter than this are slept through; longer ones are handed to the caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(3);

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
    fn into_delivery(self) -> DeliveryError {
        match self {
            BlueskyError::Unavailable(reason) => DeliveryError::retry(reason),
            BlueskyError::Store(_) => DeliveryError::retry(self.to_string()),
            other => DeliveryError::Permanent {
                reason: other.to_string(),
            },
        }
    }
}

/// A logged-in session, as `createSession`/`refreshSession` return it (the fields we
/// keep). Deliberately not `Debug`: it holds the tokens.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    access_jwt: String,
    refresh_jwt: String,
    did: String,
    handle: String,
}

/// `{"error": "...", "message": "..."}`, the XRPC error body.
#[derive(Debug, Deserialize)]
struct XrpcError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    did: String,
    handle: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
struct StrongRef {
    uri: String,
    cid: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ReplyRefs {
    root: StrongRef,
    parent: StrongRef,
}

/// The `app.bsky.feed.post` record (the parts we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostRecord {
    #[serde(default)]
    text: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    langs: Vec<String>,
    #[serde(default)]
    reply: Option<ReplyRefs>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    uri: String,
    cid: String,
    author: Profile,
    reason: String,
    record: Value,
    indexed_at: String,
}

#[derive(Debug, Deserialize)]
struct NotificationPage {
    #[serde(default)]
    cursor: Option<String>,
    notifications: Vec<Notification>,
}

/// `app.bsky.feed.defs#postView` (the parts we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostView {
    uri: String,
    cid: String,
    author: Profile,
    record: Value,
    indexed_at: String,
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    cursor: Option<String>,
    posts: Vec<PostView>,
}

#[derive(Debug, Deserialize)]
struct WriteOutput {
    uri: String,
}

#[derive(Debug, Deserialize)]
struct ConvoOutput {
    convo: Convo,
}

#[derive(Debug, Deserialize)]
struct Convo {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageView {
    id: String,
    #[serde(default)]
    text: Option<String>,
    sender: MessageSender,
    sent_at: String,
}

#[derive(Debug, Deserialize)]
struct MessageSender {
    did: String,
}

#[derive(Debug, Deserialize)]
struct MessagesPage {
    messages: Vec<Value>,
}

/// What the mention keeps for the reply: the post's CID and its thread root.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ReplyContext {
    cid: String,
    root: StrongRef,
}

/// Where the last poll stopped, per source: the newest `indexedAt` seen. Stored by the
/// watcher together with the mentions.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PollCursor {
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    notifications: Option<DateTime<Utc>>,
    #[serde(rename = "s", default, skip_serializing_if = "BTreeMap::is_empty")]
    search: BTreeMap<String, DateTime<Utc>>,
}

/// No calls of this kind before this instant: the server said the budget is spent.
#[derive(Default)]
struct Gates {
    read: Option<Instant>,
    write: Option<Instant>,
}

pub struct Bluesky {
    http: reqwest::Client,
    config: BlueskyConfig,
    store: SharedStore,
    session: Mutex<Session>,
    /// One refresh or login at a time (refresh tokens rotate).
    renewing: tokio::sync::Mutex<()>,
    gates: Mutex<Gates>,
}

/// One XRPC call.
struct Call<'a> {
    method: Method,
    nsid: &'a str,
    query: Vec<(&'a str, String)>,
    body: Option<Value>,
    /// Proxied by the PDS to the Bluesky chat service.
    chat: bool,
}

impl<'a> Call<'a> {
    fn get(nsid: &'a str, query: Vec<(&'a str, String)>) -> Self {
        Call {
            method: Method::GET,
            nsid,
            query,
            body: None,
            chat: false,
        }
    }

    fn post(nsid: &'a str, body: Value) -> Self {
        Call {
            method: Method::POST,
            nsid,
            query: Vec::new(),
            body: Some(body),
            chat: false,
        }
    }

    fn chat(mut self) -> Self {
        self.chat = true;
        self
    }
}

/// A raw answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn xrpc_error(&self) -> Option<XrpcError> {
        serde_json::from_slice::<XrpcError>(&self.body)
            .ok()
            .filter(|e| !e.error.is_empty())
    }

    /// The access token is stale: renew the session and try again.
    fn token_expired(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED
            || (self.status == StatusCode::BAD_REQUEST
                && self.xrpc_error().is_some_and(|e| {
                    e.error == "ExpiredToken"
                        || (e.error == "InvalidToken"
                            && !e.message.as_deref().unwrap_or_default().contains("scope"))
                }))
    }

    /// What the server said, as `Error: message`.
    fn said(&self) -> String {
        match self.xrpc_error() {
            Some(XrpcError {
                error,
                message: Some(m),
            }) if !m.is_empty() && m != error => format!("{error}: {m}"),
            Some(e) => e.error,
            None => String::from_utf8_lossy(&self.body)
                .chars()
                .take(200)
                .collect(),
        }
    }
}

fn session_key(handle: &str) -> String {
    format!("bluesky:session:{handle}")
}

impl Bluesky {
    /// Reuse the stored session (renewing it if needed) or log in, and check it with
    /// `getSession`.
    pub async fn connect(
        config: &BlueskyConfig,
        store: SharedStore,
    ) -> Result<Bluesky, BlueskyError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mentionbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BlueskyError::Unavailable(format!("cannot build an HTTP client: {e}")))?;
        let stored = store
            .state(&session_key(&config.handle))
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))?
            .and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok());
        let had_session = stored.is_some();
        let client = Bluesky {
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
            gates: Mutex::new(Gates::default()),
        };
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
            .map_err(|e| match e {
                DeliveryError::Retry { reason, .. } => BlueskyError::Unavailable(reason),
                DeliveryError::Permanent { reason } | DeliveryError::Gone { reason } => {
                    BlueskyError::Refused(reason)
                }
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

    fn url(&self, nsid: &str) -> String {
        format!("{}/xrpc/{nsid}", self.config.service_url)
    }

    async fn persist(&self, session: &Session) -> Result<(), BlueskyError> {
        let bytes = serde_json::to_vec(session).expect("a session always serializes");
        self.store
            .set_state(&session_key(&self.config.handle), &bytes)
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))
    }

    async fn save(&self, session: Session) -> Result<(), BlueskyError> {
        self.persist(&session).await?;
        *self.session.lock().expect("session lock") = session;
        self.store
            .flush()
            .await
            .map_err(|e| BlueskyError::Store(e.to_string()))
    }

    /// `createSession` with the app password. Limited by Bluesky: only when there is no
    /// session to reuse or renew.
    async fn login(&self) -> Result<(), BlueskyError> {
        let nsid = "com.atproto.server.createSession";
        let body = json!({
            "identifier": self.config.handle,
            "password": self.config.app_password.expose(),
        });
        tracing::info!(handle = %self.config.handle, "logging in to Bluesky (createSession)");
        let answer = self
            .send(&Call::post(nsid, body), None)
            .await
            .map_err(|e| BlueskyError::Unavailable(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(self.login_failure(nsid, &answer));
        }
        let session: Session =
            serde_json::from_slice(&answer.body).map_err(|e| BlueskyError::Unexpected {
                nsid: nsid.into(),
                reason: e.to_string(),
            })?;
        self.save(session).await
    }

    fn login_failure(&self, nsid: &str, answer: &Answer) -> BlueskyError {
        let said = answer.said();
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let wait = reset_wait(&answer.headers)
                .map(|d| format!("; try again in {} s", d.as_secs().max(1)))
                .unwrap_or_default();
            return BlueskyError::Unavailable(format!(
                "Bluesky limits logins (createSession: 30 per 5 minutes, 300 per day) and answered {said}{wait}"
            ));
        }
        if answer.status.is_server_error() {
            return BlueskyError::Unavailable(format!(
                "Bluesky answered {} for {}: {said}",
                answer.status.as_u16(),
                self.url(nsid)
            ));
        }
        if answer.status == StatusCode::UNAUTHORIZED
            || matches!(
                answer.xrpc_error().map(|e| e.error).as_deref(),
                Some("AuthenticationRequired" | "AuthFactorTokenRequired" | "AccountTakedown")
            )
        {
            return BlueskyError::Login {
                handle: self.config.handle.clone(),
                service: self.config.service_url.clone(),
                said,
            };
        }
        BlueskyError::Refused(format!(
            "Bluesky answered {} for {}: {said} (check bluesky.service_url and bluesky.handle)",
            answer.status.as_u16(),
            self.url(nsid)
        ))
    }

    /// Renew the session after `stale` (the access token that was refused): refresh,
    /// and only if the refresh is refused, log in again.
    async fn renew(&self, stale: &str) -> Result<(), BlueskyError> {
        let _one_at_a_time = self.renewing.lock().await;
        let current = self.session.lock().expect("session lock").clone();
        if current.access_jwt != stale && !current.access_jwt.is_empty() {
            return Ok(()); // someone else renewed it meanwhile
        }
        if !current.refresh_jwt.is_empty() {
            let nsid = "com.atproto.server.refreshSession";
            let call = Call {
                method: Method::POST,
                nsid,
                query: Vec::new(),
                body: None,
                chat: false,
            };
            let answer = self
                .send(&call, Some(&current.refresh_jwt))
                .await
                .map_err(|e| BlueskyError::Unavailable(e.to_string()))?;
            if answer.status.is_success() {
                let session: Session =
                    serde_json::from_slice(&answer.body).map_err(|e| BlueskyError::Unexpected {
                        nsid: nsid.into(),
                        reason: e.to_string(),
                    })?;
                tracing::info!(handle = %session.handle, "Bluesky session refreshed");
                return self.save(session).await;
            }
            if answer.status == StatusCode::TOO_MANY_REQUESTS || answer.status.is_server_error() {
                return Err(BlueskyError::Unavailable(format!(
                    "Bluesky answered {} for {}: {}",
                    answer.status.as_u16(),
                    self.url(nsid),
                    answer.said()
                )));
            }
            tracing::warn!(said = %answer.said(), "Bluesky refused to refresh the session; logging in again");
        }
        self.login().await
    }

    /// Wait for the rate-limit gate of this kind of call, or give the wait back.
    async fn wait_for_budget(&self, write: bool) -> Result<(), DeliveryError> {
        let until = {
            let g = self.gates.lock().expect("gates lock");
            if write {
                g.write
            } else {
                g.read
            }
        };
        let Some(t) = until.filter(|t| *t > Instant::now()) else {
            return Ok(());
        };
        let wait = t - Instant::now();
        if wait > MAX_INLINE_WAIT {
            return Err(DeliveryError::Retry {
                after: Some(wait),
                reason: format!(
                    "Bluesky rate limit reached; it resets in {} s",
                    wait.as_secs().max(1)
                ),
            });
        }
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "Bluesky rate limit reached, waiting for reset"
        );
        tokio::time::sleep_until(t).await;
        Ok(())
    }

    /// Remember when the server's request budget is spent.
    fn note_limits(&self, write: bool, headers: &HeaderMap) {
        let remaining = header_num(headers, "ratelimit-remaining");
        if remaining.is_some_and(|r| r <= 0) {
            if let Some(wait) = reset_wait(headers) {
                let mut g = self.gates.lock().expect("gates lock");
                let at = Some(Instant::now() + wait);
                if write {
                    g.write = at;
                } else {
                    g.read = at;
                }
            }
        }
    }

    /// Send one call with this bearer token (None: no Authorization header).
    async fn send(&self, call: &Call<'_>, bearer: Option<&str>) -> Result<Answer, DeliveryError> {
        let write = call.method == Method::POST;
        self.wait_for_budget(write).await?;
        let mut url = self.url(call.nsid);
        if !call.query.is_empty() {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &call.query {
                q.append_pair(k, v);
            }
            url = format!("{url}?{}", q.finish());
        }
        let mut req = self.http.request(call.method.clone(), &url);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if call.chat {
            req = req.header("atproto-proxy", CHAT_PROXY);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            DeliveryError::retry(format!(
                "Bluesky at {} could not be reached ({}): {}",
                self.config.service_url,
                call.nsid,
                without_url(&e)
            ))
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        // Session calls have their own, separate budgets (logins: 30 per 5 minutes).
        if !call.nsid.starts_with("com.atproto.server.") {
            self.note_limits(write, &headers);
        }
        let body = resp.bytes().await.map_err(|e| {
            DeliveryError::retry(format!(
                "Bluesky answer for {} was cut off: {}",
                call.nsid,
                without_url(&e)
            ))
        })?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    /// An authenticated call: renews the session once if the token is stale, and turns
    /// a refusal into the right kind of failure.
    async fn call(&self, call: Call<'_>) -> Result<Vec<u8>, DeliveryError> {
        let token = self
            .session
            .lock()
            .expect("session lock")
            .access_jwt
            .clone();
        let mut answer = self.send(&call, Some(&token)).await?;
        if answer.token_expired() {
            tracing::info!(nsid = call.nsid, said = %answer.said(), "Bluesky access token refused; renewing the session");
            self.renew(&token)
                .await
                .map_err(BlueskyError::into_delivery)?;
            let token = self
                .session
                .lock()
                .expect("session lock")
                .access_jwt
                .clone();
            answer = self.send(&call, Some(&token)).await?;
        }
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(self.failure(call.nsid, &answer))
        }
    }

    async fn call_json<T: for<'de> Deserialize<'de>>(
        &self,
        call: Call<'_>,
    ) -> Result<T, DeliveryError> {
        let nsid = call.nsid.to_string();
        let body = self.call(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "Bluesky sent an answer we cannot read for {nsid}: {e}"
            ))
        })
    }

    /// Turn a non-success answer into the right kind of failure, with the server's words.
    fn failure(&self, nsid: &str, answer: &Answer) -> DeliveryError {
        let said = answer.said();
        let status = answer.status;
        let transient = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
        if transient {
            let after = header_wait(
                &answer.headers,
                "retry-after",
                HintForm::RetryAfter,
                Utc::now(),
            )
            .or_else(|| reset_wait(&answer.headers).filter(|_| status.as_u16() == 429));
            return DeliveryError::Retry {
                after,
                reason: format!("Bluesky answered {} for {nsid}: {said}", status.as_u16()),
            };
        }
        let error = answer.xrpc_error();
        let scope = error
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .is_some_and(|m| m.contains("scope"));
        let hint = match error.map(|e| e.error).as_deref() {
            Some("InvalidToken") if scope => {
                " (the app password in bluesky.app_password needs access to direct messages)"
            }
            Some("ExpiredToken" | "InvalidToken" | "AuthenticationRequired") => {
                " (check the app password in bluesky.app_password)"
            }
            _ if status == StatusCode::UNAUTHORIZED => {
                " (check the app password in bluesky.app_password)"
            }
            _ if matches!(status.as_u16(), 404 | 501) && nsid.starts_with("chat.") => {
                " (the PDS did not forward the chat call; check bluesky.service_url)"
            }
            _ => "",
        };
        DeliveryError::Permanent {
            reason: format!("Bluesky refused {nsid} ({}): {said}{hint}", status.as_u16()),
        }
    }

    // ----- polling -------------------------------------------------------------------

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

    async fn poll_once(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
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
        Ok(Batch {
            mentions,
            cursor: Some(serde_json::to_string(&next).expect("a cursor always serializes")),
            more: false,
        })
    }

    // ----- publishing ----------------------------------------------------------------

    async fn publish_post(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        let context: ReplyContext = reply
            .reply_context
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| DeliveryError::Permanent {
                reason: "this Bluesky mention carries no thread data (post CID and root); open it on Bluesky to answer there".into(),
            })?;
        let record = reply_record(reply, &context);
        let rkey = tid(
            reply.queued_at.timestamp_micros().max(0) as u64,
            clock_id(&reply.idempotency_key),
        );
        let did = self.did();
        // First try: createRecord with our own key, which refuses to overwrite anything.
        // A retry (the first try may have reached the PDS): putRecord of the identical
        // record at the same key, a no-op if it is there already.
        let (nsid, body) = if reply.maybe_sent {
            (
                "com.atproto.repo.putRecord",
                json!({"repo": did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}),
            )
        } else {
            (
                "com.atproto.repo.createRecord",
                json!({"repo": did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}),
            )
        };
        tracing::debug!(ticket = %reply.ticket, %rkey, nsid, "writing the Bluesky reply");
        let out: WriteOutput = self.call_json(Call::post(nsid, body)).await?;
        Ok(Published {
            url: format!(
                "https://bsky.app/profile/{}/post/{}",
                self.handle(),
                rkey_of(&out.uri).unwrap_or(&rkey)
            ),
            remote_id: out.uri,
        })
    }

    /// A retry may follow a send whose answer we never saw: our message may be there.
    async fn find_our_message(
        &self,
        convo: &str,
        reply: &ReplyRequest,
    ) -> Result<Option<String>, DeliveryError> {
        let page: MessagesPage = self
            .call_json(
                Call::get(
                    "chat.bsky.convo.getMessages",
                    vec![("convoId", convo.to_string()), ("limit", "100".into())],
                )
                .chat(),
            )
            .await?;
        let me = self.did();
        let earliest = reply.queued_at - chrono::Duration::minutes(2);
        Ok(page
            .messages
            .into_iter()
            .filter_map(|m| serde_json::from_value::<MessageView>(m).ok())
            .find(|m| {
                m.sender.did == me
                    && m.text.as_deref() == Some(reply.text.as_str())
                    && parse_time(&m.sent_at).is_some_and(|t| t >= earliest)
                    && !reply.earlier_replies.contains(&m.id)
            })
            .map(|m| m.id))
    }

    async fn publish_message(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        let member = reply
            .author_id
            .clone()
            .filter(|d| d.starts_with("did:"))
            .ok_or_else(|| DeliveryError::Permanent {
                reason: format!(
                    "no Bluesky DID is known for @{}, so no chat message can be sent",
                    reply.author_handle
                ),
            })?;
        let convo: ConvoOutput = self
            .call_json(
                Call::get(
                    "chat.bsky.convo.getConvoForMembers",
                    vec![("members", member)],
                )
                .chat(),
            )
            .await?;
        let convo = convo.convo.id;
        let url = format!("https://bsky.app/messages/{convo}");
        if reply.maybe_sent {
            if let Some(id) = self.find_our_message(&convo, reply).await? {
                tracing::info!(ticket = %reply.ticket, message = %id, "reply was already published before the restart; not sending again");
                return Ok(Published { remote_id: id, url });
            }
        }
        let mut message = json!({"text": reply.text});
        let facets = link_facets(&reply.text);
        if !facets.is_empty() {
            message["facets"] = Value::Array(facets);
        }
        let sent: MessageView = self
            .call_json(
                Call::post(
                    "chat.bsky.convo.sendMessage",
                    json!({"convoId": convo, "message": message}),
                )
                .chat(),
            )
            .await?;
        Ok(Published {
            remote_id: sent.id,
            url,
        })
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

// ----- pure helpers (unit tested) ------------------------------------------------------

fn header_num(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
}

/// How long until `ratelimit-reset` (epoch seconds), capped at a day.
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    header_wait(
        headers,
        "ratelimit-reset",
        HintForm::EpochSeconds,
        Utc::now(),
    )
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The record key of an at-uri (`at://did/collection/rkey`).
fn rkey_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("at://")?
        .split('/')
        .nth(2)
        .filter(|k| !k.is_empty())
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

/// A post record as a mention; None when the record is not a post we can read.
fn record_mention(
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
    }
}

/// The whole reply record, determined by the request alone (so a retry writes the
/// identical record).
fn reply_record(reply: &ReplyRequest, context: &ReplyContext) -> Value {
    let mut facets = Vec::new();
    if let Some(did) = reply.author_id.as_deref().filter(|d| d.starts_with("did:")) {
        if let Some(f) = mention_facet(&reply.text, &reply.author_handle, did) {
            facets.push(f);
        }
    }
    facets.extend(link_facets(&reply.text));
    let mut record = json!({
        "$type": POST_COLLECTION,
        "text": reply.text,
        "createdAt": rfc3339_micros(reply.queued_at),
        "reply": {
            "root": {"uri": context.root.uri, "cid": context.root.cid},
            "parent": {"uri": reply.in_reply_to, "cid": context.cid},
        },
    });
    if !facets.is_empty() {
        record["facets"] = Value::Array(facets);
    }
    record
}

fn rfc3339_micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The mention facet for a leading `@handle` (UTF-8 byte offsets).
fn mention_facet(text: &str, handle: &str, did: &str) -> Option<Value> {
    let tag = format!("@{handle}");
    let rest = text.strip_prefix(&tag)?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(json!({
        "index": {"byteStart": 0, "byteEnd": tag.len()},
        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}],
    }))
}

/// Link facets for every `http(s)://` URL (Bluesky shows links only with a facet).
fn link_facets(text: &str) -> Vec<Value> {
    let mut facets = Vec::new();
    let mut offset = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        let start = offset;
        offset += word.len();
        let word = word.trim_end_matches(char::is_whitespace);
        if !(word.starts_with("https://") || word.starts_with("http://")) {
            continue;
        }
        let url = word.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
        if url.len() <= "https://".len() {
            continue;
        }
        facets.push(json!({
            "index": {"byteStart": start, "byteEnd": start + url.len()},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
        }));
    }
    facets
}

const S32: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A TID record key: 53 bits of microseconds since the epoch and a 10-bit clock id,
/// as 13 base32-sortable characters.
fn tid(micros: u64, clock_id: u16) -> String {
    let v: u64 = ((micros & ((1u64 << 53) - 1)) << 10) | u64::from(clock_id & 0x3ff);
    (0..13)
        .map(|i| S32[((v >> (60 - 5 * i)) & 0x1f) as usize] as char)
        .collect()
}

/// The TID clock id of a reply: stable for its idempotency key.
fn clock_id(idempotency_key: &str) -> u16 {
    let h = Sha256::digest(idempotency_key.as_bytes());
    u16::from_be_bytes([h[0], h[1]]) & 0x3ff
}

/// reqwest errors print the URL; keep messages short and stable.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "connection failed".into();
    }
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TicketId;

    fn untid(s: &str) -> u64 {
        s.bytes().fold(0u64, |acc, b| {
            (acc << 5) | S32.iter().position(|c| *c == b).unwrap() as u64
        })
    }

    #[test]
    fn tids_are_13_sortable_chars_with_time_and_clock_id() {
        let t = tid(1_700_000_000_123_456, 0x2a5);
        assert_eq!(t.len(), 13);
        assert!(matches!(t.as_bytes()[0], b'2'..=b'9' | b'a'..=b'j'), "{t}");
        let v = untid(&t);
        assert_eq!(v >> 63, 0);
        assert_eq!(v >> 10, 1_700_000_000_123_456);
        assert_eq!(v & 0x3ff, 0x2a5);
        // Later means greater, as strings too.
        assert!(tid(1_700_000_000_123_457, 0) > t);
        // The spec's example TID decodes to a plausible 2023 timestamp.
        let example = untid("3jzfcijpj2z2a") >> 10;
        let when = DateTime::from_timestamp_micros(example as i64).unwrap();
        assert_eq!(when.format("%Y").to_string(), "2023");
        // Stable per idempotency key, within 10 bits.
        assert_eq!(clock_id("k-1"), clock_id("k-1"));
        assert!(clock_id("k-1") < 1024);
    }

    #[test]
    fn facets_use_utf8_byte_offsets() {
        let text = "@zoë.test héllo see https://example.com/a?b=1. ok";
        let m = mention_facet(text, "zoë.test", "did:plc:abc").unwrap();
        assert_eq!(m["index"]["byteStart"], 0);
        assert_eq!(m["index"]["byteEnd"], "@zoë.test".len());
        assert_eq!(m["index"]["byteEnd"], 10);
        assert_eq!(m["features"][0]["$type"], "app.bsky.richtext.facet#mention");
        assert_eq!(m["features"][0]["did"], "did:plc:abc");
        assert!(mention_facet("@zoë.testing hi", "zoë.test", "did:plc:abc").is_none());
        let links = link_facets(text);
        assert_eq!(links.len(), 1);
        let start = text.find("https://").unwrap();
        assert_eq!(links[0]["index"]["byteStart"], start);
        assert_eq!(
            links[0]["index"]["byteEnd"],
            start + "https://example.com/a?b=1".len()
        );
        assert_eq!(links[0]["features"][0]["uri"], "https://example.com/a?b=1");
    }

    fn profile() -> Profile {
        Profile {
            did: "did:plc:alice".into(),
            handle: "alice.test".into(),
            display_name: Some("Alice".into()),
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
