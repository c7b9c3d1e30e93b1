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
//! Auth is OAuth 1.0a user context (HMAC-SHA1, RFC 5849, signed here with `hmac` and
//! `sha1`) or OAuth 2.0 user context from a refresh token. X rotates refresh tokens on
//! every use, so the newest one is stored (`x:oauth2:<user id>`) and flushed at once.

use crate::config::{Secret, XConfig, XCredentials};
use crate::domain::{text::TextRules, Author, Mention, Platform, Visibility};
use crate::ports::DeliveryError;
use crate::ports::{Batch, Published, Publisher, ReplyRequest, Source};
use crate::ports::{SharedStore, Store};
use crate::wire::hints::{header_wait, later, HintForm};
use crate::wire::request_path::{self, IdShape};
use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// Page size of the mention timeline and searches (X's maximum).
const PAGE: u32 = 100;
/// Newest mentions taken on a first start, so a new install does not flood the channel.
const FIRST_PAGE: u32 = 20;
/// Pages read in one poll at most (X serves at most 800 mentions anyway).
const MAX_PAGES: usize = 8;
/// Our recent posts searched for a reply that may already exist.
const OWN_RECENT: u32 = 20;
/// X's epoch for snowflake ids (2010-11-04T01:42:54.657Z).
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;
/// How often the day's request count is logged at info level (besides when it runs out).
const BUDGET_LOG_EVERY: Duration = Duration::from_secs(15 * 60);
const TWEET_FIELDS: &str =
    "created_at,lang,conversation_id,referenced_tweets,in_reply_to_user_id,author_id,note_tweet";

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
        match e {
            DeliveryError::Retry { reason, .. } => XError::Unavailable(reason),
            DeliveryError::Permanent { reason } | DeliveryError::Gone { reason } => {
                XError::Refused(reason)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    username: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Referenced {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Debug, Clone, Deserialize)]
struct NoteTweet {
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Tweet {
    id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    author_id: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    referenced_tweets: Vec<Referenced>,
    #[serde(default)]
    note_tweet: Option<NoteTweet>,
}

impl Tweet {
    fn replied_to(&self) -> Option<&str> {
        self.referenced_tweets
            .iter()
            .find(|r| r.kind == "replied_to")
            .map(|r| r.id.as_str())
    }
}

#[derive(Debug, Default, Deserialize)]
struct Includes {
    #[serde(default)]
    users: Vec<User>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Deserialize)]
struct One<T> {
    data: T,
}

#[derive(Debug, Deserialize)]
struct DmEvent {
    id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    sender_id: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct DmCreated {
    dm_event_id: String,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// What we keep of an OAuth 2.0 session in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTokens {
    refresh_token: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    /// SHA-256 of the configured refresh token this session descends from: a new token
    /// in the config (the app was authorised again) wins over the stored one.
    origin: String,
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

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

struct Budget {
    day: NaiveDate,
    used: u32,
    last_logged: Option<Instant>,
}

/// Which rate limit an endpoint belongs to (X limits each endpoint on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    Me,
    Mentions,
    Search,
    Timeline,
    CreateTweet,
    SendDm,
    DmEvents,
    Token,
}

pub struct X {
    http: reqwest::Client,
    base: String,
    config: XConfig,
    store: SharedStore,
    auth: Auth,
    me: User,
    budget: Mutex<Budget>,
    /// Per endpoint: no request before this instant (X said its window is spent).
    gates: Mutex<HashMap<Endpoint, (Instant, DateTime<Utc>)>>,
}

/// Posts and their authors gathered by one poll.
#[derive(Default)]
struct Found {
    tweets: Vec<Tweet>,
    users: HashMap<String, User>,
}

/// A prepared request: the query is already encoded the way it is signed.
struct Call<'a> {
    method: Method,
    endpoint: Endpoint,
    path: String,
    query: Vec<(&'a str, String)>,
    json: Option<Value>,
}

impl X {
    /// Check the credentials (`GET /2/users/me`) and that they belong to `x.user_id`.
    pub async fn connect(config: &XConfig, store: SharedStore) -> Result<X, XError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mentionbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| XError::Unavailable(format!("cannot build an HTTP client: {e}")))?;
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
            } => {
                let origin = fingerprint(refresh_token.expose());
                let stored = store
                    .state(&oauth2_key(&config.user_id))
                    .await
                    .map_err(|e| XError::Store(e.to_string()))?
                    .and_then(|b| serde_json::from_slice::<StoredTokens>(&b).ok())
                    .filter(|s| s.origin == origin);
                let session = match stored {
                    Some(s) => {
                        tracing::info!("X OAuth 2.0: using the stored (rotated) refresh token");
                        s
                    }
                    None => StoredTokens {
                        refresh_token: refresh_token.expose().to_string(),
                        access_token: None,
                        expires_at: None,
                        origin,
                    },
                };
                Auth::Oauth2 {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    session: tokio::sync::Mutex::new(session),
                }
            }
        };
        let today = Utc::now().date_naive();
        let used = read_count(store.as_ref(), today).await;
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
            },
            budget: Mutex::new(Budget {
                day: today,
                used,
                last_logged: None,
            }),
            gates: Mutex::new(HashMap::new()),
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
        tracing::info!(
            account = %client.me.username,
            user_id = %client.me.id,
            auth = if matches!(client.auth, Auth::Oauth1 { .. }) { "oauth1" } else { "oauth2" },
            "X account verified"
        );
        client.log_budget(true).await;
        Ok(client)
    }

    pub fn username(&self) -> &str {
        &self.me.username
    }

    // -- budget --------------------------------------------------------------------------

    /// Count one request against today's budget; returns (used, budget).
    async fn count_request(&self) -> (u32, u32) {
        let today = Utc::now().date_naive();
        self.roll_over(today).await;
        let used = {
            let mut b = self.budget.lock().expect("budget lock");
            b.used = b.used.saturating_add(1);
            b.used
        };
        if let Err(e) = self
            .store
            .set_state(&budget_key(today), used.to_string().as_bytes())
            .await
        {
            tracing::warn!(error = %e, "cannot record the X request count");
        }
        (used, self.config.daily_request_budget)
    }

    /// Requests made today, after rolling over at 00:00 UTC.
    async fn used_today(&self) -> u32 {
        self.roll_over(Utc::now().date_naive()).await;
        self.budget.lock().expect("budget lock").used
    }

    /// At 00:00 UTC the budget starts again from what the store counted for the new day
    /// (read without holding the lock).
    async fn roll_over(&self, today: NaiveDate) {
        if self.budget.lock().expect("budget lock").day == today {
            return;
        }
        let stored = read_count(self.store.as_ref(), today).await;
        let mut b = self.budget.lock().expect("budget lock");
        if b.day != today {
            b.day = today;
            b.used = stored;
            b.last_logged = None;
        }
    }

    async fn log_budget(&self, force: bool) {
        let budget = self.config.daily_request_budget;
        let used = self.used_today().await;
        let due = {
            let mut b = self.budget.lock().expect("budget lock");
            let due = force
                || b.last_logged
                    .is_none_or(|t| t.elapsed() >= BUDGET_LOG_EVERY);
            if due {
                b.last_logged = Some(Instant::now());
            }
            due
        };
        if due {
            tracing::info!(
                requests_today = used,
                remaining = budget.saturating_sub(used),
                budget,
                "X request budget (UTC day)"
            );
        }
    }

    // -- transport -----------------------------------------------------------------------

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The endpoint's window is spent: how long until it resets.
    fn gate(&self, endpoint: Endpoint) -> Option<Duration> {
        let gates = self.gates.lock().expect("gates lock");
        gates
            .get(&endpoint)
            .map(|(until, _)| *until)
            .filter(|until| *until > Instant::now())
            .map(|until| until - Instant::now())
    }

    fn note_limits(&self, endpoint: Endpoint, headers: &HeaderMap) {
        let remaining = header_num(headers, "x-rate-limit-remaining");
        let now = Utc::now();
        let wait = header_wait(headers, "x-rate-limit-reset", HintForm::EpochSeconds, now);
        if let (Some(r), Some(wait)) = (remaining, wait) {
            if r <= 0 {
                let reset = later(now, wait);
                tracing::info!(
                    ?endpoint,
                    reset = %reset.to_rfc3339(),
                    "X rate limit window spent for this endpoint"
                );
                self.gates
                    .lock()
                    .expect("gates lock")
                    .insert(endpoint, (Instant::now() + wait, reset));
            }
        }
    }

    /// The `Authorization` header for this request (OAuth 1.0a signature or bearer).
    async fn authorization(&self, call: &Call<'_>, url: &str) -> Result<String, DeliveryError> {
        match &self.auth {
            Auth::Oauth1 {
                consumer_key,
                consumer_secret,
                token,
                token_secret,
            } => {
                let creds = Oauth1Credentials {
                    consumer_key: consumer_key.expose(),
                    consumer_secret: consumer_secret.expose(),
                    token: token.expose(),
                    token_secret: token_secret.expose(),
                };
                let params: Vec<(String, String)> = call
                    .query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                Ok(oauth1_header(
                    &creds,
                    call.method.as_str(),
                    url,
                    &params,
                    &nonce(),
                    Utc::now().timestamp(),
                ))
            }
            Auth::Oauth2 { session, .. } => {
                let mut s = session.lock().await;
                let fresh = s.access_token.is_some()
                    && s.expires_at
                        .is_none_or(|t| t > Utc::now() + chrono::Duration::seconds(60));
                if !fresh {
                    self.refresh(&mut s).await?;
                }
                Ok(format!(
                    "Bearer {}",
                    s.access_token.as_deref().unwrap_or("")
                ))
            }
        }
    }

    /// Trade the refresh token for a new access token (and X's rotated refresh token),
    /// stored and flushed before it is used.
    async fn refresh(&self, s: &mut StoredTokens) -> Result<(), DeliveryError> {
        let Auth::Oauth2 {
            client_id,
            client_secret,
            ..
        } = &self.auth
        else {
            return Ok(());
        };
        let url = self.url("/2/oauth2/token");
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", s.refresh_token.as_str()),
            ("client_id", client_id.as_str()),
        ];
        let mut req = self.http.post(&url).form(&form);
        if let Some(secret) = client_secret {
            req = req.basic_auth(client_id, Some(secret.expose()));
        }
        self.count_request().await;
        let resp = req.send().await.map_err(|e| {
            DeliveryError::retry(format!(
                "X at {} could not be reached to refresh the OAuth 2.0 token: {}",
                self.base,
                without_url(&e)
            ))
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| {
            DeliveryError::retry(format!("X's token answer was cut off: {}", without_url(&e)))
        })?;
        if !status.is_success() {
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(self.failure(Endpoint::Token, status, &headers, &body));
            }
            #[derive(Deserialize)]
            struct OauthError {
                #[serde(default)]
                error: String,
                #[serde(default)]
                error_description: String,
            }
            let said = serde_json::from_slice::<OauthError>(&body)
                .map(|e| format!("{} {}", e.error, e.error_description))
                .unwrap_or_else(|_| x_said(&body));
            return Err(DeliveryError::Permanent {
                reason: format!(
                    "X refused the OAuth 2.0 refresh token ({} {}): {} (authorise the app again \
                     with the offline.access scope and put the new token in x.refresh_token; \
                     check x.client_id and x.client_secret)",
                    status.as_u16(),
                    url,
                    said.trim()
                ),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!("X sent a token answer we cannot read: {e}"))
        })?;
        s.access_token = Some(answer.access_token);
        // X's number: out of chrono's range it would panic; then treat the token as
        // not known to expire (it is refreshed on its first 401).
        s.expires_at = answer
            .expires_in
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| Utc::now().checked_add_signed(d));
        if let Some(rt) = answer.refresh_token {
            s.refresh_token = rt;
        }
        let bytes = serde_json::to_vec(&*s).expect("tokens serialise");
        let store_err = |e: crate::ports::StoreError| {
            DeliveryError::retry(format!("cannot store X tokens: {e}"))
        };
        self.store
            .set_state(&oauth2_key(&self.config.user_id), &bytes)
            .await
            .map_err(store_err)?;
        self.store.flush().await.map_err(store_err)?;
        tracing::info!("X OAuth 2.0 access token refreshed; the rotated refresh token is stored");
        Ok(())
    }

    /// Send one request (refreshing an OAuth 2.0 token once on 401); counts it against
    /// the day's budget and reads the rate-limit headers.
    async fn send(
        &self,
        call: &Call<'_>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), DeliveryError> {
        if let Some(wait) = self.gate(call.endpoint) {
            return Err(DeliveryError::Retry {
                after: Some(wait),
                reason: format!(
                    "X rate limit for {} is spent; next window in {} s",
                    call.path,
                    wait.as_secs()
                ),
            });
        }
        let url = self.url(&call.path);
        let full = if call.query.is_empty() {
            url.clone()
        } else {
            let q: Vec<String> = call
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
                .collect();
            format!("{url}?{}", q.join("&"))
        };
        let mut refreshed = false;
        loop {
            let auth = self.authorization(call, &url).await?;
            let mut req = self
                .http
                .request(call.method.clone(), &full)
                .header(reqwest::header::AUTHORIZATION, auth.clone());
            if let Some(body) = &call.json {
                req = req.json(body);
            }
            let (used, budget) = self.count_request().await;
            if used == budget {
                tracing::warn!(
                    budget,
                    "X daily request budget spent: polling pauses until 00:00 UTC; replies are still sent"
                );
            } else if used > budget {
                tracing::info!(
                    requests_today = used,
                    budget,
                    "X request over the daily budget (a reply)"
                );
            }
            let resp = req.send().await.map_err(|e| {
                DeliveryError::retry(format!(
                    "X at {} could not be reached: {}",
                    self.base,
                    without_url(&e)
                ))
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            self.note_limits(call.endpoint, &headers);
            let body = resp.bytes().await.map_err(|e| {
                DeliveryError::retry(format!(
                    "X's answer from {url} was cut off: {}",
                    without_url(&e)
                ))
            })?;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                if let Auth::Oauth2 { session, .. } = &self.auth {
                    let mut s = session.lock().await;
                    // Another task may have refreshed already while we waited.
                    if auth == format!("Bearer {}", s.access_token.as_deref().unwrap_or("")) {
                        tracing::info!(
                            "X answered 401; refreshing the OAuth 2.0 access token once"
                        );
                        self.refresh(&mut s).await?;
                    }
                    refreshed = true;
                    continue;
                }
            }
            return Ok((status, headers, body.to_vec()));
        }
    }

    /// Turn a non-success answer into the right kind of failure, with X's own words.
    fn failure(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> DeliveryError {
        let said = x_said(body);
        let what = format!("X answered {} for {:?}", status.as_u16(), endpoint);
        if status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
        {
            let now = Utc::now();
            let reset = header_wait(headers, "x-rate-limit-reset", HintForm::EpochSeconds, now);
            let after = header_wait(headers, "retry-after", HintForm::RetryAfter, now)
                .or(reset.filter(|_| status == StatusCode::TOO_MANY_REQUESTS));
            if status == StatusCode::TOO_MANY_REQUESTS {
                if let Some(a) = after {
                    let until = later(now, a);
                    self.gates
                        .lock()
                        .expect("gates lock")
                        .insert(endpoint, (Instant::now() + a, until));
                }
            }
            return DeliveryError::Retry {
                after,
                reason: format!("{what}: {said}"),
            };
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                "{said} (check x.consumer_key, x.consumer_secret, x.access_token and \
                 x.access_token_secret, or the OAuth 2.0 refresh token)"
            ),
            _ => said,
        };
        DeliveryError::Permanent {
            reason: format!("{what}: {hint}"),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: Endpoint,
        path: String,
        query: Vec<(&str, String)>,
    ) -> Result<T, XError> {
        let call = Call {
            method: Method::GET,
            endpoint,
            path,
            query,
            json: None,
        };
        let body = self.fetch(&call).await?;
        serde_json::from_slice(&body).map_err(|e| XError::Unexpected {
            url: self.url(&call.path),
            reason: e.to_string(),
        })
    }

    async fn fetch(&self, call: &Call<'_>) -> Result<Vec<u8>, DeliveryError> {
        let (status, headers, body) = self.send(call).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(self.failure(call.endpoint, status, &headers, &body))
        }
    }

    async fn fetch_page<T: for<'de> Deserialize<'de>>(
        &self,
        call: &Call<'_>,
    ) -> Result<Page<T>, DeliveryError> {
        let body = self.fetch(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "X sent a page we cannot read from {}: {e}",
                self.url(&call.path)
            ))
        })
    }

    // -- polling -------------------------------------------------------------------------

    fn to_mention(account: &str, tweet: Tweet, users: &HashMap<String, User>) -> Mention {
        let author_id = tweet.author_id.clone().unwrap_or_default();
        let (handle, name) = match users.get(&author_id) {
            Some(u) => (u.username.clone(), u.name.clone()),
            None => (author_id.clone(), String::new()),
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
            },
            text: unescape(&text),
            language: tweet.lang.clone().filter(|l| l != "und" && l != "zxx"),
            created_at: tweet.created_at.unwrap_or_else(Utc::now),
            in_reply_to: tweet.replied_to().map(str::to_string),
            visibility: Visibility::Public,
            remote_id: tweet.id,
            reply_context: None,
            external_id: None,
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
            query.push(("expansions", "author_id".into()));
            query.push(("tweet.fields", TWEET_FIELDS.into()));
            query.push(("user.fields", "username,name".into()));
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

    async fn poll_once(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        let budget = self.config.daily_request_budget;
        if self.used_today().await >= budget {
            return Err(DeliveryError::Permanent {
                reason: format!(
                    "X daily request budget of {budget} spent; polling paused until 00:00 UTC \
                     (x.daily_request_budget)"
                ),
            });
        }
        self.log_budget(false).await;
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
                    format!("{keyword} -from:{} -is:retweet", self.me.username),
                )],
                search_since,
                "next_token",
                &mut found,
            )
            .await?;
        }
        let Found { mut tweets, users } = found;
        let mut seen = HashSet::new();
        tweets.retain(|t| {
            t.id.parse::<u64>().is_ok()
                && t.author_id.as_deref() != Some(self.me.id.as_str())
                && seen.insert(t.id.clone())
        });
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

    // -- publishing ----------------------------------------------------------------------

    /// Our reply among our recent posts: a retry may follow a post whose answer we never saw.
    async fn find_our_tweet(
        &self,
        reply: &ReplyRequest,
    ) -> Result<Option<Published>, DeliveryError> {
        let call = Call {
            method: Method::GET,
            endpoint: Endpoint::Timeline,
            path: request_path::path(
                "/2/users/{}/tweets",
                &[("X user id", IdShape::Snowflake, &self.me.id)],
            )?,
            query: vec![
                ("max_results", OWN_RECENT.to_string()),
                ("tweet.fields", "referenced_tweets,created_at".into()),
            ],
            json: None,
        };
        let page: Page<Tweet> = self.fetch_page(&call).await?;
        let earliest = reply.queued_at - chrono::Duration::minutes(1);
        let want = comparable(without_leading_mentions(&reply.text));
        Ok(page
            .data
            .into_iter()
            .find(|t| {
                t.replied_to() == Some(reply.in_reply_to.as_str())
                    && comparable(without_leading_mentions(&unescape(&t.text))) == want
                    && t.created_at.is_none_or(|c| c >= earliest)
                    && !reply.earlier_replies.contains(&t.id)
            })
            .map(|t| Published {
                url: format!("https://x.com/i/web/status/{}", t.id),
                remote_id: t.id,
            }))
    }

    async fn post_reply(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        if reply.maybe_sent {
            if let Some(found) = self.find_our_tweet(reply).await? {
                tracing::info!(ticket = %reply.ticket, post = %found.remote_id, "reply was already published before the restart; not sending again");
                return Ok(found);
            }
        }
        let call = Call {
            method: Method::POST,
            endpoint: Endpoint::CreateTweet,
            path: "/2/tweets".into(),
            query: vec![],
            // X v2 puts the replied-to author's @handle in front of a reply itself and
            // does not count it, so the text is the agent's alone. The body is checked
            // against X's schema: `reply` takes only `in_reply_to_tweet_id` (and
            // `exclude_reply_user_ids`).
            json: Some(serde_json::json!({
                "text": reply.text,
                "reply": { "in_reply_to_tweet_id": reply.in_reply_to },
            })),
        };
        let (status, headers, body) = self.send(&call).await?;
        if status == StatusCode::FORBIDDEN && is_duplicate(&body) {
            // X refuses the same text twice: an earlier try did get through.
            if let Some(found) = self.find_our_tweet(reply).await? {
                tracing::info!(ticket = %reply.ticket, post = %found.remote_id, "X says the reply is a duplicate; found the one already published");
                return Ok(found);
            }
        }
        if !status.is_success() {
            return Err(self.failure(Endpoint::CreateTweet, status, &headers, &body));
        }
        let posted: One<Tweet> = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "X accepted the reply but sent an answer we cannot read: {e}"
            ))
        })?;
        Ok(Published {
            url: format!("https://x.com/i/web/status/{}", posted.data.id),
            remote_id: posted.data.id,
        })
    }

    /// Our message in the conversation with `author_id`, sent since the reply was queued.
    async fn find_our_dm(
        &self,
        reply: &ReplyRequest,
        author_id: &str,
    ) -> Result<Option<Published>, DeliveryError> {
        let call = Call {
            method: Method::GET,
            endpoint: Endpoint::DmEvents,
            path: request_path::path(
                "/2/dm_conversations/with/{}/dm_events",
                &[("X author id", IdShape::Snowflake, author_id)],
            )?,
            query: vec![
                ("event_types", "MessageCreate".into()),
                (
                    "dm_event.fields",
                    "id,text,event_type,created_at,sender_id,dm_conversation_id".into(),
                ),
                ("max_results", "50".into()),
            ],
            json: None,
        };
        let page: Page<DmEvent> = self.fetch_page(&call).await?;
        let earliest = reply.queued_at - chrono::Duration::minutes(1);
        let want = comparable(&reply.text);
        Ok(page
            .data
            .into_iter()
            .find(|e| {
                e.sender_id.as_deref() == Some(self.me.id.as_str())
                    && comparable(&unescape(&e.text)) == want
                    && e.created_at.is_none_or(|c| c >= earliest)
                    && !reply.earlier_replies.contains(&e.id)
            })
            .map(|e| Published {
                remote_id: e.id,
                url: "https://x.com/messages".into(),
            }))
    }

    async fn send_dm(&self, reply: &ReplyRequest) -> Result<Published, DeliveryError> {
        let Some(author_id) = reply.author_id.as_deref().filter(|a| !a.is_empty()) else {
            return Err(DeliveryError::Permanent {
                reason: format!(
                    "no X user id is known for @{}, so no direct message can be sent",
                    reply.author_handle
                ),
            });
        };
        if reply.maybe_sent {
            if let Some(found) = self.find_our_dm(reply, author_id).await? {
                tracing::info!(ticket = %reply.ticket, dm_event = %found.remote_id, "direct message was already sent before the restart; not sending again");
                return Ok(found);
            }
        }
        let call = Call {
            method: Method::POST,
            endpoint: Endpoint::SendDm,
            path: request_path::path(
                "/2/dm_conversations/with/{}/messages",
                &[("X author id", IdShape::Snowflake, author_id)],
            )?,
            query: vec![],
            json: Some(serde_json::json!({ "text": reply.text })),
        };
        let (status, headers, body) = self.send(&call).await?;
        if !status.is_success() {
            return Err(self.failure(Endpoint::SendDm, status, &headers, &body));
        }
        let created: One<DmCreated> = serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "X accepted the direct message but sent an answer we cannot read: {e}"
            ))
        })?;
        Ok(Published {
            remote_id: created.data.dm_event_id,
            url: "https://x.com/messages".into(),
        })
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

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A page of mentions or search results read the way the poller reads it, for the
/// brand account `account` (the fuzz tests feed it arbitrary bytes).
pub fn mentions_in_page(account: &str, body: &[u8]) -> Result<Vec<Mention>, serde_json::Error> {
    let page: Page<Tweet> = serde_json::from_slice(body)?;
    let users: HashMap<String, User> = page
        .includes
        .users
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    Ok(page
        .data
        .into_iter()
        .map(|t| X::to_mention(account, t, &users))
        .collect())
}

fn oauth2_key(user_id: &str) -> String {
    format!("x:oauth2:{user_id}")
}

fn budget_key(day: NaiveDate) -> String {
    format!("x:budget:{}", day.format("%Y-%m-%d"))
}

async fn read_count(store: &dyn Store, day: NaiveDate) -> u32 {
    store
        .state(&budget_key(day))
        .await
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn header_num(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The smallest post id X could give a post created at `at`.
fn snowflake_at(at: DateTime<Utc>) -> u64 {
    let ms = (at.timestamp_millis() - SNOWFLAKE_EPOCH_MS).max(0) as u64;
    ms << 22
}

/// X's words from an error body: `{"title","detail","type","status"}` (problem) and/or
/// `{"errors":[{"message"|"detail"}]}`.
fn x_said(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
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

fn is_duplicate(body: &[u8]) -> bool {
    x_said(body).to_ascii_lowercase().contains("duplicate")
}

/// X escapes `&`, `<` and `>` in post text.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text after the @mentions it starts with: X stores a reply with the mentions it
/// filled in itself in front of what we sent.
fn without_leading_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('@') {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end == 0 {
            break;
        }
        rest = after[end..].trim_start();
    }
    rest
}

/// A text as compared with what X stored: links become t.co links there, and
/// surrounding whitespace may differ.
fn comparable(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            if w.starts_with("http://") || w.starts_with("https://") {
                "<link>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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

// -- OAuth 1.0a (RFC 5849, HMAC-SHA1) -----------------------------------------------------

struct Oauth1Credentials<'a> {
    consumer_key: &'a str,
    consumer_secret: &'a str,
    token: &'a str,
    token_secret: &'a str,
}

/// RFC 3986 percent-encoding as RFC 5849 §3.6 wants it: everything but unreserved.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The signature base string (RFC 5849 §3.4.1): method, base URI (no query) and the
/// normalised parameters (query, form and oauth_*, sorted by encoded name then value).
fn base_string(method: &str, url: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base_uri = url.split(['?', '#']).next().unwrap_or(url);
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        pct(base_uri),
        pct(&normalized)
    )
}

fn hmac_sha1_base64(key: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(text.as_bytes());
    base64(&mac.finalize().into_bytes())
}

fn signature(
    creds: &Oauth1Credentials<'_>,
    method: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    let key = format!("{}&{}", pct(creds.consumer_secret), pct(creds.token_secret));
    hmac_sha1_base64(&key, &base_string(method, url, params))
}

/// The `Authorization: OAuth ...` header for a request whose query (or form) parameters
/// are `params`; JSON bodies are not signed (as X expects).
fn oauth1_header(
    creds: &Oauth1Credentials<'_>,
    method: &str,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
    timestamp: i64,
) -> String {
    let mut oauth: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), creds.consumer_key.into()),
        ("oauth_nonce".into(), nonce.into()),
        ("oauth_signature_method".into(), "HMAC-SHA1".into()),
        ("oauth_timestamp".into(), timestamp.to_string()),
        ("oauth_token".into(), creds.token.into()),
        ("oauth_version".into(), "1.0".into()),
    ];
    let mut all = params.to_vec();
    all.extend(oauth.iter().cloned());
    let sig = signature(creds, method, url, &all);
    oauth.push(("oauth_signature".into(), sig));
    oauth.sort();
    let fields: Vec<String> = oauth
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", pct(k), pct(v)))
        .collect();
    format!("OAuth {}", fields.join(", "))
}

/// 32 hex characters, unique per request (no randomness crate needed: a hash of the
/// clock, the process and a counter).
fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(
        Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of X's "Creating a signature" page (OAuth 1.0a).
    fn example() -> (Oauth1Credentials<'static>, Vec<(String, String)>) {
        let creds = Oauth1Credentials {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog",
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        };
        let params = [
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("include_entities", "true"),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        (creds, params)
    }

    #[test]
    fn oauth1_signature_matches_the_worked_example_of_x_docs() {
        let (creds, params) = example();
        let url = "https://api.twitter.com/1/statuses/update.json?include_entities=true";
        assert_eq!(
            base_string("POST", url, &params),
            "POST&https%3A%2F%2Fapi.twitter.com%2F1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"
        );
        assert_eq!(
            signature(&creds, "POST", url, &params),
            "tnnArxj06cWHq44gCs1OSKk/jLY="
        );
        // The same example on the page's later revision (API 1.1 URL).
        assert_eq!(
            signature(
                &creds,
                "POST",
                "https://api.twitter.com/1.1/statuses/update.json",
                &params
            ),
            "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
        );
    }

    #[test]
    fn oauth1_header_carries_every_oauth_field_encoded() {
        let (creds, _) = example();
        let params = vec![
            ("include_entities".to_string(), "true".to_string()),
            (
                "status".to_string(),
                "Hello Ladies + Gentlemen, a signed OAuth request!".to_string(),
            ),
        ];
        let header = oauth1_header(
            &creds,
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            1_318_622_958,
        );
        assert_eq!(
            header,
            "OAuth oauth_consumer_key=\"xvz1evFS4wEEPTGEFPHBog\", oauth_nonce=\"kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg\", oauth_signature=\"hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D\", oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"1318622958\", oauth_token=\"370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb\", oauth_version=\"1.0\""
        );
        assert_eq!(pct("a b+c/~é"), "a%20b%2Bc%2F~%C3%A9");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

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

    #[test]
    fn our_reply_is_recognised_behind_the_mentions_x_filled_in() {
        assert_eq!(without_leading_mentions("@alice @bob thanks!"), "thanks!");
        assert_eq!(without_leading_mentions("thanks @alice"), "thanks @alice");
        assert_eq!(without_leading_mentions("@ alone"), "@ alone");
        assert_eq!(without_leading_mentions("@alice"), "");
    }

    #[test]
    fn texts_compare_despite_escaping_and_shortened_links() {
        assert_eq!(unescape("a &amp;lt; b &lt; c &gt; d"), "a &lt; b < c > d");
        assert_eq!(
            comparable(&unescape("@ana see https://t.co/abc  &amp; thanks")),
            comparable("@ana see https://example.com/long/path & thanks")
        );
        assert_ne!(comparable("@ana yes"), comparable("@ana no"));
    }

    fn client() -> X {
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
            },
            store: std::sync::Arc::new(crate::store::SledStore::temporary().unwrap()),
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
            },
            budget: Mutex::new(Budget {
                day: Utc::now().date_naive(),
                used: 0,
                last_logged: None,
            }),
            gates: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn a_mention_page_maps_to_mentions() {
        let x = client();
        let page = r#"{"data":[{"id":"1790000000000000002","text":"@brand where is my order? &amp; refund &lt;3","author_id":"2244994945","created_at":"2024-05-13T10:00:00.000Z","lang":"en","conversation_id":"1790000000000000001","in_reply_to_user_id":"1500000000000000001","referenced_tweets":[{"type":"replied_to","id":"1790000000000000001"}],"edit_history_tweet_ids":["1790000000000000002"]},{"id":"1790000000000000003","text":"@brand hi","author_id":"99","lang":"und","edit_history_tweet_ids":["1790000000000000003"]}],"includes":{"users":[{"id":"2244994945","name":"X Developers","username":"XDevelopers"}]},"meta":{"newest_id":"1790000000000000003","oldest_id":"1790000000000000002","result_count":2}}"#;
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
    }

    #[tokio::test]
    async fn the_budget_is_counted_per_utc_day_in_the_store() {
        let x = client();
        assert_eq!(x.count_request().await, (1, 10));
        assert_eq!(x.count_request().await, (2, 10));
        let key = budget_key(Utc::now().date_naive());
        assert_eq!(
            x.store.state(&key).await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(
            read_count(x.store.as_ref(), Utc::now().date_naive()).await,
            2
        );
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
