//! A fake Mastodon server on 127.0.0.1 speaking the real REST API for the parts
//! mentionbridge uses. Shapes follow docs.joinmastodon.org (entities Account,
//! CredentialAccount, Status, Notification, Instance v2) and Mastodon's controllers
//! (pagination `Link` header, rate-limit headers, error bodies).
//!
//! Semantics worth knowing:
//! - Ids are opaque strings that sort in creation order ([`IdStyle::Numeric`]:
//!   snowflake-like status/account ids and sequential notification ids, as Mastodon;
//!   [`IdStyle::Ulid`]: 26-char ULIDs, as GoToSocial). The fake orders by creation
//!   index, never by parsing an id; an id it never issued is placed by comparing
//!   (length, string).
//! - `GET /api/v2/instance` is public (no token needed; a wrong token is still 401);
//!   every other endpoint needs `Authorization: Bearer mastodon-test-token`.
//! - Rate-limit headers are honest, modelled on Mastodon's rack-attack throttles:
//!   300 requests per 5 minutes for every request, and 300 per 15 minutes for paging
//!   requests (any `min_id`/`max_id`/`since_id`/`page`), windows aligned like
//!   Mastodon's; the headers describe the most limited throttle that applies. So a
//!   poller sending `min_id` every 2 s sees `X-RateLimit-Remaining` run out. Going
//!   over only answers 429 after `set_enforce_rate_limit(true)` (raise the limits with
//!   `set_rate_limit`/`set_paging_rate_limit` for load tests). Real Mastodon's 429
//!   carries no `Retry-After`, only `X-RateLimit-Reset`; [`Fault::too_many_requests`]
//!   adds one, `Fault::status(429)` does not.
//! - Deleting a status (`delete_status`) also hides its mention notification, as
//!   Mastodon destroys the notification with the mention.
//! - The streaming API (`GET /api/v1/streaming`, websocket) pushes every mention and
//!   hashtag status the fake gains; see `streaming.rs` for its wire format and controls.
use super::scaffold::{
    bearer, json_response, query_pairs, wait_for_at_least, Call, FakeServer, FaultQueue, Listener,
    Refusal, RequestLog, Route,
};
use super::{next_random, now_millis, Fault};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

pub mod streaming;

/// The only bearer token the fake accepts.
pub const TOKEN: &str = "mastodon-test-token-CANARY4ef901ac311e543d";
/// The brand account's id.
pub const BRAND_ID: &str = "109000000000000001";
/// The brand account's acct/username.
pub const BRAND_ACCT: &str = "brand";

const RATE_PERIOD_SECS: i64 = 300;

/// How the fake mints ids. Set it before adding anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdStyle {
    /// Mastodon: 18-digit snowflake-like status/account ids, 8-digit sequential
    /// notification ids.
    Numeric,
    /// GoToSocial: 26-character Crockford base32 ULIDs, time ordered.
    Ulid,
}

/// Ids of a mention created with [`FakeMastodon::add_mention`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MentionIds {
    pub notification_id: String,
    pub status_id: String,
}

/// A status created through `POST /api/v1/statuses`, as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostedStatus {
    pub id: String,
    /// The raw `status` text.
    pub status: String,
    pub in_reply_to_id: Option<String>,
    /// `visibility` as sent (None when the client left it out).
    pub visibility: Option<String>,
    pub language: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug)]
struct AccountRec {
    id: String,
    username: String,
    acct: String,
    display_name: String,
    url: String,
    uri: String,
    created_at: DateTime<Utc>,
    /// `followers_count` (as raw JSON, so a test can make it hostile).
    followers: Value,
}

#[derive(Clone, Debug)]
struct StatusRec {
    id: String,
    account: String, // acct
    text: String,
    content: String,
    in_reply_to_id: Option<String>,
    in_reply_to_account_id: Option<String>,
    visibility: String,
    language: Option<String>,
    created_at: DateTime<Utc>,
    mentions: Vec<String>, // accts
    deleted: bool,
}

#[derive(Clone, Debug)]
struct NotifRec {
    id: String,
    kind: String,
    account: String, // acct
    status_id: Option<String>,
    created_at: DateTime<Utc>,
    filtered: bool,
}

struct IdGen {
    style: IdStyle,
    last_snowflake: u64,
    notif_seq: u64,
    last_ulid_ms: u64,
    last_ulid_rand: u128,
}

impl IdGen {
    fn snowflake(&mut self) -> String {
        let candidate = (now_millis() << 16) | (next_random() & 0x3ff);
        self.last_snowflake = candidate.max(self.last_snowflake + 1);
        self.last_snowflake.to_string()
    }

    fn ulid(&mut self) -> String {
        let ms = now_millis().max(self.last_ulid_ms);
        let rand = if ms == self.last_ulid_ms {
            self.last_ulid_rand + 1
        } else {
            // 79 random bits: room to increment without overflowing 80 bits.
            (((next_random() as u128) << 64) | next_random() as u128) & ((1u128 << 79) - 1)
        };
        self.last_ulid_ms = ms;
        self.last_ulid_rand = rand;
        let value: u128 = ((ms as u128) << 80) | rand;
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *slot = ALPHABET[((value >> shift) & 0x1f) as usize];
        }
        String::from_utf8(out.to_vec()).expect("ascii")
    }

    fn status_id(&mut self) -> String {
        match self.style {
            IdStyle::Numeric => self.snowflake(),
            IdStyle::Ulid => self.ulid(),
        }
    }

    fn account_id(&mut self) -> String {
        self.status_id()
    }

    fn notification_id(&mut self) -> String {
        match self.style {
            IdStyle::Numeric => {
                self.notif_seq += 1;
                self.notif_seq.to_string()
            }
            IdStyle::Ulid => self.ulid(),
        }
    }
}

/// One rack-attack throttle: `limit` requests per `period` seconds, windows aligned
/// to multiples of the period since the epoch (as Mastodon computes the reset).
struct Bucket {
    limit: u32,
    period: i64,
    used: u32,
    period_start: i64,
}

impl Bucket {
    fn new(limit: u32, period: i64) -> Bucket {
        Bucket {
            limit,
            period,
            used: 0,
            period_start: 0,
        }
    }

    fn roll(&mut self, now: i64) {
        let start = now - now.rem_euclid(self.period);
        if start != self.period_start {
            self.period_start = start;
            self.used = 0;
        }
    }

    fn reset(&self) -> String {
        DateTime::<Utc>::from_timestamp(self.period_start + self.period, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

struct RateState {
    /// `throttle_per_token_api`: 300 per 5 minutes for every /api request.
    api: Bucket,
    /// `throttle_authenticated_paging`: 300 per 15 minutes for requests carrying
    /// `min_id`/`max_id`/`since_id`/`page`.
    paging: Bucket,
    forced_remaining: Option<u32>,
    enforce: bool,
}

struct MState {
    base: String,
    ids: IdGen,
    accounts: HashMap<String, AccountRec>, // by acct
    statuses: Vec<StatusRec>,
    status_idx: HashMap<String, usize>,
    notifications: Vec<NotifRec>,
    notif_idx: HashMap<String, usize>,
    posted: Vec<PostedStatus>,
    idempotency: HashMap<(String, String), String>,
    ignore_idempotency: bool,
    max_characters: usize,
    default_visibility: String,
    /// Set on every injected `Fault::Status` answer, over the fake's own headers: odd
    /// or hostile values (`Retry-After: 1e300`, `X-RateLimit-Reset: soon`).
    fault_headers: Vec<(String, String)>,
    rate: RateState,
    /// When set, new mentions are written at this instant (a test walking simulated time).
    clock: Option<DateTime<Utc>>,
}

struct Shared {
    state: Mutex<MState>,
    /// (method, path and query) of every request.
    requests: RequestLog<(String, String)>,
    faults: FaultQueue,
    hold: watch::Sender<bool>,
    held_now: AtomicUsize,
    server: FakeServer,
    hub: streaming::Hub,
}

/// Handle to a running fake Mastodon server (cheap to clone; all clones share state).
#[derive(Clone)]
pub struct FakeMastodon {
    shared: Arc<Shared>,
}

/// Builder for a mention with non-default properties; see [`FakeMastodon::mention`].
pub struct MentionBuilder<'a> {
    fake: &'a FakeMastodon,
    author: String,
    text: String,
    visibility: String,
    in_reply_to_id: Option<String>,
    filtered: bool,
    language: Option<String>,
}

impl MentionBuilder<'_> {
    /// `public` (default), `unlisted`, `private` or `direct`.
    pub fn visibility(mut self, visibility: &str) -> Self {
        self.visibility = visibility.to_string();
        self
    }

    /// Makes the mention a reply to an existing status (e.g. the brand's answer).
    pub fn in_reply_to(mut self, status_id: &str) -> Self {
        self.in_reply_to_id = Some(status_id.to_string());
        self
    }

    /// Marks the notification as filtered by the notification policy (Mastodon 4.3+):
    /// listed only with `include_filtered=true`.
    pub fn filtered(mut self) -> Self {
        self.filtered = true;
        self
    }

    /// Language of the status (default "en"); `None` makes it null.
    pub fn language(mut self, language: Option<&str>) -> Self {
        self.language = language.map(str::to_string);
        self
    }

    pub fn add(self) -> MentionIds {
        self.fake.insert_mention(
            &self.author,
            &self.text,
            &self.visibility,
            self.in_reply_to_id.as_deref(),
            self.filtered,
            self.language.as_deref(),
        )
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, MState> {
    super::scaffold::lock(&shared.state)
}

fn ts(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Length as Mastodon's StatusLengthValidator counts it: every http(s) URL counts as
/// 23 characters, a remote mention `@user@domain` counts as `@user`.
pub fn countable_length(text: &str) -> usize {
    let whitespace = text.chars().filter(|c| c.is_whitespace()).count();
    let words: usize = text
        .split(char::is_whitespace)
        .map(|word| {
            if (word.starts_with("http://") || word.starts_with("https://")) && word.len() > 8 {
                23
            } else if let Some(rest) = word.strip_prefix('@') {
                match rest.find('@') {
                    Some(at) if at > 0 => 1 + rest[..at].chars().count(),
                    _ => word.chars().count(),
                }
            } else {
                word.chars().count()
            }
        })
        .sum();
    whitespace + words
}

impl MState {
    fn account_json(&self, acct: &str) -> Value {
        let a = &self.accounts[acct];
        let statuses_count = self
            .statuses
            .iter()
            .filter(|s| s.account == acct && !s.deleted)
            .count();
        let last_status_at = self
            .statuses
            .iter()
            .rev()
            .find(|s| s.account == acct && !s.deleted)
            .map(|s| s.created_at.format("%Y-%m-%d").to_string());
        json!({
            "id": a.id,
            "username": a.username,
            "acct": a.acct,
            "display_name": a.display_name,
            "locked": false,
            "bot": acct == BRAND_ACCT,
            "discoverable": true,
            "indexable": false,
            "group": false,
            "created_at": ts(&a.created_at),
            "note": "",
            "url": a.url,
            "uri": a.uri,
            "avatar": format!("{}/avatars/original/missing.png", self.base),
            "avatar_static": format!("{}/avatars/original/missing.png", self.base),
            "header": format!("{}/headers/original/missing.png", self.base),
            "header_static": format!("{}/headers/original/missing.png", self.base),
            "followers_count": a.followers,
            "following_count": 0,
            "statuses_count": statuses_count,
            "last_status_at": last_status_at,
            "hide_collections": null,
            "noindex": false,
            "emojis": [],
            "roles": [],
            "fields": []
        })
    }

    fn mention_json(&self, acct: &str) -> Value {
        let a = &self.accounts[acct];
        json!({"id": a.id, "username": a.username, "url": a.url, "acct": a.acct})
    }

    fn status_url(&self, st: &StatusRec) -> String {
        format!("{}/{}", self.accounts[&st.account].url, st.id)
    }

    fn status_json(&self, st: &StatusRec) -> Value {
        let author = &self.accounts[&st.account];
        let replies_count = self
            .statuses
            .iter()
            .filter(|s| !s.deleted && s.in_reply_to_id.as_deref() == Some(st.id.as_str()))
            .count();
        let application = if st.account == BRAND_ACCT {
            json!({"name": "mentionbridge", "website": null})
        } else {
            Value::Null
        };
        json!({
            "id": st.id,
            "created_at": ts(&st.created_at),
            "in_reply_to_id": st.in_reply_to_id,
            "in_reply_to_account_id": st.in_reply_to_account_id,
            "sensitive": false,
            "spoiler_text": "",
            "visibility": st.visibility,
            "language": st.language,
            "uri": format!("{}/statuses/{}", author.uri, st.id),
            "url": self.status_url(st),
            "replies_count": replies_count,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": null,
            "favourited": false,
            "reblogged": false,
            "muted": false,
            "bookmarked": false,
            "content": st.content,
            "filtered": [],
            "reblog": null,
            "application": application,
            "account": self.account_json(&st.account),
            "media_attachments": [],
            "mentions": st.mentions.iter().map(|m| self.mention_json(m)).collect::<Vec<_>>(),
            "tags": [],
            "emojis": [],
            "card": null,
            "poll": null
        })
    }

    fn notification_json(&self, n: &NotifRec) -> Value {
        let mut v = json!({
            "id": n.id,
            "type": n.kind,
            "created_at": ts(&n.created_at),
            "group_key": format!("ungrouped-{}", n.id),
            "account": self.account_json(&n.account),
        });
        if let Some(sid) = &n.status_id {
            if let Some(&i) = self.status_idx.get(sid) {
                v["status"] = self.status_json(&self.statuses[i]);
            }
        }
        v
    }

    fn live_status(&self, id: &str) -> Option<&StatusRec> {
        self.status_idx
            .get(id)
            .map(|&i| &self.statuses[i])
            .filter(|s| !s.deleted)
    }

    fn ensure_account(&mut self, acct: &str) {
        if self.accounts.contains_key(acct) {
            return;
        }
        let (username, domain) = match acct.split_once('@') {
            Some((u, d)) => (u.to_string(), Some(d.to_string())),
            None => (acct.to_string(), None),
        };
        let (url, uri) = match &domain {
            Some(d) => (
                format!("https://{d}/@{username}"),
                format!("https://{d}/users/{username}"),
            ),
            None => (
                format!("{}/@{username}", self.base),
                format!("{}/users/{username}", self.base),
            ),
        };
        let mut display_name = username.clone();
        if let Some(first) = display_name.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let id = self.ids.account_id();
        self.accounts.insert(
            acct.to_string(),
            AccountRec {
                id,
                username,
                acct: acct.to_string(),
                display_name,
                url,
                uri,
                created_at: Utc::now() - chrono::Duration::days(400),
                followers: json!(0),
            },
        );
    }

    /// `<span class="h-card">` link for a local or known account.
    fn h_card(&self, acct: &str) -> String {
        let a = &self.accounts[acct];
        format!(
            "<span class=\"h-card\"><a href=\"{}\" class=\"u-url mention\">@<span>{}</span></a></span>",
            a.url,
            html_escape(&a.username)
        )
    }

    /// Resolves `@name` / `@name@domain` against known accounts.
    fn resolve_mention(&self, word: &str) -> Option<String> {
        let handle = word
            .strip_prefix('@')?
            .trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
        if self.accounts.contains_key(handle) {
            return Some(handle.to_string());
        }
        self.accounts
            .values()
            .find(|a| !a.acct.contains('@') && a.username == handle)
            .map(|a| a.acct.clone())
    }

    /// Renders plain status text as Mastodon's HTML (paragraphs, `<br />`, mention
    /// h-cards, links); returns the HTML and the mentioned accts.
    fn render(&self, text: &str, prefix_mention: Option<&str>) -> (String, Vec<String>) {
        let mut mentions: Vec<String> = Vec::new();
        if let Some(m) = prefix_mention {
            mentions.push(m.to_string());
        }
        let normalized = text.replace("\r\n", "\n");
        let mut html = String::new();
        for (pi, para) in normalized.split("\n\n").enumerate() {
            html.push_str("<p>");
            if pi == 0 {
                if let Some(m) = prefix_mention {
                    html.push_str(&self.h_card(m));
                    html.push(' ');
                }
            }
            for (li, line) in para.split('\n').enumerate() {
                if li > 0 {
                    html.push_str("<br />");
                }
                for (wi, word) in line.split(' ').enumerate() {
                    if wi > 0 {
                        html.push(' ');
                    }
                    if let Some(acct) = self.resolve_mention(word) {
                        let handle_len = word.len()
                            - word
                                .trim_start_matches('@')
                                .trim_start_matches(|c: char| {
                                    c.is_alphanumeric() || c == '_' || c == '@' || c == '.'
                                })
                                .len();
                        html.push_str(&self.h_card(&acct));
                        html.push_str(&html_escape(&word[handle_len..]));
                        if !mentions.contains(&acct) {
                            mentions.push(acct);
                        }
                    } else if word.starts_with("http://") || word.starts_with("https://") {
                        let (scheme, rest) = word.split_at(word.find("//").unwrap_or(0) + 2);
                        html.push_str(&format!(
                            "<a href=\"{}\" target=\"_blank\" rel=\"nofollow noopener noreferrer\" translate=\"no\"><span class=\"invisible\">{}</span><span class=\"\">{}</span><span class=\"invisible\"></span></a>",
                            html_escape(word),
                            html_escape(scheme),
                            html_escape(rest)
                        ));
                    } else {
                        html.push_str(&html_escape(word));
                    }
                }
            }
            html.push_str("</p>");
        }
        (html, mentions)
    }

    /// Creation-order key of an id: known ids get odd keys (2i+1), unknown ids the
    /// even key of the gap they fall into when compared as (length, string).
    fn notif_key(&self, id: &str) -> usize {
        if let Some(&i) = self.notif_idx.get(id) {
            return 2 * i + 1;
        }
        let p = self
            .notifications
            .partition_point(|n| (n.id.len(), n.id.as_str()) < (id.len(), id));
        2 * p
    }

    /// Counts one request against the throttles that apply and returns the headers
    /// of the most limited one, as Mastodon does: (limit, remaining, reset, over limit).
    fn rate_headers(&mut self, paging: bool) -> (u32, u32, String, bool) {
        let now = Utc::now().timestamp();
        let mut buckets = vec![&mut self.rate.api];
        if paging {
            buckets.push(&mut self.rate.paging);
        }
        let mut over = false;
        for b in buckets.iter_mut() {
            b.roll(now);
            b.used = b.used.saturating_add(1);
            over |= b.used > b.limit;
        }
        let most_limited = buckets
            .iter()
            .min_by_key(|b| b.limit as i64 - b.used as i64)
            .expect("one bucket");
        let remaining = most_limited.limit.saturating_sub(most_limited.used);
        let (limit, reset) = (most_limited.limit, most_limited.reset());
        let remaining = self.rate.forced_remaining.unwrap_or(remaining);
        (limit, remaining, reset, over && self.rate.enforce)
    }
}

fn error(code: u16, message: &str) -> Response {
    json_response(code, &json!({ "error": message }))
}

fn default_error_body(code: u16) -> &'static str {
    match code {
        401 => "The access token is invalid",
        403 => "This action is not allowed",
        404 => "Record not found",
        410 => "The page you were looking for doesn't exist here",
        422 => "Validation failed",
        429 => "Too many requests",
        503 => "The page could not be served due to a temporary server failure.",
        _ => "We're sorry, but something went wrong on our end.",
    }
}

impl FakeMastodon {
    /// Starts the fake on an ephemeral 127.0.0.1 port.
    pub async fn start() -> FakeMastodon {
        Self::start_on(0).await
    }

    /// Starts the fake on a fixed 127.0.0.1 port (0 = ephemeral).
    pub async fn start_on(port: u16) -> FakeMastodon {
        let listener = Listener::bind("Mastodon", port).await;
        let base = listener.server().url();
        let mut state = MState {
            base: base.clone(),
            ids: IdGen {
                style: IdStyle::Numeric,
                last_snowflake: 0,
                notif_seq: 34_975_000,
                last_ulid_ms: 0,
                last_ulid_rand: 0,
            },
            accounts: HashMap::new(),
            statuses: Vec::new(),
            status_idx: HashMap::new(),
            notifications: Vec::new(),
            notif_idx: HashMap::new(),
            posted: Vec::new(),
            idempotency: HashMap::new(),
            ignore_idempotency: false,
            max_characters: 500,
            default_visibility: "public".to_string(),
            fault_headers: Vec::new(),
            rate: RateState {
                api: Bucket::new(300, RATE_PERIOD_SECS),
                paging: Bucket::new(300, 15 * 60),
                forced_remaining: None,
                enforce: false,
            },
            clock: None,
        };
        state.accounts.insert(
            BRAND_ACCT.to_string(),
            AccountRec {
                id: BRAND_ID.to_string(),
                username: BRAND_ACCT.to_string(),
                acct: BRAND_ACCT.to_string(),
                display_name: "Brand Support".to_string(),
                url: format!("{base}/@{BRAND_ACCT}"),
                uri: format!("{base}/users/{BRAND_ACCT}"),
                created_at: DateTime::<Utc>::from_timestamp(1_672_531_200, 0).unwrap_or_default(),
                followers: json!(4200),
            },
        );
        let (hold, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            hold,
            held_now: AtomicUsize::new(0),
            server: listener.server(),
            hub: streaming::Hub::default(),
        });
        listener.serve(
            Router::new()
                .route("/api/v1/streaming", axum::routing::get(streaming::upgrade))
                .fallback(handle)
                .with_state(shared.clone()),
        );
        FakeMastodon { shared }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    pub fn port(&self) -> u16 {
        self.shared.server.port()
    }

    /// The bearer token the fake accepts.
    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// The brand account's id ("109000000000000001").
    pub fn brand_id(&self) -> &'static str {
        BRAND_ID
    }

    /// `acct`'s `followers_count` (any JSON, to test hostile ones; default 0).
    pub fn set_followers(&self, acct: &str, followers: Value) {
        let mut st = lock(&self.shared);
        st.ensure_account(acct);
        if let Some(a) = st.accounts.get_mut(acct) {
            a.followers = followers;
        }
    }

    /// How new ids look. Call before adding anything.
    pub fn set_id_style(&self, style: IdStyle) {
        lock(&self.shared).ids.style = style;
    }

    /// `configuration.statuses.max_characters` (default 500), enforced on posts.
    pub fn set_max_characters(&self, n: usize) {
        lock(&self.shared).max_characters = n;
    }

    /// When true, `Idempotency-Key` is ignored (like some Mastodon-compatible servers).
    pub fn set_ignore_idempotency(&self, ignore: bool) {
        lock(&self.shared).ignore_idempotency = ignore;
    }

    /// Visibility used when a post leaves `visibility` out (default "public"; many
    /// accounts default to "unlisted").
    pub fn set_default_visibility(&self, visibility: &str) {
        lock(&self.shared).default_visibility = visibility.to_string();
    }

    /// The per-token API throttle (default 300 requests per 5 minutes).
    pub fn set_rate_limit(&self, limit: u32) {
        lock(&self.shared).rate.api.limit = limit;
    }

    /// The paging throttle for requests with `min_id`/`max_id`/`since_id`/`page`
    /// (default 300 per 15 minutes, as Mastodon's `throttle_authenticated_paging`).
    pub fn set_paging_rate_limit(&self, limit: u32) {
        lock(&self.shared).rate.paging.limit = limit;
    }

    /// Pins `X-RateLimit-Remaining` to a value (None = count honestly).
    pub fn set_rate_limit_remaining(&self, remaining: Option<u32>) {
        lock(&self.shared).rate.forced_remaining = remaining;
    }

    /// When true, requests past the limit get Mastodon's 429 (no Retry-After).
    pub fn set_enforce_rate_limit(&self, enforce: bool) {
        lock(&self.shared).rate.enforce = enforce;
    }

    /// Write new mentions at `at` (a test's simulated time) instead of the real time.
    pub fn set_clock(&self, at: Option<DateTime<Utc>>) {
        lock(&self.shared).clock = at;
    }

    /// A public mention of the brand by `author_acct` ("alice" or "alice@remote.example").
    pub fn add_mention(&self, author_acct: &str, text: &str) -> MentionIds {
        self.insert_mention(author_acct, text, "public", None, false, Some("en"))
    }

    /// A mention with the given visibility, optionally replying to a status.
    pub fn add_mention_with(
        &self,
        author_acct: &str,
        text: &str,
        visibility: &str,
        in_reply_to_id: Option<&str>,
    ) -> MentionIds {
        self.insert_mention(
            author_acct,
            text,
            visibility,
            in_reply_to_id,
            false,
            Some("en"),
        )
    }

    /// A public status that does not mention the brand (found through hashtag
    /// timelines); returns its id.
    pub fn add_status(&self, author_acct: &str, text: &str) -> String {
        let mut st = lock(&self.shared);
        st.ensure_account(author_acct);
        let (content, mentions) = st.render(text, None);
        let status_id = st.ids.status_id();
        let rec = StatusRec {
            id: status_id.clone(),
            account: author_acct.to_string(),
            text: text.to_string(),
            content,
            in_reply_to_id: None,
            in_reply_to_account_id: None,
            visibility: "public".to_string(),
            language: Some("en".to_string()),
            created_at: Utc::now(),
            mentions,
            deleted: false,
        };
        let idx = st.statuses.len();
        st.status_idx.insert(status_id.clone(), idx);
        st.statuses.push(rec);
        st.stream_status(&self.shared.hub, idx);
        status_id
    }

    /// Builder: `fake.mention("alice", "hi").visibility("direct").in_reply_to(id).add()`.
    pub fn mention(&self, author_acct: &str, text: &str) -> MentionBuilder<'_> {
        MentionBuilder {
            fake: self,
            author: author_acct.to_string(),
            text: text.to_string(),
            visibility: "public".to_string(),
            in_reply_to_id: None,
            filtered: false,
            language: Some("en".to_string()),
        }
    }

    fn insert_mention(
        &self,
        author: &str,
        text: &str,
        visibility: &str,
        in_reply_to_id: Option<&str>,
        filtered: bool,
        language: Option<&str>,
    ) -> MentionIds {
        let mut st = lock(&self.shared);
        st.ensure_account(author);
        let in_reply_to_account_id = in_reply_to_id.map(|rid| {
            let parent = st.live_status(rid).unwrap_or_else(|| {
                panic!("add_mention: in_reply_to_id {rid} is not a live status")
            });
            st.accounts[&parent.account].id.clone()
        });
        let (content, mentions) = st.render(text, Some(BRAND_ACCT));
        let status_id = st.ids.status_id();
        let now = st.clock.unwrap_or_else(Utc::now);
        let rec = StatusRec {
            id: status_id.clone(),
            account: author.to_string(),
            text: format!("@{BRAND_ACCT} {text}"),
            content,
            in_reply_to_id: in_reply_to_id.map(str::to_string),
            in_reply_to_account_id,
            visibility: visibility.to_string(),
            language: language.map(str::to_string),
            created_at: now,
            mentions,
            deleted: false,
        };
        let idx = st.statuses.len();
        st.status_idx.insert(status_id.clone(), idx);
        st.statuses.push(rec);
        let notification_id = st.ids.notification_id();
        let nidx = st.notifications.len();
        st.notif_idx.insert(notification_id.clone(), nidx);
        st.notifications.push(NotifRec {
            id: notification_id.clone(),
            kind: "mention".to_string(),
            account: author.to_string(),
            status_id: Some(status_id.clone()),
            created_at: now,
            filtered,
        });
        st.stream_status(&self.shared.hub, idx);
        st.stream_notification(&self.shared.hub, nidx);
        MentionIds {
            notification_id,
            status_id,
        }
    }

    /// A non-mention notification (`favourite`, `reblog` point at the brand's latest
    /// status if any; `follow` has none). Returns the notification id.
    pub fn add_notification(&self, kind: &str, author_acct: &str) -> String {
        let mut st = lock(&self.shared);
        st.ensure_account(author_acct);
        let status_id = if kind == "follow" || kind == "follow_request" {
            None
        } else {
            st.statuses
                .iter()
                .rev()
                .find(|s| s.account == BRAND_ACCT && !s.deleted)
                .map(|s| s.id.clone())
        };
        let id = st.ids.notification_id();
        let nidx = st.notifications.len();
        st.notif_idx.insert(id.clone(), nidx);
        st.notifications.push(NotifRec {
            id: id.clone(),
            kind: kind.to_string(),
            account: author_acct.to_string(),
            status_id,
            created_at: Utc::now(),
            filtered: false,
        });
        st.stream_notification(&self.shared.hub, nidx);
        id
    }

    /// A second `mention` notification of an existing status (a server delivering the
    /// same post again, e.g. after its notification was re-created); its id.
    pub fn notify_again(&self, status_id: &str) -> String {
        let mut st = lock(&self.shared);
        let account = st
            .statuses
            .iter()
            .find(|s| s.id == status_id)
            .map(|s| s.account.clone())
            .expect("notify_again: a status that exists");
        let id = st.ids.notification_id();
        let nidx = st.notifications.len();
        st.notif_idx.insert(id.clone(), nidx);
        st.notifications.push(NotifRec {
            id: id.clone(),
            kind: "mention".to_string(),
            account,
            status_id: Some(status_id.to_string()),
            created_at: Utc::now(),
            filtered: false,
        });
        st.stream_notification(&self.shared.hub, nidx);
        id
    }

    /// Deletes a status: afterwards 404 on get/context/reply-to, and its mention
    /// notification disappears. Returns false if it did not exist.
    pub fn delete_status(&self, id: &str) -> bool {
        let mut st = lock(&self.shared);
        match st.status_idx.get(id).copied() {
            Some(i) if !st.statuses[i].deleted => {
                st.statuses[i].deleted = true;
                true
            }
            _ => false,
        }
    }

    /// The Status entity as the API would return it (None if unknown or deleted).
    pub fn status(&self, id: &str) -> Option<Value> {
        let st = lock(&self.shared);
        st.live_status(id).map(|s| st.status_json(s))
    }

    /// Every status created by `POST /api/v1/statuses`, in creation order.
    pub fn posted_statuses(&self) -> Vec<PostedStatus> {
        lock(&self.shared).posted.clone()
    }

    /// Posted statuses that reply to `status_id`.
    pub fn replies_to(&self, status_id: &str) -> Vec<PostedStatus> {
        lock(&self.shared)
            .posted
            .iter()
            .filter(|p| p.in_reply_to_id.as_deref() == Some(status_id))
            .cloned()
            .collect()
    }

    /// While true, `POST /api/v1/statuses` is fully processed and recorded but the
    /// response is withheld; setting it back to false releases the held responses.
    pub fn hold_status_posts(&self, hold: bool) {
        self.shared.hold.send_replace(hold);
    }

    /// How many status-post responses are being withheld right now.
    pub fn held_posts(&self) -> usize {
        self.shared.held_now.load(Ordering::SeqCst)
    }

    /// Queues faults for requests whose path starts with `path_prefix`. The prefix may
    /// start with a method ("POST /api/v1/statuses") to match only that method. Each
    /// matching request consumes one fault, in order.
    pub fn fail_next(&self, path_prefix: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::parse(path_prefix), faults);
    }

    /// Headers every injected status fault answers with, whatever their value says.
    pub fn set_fault_headers(&self, headers: &[(&str, &str)]) {
        lock(&self.shared).fault_headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Every request seen, as (method, path and query), in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.shared.requests.all()
    }

    /// Requests with this method (e.g. "GET") whose path starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .requests
            .count(|(m, p)| m.eq_ignore_ascii_case(method) && p.starts_with(path_prefix))
    }

    pub fn clear_requests(&self) {
        self.shared.requests.clear();
    }

    /// Waits (polling every 10 ms) until at least `n` statuses were posted; panics
    /// after `timeout`.
    pub async fn wait_for_posts(&self, n: usize, timeout: Duration) -> Vec<PostedStatus> {
        let what = format!("{n} posted statuses on fake Mastodon");
        let posted = || self.posted_statuses();
        wait_for_at_least(timeout, &what, n, posted, &self.shared.requests).await
    }

    /// Waits until `count(method, path_prefix) >= n`; panics after `timeout`.
    pub async fn wait_for_requests(
        &self,
        method: &str,
        path_prefix: &str,
        n: usize,
        timeout: Duration,
    ) {
        let what = format!("{n} {method} {path_prefix} requests on fake Mastodon");
        super::wait_until(timeout, &what, || self.count(method, path_prefix) >= n).await;
    }
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

    let paging = query_pairs(&query).iter().any(|(k, v)| {
        matches!(k.as_str(), "min_id" | "max_id" | "since_id" | "page") && !v.is_empty()
    });
    shared.requests.record((method.to_string(), path_and_query));
    let fault = shared.faults.take(|r| r.matches(method.as_str(), &path));
    if let Some(refusal) = Fault::play(fault).await {
        let Refusal {
            code, retry_after, ..
        } = refusal;
        let mut resp = refusal.response(|code| error(code, default_error_body(code)));
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        let (limit, remaining, reset, _) = lock(&shared).rate_headers(paging);
        let (remaining, reset) = if code == 429 {
            let reset = match retry_after {
                Some(secs) => (Utc::now() + chrono::Duration::seconds(secs as i64))
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
                None => reset,
            };
            (0, reset)
        } else {
            (remaining, reset)
        };
        set_rate_headers(resp.headers_mut(), limit, remaining, &reset);
        for (k, v) in lock(&shared).fault_headers.clone() {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        return resp;
    }

    let (limit, remaining, reset, over) = lock(&shared).rate_headers(paging);
    if over {
        let mut resp = error(429, "Too many requests");
        set_rate_headers(resp.headers_mut(), limit, 0, &reset);
        return resp;
    }

    let mut response = route(&shared, &method, &path, &query, &headers, &body).await;
    set_rate_headers(response.headers_mut(), limit, remaining, &reset);
    response
}

fn set_rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: &str) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    if let Ok(v) = HeaderValue::from_str(reset) {
        headers.insert("x-ratelimit-reset", v);
    }
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let token = bearer(headers);
    let token_ok = token.as_deref() == Some(TOKEN);
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();

    // Public endpoint: no token needed, but a wrong one is rejected like Doorkeeper does.
    if *method == Method::GET && segments == ["api", "v2", "instance"] {
        if token.is_some() && !token_ok {
            return error(401, "The access token is invalid");
        }
        let facts = shared.hub.instance_facts(&shared.server.url());
        return json_response(200, &instance_json(&lock(shared), facts));
    }
    if !token_ok {
        return error(401, "The access token is invalid");
    }

    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["api", "v1", "accounts", "verify_credentials"]) => {
            let st = lock(shared);
            let mut v = st.account_json(BRAND_ACCT);
            v["source"] = json!({
                "privacy": st.default_visibility,
                "sensitive": false,
                "language": "en",
                "note": "",
                "fields": [],
                "follow_requests_count": 0,
                "hide_collections": false,
                "discoverable": true,
                "indexable": false
            });
            v["role"] = json!({
                "id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": false
            });
            json_response(200, &v)
        }
        (Method::GET, ["api", "v1", "notifications"]) => list_notifications(shared, query),
        (Method::GET, ["api", "v1", "timelines", "tag", tag]) => tag_timeline(shared, tag, query),
        (Method::GET, ["api", "v1", "notifications", id]) => {
            let st = lock(shared);
            match st.notif_idx.get(*id).map(|&i| &st.notifications[i]) {
                Some(n)
                    if n.status_id
                        .as_deref()
                        .is_none_or(|s| st.live_status(s).is_some()) =>
                {
                    json_response(200, &st.notification_json(n))
                }
                _ => error(404, "Record not found"),
            }
        }
        (Method::POST, ["api", "v1", "statuses"]) => {
            post_status(shared, headers, body, token).await
        }
        (Method::GET, ["api", "v1", "statuses", id]) => {
            let st = lock(shared);
            match st.live_status(id) {
                Some(s) => json_response(200, &st.status_json(s)),
                None => error(404, "Record not found"),
            }
        }
        (Method::GET, ["api", "v1", "statuses", id, "context"]) => {
            let st = lock(shared);
            let Some(s) = st.live_status(id) else {
                return error(404, "Record not found");
            };
            let mut ancestors = Vec::new();
            let mut cursor = s.in_reply_to_id.clone();
            while let Some(pid) = cursor {
                match st.live_status(&pid) {
                    Some(p) => {
                        ancestors.push(st.status_json(p));
                        cursor = p.in_reply_to_id.clone();
                    }
                    None => break,
                }
            }
            ancestors.reverse();
            let mut descendants = Vec::new();
            let mut stack = vec![s.id.clone()];
            while let Some(parent) = stack.pop() {
                let children: Vec<&StatusRec> = st
                    .statuses
                    .iter()
                    .filter(|c| !c.deleted && c.in_reply_to_id.as_deref() == Some(parent.as_str()))
                    .collect();
                // depth-first, children in creation order
                for c in children.iter().rev() {
                    stack.push(c.id.clone());
                }
                if parent != s.id {
                    if let Some(p) = st.live_status(&parent) {
                        descendants.push(st.status_json(p));
                    }
                }
            }
            json_response(
                200,
                &json!({"ancestors": ancestors, "descendants": descendants}),
            )
        }
        _ => error(404, "Record not found"),
    }
}

/// `(version, source_url, streaming URL)` come from the streaming side's settings.
fn instance_json(
    st: &MState,
    (version, source_url, streaming): (&str, &str, Option<String>),
) -> Value {
    let mut urls = Map::new();
    if let Some(url) = streaming {
        urls.insert("streaming".into(), Value::String(url));
    }
    json!({
        "domain": "127.0.0.1",
        "title": "Fake Mastodon",
        "version": version,
        "source_url": source_url,
        "description": "A fake Mastodon server for mentionbridge tests",
        "usage": {"users": {"active_month": 2}},
        "thumbnail": {"url": format!("{}/packs/media/images/preview.png", st.base)},
        "icon": [],
        "languages": ["en"],
        "configuration": {
            "urls": urls,
            "vapid": {"public_key": "BCkMmVdKDnKYwzVCDC99Iuc9GvId-x7-kKtuHnLgfF98ENiZp_aj-UNthbCdI70DqN1zUVis-x0Wrot2sBagkMc="},
            "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
            "statuses": {
                "max_characters": st.max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": 23
            },
            "media_attachments": {
                "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],
                "description_limit": 1500,
                "image_size_limit": 16777216,
                "image_matrix_limit": 33177600,
                "video_size_limit": 103809024,
                "video_frame_rate_limit": 120,
                "video_matrix_limit": 8294400
            },
            "polls": {
                "max_options": 4,
                "max_characters_per_option": 50,
                "min_expiration": 300,
                "max_expiration": 2629746
            },
            "translation": {"enabled": false}
        },
        "registrations": {"enabled": false, "approval_required": false, "message": null},
        "api_versions": {"mastodon": 2},
        "contact": {"email": "admin@127.0.0.1", "account": st.account_json(BRAND_ACCT)},
        "rules": []
    })
}

/// `GET /api/v1/timelines/tag/:hashtag`: public statuses with the hashtag, newest first,
/// with `max_id`, `since_id`, `min_id` and `limit` (default 20, at most 40) as Mastodon.
fn tag_timeline(shared: &Arc<Shared>, tag: &str, query: &str) -> Response {
    let params = query_pairs(query);
    let get = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let limit = get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 40);
    let st = lock(shared);
    let key_of = |id: &str| match st.status_idx.get(id) {
        Some(&i) => 2 * i + 1,
        None => {
            2 * st
                .statuses
                .partition_point(|s| (s.id.len(), s.id.as_str()) < (id.len(), id))
        }
    };
    let (max_key, since_key, min_key) = (
        get("max_id").map(|id| key_of(&id)),
        get("since_id").map(|id| key_of(&id)),
        get("min_id").map(|id| key_of(&id)),
    );
    let needle = format!("#{}", tag.to_lowercase());
    let visible: Vec<usize> = (0..st.statuses.len())
        .filter(|&i| {
            let s = &st.statuses[i];
            !s.deleted
                && s.visibility == "public"
                && s.text
                    .to_lowercase()
                    .split(|c: char| c.is_whitespace())
                    .any(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()) == needle)
                && max_key.is_none_or(|m| 2 * i + 1 < m)
        })
        .collect();
    let page = paginate(&visible, min_key, since_key, limit);
    let body: Vec<Value> = page
        .iter()
        .map(|&i| st.status_json(&st.statuses[i]))
        .collect();
    json_response(200, &Value::Array(body))
}

/// Mastodon's page of `visible` indices (creation order; key of index i is 2i+1), newest
/// first: with `min_id` the oldest `limit` after it (paginate_by_min_id, then reversed),
/// otherwise the newest `limit` after `since_id`.
fn paginate(
    visible: &[usize],
    min_key: Option<usize>,
    since_key: Option<usize>,
    limit: usize,
) -> Vec<usize> {
    if let Some(min) = min_key {
        let mut p: Vec<usize> = visible
            .iter()
            .copied()
            .filter(|&i| 2 * i + 1 > min)
            .take(limit)
            .collect();
        p.reverse();
        p
    } else {
        visible
            .iter()
            .rev()
            .copied()
            .filter(|&i| since_key.is_none_or(|s| 2 * i + 1 > s))
            .take(limit)
            .collect()
    }
}

fn list_notifications(shared: &Arc<Shared>, query: &str) -> Response {
    let params = query_pairs(query);
    let get = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let list = |k: &str| -> Vec<String> {
        params
            .iter()
            .filter(|(pk, _)| pk == &format!("{k}[]") || pk == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let types = list("types");
    let exclude_types = list("exclude_types");
    let account_id = get("account_id");
    let include_filtered = matches!(get("include_filtered").as_deref(), Some("true" | "1"));
    let limit = match get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map(|l| l.unsigned_abs().min(80) as usize)
            .unwrap_or(40),
        None => 40,
    };

    let st = lock(shared);
    let max_key = get("max_id").map(|id| st.notif_key(&id));
    let since_key = get("since_id").map(|id| st.notif_key(&id));
    let min_key = get("min_id").map(|id| st.notif_key(&id));

    let visible: Vec<usize> = (0..st.notifications.len())
        .filter(|&i| {
            let n = &st.notifications[i];
            let key = 2 * i + 1;
            (types.is_empty() || types.contains(&n.kind))
                && !exclude_types.contains(&n.kind)
                && (include_filtered || !n.filtered)
                && n.status_id
                    .as_deref()
                    .is_none_or(|s| st.live_status(s).is_some())
                && account_id
                    .as_deref()
                    .is_none_or(|a| st.accounts[&n.account].id == a)
                && max_key.is_none_or(|m| key < m)
        })
        .collect();

    let page = paginate(&visible, min_key, since_key, limit);

    let body: Vec<Value> = page
        .iter()
        .map(|&i| st.notification_json(&st.notifications[i]))
        .collect();
    let mut resp = json_response(200, &Value::Array(body));
    if let (Some(&first), Some(&last)) = (page.first(), page.last()) {
        let mut kept: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "limit"
                        | "account_id"
                        | "types[]"
                        | "exclude_types[]"
                        | "types"
                        | "exclude_types"
                        | "include_filtered"
                )
            })
            .map(|(k, v)| {
                let k = if k == "types" || k == "exclude_types" {
                    format!("{k}[]")
                } else {
                    k.clone()
                };
                (k, v.clone())
            })
            .collect();
        kept.dedup();
        let link_for = |key: &str, id: &str| {
            let mut parts: Vec<String> = kept
                .iter()
                .chain(std::iter::once(&(key.to_string(), id.to_string())))
                .map(|(k, v)| {
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair(k, v)
                        .finish()
                })
                .collect();
            parts.sort();
            format!("{}/api/v1/notifications?{}", st.base, parts.join("&"))
        };
        let next = link_for("max_id", &st.notifications[last].id);
        let prev = link_for("min_id", &st.notifications[first].id);
        let link = format!("<{next}>; rel=\"next\", <{prev}>; rel=\"prev\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert("link", v);
        }
    }
    resp
}

/// Reads the post parameters from a JSON or form-encoded body.
fn post_params(headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let from_json = || -> Option<Map<String, Value>> {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().cloned())
    };
    let from_form = || -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            m.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        m
    };
    if ct.starts_with("application/json") {
        from_json().unwrap_or_default()
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        from_form()
    } else {
        from_json().unwrap_or_else(from_form)
    }
}

fn param_string(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn post_status(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: &[u8],
    token: Option<String>,
) -> Response {
    let params = post_params(headers, body);
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = param_string(&params, "status").unwrap_or_default();
    let in_reply_to_id = param_string(&params, "in_reply_to_id");
    let visibility = param_string(&params, "visibility");
    let language = param_string(&params, "language");

    let result: Result<Value, Response> = {
        let mut st = lock(shared);
        let token = token.unwrap_or_default();
        let duplicate = match (&idempotency_key, st.ignore_idempotency) {
            (Some(key), false) => st
                .idempotency
                .get(&(token.clone(), key.clone()))
                .and_then(|id| st.live_status(id))
                .map(|s| st.status_json(s)),
            _ => None,
        };
        if let Some(dup) = duplicate {
            Ok(dup)
        } else {
            let max = st.max_characters;
            let parent = in_reply_to_id
                .as_deref()
                .map(|rid| st.live_status(rid).cloned());
            if text.trim().is_empty() {
                Err(error(422, "Validation failed: Text can't be blank"))
            } else if matches!(parent, Some(None)) {
                Err(error(404, "Record not found"))
            } else if countable_length(&text) > max {
                Err(error(
                    422,
                    &format!("Validation failed: Text character limit of {max} exceeded"),
                ))
            } else if visibility
                .as_deref()
                .is_some_and(|v| !["public", "unlisted", "private", "direct"].contains(&v))
            {
                Err(error(
                    422,
                    "Validation failed: Visibility is not included in the list",
                ))
            } else {
                let parent = parent.flatten();
                let (content, mentions) = st.render(&text, None);
                let id = st.ids.status_id();
                let rec = StatusRec {
                    id: id.clone(),
                    account: BRAND_ACCT.to_string(),
                    text: text.clone(),
                    content,
                    in_reply_to_id: parent.as_ref().map(|p| p.id.clone()),
                    in_reply_to_account_id: parent
                        .as_ref()
                        .map(|p| st.accounts[&p.account].id.clone()),
                    visibility: visibility
                        .clone()
                        .unwrap_or_else(|| st.default_visibility.clone()),
                    language: language.clone().or_else(|| Some("en".to_string())),
                    created_at: Utc::now(),
                    mentions,
                    deleted: false,
                };
                let idx = st.statuses.len();
                st.status_idx.insert(id.clone(), idx);
                st.statuses.push(rec);
                st.stream_status(&shared.hub, idx);
                if let Some(key) = &idempotency_key {
                    st.idempotency.insert((token, key.clone()), id.clone());
                }
                st.posted.push(PostedStatus {
                    id: id.clone(),
                    status: text.clone(),
                    in_reply_to_id: in_reply_to_id.clone(),
                    visibility: visibility.clone(),
                    language: language.clone(),
                    idempotency_key: idempotency_key.clone(),
                });
                Ok(st.status_json(&st.statuses[idx]))
            }
        }
    };

    match result {
        Err(resp) => resp,
        Ok(status) => {
            let mut rx = shared.hold.subscribe();
            if *rx.borrow_and_update() {
                // Decrements even if the connection is dropped while held.
                struct Held<'a>(&'a AtomicUsize);
                impl Drop for Held<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                shared.held_now.fetch_add(1, Ordering::SeqCst);
                let _held = Held(&shared.held_now);
                while *rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
            json_response(200, &status)
        }
    }
}
