//! The Mastodon source's stream, driven directly (`Source::stream().run()`) against the
//! fake Mastodon's streaming API: what a desk connected to it receives, and why each
//! connection ends. The runtime that reconnects and polls around it is tested elsewhere.

use crate::fakes::mastodon::streaming::StreamFlavour;
use crate::fakes::mastodon::{FakeMastodon, IdStyle, BRAND_ID};
use crate::fakes::Fault;
use crate::harness::canary_leaks;
use mentionbridge::config::{MastodonConfig, Secret};
use mentionbridge::domain::Mention;
use mentionbridge::ports::{MentionStream, Source, StreamError, StreamEvent};
use mentionbridge::sources::mastodon::Mastodon;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::instrument::WithSubscriber;

const WAIT: Duration = Duration::from_secs(5);

fn config(fake: &FakeMastodon, hashtags: &[&str], quiet: Duration) -> MastodonConfig {
    MastodonConfig {
        instance_url: fake.url(),
        access_token: Secret::new(fake.token()),
        poll_interval: Duration::from_secs(1),
        include_filtered: true,
        initial_backfill: 20,
        hashtags: hashtags.iter().map(|t| t.to_string()).collect(),
        streaming: true,
        reconcile_every: Duration::from_secs(300),
        stream_quiet: quiet,
    }
}

async fn source(fake: &FakeMastodon, hashtags: &[&str]) -> Mastodon {
    source_with(config(fake, hashtags, Duration::from_secs(70))).await
}

async fn source_with(config: MastodonConfig) -> Mastodon {
    Mastodon::connect(&config)
        .await
        .expect("connects to the fake")
}

/// Everything the stream logged while it ran, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// One `run` of the stream, its events as the desk would receive them.
struct Connection {
    events: mpsc::Receiver<StreamEvent>,
    ended: JoinHandle<StreamError>,
    logs: Logs,
}

fn run(stream: Arc<dyn MentionStream>) -> Connection {
    let (tx, events) = mpsc::channel(64);
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let ended = tokio::spawn(async move { stream.run(None, tx).await }.with_subscriber(subscriber));
    Connection {
        events,
        ended,
        logs,
    }
}

impl Connection {
    async fn next(&mut self) -> StreamEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("the stream is still running")
    }

    async fn connected(&mut self) {
        assert_eq!(self.next().await, StreamEvent::Connected);
    }

    async fn mention(&mut self) -> Mention {
        match self.next().await {
            StreamEvent::Mentions { mentions, cursor } => {
                assert_eq!(cursor, None, "Mastodon's stream has no position of its own");
                assert_eq!(mentions.len(), 1, "{mentions:?}");
                mentions.into_iter().next().unwrap()
            }
            other => panic!("expected a mention, got {other:?}"),
        }
    }

    /// Nothing arrives for `d` (the stream stays up and silent).
    async fn nothing_for(&mut self, d: Duration) {
        if let Ok(got) = tokio::time::timeout(d, self.events.recv()).await {
            panic!("expected nothing, got {got:?}");
        }
    }

    /// How the connection ended (within `within`), with every event left unread.
    async fn end(self, within: Duration) -> (StreamError, Vec<StreamEvent>, String) {
        let Connection {
            mut events,
            ended,
            logs,
        } = self;
        let error = tokio::time::timeout(within, ended)
            .await
            .unwrap_or_else(|_| panic!("the stream did not end within {within:?}"))
            .expect("run does not panic");
        let mut left = Vec::new();
        while let Ok(e) = events.try_recv() {
            left.push(e);
        }
        (error, left, logs.text())
    }
}

/// The mention the poll reads for the status `remote_id`.
async fn polled(source: &Mastodon, remote_id: &str) -> Mention {
    let batch = source.poll(None).await.expect("poll");
    batch
        .mentions
        .into_iter()
        .find(|m| m.remote_id == remote_id)
        .unwrap_or_else(|| panic!("the poll has no mention {remote_id}"))
}

fn stream_of(source: &Mastodon) -> Arc<dyn MentionStream> {
    source.stream().expect("streaming is on")
}

/// A connection that said `Connected` and whose socket the fake holds.
async fn connected(fake: &FakeMastodon, source: &Mastodon) -> Connection {
    let mut conn = run(stream_of(source));
    conn.connected().await;
    fake.wait_for_streams(1, WAIT).await;
    conn
}

/// The wait and the reason of a `Dropped`; anything else fails the test.
fn dropped(error: &StreamError) -> (Option<Duration>, &str) {
    match error {
        StreamError::Dropped { after, reason } => (*after, reason),
        other => panic!("expected Dropped, got {other:?}"),
    }
}

#[tokio::test]
async fn a_mention_arrives_after_connected_exactly_as_the_poll_reads_it() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &[]).await;
    let stream = stream_of(&source);
    assert_eq!(
        stream.describe(),
        format!("mastodon websocket {}/api/v1/streaming", fake.stream_url())
    );
    assert_eq!(stream.reconcile_every(), Duration::from_secs(300));
    let mut conn = run(stream.clone());
    conn.connected().await;
    let ids = fake.add_mention("alice", "where is my parcel? <!channel> @here <@U0ANA>");
    let streamed = conn.mention().await;
    assert_eq!(streamed.remote_id, ids.status_id);
    // Text from outside stays text: the surfaces' escaping layer renders it inert.
    assert!(
        streamed.text.contains("<!channel> @here <@U0ANA>"),
        "{}",
        streamed.text
    );
    let from_poll = polled(&source, &ids.status_id).await;
    assert_eq!(streamed, from_poll);
    assert_eq!(streamed.dedupe_keys(), from_poll.dedupe_keys());
    let counts = fake.stream_counts();
    assert_eq!(counts.connections, 1);
    assert_eq!(counts.subscriptions, vec!["user:notification".to_string()]);
    // The websocket was asked for with the bearer header, never a token in the query.
    let upgrade = fake
        .requests()
        .into_iter()
        .find(|(_, p)| p.starts_with("/api/v1/streaming"))
        .unwrap();
    assert_eq!(upgrade.1, "/api/v1/streaming?stream=user%3Anotification");
    assert!(!stream.describe().contains('?'));
}

#[tokio::test]
async fn our_own_posts_and_other_notifications_do_not_come_through() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &["brand"]).await;
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    fake.wait_for_subscriptions(2, WAIT).await;
    fake.add_notification("favourite", "carol");
    fake.add_notification("follow", "dave");
    // The brand's own hashtag post is not a keyword hit.
    let own = fake.add_status(
        crate::fakes::mastodon::BRAND_ACCT,
        "#brand news: we are back",
    );
    let later = fake.add_mention("erin", "hello");
    let m = conn.mention().await;
    assert_eq!(m.remote_id, later.status_id, "not {own}");
    // All four were pushed; only the mention came through.
    assert_eq!(fake.stream_counts().frames_sent, 4);
}

#[tokio::test]
async fn a_hashtag_status_arrives_as_the_keyword_mention_the_hashtag_poll_gives() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &["brand", "BrandDown"]).await;
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    fake.wait_for_subscriptions(3, WAIT).await;
    assert_eq!(
        fake.stream_counts().subscriptions,
        vec!["user:notification", "hashtag:brand", "hashtag:branddown"]
    );
    let id = fake.add_status("carol", "is the #brand app down for anyone else?");
    let streamed = conn.mention().await;
    assert_eq!(streamed.remote_id, id);
    let from_poll = polled(&source, &id).await;
    assert_eq!(streamed, from_poll);
    assert_eq!(streamed.dedupe_keys(), from_poll.dedupe_keys());
    // A mention that also carries a watched hashtag comes on both streams: the same
    // status, the same keys, absorbed by the store as one.
    let both = fake.add_mention("dave", "#BrandDown again");
    let a = conn.mention().await;
    let b = conn.mention().await;
    assert_eq!(
        (a.remote_id.as_str(), b.remote_id.as_str()),
        (both.status_id.as_str(), both.status_id.as_str())
    );
    assert_eq!(a.dedupe_keys(), b.dedupe_keys());
}

#[tokio::test]
async fn a_refused_token_is_refused_and_named_in_no_error_or_log() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &[]).await;
    // A hostile or careless server echoes the token back in its error message.
    let said = format!("Invalid access token\t{} (revoked)", fake.token());
    fake.refuse_stream_token(Some(&said));
    let conn = run(stream_of(&source));
    let (error, events, logs) = conn.end(WAIT).await;
    assert!(events.is_empty(), "{events:?}");
    let StreamError::Refused { reason } = &error else {
        panic!("expected Refused, got {error:?}");
    };
    assert!(reason.contains("401"), "{reason}");
    assert!(reason.contains("Invalid access token"), "{reason}");
    assert!(reason.contains("mastodon.access_token"), "{reason}");
    assert!(!reason.contains('\t'), "{reason}");
    for text in [reason.as_str(), logs.as_str(), &format!("{error:?}")] {
        assert!(!text.contains(fake.token()), "the token leaked: {text}");
        assert!(canary_leaks(text).is_empty(), "{:?}", canary_leaks(text));
    }
    assert_eq!(fake.stream_counts().refused, 1);
    // A token the instance itself refuses is refused before any websocket.
    fake.refuse_stream_token(None);
    fake.fail_next("/api/v2/instance", vec![Fault::status(401)]);
    let (error, _, logs) = run(stream_of(&source)).end(WAIT).await;
    assert!(
        matches!(&error, StreamError::Refused { reason } if reason.contains("401")),
        "{error:?}"
    );
    assert!(!logs.contains(fake.token()) && !format!("{error:?}").contains(fake.token()));
}

#[tokio::test]
async fn a_server_without_streaming_is_unsupported() {
    let fake = FakeMastodon::start().await;
    fake.set_streaming(false);
    let source = source(&fake, &[]).await;
    let stream = stream_of(&source);
    let (error, events, _) = run(stream.clone()).end(WAIT).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(&error, StreamError::Unsupported { reason } if reason.contains("404")),
        "{error:?}"
    );
    // Looked for on the instance's own host, the only place left.
    assert_eq!(
        stream.describe(),
        format!("mastodon websocket {}/api/v1/streaming", fake.stream_url())
    );
    // With streaming turned off in the config there is no stream at all.
    let mut off = config(&fake, &[], Duration::from_secs(70));
    off.streaming = false;
    assert!(source_with(off).await.stream().is_none());
}

#[tokio::test]
async fn pings_keep_the_stream_alive_and_a_quiet_server_is_dropped_within_stream_quiet() {
    let fake = FakeMastodon::start().await;
    fake.set_stream_ping_every(Duration::from_millis(200));
    let source = source_with(config(&fake, &[], Duration::from_secs(1))).await;
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    // Pings alone, for longer than stream_quiet: still up.
    conn.nothing_for(Duration::from_millis(1600)).await;
    assert!(!conn.ended.is_finished());
    fake.set_stream_quiet(true);
    let quiet_since = Instant::now();
    let (error, _, _) = conn.end(Duration::from_secs(3)).await;
    let took = quiet_since.elapsed();
    let (after, reason) = dropped(&error);
    assert!(after.is_none() && reason.contains("went quiet"), "{reason}");
    assert!(
        took <= Duration::from_millis(1900),
        "dropped after {took:?}"
    );
    // TCP was never closed by the fake: the stream noticed the silence itself.
    assert_eq!(fake.stream_counts().open, 1);
}

#[tokio::test]
async fn an_abrupt_drop_or_a_close_frame_ends_the_connection_as_dropped() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &[]).await;
    let conn = connected(&fake, &source).await;
    fake.drop_streams();
    let (error, _, _) = conn.end(WAIT).await;
    assert_eq!(dropped(&error).0, None);

    let conn = connected(&fake, &source).await;
    fake.close_streams(1001, "going away\nnow");
    let (error, _, _) = conn.end(WAIT).await;
    let reason = dropped(&error).1;
    assert!(
        reason.contains("closed by the server (1001 going away now)"),
        "{reason}"
    );
    assert_eq!(fake.stream_counts().connections, 2);
}

#[tokio::test]
async fn an_event_cut_mid_frame_is_lost_from_the_stream_and_found_by_the_poll() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &[]).await;
    let conn = connected(&fake, &source).await;
    fake.cut_next_stream_events(1);
    let lost = fake.add_mention("alice", "first");
    let (error, left, _) = conn.end(WAIT).await;
    dropped(&error);
    assert!(
        left.is_empty(),
        "half an event must not come through: {left:?}"
    );
    // The catch-up poll after the reconnect finds it.
    polled(&source, &lost.status_id).await;
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    let next = fake.add_mention("alice", "second");
    assert_eq!(conn.mention().await.remote_id, next.status_id);
}

#[tokio::test]
async fn hostile_frames_are_skipped_and_the_good_event_after_them_arrives() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &["brand"]).await;
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    fake.wait_for_subscriptions(2, WAIT).await;
    let own_status = serde_json::json!({
        "id": "1", "created_at": "2026-01-01T00:00:00Z", "content": "mine",
        "account": {"id": BRAND_ID, "acct": "brand"}
    });
    let own = serde_json::json!({"id": "9", "type": "mention", "status": own_status});
    fake.push_stream_text("garbage {");
    fake.push_stream_text("");
    fake.push_stream_text("[1,2,3]");
    fake.push_stream_binary(&[0, 159, 146, 150]);
    fake.push_stream_text(r#"{"error":"Unknown stream type","status":400}"#);
    fake.push_stream_text(r#"{"error":{"nested":true}}"#);
    // Envelopes whose payload is no string, no JSON, not what the event says, our own
    // post, or events the desk does not read.
    for (stream, event, payload) in [
        (
            json!(["user:notification"]),
            "notification",
            json!({"id": "1"}),
        ),
        (
            json!(["user:notification"]),
            "notification",
            json!("{broken json"),
        ),
        (json!(["user:notification"]), "notification", json!("[]")),
        (
            json!(["user:notification"]),
            "notification",
            json!(own.to_string()),
        ),
        (json!(["hashtag", "brand"]), "update", json!(null)),
        (json!(["user"]), "delete", json!("12345")),
        (json!(["user"]), "status.update", json!("{}")),
        (json!(["user"]), "announcement", json!("{}")),
    ] {
        fake.push_stream_event(stream, event, payload);
    }
    fake.push_stream_text(r#"{"stream":["user"],"event":"filters_changed"}"#);
    fake.push_stream_text(r#"{"stream":7,"event":["update"],"payload":1}"#);
    let good = fake.add_mention("alice", "@here please <!everyone>");
    let m = conn.mention().await;
    assert_eq!(m.remote_id, good.status_id);
    assert!(m.text.contains("@here please <!everyone>"), "{}", m.text);
    assert_eq!(
        fake.stream_counts().connections,
        1,
        "one connection throughout"
    );

    // A frame over the size bound ends the connection (it cannot be skipped without
    // reading it); the next connection carries on.
    let huge = format!(
        "{{\"event\":\"update\",\"payload\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    fake.push_stream_text(&huge);
    let (error, left, logs) = conn.end(WAIT).await;
    assert!(left.is_empty(), "{left:?}");
    assert!(dropped(&error).1.contains("too long"), "{error:?}");
    // The server's complaint is logged once, at warn; no customer text at info.
    assert_eq!(
        logs.matches("Mastodon's stream sent an error").count(),
        1,
        "{logs}"
    );
    for line in logs
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN "))
    {
        assert!(!line.contains("please") && !line.contains("mine"), "{line}");
    }
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    let after = fake.add_mention("bob", "still there?");
    assert_eq!(conn.mention().await.remote_id, after.status_id);
}

#[tokio::test]
async fn gotosocial_streams_mentions_and_leaves_hashtags_to_the_poll() {
    let fake = FakeMastodon::start().await;
    fake.set_id_style(IdStyle::Ulid);
    fake.set_stream_flavour(StreamFlavour::GoToSocial);
    let source = source(&fake, &["brand"]).await;
    let mut conn = run(stream_of(&source));
    conn.connected().await;
    fake.wait_for_subscriptions(1, WAIT).await;
    let ids = fake.add_mention("alice", "hi from GoToSocial");
    let streamed = conn.mention().await;
    assert_eq!(
        streamed.remote_id.len(),
        26,
        "a ULID: {}",
        streamed.remote_id
    );
    assert_eq!(streamed, polled(&source, &ids.status_id).await);
    let counts = fake.stream_counts();
    assert_eq!(counts.subscriptions, vec!["user:notification".to_string()]);
    assert!(
        counts.rejected.is_empty(),
        "no hashtag subscription was even tried: {counts:?}"
    );
    // Nothing is pushed for the hashtag; the poll still finds it.
    let tagged = fake.add_status("carol", "#brand is slow today");
    conn.nothing_for(Duration::from_millis(300)).await;
    polled(&source, &tagged).await;
}

#[tokio::test]
async fn a_busy_or_broken_upgrade_is_dropped_with_the_servers_wait() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &[]).await;
    fake.fail_next(
        "/api/v1/streaming",
        vec![Fault::too_many_requests(7), Fault::status(503)],
    );
    let (error, _, _) = run(stream_of(&source)).end(WAIT).await;
    let (after, reason) = dropped(&error);
    assert_eq!(after, Some(Duration::from_secs(7)));
    assert!(reason.contains("429"), "{reason}");
    let (error, _, _) = run(stream_of(&source)).end(WAIT).await;
    assert!(dropped(&error).1.contains("503"), "{error:?}");
    // Discovery that fails for now is a drop too.
    fake.fail_next("/api/v2/instance", vec![Fault::too_many_requests(3)]);
    let (error, _, _) = run(stream_of(&source)).end(WAIT).await;
    assert_eq!(dropped(&error).0, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn the_instance_names_where_it_streams_and_a_url_that_is_none_is_not_followed() {
    let fake = FakeMastodon::start().await;
    let source = source(&fake, &[]).await;
    let stream = stream_of(&source);
    // Another host (nothing listens there): the stream goes where the instance says.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fake.advertise_streaming_url(Some(&format!("wss://127.0.0.1:{elsewhere}")));
    let (error, _, _) = run(stream.clone()).end(Duration::from_secs(15)).await;
    dropped(&error);
    assert_eq!(
        stream.describe(),
        format!("mastodon websocket wss://127.0.0.1:{elsewhere}/api/v1/streaming")
    );
    // Not a websocket URL at all: the instance's own host is used.
    fake.advertise_streaming_url(Some("javascript:alert(1)"));
    let mut conn = run(stream.clone());
    conn.connected().await;
    assert_eq!(
        stream.describe(),
        format!("mastodon websocket {}/api/v1/streaming", fake.stream_url())
    );
}
