//! A fake Discord on 127.0.0.1: the REST API v10 under `/api/v10/...` and the gateway
//! websocket at `/gateway` (plus `/gateway-resume`, the `resume_gateway_url` it hands
//! out). Shapes follow Discord's official docs (discord/discord-api-docs) and what
//! serenity 0.12.5 decodes; every REST answer is `Content-Type: application/json` and
//! carries Discord's `X-RateLimit-*` headers.
//!
//! Semantics worth knowing:
//! - One guild [`GUILD_ID`], one application [`APP_ID`] whose bot user has the same id
//!   (as Discord does for current applications), one text channel [`DEFAULT_CHANNEL`] at
//!   start. Ids are real snowflakes (time-ordered, compare numerically).
//! - Auth: `Authorization: Bot <BOT_TOKEN>` on every route except `GET /gateway`, the
//!   interaction callback and the interaction webhooks (authenticated by their token).
//!   Missing/wrong → 401 `{"message": "401: Unauthorized", "code": 0}`.
//! - Errors are Discord's: `{"message", "code"}` with the documented JSON codes (10003
//!   Unknown Channel, 10008 Unknown Message, 10015 Unknown Webhook, 10062 Unknown
//!   interaction, 40060, 50001, 50006, 50035 Invalid Form Body with nested `errors`,
//!   160004, ...). The `errors` leaf codes (`BASE_TYPE_MAX_LENGTH`, ...) follow what
//!   Discord answers as far as known; treat them as approximations.
//! - Create Message: `nonce` + `enforce_nonce: true` returns the earlier message of the
//!   same author/channel/nonce within the nonce window (5 min, settable) instead of
//!   creating one. `message_reference` to an unknown message → 50035
//!   `REPLIES_UNKNOWN_MESSAGE` unless `fail_if_not_exists: false`; a valid one makes a
//!   type-19 reply with `referenced_message`. Stored components get sequential numeric
//!   `id`s, embeds get `type: "rich"`, as Discord does. `nonce` is echoed only in the
//!   create answer (and MESSAGE_CREATE), not in later reads.
//! - Threads from a message: the thread's id is the message id; the parent message
//!   then carries `thread`. No THREAD_STARTER_MESSAGE (type 21) is synthesised.
//! - Interactions: built by the builder methods (which register them) and delivered by
//!   [`FakeDiscord::send_interaction`] (gateway) or [`FakeDiscord::deliver_http`]
//!   (signed POST to an interactions endpoint). The first callback must come within the
//!   deadline (3 s, settable) of delivery, else 404 10062; a second one → 400 40060.
//!   Callback effects: 4 posts the original response (ephemeral with flag 64), 5 posts
//!   a loading message (flag 128) that `PATCH .../@original` fills in, 7 edits the
//!   component's message, 9 opens a modal that [`FakeDiscord::modal_submit`] answers.
//!   Follow-ups need an acknowledged interaction (else 404 10015 Unknown Webhook) and
//!   expire after 15 minutes (401 50027).
//! - Gateway: plain JSON text frames (no payload or transport compression, although
//!   serenity asks for payload compression in Identify; Discord may send plain frames
//!   then too). Hello → Identify → READY (seq 1); Heartbeat → ACK; Resume replays the
//!   missed dispatches then RESUMED; an unknown/expired session → op 9 `false`. The
//!   bot's own REST actions are dispatched like Discord does (MESSAGE_CREATE/UPDATE
//!   with the GUILD_MESSAGES intent, THREAD_CREATE with GUILDS), message content of
//!   other users' messages is blanked without the MESSAGE_CONTENT intent.
//! - Headers: a request body needs `Content-Type: application/json` (else 50035
//!   `CONTENT_TYPE_INVALID`, as documented); `set_require_user_agent(true)` also
//!   refuses requests without `User-Agent: DiscordBot (...)`.
//! - serenity 0.12.5 (checked by removing fields one by one) fails to decode an
//!   interaction without `id`, `application_id`, `type`, `data`, `token`, `version`,
//!   `channel_id` (deprecated in the docs, still required), `locale`, `entitlements`,
//!   `attachment_size_limit`, a non-null `authorizing_integration_owners`, and for
//!   components the full `message`; a `member` needs `user`, `roles`, `deaf`, `mute`,
//!   `flags`. A gateway event serenity cannot decode is dropped with only a log line.
use super::scaffold::{
    wait_for_at_least, Call, FakeServer, FaultQueue, Listener, Refusal, RequestLog, Route,
};
use super::{next_random, now_millis, Fault};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The bot token (send as `Authorization: Bot <token>`; serenity adds the prefix).
pub const BOT_TOKEN: &str =
    "MTEwMDAwMDAwMDAwMDAwMDAwMg.GfAkE0.fake-discord-bot-token-CANARYbdfdff1a6bdebfcb";
/// The one guild the bot is in.
pub const GUILD_ID: &str = "1100000000000000001";
/// The application id; the bot user has the same id.
pub const APP_ID: &str = "1100000000000000002";
pub const BOT_USER_ID: &str = APP_ID;
pub const BOT_USERNAME: &str = "mentionbridge";
/// The text channel that exists from the start.
pub const DEFAULT_CHANNEL: &str = "1100000000000000010";
pub const DEFAULT_CHANNEL_NAME: &str = "support";
/// Discord's usual heartbeat interval.
pub const DEFAULT_HEARTBEAT_MS: u64 = 41_250;
/// `attachment_size_limit` in interactions (10 MiB, an unboosted guild).
pub const ATTACHMENT_SIZE_LIMIT: u64 = 10_485_760;

/// Gateway intents (bits of Identify's `intents`).
pub const INTENT_GUILDS: u64 = 1 << 0;
pub const INTENT_GUILD_MEMBERS: u64 = 1 << 1;
pub const INTENT_GUILD_PRESENCES: u64 = 1 << 8;
pub const INTENT_GUILD_MESSAGES: u64 = 1 << 9;
pub const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;

const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED | APPLICATION_COMMAND_BADGE.
const APP_FLAGS: u64 = (1 << 15) | (1 << 19) | (1 << 23);
const FLAG_SUPPRESS_EMBEDS: u64 = 1 << 2;
const FLAG_EPHEMERAL: u64 = 1 << 6;
const FLAG_LOADING: u64 = 1 << 7;
const FLAG_SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
const FLAG_IS_VOICE_MESSAGE: u64 = 1 << 13;
const FLAG_IS_COMPONENTS_V2: u64 = 1 << 15;
const INTERACTION_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// Permissions of a member built by [`member`]: CREATE_INSTANT_INVITE, ADD_REACTIONS,
/// VIEW_CHANNEL, SEND_MESSAGES, EMBED_LINKS, ATTACH_FILES, READ_MESSAGE_HISTORY,
/// USE_EXTERNAL_EMOJIS, CHANGE_NICKNAME, USE_APPLICATION_COMMANDS,
/// CREATE_PUBLIC_THREADS, SEND_MESSAGES_IN_THREADS.
pub const MEMBER_PERMISSIONS: u64 = 1
    | (1 << 6)
    | (1 << 10)
    | (1 << 11)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18)
    | (1 << 26)
    | (1 << 31)
    | (1 << 35)
    | (1 << 38);
/// The bot's permissions in the channels (`app_permissions`): the member set plus
/// MANAGE_THREADS, minus invite/nickname.
pub const APP_PERMISSIONS: u64 = (1 << 6)
    | (1 << 10)
    | (1 << 11)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18)
    | (1 << 31)
    | (1 << 34)
    | (1 << 35)
    | (1 << 38);

// ---------------------------------------------------------------------------
// Free helpers: ids, users, members, signatures
// ---------------------------------------------------------------------------

/// A fresh snowflake (time-ordered, unique in the process), as a string.
pub fn snowflake() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let ms = now_millis().saturating_sub(DISCORD_EPOCH_MS);
    let candidate = (ms << 22) | (1 << 17) | (1 << 12);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = candidate.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next.to_string(),
            Err(p) => prev = p,
        }
    }
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn iso_now() -> String {
    iso(chrono::Utc::now())
}

fn epoch_secs_f64() -> f64 {
    now_millis() as f64 / 1000.0
}

/// A user object as Discord shows other users (in members, authors, metadata).
pub fn user(user_id: &str, username: &str) -> Value {
    json!({
        "id": user_id,
        "username": username,
        "avatar": null,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "banner": null,
        "accent_color": null,
        "global_name": username,
        "avatar_decoration_data": null,
        "collectibles": null,
        "display_name_styles": null,
        "banner_color": null,
        "clan": null,
        "primary_guild": null
    })
}

/// The bot user as it appears as a message author.
pub fn bot_user() -> Value {
    json!({
        "id": BOT_USER_ID,
        "username": BOT_USERNAME,
        "avatar": null,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "bot": true,
        "banner": null,
        "accent_color": null,
        "global_name": null,
        "avatar_decoration_data": null,
        "collectibles": null,
        "display_name_styles": null,
        "banner_color": null,
        "clan": null,
        "primary_guild": null
    })
}

fn current_user() -> Value {
    let mut u = bot_user();
    let extra = json!({
        "mfa_enabled": false,
        "locale": "en-US",
        "premium_type": 0,
        "email": null,
        "verified": true,
        "bio": ""
    });
    merge(&mut u, &extra);
    u
}

fn merge(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// A guild member object with `user`, as Discord sends it in interactions (`deaf`,
/// `mute`, `flags`, `pending`, `permissions` = [`MEMBER_PERMISSIONS`], ...).
pub fn member(user_id: &str, username: &str, roles: &[&str]) -> Value {
    json!({
        "avatar": null,
        "banner": null,
        "communication_disabled_until": null,
        "deaf": false,
        "flags": 0,
        "joined_at": "2024-05-01T09:00:00.000000+00:00",
        "mute": false,
        "nick": null,
        "pending": false,
        "permissions": MEMBER_PERMISSIONS.to_string(),
        "premium_since": null,
        "roles": roles,
        "unusual_dm_activity_until": null,
        "collectibles": null,
        "display_name_styles": null,
        "user": user(user_id, username)
    })
}

/// The member object Discord puts beside a user's message in MESSAGE_CREATE (a partial
/// member without `user`).
fn partial_member(roles: &[String]) -> Value {
    json!({
        "avatar": null,
        "banner": null,
        "communication_disabled_until": null,
        "deaf": false,
        "flags": 0,
        "joined_at": "2024-05-01T09:00:00.000000+00:00",
        "mute": false,
        "nick": null,
        "pending": false,
        "premium_since": null,
        "roles": roles
    })
}

fn signing_key() -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(b"mentionbridge fake Discord interactions key").into();
    SigningKey::from_bytes(&seed)
}

/// Hex of the fixed test Ed25519 public key (the application's `verify_key`).
pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// Discord's request signature for the HTTP interactions endpoint: hex of Ed25519 over
/// `timestamp + body` (headers `X-Signature-Ed25519` and `X-Signature-Timestamp`).
pub fn sign(timestamp: &str, body: &str) -> String {
    let msg = [timestamp.as_bytes(), body.as_bytes()].concat();
    let signature = hex::encode(signing_key().sign(&msg).to_bytes());
    super::remember_signature(&signature);
    signature
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn interaction_token(id: &str) -> String {
    let raw = format!(
        "interaction:{id}:{:016x}{:016x}{:016x}",
        next_random(),
        next_random(),
        next_random()
    );
    // Discord's tokens are opaque; the marker lets the leak scan find this one.
    format!("{}{}", super::canary(), b64url(raw.as_bytes()))
}

fn id_num(id: &str) -> u128 {
    id.parse::<u128>().unwrap_or(u128::MAX)
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// A message as the fake stores it (current state).
#[derive(Clone, Debug, PartialEq)]
pub struct DiscordMessage {
    pub id: String,
    pub channel_id: String,
    pub author_id: String,
    pub content: String,
    /// The `embeds` array as Discord returns it.
    pub embeds: Value,
    /// The `components` array as Discord returns it (with assigned `id`s).
    pub components: Value,
    /// The nonce the message was created with (integers as their decimal string).
    pub nonce: Option<String>,
    pub flags: u64,
    /// Message type: 0 default, 19 reply, 20 chat-input command response.
    pub kind: u8,
    /// The replied-to message id (`message_reference.message_id`).
    pub reply_to: Option<String>,
    /// The interaction this message answers (original response or follow-up).
    pub interaction_id: Option<String>,
    /// Ephemeral interaction messages are not part of the channel's history.
    pub ephemeral: bool,
    /// Whether it was edited after creation.
    pub edited: bool,
}

#[derive(Clone, Debug)]
struct MsgRec {
    id: String,
    channel_id: String,
    author: Value,
    author_id: String,
    author_roles: Vec<String>,
    content: String,
    embeds: Value,
    components: Value,
    nonce: Option<Value>,
    flags: u64,
    kind: u8,
    timestamp: String,
    edited_timestamp: Option<String>,
    reference: Option<Value>,
    webhook_id: Option<String>,
    interaction_metadata: Option<Value>,
    legacy_interaction: Option<Value>,
    interaction_id: Option<String>,
    ephemeral: bool,
    position: Option<u64>,
}

impl MsgRec {
    fn public(&self) -> DiscordMessage {
        DiscordMessage {
            id: self.id.clone(),
            channel_id: self.channel_id.clone(),
            author_id: self.author_id.clone(),
            content: self.content.clone(),
            embeds: self.embeds.clone(),
            components: self.components.clone(),
            nonce: self.nonce.as_ref().map(|n| match n {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            flags: self.flags,
            kind: self.kind,
            reply_to: self
                .reference
                .as_ref()
                .and_then(|r| r.get("message_id"))
                .and_then(Value::as_str)
                .map(str::to_string),
            interaction_id: self.interaction_id.clone(),
            ephemeral: self.ephemeral,
            edited: self.edited_timestamp.is_some(),
        }
    }
}

#[derive(Clone, Debug)]
struct ThreadRec {
    auto_archive_duration: u64,
    archive_timestamp: String,
    create_timestamp: String,
}

#[derive(Clone, Debug)]
struct ChanRec {
    id: String,
    name: String,
    kind: u8,
    parent_id: Option<String>,
    owner_id: Option<String>,
    missing_access: bool,
    thread: Option<ThreadRec>,
    message_count: u64,
    last_message_id: Option<String>,
    rate_limit_per_user: u64,
}

#[derive(Clone, Debug)]
struct IxRec {
    id: String,
    token: String,
    kind: u8,
    channel_id: String,
    /// The message a component lives on (components, modals opened from components).
    message_id: Option<String>,
    user: Value,
    command_name: Option<String>,
    /// Metadata of the interaction that opened the modal (modal submits only).
    triggering_metadata: Option<Value>,
    delivered: Instant,
    acked: Option<u8>,
    original: Option<String>,
    payload: Value,
}

#[derive(Clone, Debug)]
struct Cmd {
    id: String,
    version: String,
    input: Value,
}

struct Bucket {
    start: Instant,
    count: u32,
}

enum GwCmd {
    Text(String),
    Close(u16, String),
    Drop,
}

struct GwConn {
    id: u64,
    tx: mpsc::UnboundedSender<GwCmd>,
    session: Option<String>,
    identified: bool,
}

struct Session {
    seq: u64,
    events: Vec<(u64, String)>,
    conn: Option<u64>,
    intents: u64,
    valid: bool,
}

struct DState {
    channels: BTreeMap<String, ChanRec>,
    messages: Vec<MsgRec>,
    edits: Vec<(String, Value)>,
    thread_for_message: HashMap<String, String>,
    nonces: HashMap<(String, String, String), (String, Instant)>,
    interactions: HashMap<String, IxRec>,
    token_to_ix: HashMap<String, String>,
    callbacks: Vec<(String, u16, Value)>,
    followups: Vec<(String, Value)>,
    modals: HashMap<String, (String, Value)>,
    commands: BTreeMap<String, Vec<Cmd>>,
    command_overwrites: Vec<(String, Value)>,
    commands_created: usize,
    buckets: HashMap<String, Bucket>,
    rate_limit: u32,
    rate_window: Duration,
    enforce_rate_limit: bool,
    /// 429s answered because a bucket was exhausted.
    rate_limited: usize,
    require_user_agent: bool,
    interaction_deadline: Duration,
    nonce_window: Duration,
    approved_intents: u64,
    // gateway
    conns: Vec<GwConn>,
    conn_seq: u64,
    total_connections: usize,
    connection_paths: Vec<String>,
    sessions: HashMap<String, Session>,
    current_session: Option<String>,
    identifies: usize,
    identify_payloads: Vec<Value>,
    resumes: usize,
    readies: usize,
    heartbeats: usize,
    invalid_sessions: usize,
    heartbeat_interval: u64,
    ack_heartbeats: bool,
    auto_events: bool,
    /// The `files[n]` parts of the multipart request being handled.
    upload: Vec<FilePart>,
    /// Attachments by message id, as multipart edits left them.
    attachments: HashMap<String, Vec<Attachment>>,
}

/// One `files[n]` part of a multipart request.
#[derive(Debug, Clone)]
struct FilePart {
    n: u64,
    filename: String,
    content_type: String,
    bytes: Vec<u8>,
}

/// A file attached to a message, with the description its `attachments` entry gave.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: String,
    pub filename: String,
    pub description: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

struct Shared {
    state: Mutex<DState>,
    /// REST requests as (method, path with query, JSON body or Null).
    requests: RequestLog<(String, String, Value)>,
    /// Routes match the full path or the path below `/api/v10`.
    faults: FaultQueue,
    lost: FaultQueue<()>,
    server: FakeServer,
}

fn lock(shared: &Shared) -> MutexGuard<'_, DState> {
    super::scaffold::lock(&shared.state)
}

/// Handle to a running fake Discord (cheap to clone; all clones share state).
#[derive(Clone)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
}

// ---------------------------------------------------------------------------
// JSON helpers: errors, validation
// ---------------------------------------------------------------------------

type Reply = (u16, Option<Value>);

fn err(status: u16, message: &str, code: u64) -> Reply {
    (status, Some(json!({"message": message, "code": code})))
}

fn unauthorized() -> Reply {
    err(401, "401: Unauthorized", 0)
}

fn unknown_channel() -> Reply {
    err(404, "Unknown Channel", 10003)
}

fn unknown_message() -> Reply {
    err(404, "Unknown Message", 10008)
}

fn unknown_webhook() -> Reply {
    err(404, "Unknown Webhook", 10015)
}

fn missing_access() -> Reply {
    err(403, "Missing Access", 50001)
}

fn empty_message() -> Reply {
    err(400, "Cannot send an empty message", 50006)
}

/// Collects 50035 `errors` as Discord nests them (`{"content": {"_errors": [...]}}`).
#[derive(Default)]
struct FormErrors(Map<String, Value>);

impl FormErrors {
    fn add(&mut self, path: &[String], code: &str, message: &str) {
        let mut node = &mut self.0;
        for seg in path {
            let entry = node
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().expect("object");
        }
        let list = node
            .entry("_errors")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(arr) = list.as_array_mut() {
            arr.push(json!({"code": code, "message": message}));
        }
    }

    fn max_len(&mut self, path: &[String], v: Option<&Value>, max: usize) {
        if let Some(s) = v.and_then(Value::as_str) {
            if s.chars().count() > max {
                self.add(
                    path,
                    "BASE_TYPE_MAX_LENGTH",
                    &format!("Must be {max} or fewer in length."),
                );
            }
        }
    }

    fn max_items(&mut self, path: &[String], v: Option<&Value>, max: usize) {
        if let Some(a) = v.and_then(Value::as_array) {
            if a.len() > max {
                self.add(
                    path,
                    "BASE_TYPE_MAX_LENGTH",
                    &format!("Must be {max} or fewer in length."),
                );
            }
        }
    }

    fn required(&mut self, path: &[String]) {
        self.add(path, "BASE_TYPE_REQUIRED", "This field is required");
    }

    fn into_reply(self) -> Option<Reply> {
        if self.0.is_empty() {
            None
        } else {
            Some((
                400,
                Some(json!({"message": "Invalid Form Body", "code": 50035, "errors": self.0})),
            ))
        }
    }
}

fn p(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn pi(base: &[String], more: &[&str]) -> Vec<String> {
    let mut v = base.to_vec();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

fn text_len(v: Option<&Value>) -> usize {
    v.and_then(Value::as_str).map_or(0, |s| s.chars().count())
}

/// Validates `content`, `embeds`, `components`, `nonce` of a message create/edit body.
fn validate_message_fields(body: &Value, errs: &mut FormErrors) {
    errs.max_len(&p(&["content"]), body.get("content"), 2000);
    match body.get("nonce") {
        Some(Value::String(s)) if s.chars().count() > 25 => errs.add(
            &p(&["nonce"]),
            "BASE_TYPE_MAX_LENGTH",
            "Must be 25 or fewer in length.",
        ),
        Some(Value::String(_)) | Some(Value::Number(_)) | Some(Value::Null) | None => {}
        Some(_) => errs.add(
            &p(&["nonce"]),
            "NONCE_TYPE_INVALID",
            "Nonce must be an integer or a string.",
        ),
    }
    if let Some(embeds) = body.get("embeds").filter(|v| !v.is_null()) {
        match embeds.as_array() {
            None => errs.add(
                &p(&["embeds"]),
                "BASE_TYPE_ARRAY",
                "Must be an array (list).",
            ),
            Some(list) => {
                errs.max_items(&p(&["embeds"]), Some(embeds), 10);
                let mut total = 0;
                for (i, e) in list.iter().enumerate() {
                    let at = p(&["embeds", &i.to_string()]);
                    errs.max_len(&pi(&at, &["title"]), e.get("title"), 256);
                    errs.max_len(&pi(&at, &["description"]), e.get("description"), 4096);
                    errs.max_len(
                        &pi(&at, &["footer", "text"]),
                        e.pointer("/footer/text"),
                        2048,
                    );
                    errs.max_len(
                        &pi(&at, &["author", "name"]),
                        e.pointer("/author/name"),
                        256,
                    );
                    errs.max_items(&pi(&at, &["fields"]), e.get("fields"), 25);
                    total += text_len(e.get("title"))
                        + text_len(e.get("description"))
                        + text_len(e.pointer("/footer/text"))
                        + text_len(e.pointer("/author/name"));
                    for (j, f) in e
                        .get("fields")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let fat = pi(&at, &["fields", &j.to_string()]);
                        for (key, max) in [("name", 256), ("value", 1024)] {
                            match f.get(key).and_then(Value::as_str) {
                                None => errs.required(&pi(&fat, &[key])),
                                Some(_) => errs.max_len(&pi(&fat, &[key]), f.get(key), max),
                            }
                        }
                        total += text_len(f.get("name")) + text_len(f.get("value"));
                    }
                }
                if total > 6000 {
                    errs.add(
                        &p(&["embeds"]),
                        "MAX_EMBED_SIZE_EXCEEDED",
                        "Embed size exceeds maximum size of 6000",
                    );
                }
            }
        }
    }
    let v2 = body.get("flags").and_then(Value::as_u64).unwrap_or(0) & FLAG_IS_COMPONENTS_V2 != 0;
    if let Some(components) = body.get("components").filter(|v| !v.is_null()) {
        validate_components(components, v2, errs);
    }
}

fn validate_components(components: &Value, v2: bool, errs: &mut FormErrors) {
    let Some(rows) = components.as_array() else {
        errs.add(
            &p(&["components"]),
            "BASE_TYPE_ARRAY",
            "Must be an array (list).",
        );
        return;
    };
    if v2 {
        errs.max_items(&p(&["components"]), Some(components), 40);
        return;
    }
    errs.max_items(&p(&["components"]), Some(components), 5);
    let mut custom_ids: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let at = p(&["components", &i.to_string()]);
        if row.get("type").and_then(Value::as_u64) != Some(1) {
            errs.add(
                &pi(&at, &["type"]),
                "UNION_TYPE_CHOICES",
                "Value of field \"type\" must be one of (1,).",
            );
            continue;
        }
        let items = row
            .get("components")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            errs.add(
                &pi(&at, &["components"]),
                "BASE_TYPE_MIN_LENGTH",
                "Must be 1 or more in length.",
            );
        }
        let selects = items
            .iter()
            .filter(|c| matches!(c.get("type").and_then(Value::as_u64), Some(3 | 5..=8)))
            .count();
        if items.len() > 5 || (selects > 0 && items.len() > 1) {
            errs.add(
                &pi(&at, &["components"]),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            );
        }
        for (j, c) in items.iter().enumerate() {
            let cat = pi(&at, &["components", &j.to_string()]);
            let kind = c.get("type").and_then(Value::as_u64).unwrap_or(0);
            errs.max_len(&pi(&cat, &["custom_id"]), c.get("custom_id"), 100);
            if let Some(id) = c.get("custom_id").and_then(Value::as_str) {
                if custom_ids.iter().any(|x| x == id) {
                    errs.add(
                        &pi(&cat, &["custom_id"]),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    );
                }
                custom_ids.push(id.to_string());
            }
            match kind {
                2 => {
                    errs.max_len(&pi(&cat, &["label"]), c.get("label"), 80);
                    let style = c.get("style").and_then(Value::as_u64).unwrap_or(0);
                    match style {
                        1..=4 if c.get("custom_id").and_then(Value::as_str).is_none() => {
                            errs.required(&pi(&cat, &["custom_id"]))
                        }
                        5 if c.get("url").and_then(Value::as_str).is_none() => {
                            errs.required(&pi(&cat, &["url"]))
                        }
                        1..=6 => {}
                        _ => errs.add(
                            &pi(&cat, &["style"]),
                            "BASE_TYPE_CHOICES",
                            "Value must be one of {1, 2, 3, 4, 5, 6}.",
                        ),
                    }
                }
                3 => {
                    if c.get("custom_id").and_then(Value::as_str).is_none() {
                        errs.required(&pi(&cat, &["custom_id"]));
                    }
                    errs.max_items(&pi(&cat, &["options"]), c.get("options"), 25);
                    errs.max_len(&pi(&cat, &["placeholder"]), c.get("placeholder"), 150);
                }
                5..=8 => {
                    if c.get("custom_id").and_then(Value::as_str).is_none() {
                        errs.required(&pi(&cat, &["custom_id"]));
                    }
                }
                _ => errs.add(
                    &pi(&cat, &["type"]),
                    "UNION_TYPE_CHOICES",
                    "Value of field \"type\" must be one of (2, 3, 5, 6, 7, 8).",
                ),
            }
        }
    }
}

/// Discord fills in sequential numeric `id`s for components that have none.
fn assign_component_ids(components: &mut Value) {
    fn collect(v: &Value, used: &mut Vec<u64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| collect(x, used)),
            Value::Object(o) => {
                if o.contains_key("type") {
                    if let Some(id) = o.get("id").and_then(Value::as_u64).filter(|&i| i > 0) {
                        used.push(id);
                    }
                }
                for key in ["components", "component", "accessory"] {
                    if let Some(x) = o.get(key) {
                        collect(x, used);
                    }
                }
            }
            _ => {}
        }
    }
    fn assign(v: &mut Value, used: &mut Vec<u64>, next: &mut u64) {
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| assign(x, used, next)),
            Value::Object(o) => {
                if o.contains_key("type") && o.get("id").and_then(Value::as_u64).unwrap_or(0) == 0 {
                    while used.contains(next) {
                        *next += 1;
                    }
                    o.insert("id".into(), json!(*next));
                    used.push(*next);
                }
                for key in ["components", "component", "accessory"] {
                    if let Some(x) = o.get_mut(key) {
                        assign(x, used, next);
                    }
                }
            }
            _ => {}
        }
    }
    let mut used = Vec::new();
    collect(components, &mut used);
    let mut next = 1;
    assign(components, &mut used, &mut next);
}

fn normalize_embeds(embeds: &Value) -> Value {
    let mut out = Vec::new();
    for e in embeds.as_array().into_iter().flatten() {
        let mut e = e.clone();
        if let Some(o) = e.as_object_mut() {
            o.retain(|_, v| !v.is_null());
            // "you can set every field except type (it will be rich regardless)".
            o.insert("type".into(), json!("rich"));
            if let Some(fields) = o.get_mut("fields").and_then(Value::as_array_mut) {
                for f in fields {
                    if let Some(fo) = f.as_object_mut() {
                        fo.entry("inline").or_insert(json!(false));
                    }
                }
            }
        }
        out.push(e);
    }
    Value::Array(out)
}

fn is_empty_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// State helpers
// ---------------------------------------------------------------------------

impl DState {
    fn channel_json(&self, ch: &ChanRec) -> Value {
        let mut v = json!({
            "id": ch.id,
            "type": ch.kind,
            "guild_id": GUILD_ID,
            "name": ch.name,
            "flags": 0,
            "last_message_id": ch.last_message_id,
            "rate_limit_per_user": ch.rate_limit_per_user,
            "parent_id": ch.parent_id,
        });
        match &ch.thread {
            Some(t) => {
                merge(
                    &mut v,
                    &json!({
                        "owner_id": ch.owner_id,
                        "bitrate": 64000,
                        "user_limit": 0,
                        "rtc_region": null,
                        "message_count": ch.message_count,
                        "member_count": 1,
                        "total_message_sent": ch.message_count,
                        "thread_metadata": {
                            "archived": false,
                            "auto_archive_duration": t.auto_archive_duration,
                            "archive_timestamp": t.archive_timestamp,
                            "locked": false,
                            "create_timestamp": t.create_timestamp
                        }
                    }),
                );
            }
            None => {
                merge(
                    &mut v,
                    &json!({
                        "position": 0,
                        "permission_overwrites": [],
                        "nsfw": false,
                        "topic": null,
                        "default_auto_archive_duration": null,
                        "icon_emoji": null,
                        "theme_color": null
                    }),
                );
            }
        }
        v
    }

    /// The partial channel object inside an interaction.
    fn interaction_channel_json(&self, channel: &str) -> Value {
        let mut v = match self.channels.get(channel) {
            Some(ch) => self.channel_json(ch),
            None => json!({
                "id": channel, "type": 0, "guild_id": GUILD_ID, "name": "unknown",
                "flags": 0, "last_message_id": null, "rate_limit_per_user": 0,
                "parent_id": null, "position": 0, "nsfw": false, "topic": null
            }),
        };
        if let Some(o) = v.as_object_mut() {
            o.remove("permission_overwrites");
            o.insert("permissions".into(), json!(MEMBER_PERMISSIONS.to_string()));
        }
        v
    }

    fn find_msg(&self, channel: &str, id: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.id == id && m.channel_id == channel)
    }

    fn find_msg_any(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.id == id)
    }

    fn msg_json(&self, m: &MsgRec, with_nonce: bool, depth: u8) -> Value {
        let mut v = json!({
            "type": m.kind,
            "content": m.content,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": m.embeds,
            "timestamp": m.timestamp,
            "edited_timestamp": m.edited_timestamp,
            "flags": m.flags,
            "components": m.components,
            "id": m.id,
            "channel_id": m.channel_id,
            "author": m.author,
            "pinned": false,
            "mention_everyone": false,
            "tts": false
        });
        if with_nonce {
            if let Some(n) = &m.nonce {
                v["nonce"] = n.clone();
            }
        }
        if let Some(w) = &m.webhook_id {
            v["webhook_id"] = json!(w);
            v["application_id"] = json!(APP_ID);
        }
        if let Some(meta) = &m.interaction_metadata {
            v["interaction_metadata"] = meta.clone();
        }
        if let Some(legacy) = &m.legacy_interaction {
            v["interaction"] = legacy.clone();
        }
        if let Some(pos) = m.position {
            v["position"] = json!(pos);
        }
        if let Some(r) = &m.reference {
            v["message_reference"] = r.clone();
            let target = r.get("message_id").and_then(Value::as_str).unwrap_or("");
            v["referenced_message"] = match self.find_msg_any(target) {
                Some(i) if depth == 0 => self.msg_json(&self.messages[i], false, depth + 1),
                _ => Value::Null,
            };
        }
        if let Some(tid) = self.thread_for_message.get(&m.id) {
            if let Some(ch) = self.channels.get(tid) {
                v["thread"] = self.channel_json(ch);
            }
        }
        v
    }

    /// Blanks content/embeds/components/attachments as Discord does for other users'
    /// messages when the MESSAGE_CONTENT intent is missing.
    fn content_gated(&self, mut v: Value, author_id: &str, intents: u64) -> Value {
        if intents & INTENT_MESSAGE_CONTENT == 0 && author_id != BOT_USER_ID {
            v["content"] = json!("");
            v["embeds"] = json!([]);
            v["components"] = json!([]);
            v["attachments"] = json!([]);
        }
        v
    }

    fn current_intents(&self) -> Option<u64> {
        let sid = self.current_session.as_ref()?;
        let s = self.sessions.get(sid)?;
        s.valid.then_some(s.intents)
    }

    /// Appends a dispatch to the current session (sent at once when its connection is
    /// open, replayed on resume otherwise). None when there is no valid session.
    fn dispatch(&mut self, t: &str, d: Value) -> Option<u64> {
        let sid = self.current_session.clone()?;
        let s = self.sessions.get_mut(&sid)?;
        if !s.valid {
            return None;
        }
        s.seq += 1;
        let seq = s.seq;
        let frame = json!({"t": t, "s": seq, "op": 0, "d": d}).to_string();
        s.events.push((seq, frame.clone()));
        let conn = s.conn;
        if t == "READY" || t == "RESUMED" {
            self.readies += 1;
        }
        if let Some(cid) = conn {
            if let Some(c) = self.conns.iter().find(|c| c.id == cid) {
                let _ = c.tx.send(GwCmd::Text(frame));
            }
        }
        Some(seq)
    }

    fn auto_dispatch_message(&mut self, t: &str, idx: usize) {
        if !self.auto_events {
            return;
        }
        let Some(intents) = self.current_intents() else {
            return;
        };
        if intents & INTENT_GUILD_MESSAGES == 0 {
            return;
        }
        let m = self.messages[idx].clone();
        if m.ephemeral {
            return;
        }
        let mut v = self.msg_json(&m, t == "MESSAGE_CREATE", 0);
        v = self.content_gated(v, &m.author_id, intents);
        v["guild_id"] = json!(GUILD_ID);
        if m.webhook_id.is_none() {
            v["member"] = partial_member(&m.author_roles);
        }
        self.dispatch(t, v);
    }

    fn rate_headers(&mut self, template: &str, major: &str) -> (u32, u32, f64, f64, String, bool) {
        let bucket = hex::encode(&Sha256::digest(template.as_bytes())[..16]);
        let key = format!("{bucket}:{major}");
        let window = self.rate_window;
        let limit = self.rate_limit;
        let b = self.buckets.entry(key).or_insert(Bucket {
            start: Instant::now(),
            count: 0,
        });
        if b.start.elapsed() >= window {
            b.start = Instant::now();
            b.count = 0;
        }
        b.count += 1;
        let remaining = limit.saturating_sub(b.count);
        let reset_after = window.saturating_sub(b.start.elapsed()).as_secs_f64();
        let reset = epoch_secs_f64() + reset_after;
        (
            limit,
            remaining,
            reset,
            reset_after,
            bucket,
            b.count > limit,
        )
    }
}

/// Whether `route` is for this request: its full path, or its path below `/api/v10`.
fn route_hits(route: &Route, method: &str, path: &str, rel: Option<&str>) -> bool {
    route.matches(method, path) || rel.is_some_and(|r| route.matches(method, r))
}

/// The path below `/api/v10` (or `/api/v9`, `/api`), e.g. `/channels/1/messages`.
fn api_relative(path: &str) -> Option<String> {
    for base in ["/api/v10", "/api/v9"] {
        if let Some(rest) = path.strip_prefix(base) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some(rest.to_string());
            }
        }
    }
    None
}

/// (bucket template, major parameter) of a route, Discord style.
fn route_template(method: &str, rel: &str) -> (String, String) {
    const LITERALS: &[&str] = &[
        "gateway",
        "bot",
        "users",
        "@me",
        "applications",
        "guilds",
        "commands",
        "channels",
        "messages",
        "threads",
        "interactions",
        "callback",
        "webhooks",
        "@original",
        "oauth2",
    ];
    let segs: Vec<&str> = rel.trim_start_matches('/').split('/').collect();
    let mut major = String::new();
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let prev = if i > 0 { segs[i - 1] } else { "" };
        if LITERALS.contains(s) {
            out.push(s.to_string());
        } else if matches!(prev, "channels" | "guilds") && major.is_empty() {
            // The bucket hash excludes top-level resources; the counter key has them.
            major = s.to_string();
            out.push("{major}".into());
        } else if matches!(prev, "webhooks" | "interactions") {
            major = format!("{s}/{}", segs.get(i + 1).unwrap_or(&""));
            out.push("{id}".into());
        } else {
            out.push("{id}".into());
        }
    }
    (format!("{method} /{}", out.join("/")), major)
}

// ---------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------

fn json_response(status: u16, body: Option<&Value>) -> Response {
    let mut resp = match body {
        Some(b) => Response::new(Body::from(b.to_string())),
        None => Response::new(Body::empty()),
    };
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn set_rate_headers(
    h: &mut HeaderMap,
    (limit, remaining, reset, reset_after, bucket, _): &(u32, u32, f64, f64, String, bool),
) {
    let pairs = [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", format!("{reset:.3}")),
        ("x-ratelimit-reset-after", format!("{reset_after:.3}")),
        ("x-ratelimit-bucket", bucket.clone()),
    ];
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

fn too_many_requests(retry_after: f64, global: bool) -> Response {
    let mut resp = json_response(
        429,
        Some(&json!({
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": global
        })),
    );
    let h = resp.headers_mut();
    h.insert(
        "retry-after",
        HeaderValue::from(retry_after.ceil().max(0.0) as u64),
    );
    h.insert("x-ratelimit-scope", HeaderValue::from_static("user"));
    if global {
        h.insert("x-ratelimit-global", HeaderValue::from_static("true"));
    }
    resp
}

fn default_fault_body(code: u16) -> Value {
    match code {
        400 => json!({"message": "400: Bad Request", "code": 0}),
        401 => json!({"message": "401: Unauthorized", "code": 0}),
        403 => json!({"message": "Missing Access", "code": 50001}),
        404 => json!({"message": "404: Not Found", "code": 0}),
        500 => json!({"message": "500: Internal Server Error", "code": 0}),
        502 => json!({"message": "502: Bad Gateway", "code": 0}),
        503 => json!({"message": "503: Service Unavailable", "code": 0}),
        504 => json!({"message": "504: Gateway Timeout", "code": 0}),
        _ => json!({"message": format!("{code}: Error"), "code": 0}),
    }
}

fn bot_auth_ok(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bot "))
        .is_some_and(|t| t.trim() == BOT_TOKEN)
}

fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn rest(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let Call {
        method,
        path,
        query,
        headers,
        body: bytes,
        ..
    } = Call::read(req, 16 << 20).await;
    let method = method.as_str().to_ascii_uppercase();
    // Logged without a bare trailing `?`, as Discord's routes are written.
    let path_and_query = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut upload = Vec::new();
    let body: Result<Value, ()> = if bytes.is_empty() {
        Ok(Value::Null)
    } else if content_type.starts_with("multipart/form-data") {
        // `payload_json` is the message; `files[n]` the files (Discord's upload form).
        multipart_parts(&content_type, &bytes)
            .ok_or(())
            .and_then(|parts| {
                let mut payload = Value::Null;
                for (name, filename, ct, data) in parts {
                    if name == "payload_json" {
                        payload = serde_json::from_slice(&data).map_err(|_| ())?;
                    } else if let Some(n) = name
                        .strip_prefix("files[")
                        .and_then(|r| r.strip_suffix(']'))
                        .and_then(|n| n.parse().ok())
                    {
                        upload.push(FilePart {
                            n,
                            filename: filename.unwrap_or_default(),
                            content_type: ct,
                            bytes: data,
                        });
                    }
                }
                Ok(payload)
            })
    } else {
        serde_json::from_slice(&bytes).map_err(|_| ())
    };
    let rel = api_relative(&path);
    shared.requests.record((
        method.clone(),
        path_and_query,
        body.clone().unwrap_or(Value::Null),
    ));
    let hits = |r: &Route| route_hits(r, &method, &path, rel.as_deref());
    let fault = shared.faults.take(hits);
    // A request that draws a fault may lose its answer too (the fault decides first).
    let lose = shared.lost.take_one(hits);
    let rl = {
        let (template, major) = route_template(&method, rel.as_deref().unwrap_or(&path));
        lock(&shared).rate_headers(&template, &major)
    };
    if let Some(Refusal {
        code,
        retry_after,
        body,
    }) = Fault::play(fault).await
    {
        let mut resp = if code == 429 && body.is_empty() {
            too_many_requests(retry_after.unwrap_or(1) as f64, false)
        } else {
            let mut r = json_response(code, None);
            *r.body_mut() = Body::from(if body.is_empty() {
                default_fault_body(code).to_string()
            } else {
                body
            });
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            r
        };
        let mut rl = rl.clone();
        if code == 429 {
            rl.1 = 0;
            rl.3 = retry_after.unwrap_or(1) as f64;
            rl.2 = epoch_secs_f64() + rl.3;
        }
        set_rate_headers(resp.headers_mut(), &rl);
        return resp;
    }
    let (enforce, require_ua) = {
        let st = lock(&shared);
        (st.enforce_rate_limit, st.require_user_agent)
    };
    if enforce && rl.5 {
        lock(&shared).rate_limited += 1;
        let mut resp = too_many_requests(rl.3, false);
        set_rate_headers(resp.headers_mut(), &rl);
        return resp;
    }
    if let Some((status, out)) = header_problem(&headers, !bytes.is_empty(), require_ua) {
        let mut resp = json_response(status, Some(&out));
        set_rate_headers(resp.headers_mut(), &rl);
        return resp;
    }
    let (status, out) = {
        let mut st = lock(&shared);
        st.upload = upload;
        match (rel, body) {
            (None, _) => err(404, "404: Not Found", 0),
            (Some(_), Err(())) => err(400, "The request body contains invalid JSON.", 50109),
            (Some(rel), Ok(body)) => handle_rest(
                &mut st,
                shared.server.port(),
                &method,
                &rel,
                &query,
                &headers,
                &body,
            ),
        }
    };
    let mut resp = json_response(status, out.as_ref());
    set_rate_headers(resp.headers_mut(), &rl);
    if lose {
        // Discord acted; the client never hears back (a crash or cut right after).
        return super::scaffold::lose_answer().await;
    }
    resp
}

/// Discord's documented header requirements: a body needs `Content-Type`
/// `application/json` (the fake parses JSON only), and, when required, a
/// `User-Agent: DiscordBot ($url, $version)`.
fn header_problem(headers: &HeaderMap, has_body: bool, require_ua: bool) -> Option<(u16, Value)> {
    let get = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    if require_ua && !get("user-agent").starts_with("discordbot") {
        return Some((
            400,
            json!({
                "message": "fake Discord: a User-Agent like \"DiscordBot ($url, $versionNumber)\" is required (Discord may block requests without one)",
                "code": 0
            }),
        ));
    }
    if has_body {
        let ct = get("content-type");
        if ct.starts_with("application/x-www-form-urlencoded") {
            return Some((
                400,
                json!({"message": "fake Discord: only application/json and multipart/form-data bodies are supported", "code": 0}),
            ));
        }
        if !ct.starts_with("application/json") && !ct.starts_with("multipart/form-data") {
            return Some((
                400,
                json!({
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {"_errors": [{
                        "code": "CONTENT_TYPE_INVALID",
                        "message": "Expected \"Content-Type\" header to be one of {'application/json', 'application/x-www-form-urlencoded', 'multipart/form-data'}."
                    }]}
                }),
            ));
        }
    }
    None
}

fn handle_rest(
    st: &mut DState,
    port: u16,
    method: &str,
    rel: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Reply {
    let segs: Vec<&str> = rel.trim_start_matches('/').split('/').collect();
    // Routes authenticated by the interaction token, and the unauthenticated gateway.
    match (method, segs.as_slice()) {
        ("GET", ["gateway"]) => {
            return (
                200,
                Some(json!({"url": format!("ws://127.0.0.1:{port}/gateway")})),
            );
        }
        ("POST", ["interactions", id, token, "callback"]) => {
            return interaction_callback(st, id, token, body, query);
        }
        (_, ["webhooks", app, token]) => {
            return match method {
                "POST" => create_followup(st, app, token, body),
                _ => err(405, "405: Method Not Allowed", 0),
            };
        }
        (_, ["webhooks", app, token, "messages", msg]) => {
            return webhook_message(st, method, app, token, msg, body);
        }
        _ => {}
    }
    if !bot_auth_ok(headers) {
        return unauthorized();
    }
    match (method, segs.as_slice()) {
        ("GET", ["gateway", "bot"]) => (
            200,
            Some(json!({
                "url": format!("ws://127.0.0.1:{port}/gateway"),
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000usize.saturating_sub(st.identifies),
                    "reset_after": 86_400_000,
                    "max_concurrency": 1
                }
            })),
        ),
        ("GET", ["users", "@me"]) => (200, Some(current_user())),
        ("GET", ["applications", "@me"]) | ("GET", ["oauth2", "applications", "@me"]) => {
            (200, Some(application_json()))
        }
        (_, ["applications", app, "guilds", guild, "commands"]) => {
            commands_route(st, method, app, Some(guild), body)
        }
        (_, ["applications", app, "commands"]) => commands_route(st, method, app, None, body),
        ("GET", ["channels", ch]) => match channel_check(st, ch) {
            Err(e) => e,
            Ok(()) => (200, Some(st.channel_json(&st.channels[*ch]))),
        },
        ("POST", ["channels", ch, "messages"]) => create_message(st, ch, body),
        ("GET", ["channels", ch, "messages"]) => list_messages(st, ch, query),
        ("GET", ["channels", ch, "messages", id]) => {
            if let Err(e) = channel_check(st, ch) {
                return e;
            }
            match st.find_msg(ch, id).filter(|&i| !st.messages[i].ephemeral) {
                Some(i) => (200, Some(st.msg_json(&st.messages[i], false, 0))),
                None => unknown_message(),
            }
        }
        ("PATCH", ["channels", ch, "messages", id]) => edit_channel_message(st, ch, id, body),
        ("DELETE", ["channels", ch, "messages", id]) => {
            if let Err(e) = channel_check(st, ch) {
                return e;
            }
            match st.find_msg(ch, id) {
                Some(i) => {
                    st.messages.remove(i);
                    (204, None)
                }
                None => unknown_message(),
            }
        }
        ("POST", ["channels", ch, "messages", id, "threads"]) => start_thread(st, ch, id, body),
        (_, ["gateway", ..])
        | (_, ["users", "@me"])
        | (_, ["applications", "@me"])
        | (_, ["channels", _])
        | (_, ["channels", _, "messages"])
        | (_, ["channels", _, "messages", _])
        | (_, ["channels", _, "messages", _, "threads"]) => err(405, "405: Method Not Allowed", 0),
        _ => err(404, "404: Not Found", 0),
    }
}

fn application_json() -> Value {
    json!({
        "id": APP_ID,
        "name": BOT_USERNAME,
        "icon": null,
        "description": "",
        "summary": "",
        "type": null,
        "hook": true,
        "is_monetized": false,
        "is_verified": false,
        "is_discoverable": false,
        "bot_public": false,
        "bot_require_code_grant": false,
        "verify_key": public_key_hex(),
        "flags": APP_FLAGS,
        "owner": user("1100000000000000003", "owner"),
        "team": null,
        "rpc_origins": [],
        "redirect_uris": [],
        "tags": [],
        "interactions_endpoint_url": null,
        "role_connections_verification_url": null,
        "event_webhooks_url": null,
        "event_webhooks_status": 1,
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
        "integration_types_config": {
            "0": {"oauth2_install_params": {
                "scopes": ["applications.commands", "bot"],
                "permissions": APP_PERMISSIONS.to_string()
            }}
        },
        "bot": bot_user()
    })
}

fn channel_check(st: &DState, ch: &str) -> Result<(), Reply> {
    match st.channels.get(ch) {
        None => Err(unknown_channel()),
        Some(c) if c.missing_access => Err(missing_access()),
        Some(c) => match c.parent_id.as_ref().and_then(|p| st.channels.get(p)) {
            Some(parent) if parent.missing_access => Err(missing_access()),
            _ => Ok(()),
        },
    }
}

fn create_message(st: &mut DState, ch: &str, body: &Value) -> Reply {
    if let Err(e) = channel_check(st, ch) {
        return e;
    }
    if !body.is_object() {
        return empty_message();
    }
    let mut errs = FormErrors::default();
    validate_message_fields(body, &mut errs);
    let flags = body.get("flags").and_then(Value::as_u64).unwrap_or(0)
        & (FLAG_SUPPRESS_EMBEDS
            | FLAG_SUPPRESS_NOTIFICATIONS
            | FLAG_IS_VOICE_MESSAGE
            | FLAG_IS_COMPONENTS_V2);
    if flags & FLAG_IS_COMPONENTS_V2 != 0 {
        for key in ["content", "embeds", "poll", "sticker_ids"] {
            if !is_empty_value(body.get(key)) {
                errs.add(
                    &p(&[key]),
                    "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                    "The 'content', 'embeds', 'sticker_ids' and 'poll' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                );
            }
        }
    }
    let mut reference = None;
    if let Some(r) = body.get("message_reference").filter(|r| !r.is_null()) {
        let target = r
            .get("message_id")
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let target_ch = r
            .get("channel_id")
            .and_then(Value::as_str)
            .unwrap_or(ch)
            .to_string();
        let fail = r
            .get("fail_if_not_exists")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        match st.find_msg(&target_ch, &target) {
            Some(i) if !st.messages[i].ephemeral => {
                reference = Some(json!({
                    "type": 0,
                    "channel_id": target_ch,
                    "message_id": target,
                    "guild_id": GUILD_ID
                }));
            }
            _ if fail => errs.add(
                &p(&["message_reference"]),
                "REPLIES_UNKNOWN_MESSAGE",
                "Unknown message",
            ),
            _ => {}
        }
    }
    if let Some(e) = errs.into_reply() {
        return e;
    }
    let has_payload = ["content", "embeds", "components", "sticker_ids", "poll"]
        .iter()
        .any(|k| !is_empty_value(body.get(*k)));
    if !has_payload {
        return empty_message();
    }
    let nonce = body.get("nonce").filter(|n| !n.is_null()).cloned();
    let enforce = body
        .get("enforce_nonce")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let (Some(n), true) = (&nonce, enforce) {
        let key = (
            ch.to_string(),
            BOT_USER_ID.to_string(),
            match n {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        );
        let window = st.nonce_window;
        if let Some((mid, at)) = st.nonces.get(&key) {
            if at.elapsed() <= window {
                if let Some(i) = st.find_msg(ch, mid) {
                    return (200, Some(st.msg_json(&st.messages[i], true, 0)));
                }
            }
        }
    }
    let mut components = body.get("components").cloned().unwrap_or(json!([]));
    if components.is_null() {
        components = json!([]);
    }
    assign_component_ids(&mut components);
    let id = snowflake();
    let kind = if reference.is_some() { 19 } else { 0 };
    let rec = MsgRec {
        id: id.clone(),
        channel_id: ch.to_string(),
        author: bot_user(),
        author_id: BOT_USER_ID.to_string(),
        author_roles: Vec::new(),
        content: body
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        embeds: normalize_embeds(body.get("embeds").unwrap_or(&Value::Null)),
        components,
        nonce: nonce.clone(),
        flags,
        kind,
        timestamp: iso_now(),
        edited_timestamp: None,
        reference,
        webhook_id: None,
        interaction_metadata: None,
        legacy_interaction: None,
        interaction_id: None,
        ephemeral: false,
        position: None,
    };
    let idx = push_message(st, rec);
    if let Some(n) = nonce {
        let key = (
            ch.to_string(),
            BOT_USER_ID.to_string(),
            match n {
                Value::String(s) => s,
                other => other.to_string(),
            },
        );
        st.nonces.insert(key, (id, Instant::now()));
    }
    st.auto_dispatch_message("MESSAGE_CREATE", idx);
    (200, Some(st.msg_json(&st.messages[idx], true, 0)))
}

/// Stores a message, updating its channel's counters (threads get `position`).
fn push_message(st: &mut DState, mut rec: MsgRec) -> usize {
    if !rec.ephemeral {
        if let Some(ch) = st.channels.get_mut(&rec.channel_id) {
            if ch.thread.is_some() {
                rec.position = Some(ch.message_count);
            }
            ch.message_count += 1;
            ch.last_message_id = Some(rec.id.clone());
        }
    }
    st.messages.push(rec);
    st.messages.len() - 1
}

fn list_messages(st: &DState, ch: &str, query: &str) -> Reply {
    if let Err(e) = channel_check(st, ch) {
        return e;
    }
    let limit = match query_param(query, "limit") {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                let mut errs = FormErrors::default();
                errs.add(
                    &p(&["limit"]),
                    "NUMBER_TYPE_MAX",
                    "int value should be less than or equal to 100.",
                );
                return errs.into_reply().expect("an error");
            }
        },
    };
    let mut all: Vec<&MsgRec> = st
        .messages
        .iter()
        .filter(|m| m.channel_id == ch && !m.ephemeral)
        .collect();
    all.sort_by_key(|m| id_num(&m.id));
    let before = query_param(query, "before").map(|s| id_num(&s));
    let after = query_param(query, "after").map(|s| id_num(&s));
    let around = query_param(query, "around").map(|s| id_num(&s));
    let picked: Vec<&MsgRec> = if let Some(a) = after {
        all.into_iter()
            .filter(|m| id_num(&m.id) > a)
            .take(limit)
            .collect()
    } else if let Some(b) = before {
        let older: Vec<&MsgRec> = all.into_iter().filter(|m| id_num(&m.id) < b).collect();
        older[older.len().saturating_sub(limit)..].to_vec()
    } else if let Some(c) = around {
        let pos = all
            .iter()
            .position(|m| id_num(&m.id) >= c)
            .unwrap_or(all.len());
        let start = pos.saturating_sub(limit / 2);
        all[start..(start + limit).min(all.len())].to_vec()
    } else {
        all[all.len().saturating_sub(limit)..].to_vec()
    };
    let out: Vec<Value> = picked
        .iter()
        .rev()
        .map(|m| st.msg_json(m, false, 0))
        .collect();
    (200, Some(Value::Array(out)))
}

/// Applies an edit body (`content`, `embeds`, `components`, `flags`) to a message.
/// The message's attachments from its `attachments` array and the request's `files[n]`
/// parts: each entry's `id` names a part; a part no entry names, or an entry without its
/// part, is refused as Discord does (50035). `None`: the edit leaves them as they were.
fn take_attachments(st: &mut DState, body: &Value) -> Result<Option<Vec<Attachment>>, Reply> {
    let parts = std::mem::take(&mut st.upload);
    let Some(entries) = body.get("attachments").and_then(Value::as_array) else {
        if parts.is_empty() {
            return Ok(None);
        }
        return Err(err(
            400,
            "Invalid Form Body: files without attachments",
            50035,
        ));
    };
    let mut out = Vec::new();
    for e in entries {
        let Some(n) = e["id"].as_u64() else {
            return Err(err(400, "Invalid Form Body: attachments[].id", 50035));
        };
        let Some(part) = parts.iter().find(|p| p.n == n) else {
            return Err(err(
                400,
                "Invalid Form Body: no files[n] for an attachment",
                50035,
            ));
        };
        if e["description"]
            .as_str()
            .is_some_and(|d| d.chars().count() > 1024)
        {
            return Err(err(
                400,
                "Invalid Form Body: description longer than 1024",
                50035,
            ));
        }
        out.push(Attachment {
            id: format!(
                "{}",
                1_100_000_000_000_000_000u64 + next_random() % 1_000_000_000
            ),
            filename: e["filename"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| part.filename.clone()),
            description: e["description"].as_str().map(str::to_string),
            content_type: part.content_type.clone(),
            bytes: part.bytes.clone(),
        });
    }
    if parts.len() > out.len() {
        return Err(err(
            400,
            "Invalid Form Body: a file no attachment names",
            50035,
        ));
    }
    Ok(Some(out))
}

/// One part of a form: (name, filename, content type, bytes).
type FormPart = (String, Option<String>, String, Vec<u8>);

/// The parts of a `multipart/form-data` body.
fn multipart_parts(content_type: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, &delimiter, 0)? + delimiter.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        at += 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(&body[at..head_end]).ok()?;
        let next = find(body, &delimiter, head_end)?;
        let data = body[head_end + 4..next.checked_sub(2)?].to_vec();
        let (mut name, mut filename, mut ct) = (None, None, String::new());
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                for p in line.split(';').map(str::trim) {
                    if let Some(v) = p.strip_prefix("name=") {
                        name = Some(v.trim_matches('"').to_string());
                    } else if let Some(v) = p.strip_prefix("filename=") {
                        filename = Some(v.trim_matches('"').to_string());
                    }
                }
            } else if lower.starts_with("content-type:") {
                ct = line["content-type:".len()..].trim().to_string();
            }
        }
        parts.push((name?, filename, ct, data));
        at = next + delimiter.len();
    }
}

fn apply_edit(st: &mut DState, idx: usize, body: &Value) -> Result<(), Reply> {
    let mut errs = FormErrors::default();
    validate_message_fields(body, &mut errs);
    if let Some(e) = errs.into_reply() {
        return Err(e);
    }
    let m = &st.messages[idx];
    let content_after = match body.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => String::new(),
        _ => m.content.clone(),
    };
    let embeds_after = match body.get("embeds") {
        Some(Value::Null) => json!([]),
        Some(e) => normalize_embeds(e),
        None => m.embeds.clone(),
    };
    let mut components_after = match body.get("components") {
        Some(Value::Null) => json!([]),
        Some(c) => c.clone(),
        None => m.components.clone(),
    };
    if content_after.is_empty()
        && is_empty_value(Some(&embeds_after))
        && is_empty_value(Some(&components_after))
        && m.flags & FLAG_LOADING == 0
    {
        return Err(empty_message());
    }
    assign_component_ids(&mut components_after);
    let attachments = take_attachments(st, body)?;
    let m = &mut st.messages[idx];
    m.content = content_after;
    m.embeds = embeds_after;
    m.components = components_after;
    let id = m.id.clone();
    if let Some(a) = attachments {
        st.attachments.insert(id, a);
    }
    let m = &mut st.messages[idx];
    if let Some(f) = body.get("flags").and_then(Value::as_u64) {
        m.flags = (m.flags & !FLAG_SUPPRESS_EMBEDS) | (f & FLAG_SUPPRESS_EMBEDS);
    }
    m.flags &= !FLAG_LOADING;
    m.edited_timestamp = Some(iso_now());
    let id = m.id.clone();
    st.edits.push((id, body.clone()));
    Ok(())
}

fn edit_channel_message(st: &mut DState, ch: &str, id: &str, body: &Value) -> Reply {
    if let Err(e) = channel_check(st, ch) {
        return e;
    }
    let Some(idx) = st.find_msg(ch, id).filter(|&i| !st.messages[i].ephemeral) else {
        return unknown_message();
    };
    if st.messages[idx].author_id != BOT_USER_ID || st.messages[idx].webhook_id.is_some() {
        return err(403, "Cannot edit a message authored by another user", 50005);
    }
    if let Err(e) = apply_edit(st, idx, body) {
        return e;
    }
    st.auto_dispatch_message("MESSAGE_UPDATE", idx);
    (200, Some(st.msg_json(&st.messages[idx], false, 0)))
}

fn start_thread(st: &mut DState, ch: &str, id: &str, body: &Value) -> Reply {
    if let Err(e) = channel_check(st, ch) {
        return e;
    }
    if st.channels[ch].kind != 0 && st.channels[ch].kind != 5 {
        return err(400, "Cannot execute action on this channel type", 50024);
    }
    let Some(idx) = st.find_msg(ch, id).filter(|&i| !st.messages[i].ephemeral) else {
        return unknown_message();
    };
    let mut errs = FormErrors::default();
    match body.get("name").and_then(Value::as_str) {
        None => errs.required(&p(&["name"])),
        Some(n) if n.chars().count() > 100 => errs.add(
            &p(&["name"]),
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ),
        Some("") => errs.add(
            &p(&["name"]),
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ),
        Some(_) => {}
    }
    let duration = match body.get("auto_archive_duration") {
        None | Some(Value::Null) => 4320,
        Some(v) => match v.as_u64() {
            Some(d @ (60 | 1440 | 4320 | 10080)) => d,
            _ => {
                errs.add(
                    &p(&["auto_archive_duration"]),
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {60, 1440, 4320, 10080}.",
                );
                0
            }
        },
    };
    if let Some(e) = errs.into_reply() {
        return e;
    }
    if st.thread_for_message.contains_key(id) {
        return err(
            400,
            "A thread has already been created for this message",
            160004,
        );
    }
    let now = iso_now();
    let thread = ChanRec {
        id: id.to_string(),
        name: body["name"].as_str().unwrap_or("").to_string(),
        kind: if st.channels[ch].kind == 5 { 10 } else { 11 },
        parent_id: Some(ch.to_string()),
        owner_id: Some(BOT_USER_ID.to_string()),
        missing_access: false,
        thread: Some(ThreadRec {
            auto_archive_duration: duration,
            archive_timestamp: now.clone(),
            create_timestamp: now.clone(),
        }),
        message_count: 0,
        last_message_id: None,
        rate_limit_per_user: body
            .get("rate_limit_per_user")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };
    st.channels.insert(id.to_string(), thread);
    st.thread_for_message.insert(id.to_string(), id.to_string());
    let mut v = st.channel_json(&st.channels[id]);
    v["member"] = json!({
        "id": id,
        "user_id": BOT_USER_ID,
        "join_timestamp": now,
        "flags": 1,
        "muted": false,
        "mute_config": null
    });
    if st.auto_events {
        if let Some(intents) = st.current_intents() {
            if intents & INTENT_GUILDS != 0 {
                let mut ev = v.clone();
                ev["newly_created"] = json!(true);
                st.dispatch("THREAD_CREATE", ev);
            }
        }
    }
    st.auto_dispatch_message("MESSAGE_UPDATE", idx);
    (201, Some(v))
}

// ---------------------------------------------------------------------------
// Application commands
// ---------------------------------------------------------------------------

fn commands_route(
    st: &mut DState,
    method: &str,
    app: &str,
    guild: Option<&str>,
    body: &Value,
) -> Reply {
    if app != APP_ID {
        return missing_access();
    }
    if guild.is_some_and(|g| g != GUILD_ID) {
        return missing_access();
    }
    let key = guild.unwrap_or("").to_string();
    match method {
        "GET" => {
            let cmds = st.commands.get(&key).cloned().unwrap_or_default();
            let out: Vec<Value> = cmds.iter().map(|c| command_json(c, guild)).collect();
            (200, Some(Value::Array(out)))
        }
        "PUT" => bulk_overwrite(st, &key, guild, body),
        _ => err(405, "405: Method Not Allowed", 0),
    }
}

fn validate_options(options: &Value, at: &[String], errs: &mut FormErrors, depth: u8) {
    let Some(list) = options.as_array() else {
        return;
    };
    errs.max_items(at, Some(options), 25);
    let mut names: Vec<&str> = Vec::new();
    let mut seen_optional = false;
    for (i, o) in list.iter().enumerate() {
        let oat = pi(at, &[&i.to_string()]);
        let kind = o.get("type").and_then(Value::as_u64).unwrap_or(0);
        if !(1..=11).contains(&kind) {
            errs.add(
                &pi(&oat, &["type"]),
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.",
            );
        }
        validate_name(o.get("name"), &pi(&oat, &["name"]), errs);
        match o.get("description").and_then(Value::as_str) {
            None => errs.required(&pi(&oat, &["description"])),
            Some(d) if d.is_empty() || d.chars().count() > 100 => errs.add(
                &pi(&oat, &["description"]),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            ),
            _ => {}
        }
        if let Some(n) = o.get("name").and_then(Value::as_str) {
            if names.contains(&n) {
                errs.add(
                    &pi(&oat, &["name"]),
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                );
            }
            names.push(n);
        }
        let required = o.get("required").and_then(Value::as_bool).unwrap_or(false);
        if kind > 2 {
            if required && seen_optional {
                errs.add(
                    &oat,
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                );
            }
            if !required {
                seen_optional = true;
            }
        }
        if o.get("autocomplete").and_then(Value::as_bool) == Some(true)
            && o.get("choices").is_some_and(|c| !is_empty_value(Some(c)))
        {
            errs.add(
                &pi(&oat, &["autocomplete"]),
                "AUTOCOMPLETE_CHOICES_INVALID",
                "Autocomplete cannot be set to true when choices are set",
            );
        }
        errs.max_items(&pi(&oat, &["choices"]), o.get("choices"), 25);
        if let Some(sub) = o.get("options") {
            if depth < 2 {
                validate_options(sub, &pi(&oat, &["options"]), errs, depth + 1);
            }
        }
    }
}

fn validate_name(name: Option<&Value>, at: &[String], errs: &mut FormErrors) {
    match name.and_then(Value::as_str) {
        None => errs.required(at),
        Some(n) => {
            let ok = !n.is_empty()
                && n.chars().count() <= 32
                && n.chars()
                    .all(|c| c == '-' || c == '_' || c == '\'' || c.is_alphanumeric())
                && n.to_lowercase() == n;
            if !ok {
                errs.add(
                    at,
                    "APPLICATION_COMMAND_INVALID_NAME",
                    "Command name is invalid",
                );
            }
        }
    }
}

fn bulk_overwrite(st: &mut DState, key: &str, guild: Option<&str>, body: &Value) -> Reply {
    st.command_overwrites.push((key.to_string(), body.clone()));
    let Some(list) = body.as_array() else {
        let mut errs = FormErrors::default();
        errs.add(&[], "BASE_TYPE_ARRAY", "Must be an array (list).");
        return errs.into_reply().expect("an error");
    };
    let mut errs = FormErrors::default();
    let mut seen: Vec<(u64, String)> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = p(&[&i.to_string()]);
        let kind = c.get("type").and_then(Value::as_u64).unwrap_or(1);
        if kind == 1 {
            validate_name(c.get("name"), &pi(&at, &["name"]), &mut errs);
            match c.get("description").and_then(Value::as_str) {
                None => errs.required(&pi(&at, &["description"])),
                Some(d) if d.is_empty() || d.chars().count() > 100 => errs.add(
                    &pi(&at, &["description"]),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                ),
                _ => {}
            }
            if let Some(o) = c.get("options") {
                validate_options(o, &pi(&at, &["options"]), &mut errs, 0);
            }
        } else if c.get("name").and_then(Value::as_str).is_none() {
            errs.required(&pi(&at, &["name"]));
        }
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if seen.contains(&(kind, name.clone())) {
            errs.add(
                &[],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                &format!("Application command names must be unique (duplicate: {name})"),
            );
        }
        seen.push((kind, name));
    }
    if list.len() > 100 {
        errs.max_items(&[], Some(body), 100);
    }
    if let Some(e) = errs.into_reply() {
        return e;
    }
    let old = st.commands.remove(key).unwrap_or_default();
    let mut new = Vec::new();
    for c in list {
        let kind = c.get("type").and_then(Value::as_u64).unwrap_or(1);
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let mut input = c.clone();
        if let Some(o) = input.as_object_mut() {
            o.remove("id");
            o.insert("type".into(), json!(kind));
        }
        let existing = old.iter().find(|o| {
            o.input.get("type").and_then(Value::as_u64) == Some(kind)
                && o.input.get("name").and_then(Value::as_str) == Some(name)
        });
        let cmd = match existing {
            Some(e) if e.input == input => e.clone(),
            Some(e) => Cmd {
                id: e.id.clone(),
                version: snowflake(),
                input,
            },
            None => {
                st.commands_created += 1;
                Cmd {
                    id: snowflake(),
                    version: snowflake(),
                    input,
                }
            }
        };
        new.push(cmd);
    }
    let out: Vec<Value> = new.iter().map(|c| command_json(c, guild)).collect();
    st.commands.insert(key.to_string(), new);
    (200, Some(Value::Array(out)))
}

fn command_json(c: &Cmd, guild: Option<&str>) -> Value {
    let mut v = json!({
        "id": c.id,
        "application_id": APP_ID,
        "version": c.version,
        "default_member_permissions": null,
        "type": 1,
        "name": "",
        "description": "",
        "dm_permission": true,
        "contexts": null,
        "integration_types": [0],
        "nsfw": false
    });
    merge(&mut v, &c.input);
    if let Some(g) = guild {
        v["guild_id"] = json!(g);
        if let Some(o) = v.as_object_mut() {
            o.remove("dm_permission");
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Interactions: callbacks, follow-ups, @original
// ---------------------------------------------------------------------------

fn interaction_metadata(ix: &IxRec) -> Value {
    let mut v = json!({
        "id": ix.id,
        "type": ix.kind,
        "user": ix.user,
        "authorizing_integration_owners": {"0": GUILD_ID}
    });
    if let Some(orig) = &ix.original {
        v["original_response_message_id"] = json!(orig);
    }
    match ix.kind {
        2 => {
            v["name"] = json!(ix.command_name.clone().unwrap_or_default());
            v["command_type"] = json!(1);
        }
        3 => v["interacted_message_id"] = json!(ix.message_id.clone().unwrap_or_default()),
        5 => {
            v["triggering_interaction_metadata"] =
                ix.triggering_metadata.clone().unwrap_or_else(|| {
                    json!({
                        "id": snowflake(),
                        "type": 2,
                        "user": ix.user,
                        "authorizing_integration_owners": {"0": GUILD_ID},
                        "name": "unknown",
                        "command_type": 1
                    })
                })
        }
        _ => {}
    }
    v
}

fn interaction_message(ix: &IxRec, data: &Value, kind: u8, extra_flags: u64) -> MsgRec {
    let flags = (data.get("flags").and_then(Value::as_u64).unwrap_or(0)
        & (FLAG_EPHEMERAL
            | FLAG_SUPPRESS_EMBEDS
            | FLAG_SUPPRESS_NOTIFICATIONS
            | FLAG_IS_COMPONENTS_V2))
        | extra_flags;
    let mut components = data.get("components").cloned().unwrap_or(json!([]));
    if components.is_null() {
        components = json!([]);
    }
    assign_component_ids(&mut components);
    let reference = (ix.kind == 3 && kind == 19)
        .then(|| ix.message_id.clone())
        .flatten()
        .map(|mid| {
            json!({"type": 0, "channel_id": ix.channel_id, "message_id": mid, "guild_id": GUILD_ID})
        });
    MsgRec {
        id: snowflake(),
        channel_id: ix.channel_id.clone(),
        author: bot_user(),
        author_id: BOT_USER_ID.to_string(),
        author_roles: Vec::new(),
        content: data
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        embeds: normalize_embeds(data.get("embeds").unwrap_or(&Value::Null)),
        components,
        nonce: None,
        flags,
        kind,
        timestamp: iso_now(),
        edited_timestamp: None,
        reference,
        webhook_id: Some(APP_ID.to_string()),
        interaction_metadata: Some(interaction_metadata(ix)),
        legacy_interaction: (ix.kind == 2).then(|| {
            json!({
                "id": ix.id,
                "type": 2,
                "name": ix.command_name.clone().unwrap_or_default(),
                "user": ix.user
            })
        }),
        interaction_id: Some(ix.id.clone()),
        ephemeral: flags & FLAG_EPHEMERAL != 0,
        position: None,
    }
}

fn invalid_callback_type(allowed: &str) -> Reply {
    let mut errs = FormErrors::default();
    errs.add(
        &p(&["type"]),
        "INTERACTION_RESPONSE_TYPE_INVALID",
        &format!(
            "Interaction response type not supported for this interaction (allowed: {allowed})"
        ),
    );
    errs.into_reply().expect("an error")
}

fn interaction_callback(
    st: &mut DState,
    id: &str,
    token: &str,
    body: &Value,
    query: &str,
) -> Reply {
    let reply = interaction_callback_inner(st, id, token, body, query);
    st.callbacks.push((id.to_string(), reply.0, body.clone()));
    reply
}

fn interaction_callback_inner(
    st: &mut DState,
    id: &str,
    token: &str,
    body: &Value,
    query: &str,
) -> Reply {
    let Some(ix) = st.interactions.get(id).cloned() else {
        return err(404, "Unknown interaction", 10062);
    };
    if ix.token != token {
        return err(401, "Invalid Webhook Token", 50027);
    }
    if ix.acked.is_some() {
        return err(400, "Interaction has already been acknowledged.", 40060);
    }
    if ix.delivered.elapsed() > st.interaction_deadline {
        return err(404, "Unknown interaction", 10062);
    }
    let kind = body.get("type").and_then(Value::as_u64).unwrap_or(0);
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let from_component = ix.message_id.is_some();
    let allowed: &[u64] = match ix.kind {
        1 => &[1],
        2 => &[4, 5, 9],
        3 => &[4, 5, 6, 7, 9],
        4 => &[8],
        5 if from_component => &[4, 5, 6, 7],
        // DEFERRED_UPDATE_MESSAGE is documented for component interactions only, but
        // serenity's docs report that it works for every modal submit.
        5 => &[4, 5, 6],
        _ => &[],
    };
    if !allowed.contains(&kind) {
        let list: Vec<String> = allowed.iter().map(u64::to_string).collect();
        return invalid_callback_type(&list.join(", "));
    }
    let mut errs = FormErrors::default();
    let mut resource_message: Option<String> = None;
    match kind {
        4 => {
            validate_callback_data(&data, &mut errs);
            if errs.0.is_empty()
                && ["content", "embeds", "components", "poll"]
                    .iter()
                    .all(|k| is_empty_value(data.get(*k)))
            {
                return empty_message();
            }
        }
        7 => validate_callback_data(&data, &mut errs),
        8 => errs.max_items(&p(&["data", "choices"]), data.get("choices"), 25),
        9 => {
            match data.get("custom_id").and_then(Value::as_str) {
                None => errs.required(&p(&["data", "custom_id"])),
                Some(c) => errs.max_len(&p(&["data", "custom_id"]), Some(&json!(c)), 100),
            }
            match data.get("title").and_then(Value::as_str) {
                None => errs.required(&p(&["data", "title"])),
                Some(t) => errs.max_len(&p(&["data", "title"]), Some(&json!(t)), 45),
            }
            match data.get("components").and_then(Value::as_array) {
                Some(c) if !c.is_empty() && c.len() <= 5 => {}
                _ => errs.add(
                    &p(&["data", "components"]),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                ),
            }
        }
        _ => {}
    }
    if let Some(e) = errs.into_reply() {
        return e;
    }
    match kind {
        4 | 5 => {
            let msg_kind = if ix.kind == 2 {
                20
            } else if ix.kind == 3 || from_component {
                19
            } else {
                0
            };
            let loading = if kind == 5 { FLAG_LOADING } else { 0 };
            let rec = interaction_message(&ix, &data, msg_kind, loading);
            let mid = rec.id.clone();
            let idx = push_message(st, rec);
            if let Some(x) = st.interactions.get_mut(id) {
                x.original = Some(mid.clone());
            }
            st.auto_dispatch_message("MESSAGE_CREATE", idx);
            resource_message = Some(mid);
        }
        6 | 7 => {
            let mid = ix.message_id.clone().unwrap_or_default();
            if let Some(x) = st.interactions.get_mut(id) {
                x.original = Some(mid.clone());
            }
            if kind == 7 {
                if let Some(idx) = st.find_msg_any(&mid) {
                    if let Err(e) = apply_edit(st, idx, &data) {
                        return e;
                    }
                    st.auto_dispatch_message("MESSAGE_UPDATE", idx);
                    resource_message = Some(mid);
                }
            }
        }
        9 => {
            let custom_id = data["custom_id"].as_str().unwrap_or("").to_string();
            st.modals.insert(custom_id, (id.to_string(), data.clone()));
        }
        _ => {}
    }
    if let Some(x) = st.interactions.get_mut(id) {
        x.acked = Some(kind as u8);
    }
    if query_param(query, "with_response").as_deref() == Some("true") {
        let ix = st.interactions[id].clone();
        let mut interaction = json!({"id": ix.id, "type": ix.kind});
        let mut resource = json!({"type": kind});
        if let Some(mid) = &resource_message {
            if let Some(i) = st.find_msg_any(mid) {
                let m = &st.messages[i];
                interaction["response_message_id"] = json!(m.id);
                interaction["response_message_loading"] = json!(m.flags & FLAG_LOADING != 0);
                interaction["response_message_ephemeral"] = json!(m.ephemeral);
                if kind == 4 || kind == 7 {
                    resource["message"] = st.msg_json(m, false, 0);
                }
            }
        }
        return (
            200,
            Some(json!({"interaction": interaction, "resource": resource})),
        );
    }
    (204, None)
}

/// Validates a callback's message `data`; errors nest under `data`.
fn validate_callback_data(data: &Value, errs: &mut FormErrors) {
    let mut inner = FormErrors::default();
    validate_message_fields(data, &mut inner);
    if !inner.0.is_empty() {
        errs.0.insert("data".into(), Value::Object(inner.0));
    }
}

fn webhook_interaction(st: &DState, app: &str, token: &str) -> Result<IxRec, Reply> {
    if app != APP_ID {
        return Err(unknown_webhook());
    }
    let Some(ix) = st
        .token_to_ix
        .get(token)
        .and_then(|id| st.interactions.get(id))
    else {
        return Err(err(401, "Invalid Webhook Token", 50027));
    };
    if ix.delivered.elapsed() > INTERACTION_TOKEN_TTL {
        return Err(err(401, "Invalid Webhook Token", 50027));
    }
    if ix.acked.is_none() {
        return Err(unknown_webhook());
    }
    Ok(ix.clone())
}

fn create_followup(st: &mut DState, app: &str, token: &str, body: &Value) -> Reply {
    st.followups.push((token.to_string(), body.clone()));
    let ix = match webhook_interaction(st, app, token) {
        Ok(ix) => ix,
        Err(e) => return e,
    };
    let mut errs = FormErrors::default();
    validate_message_fields(body, &mut errs);
    if let Some(e) = errs.into_reply() {
        return e;
    }
    if ["content", "embeds", "components", "poll"]
        .iter()
        .all(|k| is_empty_value(body.get(*k)))
    {
        return empty_message();
    }
    // Right after a deferred (type 5) response, a follow-up edits the loading message
    // (deprecated but documented behaviour).
    if ix.acked == Some(5) {
        if let Some(idx) = ix.original.as_ref().and_then(|m| st.find_msg_any(m)) {
            if st.messages[idx].flags & FLAG_LOADING != 0 {
                if let Err(e) = apply_edit(st, idx, body) {
                    return e;
                }
                st.auto_dispatch_message("MESSAGE_UPDATE", idx);
                return (200, Some(st.msg_json(&st.messages[idx], false, 0)));
            }
        }
    }
    let rec = interaction_message(&ix, body, 0, 0);
    let idx = push_message(st, rec);
    st.auto_dispatch_message("MESSAGE_CREATE", idx);
    (200, Some(st.msg_json(&st.messages[idx], false, 0)))
}

fn webhook_message(
    st: &mut DState,
    method: &str,
    app: &str,
    token: &str,
    msg: &str,
    body: &Value,
) -> Reply {
    let ix = match webhook_interaction(st, app, token) {
        Ok(ix) => ix,
        Err(e) => return e,
    };
    let target = if msg == "@original" {
        match &ix.original {
            Some(m) => m.clone(),
            None => return unknown_message(),
        }
    } else {
        msg.to_string()
    };
    let Some(idx) = st.find_msg_any(&target) else {
        return unknown_message();
    };
    let ours = st.messages[idx].interaction_id.as_deref() == Some(ix.id.as_str())
        || ix.original.as_deref() == Some(target.as_str());
    if !ours {
        return unknown_message();
    }
    match method {
        "GET" => (200, Some(st.msg_json(&st.messages[idx], false, 0))),
        "PATCH" => {
            if let Err(e) = apply_edit(st, idx, body) {
                return e;
            }
            st.auto_dispatch_message("MESSAGE_UPDATE", idx);
            (200, Some(st.msg_json(&st.messages[idx], false, 0)))
        }
        "DELETE" => {
            st.messages.remove(idx);
            (204, None)
        }
        _ => err(405, "405: Method Not Allowed", 0),
    }
}

// ---------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------

fn hello_frame(interval: u64) -> String {
    json!({
        "t": null, "s": null, "op": 10,
        "d": {"heartbeat_interval": interval, "_trace": ["[\"gateway-fake-discord\",{\"micros\":0.0}]"]}
    })
    .to_string()
}

async fn gateway_upgrade(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let query = uri.query().unwrap_or("").to_string();
    let path_and_query = format!("{}?{query}", uri.path());
    let version = query_param(&query, "v");
    let encoding = query_param(&query, "encoding");
    let compress = query_param(&query, "compress");
    ws.on_upgrade(move |socket| async move {
        let close = if version.as_deref().is_some_and(|v| v != "10" && v != "9") {
            Some((4012, "Invalid API version"))
        } else if encoding.as_deref().is_some_and(|e| e != "json") {
            Some((4000, "fake Discord: only encoding=json is supported"))
        } else if compress.is_some() {
            Some((4000, "fake Discord: transport compression is not supported"))
        } else {
            None
        };
        run_gateway(shared, socket, path_and_query, close).await
    })
}

async fn run_gateway(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    path: String,
    refuse: Option<(u16, &'static str)>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = lock(&shared);
        st.conn_seq += 1;
        st.total_connections += 1;
        st.connection_paths.push(path);
        let id = st.conn_seq;
        let _ = tx.send(GwCmd::Text(hello_frame(st.heartbeat_interval)));
        if let Some((code, reason)) = refuse {
            let _ = tx.send(GwCmd::Close(code, reason.to_string()));
        }
        st.conns.push(GwConn {
            id,
            tx: tx.clone(),
            session: None,
            identified: false,
        });
        id
    };
    let mut alive = true;
    while alive {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => gateway_frame(&shared, id, text.as_str()),
                Some(Ok(WsMessage::Binary(_))) => {
                    let _ = tx.send(GwCmd::Close(4002, "Error while decoding payload.".into()));
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => alive = false,
                Some(Ok(_)) => {}
            },
            cmd = rx.recv() => match cmd {
                Some(GwCmd::Text(text)) => {
                    alive = socket.send(WsMessage::text(text)).await.is_ok();
                }
                Some(GwCmd::Close(code, reason)) => {
                    let _ = socket
                        .send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() })))
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while let Some(Ok(msg)) = socket.recv().await {
                            if matches!(msg, WsMessage::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                    alive = false;
                }
                Some(GwCmd::Drop) | None => alive = false,
            },
        }
    }
    let mut st = lock(&shared);
    st.conns.retain(|c| c.id != id);
    for s in st.sessions.values_mut() {
        if s.conn == Some(id) {
            s.conn = None;
        }
    }
    drop(st);
    drop(socket);
}

fn gateway_frame(shared: &Shared, conn_id: u64, text: &str) {
    let mut st = lock(shared);
    let Some(ci) = st.conns.iter().position(|c| c.id == conn_id) else {
        return;
    };
    let tx = st.conns[ci].tx.clone();
    let close = |code: u16, reason: &str| {
        let _ = tx.send(GwCmd::Close(code, reason.to_string()));
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return close(4002, "Error while decoding payload.");
    };
    let op = v.get("op").and_then(Value::as_u64);
    let d = v.get("d").cloned().unwrap_or(Value::Null);
    let identified = st.conns[ci].identified;
    match op {
        Some(1) => {
            st.heartbeats += 1;
            if st.ack_heartbeats {
                let _ = tx.send(GwCmd::Text(
                    json!({"t": null, "s": null, "op": 11, "d": null}).to_string(),
                ));
            }
        }
        Some(2) => {
            if identified {
                return close(4005, "Already authenticated.");
            }
            let token = d.get("token").and_then(Value::as_str).unwrap_or("");
            if token.strip_prefix("Bot ").unwrap_or(token) != BOT_TOKEN {
                return close(4004, "Authentication failed.");
            }
            let Some(intents) = d.get("intents").and_then(Value::as_u64) else {
                return close(4013, "Invalid intent(s).");
            };
            let privileged = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT;
            if intents & privileged & !st.approved_intents != 0 {
                return close(4014, "Disallowed intent(s).");
            }
            st.identifies += 1;
            st.identify_payloads.push(d.clone());
            let sid = hex::encode(next_random().to_be_bytes())
                + &hex::encode(next_random().to_be_bytes());
            st.sessions.insert(
                sid.clone(),
                Session {
                    seq: 0,
                    events: Vec::new(),
                    conn: Some(conn_id),
                    intents,
                    valid: true,
                },
            );
            st.current_session = Some(sid.clone());
            st.conns[ci].identified = true;
            st.conns[ci].session = Some(sid.clone());
            let port = shared.server.port();
            let mut ready = json!({
                "v": 10,
                "user_settings": {},
                "user": current_user(),
                "session_type": "normal",
                "session_id": sid,
                "resume_gateway_url": format!("ws://127.0.0.1:{port}/gateway-resume"),
                "relationships": [],
                "private_channels": [],
                "presences": [],
                "guilds": [{"id": GUILD_ID, "unavailable": true}],
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": ["rotterdam", "frankfurt", "milan", "madrid", "london"],
                "auth": {},
                "application": {"id": APP_ID, "flags": APP_FLAGS},
                "_trace": ["[\"gateway-fake-discord\",{\"micros\":0.0}]"]
            });
            if let Some(shard) = d.get("shard").filter(|s| s.is_array()) {
                ready["shard"] = shard.clone();
            }
            st.dispatch("READY", ready);
        }
        Some(6) => {
            let token = d.get("token").and_then(Value::as_str).unwrap_or("");
            if token.strip_prefix("Bot ").unwrap_or(token) != BOT_TOKEN {
                return close(4004, "Authentication failed.");
            }
            let sid = d
                .get("session_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let seq = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
            let resumable = st.sessions.get(&sid).is_some_and(|s| s.valid);
            if !resumable {
                st.invalid_sessions += 1;
                let _ = tx.send(GwCmd::Text(
                    json!({"t": null, "s": null, "op": 9, "d": false}).to_string(),
                ));
                return;
            }
            st.resumes += 1;
            let old = st.sessions[&sid].conn;
            if let Some(old) = old.filter(|&o| o != conn_id) {
                if let Some(c) = st.conns.iter().find(|c| c.id == old) {
                    let _ = c.tx.send(GwCmd::Drop);
                }
            }
            let s = st.sessions.get_mut(&sid).expect("session");
            s.conn = Some(conn_id);
            for (_, frame) in s.events.iter().filter(|(s, _)| *s > seq) {
                let _ = tx.send(GwCmd::Text(frame.clone()));
            }
            st.conns[ci].identified = true;
            st.conns[ci].session = Some(sid.clone());
            st.current_session = Some(sid);
            st.dispatch(
                "RESUMED",
                json!({"_trace": ["[\"gateway-fake-discord\",{\"micros\":0.0}]"]}),
            );
        }
        Some(3 | 4 | 8 | 31 | 36 | 43) => {
            if !identified {
                close(4003, "Not authenticated.");
            }
        }
        _ => close(4001, "Unknown opcode."),
    }
}

// ---------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------

impl FakeDiscord {
    /// Starts the fake on an ephemeral 127.0.0.1 port.
    pub async fn start() -> FakeDiscord {
        Self::start_on(0).await
    }

    /// Starts the fake on a fixed 127.0.0.1 port (0 = ephemeral).
    pub async fn start_on(port: u16) -> FakeDiscord {
        let listener = Listener::bind("Discord", port).await;
        let mut channels = BTreeMap::new();
        channels.insert(
            DEFAULT_CHANNEL.to_string(),
            ChanRec {
                id: DEFAULT_CHANNEL.to_string(),
                name: DEFAULT_CHANNEL_NAME.to_string(),
                kind: 0,
                parent_id: None,
                owner_id: None,
                missing_access: false,
                thread: None,
                message_count: 0,
                last_message_id: None,
                rate_limit_per_user: 0,
            },
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(DState {
                channels,
                messages: Vec::new(),
                edits: Vec::new(),
                thread_for_message: HashMap::new(),
                nonces: HashMap::new(),
                interactions: HashMap::new(),
                token_to_ix: HashMap::new(),
                callbacks: Vec::new(),
                followups: Vec::new(),
                modals: HashMap::new(),
                commands: BTreeMap::new(),
                command_overwrites: Vec::new(),
                commands_created: 0,
                buckets: HashMap::new(),
                rate_limit: 50,
                rate_window: Duration::from_secs(1),
                enforce_rate_limit: false,
                rate_limited: 0,
                require_user_agent: false,
                interaction_deadline: Duration::from_secs(3),
                nonce_window: Duration::from_secs(300),
                approved_intents: INTENT_GUILD_MEMBERS
                    | INTENT_GUILD_PRESENCES
                    | INTENT_MESSAGE_CONTENT,
                conns: Vec::new(),
                conn_seq: 0,
                total_connections: 0,
                connection_paths: Vec::new(),
                sessions: HashMap::new(),
                current_session: None,
                identifies: 0,
                identify_payloads: Vec::new(),
                resumes: 0,
                readies: 0,
                heartbeats: 0,
                invalid_sessions: 0,
                heartbeat_interval: DEFAULT_HEARTBEAT_MS,
                ack_heartbeats: true,
                auto_events: true,
                upload: Vec::new(),
                attachments: HashMap::new(),
            }),
            requests: RequestLog::default(),
            faults: FaultQueue::default(),
            lost: FaultQueue::default(),
            server: listener.server(),
        });
        listener.serve(
            Router::new()
                .route("/gateway", get(gateway_upgrade))
                .route("/gateway/", get(gateway_upgrade))
                .route("/gateway-resume", get(gateway_upgrade))
                .route("/gateway-resume/", get(gateway_upgrade))
                .fallback(rest)
                .with_state(shared.clone()),
        );
        FakeDiscord { shared }
    }

    /// `http://127.0.0.1:PORT`: what serenity's `HttpBuilder::proxy` takes.
    pub fn url(&self) -> String {
        self.shared.server.url()
    }

    /// `http://127.0.0.1:PORT/api/v10`: the REST base.
    pub fn api_url(&self) -> String {
        format!("{}/api/v10", self.url())
    }

    /// `ws://127.0.0.1:PORT/gateway` (what `GET /gateway` answers).
    pub fn gateway_url(&self) -> String {
        format!("ws://127.0.0.1:{}/gateway", self.shared.server.port())
    }

    pub fn port(&self) -> u16 {
        self.shared.server.port()
    }

    pub fn token(&self) -> &'static str {
        BOT_TOKEN
    }

    // ----- configuration ---------------------------------------------------

    /// Adds (or renames) a guild text channel.
    pub fn add_channel(&self, id: &str, name: &str) {
        let mut st = lock(&self.shared);
        let entry = st.channels.entry(id.to_string()).or_insert(ChanRec {
            id: id.to_string(),
            name: name.to_string(),
            kind: 0,
            parent_id: None,
            owner_id: None,
            missing_access: false,
            thread: None,
            message_count: 0,
            last_message_id: None,
            rate_limit_per_user: 0,
        });
        entry.name = name.to_string();
    }

    /// The bot loses (or regains) access to a channel: every route on it (and its
    /// threads) answers 403 `{"message": "Missing Access", "code": 50001}`.
    pub fn set_missing_access(&self, channel: &str, missing: bool) {
        if let Some(c) = lock(&self.shared).channels.get_mut(channel) {
            c.missing_access = missing;
        }
    }

    /// Deletes a message (as a moderator would); later calls on it answer 10008.
    pub fn delete_message(&self, channel: &str, id: &str) -> bool {
        let mut st = lock(&self.shared);
        match st.find_msg(channel, id) {
            Some(i) => {
                st.messages.remove(i);
                true
            }
            None => false,
        }
    }

    /// Deletes a channel or thread with its messages (and a channel's threads); later
    /// calls on it answer 10003.
    pub fn delete_channel(&self, channel: &str) -> bool {
        let mut st = lock(&self.shared);
        if st.channels.remove(channel).is_none() {
            return false;
        }
        let threads: Vec<String> = st
            .channels
            .values()
            .filter(|c| c.parent_id.as_deref() == Some(channel))
            .map(|c| c.id.clone())
            .collect();
        for t in &threads {
            st.channels.remove(t);
        }
        st.messages
            .retain(|m| m.channel_id != channel && !threads.contains(&m.channel_id));
        st.thread_for_message
            .retain(|_, t| t != channel && !threads.contains(t));
        true
    }

    /// The channel or thread object as `GET /channels/{id}` answers it.
    pub fn channel(&self, id: &str) -> Option<Value> {
        let st = lock(&self.shared);
        st.channels.get(id).map(|c| st.channel_json(c))
    }

    /// Hello's `heartbeat_interval` for new connections (default 41250 ms).
    pub fn set_heartbeat_interval(&self, ms: u64) {
        lock(&self.shared).heartbeat_interval = ms;
    }

    /// Whether heartbeats are ACKed (false = a zombie connection).
    pub fn set_ack_heartbeats(&self, ack: bool) {
        lock(&self.shared).ack_heartbeats = ack;
    }

    /// How long after delivery the first callback is accepted (default 3 s).
    pub fn set_interaction_deadline(&self, deadline: Duration) {
        lock(&self.shared).interaction_deadline = deadline;
    }

    /// How long `enforce_nonce` remembers a nonce (default 5 min, "a few minutes").
    pub fn set_nonce_window(&self, window: Duration) {
        lock(&self.shared).nonce_window = window;
    }

    /// Per-route bucket size and window for the `X-RateLimit-*` headers (default 50
    /// per 1 s, so a well-behaved client is not slowed down in tests).
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut st = lock(&self.shared);
        st.rate_limit = limit;
        st.rate_window = window;
        st.buckets.clear();
    }

    /// Answer 429 (Discord's body, `Retry-After`) once a bucket is exhausted.
    pub fn set_enforce_rate_limit(&self, enforce: bool) {
        lock(&self.shared).enforce_rate_limit = enforce;
    }

    /// How many requests were refused with 429 because their bucket was exhausted.
    pub fn rate_limited(&self) -> usize {
        lock(&self.shared).rate_limited
    }

    /// Refuse REST requests without a `User-Agent: DiscordBot (...)` (Discord documents
    /// that such requests may be blocked; the fake answers 400). Default off.
    pub fn set_require_user_agent(&self, require: bool) {
        lock(&self.shared).require_user_agent = require;
    }

    /// Privileged intents the app is approved for (default: all three). Identifying
    /// with others closes the gateway with 4014.
    pub fn set_approved_intents(&self, intents: u64) {
        lock(&self.shared).approved_intents = intents;
    }

    /// Whether the bot's own REST actions are dispatched on the gateway (default true).
    pub fn set_auto_events(&self, on: bool) {
        lock(&self.shared).auto_events = on;
    }

    /// A message by a (human) user, e.g. an agent's reply in a ticket thread;
    /// dispatched as MESSAGE_CREATE. Returns its id.
    pub fn add_user_message(
        &self,
        channel: &str,
        user_id: &str,
        username: &str,
        roles: &[&str],
        content: &str,
    ) -> String {
        let mut st = lock(&self.shared);
        assert!(
            st.channels.contains_key(channel),
            "add_user_message: no channel {channel}"
        );
        let rec = MsgRec {
            id: snowflake(),
            channel_id: channel.to_string(),
            author: user(user_id, username),
            author_id: user_id.to_string(),
            author_roles: roles.iter().map(|r| r.to_string()).collect(),
            content: content.to_string(),
            embeds: json!([]),
            components: json!([]),
            nonce: Some(json!(snowflake())),
            flags: 0,
            kind: 0,
            timestamp: iso_now(),
            edited_timestamp: None,
            reference: None,
            webhook_id: None,
            interaction_metadata: None,
            legacy_interaction: None,
            interaction_id: None,
            ephemeral: false,
            position: None,
        };
        let id = rec.id.clone();
        let idx = push_message(&mut st, rec);
        st.auto_dispatch_message("MESSAGE_CREATE", idx);
        id
    }

    // ----- faults ------------------------------------------------------------

    /// Queues faults for requests whose path starts with the prefix: below `/api/v10`
    /// (`"/channels/C/messages"`) or full (`"/api/v10/..."`), optionally preceded by a
    /// method (`"POST /channels/C/messages"`). Each matching request consumes one.
    /// A 429 without a body answers Discord's `{"message": "You are being rate
    /// limited.", "retry_after": secs, "global": false}` with `Retry-After`.
    pub fn fail_next(&self, route_prefix: &str, faults: Vec<Fault>) {
        self.shared.faults.push(Route::parse(route_prefix), faults);
    }

    /// The next `n` matching requests take effect but their answers never arrive.
    pub fn lose_next_answers(&self, route_prefix: &str, n: usize) {
        self.shared.lost.push_n(Route::parse(route_prefix), n);
    }

    // ----- gateway controls --------------------------------------------------

    /// Dispatches an event (op 0) on the current session: sent now if its connection
    /// is open, replayed on resume otherwise. Returns its sequence number, None when no
    /// valid session exists (the event is lost, as on Discord).
    pub fn dispatch(&self, event_name: &str, data: Value) -> Option<u64> {
        lock(&self.shared).dispatch(event_name, data)
    }

    /// Dispatches INTERACTION_CREATE with `payload` (registering it if a builder did
    /// not), starts its callback deadline, and returns its id. Panics when the bot has
    /// no gateway session at all (wait for [`wait_for_ready`](Self::wait_for_ready)).
    pub fn send_interaction(&self, payload: Value) -> String {
        let id = self.interaction_delivered(&payload);
        let seq = lock(&self.shared).dispatch("INTERACTION_CREATE", payload);
        assert!(
            seq.is_some(),
            "fake Discord: no gateway session to dispatch interaction {id} to (did the bot identify?)"
        );
        id
    }

    /// Marks an interaction as delivered now (starts its callback deadline); registers
    /// payloads not built by this fake. Returns the interaction id.
    pub fn interaction_delivered(&self, payload: &Value) -> String {
        let id = payload["id"].as_str().unwrap_or_default().to_string();
        let token = payload["token"].as_str().unwrap_or_default().to_string();
        let mut st = lock(&self.shared);
        match st.interactions.get_mut(&id) {
            Some(ix) => ix.delivered = Instant::now(),
            None => {
                let ix = IxRec {
                    id: id.clone(),
                    token: token.clone(),
                    kind: payload["type"].as_u64().unwrap_or(0) as u8,
                    channel_id: payload["channel_id"].as_str().unwrap_or("").to_string(),
                    message_id: payload
                        .pointer("/message/id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    user: payload
                        .pointer("/member/user")
                        .or_else(|| payload.get("user"))
                        .cloned()
                        .unwrap_or(Value::Null),
                    command_name: payload
                        .pointer("/data/name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    triggering_metadata: None,
                    delivered: Instant::now(),
                    acked: None,
                    original: None,
                    payload: payload.clone(),
                };
                st.token_to_ix.insert(token, id.clone());
                st.interactions.insert(id.clone(), ix);
            }
        }
        id
    }

    /// Delivers an interaction to an HTTP interactions endpoint the way Discord does:
    /// signed POST (`X-Signature-Ed25519`, `X-Signature-Timestamp`). A 200 answer with
    /// an interaction response body counts as the interaction's callback (its effects
    /// apply, it appears in [`callbacks`](Self::callbacks)). Returns (status, body).
    pub async fn deliver_http(&self, endpoint: &str, payload: &Value) -> (u16, Value) {
        let body = payload.to_string();
        let ts = (now_millis() / 1000).to_string();
        let sig = sign(&ts, &body);
        let id = self.interaction_delivered(payload);
        let resp = reqwest::Client::new()
            .post(endpoint)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                "Discord-Interactions/1.0 (+https://discord.com)",
            )
            .header("x-signature-ed25519", sig)
            .header("x-signature-timestamp", ts)
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("fake Discord: POST {endpoint}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        if status == 200 && value.get("type").and_then(Value::as_u64).is_some() && !id.is_empty() {
            let mut st = lock(&self.shared);
            let token = st.interactions.get(&id).map(|i| i.token.clone());
            if let Some(token) = token {
                interaction_callback(&mut st, &id, &token, &value, "");
            }
        }
        (status, value)
    }

    /// Closes every gateway connection abruptly (TCP drop, no close frame); the
    /// session stays resumable.
    pub fn drop_gateway(&self) {
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(GwCmd::Drop);
        }
    }

    /// Sends a close frame with `code` (e.g. 4000 unknown error, 4009 session timed
    /// out) on every connection.
    pub fn close_gateway(&self, code: u16, reason: &str) {
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(GwCmd::Close(code, reason.to_string()));
        }
    }

    /// Sends `text` as it is on every open connection (frames Discord would not send).
    pub fn send_raw_frame(&self, text: &str) {
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(GwCmd::Text(text.to_string()));
        }
    }

    /// Sends Reconnect (op 7) on every open connection.
    pub fn send_reconnect(&self) {
        let frame = json!({"t": null, "s": null, "op": 7, "d": null}).to_string();
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(GwCmd::Text(frame.clone()));
        }
    }

    /// Sends Invalid Session (op 9, `d` = resumable) on every open connection; when not
    /// resumable their sessions become invalid (a Resume then gets op 9 `false`).
    pub fn send_invalid_session(&self, resumable: bool) {
        let frame = json!({"t": null, "s": null, "op": 9, "d": resumable}).to_string();
        let mut st = lock(&self.shared);
        let sids: Vec<String> = st.conns.iter().filter_map(|c| c.session.clone()).collect();
        for c in st.conns.iter() {
            let _ = c.tx.send(GwCmd::Text(frame.clone()));
        }
        st.invalid_sessions += st.conns.len();
        if !resumable {
            for sid in sids {
                if let Some(s) = st.sessions.get_mut(&sid) {
                    s.valid = false;
                }
            }
        }
    }

    /// Expires the current session silently (as after a long disconnect): the next
    /// Resume gets op 9 `false`.
    pub fn expire_session(&self) {
        let mut st = lock(&self.shared);
        if let Some(sid) = st.current_session.clone() {
            if let Some(s) = st.sessions.get_mut(&sid) {
                s.valid = false;
            }
        }
    }

    /// Asks for an immediate heartbeat (op 1 from the server).
    pub fn request_heartbeat(&self) {
        let frame = json!({"t": null, "s": null, "op": 1, "d": null}).to_string();
        for c in lock(&self.shared).conns.iter() {
            let _ = c.tx.send(GwCmd::Text(frame.clone()));
        }
    }

    /// Identify (op 2) payloads received, in order.
    pub fn identify_payloads(&self) -> Vec<Value> {
        lock(&self.shared).identify_payloads.clone()
    }

    pub fn identifies(&self) -> usize {
        lock(&self.shared).identifies
    }

    /// Successful resumes (RESUMED sent).
    pub fn resumes(&self) -> usize {
        lock(&self.shared).resumes
    }

    /// Invalid Session (op 9) frames sent.
    pub fn invalid_sessions(&self) -> usize {
        lock(&self.shared).invalid_sessions
    }

    /// Gateway connections accepted so far (ever).
    pub fn connections(&self) -> usize {
        lock(&self.shared).total_connections
    }

    /// Gateway connections open right now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared).conns.len()
    }

    /// Path and query of every gateway connection, in order (`/gateway?v=10`, ...).
    pub fn connection_paths(&self) -> Vec<String> {
        lock(&self.shared).connection_paths.clone()
    }

    /// Heartbeats (op 1) received.
    pub fn heartbeats(&self) -> usize {
        lock(&self.shared).heartbeats
    }

    /// READY plus RESUMED dispatches sent so far.
    pub fn ready_count(&self) -> usize {
        lock(&self.shared).readies
    }

    /// Waits until the n-th READY or RESUMED has been sent.
    pub async fn wait_for_ready(&self, n: usize, timeout: Duration) {
        let what = format!("READY/RESUMED #{n} on the fake Discord gateway");
        super::wait_until(timeout, &what, || self.ready_count() >= n).await;
    }

    /// Waits until at least `n` gateway connections were accepted (ever).
    pub async fn wait_for_connection(&self, n: usize, timeout: Duration) {
        let what = format!("{n} gateway connections");
        super::wait_until(timeout, &what, || self.connections() >= n).await;
    }

    // ----- interaction builders ---------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn new_interaction(
        &self,
        kind: u8,
        channel: &str,
        member_json: Value,
        data: Option<Value>,
        message: Option<Value>,
        command_name: Option<String>,
        triggering: Option<Value>,
    ) -> Value {
        let id = snowflake();
        let token = interaction_token(&id);
        let mut st = lock(&self.shared);
        let mut v = if kind == 1 {
            json!({
                "app_permissions": APP_PERMISSIONS.to_string(),
                "application_id": APP_ID,
                "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
                "authorizing_integration_owners": {},
                "entitlements": [],
                "id": id,
                "token": token,
                "type": 1,
                "user": null,
                "version": 1
            })
        } else {
            json!({
                "app_permissions": APP_PERMISSIONS.to_string(),
                "application_id": APP_ID,
                "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
                "authorizing_integration_owners": {"0": GUILD_ID},
                "channel": st.interaction_channel_json(channel),
                "channel_id": channel,
                "context": 0,
                "data": data,
                "entitlement_sku_ids": [],
                "entitlements": [],
                "guild": {"features": [], "id": GUILD_ID, "locale": "en-US"},
                "guild_id": GUILD_ID,
                "guild_locale": "en-US",
                "id": id,
                "locale": "en-US",
                "member": member_json,
                "token": token,
                "type": kind,
                "version": 1
            })
        };
        let message_id = message
            .as_ref()
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(m) = message {
            v["message"] = m;
        }
        let user_json = v.pointer("/member/user").cloned().unwrap_or(Value::Null);
        let ix = IxRec {
            id: id.clone(),
            token: token.clone(),
            kind,
            channel_id: channel.to_string(),
            message_id,
            user: user_json,
            command_name,
            triggering_metadata: triggering,
            delivered: Instant::now(),
            acked: None,
            original: None,
            payload: v.clone(),
        };
        st.token_to_ix.insert(token, id.clone());
        st.interactions.insert(id, ix);
        v
    }

    /// The message as Discord embeds it in an interaction (any stored message,
    /// ephemeral ones included). Panics if it does not exist.
    fn stored_message_json(&self, channel: &str, message_id: &str) -> Value {
        let st = lock(&self.shared);
        let idx = st
            .find_msg(channel, message_id)
            .unwrap_or_else(|| panic!("fake Discord: no message {message_id} in {channel}"));
        st.msg_json(&st.messages[idx], false, 0)
    }

    /// A button click (type 3) on a stored message: `data: {custom_id, component_type:
    /// 2}`, `message` = the full message as stored. Panics if the message does not
    /// exist or has no component with that `custom_id`.
    pub fn component_interaction(
        &self,
        channel: &str,
        message_id: &str,
        user_id: &str,
        username: &str,
        roles: &[&str],
        custom_id: &str,
    ) -> Value {
        let message = self.stored_message_json(channel, message_id);
        let component = find_component(&message["components"], custom_id).unwrap_or_else(|| {
            panic!(
                "fake Discord: message {message_id} has no component with custom_id {custom_id:?}: {}",
                message["components"]
            )
        });
        let component_type = component["type"].as_u64().unwrap_or(2);
        let mut data = json!({"custom_id": custom_id, "component_type": component_type, "id": component["id"]});
        if component_type != 2 {
            data["values"] = json!([]);
        }
        self.new_interaction(
            3,
            channel,
            member(user_id, username, roles),
            Some(data),
            Some(message),
            None,
            None,
        )
    }

    /// A select-menu choice (type 3 with `values`) on a stored message.
    #[allow(clippy::too_many_arguments)]
    pub fn select_interaction(
        &self,
        channel: &str,
        message_id: &str,
        user_id: &str,
        username: &str,
        roles: &[&str],
        custom_id: &str,
        values: &[&str],
    ) -> Value {
        let mut v =
            self.component_interaction(channel, message_id, user_id, username, roles, custom_id);
        v["data"]["values"] = json!(values);
        let id = v["id"].as_str().unwrap_or("").to_string();
        if let Some(ix) = lock(&self.shared).interactions.get_mut(&id) {
            ix.payload = v.clone();
        }
        v
    }

    /// A modal submit (type 5). When the bot opened a modal with this `custom_id`
    /// (callback type 9), the submit carries every input of that modal (ids from it,
    /// `message` when it was opened from a component, `triggering` metadata); `fields`
    /// are (text input custom_id, value). Panics on a field the modal does not have, a
    /// missing required input, or a value outside min/max_length (Discord's client
    /// would not submit those).
    pub fn modal_submit(
        &self,
        user_id: &str,
        username: &str,
        roles: &[&str],
        custom_id: &str,
        fields: &[(&str, &str)],
        channel: &str,
    ) -> Value {
        let (opener, modal) = {
            let st = lock(&self.shared);
            match st.modals.get(custom_id) {
                Some((ix_id, modal)) => (st.interactions.get(ix_id).cloned(), Some(modal.clone())),
                None => (None, None),
            }
        };
        let rows = match &modal {
            Some(m) => modal_rows(m, custom_id, fields),
            None => {
                let mut next = 1;
                fields
                    .iter()
                    .map(|(cid, value)| {
                        let row = json!({"type": 1, "id": next, "components": [
                            {"type": 4, "id": next + 1, "custom_id": cid, "value": value}
                        ]});
                        next += 2;
                        row
                    })
                    .collect()
            }
        };
        let data = json!({"custom_id": custom_id, "components": rows});
        let message = opener
            .as_ref()
            .and_then(|o| o.message_id.clone().map(|m| (o.channel_id.clone(), m)))
            .map(|(ch, m)| self.stored_message_json(&ch, &m));
        let triggering = opener.as_ref().map(interaction_metadata);
        let channel = opener
            .as_ref()
            .map(|o| o.channel_id.clone())
            .unwrap_or_else(|| channel.to_string());
        self.new_interaction(
            5,
            &channel,
            member(user_id, username, roles),
            Some(data),
            message,
            None,
            triggering,
        )
    }

    fn command_data(&self, name: &str, options: &Value) -> Value {
        let st = lock(&self.shared);
        let (cmd, guild) = st
            .commands
            .get(GUILD_ID)
            .and_then(|l| l.iter().find(|c| c.input["name"] == json!(name)))
            .map(|c| (c.clone(), true))
            .or_else(|| {
                st.commands
                    .get("")
                    .and_then(|l| l.iter().find(|c| c.input["name"] == json!(name)))
                    .map(|c| (c.clone(), false))
            })
            .unwrap_or_else(|| {
                panic!("fake Discord: command /{name} is not registered (bulk-overwrite the guild or global commands first)")
            });
        let mut options = if options.is_null() {
            json!([])
        } else {
            options.clone()
        };
        normalize_interaction_options(&mut options);
        let mut data = json!({
            "id": cmd.id,
            "name": name,
            "type": cmd.input.get("type").cloned().unwrap_or(json!(1)),
        });
        if options.as_array().is_some_and(|a| !a.is_empty()) {
            data["options"] = options;
        }
        if guild {
            data["guild_id"] = json!(GUILD_ID);
        }
        data
    }

    /// A slash command (type 2). `options` is the interaction's options array (e.g.
    /// `[{"type": 1, "name": "claim", "options": [{"type": 3, "name": "ticket",
    /// "value": "T1"}]}]`; subcommands without options get `"options": []`). Panics if
    /// no command of that name is registered (Discord cannot invoke it).
    pub fn command_interaction(
        &self,
        user_id: &str,
        username: &str,
        roles: &[&str],
        name: &str,
        options: Value,
        channel: &str,
    ) -> Value {
        let data = self.command_data(name, &options);
        self.new_interaction(
            2,
            channel,
            member(user_id, username, roles),
            Some(data),
            None,
            Some(name.to_string()),
            None,
        )
    }

    /// An autocomplete request (type 4): like a command, exactly one (possibly nested)
    /// option must have `"focused": true` and a string `value` (the partial input).
    pub fn autocomplete_interaction(
        &self,
        user_id: &str,
        username: &str,
        roles: &[&str],
        name: &str,
        options: Value,
        channel: &str,
    ) -> Value {
        let focused = count_focused(&options);
        assert!(
            focused == 1,
            "fake Discord: an autocomplete interaction needs exactly one focused option, got {focused}: {options}"
        );
        let data = self.command_data(name, &options);
        self.new_interaction(
            4,
            channel,
            member(user_id, username, roles),
            Some(data),
            None,
            Some(name.to_string()),
            None,
        )
    }

    /// A PING (type 1), as Discord sends to validate an interactions endpoint.
    pub fn ping_interaction(&self) -> Value {
        self.new_interaction(1, "", Value::Null, None, None, None, None)
    }

    // ----- inspection ----------------------------------------------------------

    /// A channel's (or thread's) messages, oldest first, current state; ephemeral
    /// interaction messages are not included.
    pub fn messages(&self, channel: &str) -> Vec<DiscordMessage> {
        lock(&self.shared)
            .messages
            .iter()
            .filter(|m| m.channel_id == channel && !m.ephemeral)
            .map(MsgRec::public)
            .collect()
    }

    /// One message by id (ephemeral ones included).
    pub fn message(&self, channel: &str, id: &str) -> Option<DiscordMessage> {
        let st = lock(&self.shared);
        st.find_msg(channel, id).map(|i| st.messages[i].public())
    }

    /// The message as the API shows it (JSON), ephemeral ones included.
    pub fn message_json(&self, channel: &str, id: &str) -> Option<Value> {
        let st = lock(&self.shared);
        st.find_msg(channel, id)
            .map(|i| st.msg_json(&st.messages[i], false, 0))
    }

    /// Messages an interaction produced (original response and follow-ups, ephemeral
    /// ones included), oldest first.
    pub fn interaction_messages(&self, interaction_id: &str) -> Vec<DiscordMessage> {
        lock(&self.shared)
            .messages
            .iter()
            .filter(|m| m.interaction_id.as_deref() == Some(interaction_id))
            .map(MsgRec::public)
            .collect()
    }

    /// The original response of an interaction (the message a type 4/5 callback
    /// created, or the component's message after 6/7).
    pub fn original_response(&self, interaction_id: &str) -> Option<DiscordMessage> {
        let st = lock(&self.shared);
        let mid = st.interactions.get(interaction_id)?.original.clone()?;
        st.find_msg_any(&mid).map(|i| st.messages[i].public())
    }

    /// The files attached to an interaction's original response (by a multipart edit).
    pub fn original_attachments(&self, interaction_id: &str) -> Vec<Attachment> {
        let st = lock(&self.shared);
        st.interactions
            .get(interaction_id)
            .and_then(|ix| ix.original.as_ref())
            .and_then(|mid| st.attachments.get(mid))
            .cloned()
            .unwrap_or_default()
    }

    /// Every change applied to a message, in order: PATCH bodies, UPDATE_MESSAGE (7)
    /// callback `data`, `@original`/follow-up edit bodies.
    pub fn edits(&self, message_id: &str) -> Vec<Value> {
        lock(&self.shared)
            .edits
            .iter()
            .filter(|(id, _)| id == message_id)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The thread started from a message (its id equals the message id).
    pub fn thread_of(&self, message_id: &str) -> Option<String> {
        let st = lock(&self.shared);
        st.thread_for_message
            .get(message_id)
            .filter(|t| st.channels.contains_key(*t))
            .cloned()
    }

    /// Every REST request seen, as (method, path with query, JSON body or Null).
    pub fn requests(&self) -> Vec<(String, String, Value)> {
        self.shared.requests.all()
    }

    /// Requests with this method whose path starts with `path_prefix` (below
    /// `/api/v10`, or full).
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        let route = Route::named(path_prefix);
        self.shared.requests.count(|(m, p, _)| {
            let path = p.split('?').next().unwrap_or(p);
            m.eq_ignore_ascii_case(method)
                && route_hits(&route, m, path, api_relative(path).as_deref())
        })
    }

    pub fn clear_requests(&self) {
        self.shared.requests.clear();
    }

    /// Accepted interaction responses (callback bodies, or inline HTTP answers) for an
    /// interaction, in order (at most one, unless the fake was bypassed).
    pub fn callbacks(&self, interaction_id: &str) -> Vec<Value> {
        lock(&self.shared)
            .callbacks
            .iter()
            .filter(|(id, status, _)| id == interaction_id && (200..300).contains(status))
            .map(|(_, _, v)| v.clone())
            .collect()
    }

    /// Every callback attempt for an interaction as (HTTP status answered, body).
    pub fn callback_attempts(&self, interaction_id: &str) -> Vec<(u16, Value)> {
        lock(&self.shared)
            .callbacks
            .iter()
            .filter(|(id, _, _)| id == interaction_id)
            .map(|(_, s, v)| (*s, v.clone()))
            .collect()
    }

    /// Waits for the first accepted callback of an interaction and returns its body.
    pub async fn wait_for_callback(&self, interaction_id: &str, timeout: Duration) -> Value {
        let what = format!("a callback for interaction {interaction_id}");
        super::wait_until(timeout, &what, || {
            !self.callbacks(interaction_id).is_empty()
        })
        .await;
        self.callbacks(interaction_id).remove(0)
    }

    /// Bodies POSTed to `/webhooks/{app}/{token}` (follow-ups), in order.
    pub fn followups(&self, interaction_token: &str) -> Vec<Value> {
        lock(&self.shared)
            .followups
            .iter()
            .filter(|(t, _)| t == interaction_token)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The current command set of a guild (full Application Command objects).
    pub fn guild_commands(&self, guild: &str) -> Vec<Value> {
        let st = lock(&self.shared);
        st.commands
            .get(guild)
            .map(|l| l.iter().map(|c| command_json(c, Some(guild))).collect())
            .unwrap_or_default()
    }

    /// The current global command set.
    pub fn global_commands(&self) -> Vec<Value> {
        let st = lock(&self.shared);
        st.commands
            .get("")
            .map(|l| l.iter().map(|c| command_json(c, None)).collect())
            .unwrap_or_default()
    }

    /// Every bulk-overwrite call as (guild id, or "" for global; body).
    pub fn command_overwrites(&self) -> Vec<(String, Value)> {
        lock(&self.shared).command_overwrites.clone()
    }

    /// Commands created (new ids minted) over all bulk overwrites.
    pub fn commands_created(&self) -> usize {
        lock(&self.shared).commands_created
    }

    /// Polls `cond` (every 10 ms) until true; panics naming `what` after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut cond: impl FnMut(&FakeDiscord) -> bool,
    ) {
        super::wait_until(timeout, what, || cond(self)).await
    }

    /// Waits until the channel has at least `n` (non-ephemeral) messages; returns them.
    pub async fn wait_for_messages(
        &self,
        channel: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<DiscordMessage> {
        let what = format!("{n} messages in {channel} on fake Discord");
        let msgs = || self.messages(channel);
        wait_for_at_least(timeout, &what, n, msgs, &self.shared.requests).await
    }
}

fn find_component(components: &Value, custom_id: &str) -> Option<Value> {
    match components {
        Value::Array(a) => a.iter().find_map(|c| find_component(c, custom_id)),
        Value::Object(o) => {
            if o.get("custom_id").and_then(Value::as_str) == Some(custom_id) {
                return Some(components.clone());
            }
            ["components", "component", "accessory"]
                .iter()
                .filter_map(|k| o.get(*k))
                .find_map(|c| find_component(c, custom_id))
        }
        _ => None,
    }
}

/// The submitted rows of a modal the bot opened: every text input, with the values
/// given (others empty), validated like Discord's client does.
fn modal_rows(modal: &Value, custom_id: &str, fields: &[(&str, &str)]) -> Vec<Value> {
    let mut modal = modal.clone();
    if let Some(c) = modal.get_mut("components") {
        assign_component_ids(c);
    }
    let mut known: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for row in modal["components"].as_array().cloned().unwrap_or_default() {
        let (inputs, label) = match row["type"].as_u64() {
            Some(18) => (vec![row["component"].clone()], true),
            _ => (
                row["components"].as_array().cloned().unwrap_or_default(),
                false,
            ),
        };
        let mut out = Vec::new();
        for input in inputs {
            if input["type"].as_u64() != Some(4) {
                continue;
            }
            let cid = input["custom_id"].as_str().unwrap_or("").to_string();
            known.push(cid.clone());
            let given = fields.iter().find(|(c, _)| *c == cid).map(|(_, v)| *v);
            let required = input["required"].as_bool().unwrap_or(true);
            let value = match given {
                Some(v) => v.to_string(),
                None if required => panic!(
                    "fake Discord: modal {custom_id:?} requires input {cid:?} (Discord's client would not submit without it)"
                ),
                None => input["value"].as_str().unwrap_or("").to_string(),
            };
            let len = value.chars().count() as u64;
            if let Some(min) = input["min_length"].as_u64() {
                assert!(
                    len >= min || (len == 0 && !required),
                    "fake Discord: input {cid:?} is shorter than min_length {min}"
                );
            }
            if let Some(max) = input["max_length"].as_u64() {
                assert!(
                    len <= max,
                    "fake Discord: input {cid:?} is longer than max_length {max}"
                );
            }
            out.push(json!({"type": 4, "id": input["id"], "custom_id": cid, "value": value}));
        }
        if label {
            if let Some(c) = out.pop() {
                rows.push(json!({"type": 18, "id": row["id"], "component": c}));
            }
        } else {
            rows.push(json!({"type": 1, "id": row["id"], "components": out}));
        }
    }
    for (cid, _) in fields {
        assert!(
            known.iter().any(|k| k == cid),
            "fake Discord: modal {custom_id:?} has no text input {cid:?} (inputs: {known:?})"
        );
    }
    rows
}

/// Subcommands and groups always carry `options` (possibly empty), as Discord sends them.
fn normalize_interaction_options(options: &mut Value) {
    if let Some(list) = options.as_array_mut() {
        for o in list {
            let kind = o.get("type").and_then(Value::as_u64).unwrap_or(0);
            if kind == 1 || kind == 2 {
                if let Some(obj) = o.as_object_mut() {
                    obj.entry("options").or_insert(json!([]));
                }
                if let Some(sub) = o.get_mut("options") {
                    normalize_interaction_options(sub);
                }
            }
        }
    }
}

fn count_focused(options: &Value) -> usize {
    options
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let me = usize::from(o.get("focused").and_then(Value::as_bool) == Some(true));
            if me == 1 {
                assert!(
                    o.get("value").is_some_and(Value::is_string),
                    "fake Discord: a focused option's value is the user's partial input, a string: {o}"
                );
            }
            me + o.get("options").map_or(0, count_focused)
        })
        .sum()
}
