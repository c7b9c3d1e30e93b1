//! A fake Slack on 127.0.0.1: the Web API under `/api/<method>` and Socket Mode at
//! `GET /socket` (websocket). Shapes follow Slack's docs and what slack-morphism
//! 2.31 decodes; every Web API answer is `Content-Type: application/json`.
//!
//! Semantics worth knowing:
//! - Tokens: the bot token `xoxb-test` for every method except
//!   `apps.connections.open`, which needs the app-level token `xapp-test`. Missing
//!   token → `not_authed`, the other kind → `not_allowed_token_type`, anything else →
//!   `invalid_auth` (HTTP 200, `ok:false`, as Slack does).
//! - Blocks and modals are validated against Slack's documented limits (50 blocks
//!   per message, 100 per modal, section text ≤ 3000, header ≤ 150, button text ≤ 75,
//!   button value ≤ 2000, ids ≤ 255, unique block_ids, modal title/submit/close ≤ 24,
//!   private_metadata ≤ 3000, ...): `invalid_blocks` / `invalid_arguments` with
//!   `response_metadata.messages`, as Slack answers.
//! - Message metadata: `event_payload` is returned by `conversations.history/replies`
//!   only with `include_all_metadata=true` (otherwise only `event_type`, as Slack
//!   strips payloads of event types not declared in the app manifest); the
//!   `chat.postMessage`/`chat.update` responses echo it whole; the `message` inside
//!   [`FakeSlack::block_actions_on`] carries `event_type` only.
//! - A `thread_ts` that names no message in the channel answers `thread_not_found`
//!   (an assumption: Slack's documented error list does not say); a reply's ts used
//!   as `thread_ts` is normalized to its parent, as Slack does.
//! - Trigger ids minted by [`new_trigger_id`] expire after 3 s for `views.open`
//!   (`expired_trigger_id`); other trigger strings are accepted as they are.
//! - Socket Mode: each `apps.connections.open` mints a single-use ticket. On connect
//!   the fake sends `hello`. Envelopes go to the newest open connection.
//!   `accepts_response_payload` is true for `slash_commands` and for interactive
//!   `view_submission`/`block_suggestion`, false for `block_actions` and
//!   `events_api` (as Slack sends them). [`FakeSlack::drop_socket`] drops the TCP
//!   connection abruptly, without a close frame; [`FakeSlack::send_disconnect`] sends
//!   Slack's `disconnect` message, then a close frame 200 ms later.
//! - Files, by the external upload flow only: `files.getUploadURLExternal` (filename and
//!   a positive `length` required) answers an `upload_url` on this server
//!   (`/upload/v1/<file id>`, POST the raw bytes: `OK - <n>`, as Slack's plain-text
//!   answer), and `files.completeUploadExternal` (a JSON `files` array of `{id, title}`)
//!   shares them into `channel_id`. The fake answers `invalid_arguments` when a file's
//!   bytes are missing or their count is not the `length` asked (an assumption: Slack's
//!   error list names no more precise code), `file_not_found` for an id it never minted.
use super::scaffold::{
    bearer, json_response, poll, wait_for_at_least, Call, FakeServer, FaultQueue, Listener,
    RequestLog, Route,
};
use super::{next_random, now_millis, uuid_like, Fault};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const BOT_TOKEN: &str = "xoxb-test-CANARY51c747ae3e893efb";
pub const APP_TOKEN: &str = "xapp-test-CANARYbcb3ef31f690c3ff";
pub const TEAM_ID: &str = "T0001";
pub const TEAM_DOMAIN: &str = "test";
pub const BOT_USER_ID: &str = "U0BOT";
pub const APP_ID: &str = "A0001";
pub const BOT_ID: &str = "B0001";
/// The channel that exists from the start.
pub const DEFAULT_CHANNEL: &str = "C0SUPPORT";
/// The verification token carried (deprecated) in payloads.
pub const VERIFICATION_TOKEN: &str = "verification-token-CANARYbb877663956983ff";

/// How long a test waits for the bot's ack: Slack itself gives 3 s, but a bot sharing two
/// busy cores with the rest of the suite can take longer to be scheduled at all.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// A message as the fake stores it (current state, after updates).
#[derive(Clone, Debug, PartialEq)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Option<Value>,
    /// `{"event_type": ..., "event_payload": {...}}` as the client sent it.
    pub metadata: Option<Value>,
    /// The parent's ts for thread replies.
    pub thread_ts: Option<String>,
    /// `U0BOT` for the bot's messages.
    pub user: String,
    pub bot_id: Option<String>,
    /// Whether `chat.update` changed it.
    pub edited: bool,
}

#[derive(Clone, Debug)]
struct MsgRec {
    channel: String,
    ts: String,
    text: String,
    blocks: Option<Value>,
    metadata: Option<Value>,
    thread_ts: Option<String>,
    user: String,
    bot_id: Option<String>,
    edited: Option<String>,
    client_msg_id: Option<String>,
}

impl MsgRec {
    fn public(&self) -> SlackMessage {
        SlackMessage {
            channel: self.channel.clone(),
            ts: self.ts.clone(),
            text: self.text.clone(),
            blocks: self.blocks.clone(),
            metadata: self.metadata.clone(),
            thread_ts: self.thread_ts.clone(),
            user: self.user.clone(),
            bot_id: self.bot_id.clone(),
            edited: self.edited.is_some(),
        }
    }
}

enum ConnCmd {
    Text(String),
    Drop,
    Close,
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<ConnCmd>,
}

struct SState {
    channels: BTreeMap<String, String>, // id -> name
    users: BTreeMap<String, String>,    // id -> name
    messages: Vec<MsgRec>,
    updates: Vec<(String, Value)>,
    ephemerals: Vec<Value>,
    views_log: Vec<Value>,
    views: HashMap<String, Value>,
    usergroups: HashMap<String, Vec<String>>,
    last_ts_micros: u64,
    tickets: HashMap<String, bool>,
    ticket_seq: u64,
    conns: Vec<Conn>,
    conn_seq: u64,
    total_connections: usize,
    acks: Vec<Value>,
    acks_by_id: HashMap<String, Value>,
    trigger_expiry: Option<Duration>,
    /// Slack's per-channel pace for `chat.postMessage`: a post sooner than this after
    /// the channel's last one is refused with 429 and `Retry-After`.
    channel_pace: Option<Duration>,
    last_post_at: HashMap<String, Instant>,
    rate_limited: usize,
    /// Files by id, as `files.getUploadURLExternal` minted them.
    files: BTreeMap<String, FileRec>,
    /// `files.completeUploadExternal` shares, in order.
    shares: Vec<FileShare>,
}

/// One file of the external upload flow.
#[derive(Debug, Clone, Default)]
pub struct FileRec {
    pub id: String,
    pub filename: String,
    pub length: usize,
    pub alt_txt: Option<String>,
    pub bytes: Option<Vec<u8>>,
    pub title: Option<String>,
}

/// One `files.completeUploadExternal` that shared files into a channel.
#[derive(Debug, Clone)]
pub struct FileShare {
    pub channel: String,
    pub initial_comment: Option<String>,
    pub thread_ts: Option<String>,
    pub files: Vec<FileRec>,
}

struct Shared {
    state: Mutex<SState>,
    /// Web API calls as (method, parameters).
    requests: RequestLog<(String, Value)>,
    /// Routes are Web API method names, compared whole.
    faults: FaultQueue,
    /// Calls of a method that take effect but whose answer never arrives.
    lost_answers: FaultQueue<()>,
    server: FakeServer,
}

/// Handle to a running fake Slack (cheap to clone; all clones share state).
#[derive(Clone)]
pub struct FakeSlack {
    shared: Arc<Shared>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, SState> {
    super::scaffold::lock(&shared.state)
}

fn triggers() -> &'static Mutex<HashMap<String, Instant>> {
    static TRIGGERS: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    TRIGGERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A fresh trigger id shaped like Slack's (`13345224609.738474920.8088930838d8...`).
/// The fake remembers when it was minted: `views.open` answers `expired_trigger_id`
/// once it is older than 3 s.
pub fn new_trigger_id() -> String {
    let id = format!(
        "{}.{}.{:016x}{}",
        10_000_000_000u64 + (next_random() % 1_000_000_000),
        now_millis() % 1_000_000_000,
        next_random(),
        super::canary()
    );
    triggers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), Instant::now());
    id
}

fn action_ts() -> String {
    let micros = now_millis() * 1000 + next_random() % 1000;
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

fn channel_name(channel: &str) -> String {
    if channel == DEFAULT_CHANNEL {
        "support".to_string()
    } else {
        channel.to_ascii_lowercase()
    }
}

fn response_url(kind: &str) -> String {
    format!(
        "https://hooks.slack.com/{kind}/{TEAM_ID}/{}/{}",
        next_random() % 10_000_000_000_000,
        super::canary()
    )
}

/// A `block_actions` interaction payload for a button click on a bot message, shaped
/// like Slack's (deserializes into `SlackInteractionEvent::BlockActions`). The
/// `message.blocks` is empty; use [`FakeSlack::block_actions_on`] for a payload that
/// carries the stored message.
pub fn block_actions(
    user_id: &str,
    user_name: &str,
    action_id: &str,
    value: &str,
    channel: &str,
    message_ts: &str,
    trigger_id: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": false
        },
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel, "name": channel_name(channel)},
        "message": {
            "type": "message",
            "ts": message_ts,
            "text": "",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "blocks": []
        },
        "state": {"values": {}},
        "response_url": response_url("actions"),
        "actions": [{
            "action_id": action_id,
            "block_id": "actions",
            "text": {"type": "plain_text", "text": "Button", "emoji": true},
            "value": value,
            "type": "button",
            "action_ts": action_ts()
        }]
    })
}

/// A `view_submission` payload (deserializes into
/// `SlackInteractionEvent::ViewSubmission`). `values` is `view.state.values`, e.g.
/// `{"answer": {"answer_input": {"type": "plain_text_input", "value": "Hi"}}}`.
pub fn view_submission(
    user_id: &str,
    user_name: &str,
    callback_id: &str,
    private_metadata: &str,
    values: Value,
) -> Value {
    let view_id = format!("V{:010X}", next_random() % 0xFF_FFFF_FFFF);
    let view = json!({
        "id": view_id,
        "team_id": TEAM_ID,
        "type": "modal",
        "title": {"type": "plain_text", "text": "Reply", "emoji": true},
        "submit": {"type": "plain_text", "text": "Send", "emoji": true},
        "close": {"type": "plain_text", "text": "Cancel", "emoji": true},
        "blocks": [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": values},
        "hash": format!("{}.{:08x}", now_millis() / 1000, next_random() as u32),
        "clear_on_close": false,
        "notify_on_close": false,
        "previous_view_id": null,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID
    });
    submission_payload(user_id, user_name, view)
}

fn submission_payload(user_id: &str, user_name: &str, view: Value) -> Value {
    json!({
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": new_trigger_id(),
        "view": view,
        "response_urls": [],
        "is_enterprise_install": false,
        "enterprise": null
    })
}

/// A slash command as Socket Mode delivers it (the form fields as a JSON object of
/// strings); deserializes into `SlackCommandEvent`.
pub fn slash_command(
    user_id: &str,
    user_name: &str,
    command: &str,
    text: &str,
    channel: &str,
) -> Value {
    json!({
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel,
        "channel_name": channel_name(channel),
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url("commands"),
        "trigger_id": new_trigger_id()
    })
}

/// An Events API `event_callback` carrying a user's `message` posted in a thread
/// (the payload of an `events_api` envelope, or the body of an Events API POST);
/// deserializes into `SlackPushEventCallback` with a `Message` event.
pub fn thread_message_event(
    user_id: &str,
    channel: &str,
    thread_ts: &str,
    ts: &str,
    text: &str,
) -> Value {
    let event_time = ts
        .split('.')
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(now_millis() / 1000);
    json!({
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "context_team_id": TEAM_ID,
        "context_enterprise_id": null,
        "api_app_id": APP_ID,
        "event": {
            "user": user_id,
            "type": "message",
            "ts": ts,
            "client_msg_id": uuid_like(),
            "text": text,
            "team": TEAM_ID,
            "thread_ts": thread_ts,
            "parent_user_id": BOT_USER_ID,
            "blocks": [{
                "type": "rich_text",
                "block_id": format!("{:05x}", next_random() as u32 & 0xfffff),
                "elements": [{
                    "type": "rich_text_section",
                    "elements": [{"type": "text", "text": text}]
                }]
            }],
            "channel": channel,
            "event_ts": ts,
            "channel_type": "channel"
        },
        "type": "event_callback",
        "event_id": format!("Ev{:010X}", next_random() % 0xFF_FFFF_FFFF),
        "event_time": event_time,
        "authorizations": [{
            "enterprise_id": null,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "is_bot": true,
            "is_enterprise_install": false
        }],
        "is_ext_shared_channel": false,
        "event_context": format!("4-{:032x}", next_random() as u128 * 0x1_0000_0001)
    })
}

/// Slack's request signature: `v0=` + hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}")),
/// for the `X-Slack-Signature` header (with `X-Slack-Request-Timestamp: timestamp`).
pub fn sign_request(signing_secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    super::remember_signature(&signature);
    format!("v0={signature}")
}

/// The bytes of a file minted by `files.getUploadURLExternal`; Slack answers in plain text.
fn upload_bytes(shared: &Shared, id: &str, body: &[u8]) -> Response {
    let mut st = lock(shared);
    let Some(rec) = st.files.get_mut(id) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    rec.bytes = Some(body.to_vec());
    (StatusCode::OK, format!("OK - {}", body.len())).into_response()
}

fn ok(mut v: Value) -> Response {
    let mut out = Map::new();
    out.insert("ok".into(), Value::Bool(true));
    if let Some(obj) = v.as_object_mut() {
        out.append(obj);
    }
    json_response(200, &Value::Object(out))
}

fn fail(error: &str) -> Response {
    json_response(200, &json!({"ok": false, "error": error}))
}

fn fail_with(error: &str, messages: Vec<String>) -> Response {
    json_response(
        200,
        &json!({"ok": false, "error": error, "response_metadata": {"messages": messages}}),
    )
}

/// Parses a parameter that may be a JSON value or a JSON-encoded string (form posts).
fn jsonish(v: Option<&Value>) -> Result<Option<Value>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(other) => Ok(Some(other.clone())),
    }
}

fn str_param(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bool_param(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn text_len(v: &Value, pointer: &str) -> Option<usize> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(|s| s.chars().count())
}

/// Validates Block Kit blocks against Slack's documented limits; returns Slack-style
/// `[ERROR] ... [json-pointer:...]` messages.
fn validate_blocks(blocks: &Value, root: &str, max_blocks: usize) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(list) = blocks.as_array() else {
        return vec![format!("[ERROR] must be an array [json-pointer:{root}]")];
    };
    if list.len() > max_blocks {
        errs.push(format!(
            "[ERROR] no more than {max_blocks} items allowed [json-pointer:{root}]"
        ));
    }
    let mut block_ids: Vec<String> = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let at = format!("{root}/{i}");
        let Some(kind) = b.get("type").and_then(Value::as_str) else {
            errs.push(format!(
                "[ERROR] missing required field: type [json-pointer:{at}]"
            ));
            continue;
        };
        if let Some(id) = b.get("block_id").and_then(Value::as_str) {
            if id.chars().count() > 255 {
                errs.push(format!(
                    "[ERROR] must be less than 256 characters [json-pointer:{at}/block_id]"
                ));
            }
            if block_ids.iter().any(|x| x == id) {
                errs.push(format!(
                    "[ERROR] duplicate block_id `{id}` [json-pointer:{at}/block_id]"
                ));
            }
            block_ids.push(id.to_string());
        }
        let elements = b.get("elements").and_then(Value::as_array);
        match kind {
            "section" => {
                if b.get("text").is_none() && b.get("fields").is_none() {
                    errs.push(format!(
                        "[ERROR] must provide either text or fields [json-pointer:{at}]"
                    ));
                }
                check_len(&mut errs, b, "/text/text", 3000, format!("{at}/text/text"));
                if let Some(fields) = b.get("fields").and_then(Value::as_array) {
                    if fields.len() > 10 {
                        errs.push(format!(
                            "[ERROR] no more than 10 items allowed [json-pointer:{at}/fields]"
                        ));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        check_len(&mut errs, f, "/text", 2000, format!("{at}/fields/{j}/text"));
                    }
                }
                if let Some(acc) = b.get("accessory") {
                    check_element(&mut errs, acc, &format!("{at}/accessory"));
                }
            }
            "header" => check_len(&mut errs, b, "/text/text", 150, format!("{at}/text/text")),
            "markdown" => check_len(&mut errs, b, "/text", 12000, format!("{at}/text")),
            "actions" => match elements {
                Some(els) if !els.is_empty() && els.len() <= 25 => {
                    let mut action_ids: Vec<&str> = Vec::new();
                    for (j, el) in els.iter().enumerate() {
                        check_element(&mut errs, el, &format!("{at}/elements/{j}"));
                        if let Some(a) = el.get("action_id").and_then(Value::as_str) {
                            if action_ids.contains(&a) {
                                errs.push(format!(
                                    "[ERROR] duplicate action_id `{a}` [json-pointer:{at}/elements/{j}/action_id]"
                                ));
                            }
                            action_ids.push(a);
                        }
                    }
                }
                _ => errs.push(format!(
                    "[ERROR] must contain between 1 and 25 items [json-pointer:{at}/elements]"
                )),
            },
            "context" => {
                if !matches!(elements, Some(els) if !els.is_empty() && els.len() <= 10) {
                    errs.push(format!(
                        "[ERROR] must contain between 1 and 10 items [json-pointer:{at}/elements]"
                    ));
                }
                for (j, el) in elements.into_iter().flatten().enumerate() {
                    check_len(
                        &mut errs,
                        el,
                        "/text",
                        3000,
                        format!("{at}/elements/{j}/text"),
                    );
                }
            }
            "input" => {
                check_len(
                    &mut errs,
                    b,
                    "/label/text",
                    2000,
                    format!("{at}/label/text"),
                );
                match b.get("element") {
                    Some(el) => check_element(&mut errs, el, &format!("{at}/element")),
                    None => errs.push(format!(
                        "[ERROR] missing required field: element [json-pointer:{at}]"
                    )),
                }
            }
            "divider" | "image" | "rich_text" | "file" | "video" | "context_actions" => {}
            other => errs.push(format!(
                "[ERROR] unsupported type: {other} [json-pointer:{at}/type]"
            )),
        }
    }
    errs
}

fn check_len(errs: &mut Vec<String>, v: &Value, ptr: &str, max: usize, at: String) {
    if let Some(n) = text_len(v, ptr) {
        if n > max {
            errs.push(format!(
                "[ERROR] must be less than {} characters [json-pointer:{at}]",
                max + 1
            ));
        }
        if n == 0 {
            errs.push(format!(
                "[ERROR] must be more than 0 characters [json-pointer:{at}]"
            ));
        }
    }
}

fn check_element(errs: &mut Vec<String>, el: &Value, at: &str) {
    let mut lim = |ptr: &str, max: usize| {
        if let Some(n) = text_len(el, ptr) {
            if n > max {
                errs.push(format!(
                    "[ERROR] must be less than {} characters [json-pointer:{at}{ptr}]",
                    max + 1
                ));
            }
        }
    };
    lim("/action_id", 255);
    if el.get("type").and_then(Value::as_str) == Some("button") {
        lim("/text/text", 75);
        lim("/value", 2000);
        lim("/url", 3000);
    }
    if el.get("type").and_then(Value::as_str) == Some("plain_text_input") {
        lim("/initial_value", 3000);
    }
}

/// Validates a modal view; returns Slack-style messages.
fn validate_view(view: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if !view.is_object() {
        return vec!["[ERROR] must be an object [json-pointer:/view]".to_string()];
    }
    match view.get("type").and_then(Value::as_str) {
        Some("modal") | Some("home") => {}
        _ => errs.push("[ERROR] must be one of: modal, home [json-pointer:/view/type]".to_string()),
    }
    let is_modal = view.get("type").and_then(Value::as_str) == Some("modal");
    for (field, required) in [("title", is_modal), ("submit", false), ("close", false)] {
        match text_len(view, &format!("/{field}/text")) {
            Some(n) if n > 24 => errs.push(format!(
                "[ERROR] must be less than 25 characters [json-pointer:/view/{field}/text]"
            )),
            Some(0) => errs.push(format!(
                "[ERROR] must be more than 0 characters [json-pointer:/view/{field}/text]"
            )),
            None if required => errs.push(format!(
                "[ERROR] missing required field: {field} [json-pointer:/view]"
            )),
            _ => {}
        }
    }
    match view.get("blocks") {
        Some(blocks) => errs.extend(validate_blocks(blocks, "/view/blocks", 100)),
        None => {
            errs.push("[ERROR] missing required field: blocks [json-pointer:/view]".to_string())
        }
    }
    let has_input = view
        .get("blocks")
        .and_then(Value::as_array)
        .is_some_and(|b| {
            b.iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("input"))
        });
    if is_modal && has_input && view.get("submit").is_none() {
        errs.push(
            "[ERROR] submit is required when an input block is present [json-pointer:/view/submit]"
                .to_string(),
        );
    }
    if text_len(view, "/private_metadata").is_some_and(|n| n > 3000) {
        errs.push(
            "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"
                .to_string(),
        );
    }
    if text_len(view, "/callback_id").is_some_and(|n| n > 255) {
        errs.push(
            "[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]".to_string(),
        );
    }
    errs
}

fn validate_metadata(md: &Value) -> bool {
    md.get("event_type")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
        && md.get("event_payload").is_none_or_object()
}

trait NoneOrObject {
    fn is_none_or_object(&self) -> bool;
}

impl NoneOrObject for Option<&Value> {
    fn is_none_or_object(&self) -> bool {
        match self {
            None => true,
            Some(v) => v.is_object(),
        }
    }
}

impl SState {
    fn next_ts(&mut self) -> String {
        let micros = (now_millis() * 1000).max(self.last_ts_micros + 1);
        self.last_ts_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn find(&self, channel: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.channel == channel && m.ts == ts)
    }

    fn replies_of(&self, channel: &str, ts: &str) -> Vec<&MsgRec> {
        self.messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts))
            .collect()
    }

    /// The message as Slack's API shows it. `metadata`: 0 = none, 1 = event_type
    /// only, 2 = whole.
    fn msg_json(&self, m: &MsgRec, metadata: u8) -> Value {
        let mut v = json!({
            "type": "message",
            "text": m.text,
            "user": m.user,
            "ts": m.ts,
            "team": TEAM_ID,
        });
        if let Some(bot) = &m.bot_id {
            v["bot_id"] = json!(bot);
            v["app_id"] = json!(APP_ID);
            v["bot_profile"] = json!({
                "id": BOT_ID,
                "app_id": APP_ID,
                "name": "mentionbridge",
                "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
                "deleted": false,
                "updated": 1_700_000_000,
                "team_id": TEAM_ID
            });
        }
        if let Some(id) = &m.client_msg_id {
            v["client_msg_id"] = json!(id);
        }
        if let Some(b) = &m.blocks {
            v["blocks"] = b.clone();
        }
        if let Some(md) = &m.metadata {
            match metadata {
                2 => v["metadata"] = md.clone(),
                1 => v["metadata"] = json!({"event_type": md.get("event_type")}),
                _ => {}
            }
        }
        if let Some(edit_ts) = &m.edited {
            v["edited"] = json!({"user": m.user, "ts": edit_ts});
        }
        if let Some(parent) = &m.thread_ts {
            v["thread_ts"] = json!(parent);
            if let Some(pi) = self.find(&m.channel, parent) {
                v["parent_user_id"] = json!(self.messages[pi].user);
            }
        } else {
            let replies = self.replies_of(&m.channel, &m.ts);
            if let Some(last) = replies.last() {
                let mut users: Vec<String> = Vec::new();
                for r in &replies {
                    if !users.contains(&r.user) {
                        users.push(r.user.clone());
                    }
                }
                v["thread_ts"] = json!(m.ts);
                v["reply_count"] = json!(replies.len());
                v["reply_users_count"] = json!(users.len());
                v["latest_reply"] = json!(last.ts);
                v["reply_users"] = json!(users);
                v["is_locked"] = json!(false);
                v["subscribed"] = json!(false);
            }
        }
        v
    }
}

fn ts_key(ts: &str) -> (u64, u64) {
    let (a, b) = ts.split_once('.').unwrap_or((ts, "0"));
    (
        a.parse().unwrap_or(0),
        format!("{b:0<6}").parse().unwrap_or(0),
    )
}

impl FakeSlack {
    /// Starts the fake on an ephemeral 127.0.0.1 port.
    pub async fn start() -> FakeSlack {
        Self::start_on(0).await
    }

    /// Starts the fake on a fixed 127.0.0.1 port (0 = ephemeral).
    pub async fn start_on(port: u16) -> FakeSlack {
        let listener = Listener::bind("Slack", port).await;
        let mut channels = BTreeMap::new();
        channels.insert(DEFAULT_CHANNEL.to_string(), "support".to_string());
        let shared = Arc::new(Shared {
            state: Mutex::new(SState {
                channels,
                users: BTreeMap::new(),
                messages: Vec::new(),
                updates: Vec::new(),
                ephemerals: Vec::new(),
                views_log: Vec::new(),
                views: HashMap::new(),
                usergroups: HashMap::new(),
                last_ts_micros: 0,
                tickets: HashMap::new(),
                ticket_seq: 0,
                conns: Vec::new(),
                conn_seq: 0,
                total_connections: 0,
                acks: Vec::new(),
                acks_by_id: HashMap::new(),
                trigger_expiry: Some(Duration::from_secs(3)),
                channel_pace: None,
                last_post_at: HashMap::new(),
                rate_limited: 0,
                files: BTreeMap::new(),
                shares: Vec::new(),
            }),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            lost_answers: FaultQueue::default(),
            server: listener.server(),
        });
        listener.serve(
            Router::new()
                .route("/socket", get(socket_upgrade))
                .fallback(web_api)
                .with_state(shared.clone()),
        );
        FakeSlack { shared }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    /// The Web API base for `with_slack_api_url`: `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url())
    }

    pub fn port(&self) -> u16 {
        self.shared.server.port()
    }

    pub fn bot_token(&self) -> &'static str {
        BOT_TOKEN
    }

    pub fn app_token(&self) -> &'static str {
        APP_TOKEN
    }

    /// Makes a channel exist (`C0SUPPORT` exists from the start).
    pub fn add_channel(&self, id: &str) {
        lock(&self.shared)
            .channels
            .insert(id.to_string(), channel_name(id));
    }

    /// Makes `users.info` know a user.
    pub fn add_user(&self, id: &str, name: &str) {
        lock(&self.shared)
            .users
            .insert(id.to_string(), name.to_string());
    }

    /// Members of a user group for `usergroups.users.list`.
    pub fn set_usergroup(&self, id: &str, users: &[&str]) {
        lock(&self.shared).usergroups.insert(
            id.to_string(),
            users.iter().map(|u| u.to_string()).collect(),
        );
    }

    /// How long trigger ids from [`new_trigger_id`] stay valid (default 3 s; None = forever).
    pub fn set_trigger_expiry(&self, expiry: Option<Duration>) {
        lock(&self.shared).trigger_expiry = expiry;
    }

    /// Stores a message written by a person (not the bot), e.g. an agent's answer in
    /// a card's thread, and returns its ts.
    pub fn add_user_message(
        &self,
        channel: &str,
        user_id: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> String {
        let mut st = lock(&self.shared);
        if let Some(parent) = thread_ts {
            assert!(
                st.find(channel, parent).is_some(),
                "add_user_message: no message {channel}/{parent} to reply to"
            );
        }
        let ts = st.next_ts();
        st.messages.push(MsgRec {
            channel: channel.to_string(),
            ts: ts.clone(),
            text: text.to_string(),
            blocks: None,
            metadata: None,
            thread_ts: thread_ts.map(str::to_string),
            user: user_id.to_string(),
            bot_id: None,
            edited: None,
            client_msg_id: Some(uuid_like()),
        });
        ts
    }

    /// Stores a person's thread reply and returns the matching Events API
    /// `event_callback` payload (for an `events_api` envelope).
    pub fn user_thread_reply(
        &self,
        user_id: &str,
        channel: &str,
        thread_ts: &str,
        text: &str,
    ) -> Value {
        let ts = self.add_user_message(channel, user_id, text, Some(thread_ts));
        let mut event = thread_message_event(user_id, channel, thread_ts, &ts, text);
        let parent_user = lock(&self.shared)
            .messages
            .iter()
            .find(|m| m.channel == channel && m.ts == thread_ts)
            .map(|m| m.user.clone());
        if let Some(u) = parent_user {
            event["event"]["parent_user_id"] = json!(u);
        }
        event
    }

    /// A `block_actions` payload for clicking the button `action_id` on the stored
    /// message `channel`/`message_ts`: block_id, value and text come from the
    /// message's blocks, `message` carries its text and blocks (metadata with
    /// `event_type` only). Panics if the message or button does not exist.
    pub fn block_actions_on(
        &self,
        channel: &str,
        message_ts: &str,
        user_id: &str,
        user_name: &str,
        action_id: &str,
    ) -> Value {
        let st = lock(&self.shared);
        let idx = st
            .find(channel, message_ts)
            .unwrap_or_else(|| panic!("block_actions_on: no message {channel}/{message_ts}"));
        let m = &st.messages[idx];
        let mut found = None;
        for block in m
            .blocks
            .iter()
            .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        {
            let mut candidates: Vec<Value> = block
                .get("elements")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(acc) = block.get("accessory") {
                candidates.push(acc.clone());
            }
            for el in candidates {
                if el.get("action_id").and_then(Value::as_str) == Some(action_id) {
                    found = Some((block.get("block_id").cloned(), el));
                }
            }
        }
        let (block_id, el) = found.unwrap_or_else(|| {
            panic!("block_actions_on: no element with action_id {action_id} on {channel}/{message_ts}: {:?}", m.blocks)
        });
        let mut payload = block_actions(
            user_id,
            user_name,
            action_id,
            el.get("value").and_then(Value::as_str).unwrap_or(""),
            channel,
            message_ts,
            &new_trigger_id(),
        );
        let mut message = st.msg_json(m, 1);
        if let Some(obj) = message.as_object_mut() {
            obj.remove("bot_profile");
        }
        payload["message"] = message;
        payload["actions"][0]["block_id"] = block_id.unwrap_or(json!("actions"));
        if let Some(text) = el.get("text") {
            payload["actions"][0]["text"] = text.clone();
        }
        if el.get("value").is_none() {
            if let Some(obj) = payload["actions"][0].as_object_mut() {
                obj.remove("value");
            }
        }
        if let Some(t) = el.get("type") {
            payload["actions"][0]["type"] = t.clone();
        }
        payload
    }

    /// A `view_submission` payload for the stored view `view_id` (as opened/updated by
    /// the bot) with `state.values` = `values`. Panics if the view does not exist.
    pub fn submission_for_view(
        &self,
        view_id: &str,
        user_id: &str,
        user_name: &str,
        values: Value,
    ) -> Value {
        let mut view = lock(&self.shared)
            .views
            .get(view_id)
            .cloned()
            .unwrap_or_else(|| panic!("submission_for_view: no view {view_id}"));
        view["state"] = json!({ "values": values });
        submission_payload(user_id, user_name, view)
    }

    /// What Slack does with the bot's answer to a `view_submission` of `view_id`: with
    /// `response_action: update` the view is replaced in place (same id, a new hash),
    /// checked like `views.update` and recorded in [`views`](Self::views) with method
    /// `response_action:update`; any other answer leaves the view as it was. Err lists
    /// what Slack would refuse about the new view (or names a view that does not exist).
    pub fn apply_submission_answer(
        &self,
        view_id: &str,
        answer: &Value,
    ) -> Result<(), Vec<String>> {
        if answer.get("response_action").and_then(Value::as_str) != Some("update") {
            return Ok(());
        }
        let view = answer.get("view").cloned().unwrap_or(Value::Null);
        let errs = validate_view(&view);
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut st = lock(&self.shared);
        if !st.views.contains_key(view_id) {
            return Err(vec![format!("no view {view_id} to update")]);
        }
        let mut params = Map::new();
        params.insert("view".into(), view);
        params.insert("view_id".into(), json!(view_id));
        let _ = views_call(&mut st, "views.update", &params);
        if let Some(last) = st.views_log.last_mut() {
            last["method"] = json!("response_action:update");
        }
        Ok(())
    }

    /// The next `n` calls of `method` take effect, but their answers never arrive (the
    /// client died, or the network cut, right after Slack acted).
    pub fn lose_next_answers(&self, method: &str, n: usize) {
        self.shared.lost_answers.push_n(Route::named(method), n);
    }

    /// Pace `chat.postMessage` per channel as Slack does (about one message a second):
    /// a post sooner than `pace` after the channel's last accepted one is answered 429
    /// `ratelimited` with `Retry-After` (whole seconds, at least 1). None: no pacing.
    pub fn set_channel_pace(&self, pace: Option<Duration>) {
        lock(&self.shared).channel_pace = pace;
    }

    /// How many calls were refused by the channel pace.
    pub fn rate_limited(&self) -> usize {
        lock(&self.shared).rate_limited
    }

    /// Queues faults for a Web API method (e.g. "chat.postMessage"); each call of the
    /// method consumes one, in order.
    pub fn fail_next(&self, method: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::named(method), faults);
    }

    /// Top-level messages of a channel (no thread replies), oldest first, current state.
    pub fn messages(&self, channel: &str) -> Vec<SlackMessage> {
        lock(&self.shared)
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.is_none())
            .map(MsgRec::public)
            .collect()
    }

    /// Every message of a channel incl. thread replies, oldest first.
    pub fn all_messages(&self, channel: &str) -> Vec<SlackMessage> {
        lock(&self.shared)
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .map(MsgRec::public)
            .collect()
    }

    /// Replies in the thread of `thread_ts` (not the parent), oldest first.
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<SlackMessage> {
        lock(&self.shared)
            .replies_of(channel, thread_ts)
            .into_iter()
            .map(MsgRec::public)
            .collect()
    }

    /// One message by ts.
    pub fn message(&self, channel: &str, ts: &str) -> Option<SlackMessage> {
        let st = lock(&self.shared);
        st.find(channel, ts).map(|i| st.messages[i].public())
    }

    /// Bodies of the `chat.update` calls that targeted `ts`, in order.
    pub fn updates(&self, ts: &str) -> Vec<Value> {
        lock(&self.shared)
            .updates
            .iter()
            .filter(|(t, _)| t == ts)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Bodies of `chat.postEphemeral` calls (plus the `message_ts` answered).
    pub fn ephemerals(&self) -> Vec<Value> {
        lock(&self.shared).ephemerals.clone()
    }

    /// The files shared into channels by `files.completeUploadExternal`, in order.
    pub fn file_shares(&self) -> Vec<FileShare> {
        lock(&self.shared).shares.clone()
    }

    /// `views.open` / `views.update` request bodies in order, each with `"method"`
    /// and the `"view_id"` the fake assigned/updated added.
    pub fn views(&self) -> Vec<Value> {
        lock(&self.shared).views_log.clone()
    }

    /// The current state of a view as `views.open/update` answered it.
    pub fn view(&self, view_id: &str) -> Option<Value> {
        lock(&self.shared).views.get(view_id).cloned()
    }

    /// Web API calls so far, as (method, parameters).
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.shared.requests.all()
    }

    /// How many times a Web API method was called (faulted calls included).
    pub fn count(&self, method: &str) -> usize {
        self.shared.requests.count(|(m, _)| m == method)
    }

    /// Socket Mode connections accepted so far (ever).
    pub fn connections(&self) -> usize {
        lock(&self.shared).total_connections
    }

    /// Socket Mode connections open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared).conns.len()
    }

    /// Every ack received over Socket Mode, in order.
    pub fn acks(&self) -> Vec<Value> {
        lock(&self.shared).acks.clone()
    }

    /// Polls `cond` (every 10 ms) until true; panics naming `what` after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut cond: impl FnMut(&FakeSlack) -> bool,
    ) {
        super::wait_until(timeout, what, || cond(self)).await
    }

    /// Waits until the channel has at least `n` top-level messages; returns them.
    pub async fn wait_for_messages(
        &self,
        channel: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<SlackMessage> {
        let what = format!("{n} messages in {channel} on fake Slack");
        let msgs = || self.messages(channel);
        wait_for_at_least(timeout, &what, n, msgs, &self.shared.requests).await
    }

    /// Waits until the thread has at least `n` replies; returns them.
    pub async fn wait_for_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<SlackMessage> {
        let what = format!("{n} replies in thread {channel}/{thread_ts}");
        let replies = || self.thread(channel, thread_ts);
        wait_for_at_least(timeout, &what, n, replies, &self.shared.requests).await
    }

    /// Waits until at least `n` Socket Mode connections were accepted (ever).
    pub async fn wait_for_connection(&self, n: usize, timeout: Duration) {
        let what = format!("{n} Socket Mode connections");
        super::wait_until(timeout, &what, || self.connections() >= n).await;
    }

    /// Sends an envelope over the newest open socket and returns the ack's `payload`
    /// (Value::Null for a bare ack). Panics if no socket opens or no ack comes within 5 s.
    pub async fn send_envelope(&self, kind: &str, payload: Value) -> Value {
        match self
            .send_envelope_with(kind, payload, 0, "", ACK_TIMEOUT)
            .await
        {
            Ok(v) => v,
            Err(e) => panic!("fake Slack: {e}"),
        }
    }

    /// Like [`send_envelope`](Self::send_envelope) with redelivery fields and a
    /// timeout; Err describes what was missing (no socket, no ack).
    pub async fn send_envelope_with(
        &self,
        kind: &str,
        payload: Value,
        retry_attempt: u32,
        retry_reason: &str,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let sent = poll(timeout, Duration::from_millis(10), || {
            self.post_envelope(kind, payload.clone(), retry_attempt, retry_reason)
        });
        let Some(envelope_id) = sent.await else {
            return Err(format!(
                "no open Socket Mode connection within {timeout:?} to send a {kind} envelope"
            ));
        };
        self.wait_for_ack(
            &envelope_id,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
    }

    /// Sends an envelope without waiting; returns its envelope_id, or None when no
    /// socket is open.
    pub fn post_envelope(
        &self,
        kind: &str,
        payload: Value,
        retry_attempt: u32,
        retry_reason: &str,
    ) -> Option<String> {
        let accepts = match kind {
            "slash_commands" => true,
            "interactive" => matches!(
                payload.get("type").and_then(Value::as_str),
                Some("view_submission") | Some("block_suggestion")
            ),
            _ => false,
        };
        let envelope_id = uuid_like();
        let envelope = json!({
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason
        });
        let st = lock(&self.shared);
        let conn = st.conns.last()?;
        conn.tx.send(ConnCmd::Text(envelope.to_string())).ok()?;
        Some(envelope_id)
    }

    /// Waits for the ack of `envelope_id`; returns its `payload` (Null for a bare ack).
    pub async fn wait_for_ack(
        &self,
        envelope_id: &str,
        timeout: Duration,
    ) -> Result<Value, String> {
        let ack = poll(timeout, Duration::from_millis(5), || {
            let st = lock(&self.shared);
            let ack = st.acks_by_id.get(envelope_id)?;
            Some(ack.get("payload").cloned().unwrap_or(Value::Null))
        });
        ack.await
            .ok_or_else(|| format!("no ack for envelope {envelope_id} within {timeout:?}"))
    }

    /// Closes every open socket abruptly: the TCP connection is dropped without a
    /// websocket close frame (like a network failure).
    pub fn drop_socket(&self) {
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(ConnCmd::Drop);
        }
    }

    /// Sends Slack's `disconnect` message (e.g. reason "refresh_requested") on every
    /// open socket, then closes them with a close frame 200 ms later.
    pub fn send_disconnect(&self, reason: &str) {
        let msg = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-test"}
        })
        .to_string();
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(ConnCmd::Text(msg.clone()));
            let tx = c.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = tx.send(ConnCmd::Close);
            });
        }
    }
}

async fn socket_upgrade(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned());
    {
        let mut st = lock(&shared);
        match ticket.as_ref().and_then(|t| st.tickets.get_mut(t)) {
            Some(used) if !*used => *used = true,
            _ => return (StatusCode::UNAUTHORIZED, "invalid or reused ticket").into_response(),
        }
    }
    ws.on_upgrade(move |socket| run_socket(shared, socket))
}

async fn run_socket(shared: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, num) = {
        let mut st = lock(&shared);
        st.conn_seq += 1;
        st.total_connections += 1;
        let id = st.conn_seq;
        st.conns.push(Conn { id, tx });
        (id, st.conns.len())
    };
    let started = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string();
    let hello = json!({
        "type": "hello",
        "num_connections": num,
        "debug_info": {
            "host": "applink-test",
            "started": started,
            "build_number": 1,
            "approximate_connection_time": 18060
        },
        "connection_info": {"app_id": APP_ID}
    });
    let mut alive = socket
        .send(WsMessage::text(hello.to_string()))
        .await
        .is_ok();
    while alive {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => record_ack(&shared, text.as_str()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => alive = false,
                Some(Ok(_)) => {} // pings are answered by the websocket layer
            },
            cmd = rx.recv() => match cmd {
                Some(ConnCmd::Text(text)) => {
                    alive = socket.send(WsMessage::text(text)).await.is_ok();
                }
                Some(ConnCmd::Close) => {
                    let _ = socket
                        .send(WsMessage::Close(Some(CloseFrame {
                            code: 1000,
                            reason: "".into(),
                        })))
                        .await;
                    // Give the client a moment to answer the close handshake.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while let Some(Ok(msg)) = socket.recv().await {
                            if let WsMessage::Text(text) = msg {
                                record_ack(&shared, text.as_str());
                            }
                        }
                    })
                    .await;
                    alive = false;
                }
                Some(ConnCmd::Drop) | None => alive = false,
            },
        }
    }
    lock(&shared).conns.retain(|c| c.id != id);
    drop(socket);
}

fn record_ack(shared: &Shared, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let mut st = lock(shared);
    if let Some(id) = v.get("envelope_id").and_then(Value::as_str) {
        st.acks_by_id.insert(id.to_string(), v.clone());
    }
    st.acks.push(v);
}

async fn web_api(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.uri().path().trim_start_matches("/api/").to_string();
    let resp = web_api_answer(State(shared.clone()), req).await;
    if shared.lost_answers.take_one(|r| r.prefix == method) {
        // Slack acted; the client never hears back (a crash or cut right after).
        return super::scaffold::lose_answer().await;
    }
    resp
}

async fn web_api_answer(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let Call {
        path,
        query,
        headers,
        body,
        ..
    } = Call::read(req, 4 << 20).await;
    if let Some(id) = path.strip_prefix("/upload/v1/") {
        return upload_bytes(&shared, id, &body);
    }
    let Some(method) = path.strip_prefix("/api/").map(str::to_string) else {
        return json_response(404, &json!({"ok": false, "error": "unknown_method"}));
    };

    let mut params = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        params.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !body.is_empty() {
        if ct.starts_with("application/json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(obj)) => params.extend(obj),
                _ => return fail("invalid_json"),
            }
        } else {
            for (k, v) in url::form_urlencoded::parse(&body) {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let token = bearer(&headers).or_else(|| str_param(&params, "token"));
    params.remove("token");

    shared
        .requests
        .record((method.clone(), Value::Object(params.clone())));
    let fault = shared.faults.take(|r| r.prefix == method);
    if let Some(refusal) = Fault::play(fault).await {
        let mut resp = refusal.response(|code| {
            let err = match code {
                429 => "ratelimited",
                500..=599 => "internal_error",
                _ => "fatal_error",
            };
            json_response(code, &json!({"ok": false, "error": err}))
        });
        if let Some(secs) = refusal.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        return resp;
    }

    let needs_app_token = method == "apps.connections.open";
    match token.as_deref() {
        None => return fail("not_authed"),
        Some(APP_TOKEN) if !needs_app_token => return fail("not_allowed_token_type"),
        Some(BOT_TOKEN) if needs_app_token => return fail("not_allowed_token_type"),
        Some(APP_TOKEN) | Some(BOT_TOKEN) => {}
        Some(_) => return fail("invalid_auth"),
    }

    let mut st = lock(&shared);
    match method.as_str() {
        "auth.test" => ok(json!({
            "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
            "team": "Test",
            "user": "mentionbridge",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": false
        })),
        "apps.connections.open" => {
            st.ticket_seq += 1;
            let ticket = format!("{}{}", st.ticket_seq, super::canary());
            st.tickets.insert(ticket.clone(), false);
            ok(
                json!({"url": format!("ws://127.0.0.1:{}/socket?ticket={ticket}", shared.server.port())}),
            )
        }
        "chat.postMessage" => {
            let channel = str_param(&params, "channel").unwrap_or_default();
            let now = Instant::now();
            let wait = st.channel_pace.and_then(|pace| {
                let last = *st.last_post_at.get(&channel)?;
                pace.checked_sub(now.duration_since(last))
                    .filter(|w| !w.is_zero())
            });
            if let Some(wait) = wait {
                st.rate_limited += 1;
                let mut resp = json_response(429, &json!({"ok": false, "error": "ratelimited"}));
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
                return resp;
            }
            let resp = post_message(&mut st, &params);
            if resp.status().is_success() {
                st.last_post_at.insert(channel, now);
            }
            resp
        }
        "chat.update" => chat_update(&mut st, &params),
        "files.getUploadURLExternal" => {
            let Some(filename) = str_param(&params, "filename") else {
                return fail("invalid_arguments");
            };
            let length = str_param(&params, "length")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0);
            let Some(length) = length else {
                return fail("invalid_arguments");
            };
            let id = format!("F{:010X}", next_random() % 0xFF_FFFF_FFFF);
            st.files.insert(
                id.clone(),
                FileRec {
                    id: id.clone(),
                    filename,
                    length,
                    alt_txt: str_param(&params, "alt_txt"),
                    ..FileRec::default()
                },
            );
            ok(json!({
                "upload_url": format!("{}/upload/v1/{id}", shared.server.url()),
                "file_id": id,
            }))
        }
        "files.completeUploadExternal" => {
            let files = match jsonish(params.get("files")) {
                Ok(Some(Value::Array(files))) if !files.is_empty() => files,
                _ => return fail("invalid_arguments"),
            };
            let Some(channel) = str_param(&params, "channel_id") else {
                return fail("invalid_arguments");
            };
            if !st.channels.contains_key(&channel) {
                return fail("channel_not_found");
            }
            let mut shared_files = Vec::new();
            for f in &files {
                let Some(id) = f["id"].as_str() else {
                    return fail("invalid_arguments");
                };
                let Some(rec) = st.files.get_mut(id) else {
                    return fail("file_not_found");
                };
                if rec.bytes.as_ref().map(Vec::len) != Some(rec.length) {
                    return fail("invalid_arguments");
                }
                rec.title = f["title"].as_str().map(str::to_string);
                shared_files.push(rec.clone());
            }
            st.shares.push(FileShare {
                channel,
                initial_comment: str_param(&params, "initial_comment"),
                thread_ts: str_param(&params, "thread_ts"),
                files: shared_files.clone(),
            });
            ok(json!({
                "files": shared_files
                    .iter()
                    .map(|f| json!({"id": f.id, "title": f.title, "name": f.filename}))
                    .collect::<Vec<_>>(),
            }))
        }
        "chat.postEphemeral" => {
            let channel = str_param(&params, "channel").unwrap_or_default();
            if !st.channels.contains_key(&channel) {
                return fail("channel_not_found");
            }
            if str_param(&params, "user").is_none() {
                return fail("user_not_in_channel");
            }
            if str_param(&params, "text").is_none() && params.get("blocks").is_none() {
                return fail("no_text");
            }
            if let Ok(Some(blocks)) = jsonish(params.get("blocks")) {
                let errs = validate_blocks(&blocks, "/blocks", 50);
                if !errs.is_empty() {
                    return fail_with("invalid_blocks", errs);
                }
            }
            let ts = st.next_ts();
            let mut rec = Value::Object(params.clone());
            rec["message_ts"] = json!(ts);
            st.ephemerals.push(rec);
            ok(json!({ "message_ts": ts }))
        }
        "views.open" | "views.update" => views_call(&mut st, &method, &params),
        "conversations.history" => history(&st, &params),
        "conversations.replies" => replies(&st, &params),
        "chat.getPermalink" => {
            let channel = str_param(&params, "channel").unwrap_or_default();
            let ts = str_param(&params, "message_ts").unwrap_or_default();
            if !st.channels.contains_key(&channel) {
                return fail("channel_not_found");
            }
            if st.find(&channel, &ts).is_none() {
                return fail("message_not_found");
            }
            ok(json!({
                "channel": channel,
                "permalink": format!("https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{}", ts.replace('.', ""))
            }))
        }
        "usergroups.users.list" => {
            let group = str_param(&params, "usergroup").unwrap_or_default();
            match st.usergroups.get(&group) {
                Some(users) => ok(json!({ "users": users })),
                None => fail("no_such_subteam"),
            }
        }
        "users.info" => {
            let user = str_param(&params, "user").unwrap_or_default();
            match st.users.get(&user) {
                Some(name) => ok(json!({"user": {
                    "id": user,
                    "team_id": TEAM_ID,
                    "name": name,
                    "deleted": false,
                    "real_name": name,
                    "tz": "Europe/Berlin",
                    "tz_label": "Central European Time",
                    "tz_offset": 3600,
                    "profile": {"real_name": name, "display_name": name, "team": TEAM_ID},
                    "is_bot": false,
                    "is_app_user": false,
                    "updated": 1_700_000_000
                }})),
                None => fail("user_not_found"),
            }
        }
        _ => fail("unknown_method"),
    }
}

fn post_message(st: &mut SState, params: &Map<String, Value>) -> Response {
    let channel = str_param(params, "channel").unwrap_or_default();
    if !st.channels.contains_key(&channel) {
        return fail("channel_not_found");
    }
    let text = str_param(params, "text").unwrap_or_default();
    let Ok(blocks) = jsonish(params.get("blocks")) else {
        return fail("invalid_blocks_format");
    };
    let Ok(metadata) = jsonish(params.get("metadata")) else {
        return fail("invalid_metadata_format");
    };
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|b| !b.is_empty());
    if text.is_empty() && !has_blocks && params.get("attachments").is_none() {
        return fail("no_text");
    }
    if text.chars().count() > 40_000 {
        return fail("msg_too_long");
    }
    if let Some(b) = &blocks {
        if !b.is_array() {
            return fail("invalid_blocks_format");
        }
        let errs = validate_blocks(b, "/blocks", 50);
        if !errs.is_empty() {
            return fail_with("invalid_blocks", errs);
        }
    }
    if let Some(md) = &metadata {
        if !validate_metadata(md) {
            return fail("invalid_metadata_format");
        }
    }
    let thread_ts = match str_param(params, "thread_ts") {
        None => None,
        Some(t) => match st.find(&channel, &t) {
            Some(i) => Some(st.messages[i].thread_ts.clone().unwrap_or(t)),
            None => return fail("thread_not_found"),
        },
    };
    let ts = st.next_ts();
    let rec = MsgRec {
        channel: channel.clone(),
        ts: ts.clone(),
        text,
        blocks,
        metadata,
        thread_ts,
        user: BOT_USER_ID.to_string(),
        bot_id: Some(BOT_ID.to_string()),
        edited: None,
        client_msg_id: None,
    };
    let message = st.msg_json(&rec, 2);
    st.messages.push(rec);
    ok(json!({"channel": channel, "ts": ts, "message": message}))
}

fn chat_update(st: &mut SState, params: &Map<String, Value>) -> Response {
    let channel = str_param(params, "channel").unwrap_or_default();
    if !st.channels.contains_key(&channel) {
        return fail("channel_not_found");
    }
    let ts = str_param(params, "ts").unwrap_or_default();
    let Some(idx) = st.find(&channel, &ts) else {
        return fail("message_not_found");
    };
    if st.messages[idx].user != BOT_USER_ID {
        return fail("cant_update_message");
    }
    let Ok(blocks) = jsonish(params.get("blocks")) else {
        return fail("invalid_blocks_format");
    };
    let Ok(metadata) = jsonish(params.get("metadata")) else {
        return fail("invalid_metadata_format");
    };
    let text = str_param(params, "text");
    if text.is_none() && blocks.is_none() && params.get("attachments").is_none() {
        return fail("no_text");
    }
    if text.as_ref().is_some_and(|t| t.chars().count() > 40_000) {
        return fail("msg_too_long");
    }
    if let Some(b) = &blocks {
        if !b.is_array() {
            return fail("invalid_blocks_format");
        }
        let errs = validate_blocks(b, "/blocks", 50);
        if !errs.is_empty() {
            return fail_with("invalid_blocks", errs);
        }
    }
    if let Some(md) = &metadata {
        if !validate_metadata(md) {
            return fail("invalid_metadata_format");
        }
    }
    let edit_ts = st.next_ts();
    {
        let m = &mut st.messages[idx];
        if let Some(t) = text {
            m.text = t;
        }
        // Slack keeps the previous blocks when `blocks` is left out; `[]` removes them.
        if let Some(b) = blocks {
            m.blocks = if b.as_array().is_some_and(|a| a.is_empty()) {
                None
            } else {
                Some(b)
            };
        }
        if metadata.is_some() {
            m.metadata = metadata;
        }
        m.edited = Some(edit_ts);
    }
    st.updates.push((ts.clone(), Value::Object(params.clone())));
    let m = st.messages[idx].clone();
    let mut message = st.msg_json(&m, 2);
    if let Some(obj) = message.as_object_mut() {
        obj.remove("ts");
    }
    let mut out = json!({"channel": channel, "ts": ts, "text": m.text, "message": message});
    if let Some(t) = &m.thread_ts {
        out["thread_ts"] = json!(t);
    }
    ok(out)
}

fn views_call(st: &mut SState, method: &str, params: &Map<String, Value>) -> Response {
    let Ok(Some(view)) = jsonish(params.get("view")) else {
        return fail("invalid_arguments");
    };
    let existing_id = if method == "views.open" {
        let Some(trigger) = str_param(params, "trigger_id") else {
            return fail("invalid_trigger_id");
        };
        if let Some(expiry) = st.trigger_expiry {
            let minted = triggers()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&trigger)
                .copied();
            if minted.is_some_and(|at| at.elapsed() > expiry) {
                return fail("expired_trigger_id");
            }
        }
        None
    } else {
        let by_id = str_param(params, "view_id");
        let by_external = str_param(params, "external_id").and_then(|ext| {
            st.views
                .iter()
                .find(|(_, v)| v.get("external_id").and_then(Value::as_str) == Some(ext.as_str()))
                .map(|(k, _)| k.clone())
        });
        match by_id.or(by_external) {
            Some(id) if st.views.contains_key(&id) => {
                if let Some(hash) = str_param(params, "hash") {
                    if st.views[&id].get("hash").and_then(Value::as_str) != Some(hash.as_str()) {
                        return fail("hash_conflict");
                    }
                }
                Some(id)
            }
            _ => return fail("not_found"),
        }
    };
    let errs = validate_view(&view);
    if !errs.is_empty() {
        return fail_with("invalid_arguments", errs);
    }
    let view_id = existing_id
        .clone()
        .unwrap_or_else(|| format!("V{:010X}", next_random() % 0xFF_FFFF_FFFF));
    let root = existing_id
        .as_ref()
        .and_then(|id| st.views[id].get("root_view_id").cloned())
        .unwrap_or(json!(view_id));
    let mut stored = view.clone();
    let defaults = json!({
        "id": view_id,
        "team_id": TEAM_ID,
        "state": {"values": {}},
        "hash": format!("{}.{:08x}", now_millis() / 1000, next_random() as u32),
        "clear_on_close": false,
        "notify_on_close": false,
        "close": null,
        "submit": null,
        "previous_view_id": null,
        "root_view_id": root,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
        "private_metadata": "",
        "callback_id": ""
    });
    if let (Some(obj), Some(d)) = (stored.as_object_mut(), defaults.as_object()) {
        for (k, v) in d {
            if k == "id"
                || k == "team_id"
                || k == "hash"
                || k == "root_view_id"
                || !obj.contains_key(k)
            {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    st.views.insert(view_id.clone(), stored.clone());
    let mut log = Value::Object(params.clone());
    log["view"] = view;
    log["method"] = json!(method);
    log["view_id"] = json!(view_id);
    st.views_log.push(log);
    ok(json!({ "view": stored }))
}

fn parse_cursor(cursor: Option<String>) -> Option<String> {
    let raw = hex::decode(cursor?).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("next_ts:")
        .map(str::to_string)
}

fn make_cursor(ts: &str) -> String {
    hex::encode(format!("next_ts:{ts}"))
}

fn history(st: &SState, params: &Map<String, Value>) -> Response {
    let channel = str_param(params, "channel").unwrap_or_default();
    if !st.channels.contains_key(&channel) {
        return fail("channel_not_found");
    }
    let limit = str_param(params, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(100)
        .min(999);
    let inclusive = bool_param(params, "inclusive");
    let oldest = str_param(params, "oldest").map(|t| ts_key(&t));
    let latest = str_param(params, "latest").map(|t| ts_key(&t));
    let cursor = parse_cursor(str_param(params, "cursor")).map(|t| ts_key(&t));
    let metadata = if bool_param(params, "include_all_metadata") {
        2
    } else {
        1
    };
    let mut candidates: Vec<&MsgRec> = st
        .messages
        .iter()
        .filter(|m| m.channel == channel && m.thread_ts.is_none())
        .filter(|m| {
            let k = ts_key(&m.ts);
            oldest.is_none_or_cmp(|o| if inclusive { k >= o } else { k > o })
                && latest.is_none_or_cmp(|l| if inclusive { k <= l } else { k < l })
                && cursor.is_none_or_cmp(|c| k <= c)
        })
        .collect();
    candidates.sort_by_key(|m| std::cmp::Reverse(ts_key(&m.ts)));
    let has_more = candidates.len() > limit;
    let next_cursor = if has_more {
        make_cursor(&candidates[limit].ts)
    } else {
        String::new()
    };
    let messages: Vec<Value> = candidates
        .iter()
        .take(limit)
        .map(|m| st.msg_json(m, metadata))
        .collect();
    ok(json!({
        "messages": messages,
        "has_more": has_more,
        "pin_count": 0,
        "channel_actions_ts": null,
        "channel_actions_count": 0,
        "response_metadata": {"next_cursor": next_cursor}
    }))
}

fn replies(st: &SState, params: &Map<String, Value>) -> Response {
    let channel = str_param(params, "channel").unwrap_or_default();
    if !st.channels.contains_key(&channel) {
        return fail("channel_not_found");
    }
    let ts = str_param(params, "ts").unwrap_or_default();
    let Some(idx) = st.find(&channel, &ts) else {
        return fail("thread_not_found");
    };
    let parent_ts = st.messages[idx].thread_ts.clone().unwrap_or(ts);
    let Some(pidx) = st.find(&channel, &parent_ts) else {
        return fail("thread_not_found");
    };
    let limit = str_param(params, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(1000);
    let cursor = parse_cursor(str_param(params, "cursor")).map(|t| ts_key(&t));
    let metadata = if bool_param(params, "include_all_metadata") {
        2
    } else {
        1
    };
    let mut all: Vec<&MsgRec> = vec![&st.messages[pidx]];
    all.extend(st.replies_of(&channel, &parent_ts));
    let all: Vec<&MsgRec> = all
        .into_iter()
        .filter(|m| cursor.is_none_or_cmp(|c| ts_key(&m.ts) >= c))
        .collect();
    let has_more = all.len() > limit;
    let next_cursor = if has_more {
        make_cursor(&all[limit].ts)
    } else {
        String::new()
    };
    let messages: Vec<Value> = all
        .iter()
        .take(limit)
        .map(|m| st.msg_json(m, metadata))
        .collect();
    ok(json!({
        "messages": messages,
        "has_more": has_more,
        "response_metadata": {"next_cursor": next_cursor}
    }))
}

trait OptCmp<T> {
    fn is_none_or_cmp(&self, f: impl FnOnce(T) -> bool) -> bool;
}

impl<T: Copy> OptCmp<T> for Option<T> {
    fn is_none_or_cmp(&self, f: impl FnOnce(T) -> bool) -> bool {
        match self {
            None => true,
            Some(v) => f(*v),
        }
    }
}
