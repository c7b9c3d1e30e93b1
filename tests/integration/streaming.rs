//! Streamed sources through the real binary: a Mastodon mention pushed on the stream is a
//! card long before the next poll; a mention lost with a dropped connection comes with
//! the catch-up poll, once; a SIGKILL mid-stream loses and doubles nothing; a server
//! without streaming is polled and `/healthz` says so.

use crate::harness::*;
use std::time::Duration;

/// Polls so rare that a card within the test's wait can only have come by the stream.
const RARE_POLLS: &str = "poll_interval_secs = 600\nreconcile_secs = 3600";

async fn healthz(w: &World) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{}/healthz", w.http_port))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The mode `/healthz` gives for the Mastodon source, and its detail.
async fn mastodon_mode(w: &World) -> (String, String) {
    let health = healthz(w).await;
    let sources = health["sources"].as_object().cloned().unwrap_or_default();
    let (_, m) = sources
        .iter()
        .find(|(k, _)| k.starts_with("mastodon"))
        .unwrap_or_else(|| panic!("no mastodon source on /healthz: {health}"));
    (
        m["mode"].as_str().unwrap_or_default().to_string(),
        m["detail"].as_str().unwrap_or_default().to_string(),
    )
}

fn tickets_on_cards(w: &World) -> Vec<u64> {
    let mut t: Vec<u64> = w.cards().iter().map(ticket_of).collect();
    t.sort();
    t
}

#[tokio::test]
async fn a_streamed_mention_is_a_card_long_before_the_next_poll() {
    let w = World::new().await;
    *w.mastodon_extra.lock().unwrap() = RARE_POLLS.into();
    let bot = w.start_bot().await;
    w.mastodon.wait_for_streams(1, WAIT).await;
    // Connected: the catch-up poll follows; then only the stream can bring a mention.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polls_before = w.mastodon.requests().len();
    w.mastodon.add_mention("alice", "my parcel never came");
    let card = w.card(1).await;
    assert!(blocks_text(&card).contains("my parcel never came"));
    let (mode, _) = mastodon_mode(&w).await;
    assert_eq!(mode, "streaming");
    let notification_polls = w.mastodon.requests()[polls_before..]
        .iter()
        .filter(|(_, path)| path.contains("/api/v1/notifications"))
        .count();
    assert_eq!(notification_polls, 0, "the card came by the stream");
    let metrics = w.metrics().await;
    assert!(
        metrics.contains("mentionbridge_source_streaming{source=\"mastodon:"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mentionbridge_source_streaming{") && l.ends_with(" 1")),
        "{metrics}"
    );
    drop(bot);
}

#[tokio::test]
async fn a_mention_cut_from_the_stream_comes_with_the_catch_up_poll_once() {
    let w = World::new().await;
    *w.mastodon_extra.lock().unwrap() = RARE_POLLS.into();
    let _bot = w.start_bot().await;
    w.mastodon.wait_for_streams(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connects = w.mastodon.stream_counts().connections;
    // The connection drops in the middle of this mention's frame.
    w.mastodon.cut_next_stream_events(1);
    w.mastodon.add_mention("bob", "charged twice");
    // The desk connects again, polls to catch up, and so finds it.
    let card = w.card(1).await;
    assert!(blocks_text(&card).contains("charged twice"));
    assert!(w.mastodon.stream_counts().connections > connects);
    // And the stream still works afterwards, the post it missed not doubled.
    w.mastodon.add_mention("carol", "where is my refund");
    w.card(2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(tickets_on_cards(&w), vec![1, 2]);
}

#[tokio::test]
async fn a_sigkill_mid_stream_loses_and_doubles_nothing() {
    let w = World::new().await;
    *w.mastodon_extra.lock().unwrap() = RARE_POLLS.into();
    let bot = w.start_bot().await;
    w.mastodon.wait_for_streams(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..10 {
        w.mastodon
            .add_mention(&format!("customer{i}"), &format!("help {i}"));
    }
    // Killed while the stream's mentions are being stored and carded.
    tokio::time::sleep(Duration::from_millis(30)).await;
    bot.kill().await;
    // Said while the desk is down: only the catch-up poll at the next connect has them.
    for i in 10..15 {
        w.mastodon
            .add_mention(&format!("customer{i}"), &format!("help {i}"));
    }
    let _bot = w.start_bot().await;
    w.slack
        .wait_until(WAIT, "15 cards", |s| {
            s.messages(CHANNEL)
                .iter()
                .filter(|m| m.metadata.is_some())
                .count()
                >= 15
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(tickets_on_cards(&w), (1..=15).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_server_without_streaming_is_polled_and_healthz_says_so() {
    let w = World::new().await;
    w.mastodon.set_streaming(false);
    let _bot = w.start_bot().await;
    w.mastodon.add_mention("dana", "app crashes on login");
    let card = w.card(1).await;
    assert!(blocks_text(&card).contains("app crashes on login"));
    let (mode, detail) = mastodon_mode(&w).await;
    assert_eq!(mode, "polling");
    assert!(detail.starts_with("no streaming"), "{detail}");
    assert_eq!(w.mastodon.stream_counts().connections, 0);
}

mod jetstream {
    use super::*;
    use crate::fakes::bluesky::{FakeBluesky, APP_PASSWORD};

    const PASSWORD_ENV: (&str, &str) = ("TEST_BLUESKY_PASSWORD", APP_PASSWORD);

    async fn world() -> (World, FakeBluesky) {
        let w = World::new().await;
        let fake = FakeBluesky::start().await;
        *w.extra_config.lock().unwrap() = format!(
            "\n[bluesky]\nservice_url = \"{}\"\nhandle = \"brand.test\"\napp_password = \"${{TEST_BLUESKY_PASSWORD}}\"\npoll_interval_secs = 600\nreconcile_secs = 3600\njetstream = true\njetstream_url = \"{}\"\n",
            fake.url(),
            fake.jetstream_url()
        );
        (w, fake)
    }

    #[tokio::test]
    async fn a_post_on_jetstream_is_a_card_before_any_poll_and_a_restart_resumes_from_the_stored_position(
    ) {
        let (w, fake) = world().await;
        let bot = w.start_bot_with(&[PASSWORD_ENV]).await;
        fake.wait_for_jetstream_sockets(1, WAIT).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let polls = fake.count("app.bsky.notification.listNotifications");
        fake.add_mention("alice.test", "my order is late");
        let card = w.card(1).await;
        assert!(blocks_text(&card).contains("my order is late"));
        assert_eq!(
            fake.count("app.bsky.notification.listNotifications"),
            polls,
            "the card came by Jetstream"
        );
        // Killed, then posts made while it is down: the stored position is rewound on
        // reconnect and the catch-up poll runs; each post is one card.
        tokio::time::sleep(Duration::from_millis(300)).await;
        bot.kill().await;
        fake.add_mention("bob.test", "charged twice");
        let _bot = w.start_bot_with(&[PASSWORD_ENV]).await;
        w.card(2).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(tickets_on_cards(&w), vec![1, 2]);
        let connects = fake.jetstream_connects();
        assert!(connects.len() >= 2, "{connects:?}");
        let resumed = connects.last().unwrap();
        assert!(
            resumed.cursor.is_some(),
            "the restart resumed from the stored position: {connects:?}"
        );
    }
}
