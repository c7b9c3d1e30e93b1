//! X's filtered stream (`[x] stream = true`, for tiers that include it): the rules for
//! the brand's @-mentions and its keyword watches kept in sync with the config on every
//! connect, then `GET /2/tweets/search/stream` read as newline-delimited JSON into the
//! same mentions the poll makes (same fields, same mapping, our own posts skipped).
//!
//! Auth is the app's Bearer Token (OAuth 2.0 App-Only), which the stream and its rules
//! require. Rules this desk owns carry a tag starting `mentionbridge:<brand user id>:`;
//! rules with any other tag belong to someone else and are never touched, and a post
//! that matched only such rules is no mention of ours. X sends `\r\n` every 20 s: a
//! connection with no byte for `stream_quiet_secs` is dropped. Reconnects follow X's
//! guide (PLATFORMS.md "X filtered stream"): network trouble backs off 250 ms more per
//! attempt up to 16 s, HTTP errors from 5 s doubling up to 320 s, 429 from a minute
//! doubling; the counts start again once a connection delivered data. Every rules call
//! and connect counts against `x.daily_request_budget`, and every streamed post, billed
//! as a post read, is counted per UTC day in the store (`x:stream-posts:<date>`).

use super::budget::{until_the_day_ends, Budget};
use super::poll::{from_someone_else, post_fields};
use super::request::LIMITS;
use super::wire::{x_said, Rule, Rules, StreamLine, User};
use super::{XError, X};
use crate::config::{Secret, XStreamConfig};
use crate::domain::Mention;
use crate::ports::{MentionStream, StreamError, StreamEvent};
use crate::sources::http::{self, Gates};
use chrono::Utc;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

const STREAM_PATH: &str = "/2/tweets/search/stream";
const RULES_PATH: &str = "/2/tweets/search/stream/rules";
/// X's longest rule on the pay-per-use tier (Enterprise allows 2,048).
const MAX_RULE_CHARS: usize = 1024;
/// A line of the stream (one post with its expansions) is a few KiB; anything past this
/// is not X speaking, and the connection is dropped rather than buffered without end.
const MAX_LINE_BYTES: usize = 1 << 20;
/// How long the rules calls and the stream's response head may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a refusal's body is read (X's problem JSON is far smaller).
const MAX_REFUSAL_BYTES: usize = 64 << 10;
/// Network trouble: 250 ms more per attempt, up to 16 s (X's guide).
const NETWORK_STEP: Duration = Duration::from_millis(250);
const NETWORK_MAX: Duration = Duration::from_secs(16);
/// HTTP errors: 5 s, doubling, up to 320 s (X's guide).
const HTTP_FIRST: Duration = Duration::from_secs(5);
const HTTP_MAX: Duration = Duration::from_secs(320);
/// 429: a minute, doubling (X's guide sets no ceiling; ours is 64 minutes).
const RATE_FIRST: Duration = Duration::from_secs(60);
const RATE_DOUBLINGS: u32 = 6;

/// The calls the stream makes, each with its own rate-limit window at X.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    ReadRules,
    WriteRules,
    Connect,
}

impl Call {
    fn what(self) -> &'static str {
        match self {
            Call::ReadRules => "reading the filtered stream's rules",
            Call::WriteRules => "changing the filtered stream's rules",
            Call::Connect => "connecting to the filtered stream",
        }
    }
}

/// A rule this desk wants on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    value: String,
    tag: String,
}

/// Consecutive failures of each kind since a connection last delivered data.
#[derive(Debug, Default)]
struct Failures {
    network: u32,
    http: u32,
    rate: u32,
}

/// Why one connection ended, before it is turned into the wait X's guide prescribes.
#[derive(Debug)]
enum Setback {
    /// TCP/IP trouble, a dropped or quiet connection: the linear backoff.
    Network(String),
    /// An HTTP error worth another try, or X's problem in the stream: the doubling one.
    Http(String),
    /// 429: a minute doubling, or longer when X says so.
    RateLimited {
        hint: Option<Duration>,
        reason: String,
    },
    /// X said exactly when (a spent window, a spent budget): no failure of ours.
    Wait {
        after: Duration,
        reason: String,
    },
    Refused(String),
    Unsupported(String),
    /// Nobody reads the events any more.
    Gone,
}

/// X's filtered stream for one brand account; see the module's doc.
pub(super) struct FilteredStream {
    /// For the rules calls: every request bounded in time.
    calls: reqwest::Client,
    /// For the stream itself: no bound on the whole exchange, silence is watched here.
    streaming: reqwest::Client,
    base: String,
    bearer: Secret,
    brand: User,
    wanted: Vec<Wanted>,
    reconcile_every: Duration,
    quiet: Duration,
    budget: Arc<Budget>,
    gates: Gates<Call>,
    failures: Mutex<Failures>,
}

impl FilteredStream {
    /// The stream of `brand` (verified by `GET /2/users/me`), with the rules `keywords`
    /// make; refused at start-up when a rule would be longer than X allows.
    pub(super) fn new(
        base: &str,
        brand: &User,
        keywords: &[String],
        config: &XStreamConfig,
        budget: Arc<Budget>,
    ) -> Result<FilteredStream, XError> {
        let wanted = wanted_rules(brand, keywords).map_err(XError::Refused)?;
        Ok(FilteredStream {
            calls: http::client().map_err(XError::Unavailable)?,
            streaming: http::streaming_client().map_err(XError::Unavailable)?,
            base: base.to_string(),
            bearer: config.bearer_token.clone(),
            brand: brand.clone(),
            wanted,
            reconcile_every: config.reconcile_every,
            quiet: config.quiet,
            budget,
            gates: Gates::default(),
            failures: Mutex::new(Failures::default()),
        })
    }

    fn gate(&self, call: Call) -> Result<(), Setback> {
        match self.gates.opens_at(&call) {
            Some(at) => {
                let after = at - Instant::now();
                Err(Setback::Wait {
                    after,
                    reason: format!(
                        "X's rate limit for {} is spent; next window in {} s",
                        call.what(),
                        after.as_millis().div_ceil(1000)
                    ),
                })
            }
            None => Ok(()),
        }
    }

    fn note_limits(&self, call: Call, headers: &HeaderMap) {
        if let Some(wait) = LIMITS.spent(headers, 0, Utc::now()) {
            tracing::info!(
                ?call,
                wait_secs = wait.as_secs(),
                "X rate limit window spent for the filtered stream"
            );
            self.gates.shut(call, wait);
        }
    }

    /// One call to the rules endpoint with the app's bearer token, counted against the
    /// day's budget; the body of a success.
    async fn rules_call(&self, call: Call, body: Option<Value>) -> Result<Rules, Setback> {
        self.gate(call)?;
        let url = format!("{}{RULES_PATH}", self.base);
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut req = self
            .calls
            .request(method, &url)
            .bearer_auth(self.bearer.expose());
        if let Some(body) = &body {
            req = req.json(body);
        }
        self.budget.count_call().await;
        let (status, headers, answer) = http::exchange(
            req,
            || {
                format!(
                    "X at {} could not be reached for {}",
                    self.base,
                    call.what()
                )
            },
            || format!("X's answer to {} was cut off", call.what()),
            |headers| self.note_limits(call, headers),
        )
        .await
        .map_err(|e| Setback::Network(e.to_string()))?;
        if !status.is_success() {
            return Err(refusal(call, status, &headers, &answer));
        }
        serde_json::from_slice(&answer).map_err(|e| {
            Setback::Http(format!(
                "X sent an answer we cannot read for {}: {e}",
                call.what()
            ))
        })
    }

    /// Make the stream's rules what the config says; the ids of every rule whose posts
    /// are ours (our own, and someone else's with exactly a value we want).
    async fn sync_rules(&self) -> Result<HashSet<String>, Setback> {
        let existing = self.rules_call(Call::ReadRules, None).await?;
        let plan = plan(&self.wanted, &existing.data, &own_prefix(&self.brand));
        let mut covering = plan.covering;
        if !plan.delete.is_empty() {
            let answer = self
                .rules_call(
                    Call::WriteRules,
                    Some(json!({"delete": {"ids": plan.delete}})),
                )
                .await?;
            let summary = &answer.meta.summary;
            if summary.not_deleted > 0 || !answer.errors.is_empty() {
                tracing::warn!(
                    deleted = summary.deleted,
                    not_deleted = summary.not_deleted,
                    said = %problems(&answer.errors).join("; "),
                    "X kept some of the filtered stream's rules we no longer want; trying again at the next connect"
                );
            } else {
                tracing::info!(
                    deleted = summary.deleted,
                    "X filtered stream: rules no longer configured deleted"
                );
            }
        }
        if !plan.add.is_empty() {
            let add: Vec<Value> = plan
                .add
                .iter()
                .map(|w| json!({"value": w.value, "tag": w.tag}))
                .collect();
            let answer = self
                .rules_call(Call::WriteRules, Some(json!({ "add": add })))
                .await?;
            covering.extend(answer.data.iter().map(|r| r.id.clone()));
            let mut duplicates = 0;
            let mut refused = Vec::new();
            for e in &answer.errors {
                if is_duplicate_rule(e) {
                    // Someone else's rule has this value already: its posts are ours too.
                    duplicates += 1;
                    covering.extend(e["id"].as_str().map(str::to_string));
                } else {
                    refused.push(rule_problem(e));
                }
            }
            let unexplained = answer.meta.summary.not_created > duplicates + refused.len() as u32;
            if !refused.is_empty() || unexplained {
                if refused.is_empty() {
                    refused.push(format!(
                        "{} rules not created, without a reason",
                        answer.meta.summary.not_created
                    ));
                }
                return Err(Setback::Refused(format!(
                    "X refused the filtered stream's rules: {} (check x.keywords)",
                    refused.join("; ")
                )));
            }
            tracing::info!(
                created = answer.meta.summary.created,
                "X filtered stream: configured rules added"
            );
        }
        Ok(covering)
    }

    /// `GET /2/tweets/search/stream` with the poll's fields; the response once X said 200.
    async fn connect(&self) -> Result<reqwest::Response, Setback> {
        self.gate(Call::Connect)?;
        let req = self
            .streaming
            .get(format!("{}{STREAM_PATH}", self.base))
            .query(&post_fields())
            .bearer_auth(self.bearer.expose());
        self.budget.count_call().await;
        let resp = match tokio::time::timeout(ANSWER_TIMEOUT, req.send()).await {
            Err(_) => {
                return Err(Setback::Network(format!(
                    "X's filtered stream did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(e)) => {
                return Err(Setback::Network(format!(
                    "X at {} could not be reached for the filtered stream: {}",
                    self.base,
                    http::without_url(&e)
                )))
            }
            Ok(Ok(resp)) => resp,
        };
        self.note_limits(Call::Connect, resp.headers());
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_some(resp).await;
        Err(refusal(Call::Connect, status, &headers, &body))
    }

    /// Read the connected stream until it ends, forwarding our mentions; why it ended.
    async fn read(
        &self,
        mut resp: reqwest::Response,
        covering: &HashSet<String>,
        events: &mpsc::Sender<StreamEvent>,
    ) -> Setback {
        let mut lines = Lines::default();
        let mut delivered = false;
        loop {
            let chunk = match tokio::time::timeout(self.quiet, resp.chunk()).await {
                Err(_) => {
                    return Setback::Network(format!(
                        "X's filtered stream went quiet: no post and no keep-alive for {} s",
                        self.quiet.as_secs()
                    ))
                }
                Ok(Err(e)) => {
                    return Setback::Network(format!(
                        "X's filtered stream broke off: {}",
                        http::without_url(&e)
                    ))
                }
                Ok(Ok(None)) => return Setback::Network("X ended the filtered stream".into()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            let mut batch = Batch::default();
            let mut ended = None;
            for line in lines.push(&chunk) {
                match read_line(&line, &self.brand.id, Some(covering)) {
                    Ok(read) => {
                        if !delivered {
                            // A keep-alive or a post: this connection works.
                            delivered = true;
                            *self.failures.lock().expect("failures lock") = Failures::default();
                        }
                        batch.take(read);
                    }
                    Err(setback) => {
                        ended = Some(setback);
                        break;
                    }
                }
            }
            if ended.is_none() && lines.too_long() {
                ended = Some(Setback::Network(format!(
                    "X sent a filtered stream line longer than {} KiB",
                    MAX_LINE_BYTES >> 10
                )));
            }
            if !self.deliver(batch, events).await {
                return Setback::Gone;
            }
            if let Some(setback) = ended {
                return setback;
            }
        }
    }

    /// Count the batch's posts and hand its mentions to the desk; false when nobody
    /// listens any more.
    async fn deliver(&self, batch: Batch, events: &mpsc::Sender<StreamEvent>) -> bool {
        if batch.posts > 0 {
            let today = self.budget.count_streamed_posts(batch.posts).await;
            tracing::debug!(
                posts = batch.posts,
                mentions = batch.mentions.len(),
                streamed_posts_today = today,
                "X streamed posts (each billed as a post read)"
            );
        }
        if batch.mentions.is_empty() {
            return true;
        }
        events
            .send(StreamEvent::Mentions {
                mentions: batch.mentions,
                cursor: None,
            })
            .await
            .is_ok()
    }

    /// One connection: the rules synced, the stream connected and read until it ends.
    async fn session(&self, events: &mpsc::Sender<StreamEvent>) -> Setback {
        // X said when connecting is allowed again: no rules calls before that either.
        if let Err(setback) = self.gate(Call::Connect) {
            return setback;
        }
        let covering = match self.sync_rules().await {
            Ok(covering) => covering,
            Err(setback) => return setback,
        };
        let resp = match self.connect().await {
            Ok(resp) => resp,
            Err(setback) => return setback,
        };
        tracing::info!(rules = covering.len(), "X filtered stream connected");
        if events.send(StreamEvent::Connected).await.is_err() {
            return Setback::Gone;
        }
        self.read(resp, &covering, events).await
    }

    /// The wait X's guide prescribes for `setback`, counting it.
    fn settle(&self, setback: Setback) -> StreamError {
        let mut failures = self.failures.lock().expect("failures lock");
        let dropped = |after: Duration, reason: String| StreamError::Dropped {
            after: Some(after),
            reason,
        };
        match setback {
            Setback::Network(reason) => {
                let after = network_wait(failures.network);
                failures.network += 1;
                dropped(after, reason)
            }
            Setback::Http(reason) => {
                let after = http_wait(failures.http);
                failures.http += 1;
                dropped(after, reason)
            }
            Setback::RateLimited { hint, reason } => {
                let after = rate_wait(failures.rate).max(hint.unwrap_or_default());
                failures.rate += 1;
                dropped(after, reason)
            }
            Setback::Wait { after, reason } => dropped(after, reason),
            Setback::Refused(reason) => StreamError::Refused { reason },
            Setback::Unsupported(reason) => StreamError::Unsupported { reason },
            Setback::Gone => StreamError::Dropped {
                after: None,
                reason: "the desk stopped reading X's filtered stream".into(),
            },
        }
    }
}

#[async_trait::async_trait]
impl MentionStream for FilteredStream {
    fn describe(&self) -> String {
        format!(
            "x filtered stream {}{STREAM_PATH}",
            without_credentials(&self.base)
        )
    }

    fn reconcile_every(&self) -> Duration {
        self.reconcile_every
    }

    /// X's stream cannot resume from a position (only Enterprise has `backfill_minutes`):
    /// the catch-up poll covers what was said while it was down.
    async fn run(&self, _cursor: Option<String>, events: mpsc::Sender<StreamEvent>) -> StreamError {
        if self.budget.spent().await {
            return StreamError::Dropped {
                after: Some(until_the_day_ends().max(Duration::from_secs(1))),
                reason: format!(
                    "X daily request budget of {} spent; the filtered stream connects again \
                     after 00:00 UTC (x.daily_request_budget)",
                    self.budget.limit()
                ),
            };
        }
        let setback = self.session(&events).await;
        self.settle(setback)
    }
}

/// One complete line: a keep-alive, a post (ours or not), or X's problem that ends the
/// connection. `covering`: the rules whose posts are ours (None: every post is).
fn read_line(
    line: &[u8],
    brand_id: &str,
    covering: Option<&HashSet<String>>,
) -> Result<Read, Setback> {
    if line.is_empty() {
        return Ok(Read::KeepAlive);
    }
    let parsed: StreamLine = serde_json::from_slice(line).map_err(|e| {
        Setback::Network(format!("X sent a filtered stream line we cannot read: {e}"))
    })?;
    let Some(tweet) = parsed.data else {
        if !parsed.errors.is_empty() || parsed.title.is_some() || parsed.detail.is_some() {
            return Err(Setback::Http(format!(
                "X ended the filtered stream: {}",
                x_said(line)
            )));
        }
        return Ok(Read::KeepAlive);
    };
    // A post that matched only someone else's rules is no mention of ours; without
    // `matching_rules` (never seen) it is taken as ours.
    let ours = match covering {
        None => true,
        Some(covering) => {
            parsed.matching_rules.is_empty()
                || parsed
                    .matching_rules
                    .iter()
                    .any(|r| covering.contains(&r.id))
        }
    };
    if !ours || !from_someone_else(&tweet, brand_id) {
        return Ok(Read::Post(None));
    }
    let users = parsed.includes.users_by_id();
    Ok(Read::Post(Some(Box::new(X::to_mention(
        brand_id, tweet, &users,
    )))))
}

/// The mentions in bytes of the filtered stream read the way the stream reads them, for
/// the brand account `account`, every post taken as matching our rules (the fuzz tests
/// feed it arbitrary bytes); the reason the connection would end, if it would.
pub fn mentions_in_stream(account: &str, bytes: &[u8]) -> Result<Vec<Mention>, String> {
    let mut lines = Lines::default();
    let mut mentions = Vec::new();
    for line in lines.push(bytes) {
        match read_line(&line, account, None) {
            Ok(Read::Post(Some(m))) => mentions.push(*m),
            Ok(_) => {}
            Err(setback) => return Err(format!("{setback:?}")),
        }
    }
    if lines.too_long() {
        return Err("a line past the bound".into());
    }
    Ok(mentions)
}

/// What one complete line of the stream was.
enum Read {
    KeepAlive,
    /// A post, and the mention it makes when it is one of ours.
    Post(Option<Box<Mention>>),
}

/// The posts of one chunk and the mentions among them.
#[derive(Default)]
struct Batch {
    posts: u64,
    mentions: Vec<Mention>,
}

impl Batch {
    fn take(&mut self, read: Read) {
        if let Read::Post(mention) = read {
            self.posts += 1;
            self.mentions.extend(mention.map(|m| *m));
        }
    }
}

/// The stream's bytes cut into lines: a line may arrive in pieces over several chunks,
/// and one chunk may carry several lines.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no line break.
    scanned: usize,
}

impl Lines {
    /// Add `chunk`; the lines it completed, without their `\r\n` (a keep-alive is empty).
    fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        let mut at = self.scanned;
        while let Some(i) = self.pending[at..].iter().position(|b| *b == b'\n') {
            let end = at + i;
            // `\r\n` ends a line; the `\r` (and any blank) goes with the trim.
            out.push(self.pending[start..end].trim_ascii().to_vec());
            start = end + 1;
            at = start;
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        out
    }

    /// Whether the unfinished line is past the bound.
    fn too_long(&self) -> bool {
        self.pending.len() > MAX_LINE_BYTES
    }
}

/// What a refused call means for the stream, in X's words and never with the token.
fn refusal(call: Call, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Setback {
    let said = x_said(body);
    let what = format!("X answered {} for {}", status.as_u16(), call.what());
    match status {
        StatusCode::TOO_MANY_REQUESTS => Setback::RateLimited {
            hint: LIMITS.retry_wait(status, headers, Utc::now()),
            reason: format!("{what}: {said}"),
        },
        StatusCode::UNAUTHORIZED => Setback::Refused(format!(
            "{what}: {said} (the bearer token was refused: check x.bearer_token, the app's \
             Bearer Token for OAuth 2.0 App-Only)"
        )),
        StatusCode::FORBIDDEN => match not_enrolled(body) {
            Some(enrollment) => Setback::Unsupported(format!(
                "{what}: {said}{enrollment} (this app's access does not include the filtered \
                 stream, or the app is not in a Project; mentions are polled instead)"
            )),
            None => Setback::Refused(format!(
                "{what}: {said} (the filtered stream needs the app's Bearer Token, OAuth 2.0 \
                 App-Only, in x.bearer_token, and a tier that includes the stream)"
            )),
        },
        s if http::is_transient(s) => Setback::Http(format!("{what}: {said}")),
        _ => Setback::Refused(format!("{what}: {said}")),
    }
}

/// X's "client not enrolled" problem (`type` …/problems/client-forbidden, `reason`
/// `client-not-enrolled`): the app's access level lacks the endpoint. The enrollment X
/// names, as words to add.
fn not_enrolled(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let forbidden = v["reason"].as_str() == Some("client-not-enrolled")
        || v["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/problems/client-forbidden"))
        || matches!(
            v["title"].as_str(),
            Some("Client Forbidden" | "ClientForbidden")
        );
    forbidden.then(|| match v["required_enrollment"].as_str() {
        Some(e) => format!(" (required enrollment: {e})"),
        None => String::new(),
    })
}

fn is_duplicate_rule(e: &Value) -> bool {
    e["title"].as_str() == Some("DuplicateRule")
        || e["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/problems/duplicate-rules"))
}

/// X's words about one rule it would not take: its title, the rule and the details.
fn rule_problem(e: &Value) -> String {
    let title = e["title"].as_str().unwrap_or("refused");
    let details: Vec<&str> = e["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(e["detail"].as_str())
        .collect();
    let mut out = title.to_string();
    if let Some(value) = e["value"].as_str() {
        out.push_str(&format!(" for {value:?}"));
    }
    if !details.is_empty() {
        out.push_str(&format!(": {}", details.join(", ")));
    }
    out
}

fn problems(errors: &[Value]) -> Vec<String> {
    errors.iter().map(rule_problem).collect()
}

/// Every tag of this desk for this brand starts so.
fn own_prefix(brand: &User) -> String {
    format!("mentionbridge:{}:", brand.id)
}

/// The rules the config asks for: the brand's @-mentions, and one per keyword (a phrase
/// in quotes when it has spaces), each read the way the poll's search reads it (not our
/// own posts, no reposts for keywords). An error names a rule longer than X allows.
fn wanted_rules(brand: &User, keywords: &[String]) -> Result<Vec<Wanted>, String> {
    let prefix = own_prefix(brand);
    let handle = &brand.username;
    let mut wanted = vec![Wanted {
        value: format!("@{handle} -from:{handle}"),
        tag: format!("{prefix}mention"),
    }];
    let mut seen = HashSet::new();
    for keyword in keywords.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        if !seen.insert(keyword.to_lowercase()) {
            continue;
        }
        let value = keyword_query(keyword, handle);
        let length = value.chars().count();
        if length > MAX_RULE_CHARS {
            let start: String = keyword.chars().take(40).collect();
            return Err(format!(
                "x.keywords: the filtered stream's rule for the keyword starting {start:?} \
                 would be {length} characters; X allows {MAX_RULE_CHARS} per rule: shorten it"
            ));
        }
        wanted.push(Wanted {
            value,
            tag: format!("{prefix}kw:{keyword}"),
        });
    }
    Ok(wanted)
}

/// How a keyword watch is asked of X, by the poll's search and the stream's rule alike:
/// the keyword (a phrase in quotes when it has spaces or quotes, so both read it as one
/// phrase), not from our own account, no reposts.
pub(super) fn keyword_query(keyword: &str, handle: &str) -> String {
    let keyword = keyword.trim();
    let term = if keyword.contains(char::is_whitespace) || keyword.contains('"') {
        format!("\"{}\"", keyword.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        keyword.to_string()
    };
    format!("{term} -from:{handle} -is:retweet")
}

/// What to change on the stream so it holds what is wanted.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Our own rules no longer wanted (or wanted once only: a second copy).
    delete: Vec<String>,
    add: Vec<Wanted>,
    /// Rules whose posts are ours: those of ours kept, and someone else's that have
    /// exactly a value we want (X refuses a second rule with the same value).
    covering: HashSet<String>,
}

fn plan(wanted: &[Wanted], existing: &[Rule], own_prefix: &str) -> Plan {
    let mut plan = Plan::default();
    let mut present: HashSet<&str> = HashSet::new();
    for rule in existing {
        let ours = rule
            .tag
            .as_deref()
            .is_some_and(|t| t.starts_with(own_prefix));
        let want = wanted.iter().find(|w| w.value == rule.value);
        match want {
            Some(w) if !ours || rule.tag.as_deref() == Some(w.tag.as_str()) => {
                if present.insert(w.value.as_str()) || !ours {
                    plan.covering.insert(rule.id.clone());
                } else {
                    plan.delete.push(rule.id.clone());
                }
            }
            _ if ours => plan.delete.push(rule.id.clone()),
            _ => {}
        }
    }
    plan.add = wanted
        .iter()
        .filter(|w| !present.contains(w.value.as_str()))
        .cloned()
        .collect();
    plan
}

/// The start of a refusal's body, bounded in size and time.
async fn read_some(mut resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_REFUSAL_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, read).await;
    body
}

/// `base` without any user or password it may carry, for logs and `/healthz`.
fn without_credentials(base: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        _ => base.to_string(),
    }
}

fn network_wait(failures: u32) -> Duration {
    (NETWORK_STEP * failures.saturating_add(1)).min(NETWORK_MAX)
}

fn http_wait(failures: u32) -> Duration {
    (HTTP_FIRST * 2u32.saturating_pow(failures.min(16))).min(HTTP_MAX)
}

fn rate_wait(failures: u32) -> Duration {
    RATE_FIRST * 2u32.pow(failures.min(RATE_DOUBLINGS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> User {
        User {
            id: "1500000000000000001".into(),
            name: "Brand".into(),
            username: "brand".into(),
            public_metrics: None,
        }
    }

    fn rule(id: &str, value: &str, tag: Option<&str>) -> Rule {
        Rule {
            id: id.into(),
            value: value.into(),
            tag: tag.map(str::to_string),
        }
    }

    #[test]
    fn the_rules_are_the_mention_and_one_per_keyword_with_phrases_quoted() {
        let kws = vec![
            "acme".to_string(),
            "acme down".into(),
            " ACME ".into(),
            "".into(),
            "say \"hi\"".into(),
        ];
        let wanted = wanted_rules(&brand(), &kws).unwrap();
        let values: Vec<&str> = wanted.iter().map(|w| w.value.as_str()).collect();
        assert_eq!(
            values,
            [
                "@brand -from:brand",
                "acme -from:brand -is:retweet",
                "\"acme down\" -from:brand -is:retweet",
                "\"say \\\"hi\\\"\" -from:brand -is:retweet",
            ]
        );
        assert_eq!(wanted[0].tag, "mentionbridge:1500000000000000001:mention");
        assert_eq!(
            wanted[2].tag,
            "mentionbridge:1500000000000000001:kw:acme down"
        );
    }

    #[test]
    fn a_rule_longer_than_x_allows_is_a_clear_error() {
        let long = "a".repeat(1001);
        let err = wanted_rules(&brand(), &[long]).unwrap_err();
        assert!(err.contains("x.keywords"), "{err}");
        assert!(
            err.contains("would be 1025 characters; X allows 1024"),
            "{err}"
        );
        // Exactly at the limit is fine.
        let fits = "a".repeat(1024 - " -from:brand -is:retweet".len());
        assert!(wanted_rules(&brand(), &[fits]).is_ok());
    }

    #[test]
    fn the_plan_adds_what_is_missing_deletes_our_stale_rules_and_leaves_others_alone() {
        let wanted = wanted_rules(&brand(), &["acme".into(), "widgets".into()]).unwrap();
        let prefix = own_prefix(&brand());
        let existing = vec![
            // Ours and still wanted.
            rule("1", "@brand -from:brand", Some(&format!("{prefix}mention"))),
            // Ours, no longer configured.
            rule(
                "2",
                "oldword -from:brand -is:retweet",
                Some(&format!("{prefix}kw:oldword")),
            ),
            // Ours twice.
            rule("3", "@brand -from:brand", Some(&format!("{prefix}mention"))),
            // Someone else's, unrelated, and someone else's with a value we want.
            rule("4", "cats", Some("their-tag")),
            rule("5", "widgets -from:brand -is:retweet", None),
            // Another brand's rules on the same app.
            rule("6", "@other", Some("mentionbridge:99:mention")),
        ];
        let p = plan(&wanted, &existing, &prefix);
        assert_eq!(p.delete, ["2", "3"]);
        assert_eq!(p.add, vec![wanted[1].clone()]);
        assert_eq!(
            p.covering,
            ["1", "5"]
                .iter()
                .map(|s| s.to_string())
                .collect::<HashSet<_>>()
        );
        // Everything in place: nothing to do.
        let done = vec![
            rule("1", &wanted[0].value, Some(&wanted[0].tag)),
            rule("7", &wanted[1].value, Some(&wanted[1].tag)),
            rule("8", &wanted[2].value, Some(&wanted[2].tag)),
        ];
        let p = plan(&wanted, &done, &prefix);
        assert!(p.delete.is_empty() && p.add.is_empty());
        assert_eq!(p.covering.len(), 3);
    }

    #[test]
    fn lines_are_cut_at_line_breaks_across_and_within_chunks() {
        let mut lines = Lines::default();
        assert!(lines.push(b"{\"a\":").is_empty());
        assert_eq!(
            lines.push(b"1}\r\n\r\n{\"b\""),
            vec![b"{\"a\":1}".to_vec(), vec![]]
        );
        assert_eq!(
            lines.push(b":2}\r\n{\"c\":3}\r\n"),
            vec![b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()]
        );
        assert!(lines.pending.is_empty());
        assert!(!lines.too_long());
        lines.push(&vec![b'x'; MAX_LINE_BYTES + 1]);
        assert!(lines.too_long());
    }

    #[test]
    fn the_waits_follow_x_guide() {
        assert_eq!(network_wait(0), Duration::from_millis(250));
        assert_eq!(network_wait(1), Duration::from_millis(500));
        assert_eq!(network_wait(100), Duration::from_secs(16));
        assert_eq!(http_wait(0), Duration::from_secs(5));
        assert_eq!(http_wait(1), Duration::from_secs(10));
        assert_eq!(http_wait(7), Duration::from_secs(320));
        assert_eq!(http_wait(u32::MAX), Duration::from_secs(320));
        assert_eq!(rate_wait(0), Duration::from_secs(60));
        assert_eq!(rate_wait(1), Duration::from_secs(120));
        assert_eq!(rate_wait(50), Duration::from_secs(3840));
    }

    #[test]
    fn client_not_enrolled_is_told_from_other_refusals() {
        let body = br#"{"client_id":"1","detail":"When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.","registration_url":"https://developer.twitter.com/en/docs/projects/overview","title":"Client Forbidden","required_enrollment":"Appropriate Level of API Access","reason":"client-not-enrolled","type":"https://api.twitter.com/2/problems/client-forbidden"}"#;
        let headers = HeaderMap::new();
        match refusal(Call::Connect, StatusCode::FORBIDDEN, &headers, body) {
            Setback::Unsupported(r) => {
                assert!(r.contains("Appropriate Level of API Access"), "{r}");
                assert!(r.contains("polled instead"), "{r}");
            }
            other => panic!("{other:?}"),
        }
        let other = br#"{"title":"Unsupported Authentication","detail":"Authenticating with OAuth 2.0 User Context is forbidden for this endpoint.","type":"https://api.twitter.com/2/problems/unsupported-authentication","status":403}"#;
        assert!(matches!(
            refusal(Call::Connect, StatusCode::FORBIDDEN, &headers, other),
            Setback::Refused(r) if r.contains("User Context is forbidden") && r.contains("x.bearer_token")
        ));
        assert!(matches!(
            refusal(Call::ReadRules, StatusCode::UNAUTHORIZED, &headers, b""),
            Setback::Refused(r) if r.contains("x.bearer_token")
        ));
        assert!(matches!(
            refusal(
                Call::Connect,
                StatusCode::SERVICE_UNAVAILABLE,
                &headers,
                b""
            ),
            Setback::Http(_)
        ));
    }

    #[test]
    fn a_streamed_post_is_the_mention_the_poll_makes_and_problems_end_the_connection() {
        let tweet = r#"{"id":"1790000000000000002","text":"@brand hi &amp; bye","author_id":"2244994945","created_at":"2024-05-13T10:00:00.000Z","lang":"en","referenced_tweets":[{"type":"replied_to","id":"1790000000000000001"}],"edit_history_tweet_ids":["1790000000000000002"]}"#;
        let users =
            r#"{"users":[{"id":"2244994945","name":"X Developers","username":"XDevelopers"}]}"#;
        let line = format!(
            r#"{{"data":{tweet},"includes":{users},"matching_rules":[{{"id":"1","tag":"t"}}]}}"#
        );
        let bytes = format!("\r\n{line}\r\n\r\n");
        let streamed = mentions_in_stream(&brand().id, bytes.as_bytes()).unwrap();
        let page =
            format!(r#"{{"data":[{tweet}],"includes":{users},"meta":{{"result_count":1}}}}"#);
        let polled = super::super::mentions_in_page(&brand().id, page.as_bytes()).unwrap();
        assert_eq!(streamed, polled);
        assert_eq!(streamed[0].text, "@brand hi & bye");

        let own = line.replace("2244994945", &brand().id);
        assert!(
            mentions_in_stream(&brand().id, format!("{own}\r\n").as_bytes())
                .unwrap()
                .is_empty()
        );
        let problem = r#"{"errors":[{"title":"operational-disconnect","detail":"This stream has been disconnected upstream for operational reasons."}]}"#;
        let err = mentions_in_stream(&brand().id, format!("{problem}\r\n").as_bytes()).unwrap_err();
        assert!(err.contains("disconnected upstream"), "{err}");
        assert!(mentions_in_stream(&brand().id, b"{\"data\":\r\n").is_err());
    }

    #[test]
    fn a_described_stream_carries_no_credentials() {
        assert_eq!(
            without_credentials("https://user:secret@api.x.com"),
            "https://api.x.com"
        );
        assert_eq!(
            without_credentials("https://api.x.com"),
            "https://api.x.com"
        );
    }
}
