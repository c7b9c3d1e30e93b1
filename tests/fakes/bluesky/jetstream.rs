//! The fake's Jetstream: `GET /subscribe` upgraded to a websocket that carries the
//! network's events as Jetstream's JSON (bluesky-social/jetstream README, "legacy"
//! `/subscribe`): `{"did", "time_us", "kind": "commit", "commit": {"rev", "operation",
//! "collection", "rkey", "record", "cid"}}` (a delete has no record or cid),
//! `{"kind": "identity", "identity": {"did", "handle", "seq", "time"}}` and
//! `{"kind": "account", "account": {"active", "did", "seq", "time", "status"?}}`.
//!
//! Every post the fake PDS learns of (a test's post, a brand reply, a like) is also an
//! event here, so a post reaches a client both by the XRPC poll and by the stream, as on
//! the real network. `time_us` strictly increases. The query is honoured: repeated
//! `wantedCollections` (an NSID or a prefix like `app.bsky.*`; commits only, identity
//! and account events reach everyone), `wantedDids` (every kind), `cursor` (replay from
//! that `time_us` out of the events kept in memory, the oldest kept when it is older,
//! live when absent or in the future) and `maxMessageSizeBytes` (larger events are left
//! out). A malformed parameter is refused with 400 before the upgrade, as Jetstream does.
//! Not done: `compress=true` (zstd) is refused with 400, and `requireHello` is ignored.

use super::super::scaffold::{query_pairs, Route};
use super::super::{wait_until, Fault};
use super::{lock, ts, FakeBluesky, Shared};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Events kept for replay (the real service keeps about 36 hours).
const RETAIN: usize = 200_000;

/// One event as the fake sent (or would send) it.
#[derive(Clone, Debug)]
pub struct JetstreamEvent {
    pub time_us: u64,
    pub did: String,
    /// `commit`, `identity` or `account`.
    pub kind: &'static str,
    /// A commit's collection.
    pub collection: Option<String>,
    pub json: Arc<str>,
}

/// What one subscription asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetstreamConnect {
    pub cursor: Option<u64>,
    pub wanted_collections: Vec<String>,
    pub wanted_dids: Vec<String>,
    pub max_message_size: Option<u64>,
    pub compress: bool,
    pub user_agent: Option<String>,
    /// An `Authorization` header came along (Jetstream needs none; none must go there).
    pub authorization: bool,
    /// The status the upgrade was refused with (None: subscribed).
    pub refused: Option<u16>,
}

#[derive(Clone, Debug, Default)]
struct Filter {
    collections: Vec<String>,
    dids: Vec<String>,
    max_size: u64,
}

impl Filter {
    fn wants(&self, e: &JetstreamEvent) -> bool {
        let collection_ok = match (&e.collection, self.collections.is_empty()) {
            (_, true) | (None, _) => true,
            (Some(c), false) => self.collections.iter().any(|w| match w.strip_suffix('*') {
                Some(prefix) => c.starts_with(prefix),
                None => w == c,
            }),
        };
        collection_ok
            && (self.dids.is_empty() || self.dids.contains(&e.did))
            && (self.max_size == 0 || e.json.len() as u64 <= self.max_size)
    }
}

enum Cmd {
    Text(Arc<str>),
    Binary(Vec<u8>),
    /// Cut the TCP connection without a close frame.
    Drop,
    Close(u16, String),
}

struct Conn {
    id: u64,
    filter: Filter,
    tx: mpsc::UnboundedSender<Cmd>,
    /// Frames still to send before the connection is cut (None: no cut planned).
    cut_after: Option<usize>,
}

/// The stream's state, kept in the PDS state so a post and its event are one step.
pub(super) struct Firehose {
    events: VecDeque<JetstreamEvent>,
    last_time_us: u64,
    conns: Vec<Conn>,
    connects: Vec<JetstreamConnect>,
    next_conn: u64,
    seq: u64,
}

impl Firehose {
    pub(super) fn new() -> Firehose {
        Firehose {
            events: VecDeque::new(),
            last_time_us: 0,
            conns: Vec::new(),
            connects: Vec::new(),
            next_conn: 0,
            seq: 0,
        }
    }

    fn next_time_us(&mut self) -> u64 {
        let now = Utc::now().timestamp_micros().max(0) as u64;
        self.last_time_us = now.max(self.last_time_us + 1);
        self.last_time_us
    }

    fn emit(&mut self, did: &str, kind: &'static str, collection: Option<&str>, body: Value) {
        let time_us = self.next_time_us();
        let mut event = json!({"did": did, "time_us": time_us, "kind": kind});
        event[kind] = body;
        let e = JetstreamEvent {
            time_us,
            did: did.to_string(),
            kind,
            collection: collection.map(str::to_string),
            json: event.to_string().into(),
        };
        self.broadcast(&e);
        self.events.push_back(e);
        if self.events.len() > RETAIN {
            self.events.pop_front();
        }
    }

    fn broadcast(&mut self, e: &JetstreamEvent) {
        self.conns.retain_mut(|c| {
            if !c.filter.wants(e) {
                return true;
            }
            let _ = c.tx.send(Cmd::Text(e.json.clone()));
            match c.cut_after.as_mut() {
                Some(left) if *left <= 1 => {
                    let _ = c.tx.send(Cmd::Drop);
                    false
                }
                Some(left) => {
                    *left -= 1;
                    true
                }
                None => true,
            }
        });
    }

    /// A commit of `did`'s repo.
    pub(super) fn commit(
        &mut self,
        did: &str,
        operation: &str,
        collection: &str,
        rkey: &str,
        rev: &str,
        record: Option<(&Value, &str)>,
    ) {
        let mut commit =
            json!({"rev": rev, "operation": operation, "collection": collection, "rkey": rkey});
        if let Some((record, cid)) = record {
            commit["record"] = record.clone();
            commit["cid"] = json!(cid);
        }
        self.emit(did, "commit", Some(collection), commit);
    }

    pub(super) fn identity(&mut self, did: &str, handle: Option<&str>) {
        self.seq += 1;
        let mut identity = json!({"did": did, "seq": self.seq, "time": ts(&Utc::now())});
        if let Some(h) = handle {
            identity["handle"] = json!(h);
        }
        self.emit(did, "identity", None, identity);
    }

    pub(super) fn account(&mut self, did: &str, active: bool, status: Option<&str>) {
        self.seq += 1;
        let mut account =
            json!({"active": active, "did": did, "seq": self.seq, "time": ts(&Utc::now())});
        if let Some(s) = status {
            account["status"] = json!(s);
        }
        self.emit(did, "account", None, account);
    }

    /// Registers a subscriber; returns its id and what it is owed from `cursor` on.
    fn subscribe(
        &mut self,
        filter: Filter,
        cursor: Option<u64>,
        tx: mpsc::UnboundedSender<Cmd>,
    ) -> (u64, Vec<Arc<str>>) {
        let replay = match cursor {
            Some(c) if c <= self.last_time_us => self
                .events
                .iter()
                .filter(|e| e.time_us >= c && filter.wants(e))
                .map(|e| e.json.clone())
                .collect(),
            _ => Vec::new(),
        };
        self.next_conn += 1;
        let id = self.next_conn;
        self.conns.push(Conn {
            id,
            filter,
            tx,
            cut_after: None,
        });
        (id, replay)
    }
}

/// What the sockets share outside the PDS state: whether the stream has gone quiet, what
/// it sent, the refusals a test scripted for the next upgrades.
pub(super) struct Sockets {
    quiet: watch::Sender<bool>,
    bytes: AtomicU64,
    frames: AtomicU64,
    faults: super::FaultQueue,
}

impl Sockets {
    pub(super) fn new() -> Sockets {
        Sockets {
            quiet: watch::channel(false).0,
            bytes: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            faults: super::FaultQueue::default(),
        }
    }
}

fn refuse(code: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        message.to_string(),
    )
        .into_response()
}

fn is_nsid_or_prefix(s: &str) -> bool {
    let body = s.strip_suffix(".*").unwrap_or(s);
    let parts: Vec<&str> = body.split('.').collect();
    parts.len() >= if s.ends_with(".*") { 2 } else { 3 }
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `GET /subscribe`.
pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let pairs = query_pairs(query.as_deref().unwrap_or(""));
    let all = |k: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one = |k: &str| super::param(&pairs, k).map(str::to_string);
    let mut connect = JetstreamConnect {
        cursor: None,
        wanted_collections: all("wantedCollections"),
        wanted_dids: all("wantedDids"),
        max_message_size: None,
        compress: one("compress").as_deref() == Some("true"),
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        authorization: headers.contains_key("authorization"),
        refused: None,
    };
    let refusal = 'check: {
        if let Some(c) = one("cursor") {
            match c.parse::<i64>() {
                Ok(c) => connect.cursor = Some(c.max(0) as u64),
                Err(_) => break 'check Some((400, "invalid cursor".to_string())),
            }
        }
        if let Some(m) = one("maxMessageSizeBytes") {
            match m.parse::<i64>() {
                Ok(m) => connect.max_message_size = Some(m.max(0) as u64),
                Err(_) => break 'check Some((400, "invalid maxMessageSizeBytes".to_string())),
            }
        }
        if connect.wanted_collections.len() > 100 {
            break 'check Some((400, "too many wanted collections (max 100)".to_string()));
        }
        if let Some(bad) = connect
            .wanted_collections
            .iter()
            .find(|c| !is_nsid_or_prefix(c))
        {
            break 'check Some((400, format!("invalid collection: {bad}")));
        }
        if connect.wanted_dids.len() > 10_000 {
            break 'check Some((400, "too many wanted DIDs (max 10,000)".to_string()));
        }
        if let Some(bad) = connect.wanted_dids.iter().find(|d| !d.starts_with("did:")) {
            break 'check Some((400, format!("invalid did: {bad}")));
        }
        if connect.compress {
            break 'check Some((400, "this fake does not compress".to_string()));
        }
        None
    };
    let fault = shared.jetstream.faults.take(|r| r.prefix == "/subscribe");
    let scripted = Fault::play(fault).await;
    if let Some(r) = &scripted {
        connect.refused = Some(r.code);
    } else if let Some((code, _)) = &refusal {
        connect.refused = Some(*code);
    }
    lock(&shared).firehose.connects.push(connect.clone());
    if let Some(r) = scripted {
        let mut resp = refuse(
            r.code,
            if r.body.is_empty() {
                "refused"
            } else {
                &r.body
            },
        );
        if let Some(secs) = r.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        return resp;
    }
    if let Some((code, message)) = refusal {
        return refuse(code, &message);
    }
    let filter = Filter {
        collections: connect.wanted_collections,
        dids: connect.wanted_dids,
        max_size: connect.max_message_size.unwrap_or(0),
    };
    ws.on_upgrade(move |socket| serve(shared, socket, filter, connect.cursor))
}

async fn serve(shared: Arc<Shared>, mut socket: WebSocket, filter: Filter, cursor: Option<u64>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, replay) = lock(&shared).firehose.subscribe(filter, cursor, tx);
    let mut held: VecDeque<Cmd> = replay.into_iter().map(Cmd::Text).collect();
    let mut quiet = shared.jetstream.quiet.subscribe();
    'open: loop {
        while !*quiet.borrow_and_update() {
            let Some(cmd) = held.pop_front() else { break };
            let sent = match cmd {
                Cmd::Text(text) => {
                    shared
                        .jetstream
                        .bytes
                        .fetch_add(text.len() as u64, Ordering::Relaxed);
                    shared.jetstream.frames.fetch_add(1, Ordering::Relaxed);
                    socket.send(WsMessage::text(text.to_string())).await
                }
                Cmd::Binary(bytes) => socket.send(WsMessage::binary(bytes)).await,
                Cmd::Close(code, reason) => {
                    let _ = socket
                        .send(WsMessage::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break 'open;
                }
                Cmd::Drop => break 'open,
            };
            if sent.is_err() {
                break 'open;
            }
        }
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None | Some(Cmd::Drop) => break 'open,
                Some(cmd) => held.push_back(cmd),
            },
            changed = quiet.changed() => if changed.is_err() { break 'open },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => break 'open,
                Some(Ok(_)) => {} // pings are answered by the websocket layer
            },
        }
    }
    lock(&shared).firehose.conns.retain(|c| c.id != id);
    // Dropping the socket cuts the connection; a close frame was sent only if asked for.
}

impl FakeBluesky {
    /// `ws://127.0.0.1:PORT/subscribe`.
    pub fn jetstream_url(&self) -> String {
        format!("ws://127.0.0.1:{}/subscribe", self.shared.server.port())
    }

    /// Every subscription attempt so far, in order (refused ones too).
    pub fn jetstream_connects(&self) -> Vec<JetstreamConnect> {
        lock(&self.shared).firehose.connects.clone()
    }

    /// Subscriptions open right now.
    pub fn jetstream_open_sockets(&self) -> usize {
        lock(&self.shared).firehose.conns.len()
    }

    /// Waits until `n` subscriptions are open; panics after `timeout`.
    pub async fn wait_for_jetstream_sockets(&self, n: usize, timeout: Duration) {
        let what = format!("{n} open Jetstream subscriptions");
        wait_until(timeout, &what, || self.jetstream_open_sockets() == n).await;
    }

    /// Every event kept, oldest first.
    pub fn jetstream_events(&self) -> Vec<JetstreamEvent> {
        lock(&self.shared).firehose.events.iter().cloned().collect()
    }

    /// The `time_us` of the newest event (0: none yet).
    pub fn jetstream_last_time_us(&self) -> u64 {
        lock(&self.shared).firehose.last_time_us
    }

    /// Bytes and frames of events sent on every socket so far (raw frames aside).
    pub fn jetstream_sent(&self) -> (u64, u64) {
        (
            self.shared.jetstream.bytes.load(Ordering::Relaxed),
            self.shared.jetstream.frames.load(Ordering::Relaxed),
        )
    }

    /// The next upgrades of `/subscribe` draw these faults (a status is answered as
    /// Jetstream would, in plain text, with `Retry-After` when given).
    pub fn fail_next_subscribe(&self, faults: Vec<Fault>) {
        self.shared
            .jetstream
            .faults
            .push(Route::named("/subscribe"), faults);
    }

    /// A post event that only Jetstream carries (the PDS does not keep it: noise from
    /// the rest of the network). Returns (uri, cid) of the post it claims.
    pub fn emit_post(&self, did: &str, record: &Value) -> (String, String) {
        let mut st = lock(&self.shared);
        let rkey = st.tid();
        let rev = st.tid();
        let cid = super::cid_of(record);
        st.firehose.commit(
            did,
            "create",
            super::POST,
            &rkey,
            &rev,
            Some((record, &cid)),
        );
        (format!("at://{did}/{}/{rkey}", super::POST), cid)
    }

    /// A post by `author_handle` with exactly this record (no validation, no
    /// notification): a post the search finds and the stream carries.
    pub fn add_post_record(&self, author_handle: &str, record: Value) -> (String, String) {
        let mut st = lock(&self.shared);
        let i = st.insert_post(author_handle, record);
        (st.posts[i].uri.clone(), st.posts[i].cid.clone())
    }

    /// A post by `author_handle` quoting `quoted_uri` (`app.bsky.embed.record`),
    /// notified to the brand as `quote` when the quoted post is the brand's.
    pub fn add_quote(&self, author_handle: &str, quoted_uri: &str, text: &str) -> (String, String) {
        let mut st = lock(&self.shared);
        let quoted = st.known_post(quoted_uri, "add_quote");
        let mut record = st.post_record(text, None, false);
        record["embed"] = json!({"$type": "app.bsky.embed.record",
                                  "record": {"uri": quoted.uri, "cid": quoted.cid}});
        let i = st.insert_post(author_handle, record);
        let (uri, cid) = (st.posts[i].uri.clone(), st.posts[i].cid.clone());
        if quoted.author == st.brand_did() {
            st.notify(&uri, "quote", Some(quoted.uri.clone()));
        }
        (uri, cid)
    }

    /// Deletes a post: gone from the PDS, a `delete` commit on the stream.
    pub fn delete_post(&self, uri: &str) {
        let mut st = lock(&self.shared);
        let Some(i) = st.posts.iter().position(|p| p.uri == uri) else {
            panic!("delete_post: no post {uri}");
        };
        let p = st.posts.remove(i);
        let rev = st.tid();
        st.firehose
            .commit(&p.author, "delete", &p.collection, &p.rkey, &rev, None);
    }

    /// An account's handle changes: profiles say so, and an `identity` event goes out.
    pub fn change_handle(&self, handle: &str, new_handle: &str) {
        let mut st = lock(&self.shared);
        let did = st.ensure_account(handle);
        if let Some(a) = st.accounts.iter_mut().find(|a| a.did == did) {
            a.handle = new_handle.to_string();
        }
        st.firehose.identity(&did, Some(new_handle));
    }

    /// An `identity` event with any handle (or none), changing nothing else.
    pub fn emit_identity(&self, did: &str, handle: Option<&str>) {
        lock(&self.shared).firehose.identity(did, handle);
    }

    /// An `account` event (`status`: `deactivated`, `takendown`, ...).
    pub fn emit_account(&self, did: &str, active: bool, status: Option<&str>) {
        lock(&self.shared).firehose.account(did, active, status);
    }

    /// A raw text frame on every open socket, whatever it says (not kept for replay).
    pub fn push_jetstream_frame(&self, text: &str) {
        let text: Arc<str> = text.into();
        for c in &lock(&self.shared).firehose.conns {
            let _ = c.tx.send(Cmd::Text(text.clone()));
        }
    }

    /// A binary frame on every open socket (Jetstream sends them only when asked to
    /// compress).
    pub fn push_jetstream_binary(&self, bytes: &[u8]) {
        for c in &lock(&self.shared).firehose.conns {
            let _ = c.tx.send(Cmd::Binary(bytes.to_vec()));
        }
    }

    /// Cuts every open socket without a close frame (a network failure).
    pub fn drop_jetstream_sockets(&self) {
        for c in lock(&self.shared).firehose.conns.drain(..) {
            let _ = c.tx.send(Cmd::Drop);
        }
    }

    /// Closes every open socket with a close frame.
    pub fn close_jetstream_sockets(&self, code: u16, reason: &str) {
        for c in lock(&self.shared).firehose.conns.drain(..) {
            let _ = c.tx.send(Cmd::Close(code, reason.to_string()));
        }
    }

    /// Every open socket is cut (no close frame) after `frames` more events reach it:
    /// the rest of a burst is kept for replay but never arrives on that connection.
    pub fn cut_jetstream_after(&self, frames: usize) {
        let mut st = lock(&self.shared);
        if frames == 0 {
            for c in st.firehose.conns.drain(..) {
                let _ = c.tx.send(Cmd::Drop);
            }
            return;
        }
        for c in st.firehose.conns.iter_mut() {
            c.cut_after = Some(frames);
        }
    }

    /// While quiet, open sockets get nothing (what arrives waits) but stay open, like a
    /// stalled server; speaking again delivers what waited.
    pub fn set_jetstream_quiet(&self, quiet: bool) {
        self.shared.jetstream.quiet.send_replace(quiet);
    }
}
