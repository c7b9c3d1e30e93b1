//! Self-tests of the fake Mastodon's streaming API, driven by a plain websocket client
//! (tokio-tungstenite) and, where a frame must be seen byte by byte, by raw TCP: it
//! speaks the wire format Mastodon documents and GoToSocial serves.

use crate::fakes::mastodon::streaming::StreamFlavour;
use crate::fakes::mastodon::{FakeMastodon, TOKEN};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

async fn open(
    fake: &FakeMastodon,
    query: &str,
    header: Option<(&str, &str)>,
) -> Result<Ws, tungstenite::Error> {
    let mut request = format!("{}/api/v1/streaming{query}", fake.stream_url())
        .into_client_request()
        .unwrap();
    if let Some((name, value)) = header {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// An upgrade with the right token in `Authorization: Bearer`.
async fn try_bearer(fake: &FakeMastodon, query: &str) -> Result<Ws, tungstenite::Error> {
    let bearer = format!("Bearer {TOKEN}");
    open(fake, query, Some(("authorization", &bearer))).await
}

async fn open_bearer(fake: &FakeMastodon, query: &str) -> Ws {
    try_bearer(fake, query).await.expect("upgrade")
}

/// A client frame, as JSON text.
async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

async fn subscribe_hashtag(ws: &mut Ws, tag: &str) {
    send(
        ws,
        json!({"type": "subscribe", "stream": "hashtag", "tag": tag}),
    )
    .await;
}

/// The next text frame as JSON (pings are skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON text frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// No text frame for `d`.
async fn silent_for(ws: &mut Ws, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg.expect("frame") {
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

fn refused_with(result: Result<Ws, tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tungstenite::Error::Http(resp)) => (
            resp.status().as_u16(),
            resp.headers()
                .get("x-error-message")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        ),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the upgrade succeeded"),
    }
}

fn payload(envelope: &Value) -> Value {
    let text = envelope["payload"]
        .as_str()
        .expect("payload is a JSON string");
    serde_json::from_str(text).expect("payload parses")
}

async fn rest(fake: &FakeMastodon, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", fake.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_upgrade_needs_the_token_in_a_header_the_query_or_the_subprotocol() {
    let fake = FakeMastodon::start().await;
    assert_eq!(
        refused_with(open(&fake, "?stream=user:notification", None).await),
        (401, "Missing access token".into())
    );
    assert_eq!(
        refused_with(open(&fake, "", Some(("authorization", "Bearer nope"))).await),
        (401, "Invalid access token".into())
    );
    open(&fake, &format!("?access_token={TOKEN}"), None)
        .await
        .expect("query token");
    // The subprotocol token is echoed back, as GoToSocial and Mastodon do (the client
    // checks the echo).
    open(&fake, "", Some(("sec-websocket-protocol", TOKEN)))
        .await
        .expect("subprotocol token");
    open_bearer(&fake, "").await;
    fake.refuse_stream_token(Some("This method requires an authenticated user"));
    assert_eq!(
        refused_with(try_bearer(&fake, "").await),
        (401, "This method requires an authenticated user".into())
    );
    let counts = fake.stream_counts();
    assert_eq!((counts.connections, counts.refused), (3, 3));
}

#[tokio::test]
async fn a_new_mention_is_pushed_as_an_envelope_whose_payload_is_the_rest_entity_as_a_string() {
    let fake = FakeMastodon::start().await;
    let mut ws = open_bearer(&fake, "?stream=user:notification").await;
    fake.wait_for_subscriptions(1, WAIT).await;
    let ids = fake.add_mention("alice", "hello");
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["stream"], json!(["user:notification"]));
    assert_eq!(envelope["event"], "notification");
    let notification = payload(&envelope);
    assert_eq!(notification["type"], "mention");
    assert_eq!(notification["status"]["id"], ids.status_id.as_str());
    let from_rest = rest(
        &fake,
        &format!("/api/v1/notifications/{}", ids.notification_id),
    )
    .await;
    assert_eq!(notification, from_rest);
    // A filtered mention is not pushed (the poll finds it with include_filtered).
    fake.mention("stranger", "hi").filtered().add();
    silent_for(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn in_socket_subscriptions_follow_the_documented_frames() {
    let fake = FakeMastodon::start().await;
    let mut ws = open_bearer(&fake, "").await;
    subscribe_hashtag(&mut ws, "Brand").await;
    fake.wait_for_subscriptions(1, WAIT).await;
    // Not subscribed to notifications: a mention is not pushed here.
    fake.add_mention("alice", "no hashtag");
    let id = fake.add_status("carol", "the #brand app is down");
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["stream"], json!(["hashtag", "brand"]));
    assert_eq!(envelope["event"], "update");
    assert_eq!(
        payload(&envelope),
        rest(&fake, &format!("/api/v1/statuses/{id}")).await
    );
    send(
        &mut ws,
        json!({"type": "unsubscribe", "stream": "hashtag", "tag": "brand"}),
    )
    .await;
    send(&mut ws, json!({"type": "subscribe", "stream": "nonsense"})).await;
    let error = next_json(&mut ws).await;
    assert!(error["error"].is_string(), "{error}");
    fake.add_status("carol", "#brand again");
    silent_for(&mut ws, Duration::from_millis(300)).await;
    let counts = fake.stream_counts();
    assert_eq!(counts.subscriptions, vec!["hashtag:brand"]);
    assert_eq!(counts.rejected, vec!["nonsense"]);
}

#[tokio::test]
async fn the_gotosocial_flavour_tags_notifications_twice_and_has_no_hashtag_stream() {
    let fake = FakeMastodon::start().await;
    fake.set_stream_flavour(StreamFlavour::GoToSocial);
    let instance = reqwest::get(format!("{}/api/v2/instance", fake.url()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(instance["source_url"]
        .as_str()
        .unwrap()
        .contains("gotosocial"));
    let mut ws = open_bearer(&fake, "?stream=user:notification").await;
    // GoToSocial takes no hashtag subscription in-socket, and says nothing about it.
    subscribe_hashtag(&mut ws, "brand").await;
    fake.wait_for_subscriptions(2, WAIT).await;
    fake.add_status("carol", "#brand down");
    let ids = fake.add_mention("alice", "hi");
    let envelope = next_json(&mut ws).await;
    assert_eq!(envelope["stream"], json!(["user:notification", "user"]));
    assert_eq!(payload(&envelope)["status"]["id"], ids.status_id.as_str());
    let counts = fake.stream_counts();
    assert_eq!(counts.rejected, vec!["hashtag:brand"]);
    // Even a hashtag stream opened at connect gets nothing published.
    let mut tagged = open_bearer(&fake, "?stream=hashtag&tag=brand").await;
    fake.add_status("carol", "#brand still down");
    silent_for(&mut tagged, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn pings_come_every_interval_and_stop_while_quiet_with_the_socket_kept_open() {
    let fake = FakeMastodon::start().await;
    fake.set_stream_ping_every(Duration::from_millis(100));
    let mut ws = open_bearer(&fake, "?stream=user:notification").await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(550);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        pings += matches!(msg, Message::Ping(_)) as u32;
    }
    assert!((2..=7).contains(&pings), "{pings} pings in 550 ms");
    fake.set_stream_quiet(true);
    fake.add_mention("alice", "lost while quiet");
    let quiet = tokio::time::timeout(Duration::from_millis(400), ws.next()).await;
    assert!(quiet.is_err(), "expected nothing at all, got {quiet:?}");
    assert_eq!(fake.stream_counts().open, 1);
    fake.set_stream_quiet(false);
    let ids = fake.add_mention("alice", "back");
    assert_eq!(
        payload(&next_json(&mut ws).await)["status"]["id"],
        ids.status_id.as_str()
    );
}

#[tokio::test]
async fn without_streaming_the_instance_names_no_url_and_the_route_is_404() {
    let fake = FakeMastodon::start().await;
    let instance = |fake: FakeMastodon| async move {
        reqwest::get(format!("{}/api/v2/instance", fake.url()))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(
        instance(fake.clone()).await["configuration"]["urls"]["streaming"],
        fake.stream_url().as_str()
    );
    fake.set_streaming(false);
    let v = instance(fake.clone()).await;
    assert!(v["configuration"]["urls"].get("streaming").is_none(), "{v}");
    assert_eq!(refused_with(try_bearer(&fake, "").await).0, 404);
}

#[tokio::test]
async fn drops_end_the_socket_without_a_close_frame_and_closes_send_one() {
    let fake = FakeMastodon::start().await;
    let mut ws = open_bearer(&fake, "?stream=user:notification").await;
    fake.wait_for_streams(1, WAIT).await;
    fake.drop_streams();
    match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        None | Some(Err(_)) => {}
        Some(Ok(msg)) => panic!("expected the connection to end abruptly, got {msg:?}"),
    }
    let mut ws = open_bearer(&fake, "?stream=user:notification").await;
    fake.wait_for_streams(1, WAIT).await;
    fake.close_streams(1001, "bye");
    match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (1001, "bye")
            )
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cut_event_ends_mid_frame_on_the_wire_and_stays_in_the_rest_api() {
    let fake = FakeMastodon::start().await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", fake.port()))
        .await
        .unwrap();
    let request = format!(
        "GET /api/v1/streaming?stream=user:notification HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // RFC 6455's own example key and answer.
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    fake.wait_for_subscriptions(1, WAIT).await;
    fake.cut_next_stream_events(1);
    let ids = fake.add_mention("alice", "cut in half");
    let mut wire = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut wire))
        .await
        .expect("the fake ends the connection")
        .unwrap();
    // The first fragment of a text message (FIN unset, opcode 1, a 16-bit length),
    // then the end of the stream: the continuation never comes.
    assert_eq!(wire[0], 0x01, "{:02x?}", &wire[..4]);
    assert_eq!(wire[1], 126);
    let length = u16::from_be_bytes([wire[2], wire[3]]) as usize;
    assert_eq!(wire.len() - 4, length, "nothing after the fragment");
    let half = String::from_utf8_lossy(&wire[4..]);
    assert!(half.starts_with("{\"event\":\"notification\""), "{half}");
    assert!(
        serde_json::from_str::<Value>(&half).is_err(),
        "half an envelope: {half}"
    );
    let listed = rest(&fake, "/api/v1/notifications?types[]=mention").await;
    assert_eq!(listed[0]["status"]["id"], ids.status_id.as_str());
}
