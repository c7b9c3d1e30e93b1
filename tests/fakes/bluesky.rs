//! A fake Bluesky PDS on 127.0.0.1 speaking XRPC for the parts mentionbridge uses, with
//! the shapes of the official lexicons: `com.atproto.server.createSession` /
//! `getSession` / `refreshSession`, `app.bsky.notification.listNotifications`,
//! `app.bsky.feed.searchPosts`, `com.atproto.repo.createRecord` / `putRecord`, and the
//! chat service (`chat.bsky.convo.getConvoForMembers` / `sendMessage` / `getMessages`),
//! which answers only through the PDS proxy header
//! (`atproto-proxy: did:web:api.bsky.chat#bsky_chat`).
//!
//! Semantics worth knowing:
//! - Errors are XRPC bodies `{"error": "...", "message": "..."}` with the statuses the
//!   reference PDS uses: an expired access token is `400 ExpiredToken`, a missing one
//!   `401 AuthMissing`, a wrong password `401 AuthenticationRequired`, a revoked refresh
//!   token `400 ExpiredToken`, the rate limit `429 RateLimitExceeded`.
//! - Every answer carries `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`
//!   (epoch seconds) and `ratelimit-policy`, honest per window: 3000 requests per
//!   5 minutes, and for `createSession` 30 per 5 minutes, enforced (as Bluesky does).
//! - Refresh tokens rotate: each one works once.
//! - `indexedAt` strictly increases (1 ms apart at least), so notification and search
//!   order is well defined. The notification cursor pages backwards only, as the
//!   AppView's does.
//! - `putRecord` of an identical record is a no-op; of a different record with the same
//!   rkey it replaces it. `createRecord` with an rkey already taken is refused.
//! - A [`Fault::Status`] with `retry_after` sets `ratelimit-reset` to now + that many
//!   seconds and `ratelimit-remaining: 0`; Bluesky sends no `Retry-After` header.
//! - `app.bsky.actor.getProfiles` answers up to 25 `actors` (DIDs or handles), leaving
//!   out the unknown ones.
//! - Jetstream is served on the same port at `/subscribe` (see `bluesky/jetstream.rs`):
//!   every post the PDS learns of is an event there too.
use super::scaffold::{
    json_response, query_pairs, wait_for_at_least, Call, FakeServer, FaultQueue, Listener, Refusal,
    RequestLog, Route,
};
use super::{next_random, Fault};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use unicode_segmentation::UnicodeSegmentation;

pub mod jetstream;

/// The brand account's handle (what `[bluesky] handle` must say).
pub const BRAND_HANDLE: &str = "brand.test";
/// The only app password the fake accepts for the brand.
pub const APP_PASSWORD: &str = "brnd-test-app0-pass-CANARY16e3b6cdf2e466fd";
/// The proxy header value chat calls must carry.
pub const CHAT_PROXY: &str = "did:web:api.bsky.chat#bsky_chat";
const POST: &str = "app.bsky.feed.post";

/// What a write did to the brand's repo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    /// `putRecord` with a different record at an existing rkey.
    Replaced,
    /// `putRecord` with the identical record: nothing changed.
    Unchanged,
}

/// One accepted `createRecord`/`putRecord`, in arrival order.
#[derive(Clone, Debug)]
pub struct Write {
    pub nsid: String,
    pub collection: String,
    pub rkey: String,
    pub record: Value,
    pub outcome: WriteOutcome,
}

/// A live record in the brand's repo.
#[derive(Clone, Debug)]
pub struct BrandPost {
    pub uri: String,
    pub cid: String,
    pub rkey: String,
    pub record: Value,
}

/// One chat message, as the chat service stored it.
#[derive(Clone, Debug)]
pub struct ChatMessage {
    pub id: String,
    pub convo_id: String,
    pub sender_did: String,
    pub text: String,
    pub facets: Option<Value>,
    pub sent_at: String,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub nsid: String,
    pub query: String,
    /// The `atproto-proxy` header, if any.
    pub proxy: Option<String>,
    pub body: Value,
}

#[derive(Clone, Debug)]
struct Account {
    did: String,
    handle: String,
    display_name: String,
    accepts_messages: bool,
    created_at: DateTime<Utc>,
    /// `followersCount` in a detailed profile view (raw JSON, so a test can make it
    /// hostile).
    followers: Value,
}

#[derive(Clone, Debug)]
struct PostRec {
    uri: String,
    cid: String,
    author: String, // did
    collection: String,
    rkey: String,
    record: Value,
    indexed_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
struct NotifRec {
    uri: String, // the post (or like) record
    reason: String,
    reason_subject: Option<String>,
    indexed_at: DateTime<Utc>,
}

struct Convo {
    id: String,
    rev: u64,
    members: Vec<String>,
    messages: Vec<ChatMessage>,
}

struct Bucket {
    limit: u32,
    used: u32,
    window_start: i64,
}

impl Bucket {
    const PERIOD: i64 = 300;

    fn take(&mut self) -> (u32, i64, bool) {
        let now = Utc::now().timestamp();
        let start = now - now.rem_euclid(Self::PERIOD);
        if start != self.window_start {
            self.window_start = start;
            self.used = 0;
        }
        self.used += 1;
        (
            self.limit.saturating_sub(self.used),
            start + Self::PERIOD,
            self.used > self.limit,
        )
    }
}

struct BState {
    accounts: Vec<Account>,
    posts: Vec<PostRec>,
    notifications: Vec<NotifRec>,
    last_indexed: DateTime<Utc>,
    access: HashMap<String, bool>,  // token -> expired
    refresh: HashMap<String, bool>, // token -> used
    create_sessions: usize,
    refresh_sessions: usize,
    writes: Vec<Write>,
    convos: Vec<Convo>,
    api: Bucket,
    logins: Bucket,
    forced_remaining: Option<u32>,
    last_tid: u64,
    firehose: jetstream::Firehose,
}

struct Shared {
    state: Mutex<BState>,
    requests: RequestLog<SeenRequest>,
    /// Routes are nsids, compared whole.
    faults: FaultQueue,
    lost: FaultQueue<()>,
    server: FakeServer,
    jetstream: jetstream::Sockets,
}

/// Handle to a running fake Bluesky PDS (cheap to clone; all clones share state).
#[derive(Clone)]
pub struct FakeBluesky {
    shared: Arc<Shared>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, BState> {
    super::scaffold::lock(&shared.state)
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const S32: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn did_for(handle: &str) -> String {
    let h = Sha256::digest(handle.as_bytes());
    format!("did:plc:{}", &base32(&h)[..24])
}

/// Keys sorted, no whitespace: equal records give equal CIDs.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// A CIDv1 (dag-cbor, sha-256) lookalike: `bafyrei` and 52 base32 characters.
fn cid_of(record: &Value) -> String {
    let h = Sha256::digest(canonical(record).as_bytes());
    format!("bafyrei{}", &base32(&h)[..52])
}

fn token() -> String {
    format!(
        "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NksifQ.{:016x}{}.{:016x}",
        next_random(),
        super::canary(),
        next_random()
    )
}

fn xrpc_error(code: u16, error: &str, message: &str) -> Response {
    json_response(code, &json!({"error": error, "message": message}))
}

fn default_error(code: u16) -> (&'static str, &'static str) {
    match code {
        400 => ("InvalidRequest", "Invalid request"),
        401 => ("AuthenticationRequired", "Authentication Required"),
        403 => ("Forbidden", "Forbidden"),
        404 => ("NotFound", "Not Found"),
        429 => ("RateLimitExceeded", "Rate Limit Exceeded"),
        501 => ("MethodNotImplemented", "Method Not Implemented"),
        502 => ("UpstreamFailure", "Upstream Failure"),
        503 => ("NotEnoughResources", "Not Enough Resources"),
        _ => ("InternalServerError", "Internal Server Error"),
    }
}

fn set_rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: i64) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
    if let Ok(v) = HeaderValue::from_str(&format!("{limit};w=300")) {
        headers.insert("ratelimit-policy", v);
    }
}

fn valid_rkey(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 512
        && k != "."
        && k != ".."
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:~-".contains(c))
}

impl BState {
    fn account(&self, did: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.did == did)
    }

    fn by_handle(&self, handle: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.handle == handle)
    }

    fn ensure_account(&mut self, handle: &str) -> String {
        if let Some(a) = self.by_handle(handle) {
            return a.did.clone();
        }
        let did = did_for(handle);
        let name = handle.split('.').next().unwrap_or(handle);
        let mut display_name = name.to_string();
        if let Some(first) = display_name.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        self.accounts.push(Account {
            did: did.clone(),
            handle: handle.to_string(),
            display_name,
            accepts_messages: true,
            created_at: Utc::now() - chrono::Duration::days(200),
            followers: json!(12),
        });
        did
    }

    fn brand_did(&self) -> String {
        did_for(BRAND_HANDLE)
    }

    fn next_indexed(&mut self) -> DateTime<Utc> {
        let now = Utc::now();
        let next = if now > self.last_indexed {
            now
        } else {
            self.last_indexed + chrono::Duration::milliseconds(1)
        };
        // Millisecond precision, as the AppView reports it.
        let next = DateTime::from_timestamp_millis(next.timestamp_millis()).unwrap_or(next);
        let next = if next <= self.last_indexed {
            self.last_indexed + chrono::Duration::milliseconds(1)
        } else {
            next
        };
        self.last_indexed = next;
        next
    }

    fn tid(&mut self) -> String {
        let micros = (Utc::now().timestamp_micros() as u64).max(self.last_tid + 1);
        self.last_tid = micros;
        let v = (micros << 10) | (next_random() & 0x3ff);
        (0..13)
            .map(|i| S32[((v >> (60 - 5 * i)) & 0x1f) as usize] as char)
            .collect()
    }

    fn profile_basic(&self, did: &str) -> Value {
        let a = self.account(did).expect("known account");
        json!({
            "did": a.did,
            "handle": a.handle,
            "displayName": a.display_name,
            "avatar": format!("https://cdn.bsky.app/img/avatar/plain/{}/bafkreiavatar@jpeg", a.did),
            "associated": {"chat": {"allowIncoming": if a.accepts_messages { "all" } else { "none" }}},
            "viewer": {"muted": false, "blockedBy": false},
            "labels": [],
            "createdAt": ts(&a.created_at),
        })
    }

    fn profile_view(&self, did: &str) -> Value {
        let mut v = self.profile_basic(did);
        let a = self.account(did).expect("known account");
        v["description"] = json!("");
        v["indexedAt"] = json!(ts(&a.created_at));
        v
    }

    fn post_view(&self, p: &PostRec) -> Value {
        let replies = self
            .posts
            .iter()
            .filter(|c| c.record["reply"]["parent"]["uri"] == p.uri.as_str())
            .count();
        json!({
            "uri": p.uri,
            "cid": p.cid,
            "author": self.profile_basic(&p.author),
            "record": p.record,
            "replyCount": replies,
            "repostCount": 0,
            "likeCount": 0,
            "quoteCount": 0,
            "indexedAt": ts(&p.indexed_at),
            "viewer": {"threadMuted": false, "embeddingDisabled": false},
            "labels": [],
        })
    }

    fn post(&self, uri: &str) -> Option<&PostRec> {
        self.posts.iter().find(|p| p.uri == uri)
    }

    /// The post a test's helper (`what`) builds on; the test is wrong if there is none.
    fn known_post(&self, uri: &str, what: &str) -> PostRec {
        self.post(uri)
            .unwrap_or_else(|| panic!("{what}: no post {uri}"))
            .clone()
    }

    /// Adds a post by `author` (a handle), emits it on Jetstream, and returns its index.
    fn insert_post(&mut self, author: &str, record: Value) -> usize {
        let did = self.ensure_account(author);
        let rkey = self.tid();
        let indexed_at = self.next_indexed();
        let cid = cid_of(&record);
        let rev = self.tid();
        self.firehose
            .commit(&did, "create", POST, &rkey, &rev, Some((&record, &cid)));
        self.posts.push(PostRec {
            uri: format!("at://{did}/{POST}/{rkey}"),
            cid,
            author: did,
            collection: POST.into(),
            rkey,
            record,
            indexed_at,
        });
        self.posts.len() - 1
    }

    fn notify(&mut self, uri: &str, reason: &str, subject: Option<String>) {
        let indexed_at = self.next_indexed();
        self.notifications.push(NotifRec {
            uri: uri.to_string(),
            reason: reason.to_string(),
            reason_subject: subject,
            indexed_at,
        });
    }

    fn post_record(&self, text: &str, reply: Option<Value>, mention_brand: bool) -> Value {
        let mut record = json!({
            "$type": POST,
            "text": text,
            "createdAt": ts(&Utc::now()),
            "langs": ["en"],
        });
        if mention_brand {
            if let Some(at) = text.find(&format!("@{BRAND_HANDLE}")) {
                record["facets"] = json!([{
                    "index": {"byteStart": at, "byteEnd": at + 1 + BRAND_HANDLE.len()},
                    "features": [{"$type": "app.bsky.richtext.facet#mention", "did": self.brand_did()}],
                }]);
            }
        }
        if let Some(r) = reply {
            record["reply"] = r;
        }
        record
    }
}

/// Checks an `app.bsky.feed.post` record as the PDS's lexicon validation would.
fn validate_post(record: &Value) -> Result<(), String> {
    let bad = |m: &str| Err(format!("Invalid app.bsky.feed.post record: {m}"));
    let Some(text) = record.get("text").and_then(Value::as_str) else {
        return bad("Record must have the property \"text\"");
    };
    if text.graphemes(true).count() > 300 {
        return bad("Record/text must not be longer than 300 graphemes");
    }
    if text.len() > 3000 {
        return bad("Record/text must not be longer than 3000 characters");
    }
    match record.get("createdAt").and_then(Value::as_str) {
        Some(t) if DateTime::parse_from_rfc3339(t).is_ok() => {}
        Some(_) => {
            return bad(
                "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)",
            )
        }
        None => return bad("Record must have the property \"createdAt\""),
    }
    if let Some(reply) = record.get("reply") {
        for part in ["root", "parent"] {
            let r = &reply[part];
            if !r["uri"].as_str().is_some_and(|u| u.starts_with("at://"))
                || r["cid"].as_str().is_none_or(|c| c.is_empty())
            {
                return bad(&format!(
                    "Record/reply/{part} must be a strongRef (uri, cid)"
                ));
            }
        }
    }
    if let Some(facets) = record.get("facets") {
        let Some(facets) = facets.as_array() else {
            return bad("Record/facets must be an array");
        };
        for (i, f) in facets.iter().enumerate() {
            let start = f["index"]["byteStart"].as_u64();
            let end = f["index"]["byteEnd"].as_u64();
            match (start, end) {
                (Some(s), Some(e)) if s <= e && e as usize <= text.len() => {}
                _ => {
                    return bad(&format!(
                        "Record/facets/{i}/index must be a byteSlice within the text"
                    ))
                }
            }
            let features = f["features"].as_array().cloned().unwrap_or_default();
            if features.is_empty() || features.iter().any(|x| x["$type"].as_str().is_none()) {
                return bad(&format!(
                    "Record/facets/{i}/features must be a non-empty array of typed features"
                ));
            }
        }
    }
    Ok(())
}

impl FakeBluesky {
    /// Starts the fake on an ephemeral 127.0.0.1 port.
    pub async fn start() -> FakeBluesky {
        let listener = Listener::bind("Bluesky", 0).await;
        let mut state = BState {
            accounts: Vec::new(),
            posts: Vec::new(),
            notifications: Vec::new(),
            last_indexed: DateTime::UNIX_EPOCH,
            access: HashMap::new(),
            refresh: HashMap::new(),
            create_sessions: 0,
            refresh_sessions: 0,
            writes: Vec::new(),
            convos: Vec::new(),
            api: Bucket {
                limit: 3000,
                used: 0,
                window_start: 0,
            },
            logins: Bucket {
                limit: 30,
                used: 0,
                window_start: 0,
            },
            forced_remaining: None,
            last_tid: 0,
            firehose: jetstream::Firehose::new(),
        };
        state.ensure_account(BRAND_HANDLE);
        state.accounts[0].display_name = "Brand Support".into();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            lost: FaultQueue::default(),
            server: listener.server(),
            jetstream: jetstream::Sockets::new(),
        });
        listener.serve(
            Router::new()
                .route("/subscribe", axum::routing::get(jetstream::upgrade))
                .fallback(handle)
                .with_state(shared.clone()),
        );
        FakeBluesky { shared }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    pub fn brand_handle(&self) -> &'static str {
        BRAND_HANDLE
    }

    pub fn brand_did(&self) -> String {
        did_for(BRAND_HANDLE)
    }

    pub fn app_password(&self) -> &'static str {
        APP_PASSWORD
    }

    /// The DID of an account (created if new), e.g. `did_of("alice.test")`.
    pub fn did_of(&self, handle: &str) -> String {
        lock(&self.shared).ensure_account(handle)
    }

    /// `handle`'s `followersCount` as `getProfiles` reports it (any JSON, to test hostile
    /// ones; default 12). Notifications carry the basic view, which has no counts.
    pub fn set_followers(&self, handle: &str, followers: Value) {
        let mut st = lock(&self.shared);
        st.ensure_account(handle);
        if let Some(a) = st.accounts.iter_mut().find(|a| a.handle == handle) {
            a.followers = followers;
        }
    }

    /// Whether `handle` accepts chat messages (default true). When false, sendMessage
    /// answers `400 InvalidRequest "recipient has disabled incoming messages"`.
    pub fn set_accepts_messages(&self, handle: &str, accepts: bool) {
        let mut st = lock(&self.shared);
        st.ensure_account(handle);
        if let Some(a) = st.accounts.iter_mut().find(|a| a.handle == handle) {
            a.accepts_messages = accepts;
        }
    }

    /// A top-level post by `author_handle` reading `@brand.test <text>` (with a mention
    /// facet), notified to the brand as `mention`. Returns (uri, cid).
    pub fn add_mention(&self, author_handle: &str, text: &str) -> (String, String) {
        let mut st = lock(&self.shared);
        let text = format!("@{BRAND_HANDLE} {text}");
        let record = st.post_record(&text, None, true);
        let i = st.insert_post(author_handle, record);
        let (uri, cid) = (st.posts[i].uri.clone(), st.posts[i].cid.clone());
        st.notify(&uri, "mention", None);
        (uri, cid)
    }

    /// A reply by `author_handle` to the post `parent_uri` (root = the parent's root, or
    /// the parent). Notified to the brand as `reply` when the parent is the brand's,
    /// else as `mention` (the text then starts with `@brand.test`). Returns (uri, cid).
    pub fn add_reply(&self, author_handle: &str, parent_uri: &str, text: &str) -> (String, String) {
        let mut st = lock(&self.shared);
        let parent = st.known_post(parent_uri, "add_reply");
        let root = if parent.record["reply"]["root"].is_object() {
            parent.record["reply"]["root"].clone()
        } else {
            json!({"uri": parent.uri, "cid": parent.cid})
        };
        let to_brand = parent.author == st.brand_did();
        let text = if to_brand {
            text.to_string()
        } else {
            format!("@{BRAND_HANDLE} {text}")
        };
        let reply = json!({"root": root, "parent": {"uri": parent.uri, "cid": parent.cid}});
        let record = st.post_record(&text, Some(reply), !to_brand);
        let i = st.insert_post(author_handle, record);
        let (uri, cid) = (st.posts[i].uri.clone(), st.posts[i].cid.clone());
        st.notify(
            &uri,
            if to_brand { "reply" } else { "mention" },
            to_brand.then(|| parent.uri.clone()),
        );
        (uri, cid)
    }

    /// A post that does not notify the brand (found only by keyword search).
    pub fn add_post(&self, author_handle: &str, text: &str) -> (String, String) {
        let mut st = lock(&self.shared);
        let record = st.post_record(text, None, false);
        let i = st.insert_post(author_handle, record);
        (st.posts[i].uri.clone(), st.posts[i].cid.clone())
    }

    /// A `like` notification of the post `subject_uri` (never a mention).
    pub fn add_like(&self, author_handle: &str, subject_uri: &str) {
        let mut st = lock(&self.shared);
        let did = st.ensure_account(author_handle);
        let subject = st
            .post(subject_uri)
            .map(|p| json!({"uri": p.uri, "cid": p.cid}))
            .unwrap_or_else(|| panic!("add_like: no post {subject_uri}"));
        let rkey = st.tid();
        let record = json!({"$type": "app.bsky.feed.like", "subject": subject, "createdAt": ts(&Utc::now())});
        let indexed_at = st.next_indexed();
        let rev = st.tid();
        let cid = cid_of(&record);
        st.firehose.commit(
            &did,
            "create",
            "app.bsky.feed.like",
            &rkey,
            &rev,
            Some((&record, &cid)),
        );
        st.posts.push(PostRec {
            uri: format!("at://{did}/app.bsky.feed.like/{rkey}"),
            cid: cid_of(&record),
            author: did,
            collection: "app.bsky.feed.like".into(),
            rkey,
            record,
            indexed_at,
        });
        let uri = st.posts.last().expect("just pushed").uri.clone();
        st.notify(&uri, "like", Some(subject_uri.to_string()));
    }

    /// The `postView` of any post (None if unknown).
    pub fn post_view(&self, uri: &str) -> Option<Value> {
        let st = lock(&self.shared);
        st.post(uri).map(|p| st.post_view(p))
    }

    /// The brand's live posts (`app.bsky.feed.post` records), oldest first.
    pub fn brand_posts(&self) -> Vec<BrandPost> {
        let st = lock(&self.shared);
        let brand = st.brand_did();
        st.posts
            .iter()
            .filter(|p| p.author == brand && p.collection == POST)
            .map(|p| BrandPost {
                uri: p.uri.clone(),
                cid: p.cid.clone(),
                rkey: p.rkey.clone(),
                record: p.record.clone(),
            })
            .collect()
    }

    /// Every accepted write to the brand's repo, in order.
    pub fn writes(&self) -> Vec<Write> {
        lock(&self.shared).writes.clone()
    }

    /// Every chat message in every conversation, in order sent.
    pub fn chat_messages(&self) -> Vec<ChatMessage> {
        let st = lock(&self.shared);
        let mut all: Vec<ChatMessage> = st
            .convos
            .iter()
            .flat_map(|c| c.messages.iter().cloned())
            .collect();
        all.sort_by(|a, b| a.sent_at.cmp(&b.sent_at));
        all
    }

    /// The members (DIDs) of a conversation.
    pub fn convo_members(&self, convo_id: &str) -> Vec<String> {
        lock(&self.shared)
            .convos
            .iter()
            .find(|c| c.id == convo_id)
            .map(|c| c.members.clone())
            .unwrap_or_default()
    }

    /// Every access token issued so far answers `400 ExpiredToken` from now on.
    pub fn expire_access_tokens(&self) {
        for expired in lock(&self.shared).access.values_mut() {
            *expired = true;
        }
    }

    /// Every refresh token issued so far is revoked (the next refresh fails).
    pub fn revoke_refresh_tokens(&self) {
        for used in lock(&self.shared).refresh.values_mut() {
            *used = true;
        }
    }

    /// Successful `createSession` calls.
    pub fn create_session_count(&self) -> usize {
        lock(&self.shared).create_sessions
    }

    /// Successful `refreshSession` calls.
    pub fn refresh_session_count(&self) -> usize {
        lock(&self.shared).refresh_sessions
    }

    /// Pins `ratelimit-remaining` (None = count honestly).
    pub fn set_rate_limit_remaining(&self, remaining: Option<u32>) {
        lock(&self.shared).forced_remaining = remaining;
    }

    /// Queues faults for calls of `nsid` (e.g. "com.atproto.repo.createRecord"); each
    /// call consumes one, in order, before anything is done.
    pub fn fail_next(&self, nsid: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::named(nsid), faults);
    }

    /// The next `n` calls of `nsid` take effect, but their answers never arrive (the
    /// network cut, or the client died, right after the PDS acted).
    pub fn lose_next_answers(&self, nsid: &str, n: usize) {
        self.shared.lost.push_n(Route::named(nsid), n);
    }

    /// Every request seen, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.requests.all()
    }

    /// How many calls of `nsid` arrived.
    pub fn count(&self, nsid: &str) -> usize {
        self.shared.requests.count(|r| r.nsid == nsid)
    }

    /// Waits until the brand has at least `n` live posts; panics after `timeout`.
    pub async fn wait_for_brand_posts(&self, n: usize, timeout: Duration) -> Vec<BrandPost> {
        let what = format!("{n} brand posts on fake Bluesky");
        let posts = || self.brand_posts();
        wait_for_at_least(timeout, &what, n, posts, &self.shared.requests).await
    }

    /// Waits until at least `n` chat messages exist; panics after `timeout`.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ChatMessage> {
        let what = format!("{n} chat messages on fake Bluesky");
        let messages = || self.chat_messages();
        wait_for_at_least(timeout, &what, n, messages, &self.shared.requests).await
    }

    /// Waits until `count(nsid) >= n`; panics after `timeout`.
    pub async fn wait_for_requests(&self, nsid: &str, n: usize, timeout: Duration) {
        let what = format!("{n} {nsid} calls on fake Bluesky");
        super::wait_until(timeout, &what, || self.count(nsid) >= n).await;
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let Call {
        method,
        path,
        query,
        headers,
        body,
        ..
    } = Call::read(req, 4 << 20).await;
    let Some(nsid) = path.strip_prefix("/xrpc/").map(str::to_string) else {
        return xrpc_error(404, "NotFound", "Not Found");
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return xrpc_error(400, "InvalidRequest", "Request body must be JSON"),
        }
    };
    let proxy = headers
        .get("atproto-proxy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    shared.requests.record(SeenRequest {
        method: method.to_string(),
        nsid: nsid.clone(),
        query: query.clone(),
        proxy: proxy.clone(),
        body: body.clone(),
    });
    let fault = shared.faults.take(|r| r.prefix == nsid);
    // A request that draws a fault does not use up an answer to lose.
    let lose = fault.is_none() && shared.lost.take_one(|r| r.prefix == nsid);
    let rate = {
        let mut st = lock(&shared);
        let login = nsid == "com.atproto.server.createSession";
        let bucket = if login { &mut st.logins } else { &mut st.api };
        let limit = bucket.limit;
        let (remaining, reset, over) = bucket.take();
        let remaining = st.forced_remaining.unwrap_or(remaining);
        (limit, remaining, reset, over)
    };
    let (limit, remaining, reset, over) = rate;

    if let Some(refusal) = Fault::play(fault).await {
        let Refusal {
            code, retry_after, ..
        } = refusal;
        let mut resp = refusal.response(|code| {
            let (e, m) = default_error(code);
            xrpc_error(code, e, m)
        });
        let (remaining, reset) = match retry_after {
            Some(secs) => (0, Utc::now().timestamp() + secs as i64),
            None if code == 429 => (0, reset),
            None => (remaining, reset),
        };
        set_rate_headers(resp.headers_mut(), limit, remaining, reset);
        return resp;
    }
    if over {
        let mut resp = xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded");
        set_rate_headers(resp.headers_mut(), limit, 0, reset);
        return resp;
    }

    let mut resp = route(
        &shared,
        &method,
        &nsid,
        &query,
        &headers,
        proxy.as_deref(),
        &body,
    );
    if lose {
        // The PDS acted; the client never hears back.
        return super::scaffold::lose_answer().await;
    }
    set_rate_headers(resp.headers_mut(), limit, remaining, reset);
    resp
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

fn route(
    shared: &Arc<Shared>,
    method: &Method,
    nsid: &str,
    query: &str,
    headers: &HeaderMap,
    proxy: Option<&str>,
    body: &Value,
) -> Response {
    let procedure = matches!(
        nsid,
        "com.atproto.server.createSession"
            | "com.atproto.server.refreshSession"
            | "com.atproto.repo.createRecord"
            | "com.atproto.repo.putRecord"
            | "chat.bsky.convo.sendMessage"
    );
    let known_query = matches!(
        nsid,
        "com.atproto.server.getSession"
            | "app.bsky.notification.listNotifications"
            | "app.bsky.feed.searchPosts"
            | "app.bsky.actor.getProfiles"
            | "chat.bsky.convo.getConvoForMembers"
            | "chat.bsky.convo.getMessages"
    );
    if !procedure && !known_query {
        return xrpc_error(501, "MethodNotImplemented", "Method Not Implemented");
    }
    if procedure && *method != Method::POST {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Incorrect HTTP method (GET) expected POST",
        );
    }
    if known_query && *method != Method::GET {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Incorrect HTTP method (POST) expected GET",
        );
    }
    let mut st = lock(shared);
    if nsid == "com.atproto.server.createSession" {
        return create_session(&mut st, body);
    }
    let Some(token) = bearer(headers) else {
        return xrpc_error(401, "AuthMissing", "Authentication Required");
    };
    if nsid == "com.atproto.server.refreshSession" {
        return match st.refresh.get(&token).copied() {
            Some(false) => {
                st.refresh.insert(token, true);
                st.refresh_sessions += 1;
                session_answer(&mut st)
            }
            Some(true) => xrpc_error(400, "ExpiredToken", "Token has been revoked"),
            None if st.access.contains_key(&token) => {
                xrpc_error(400, "InvalidToken", "Invalid token type")
            }
            None => xrpc_error(400, "InvalidToken", "Token could not be verified"),
        };
    }
    match st.access.get(&token).copied() {
        Some(false) => {}
        Some(true) => return xrpc_error(400, "ExpiredToken", "Token has expired"),
        None if st.refresh.contains_key(&token) => {
            return xrpc_error(400, "InvalidToken", "Invalid token type")
        }
        None => return xrpc_error(400, "InvalidToken", "Token could not be verified"),
    }
    if nsid.starts_with("chat.bsky.") && proxy != Some(CHAT_PROXY) {
        // Without the header the PDS forwards to its AppView, which has no chat.
        return xrpc_error(501, "MethodNotImplemented", "Method Not Implemented");
    }
    let params = query_pairs(query);
    let brand = st.brand_did();
    match nsid {
        "com.atproto.server.getSession" => json_response(
            200,
            &json!({"handle": BRAND_HANDLE, "did": brand, "email": "support@brand.test",
                    "emailConfirmed": true, "emailAuthFactor": false, "active": true}),
        ),
        "app.bsky.notification.listNotifications" => list_notifications(&st, &params),
        "app.bsky.feed.searchPosts" => search_posts(&st, &params),
        "app.bsky.actor.getProfiles" => get_profiles(&st, &params),
        "com.atproto.repo.createRecord" | "com.atproto.repo.putRecord" => {
            write_record(&mut st, nsid, body)
        }
        "chat.bsky.convo.getConvoForMembers" => get_convo(&mut st, &params),
        "chat.bsky.convo.sendMessage" => send_message(&mut st, body),
        "chat.bsky.convo.getMessages" => get_messages(&st, &params),
        _ => xrpc_error(501, "MethodNotImplemented", "Method Not Implemented"),
    }
}

fn session_answer(st: &mut BState) -> Response {
    let (access, refresh) = (token(), token());
    st.access.insert(access.clone(), false);
    st.refresh.insert(refresh.clone(), false);
    json_response(
        200,
        &json!({
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": BRAND_HANDLE,
            "did": st.brand_did(),
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": st.brand_did(),
                "alsoKnownAs": [format!("at://{BRAND_HANDLE}")],
                "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "http://127.0.0.1"}]
            },
            "email": "support@brand.test",
            "emailConfirmed": true,
            "active": true
        }),
    )
}

fn create_session(st: &mut BState, body: &Value) -> Response {
    let identifier = body["identifier"].as_str().unwrap_or_default();
    let password = body["password"].as_str().unwrap_or_default();
    if identifier.is_empty() || password.is_empty() {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Input must have the property \"identifier\" and \"password\"",
        );
    }
    let me = identifier == BRAND_HANDLE || identifier == st.brand_did();
    if !me || password != APP_PASSWORD {
        return xrpc_error(
            401,
            "AuthenticationRequired",
            "Invalid identifier or password",
        );
    }
    st.create_sessions += 1;
    session_answer(st)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The `limit` parameter, or the XRPC error message.
fn limit_param(params: &[(String, String)], default: usize) -> Result<usize, &'static str> {
    match param(params, "limit") {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            Ok(n) if n > 100 => Err("Error: limit can not be greater than 100"),
            _ => Err("Error: limit must be an integer between 1 and 100"),
        },
    }
}

fn list_notifications(st: &BState, params: &[(String, String)]) -> Response {
    let limit = match limit_param(params, 50) {
        Ok(l) => l,
        Err(m) => return xrpc_error(400, "InvalidRequest", m),
    };
    let reasons: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "reasons")
        .map(|(_, v)| v.as_str())
        .collect();
    let before = match param(params, "cursor") {
        Some(c) => match c
            .split("::")
            .next()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) => Some(t.with_timezone(&Utc)),
            None => return xrpc_error(400, "InvalidRequest", "Malformed cursor"),
        },
        None => None,
    };
    let page: Vec<&NotifRec> = st
        .notifications
        .iter()
        .rev()
        .filter(|n| before.is_none_or(|b| n.indexed_at < b))
        .filter(|n| reasons.is_empty() || reasons.contains(&n.reason.as_str()))
        .take(limit)
        .collect();
    let items: Vec<Value> = page
        .iter()
        .filter_map(|n| {
            let p = st.post(&n.uri)?;
            let mut v = json!({
                "uri": p.uri,
                "cid": p.cid,
                "author": st.profile_view(&p.author),
                "reason": n.reason,
                "record": p.record,
                "isRead": false,
                "indexedAt": ts(&n.indexed_at),
                "labels": [],
            });
            if let Some(s) = &n.reason_subject {
                v["reasonSubject"] = json!(s);
            }
            Some(v)
        })
        .collect();
    let mut out = json!({"notifications": items, "priority": false});
    if let Some(last) = page.last() {
        let cid = st
            .post(&last.uri)
            .map(|p| p.cid.clone())
            .unwrap_or_default();
        out["cursor"] = json!(format!("{}::{cid}", ts(&last.indexed_at)));
    }
    json_response(200, &out)
}

fn get_profiles(st: &BState, params: &[(String, String)]) -> Response {
    let actors: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "actors")
        .map(|(_, v)| v.as_str())
        .collect();
    if actors.is_empty() {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Error: Params must have the property \"actors\"",
        );
    }
    if actors.len() > 25 {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Error: actors must not have more than 25 elements",
        );
    }
    let profiles: Vec<Value> = actors
        .iter()
        .filter_map(|a| st.account(a).or_else(|| st.by_handle(a)))
        .map(|a| {
            let mut v = st.profile_view(&a.did);
            let posts = st.posts.iter().filter(|p| p.author == a.did).count();
            v["followersCount"] = a.followers.clone();
            v["followsCount"] = json!(34);
            v["postsCount"] = json!(posts);
            v
        })
        .collect();
    json_response(200, &json!({"profiles": profiles}))
}

fn search_posts(st: &BState, params: &[(String, String)]) -> Response {
    let Some(q) = param(params, "q").filter(|q| !q.trim().is_empty()) else {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Error: Params must have the property \"q\"",
        );
    };
    let limit = match limit_param(params, 25) {
        Ok(l) => l,
        Err(m) => return xrpc_error(400, "InvalidRequest", m),
    };
    let time = |k: &str| -> Result<Option<DateTime<Utc>>, String> {
        match param(params, k) {
            None => Ok(None),
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| format!("{k} must be a datetime")),
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(m), _) | (_, Err(m)) => return xrpc_error(400, "BadQueryString", &m),
    };
    let offset: usize = match param(params, "cursor") {
        Some(c) => match c.parse() {
            Ok(n) => n,
            Err(_) => return xrpc_error(400, "InvalidRequest", "Malformed cursor"),
        },
        None => 0,
    };
    let needle = q.to_lowercase();
    let hits: Vec<&PostRec> = st
        .posts
        .iter()
        .rev()
        .filter(|p| p.collection == POST)
        .filter(|p| {
            p.record["text"]
                .as_str()
                .is_some_and(|t| t.to_lowercase().contains(&needle))
        })
        .filter(|p| since.is_none_or(|s| p.indexed_at >= s))
        .filter(|p| until.is_none_or(|u| p.indexed_at < u))
        .collect();
    let page: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| st.post_view(p))
        .collect();
    let mut out = json!({"posts": page, "hitsTotal": hits.len()});
    if offset + limit < hits.len() {
        out["cursor"] = json!((offset + limit).to_string());
    }
    json_response(200, &out)
}

fn write_record(st: &mut BState, nsid: &str, body: &Value) -> Response {
    let put = nsid == "com.atproto.repo.putRecord";
    let brand = st.brand_did();
    let repo = body["repo"].as_str().unwrap_or_default();
    if repo.is_empty() {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Input must have the property \"repo\"",
        );
    }
    if repo != brand && repo != BRAND_HANDLE {
        return xrpc_error(401, "AuthRequired", "Invalid did");
    }
    let Some(collection) = body["collection"]
        .as_str()
        .filter(|c| c.split('.').count() >= 3)
    else {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Input/collection must be a valid nsid",
        );
    };
    let record = body["record"].clone();
    if !record.is_object() {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Input must have the property \"record\"",
        );
    }
    if record["$type"].as_str() != Some(collection) {
        return xrpc_error(
            400,
            "InvalidRequest",
            &format!(
                "Invalid $type: expected {collection}, got {}",
                record["$type"]
            ),
        );
    }
    if collection == POST {
        if let Err(m) = validate_post(&record) {
            return xrpc_error(400, "InvalidRequest", &m);
        }
    }
    let rkey = match body["rkey"].as_str() {
        Some(k) if valid_rkey(k) => k.to_string(),
        Some(_) => {
            return xrpc_error(
                400,
                "InvalidRequest",
                "Input/rkey must be a valid Record Key",
            )
        }
        None if put => {
            return xrpc_error(
                400,
                "InvalidRequest",
                "Input must have the property \"rkey\"",
            )
        }
        None => st.tid(),
    };
    let uri = format!("at://{brand}/{collection}/{rkey}");
    let cid = cid_of(&record);
    let existing = st.posts.iter().position(|p| p.uri == uri);
    if let (Some(swap), Some(i)) = (body["swapRecord"].as_str(), existing) {
        if st.posts[i].cid != swap {
            return xrpc_error(
                400,
                "InvalidSwap",
                &format!("Record was at {}", st.posts[i].cid),
            );
        }
    }
    let outcome = match existing {
        Some(_) if !put => {
            return xrpc_error(
                400,
                "InvalidRequest",
                &format!("Record already exists at {uri}"),
            )
        }
        Some(i) if st.posts[i].cid == cid => WriteOutcome::Unchanged,
        Some(i) => {
            st.posts[i].record = record.clone();
            st.posts[i].cid = cid.clone();
            let rev = st.tid();
            st.firehose.commit(
                &brand,
                "update",
                collection,
                &rkey,
                &rev,
                Some((&record, &cid)),
            );
            WriteOutcome::Replaced
        }
        None => {
            let indexed_at = st.next_indexed();
            let rev = st.tid();
            st.firehose.commit(
                &brand,
                "create",
                collection,
                &rkey,
                &rev,
                Some((&record, &cid)),
            );
            st.posts.push(PostRec {
                uri: uri.clone(),
                cid: cid.clone(),
                author: brand.clone(),
                collection: collection.to_string(),
                rkey: rkey.clone(),
                record: record.clone(),
                indexed_at,
            });
            WriteOutcome::Created
        }
    };
    st.writes.push(Write {
        nsid: nsid.to_string(),
        collection: collection.to_string(),
        rkey,
        record,
        outcome: outcome.clone(),
    });
    let mut out = json!({"uri": uri, "cid": cid, "validationStatus": "valid"});
    if outcome != WriteOutcome::Unchanged {
        out["commit"] =
            json!({"cid": format!("bafyreicommit{:013x}", next_random() >> 12), "rev": st.tid()});
    }
    json_response(200, &out)
}

fn convo_view(st: &BState, c: &Convo) -> Value {
    let mut v = json!({
        "id": c.id,
        "rev": format!("{:013}", c.rev),
        "members": c.members.iter().map(|m| st.profile_basic(m)).collect::<Vec<_>>(),
        "muted": false,
        "status": "accepted",
        "unreadCount": 0,
    });
    if let Some(last) = c.messages.last() {
        v["lastMessage"] = message_view(last);
    }
    v
}

fn message_view(m: &ChatMessage) -> Value {
    let mut v = json!({
        "$type": "chat.bsky.convo.defs#messageView",
        "id": m.id,
        "rev": m.id,
        "text": m.text,
        "sender": {"did": m.sender_did},
        "sentAt": m.sent_at,
    });
    if let Some(f) = &m.facets {
        v["facets"] = f.clone();
    }
    v
}

fn get_convo(st: &mut BState, params: &[(String, String)]) -> Response {
    let brand = st.brand_did();
    let mut members: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "members")
        .map(|(_, v)| v.clone())
        .collect();
    if members.is_empty() || members.len() > 10 {
        return xrpc_error(
            400,
            "InvalidRequest",
            "Error: members must have between 1 and 10 items",
        );
    }
    if let Some(unknown) = members.iter().find(|m| st.account(m).is_none()) {
        return xrpc_error(
            400,
            "InvalidRequest",
            &format!("Actor not found: {unknown}"),
        );
    }
    members.push(brand);
    members.sort();
    members.dedup();
    let i = match st.convos.iter().position(|c| c.members == members) {
        Some(i) => i,
        None => {
            let id = st.tid();
            st.convos.push(Convo {
                id,
                rev: 1,
                members,
                messages: Vec::new(),
            });
            st.convos.len() - 1
        }
    };
    json_response(200, &json!({"convo": convo_view(st, &st.convos[i])}))
}

fn send_message(st: &mut BState, body: &Value) -> Response {
    let brand = st.brand_did();
    let convo_id = body["convoId"].as_str().unwrap_or_default().to_string();
    let text = body["message"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(ci) = st
        .convos
        .iter()
        .position(|c| c.id == convo_id && c.members.contains(&brand))
    else {
        return xrpc_error(400, "InvalidConvo", "Convo not found");
    };
    if text.trim().is_empty() {
        return xrpc_error(400, "InvalidRequest", "Message text can not be empty");
    }
    if text.graphemes(true).count() > 1000 || text.len() > 10_000 {
        return xrpc_error(400, "InvalidRequest", "Message is too long");
    }
    let refuses = st.convos[ci]
        .members
        .iter()
        .filter(|m| **m != brand)
        .any(|m| st.account(m).is_some_and(|a| !a.accepts_messages));
    if refuses {
        return xrpc_error(
            400,
            "InvalidRequest",
            "recipient has disabled incoming messages",
        );
    }
    let id = st.tid();
    let msg = ChatMessage {
        id,
        convo_id,
        sender_did: brand,
        text,
        facets: body["message"].get("facets").cloned(),
        sent_at: ts(&Utc::now()),
    };
    let convo = &mut st.convos[ci];
    convo.rev += 1;
    convo.messages.push(msg.clone());
    json_response(200, &message_view(&msg))
}

fn get_messages(st: &BState, params: &[(String, String)]) -> Response {
    let brand = st.brand_did();
    let limit = match limit_param(params, 50) {
        Ok(l) => l,
        Err(m) => return xrpc_error(400, "InvalidRequest", m),
    };
    let convo_id = param(params, "convoId").unwrap_or_default();
    let Some(c) = st
        .convos
        .iter()
        .find(|c| c.id == convo_id && c.members.contains(&brand))
    else {
        return xrpc_error(400, "InvalidConvo", "Convo not found");
    };
    let before = param(params, "cursor");
    let page: Vec<&ChatMessage> = c
        .messages
        .iter()
        .rev()
        .filter(|m| before.is_none_or(|b| m.id.as_str() < b))
        .take(limit)
        .collect();
    let mut out = json!({"messages": page.iter().map(|m| message_view(m)).collect::<Vec<_>>()});
    if page.len() == limit {
        if let Some(last) = page.last() {
            out["cursor"] = json!(last.id);
        }
    }
    json_response(200, &out)
}
