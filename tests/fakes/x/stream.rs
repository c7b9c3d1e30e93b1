//! The fake X's filtered stream (docs.x.com "Filtered stream": quickstart, handling
//! disconnections, the rules endpoints): `GET`/`POST /2/tweets/search/stream/rules` and
//! `GET /2/tweets/search/stream`, all with the app's Bearer Token (OAuth 2.0 App-Only)
//! only.
//!
//! - Auth: [`APP_BEARER_TOKEN`] or 401 (`{"title":"Unauthorized",...}`); a user-context
//!   token (OAuth 2.0 access token or an OAuth 1.0a header) is X's 403 "Unsupported
//!   Authentication". [`FakeX::set_stream_not_enrolled`] makes every one of these
//!   endpoints answer X's 403 `client-not-enrolled` problem instead.
//! - Rules have snowflake ids. `GET` answers `{"data":[{"id","value","tag"}],"meta":
//!   {"sent","result_count"}}` (no `data` when there are none; `ids=` filters). `POST`
//!   takes exactly one of `{"add":[{"value","tag"}]}` or `{"delete":{"ids":[...]}}` and
//!   answers the rules created in `data`, `meta.summary` (`created`, `not_created`,
//!   `valid`, `invalid`; or `deleted`, `not_deleted`) and `errors` for single rules:
//!   `DuplicateRule` (with the existing rule's `id`) when the value is already a rule,
//!   `Invalid Rule` past 1,024 characters or for an empty value, `Not Found` for a
//!   delete of an unknown id. `dry_run=true` checks without changing anything.
//! - The stream is chunked newline-delimited JSON: one `{"data":{...},"includes":
//!   {"users":[...]},"matching_rules":[{"id","tag"}]}` line per post (with the
//!   connection's `tweet.fields`/`expansions`), and a bare `\r\n` keep-alive every 20 s
//!   ([`FakeX::set_keep_alive`]). A post a test adds (or the brand creates) goes to every
//!   open stream when it matches a rule. Matching is simple, and only this: the terms of
//!   a rule all hold (AND; no `OR`, no grouping); `@handle` is a mention of that handle
//!   as a word, `from:user` and `-from:user` the author, `"a phrase"` and a bare word a
//!   case-insensitive substring of the text, `-word` its absence, `-is:retweet` always
//!   holds (the fake has no reposts).
//! - Test controls: drop every stream abruptly (no final chunk), split the next post line
//!   across two chunks, go quiet (no more keep-alives), send any raw line (an `errors`
//!   object) or bytes, refuse the next connects ([`FakeX::fail_next_connects`]), and count
//!   connections and rules calls.

use super::super::scaffold::{bearer, json_response, query_pairs};
use super::super::wait_until;
use super::{error, lock, ts, FakeX, Shared, TweetRec, XState};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;

/// The app's Bearer Token (OAuth 2.0 App-Only) the stream endpoints accept.
pub const APP_BEARER_TOKEN: &str = "x-app-bearer-token-test-CANARY5d2f0a7c93b1e864";
/// X's detail in its `client-not-enrolled` 403.
pub const NOT_ENROLLED_DETAIL: &str = "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.";
/// X's longest rule on the pay-per-use tier.
pub const MAX_RULE_CHARS: usize = 1024;
const STREAM: &str = "/2/tweets/search/stream";
const RULES: &str = "/2/tweets/search/stream/rules";
/// The pause between the two halves of a split line, so they arrive as two chunks.
const SPLIT_PAUSE: Duration = Duration::from_millis(60);

/// A rule on the fake's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRule {
    pub id: String,
    pub value: String,
    pub tag: Option<String>,
}

/// What a test (or a new post) pushes down the open streams.
#[derive(Clone, Debug)]
enum Push {
    /// A complete line; `\r\n` is added.
    Line(String),
    /// A line sent in two chunks, the second a moment later.
    Split(String),
    /// Bytes as they are, no line break added.
    Raw(Vec<u8>),
    /// End the connection without the final chunk.
    Drop,
    /// No more keep-alives on this connection.
    Quiet,
}

/// One open stream connection.
struct LiveStream {
    push: mpsc::UnboundedSender<Push>,
    fields: HashSet<String>,
    /// The `user.fields` of the expanded author, if it is expanded.
    expand_author: Option<HashSet<String>>,
}

/// The stream's part of the fake's state.
pub(super) struct StreamState {
    rules: Vec<StreamRule>,
    live: Vec<LiveStream>,
    keep_alive: Duration,
    not_enrolled: bool,
    split_next: bool,
    /// Post lines sent, per connection summed.
    posts_sent: usize,
}

impl Default for StreamState {
    fn default() -> Self {
        StreamState {
            rules: Vec::new(),
            live: Vec::new(),
            keep_alive: Duration::from_secs(20),
            not_enrolled: false,
            split_next: false,
            posts_sent: 0,
        }
    }
}

/// Whether this request is for one of the stream's endpoints.
pub(super) fn is_stream_path(path: &str) -> bool {
    path == STREAM || path == RULES
}

/// Whether this request is a connect (for the connect-only faults).
pub(super) fn is_connect(method: &Method, path: &str) -> bool {
    method == Method::GET && path == STREAM
}

/// The stream's endpoints, after the rate limits and faults `handle` applies and the
/// caller passed [`app_only`].
pub(super) fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Response {
    let q: HashMap<String, String> = query_pairs(query).into_iter().collect();
    match (method.as_str(), path) {
        ("GET", RULES) => list_rules(shared, &q),
        ("POST", RULES) => change_rules(shared, &q, body),
        ("GET", STREAM) => connect(shared, &q),
        _ => error(404, "Sorry, that page does not exist"),
    }
}

/// The app's bearer token, or X's refusal.
pub(super) fn app_only(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let mut st = lock(shared);
    let unsupported = |kind: &str| {
        json_response(
            403,
            &json!({
                "title": "Unsupported Authentication",
                "detail": format!("Authenticating with {kind} is forbidden for this endpoint.  Supported authentication types are [OAuth 2.0 Application-Only]."),
                "type": "https://api.twitter.com/2/problems/unsupported-authentication",
                "status": 403
            }),
        )
    };
    let oauth1 = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("OAuth "));
    match bearer(headers) {
        Some(t) if t == APP_BEARER_TOKEN => {}
        Some(t) if st.access_tokens.contains_key(&t) => {
            return Err(Box::new(unsupported("OAuth 2.0 User Context")))
        }
        None if oauth1 => return Err(Box::new(unsupported("OAuth 1.0a User Context"))),
        other => {
            st.auth_failures.push(format!(
                "stream: {}",
                if other.is_some() {
                    "unknown bearer token"
                } else {
                    "no bearer token"
                }
            ));
            return Err(Box::new(json_response(
                401,
                &json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}),
            )));
        }
    }
    if st.stream.not_enrolled {
        return Err(Box::new(json_response(
            403,
            &json!({
                "client_id": "27000001",
                "detail": NOT_ENROLLED_DETAIL,
                "registration_url": "https://developer.x.com/en/docs/projects/overview",
                "title": "Client Forbidden",
                "required_enrollment": "Appropriate Level of API Access",
                "reason": "client-not-enrolled",
                "type": "https://api.twitter.com/2/problems/client-forbidden"
            }),
        )));
    }
    Ok(())
}

fn rule_json(r: &StreamRule) -> Value {
    let mut v = json!({"id": r.id, "value": r.value});
    if let Some(t) = &r.tag {
        v["tag"] = json!(t);
    }
    v
}

fn list_rules(shared: &Shared, q: &HashMap<String, String>) -> Response {
    let st = lock(shared);
    let ids: Option<HashSet<&str>> = q.get("ids").map(|i| i.split(',').collect());
    let rules: Vec<Value> = st
        .stream
        .rules
        .iter()
        .filter(|r| ids.as_ref().is_none_or(|ids| ids.contains(r.id.as_str())))
        .map(rule_json)
        .collect();
    let meta = json!({"sent": ts(&Utc::now()), "result_count": rules.len()});
    if rules.is_empty() {
        return json_response(200, &json!({ "meta": meta }));
    }
    json_response(200, &json!({"data": rules, "meta": meta}))
}

fn invalid_request(detail: &str) -> Response {
    json_response(
        400,
        &json!({
            "errors": [{"message": detail}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"
        }),
    )
}

fn change_rules(shared: &Shared, q: &HashMap<String, String>, body: &[u8]) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return invalid_request("Request body is not valid JSON");
    };
    let dry_run = q.get("dry_run").is_some_and(|d| d == "true");
    match (v.get("add"), v.get("delete")) {
        (Some(add), None) => add_rules(shared, add, dry_run),
        (None, Some(delete)) => delete_rules(shared, delete, dry_run),
        _ => invalid_request("Exactly one of `add` or `delete` is required"),
    }
}

fn add_rules(shared: &Shared, add: &Value, dry_run: bool) -> Response {
    let Some(list) = add.as_array().filter(|l| !l.is_empty()) else {
        return invalid_request("`add` must be a non-empty array of rules");
    };
    let mut st = lock(shared);
    let mut created = Vec::new();
    let mut errors = Vec::new();
    let mut invalid = 0;
    for item in list {
        let value = item["value"].as_str().unwrap_or("").to_string();
        let tag = item["tag"].as_str().map(str::to_string);
        if value.trim().is_empty() || value.chars().count() > MAX_RULE_CHARS {
            invalid += 1;
            errors.push(json!({
                "value": value,
                "details": [format!("Rule text must be 1 to {MAX_RULE_CHARS} characters long")],
                "title": "Invalid Rule",
                "type": "https://api.twitter.com/2/problems/invalid-rules"
            }));
            continue;
        }
        let existing = st
            .stream
            .rules
            .iter()
            .chain(created.iter())
            .find(|r| r.value == value);
        if let Some(r) = existing {
            errors.push(json!({
                "value": value,
                "id": r.id,
                "title": "DuplicateRule",
                "type": "https://api.twitter.com/2/problems/duplicate-rules"
            }));
            continue;
        }
        let id = st.next_id().to_string();
        created.push(StreamRule { id, value, tag });
    }
    let summary = json!({
        "created": if dry_run { 0 } else { created.len() },
        "not_created": list.len() - created.len(),
        "valid": list.len() - invalid,
        "invalid": invalid,
    });
    let data: Vec<Value> = created.iter().map(rule_json).collect();
    let made = !created.is_empty();
    if !dry_run {
        st.stream.rules.extend(created);
    }
    let mut answer = json!({"meta": {"sent": ts(&Utc::now()), "summary": summary}});
    if made {
        answer["data"] = json!(data);
    }
    if !errors.is_empty() {
        answer["errors"] = json!(errors);
    }
    json_response(if made && !dry_run { 201 } else { 200 }, &answer)
}

fn delete_rules(shared: &Shared, delete: &Value, dry_run: bool) -> Response {
    let Some(ids) = delete["ids"].as_array().filter(|l| !l.is_empty()) else {
        return invalid_request("`delete.ids` must be a non-empty array of rule ids");
    };
    let mut st = lock(shared);
    let mut deleted = 0;
    let mut errors = Vec::new();
    for id in ids {
        let id = id.as_str().unwrap_or("");
        match st.stream.rules.iter().position(|r| r.id == id) {
            Some(i) => {
                if !dry_run {
                    st.stream.rules.remove(i);
                }
                deleted += 1;
            }
            None => errors.push(json!({
                "value": id,
                "detail": "Rule does not exist",
                "title": "Not Found Error",
                "type": "https://api.twitter.com/2/problems/resource-not-found"
            })),
        }
    }
    let mut answer = json!({"meta": {"sent": ts(&Utc::now()), "summary": {
        "deleted": if dry_run { 0 } else { deleted },
        "not_deleted": ids.len() - deleted,
    }}});
    if !errors.is_empty() {
        answer["errors"] = json!(errors);
    }
    json_response(200, &answer)
}

/// `GET /2/tweets/search/stream`: a chunked body that lasts until a test drops it.
fn connect(shared: &Shared, q: &HashMap<String, String>) -> Response {
    let (fields, expand_author) = super::asked_fields(q);
    let (push, pushed) = mpsc::unbounded_channel();
    let keep_alive = {
        let mut st = lock(shared);
        st.stream.live.retain(|l| !l.push.is_closed());
        st.stream.live.push(LiveStream {
            push,
            fields,
            expand_author,
        });
        st.stream.keep_alive
    };
    let mut resp = Response::new(Body::from_stream(body(pushed, keep_alive)));
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// The bytes of one connection: pushed lines as they come, keep-alives between.
fn body(
    pushed: mpsc::UnboundedReceiver<Push>,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    struct Conn {
        pushed: mpsc::UnboundedReceiver<Push>,
        ticks: tokio::time::Interval,
        quiet: bool,
        later: VecDeque<Bytes>,
        ended: bool,
    }
    let conn = Conn {
        pushed,
        ticks: tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive),
        quiet: false,
        later: VecDeque::new(),
        ended: false,
    };
    futures_util::stream::unfold(conn, |mut c| async move {
        if c.ended {
            return None;
        }
        if let Some(rest) = c.later.pop_front() {
            tokio::time::sleep(SPLIT_PAUSE).await;
            return Some((Ok(rest), c));
        }
        loop {
            tokio::select! {
                push = c.pushed.recv() => match push {
                    Some(Push::Line(line)) => return Some((Ok(Bytes::from(format!("{line}\r\n"))), c)),
                    Some(Push::Split(line)) => {
                        let whole = format!("{line}\r\n");
                        let cut = whole.len() / 2;
                        c.later.push_back(Bytes::from(whole[cut..].to_string()));
                        return Some((Ok(Bytes::from(whole[..cut].to_string())), c));
                    }
                    Some(Push::Raw(bytes)) => return Some((Ok(Bytes::from(bytes)), c)),
                    Some(Push::Quiet) => c.quiet = true,
                    Some(Push::Drop) | None => {
                        c.ended = true;
                        return Some((Err(std::io::Error::other("the fake dropped the stream")), c));
                    }
                },
                _ = c.ticks.tick(), if !c.quiet => {
                    return Some((Ok(Bytes::from_static(b"\r\n")), c));
                }
            }
        }
    })
}

/// The terms of a rule, quotes kept together (`"a \"b\""` is one term).
fn terms(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                cur.push('"');
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl XState {
    /// Whether `t` matches `rule` in the fake's simple reading (see the module's doc); a
    /// recent search's query is read the same way.
    pub(super) fn matches_rule(&self, t: &TweetRec, rule: &str) -> bool {
        let text = t.text.to_lowercase();
        let author = self
            .user(&t.author_id)
            .map(|u| u.username.to_lowercase())
            .unwrap_or_default();
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
            .collect();
        terms(rule).iter().all(|term| {
            let term = term.to_lowercase();
            let (negated, term) = match term.strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, term),
            };
            if term == "is:retweet" {
                // No reposts here: `-is:retweet` always holds, `is:retweet` never.
                return negated;
            }
            let holds = if let Some(user) = term.strip_prefix("from:") {
                author == user
            } else if term.starts_with('@') {
                words.contains(&term.as_str())
            } else {
                let phrase = term.strip_prefix('"').unwrap_or(&term);
                let phrase = phrase.strip_suffix('"').unwrap_or(phrase);
                text.contains(phrase)
            };
            holds != negated
        })
    }

    /// Send `t` to every open stream when it matches a rule.
    pub(super) fn publish_to_streams(&mut self, t: &TweetRec) {
        let matching: Vec<Value> = self
            .stream
            .rules
            .iter()
            .filter(|r| self.matches_rule(t, &r.value))
            .map(|r| {
                let mut m = json!({"id": r.id});
                if let Some(tag) = &r.tag {
                    m["tag"] = json!(tag);
                }
                m
            })
            .collect();
        self.stream.live.retain(|l| !l.push.is_closed());
        if matching.is_empty() || self.stream.live.is_empty() {
            return;
        }
        let split = std::mem::take(&mut self.stream.split_next);
        let mut lines = Vec::new();
        for live in &self.stream.live {
            let mut line =
                json!({"data": self.tweet_json(t, &live.fields), "matching_rules": matching});
            if let Some(user_fields) = &live.expand_author {
                if let Some(u) = self.user(&t.author_id) {
                    line["includes"] = json!({"users": [u.json(user_fields)]});
                }
            }
            lines.push(line.to_string());
        }
        for (live, line) in self.stream.live.iter().zip(lines) {
            let push = if split {
                Push::Split(line)
            } else {
                Push::Line(line)
            };
            if live.push.send(push).is_ok() {
                self.stream.posts_sent += 1;
            }
        }
    }
}

impl FakeX {
    fn push_all(&self, push: Push) {
        let mut st = lock(&self.shared);
        st.stream.live.retain(|l| !l.push.is_closed());
        for live in &st.stream.live {
            let _ = live.push.send(push.clone());
        }
    }

    /// A rule put on the stream by someone (another tool, an earlier version of us).
    pub fn add_stream_rule(&self, value: &str, tag: Option<&str>) -> String {
        let mut st = lock(&self.shared);
        let id = st.next_id().to_string();
        st.stream.rules.push(StreamRule {
            id: id.clone(),
            value: value.to_string(),
            tag: tag.map(str::to_string),
        });
        id
    }

    /// The stream's rules, oldest first.
    pub fn stream_rules(&self) -> Vec<StreamRule> {
        lock(&self.shared).stream.rules.clone()
    }

    /// Every stream endpoint answers X's 403 `client-not-enrolled` (a tier without it).
    pub fn set_stream_not_enrolled(&self, not_enrolled: bool) {
        lock(&self.shared).stream.not_enrolled = not_enrolled;
    }

    /// The keep-alive interval of connections opened from now on (X: 20 s).
    pub fn set_keep_alive(&self, every: Duration) {
        lock(&self.shared).stream.keep_alive = every;
    }

    /// The next post line goes out in two chunks, a moment apart.
    pub fn split_next_stream_post(&self) {
        lock(&self.shared).stream.split_next = true;
    }

    /// Every open stream ends abruptly: no final chunk, the connection closes.
    pub fn drop_streams(&self) {
        self.push_all(Push::Drop);
    }

    /// Every open stream stops sending keep-alives (posts would still go out).
    pub fn quiet_streams(&self) {
        self.push_all(Push::Quiet);
    }

    /// A raw line (`\r\n` added) down every open stream, e.g. an `errors` object.
    pub fn send_stream_line(&self, line: &str) {
        self.push_all(Push::Line(line.to_string()));
    }

    /// Bytes as they are down every open stream (no `\r\n` added).
    pub fn send_stream_bytes(&self, bytes: &[u8]) {
        self.push_all(Push::Raw(bytes.to_vec()));
    }

    /// Faults for the next connects only (`GET /2/tweets/search/stream`, not the rules).
    pub fn fail_next_connects(&self, faults: Vec<super::Fault>) {
        self.shared.connect_faults.push(
            super::super::scaffold::Route::parse(&format!("GET {STREAM}")),
            faults,
        );
    }

    /// Connects asked for (whatever the answer).
    pub fn stream_connects(&self) -> usize {
        self.shared
            .requests
            .count(|(m, p)| m == "GET" && (p == STREAM || p.starts_with(&format!("{STREAM}?"))))
    }

    /// The connect requests, as path and query.
    pub fn stream_connect_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|(m, p)| m == "GET" && (p == STREAM || p.starts_with(&format!("{STREAM}?"))))
            .map(|(_, p)| p)
            .collect()
    }

    /// Stream connections open right now.
    pub fn live_streams(&self) -> usize {
        let mut st = lock(&self.shared);
        st.stream.live.retain(|l| !l.push.is_closed());
        st.stream.live.len()
    }

    /// Rules read (`GET …/rules`) and changed (`POST …/rules`).
    pub fn rule_calls(&self) -> (usize, usize) {
        (self.count("GET", RULES), self.count("POST", RULES))
    }

    /// Post lines sent down streams so far (one per open connection per post).
    pub fn stream_posts_sent(&self) -> usize {
        lock(&self.shared).stream.posts_sent
    }

    /// Waits until `n` streams are open; panics after `timeout`.
    pub async fn wait_for_live_streams(&self, n: usize, timeout: Duration) {
        let what = format!("{n} open filtered streams on fake X");
        wait_until(timeout, &what, || self.live_streams() >= n).await;
    }
}
