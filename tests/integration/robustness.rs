//! Nothing from outside panics the bot or makes it spin, and no part of it dies quietly:
//! odd rate-limit headers, panicking sends, panicking components, all seen on `/healthz`.

use crate::drivers::{Driver, Who};
use crate::fakes::Fault;
use crate::harness::*;
use serde_json::Value;
use std::time::Duration;

/// Write the world's config with `edit` applied, before the bot first starts.
pub fn write_config(w: &World, edit: impl Fn(String) -> String) {
    std::fs::write(w.dir.path().join("bot-config.toml"), edit(w.config_text())).unwrap();
}

pub async fn health(w: &World) -> (u16, Value) {
    let resp = reqwest::get(format!("http://127.0.0.1:{}/healthz", w.http_port))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `[outbox]` with this longest backoff and three tries.
fn three_tries(w: &World, max_backoff_secs: u64) {
    write_config(w, |c| {
        c.replace(
            "max_backoff_secs = 5",
            &format!("max_backoff_secs = {max_backoff_secs}\nmax_attempts = 3"),
        )
    });
}

async fn wait_told_card_given_up(w: &World) {
    let said = "could not be posted after 3 tries";
    w.slack
        .wait_until(WAIT, "the team to be told the card was given up", |s| {
            s.messages(CHANNEL).iter().any(|m| m.text.contains(said))
        })
        .await;
}

fn panics_in(log: &str) -> usize {
    log.matches("panicked at").count()
}

#[tokio::test]
async fn a_retry_after_of_1e300_neither_panics_the_watcher_nor_makes_it_spin() {
    let w = World::new().await;
    // Mastodon's 429 carries the header; before, Duration::from_secs_f64 panicked on it
    // and the watcher died without a word to anyone.
    w.mastodon
        .set_fault_headers(&[("retry-after", "1e300"), ("x-ratelimit-reset", "soon")]);
    w.mastodon
        .fail_next("GET /api/v1/notifications", vec![Fault::status(429); 50]);
    let bot = w.start_bot().await;
    bot.wait_for_log("polling failed; backing off", WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = bot.log();
    assert_eq!(panics_in(&log), 0, "{log}");
    // The hint is honoured as the longest wait we grant: a day, not forever, not zero.
    assert!(log.contains("retry_in_ms=86400000"), "{log}");
    assert_eq!(
        w.mastodon.count("GET", "/api/v1/notifications"),
        1,
        "one poll, then a wait: no hot loop"
    );
    let (status, h) = health(&w).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        h["components"]["watcher:mastodon"]["state"], "running",
        "{h}"
    );
}

#[tokio::test]
async fn a_retry_after_too_long_for_the_calendar_defers_the_card_instead_of_retrying_at_once() {
    let w = World::new().await;
    // slack-morphism reads this as u64::MAX seconds; chrono cannot add that to now, and
    // the outbox used to turn the wait into zero: thirty retries in a blink.
    w.slack.fail_next(
        "chat.postMessage",
        vec![Fault::too_many_requests(u64::MAX); 30],
    );
    w.mastodon.add_mention("alice", "where is my parcel?");
    let bot = w.start_bot().await;
    bot.wait_for_log("send failed; will retry", WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = bot.log();
    assert_eq!(w.slack.count("chat.postMessage"), 1, "{log}");
    assert!(log.contains("retry_in_ms=86400000"), "{log}");
    assert_eq!(panics_in(&log), 0, "{log}");
}

#[tokio::test]
async fn a_retry_after_of_1e300_from_discord_defers_the_card_without_a_panic() {
    let w = World::discord().await;
    // Discord's 429 body carries `retry_after` in seconds, as a float.
    let body =
        r#"{"message": "You are being rate limited.", "retry_after": 1e300, "global": false}"#;
    w.discord.fail_next(
        &format!("POST /channels/{D_CHANNEL}/messages"),
        vec![Fault::http(429, body); 30],
    );
    w.mastodon.add_mention("alice", "hello?");
    let bot = w.start_bot().await;
    bot.wait_for_log("send failed; will retry", WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = bot.log();
    assert_eq!(panics_in(&log), 0, "{log}");
    assert!(log.contains("retry_in_ms=86400000"), "{log}");
}

#[tokio::test]
async fn a_panicking_send_is_retried_with_backoff_then_given_up_and_shown_to_the_team() {
    let w = World::new().await;
    three_tries(&w, 5);
    w.mastodon.add_mention("alice", "my order never came");
    let bot = w
        .start_bot_with(&[("MENTIONBRIDGE_FAILPOINT", "panic-job:post-cards")])
        .await;
    wait_told_card_given_up(&w).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let log = bot.log();
    // Three tries, with a wait after each failed one; then no more.
    assert_eq!(log.matches("outbox job panicked").count(), 3, "{log}");
    assert!(
        log.contains("retry_in_ms=500") && log.contains("retry_in_ms=1000"),
        "{log}"
    );
    assert!(log.contains("outbox gave up on a job"), "{log}");
    let text = w.metrics().await;
    assert!(
        text.contains("mentionbridge_outbox_jobs_failed{effect=\"post-cards\"} 1"),
        "{text}"
    );
    // The sender survived its jobs' panics, and the mention is still on the desk.
    let (status, h) = health(&w).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["components"]["outbox"]["restarts"], 0, "{h}");
    let listed = w.slack_driver().command(Who::Ana, "list").await;
    assert!(listed.contains("@alice"), "{listed}");
}

#[tokio::test]
async fn a_card_the_surface_refuses_for_good_is_given_up_after_max_attempts_and_the_mention_kept() {
    let w = World::new().await;
    three_tries(&w, 1);
    let refused = Fault::http(200, r#"{"ok": false, "error": "invalid_blocks"}"#);
    w.slack.fail_next("chat.postMessage", vec![refused; 3]);
    w.mastodon
        .add_mention("alice", "a card Slack will not take");
    let bot = w.start_bot().await;
    wait_told_card_given_up(&w).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Three refused posts and the announcement; no fourth try at the card.
    assert_eq!(w.slack.count("chat.postMessage"), 4, "{}", bot.log());
    let listed = w.slack_driver().command(Who::Ana, "list").await;
    assert!(listed.contains("@alice"), "{listed}");
}

#[tokio::test]
async fn a_component_that_panics_restarts_with_backoff_and_healthz_names_it() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "anyone there?");
    let bot = w
        .start_bot_with(&[(
            "MENTIONBRIDGE_FAILPOINT",
            "panic:scheduler,panic-once:outbox",
        )])
        .await;
    // The outbox panicked once at start and came back: the card still goes out.
    w.slack_driver().card(1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let (status, h) = loop {
        let (status, h) = health(&w).await;
        if h["components"]["scheduler"]["restarts"].as_u64() >= Some(2) {
            break (status, h);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler was not restarted twice: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["status"], "degraded");
    let scheduler = &h["components"]["scheduler"];
    assert!(
        ["restarting", "failed"].contains(&scheduler["state"].as_str().unwrap_or("")),
        "{h}"
    );
    assert!(scheduler["restarts"].as_u64().unwrap_or(0) >= 2, "{h}");
    assert!(
        scheduler["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("panicked"),
        "{h}"
    );
    let outbox = &h["components"]["outbox"];
    assert_eq!(outbox["state"], "running", "{h}");
    assert_eq!(outbox["restarts"], 1, "{h}");
    for running in [
        "watcher:mastodon",
        "slack-socket-mode",
        "http",
        "background",
    ] {
        assert_eq!(
            h["components"][running]["state"], "running",
            "{running}: {h}"
        );
    }
    let body = h.to_string();
    for secret in [w.slack.bot_token(), w.slack.app_token(), w.mastodon.token()] {
        assert!(!body.contains(secret), "a token on /healthz: {body}");
    }
    let log = bot.log();
    assert!(
        log.contains("component stopped; starting it again"),
        "{log}"
    );
    // A clean stop on shutdown is not a restart.
    let (exit, log) = bot.terminate().await;
    assert!(exit.success(), "{log}");
}
