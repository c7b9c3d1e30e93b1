//! A fake X (API v2) on 127.0.0.1 for the parts mentionbridge uses. Shapes follow
//! docs.x.com: posts (`data`, `includes.users`, `meta.{result_count,newest_id,
//! oldest_id,next_token}`), `POST /2/tweets` (201 `{"data":{"id","text",
//! "edit_history_tweet_ids"}}`), DMs (201 `{"data":{"dm_conversation_id","dm_event_id"}}`),
//! DM events, OAuth 2.0 refresh (`POST /2/oauth2/token`), errors as problem bodies
//! `{"title","detail","type","status"}` or `{"errors":[...],"title","detail","type"}`,
//! and `x-rate-limit-limit/-remaining/-reset` (epoch seconds) on every answer.
//!
//! Semantics worth knowing:
//! - Auth: every `/2/` endpoint but the token endpoint needs either an OAuth 1.0a
//!   signature (HMAC-SHA1, recomputed here from the query, form body and oauth_*
//!   fields with [`CONSUMER_SECRET`] and [`ACCESS_TOKEN_SECRET`]; the timestamp must be
//!   within 5 minutes and a nonce is accepted once) or a bearer access token issued by
//!   the token endpoint. Refresh tokens rotate: each is accepted once. Rejections are
//!   listed by [`FakeX::auth_failures`].
//! - Post ids are snowflakes of the fake's clock (ms since X's epoch << 22), so they
//!   grow with time like X's. Post text is returned with `&`, `<`, `>` escaped, as X does.
//! - Replies follow self-serve rules: only to a post that mentions the brand (or is the
//!   brand's); otherwise 403 with X's detail. The same text twice from the brand is the
//!   duplicate-content 403.
//! - Rate limits are counted per endpoint in 15-minute windows (defaults below, change
//!   with [`FakeX::set_rate_limit`]); going over answers 429.
//! - [`FakeX::lose_next_answers`]: the request takes effect, the answer never comes.
//! - The filtered stream and its rules: see `x/stream.rs`.
mod stream;

#[allow(unused_imports)] // The benches use none of them.
pub use stream::{StreamRule, APP_BEARER_TOKEN, MAX_RULE_CHARS, NOT_ENROLLED_DETAIL};

use super::scaffold::{
    json_response, wait_for_at_least, Call, FakeServer, FaultQueue, Listener, Refusal, RequestLog,
    Route,
};
use super::{now_millis, Fault};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha1::Sha1;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const CONSUMER_KEY: &str = "x-consumer-key-test-CANARY359160fb478962e2";
pub const CONSUMER_SECRET: &str = "x-consumer-secret-test-CANARY27c4521277d2df12";
pub const ACCESS_TOKEN: &str = "1500000000000000001-xAccessTokenTestCANARY049560b68ab6a70f";
pub const ACCESS_TOKEN_SECRET: &str = "x-access-token-secret-test-CANARY42a8f6bd47f52eaa";
pub const CLIENT_ID: &str = "x-client-id-test";
pub const CLIENT_SECRET: &str = "x-client-secret-test-CANARYc3a038ab8555f634";
/// The refresh token valid when the fake starts.
pub const INITIAL_REFRESH_TOKEN: &str = "x-refresh-token-0-CANARY39dfac022e9cab76";
pub const BRAND_ID: &str = "1500000000000000001";
pub const BRAND_USERNAME: &str = "brand";
pub const DUPLICATE_DETAIL: &str = "You are not allowed to create a Tweet with duplicate content.";
pub const REPLY_NOT_ALLOWED_DETAIL: &str = "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by the author of the post you are replying to.";
pub const DM_NOT_ALLOWED_DETAIL: &str =
    "You are not permitted to send Direct Messages to this user.";
const SNOWFLAKE_EPOCH_MS: u64 = 1_288_834_974_657;
const WINDOW_SECS: i64 = 15 * 60;
const ACCESS_TOKEN_SECS: i64 = 7200;

/// A post created through `POST /2/tweets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTweet {
    pub id: String,
    /// The post's text as X stores and shows it: for a reply, the replied-to author's
    /// @handle that X v2 puts in front by itself.
    pub text: String,
    /// The `text` the client sent.
    pub sent: String,
    pub in_reply_to_tweet_id: Option<String>,
}

/// A direct message sent through `POST /2/dm_conversations/with/:id/messages`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentDm {
    pub event_id: String,
    pub conversation_id: String,
    pub recipient_id: String,
    pub text: String,
}

#[derive(Clone, Debug)]
struct UserRec {
    id: String,
    username: String,
    name: String,
    accepts_dms: bool,
    /// `public_metrics.followers_count` (as raw JSON, so a test can make it hostile).
    followers: Value,
}

impl UserRec {
    /// The user object as X expands it, with the `user.fields` asked for.
    fn json(&self, user_fields: &HashSet<String>) -> Value {
        let mut v = json!({"id": self.id, "name": self.name, "username": self.username});
        if user_fields.contains("public_metrics") {
            v["public_metrics"] = json!({
                "followers_count": self.followers,
                "following_count": 12,
                "tweet_count": 340,
                "listed_count": 1,
                "like_count": 56,
                "media_count": 7,
            });
        }
        v
    }
}

#[derive(Clone, Debug)]
struct TweetRec {
    id: u64,
    author_id: String,
    text: String,
    created_at: DateTime<Utc>,
    in_reply_to: Option<u64>,
    in_reply_to_user_id: Option<String>,
    conversation_id: u64,
    lang: String,
}

#[derive(Clone, Debug)]
struct DmRec {
    id: u64,
    conversation_id: String,
    sender_id: String,
    recipient_id: String,
    text: String,
    created_at: DateTime<Utc>,
}

struct Bucket {
    limit: u32,
    used: u32,
    reset: i64,
}

struct XState {
    users: Vec<UserRec>,
    tweets: Vec<TweetRec>,
    dms: Vec<DmRec>,
    created: Vec<CreatedTweet>,
    sent: Vec<SentDm>,
    auth_failures: Vec<String>,
    nonces: HashSet<String>,
    refresh_tokens: HashSet<String>,
    used_refresh_tokens: Vec<String>,
    /// Access token -> expiry.
    access_tokens: HashMap<String, DateTime<Utc>>,
    token_seq: u64,
    refreshes: usize,
    limits: HashMap<&'static str, u32>,
    buckets: HashMap<&'static str, Bucket>,
    last_id: u64,
    stream: stream::StreamState,
}

struct Shared {
    state: Mutex<XState>,
    /// (method, path and query) of every request.
    requests: RequestLog<(String, String)>,
    faults: FaultQueue,
    /// Faults for the stream's connects alone (the rules share their path's prefix).
    connect_faults: FaultQueue,
    lost: FaultQueue<()>,
    server: FakeServer,
}

/// Handle to a running fake X (cheap to clone; clones share state).
#[derive(Clone)]
pub struct FakeX {
    shared: Arc<Shared>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, XState> {
    super::scaffold::lock(&shared.state)
}

fn ts(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `tweet.fields` a request asked for, and whether it expands `author_id`.
/// The `tweet.fields` asked for, and the `user.fields` if the author is expanded.
fn asked_fields(q: &HashMap<String, String>) -> (HashSet<String>, Option<HashSet<String>>) {
    let list = |name: &str| -> HashSet<String> {
        q.get(name)
            .map(|f| f.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let expand_author = q
        .get("expansions")
        .is_some_and(|e| e.split(',').any(|x| x == "author_id"))
        .then(|| list("user.fields"));
    (list("tweet.fields"), expand_author)
}

/// Which rate limit a request counts against, and X's default per 15 minutes (user
/// context) for it.
fn family(method: &Method, path: &str) -> (&'static str, u32) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["2", "users", "me"]) => ("users/me", 75),
        ("GET", ["2", "users", _, "mentions"]) => ("mentions", 300),
        ("GET", ["2", "users", _, "tweets"]) => ("user_tweets", 900),
        ("GET", ["2", "tweets", "search", "recent"]) => ("search", 300),
        ("POST", ["2", "tweets"]) => ("create_tweet", 200),
        ("POST", ["2", "dm_conversations", ..]) => ("dm_create", 200),
        ("GET", ["2", "dm_events"]) | ("GET", ["2", "dm_conversations", ..]) => ("dm_events", 300),
        ("POST", ["2", "oauth2", "token"]) => ("token", 1000),
        // App-only limits of the filtered stream (pay-per-use, per 15 minutes).
        ("GET", ["2", "tweets", "search", "stream"]) => ("stream_connect", 50),
        ("GET", ["2", "tweets", "search", "stream", "rules"]) => ("stream_rules_read", 450),
        ("POST", ["2", "tweets", "search", "stream", "rules"]) => ("stream_rules_write", 100),
        _ => ("other", 300),
    }
}

fn problem(status: u16, title: &str, detail: &str) -> Value {
    json!({"title": title, "detail": detail, "type": "about:blank", "status": status})
}

fn default_title(code: u16) -> &'static str {
    match code {
        400 => "Invalid Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found Error",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn error(code: u16, detail: &str) -> Response {
    json_response(code, &problem(code, default_title(code), detail))
}

/// X's invalid-request body: `errors` with the parameter, plus the problem fields.
fn invalid_param(param: &str, value: &str, message: String) -> Response {
    json_response(
        400,
        &json!({
            "errors": [{"parameters": {param: [value]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"
        }),
    )
}

fn pairs(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = A.iter().position(|a| *a == c)? as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// Weighted length (URLs count 23, code points beyond U+10FF count 2).
fn weighted_len(text: &str) -> usize {
    let spaces = text.chars().filter(|c| c.is_whitespace()).count();
    let words: usize = text
        .split_whitespace()
        .map(|word| {
            if word.starts_with("http://") || word.starts_with("https://") {
                23
            } else {
                word.chars()
                    .map(|c| if (c as u32) <= 0x10FF { 1 } else { 2 })
                    .sum()
            }
        })
        .sum();
    spaces + words
}

impl XState {
    fn user(&self, id: &str) -> Option<&UserRec> {
        self.users.iter().find(|u| u.id == id)
    }

    fn ensure_user(&mut self, username: &str) -> String {
        if let Some(u) = self.users.iter().find(|u| u.username == username) {
            return u.id.clone();
        }
        let id = (2_000_000_000u64 + self.users.len() as u64).to_string();
        self.users.push(UserRec {
            id: id.clone(),
            username: username.to_string(),
            name: format!("{username} (display)"),
            accepts_dms: true,
            followers: json!(0),
        });
        id
    }

    fn next_id(&mut self) -> u64 {
        let candidate = (now_millis().saturating_sub(SNOWFLAKE_EPOCH_MS)) << 22;
        self.last_id = candidate.max(self.last_id + 1);
        self.last_id
    }

    fn mentions_user(&self, t: &TweetRec, user_id: &str) -> bool {
        let Some(u) = self.user(user_id) else {
            return false;
        };
        let handle = format!("@{}", u.username.to_lowercase());
        t.author_id != user_id
            && (t.in_reply_to_user_id.as_deref() == Some(user_id)
                || t.text
                    .to_lowercase()
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
                    .any(|w| w == handle))
    }

    fn tweet_json(&self, t: &TweetRec, fields: &HashSet<String>) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(t.id.to_string()));
        o.insert("text".into(), json!(escape(&t.text)));
        o.insert("edit_history_tweet_ids".into(), json!([t.id.to_string()]));
        if fields.contains("created_at") {
            o.insert("created_at".into(), json!(ts(&t.created_at)));
        }
        if fields.contains("author_id") {
            o.insert("author_id".into(), json!(t.author_id));
        }
        if fields.contains("lang") {
            o.insert("lang".into(), json!(t.lang));
        }
        if fields.contains("conversation_id") {
            o.insert(
                "conversation_id".into(),
                json!(t.conversation_id.to_string()),
            );
        }
        if fields.contains("in_reply_to_user_id") {
            if let Some(u) = &t.in_reply_to_user_id {
                o.insert("in_reply_to_user_id".into(), json!(u));
            }
        }
        if fields.contains("referenced_tweets") {
            if let Some(r) = t.in_reply_to {
                o.insert(
                    "referenced_tweets".into(),
                    json!([{"type": "replied_to", "id": r.to_string()}]),
                );
            }
        }
        Value::Object(o)
    }

    /// A page of posts (already filtered, newest first) in X's shape.
    fn tweet_page(
        &self,
        all: Vec<&TweetRec>,
        q: &HashMap<String, String>,
        max: usize,
        token: Option<&str>,
    ) -> Value {
        let start = match token.and_then(|t| t.strip_prefix("7140dibd")) {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap_or(u64::MAX),
            None => u64::MAX,
        };
        let list: Vec<&TweetRec> = all.into_iter().filter(|t| t.id <= start).collect();
        let page: Vec<&TweetRec> = list.iter().take(max).copied().collect();
        let (fields, expand_author) = asked_fields(q);
        if page.is_empty() {
            return json!({"meta": {"result_count": 0}});
        }
        let mut meta = json!({
            "result_count": page.len(),
            "newest_id": page[0].id.to_string(),
            "oldest_id": page[page.len() - 1].id.to_string(),
        });
        if list.len() > page.len() {
            meta["next_token"] = json!(format!("7140dibd{:x}", list[page.len()].id));
        }
        let mut out = json!({
            "data": page.iter().map(|t| self.tweet_json(t, &fields)).collect::<Vec<_>>(),
            "meta": meta,
        });
        if let Some(user_fields) = expand_author {
            let mut seen = HashSet::new();
            let users: Vec<Value> = page
                .iter()
                .filter(|t| seen.insert(t.author_id.clone()))
                .filter_map(|t| self.user(&t.author_id))
                .map(|u| u.json(&user_fields))
                .collect();
            out["includes"] = json!({"users": users});
        }
        out
    }
}

impl FakeX {
    /// Starts the fake on an ephemeral 127.0.0.1 port.
    pub async fn start() -> FakeX {
        let listener = Listener::bind("X", 0).await;
        let state = XState {
            users: vec![UserRec {
                id: BRAND_ID.into(),
                username: BRAND_USERNAME.into(),
                name: "Brand Support".into(),
                accepts_dms: true,
                followers: json!(1200),
            }],
            tweets: Vec::new(),
            dms: Vec::new(),
            created: Vec::new(),
            sent: Vec::new(),
            auth_failures: Vec::new(),
            nonces: HashSet::new(),
            refresh_tokens: [INITIAL_REFRESH_TOKEN.to_string()].into_iter().collect(),
            used_refresh_tokens: Vec::new(),
            access_tokens: HashMap::new(),
            token_seq: 0,
            refreshes: 0,
            limits: HashMap::new(),
            buckets: HashMap::new(),
            last_id: 0,
            stream: stream::StreamState::default(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            connect_faults: FaultQueue::default(),
            lost: FaultQueue::default(),
            server: listener.server(),
        });
        listener.serve(Router::new().fallback(handle).with_state(shared.clone()));
        FakeX { shared }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the `api_url`.
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    /// A post by `author` (created on first use) that mentions the brand: the text is
    /// `@brand <text>`. Returns the post id.
    pub fn add_mention(&self, author: &str, text: &str) -> String {
        self.add_tweet(author, &format!("@{BRAND_USERNAME} {text}"), None)
    }

    /// Any post by `author`, optionally replying to a post. Returns the post id.
    pub fn add_tweet(&self, author: &str, text: &str, in_reply_to: Option<&str>) -> String {
        let mut st = lock(&self.shared);
        let author_id = st.ensure_user(author);
        let id = st.next_id();
        let parent = in_reply_to.map(|p| {
            let pid: u64 = p.parse().expect("a post id");
            st.tweets
                .iter()
                .find(|t| t.id == pid)
                .cloned()
                .expect("in_reply_to names an existing post")
        });
        let tweet = TweetRec {
            id,
            author_id,
            text: text.to_string(),
            created_at: Utc::now(),
            in_reply_to: parent.as_ref().map(|p| p.id),
            in_reply_to_user_id: parent.as_ref().map(|p| p.author_id.clone()),
            conversation_id: parent.as_ref().map_or(id, |p| p.conversation_id),
            lang: "en".into(),
        };
        st.publish_to_streams(&tweet);
        st.tweets.push(tweet);
        id.to_string()
    }

    /// The X user id of `username` (created on first use).
    pub fn user_id(&self, username: &str) -> String {
        lock(&self.shared).ensure_user(username)
    }

    /// `username`'s follower count in `public_metrics` (any JSON, to test hostile ones;
    /// default 0).
    pub fn set_followers(&self, username: &str, followers: Value) {
        let mut st = lock(&self.shared);
        st.ensure_user(username);
        if let Some(u) = st.users.iter_mut().find(|u| u.username == username) {
            u.followers = followers;
        }
    }

    /// Whether `username` accepts DMs from the brand (default true; false = 403).
    pub fn set_accepts_dms(&self, username: &str, accepts: bool) {
        let mut st = lock(&self.shared);
        st.ensure_user(username);
        if let Some(u) = st.users.iter_mut().find(|u| u.username == username) {
            u.accepts_dms = accepts;
        }
    }

    /// Every post created through `POST /2/tweets`, in order.
    pub fn created_tweets(&self) -> Vec<CreatedTweet> {
        lock(&self.shared).created.clone()
    }

    /// Created posts replying to `tweet_id`.
    pub fn replies_to(&self, tweet_id: &str) -> Vec<CreatedTweet> {
        self.created_tweets()
            .into_iter()
            .filter(|t| t.in_reply_to_tweet_id.as_deref() == Some(tweet_id))
            .collect()
    }

    /// Every DM sent, in order.
    pub fn sent_dms(&self) -> Vec<SentDm> {
        lock(&self.shared).sent.clone()
    }

    /// Queues faults for requests whose path starts with `path_prefix` (optionally
    /// "METHOD /path"). Each matching request consumes one, in order; a `Status` fault
    /// answers X's problem body for the code (or the given body) with rate-limit headers
    /// (`retry_after` seconds become `x-rate-limit-reset`, remaining 0, for 429).
    pub fn fail_next(&self, path_prefix: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::parse(path_prefix), faults);
    }

    /// The next `n` matching requests take effect but are never answered.
    pub fn lose_next_answers(&self, path_prefix: &str, n: usize) {
        self.shared.lost.push_n(Route::parse(path_prefix), n);
    }

    /// Requests allowed per 15 minutes for an endpoint family: "mentions", "search",
    /// "user_tweets", "create_tweet", "dm_create", "dm_events", "users/me", "token".
    pub fn set_rate_limit(&self, family: &'static str, limit: u32) {
        let mut st = lock(&self.shared);
        st.limits.insert(family, limit);
        if let Some(b) = st.buckets.get_mut(family) {
            b.limit = limit;
        }
    }

    /// Every access token issued so far stops working (401) until refreshed.
    pub fn expire_access_tokens(&self) {
        let past = Utc::now() - chrono::Duration::seconds(1);
        for exp in lock(&self.shared).access_tokens.values_mut() {
            *exp = past;
        }
    }

    /// The refresh tokens valid right now (one after each rotation).
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        lock(&self.shared).refresh_tokens.iter().cloned().collect()
    }

    /// Refresh tokens that were used (and so are no longer valid), in order.
    pub fn used_refresh_tokens(&self) -> Vec<String> {
        lock(&self.shared).used_refresh_tokens.clone()
    }

    /// Successful refreshes at the token endpoint.
    pub fn token_refreshes(&self) -> usize {
        lock(&self.shared).refreshes
    }

    /// Why requests were refused as unauthenticated (bad signature, replayed nonce, ...).
    pub fn auth_failures(&self) -> Vec<String> {
        lock(&self.shared).auth_failures.clone()
    }

    /// Every request, as (method, path and query), in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared.requests.all()
    }

    /// Every request received (each costs money on X).
    pub fn request_count(&self) -> usize {
        self.shared.requests.len()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .requests
            .count(|(m, p)| m.eq_ignore_ascii_case(method) && p.starts_with(path_prefix))
    }

    /// Waits until at least `n` posts were created; panics after `timeout`.
    pub async fn wait_for_tweets(&self, n: usize, timeout: Duration) -> Vec<CreatedTweet> {
        let what = format!("{n} posts created on fake X");
        let created = || self.created_tweets();
        wait_for_at_least(timeout, &what, n, created, &self.shared.requests).await
    }

    /// Waits until at least `n` DMs were sent; panics after `timeout`.
    pub async fn wait_for_dms(&self, n: usize, timeout: Duration) -> Vec<SentDm> {
        let what = format!("{n} DMs sent on fake X");
        let sent = || self.sent_dms();
        wait_for_at_least(timeout, &what, n, sent, &self.shared.requests).await
    }

    /// Waits until `count(method, path_prefix) >= n`; panics after `timeout`.
    pub async fn wait_for_requests(
        &self,
        method: &str,
        path_prefix: &str,
        n: usize,
        timeout: Duration,
    ) {
        let what = format!("{n} {method} {path_prefix} requests on fake X");
        super::wait_until(timeout, &what, || self.count(method, path_prefix) >= n).await;
    }
}

fn set_rate_headers(h: &mut HeaderMap, limit: u32, remaining: u32, reset: i64) {
    h.insert("x-rate-limit-limit", HeaderValue::from(limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let Call {
        method,
        path,
        query,
        path_and_query,
        headers,
        body,
    } = Call::read(req, 4 << 20).await;
    let (fam, default_limit) = family(&method, &path);
    let now = Utc::now().timestamp();

    shared.requests.record((method.to_string(), path_and_query));
    let connect_fault = if stream::is_connect(&method, &path) {
        shared.connect_faults.take(|_| true)
    } else {
        None
    };
    let fault = connect_fault.or_else(|| shared.faults.take(|r| r.matches(method.as_str(), &path)));
    if let Some(refusal) = Fault::play(fault).await {
        let Refusal {
            code, retry_after, ..
        } = refusal;
        let mut resp = refusal.response(|code| error(code, default_title(code)));
        let limit = lock(&shared)
            .limits
            .get(fam)
            .copied()
            .unwrap_or(default_limit);
        let reset = now + retry_after.map_or(WINDOW_SECS, |s| s as i64);
        let remaining = if code == 429 {
            0
        } else {
            limit.saturating_sub(1)
        };
        set_rate_headers(resp.headers_mut(), limit, remaining, reset);
        return resp;
    }

    // Rate limit windows.
    let (limit, remaining, reset, over) = {
        let mut st = lock(&shared);
        let limit = st.limits.get(fam).copied().unwrap_or(default_limit);
        let b = st.buckets.entry(fam).or_insert(Bucket {
            limit,
            used: 0,
            reset: now + WINDOW_SECS,
        });
        if now >= b.reset {
            b.used = 0;
            b.reset = now + WINDOW_SECS;
        }
        b.used += 1;
        (
            b.limit,
            b.limit.saturating_sub(b.used),
            b.reset,
            b.used > b.limit,
        )
    };
    let mut resp = if over {
        error(429, "Too Many Requests")
    } else if fam == "token" {
        token(&shared, &headers, &body)
    } else if stream::is_stream_path(&path) {
        match stream::app_only(&shared, &headers) {
            Err(refused) => *refused,
            Ok(()) => stream::route(&shared, &method, &path, &query, &body),
        }
    } else {
        match authenticate(&shared, &method, &path, &query, &headers, &body) {
            Err(why) => {
                lock(&shared).auth_failures.push(why);
                error(401, "Unauthorized")
            }
            Ok(user_id) => route(&shared, &method, &path, &query, &body, &user_id),
        }
    };
    set_rate_headers(resp.headers_mut(), limit, remaining, reset);

    if shared.lost.take_one(|r| r.matches(method.as_str(), &path)) {
        // X acted; the client never hears back.
        return super::scaffold::lose_answer().await;
    }
    resp
}

/// Who is calling: OAuth 1.0a (recomputed signature) or a bearer token of ours.
fn authenticate(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    if let Some(token) = auth.strip_prefix("Bearer ") {
        let st = lock(shared);
        return match st.access_tokens.get(token) {
            Some(exp) if *exp > Utc::now() => Ok(BRAND_ID.to_string()),
            Some(_) => Err("expired OAuth 2.0 access token".into()),
            None => Err("unknown bearer token".into()),
        };
    }
    let fields = auth
        .strip_prefix("OAuth ")
        .ok_or("Authorization is neither OAuth nor Bearer")?;
    let mut oauth: HashMap<String, String> = HashMap::new();
    for part in fields.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or("malformed OAuth field")?;
        oauth.insert(percent_decode(k), percent_decode(v.trim_matches('"')));
    }
    let get = |k: &str| oauth.get(k).cloned().ok_or(format!("missing {k}"));
    if get("oauth_consumer_key")? != CONSUMER_KEY {
        return Err("unknown oauth_consumer_key".into());
    }
    if get("oauth_token")? != ACCESS_TOKEN {
        return Err("unknown oauth_token".into());
    }
    if get("oauth_signature_method")? != "HMAC-SHA1" {
        return Err("oauth_signature_method is not HMAC-SHA1".into());
    }
    if oauth.get("oauth_version").is_some_and(|v| v != "1.0") {
        return Err("oauth_version is not 1.0".into());
    }
    let stamp: i64 = get("oauth_timestamp")?
        .parse()
        .map_err(|_| "oauth_timestamp is not a number")?;
    if (Utc::now().timestamp() - stamp).abs() > 300 {
        return Err("oauth_timestamp is more than 5 minutes off".into());
    }
    let nonce = get("oauth_nonce")?;
    let given = get("oauth_signature")?;
    // Parameters: query, form body, oauth_* except the signature (RFC 5849 §3.4.1.3).
    let mut params: Vec<(String, String)> = pairs(query);
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        params.extend(pairs(&String::from_utf8_lossy(body)));
    }
    params.extend(
        oauth
            .iter()
            .filter(|(k, _)| k.as_str() != "oauth_signature" && k.as_str() != "realm")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut enc: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    enc.sort();
    let normalized = enc
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let port = shared.server.port();
    let base_uri = format!("http://127.0.0.1:{port}{path}");
    let base = format!(
        "{}&{}&{}",
        method.as_str(),
        pct(&base_uri),
        pct(&normalized)
    );
    let key = format!("{}&{}", pct(CONSUMER_SECRET), pct(ACCESS_TOKEN_SECRET));
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(base.as_bytes());
    let expected = b64(&mac.finalize().into_bytes());
    if expected != given {
        return Err(format!("signature mismatch for base string {base}"));
    }
    let mut st = lock(shared);
    if !st.nonces.insert(format!("{stamp}:{nonce}")) {
        return Err("oauth_nonce used before".into());
    }
    Ok(BRAND_ID.to_string())
}

/// The refresh token the `seq`th refresh hands out (predictable, so tests can name it).
pub fn refresh_token(seq: u64) -> String {
    format!(
        "x-refresh-token-{seq}-{}{:016x}",
        super::CANARY,
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

/// `POST /2/oauth2/token` with `grant_type=refresh_token`: rotates the refresh token.
fn token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form: HashMap<String, String> = pairs(&String::from_utf8_lossy(body)).into_iter().collect();
    let bad = |error: &str, description: &str| {
        json_response(
            if error == "invalid_client" { 401 } else { 400 },
            &json!({"error": error, "error_description": description}),
        )
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(b64_decode)
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    match basic {
        Some(pair) if pair != format!("{CLIENT_ID}:{CLIENT_SECRET}") => {
            return bad("invalid_client", "Missing valid authorization header")
        }
        Some(_) => {}
        None if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) => {
            return bad("invalid_request", "Missing required parameter [client_id].")
        }
        None => {}
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return bad(
            "invalid_request",
            "Missing required parameter [grant_type].",
        );
    }
    let Some(rt) = form.get("refresh_token") else {
        return bad(
            "invalid_request",
            "Missing required parameter [refresh_token].",
        );
    };
    let mut st = lock(shared);
    if !st.refresh_tokens.remove(rt) {
        return bad("invalid_request", "Value passed for the token was invalid.");
    }
    st.used_refresh_tokens.push(rt.clone());
    st.token_seq += 1;
    st.refreshes += 1;
    let seq = st.token_seq;
    let access = format!("x-access-token-{seq}-{}", super::canary());
    let refresh = refresh_token(seq);
    st.access_tokens.insert(
        access.clone(),
        Utc::now() + chrono::Duration::seconds(ACCESS_TOKEN_SECS),
    );
    st.refresh_tokens.insert(refresh.clone());
    json_response(
        200,
        &json!({
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECS,
            "access_token": access,
            "scope": "tweet.read tweet.write users.read dm.read dm.write offline.access",
            "refresh_token": refresh,
        }),
    )
}

fn max_results(
    q: &HashMap<String, String>,
    min: usize,
    max: usize,
    default: usize,
) -> Result<usize, Box<Response>> {
    match q.get("max_results") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(Box::new(invalid_param(
                "max_results",
                v,
                format!(
                    "The `max_results` query parameter value [{v}] is not between {min} and {max}"
                ),
            ))),
        },
    }
}

fn since(q: &HashMap<String, String>) -> Result<u64, Box<Response>> {
    match q.get("since_id") {
        None => Ok(0),
        Some(v) if !v.is_empty() && v.len() <= 19 && v.chars().all(|c| c.is_ascii_digit()) => {
            Ok(v.parse().unwrap_or(0))
        }
        Some(v) => Err(Box::new(invalid_param(
            "since_id",
            v,
            format!("The `since_id` query parameter value [{v}] does not match ^[0-9]{{1,19}}$"),
        ))),
    }
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
    me: &str,
) -> Response {
    let q: HashMap<String, String> = pairs(query).into_iter().collect();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["2", "users", "me"]) => {
            let st = lock(shared);
            let u = st.user(me).expect("brand exists");
            json_response(
                200,
                &json!({"data": {"id": u.id, "name": u.name, "username": u.username}}),
            )
        }
        ("GET", ["2", "users", id, "mentions"]) => {
            let max = match max_results(&q, 5, 100, 10) {
                Ok(m) => m,
                Err(r) => return *r,
            };
            let since = match since(&q) {
                Ok(s) => s,
                Err(r) => return *r,
            };
            let st = lock(shared);
            if st.user(id).is_none() {
                return error(404, &format!("Could not find user with id: [{id}]."));
            }
            let mut list: Vec<&TweetRec> = st
                .tweets
                .iter()
                .filter(|t| t.id > since && st.mentions_user(t, id))
                .collect();
            list.sort_by_key(|t| std::cmp::Reverse(t.id));
            json_response(
                200,
                &st.tweet_page(list, &q, max, q.get("pagination_token").map(String::as_str)),
            )
        }
        ("GET", ["2", "users", id, "tweets"]) => {
            let max = match max_results(&q, 5, 100, 10) {
                Ok(m) => m,
                Err(r) => return *r,
            };
            let since = match since(&q) {
                Ok(s) => s,
                Err(r) => return *r,
            };
            let st = lock(shared);
            let mut list: Vec<&TweetRec> = st
                .tweets
                .iter()
                .filter(|t| t.id > since && t.author_id == *id)
                .collect();
            list.sort_by_key(|t| std::cmp::Reverse(t.id));
            json_response(
                200,
                &st.tweet_page(list, &q, max, q.get("pagination_token").map(String::as_str)),
            )
        }
        ("GET", ["2", "tweets", "search", "recent"]) => {
            let Some(query) = q.get("query").filter(|s| !s.trim().is_empty()) else {
                return invalid_param(
                    "query",
                    "",
                    "The `query` query parameter can not be empty".into(),
                );
            };
            let max = match max_results(&q, 10, 100, 10) {
                Ok(m) => m,
                Err(r) => return *r,
            };
            let since = match since(&q) {
                Ok(s) => s,
                Err(r) => return *r,
            };
            let st = lock(shared);
            let week_ago = Utc::now() - chrono::Duration::days(7);
            let mut list: Vec<&TweetRec> = st
                .tweets
                .iter()
                .filter(|t| t.id > since && t.created_at >= week_ago)
                .filter(|t| st.matches_rule(t, query))
                .collect();
            list.sort_by_key(|t| std::cmp::Reverse(t.id));
            let token = q
                .get("next_token")
                .or(q.get("pagination_token"))
                .map(String::as_str);
            json_response(200, &st.tweet_page(list, &q, max, token))
        }
        ("POST", ["2", "tweets"]) => create_tweet(shared, body, me),
        ("POST", ["2", "dm_conversations", "with", participant, "messages"]) => {
            let v: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return error(400, &format!("Request body is not valid JSON: {e}")),
            };
            let Some(text) = v["text"].as_str().filter(|t| !t.is_empty()) else {
                return invalid_param("text", "", "The `text` field is required".into());
            };
            let mut st = lock(shared);
            let Some(user) = st.user(participant).cloned() else {
                return invalid_param(
                    "participant_id",
                    participant,
                    format!("Could not find user with participant_id: [{participant}]."),
                );
            };
            if !user.accepts_dms {
                return error(403, DM_NOT_ALLOWED_DETAIL);
            }
            let id = st.next_id();
            let (a, b) = (
                me.parse::<u64>().unwrap_or(0),
                user.id.parse::<u64>().unwrap_or(0),
            );
            let conversation_id = format!("{}-{}", a.min(b), a.max(b));
            st.dms.push(DmRec {
                id,
                conversation_id: conversation_id.clone(),
                sender_id: me.to_string(),
                recipient_id: user.id.clone(),
                text: text.to_string(),
                created_at: Utc::now(),
            });
            st.sent.push(SentDm {
                event_id: id.to_string(),
                conversation_id: conversation_id.clone(),
                recipient_id: user.id.clone(),
                text: text.to_string(),
            });
            json_response(
                201,
                &json!({"data": {"dm_conversation_id": conversation_id, "dm_event_id": id.to_string()}}),
            )
        }
        ("GET", ["2", "dm_events"]) => dm_events(shared, &q, me, None),
        ("GET", ["2", "dm_conversations", "with", participant, "dm_events"]) => {
            dm_events(shared, &q, me, Some(participant))
        }
        _ => error(404, "Sorry, that page does not exist"),
    }
}

fn create_tweet(shared: &Shared, body: &[u8], me: &str) -> Response {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(400, &format!("Request body is not valid JSON: {e}")),
    };
    let Some(text) = v["text"].as_str() else {
        return error(400, "Tweet text is required");
    };
    // The v2 body is checked against its schema: a field it does not define is a 400
    // (`reply` holds only `in_reply_to_tweet_id` and `exclude_reply_user_ids`).
    let schema = [
        (
            "",
            &[
                "text",
                "reply",
                "quote_tweet_id",
                "media",
                "poll",
                "reply_settings",
            ][..],
        ),
        (
            "reply",
            &["in_reply_to_tweet_id", "exclude_reply_user_ids"][..],
        ),
    ];
    for (at, allowed) in schema {
        let object = if at.is_empty() { &v } else { &v[at] };
        for key in object.as_object().into_iter().flat_map(|o| o.keys()) {
            if !allowed.contains(&key.as_str()) {
                let path = if at.is_empty() {
                    "$".to_string()
                } else {
                    format!("$.{at}")
                };
                return error(
                    400,
                    &format!("{path}: property '{key}' is not defined in the schema and the schema does not allow additional properties"),
                );
            }
        }
    }
    // X counts what the client sent; the leading mentions it fills in for a reply (the
    // replied-to author, unless in `exclude_reply_user_ids`) do not count.
    if weighted_len(text) > 280 {
        return error(
            400,
            "Your Tweet text is too long. For more information on how X determines text length see https://github.com/twitter/twitter-text.",
        );
    }
    let excluded: Vec<&str> = v["reply"]["exclude_reply_user_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut st = lock(shared);
    let parent =
        match v["reply"]["in_reply_to_tweet_id"].as_str() {
            None => None,
            Some(pid) => {
                let found = pid
                    .parse::<u64>()
                    .ok()
                    .and_then(|p| st.tweets.iter().find(|t| t.id == p).cloned());
                match found {
                    None => return error(
                        403,
                        "You attempted to reply to a Tweet that is deleted or not visible to you.",
                    ),
                    Some(p) if p.author_id != me && !st.mentions_user(&p, me) => {
                        return error(403, REPLY_NOT_ALLOWED_DETAIL)
                    }
                    Some(p) => Some(p),
                }
            }
        };
    let shown = match parent
        .as_ref()
        .filter(|p| p.author_id != me && !excluded.contains(&p.author_id.as_str()))
    {
        Some(p) => match st.user(&p.author_id).map(|u| u.username.clone()) {
            Some(author) => format!("@{author} {text}"),
            None => text.to_string(),
        },
        None => text.to_string(),
    };
    if st
        .tweets
        .iter()
        .any(|t| t.author_id == me && t.text == shown)
    {
        return error(403, DUPLICATE_DETAIL);
    }
    let id = st.next_id();
    let tweet = TweetRec {
        id,
        author_id: me.to_string(),
        text: shown.clone(),
        created_at: Utc::now(),
        in_reply_to: parent.as_ref().map(|p| p.id),
        in_reply_to_user_id: parent.as_ref().map(|p| p.author_id.clone()),
        conversation_id: parent.as_ref().map_or(id, |p| p.conversation_id),
        lang: "en".into(),
    };
    st.publish_to_streams(&tweet);
    st.tweets.push(tweet);
    st.created.push(CreatedTweet {
        id: id.to_string(),
        text: shown.clone(),
        sent: text.to_string(),
        in_reply_to_tweet_id: parent.map(|p| p.id.to_string()),
    });
    json_response(
        201,
        &json!({"data": {"id": id.to_string(), "text": shown, "edit_history_tweet_ids": [id.to_string()]}}),
    )
}

fn dm_events(
    shared: &Shared,
    q: &HashMap<String, String>,
    me: &str,
    participant: Option<&str>,
) -> Response {
    let max = match max_results(q, 1, 100, 100) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let types: Option<Vec<&str>> = q.get("event_types").map(|t| t.split(',').collect());
    if types.as_ref().is_some_and(|t| {
        t.iter()
            .any(|x| !["MessageCreate", "ParticipantsJoin", "ParticipantsLeave"].contains(x))
    }) {
        let v = q.get("event_types").cloned().unwrap_or_default();
        return invalid_param(
            "event_types",
            &v,
            format!("The `event_types` query parameter value [{v}] is not one of [MessageCreate, ParticipantsJoin, ParticipantsLeave]"),
        );
    }
    let fields: HashSet<&str> = q
        .get("dm_event.fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    let st = lock(shared);
    let start = q
        .get("pagination_token")
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .unwrap_or(u64::MAX);
    let mut list: Vec<&DmRec> = st
        .dms
        .iter()
        .filter(|d| d.sender_id == me || d.recipient_id == me)
        .filter(|d| participant.is_none_or(|p| d.sender_id == p || d.recipient_id == p))
        .filter(|_| types.as_ref().is_none_or(|t| t.contains(&"MessageCreate")))
        .filter(|d| d.id <= start)
        .collect();
    list.sort_by_key(|t| std::cmp::Reverse(t.id));
    let page: Vec<Value> = list
        .iter()
        .take(max)
        .map(|d| {
            let mut o = Map::new();
            o.insert("id".into(), json!(d.id.to_string()));
            o.insert("event_type".into(), json!("MessageCreate"));
            o.insert("text".into(), json!(escape(&d.text)));
            if fields.contains("created_at") {
                o.insert("created_at".into(), json!(ts(&d.created_at)));
            }
            if fields.contains("sender_id") {
                o.insert("sender_id".into(), json!(d.sender_id));
            }
            if fields.contains("dm_conversation_id") {
                o.insert("dm_conversation_id".into(), json!(d.conversation_id));
            }
            Value::Object(o)
        })
        .collect();
    let mut meta = json!({"result_count": page.len()});
    if list.len() > max {
        meta["next_token"] = json!(format!("{:x}", list[max].id));
    }
    if page.is_empty() {
        return json_response(200, &json!({"meta": meta}));
    }
    json_response(200, &json!({"data": page, "meta": meta}))
}
