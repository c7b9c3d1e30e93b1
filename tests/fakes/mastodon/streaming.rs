//! The fake Mastodon's streaming API, as Mastodon documents it (methods/streaming.md,
//! streaming/index.js) and GoToSocial serves it (internal/api/client/streaming,
//! internal/stream):
//!
//! - `GET /api/v1/streaming` upgrades to a websocket. The token comes in
//!   `Authorization: Bearer`, `?access_token=` or `Sec-WebSocket-Protocol` (echoed back);
//!   a missing or wrong one is refused before the upgrade: 401 with `X-Error-Message`.
//! - Subscriptions: `?stream=user:notification` (or `user`, or `hashtag&tag=x`) at
//!   connect, and `{"type":"subscribe"|"unsubscribe","stream":…,"tag":…}` text frames
//!   later. Mastodon answers a stream name it does not know with an `{"error":…}` frame;
//!   GoToSocial ignores one it does not take in-socket (it takes only `public`,
//!   `public:local`, `user`, `direct`, `list`), hashtags included, and says nothing.
//! - Events are text frames `{"stream":[…],"event":…,"payload":"<JSON as a string>"}`.
//!   Every mention the fake gains goes to sockets subscribed to `user:notification` or
//!   `user` (`["user:notification"]` on Mastodon, `["user:notification","user"]` on
//!   GoToSocial), and every public status with a hashtag to the sockets subscribed to
//!   that hashtag (`["hashtag","tag"]`; never on GoToSocial, which publishes nothing to
//!   hashtag streams).
//! - The server pings every 30 s (configurable); the websocket layer answers pongs.
//!
//! Test controls: drop every socket without a close frame; cut the next event in the
//! middle of its frame (it is lost from the stream and stays in the REST API); go quiet
//! (no pings, no events, TCP kept open); no streaming at all (the instance names no URL
//! and the route answers 404); the GoToSocial flavour; counts of connections,
//! refusals and subscriptions; and raw frames for hostile-input tests.

use super::{MState, Shared, TOKEN};
use crate::fakes::scaffold::{bearer, lock, query_pairs, Refusal};
use crate::fakes::Fault;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Whose streaming API the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFlavour {
    Mastodon,
    /// GoToSocial: no hashtag streams, notifications tagged `["user:notification","user"]`,
    /// the instance's `source_url` names GoToSocial.
    GoToSocial,
}

/// What the fake's streaming side saw, for tests to assert on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Websocket upgrades accepted.
    pub connections: usize,
    /// Upgrades refused for the token (401).
    pub refused: usize,
    /// Sockets open right now.
    pub open: usize,
    /// Every subscription taken, in order (`user:notification`, `hashtag:brand`…).
    pub subscriptions: Vec<String>,
    /// Every subscription refused or ignored (Mastodon: an error frame; GoToSocial:
    /// silence).
    pub rejected: Vec<String>,
    /// Frames the sockets were sent, events and raw frames alike (pings not counted).
    pub frames_sent: usize,
}

enum Command {
    Text(String),
    Binary(Vec<u8>),
    /// Send the first half of this text as an unfinished frame, then drop the socket.
    Cut(String),
    /// Drop the socket: no close frame, TCP closed.
    Drop,
    /// Close properly: a close frame with this code and reason, then TCP closed.
    Close(u16, String),
}

struct Socket {
    id: u64,
    subscriptions: BTreeSet<String>,
    tx: mpsc::UnboundedSender<Command>,
}

struct HubState {
    enabled: bool,
    flavour: StreamFlavour,
    ping_every: Duration,
    quiet: bool,
    /// What `/api/v2/instance` names instead of the fake's own ws URL.
    advertised: Option<String>,
    /// The next this many events are cut in the middle of their frame.
    cut_next: usize,
    /// Refuse even the right token, with this `X-Error-Message`.
    refuse_token: Option<String>,
    sockets: Vec<Socket>,
    next_id: u64,
    counts: StreamCounts,
}

/// The sockets of one fake server and its streaming settings.
pub(super) struct Hub {
    state: Mutex<HubState>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            state: Mutex::new(HubState {
                enabled: true,
                flavour: StreamFlavour::Mastodon,
                ping_every: Duration::from_secs(30),
                quiet: false,
                advertised: None,
                cut_next: 0,
                refuse_token: None,
                sockets: Vec::new(),
                next_id: 0,
                counts: StreamCounts::default(),
            }),
        }
    }
}

impl Hub {
    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        lock(&self.state)
    }

    /// `version`, `source_url` and `configuration.urls.streaming` of the instance, as
    /// this flavour and these settings answer them (`None`: no streaming URL).
    pub(super) fn instance_facts(
        &self,
        base: &str,
    ) -> (&'static str, &'static str, Option<String>) {
        let st = self.state();
        let url = match (&st.advertised, st.enabled) {
            (_, false) => None,
            (Some(url), true) => Some(url.clone()),
            (None, true) => Some(base.replace("http://", "ws://")),
        };
        match st.flavour {
            StreamFlavour::Mastodon => ("4.3.0", "https://github.com/mastodon/mastodon", url),
            StreamFlavour::GoToSocial => (
                "0.19.1+git-3f3fd4c",
                "https://github.com/superseriousbusiness/gotosocial",
                url,
            ),
        }
    }

    /// Push an event to every socket subscribed to one of `channels`, tagged with
    /// `tags(channel)`; nothing while the server is quiet.
    fn publish(
        &self,
        channels: &[String],
        event: &str,
        payload: &Value,
        tags: impl Fn(&str) -> Vec<String>,
    ) {
        let mut st = self.state();
        if st.quiet {
            return;
        }
        let payload = payload.to_string();
        let cut = st.cut_next > 0;
        let mut sent = 0;
        for socket in &st.sockets {
            let Some(channel) = channels.iter().find(|c| socket.subscriptions.contains(*c)) else {
                continue;
            };
            let frame =
                json!({"stream": tags(channel), "event": event, "payload": payload}).to_string();
            let command = if cut {
                Command::Cut(frame)
            } else {
                Command::Text(frame)
            };
            if socket.tx.send(command).is_ok() {
                sent += 1;
            }
        }
        if cut && sent > 0 {
            st.cut_next -= 1;
        }
        st.counts.frames_sent += sent;
    }

    fn to_all(&self, command: impl Fn() -> Command) {
        let mut st = self.state();
        let mut sent = 0;
        for socket in &st.sockets {
            if socket.tx.send(command()).is_ok() {
                sent += 1;
            }
        }
        st.counts.frames_sent += sent;
    }
}

impl MState {
    /// The streaming events a new mention notification makes.
    pub(super) fn stream_notification(&self, hub: &Hub, notification: usize) {
        let n = &self.notifications[notification];
        if n.filtered {
            // Mastodon does not push notifications its policy filtered.
            return;
        }
        let payload = self.notification_json(n);
        let flavour = hub.state().flavour;
        hub.publish(
            &["user:notification".to_string(), "user".to_string()],
            "notification",
            &payload,
            |channel| match flavour {
                StreamFlavour::Mastodon => vec![channel.to_string()],
                StreamFlavour::GoToSocial => vec!["user:notification".into(), "user".into()],
            },
        );
    }

    /// The hashtag events a new status makes (public statuses only, never on GoToSocial).
    pub(super) fn stream_status(&self, hub: &Hub, status: usize) {
        let s = &self.statuses[status];
        if s.visibility != "public" || hub.state().flavour == StreamFlavour::GoToSocial {
            return;
        }
        let tags: Vec<String> = s
            .text
            .split(char::is_whitespace)
            .filter_map(|w| w.strip_prefix('#'))
            .map(|t| t.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_'))
            .filter(|t| !t.is_empty())
            .map(|t| t.to_lowercase())
            .collect();
        if tags.is_empty() {
            return;
        }
        let payload = self.status_json(s);
        let channels: Vec<String> = tags.iter().map(|t| format!("hashtag:{t}")).collect();
        hub.publish(&channels, "update", &payload, |channel| {
            vec![
                "hashtag".into(),
                channel.trim_start_matches("hashtag:").to_string(),
            ]
        });
    }
}

impl super::FakeMastodon {
    fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// The fake's streaming base, `ws://127.0.0.1:PORT`.
    pub fn stream_url(&self) -> String {
        self.url().replace("http://", "ws://")
    }

    /// Off: the instance names no streaming URL and `/api/v1/streaming` answers 404.
    pub fn set_streaming(&self, enabled: bool) {
        self.hub().state().enabled = enabled;
    }

    /// Speak as Mastodon (default) or as GoToSocial.
    pub fn set_stream_flavour(&self, flavour: StreamFlavour) {
        self.hub().state().flavour = flavour;
    }

    /// How often open sockets are pinged (default 30 s, as both servers do).
    pub fn set_stream_ping_every(&self, every: Duration) {
        self.hub().state().ping_every = every;
    }

    /// While quiet, no pings and no events go out (events made meanwhile are lost from
    /// the stream, as on a stuck server); sockets stay open.
    pub fn set_stream_quiet(&self, quiet: bool) {
        self.hub().state().quiet = quiet;
    }

    /// What `/api/v2/instance` names as `configuration.urls.streaming` (None: the
    /// fake's own ws URL).
    pub fn advertise_streaming_url(&self, url: Option<&str>) {
        self.hub().state().advertised = url.map(str::to_string);
    }

    /// Refuse the upgrade even with the right token, with `X-Error-Message: said` (as
    /// Mastodon 4.2+ refuses a token not tied to a user, or one revoked since the REST
    /// calls were made). None: take the right token again.
    pub fn refuse_stream_token(&self, said: Option<&str>) {
        self.hub().state().refuse_token = said.map(str::to_string);
    }

    /// Drop every open socket abruptly: no close frame, TCP closed.
    pub fn drop_streams(&self) {
        let mut st = self.hub().state();
        for socket in &st.sockets {
            let _ = socket.tx.send(Command::Drop);
        }
        st.sockets.clear();
    }

    /// Close every open socket with a close frame (as Mastodon does when the token is
    /// revoked).
    pub fn close_streams(&self, code: u16, reason: &str) {
        let mut st = self.hub().state();
        for socket in &st.sockets {
            let _ = socket.tx.send(Command::Close(code, reason.to_string()));
        }
        st.sockets.clear();
    }

    /// The next `n` events are cut in the middle of their frame and the socket dropped:
    /// the event is lost from the stream and stays in the REST API.
    pub fn cut_next_stream_events(&self, n: usize) {
        self.hub().state().cut_next = n;
    }

    /// Send a raw text frame to every open socket (hostile-input tests).
    pub fn push_stream_text(&self, text: &str) {
        let text = text.to_string();
        self.hub().to_all(|| Command::Text(text.clone()));
    }

    /// Send a raw binary frame to every open socket.
    pub fn push_stream_binary(&self, bytes: &[u8]) {
        let bytes = bytes.to_vec();
        self.hub().to_all(|| Command::Binary(bytes.clone()));
    }

    /// Send an event envelope with the payload as given (a string, or a hostile value).
    pub fn push_stream_event(&self, stream: Value, event: &str, payload: Value) {
        let text = json!({"stream": stream, "event": event, "payload": payload}).to_string();
        self.push_stream_text(&text);
    }

    pub fn stream_counts(&self) -> StreamCounts {
        let st = self.hub().state();
        let mut counts = st.counts.clone();
        counts.open = st.sockets.len();
        counts
    }

    /// Waits until at least `n` sockets are open; panics after `timeout`.
    pub async fn wait_for_streams(&self, n: usize, timeout: Duration) {
        let what = format!("{n} open streaming sockets on fake Mastodon");
        crate::fakes::wait_until(timeout, &what, || self.stream_counts().open >= n).await;
    }

    /// Waits until at least `n` subscriptions were taken or refused in all (a client's
    /// in-socket subscribe frames are read after it thinks it is connected); panics
    /// after `timeout`.
    pub async fn wait_for_subscriptions(&self, n: usize, timeout: Duration) {
        let what = format!("{n} stream subscriptions on fake Mastodon");
        crate::fakes::wait_until(timeout, &what, || {
            let c = self.stream_counts();
            c.subscriptions.len() + c.rejected.len() >= n
        })
        .await;
    }
}

/// `GET /api/v1/streaming`: refuse, or upgrade and serve the socket.
pub(super) async fn upgrade(State(shared): State<Arc<Shared>>, mut req: Request) -> Response {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    shared
        .requests
        .record(("GET".to_string(), path_and_query.clone()));
    let path = req.uri().path().to_string();
    let fault = shared.faults.take(|r| r.matches("GET", &path));
    if let Some(refusal) = Fault::play(fault).await {
        let Refusal { retry_after, .. } = refusal;
        let mut resp = refusal.response(|code| plain(code, "Error"));
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        return resp;
    }
    let hub = &shared.hub;
    if !hub.state().enabled {
        return plain(404, "Not Found");
    }
    let query = query_pairs(req.uri().query().unwrap_or(""));
    let param = |k: &str| query.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    let protocol = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let token = param("access_token")
        .or_else(|| protocol.clone())
        .or_else(|| bearer(req.headers()));
    let refusal = {
        let mut st = hub.state();
        let said = match (token.as_deref(), &st.refuse_token) {
            (None, _) => Some("Missing access token".to_string()),
            (Some(TOKEN), None) => None,
            (Some(TOKEN), Some(said)) => Some(said.clone()),
            (Some(_), _) => Some("Invalid access token".to_string()),
        };
        if said.is_some() {
            st.counts.refused += 1;
        }
        said
    };
    if let Some(said) = refusal {
        let mut resp = plain(401, "Unauthorized");
        // A header value cannot hold every byte a test may script; what it can is sent.
        let value = HeaderValue::from_str(&said)
            .unwrap_or_else(|_| HeaderValue::from_static("Invalid access token"));
        resp.headers_mut().insert("x-error-message", value);
        return resp;
    }
    let is_upgrade = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return plain(400, "Bad Request");
    };
    if !is_upgrade {
        return plain(400, "Bad Request");
    }
    let first = match (param("stream").as_deref(), param("tag")) {
        (None, _) => None,
        (Some("hashtag"), Some(tag)) => Some(format!("hashtag:{}", tag.to_lowercase())),
        (Some(s), _) => Some(s.to_string()),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let shared_task = shared.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        serve(shared_task, socket, first).await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert("upgrade", HeaderValue::from_static("websocket"));
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", v);
    }
    if let Some(v) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        headers.insert("sec-websocket-protocol", v);
    }
    resp
}

fn plain(code: u16, text: &'static str) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// Which subscriptions a server takes: Mastodon every documented stream name (hashtags
/// with a tag); GoToSocial, in-socket, only its status timelines.
fn takes(flavour: StreamFlavour, at_connect: bool, name: &str) -> bool {
    const MASTODON: &[&str] = &[
        "user",
        "user:notification",
        "public",
        "public:media",
        "public:local",
        "public:local:media",
        "public:remote",
        "public:remote:media",
        "direct",
        "list",
    ];
    match flavour {
        StreamFlavour::Mastodon => {
            MASTODON.contains(&name)
                || name.strip_prefix("hashtag:").is_some_and(|t| !t.is_empty())
                || name
                    .strip_prefix("hashtag:local:")
                    .is_some_and(|t| !t.is_empty())
        }
        // At connect GoToSocial opens whatever stream type it is given (hashtags get
        // nothing published); in-socket it takes only the status timelines.
        StreamFlavour::GoToSocial if at_connect => true,
        StreamFlavour::GoToSocial => {
            ["public:local", "public", "user", "direct", "list"].contains(&name)
        }
    }
}

/// Take (or refuse) one subscription for socket `id`; the frame to answer with, if any.
fn subscribe(hub: &Hub, id: u64, name: String, at_connect: bool, on: bool) -> Option<String> {
    let mut st = hub.state();
    let flavour = st.flavour;
    if !takes(flavour, at_connect, &name) {
        st.counts.rejected.push(name);
        return (flavour == StreamFlavour::Mastodon)
            .then(|| json!({"error": "Unknown stream type", "status": 400}).to_string());
    }
    if on {
        st.counts.subscriptions.push(name.clone());
    }
    if let Some(socket) = st.sockets.iter_mut().find(|s| s.id == id) {
        if on {
            socket.subscriptions.insert(name);
        } else {
            socket.subscriptions.remove(&name);
        }
    }
    None
}

/// A client's `{"type":"subscribe","stream":…}` frame, as the subscription it names.
fn requested(text: &str) -> Option<(bool, String)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let on = match v.get("type")?.as_str()? {
        "subscribe" => true,
        "unsubscribe" => false,
        _ => return None,
    };
    let stream = v.get("stream")?.as_str()?;
    let name = match (stream, v.get("tag").and_then(Value::as_str)) {
        ("hashtag", Some(tag)) => format!("hashtag:{}", tag.to_lowercase()),
        ("hashtag:local", Some(tag)) => format!("hashtag:local:{}", tag.to_lowercase()),
        (other, _) => other.to_string(),
    };
    Some((on, name))
}

async fn serve<S>(shared: Arc<Shared>, mut socket: WebSocketStream<S>, first: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hub = &shared.hub;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, ping_every) = {
        let mut st = hub.state();
        st.next_id += 1;
        st.counts.connections += 1;
        let id = st.next_id;
        st.sockets.push(Socket {
            id,
            subscriptions: BTreeSet::new(),
            tx,
        });
        (id, st.ping_every)
    };
    if let Some(name) = first {
        if let Some(error) = subscribe(hub, id, name, true, true) {
            let _ = socket.send(Message::text(error)).await;
        }
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some((on, name)) = requested(text.as_str()) {
                        if let Some(error) = subscribe(hub, id, name, false, on) {
                            if socket.send(Message::text(error)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            command = rx.recv() => match command {
                Some(Command::Text(text)) => {
                    if socket.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Command::Binary(bytes)) => {
                    if socket.send(Message::binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Some(Command::Cut(text)) => {
                    let half = text.len() / 2;
                    let frame = Frame::message(text.into_bytes()[..half].to_vec(), OpCode::Data(Data::Text), false);
                    let _ = socket.send(Message::Frame(frame)).await;
                    break;
                }
                Some(Command::Close(code, reason)) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                Some(Command::Drop) | None => break,
            },
            _ = ping.tick() => {
                if !hub.state().quiet && socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    hub.state().sockets.retain(|s| s.id != id);
    // Unless a close frame was sent above, the TCP connection simply ends.
    drop(socket);
}
