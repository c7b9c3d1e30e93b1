//! The fake Jetstream checked with a plain websocket client: the event shapes of
//! Jetstream's JSON, `time_us` order, the query parameters it honours, and the test
//! controls (quiet, cut after a number of frames), plus `getProfiles` on the fake PDS.

use crate::fakes::bluesky::{FakeBluesky, BRAND_HANDLE};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(fake: &FakeBluesky, query: &str) -> Client {
    let url = format!("{}?{query}", fake.jetstream_url());
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("subscribed");
    ws
}

/// The only subscriber, once the fake has it.
async fn subscribed(fake: &FakeBluesky, query: &str) -> Client {
    let ws = subscribe(fake, query).await;
    fake.wait_for_jetstream_sockets(1, Duration::from_secs(5))
        .await;
    ws
}

/// The next text frame as JSON; None if nothing comes within `within`.
async fn next_event(ws: &mut Client, within: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(within, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn events(ws: &mut Client, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            next_event(ws, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{} of {n} events: {out:#?}", out.len())),
        );
    }
    out
}

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn jetstream_events_have_jetstreams_shapes_in_time_order() {
    let fake = FakeBluesky::start().await;
    let mut ws = subscribed(&fake, "").await;
    let alice = fake.did_of("alice.test");
    let (uri, cid) = fake.add_mention("alice.test", "hello");
    fake.add_like("bob.test", &uri);
    fake.delete_post(&uri);
    fake.change_handle("alice.test", "alice.example.com");
    fake.emit_account(&alice, false, Some("deactivated"));
    let got = events(&mut ws, 5).await;

    let create = &got[0];
    assert_eq!(create["did"], alice.as_str());
    assert_eq!(create["kind"], "commit");
    let commit = &create["commit"];
    assert_eq!(commit["operation"], "create");
    assert_eq!(commit["collection"], "app.bsky.feed.post");
    assert_eq!(
        format!(
            "at://{alice}/app.bsky.feed.post/{}",
            commit["rkey"].as_str().unwrap()
        ),
        uri
    );
    assert_eq!(commit["cid"], cid.as_str());
    assert_eq!(commit["record"]["text"], "@brand.test hello");
    assert_eq!(
        commit["record"]["facets"][0]["features"][0]["did"],
        fake.brand_did().as_str()
    );
    assert_eq!(commit["rev"].as_str().unwrap().len(), 13, "a TID");
    assert_eq!(got[1]["commit"]["collection"], "app.bsky.feed.like");
    let delete = &got[2]["commit"];
    assert_eq!(delete["operation"], "delete");
    assert!(delete.get("record").is_none() && delete.get("cid").is_none());
    assert_eq!(got[3]["kind"], "identity");
    assert_eq!(got[3]["identity"]["did"], alice.as_str());
    assert_eq!(got[3]["identity"]["handle"], "alice.example.com");
    assert!(got[3]["identity"]["seq"].is_u64() && got[3]["identity"]["time"].is_string());
    assert_eq!(got[4]["kind"], "account");
    assert_eq!(got[4]["account"]["active"], false);
    assert_eq!(got[4]["account"]["status"], "deactivated");

    let times: Vec<u64> = got.iter().map(|e| e["time_us"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let now = chrono::Utc::now().timestamp_micros() as u64;
    assert!(times[0] <= now && now - times[0] < 60_000_000, "unix µs");

    assert_eq!(fake.jetstream_events().len(), 5);
    assert_eq!(fake.jetstream_sent().1, 5);
}

#[tokio::test]
async fn jetstream_honours_wanted_collections_and_dids() {
    let fake = FakeBluesky::start().await;
    let alice = fake.did_of("alice.test");
    let mut posts = subscribe(&fake, "wantedCollections=app.bsky.feed.post").await;
    let mut feed = subscribe(&fake, "wantedCollections=app.bsky.feed.*").await;
    let mut bob_only = subscribe(&fake, &format!("wantedDids={}", fake.did_of("bob.test"))).await;
    fake.wait_for_jetstream_sockets(3, Duration::from_secs(5))
        .await;
    let (uri, _) = fake.add_post("alice.test", "hello");
    fake.add_like("bob.test", &uri);
    fake.emit_identity(&alice, Some("alice.test"));

    let got = events(&mut posts, 2).await;
    assert_eq!(got[0]["commit"]["collection"], "app.bsky.feed.post");
    assert_eq!(
        got[1]["kind"], "identity",
        "identity reaches every collection filter"
    );
    assert_eq!(next_event(&mut posts, SHORT).await, None);

    let got = events(&mut feed, 3).await;
    assert_eq!(got[1]["commit"]["collection"], "app.bsky.feed.like");

    let got = events(&mut bob_only, 1).await;
    assert_eq!(got[0]["did"], fake.did_of("bob.test").as_str());
    assert_eq!(
        next_event(&mut bob_only, SHORT).await,
        None,
        "not Alice's identity"
    );
}

#[tokio::test]
async fn jetstream_replays_from_a_cursor_and_is_live_without_one() {
    let fake = FakeBluesky::start().await;
    fake.add_post("alice.test", "one");
    fake.add_post("alice.test", "two");
    fake.add_post("alice.test", "three");
    let times: Vec<u64> = fake.jetstream_events().iter().map(|e| e.time_us).collect();

    let mut from_two = subscribe(&fake, &format!("cursor={}", times[1])).await;
    let got = events(&mut from_two, 2).await;
    assert_eq!(
        got[0]["commit"]["record"]["text"], "two",
        "from the cursor on, inclusive"
    );
    assert_eq!(got[1]["commit"]["record"]["text"], "three");

    let mut from_the_start = subscribe(&fake, "cursor=1").await;
    assert_eq!(
        events(&mut from_the_start, 3).await.len(),
        3,
        "older than kept: the oldest"
    );

    let mut live = subscribe(&fake, "").await;
    let mut future = subscribe(&fake, &format!("cursor={}", times[2] + 60_000_000)).await;
    assert_eq!(next_event(&mut live, SHORT).await, None);
    assert_eq!(next_event(&mut future, SHORT).await, None);
    fake.add_post("alice.test", "four");
    for ws in [&mut live, &mut future, &mut from_two] {
        assert_eq!(events(ws, 1).await[0]["commit"]["record"]["text"], "four");
    }
    let connects = fake.jetstream_connects();
    assert_eq!(connects[0].cursor, Some(times[1]));
    assert_eq!(connects[2].cursor, None);
}

#[tokio::test]
async fn jetstream_leaves_out_events_over_max_message_size_and_refuses_bad_queries() {
    let fake = FakeBluesky::start().await;
    let mut small = subscribed(&fake, "maxMessageSizeBytes=1000").await;
    fake.add_post("alice.test", &"long ".repeat(300));
    fake.add_post("alice.test", "short");
    let got = events(&mut small, 1).await;
    assert_eq!(got[0]["commit"]["record"]["text"], "short");

    for query in [
        "cursor=soon",
        "wantedCollections=not%20an%20nsid",
        "wantedDids=alice",
        "maxMessageSizeBytes=x",
        "compress=true",
    ] {
        let url = format!("{}?{query}", fake.jetstream_url());
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 400, "{query}")
            }
            other => panic!("{query}: {other:?}"),
        }
    }
    assert_eq!(fake.jetstream_connects().last().unwrap().refused, Some(400));
}

#[tokio::test]
async fn jetstream_can_go_quiet_and_cut_a_burst() {
    let fake = FakeBluesky::start().await;
    let mut ws = subscribed(&fake, "").await;
    fake.set_jetstream_quiet(true);
    fake.add_post("alice.test", "held");
    assert_eq!(next_event(&mut ws, SHORT).await, None, "quiet");
    assert_eq!(fake.jetstream_open_sockets(), 1, "but open");
    fake.set_jetstream_quiet(false);
    assert_eq!(
        events(&mut ws, 1).await[0]["commit"]["record"]["text"],
        "held"
    );

    fake.cut_jetstream_after(2);
    for i in 0..5 {
        fake.add_post("alice.test", &format!("burst {i}"));
    }
    assert_eq!(events(&mut ws, 2).await.len(), 2);
    match tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
    {
        None | Some(Err(_)) => {} // cut, no close frame
        other => panic!("expected the connection cut, got {other:?}"),
    }
    assert_eq!(
        fake.jetstream_events().len(),
        6,
        "the rest is kept for replay"
    );
}

/// A request's status and JSON body.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = request.send().await.expect("the fake answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn get_profiles_answers_known_actors_up_to_25() {
    let fake = FakeBluesky::start().await;
    let http = reqwest::Client::new();
    let xrpc = |nsid: &str| format!("{}/xrpc/{nsid}", fake.url());
    let (_, login) = answer(
        http.post(xrpc("com.atproto.server.createSession"))
            .json(&json!({"identifier": BRAND_HANDLE, "password": fake.app_password()})),
    )
    .await;
    let token = login["accessJwt"].as_str().unwrap().to_string();
    let alice = fake.did_of("alice.test");
    let get = |actors: Vec<String>| {
        let query: Vec<(&str, String)> = actors.into_iter().map(|a| ("actors", a)).collect();
        answer(
            http.get(xrpc("app.bsky.actor.getProfiles"))
                .bearer_auth(&token)
                .query(&query),
        )
    };
    let (status, found) = get(vec![alice.clone(), "nobody.test".into(), "bob.test".into()]).await;
    assert_eq!(status, 200);
    let profiles = found["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1, "unknown actors are left out: {found}");
    assert_eq!(profiles[0]["did"], alice.as_str());
    assert_eq!(profiles[0]["handle"], "alice.test");
    assert_eq!(profiles[0]["displayName"], "Alice");
    let (status, _) = get((0..26).map(|i| format!("u{i}.test")).collect()).await;
    assert_eq!(status, 400);
}
