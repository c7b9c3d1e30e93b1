//! Each inbound event is acted on once: a Slack event retried (Socket Mode or Events API),
//! a Discord interaction delivered twice (gateway or HTTP endpoint), a webhook re-sent,
//! the same post brought by a poller and by a webhook, with restarts in between. Only
//! agents' thread messages become internal notes. What changed is read back from the
//! store with `mentionbridge export` once the bot has stopped.

use crate::drivers::{Driver, Who};
use crate::harness::*;
use crate::webhook_flows::{deliver, now};
use serde_json::{json, Value};
use std::time::Duration;

/// The store as `mentionbridge export` writes it (tickets, then the audit trail); the
/// bot must be stopped.
pub async fn exported(w: &World) -> Vec<Value> {
    let out = w
        .command()
        .args(["export", "--config"])
        .arg(w.config_path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The audit lines saying `what`.
pub fn audit<'a>(lines: &'a [Value], what: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["kind"] == "audit" && l["what"] == what)
        .collect()
}

#[tokio::test]
async fn a_slack_event_redelivered_even_after_a_restart_records_one_note() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "is my card stolen?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;
    let slack = w.slack_driver();
    let event = slack.thread_message(
        ANA,
        &card.ts,
        "1800000000.000100",
        "Internal: VIP, check the account first",
    );
    slack.event(&event, None).await;
    bot.wait_for_log("internal note recorded (not relayed)", WAIT)
        .await;
    // Slack thought the ack was lost: the same event again, with the retry fields.
    slack.event(&event, Some((1, "timeout"))).await;
    bot.wait_for_log("Slack delivered an event again", WAIT)
        .await;
    let (status, _) = bot.terminate().await;
    assert!(status.success());

    // A restart between the deliveries: the store still knows the event.
    let bot = w.start_bot().await;
    slack.event(&event, Some((2, "timeout"))).await;
    bot.wait_for_log("Slack delivered an event again", WAIT)
        .await;
    bot.terminate().await;
    let lines = exported(&w).await;
    let notes = audit(&lines, "internal note");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["detail"], "Internal: VIP, check the account first");
}

#[tokio::test]
async fn events_api_retries_with_slacks_retry_headers_change_nothing() {
    let w = World::with_mode(Mode::Http).await;
    w.mastodon.add_mention("alice", "hello?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;
    let slack = w.slack_driver();
    let event = slack.thread_message(
        BEN,
        &card.ts,
        "1800000000.000200",
        "Internal: refund approved",
    );
    let post = |retry| slack.event(&event, retry);
    assert_eq!(post(None).await, 200);
    bot.wait_for_log("internal note recorded (not relayed)", WAIT)
        .await;
    assert_eq!(post(Some((1, "http_timeout"))).await, 200);
    assert_eq!(post(Some((2, "http_error"))).await, 200);
    bot.wait_for_log("Slack delivered an event again", WAIT)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bot.terminate().await;
    assert_eq!(
        audit(&exported(&w).await, "internal note").len(),
        1,
        "one note for three deliveries"
    );
}

#[tokio::test]
async fn only_agents_thread_messages_become_notes() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "where is my parcel?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;
    let slack = w.slack_driver();
    let message = |user: &str, ts: &str, text: &str| slack.thread_message(user, &card.ts, ts, text);
    // A bystander in the channel and another app's bot write in the card's thread.
    slack
        .event(
            &message(EVE, "1800000000.000301", "<!channel> free refunds!"),
            None,
        )
        .await;
    bot.wait_for_log("not an agent; not recorded", WAIT).await;
    let mut from_bot = message("U0OTHERBOT", "1800000000.000302", "I am a bot");
    from_bot["event"]["bot_id"] = json!("B0OTHER");
    slack.event(&from_bot, None).await;
    // An agent's line is the one note.
    slack
        .event(
            &message(BEN, "1800000000.000303", "Internal: courier contacted"),
            None,
        )
        .await;
    bot.wait_for_log("internal note recorded (not relayed)", WAIT)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let thread = w.slack.thread(CHANNEL, &card.ts);
    assert!(
        thread.iter().all(|m| !m.text.contains("free refunds")),
        "nothing is echoed: {thread:?}"
    );
    assert!(w.mastodon.posted_statuses().is_empty());
    bot.terminate().await;
    let lines = exported(&w).await;
    let notes = audit(&lines, "internal note");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["actor_id"], format!("slack:{BEN}"));
}

/// Press Reply on the Discord card and submit the form as Ana; returns the submission
/// payload (to deliver again) after the reply is published.
async fn reply_on_discord(w: &World, text: &str) -> Value {
    let d = w.discord_driver();
    let card = d.card(1).await;
    let press = d.press_payload(&card, Who::Ana, "reply", &[]);
    let modal = d.interact(Who::Ana, press).await;
    let modal_id = modal["data"]["custom_id"].as_str().unwrap().to_string();
    let submit = d.form_submission(Who::Ana, &modal_id, &[("text", text)]);
    let answer = d.interact(Who::Ana, submit.clone()).await;
    assert!(answer.to_string().contains("queued"), "{answer}");
    w.mastodon.wait_for_posts(1, WAIT).await;
    d.wait_note(&card, "Reply published").await;
    submit
}

#[tokio::test]
async fn a_discord_interaction_delivered_again_even_after_a_restart_sends_one_reply() {
    let w = World::discord().await;
    w.mastodon.add_mention("alice", "refund?");
    let bot = w.start_bot().await;
    let submit = reply_on_discord(&w, "Refund sent.").await;
    let id = submit["id"].as_str().unwrap().to_string();

    // The gateway delivers the same interaction again: no second reply, no second answer.
    w.discord.send_interaction(submit.clone());
    bot.wait_for_log("Discord delivered an interaction again", WAIT)
        .await;
    bot.terminate().await;
    let bot = w.start_bot().await;
    w.discord.send_interaction(submit);
    bot.wait_for_log("Discord delivered an interaction again", WAIT)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1);
    assert_eq!(
        w.discord.callback_attempts(&id).len(),
        1,
        "a repeat is not answered a second time (Discord would refuse it: 40060)"
    );
    bot.terminate().await;
    assert_eq!(audit(&exported(&w).await, "reply queued").len(), 1);
}

#[tokio::test]
async fn a_discord_interaction_posted_twice_to_the_endpoint_is_answered_harmlessly() {
    let w = World::with(None, Some(Mode::Http)).await;
    w.mastodon.add_mention("alice", "refund?");
    let bot = w.start_bot().await;
    let d = w.discord_driver();
    let card = d.card(1).await;
    let press = d.press_payload(&card, Who::Ana, "resolve", &[]);
    let (status, first) = d.deliver(&press).await;
    assert_eq!(status, 200, "{first}");
    d.wait_card_text(&card, "Resolved").await;
    let (status, again) = d.deliver(&press).await;
    assert_eq!(status, 200);
    assert_eq!(again["type"], 4, "{again}");
    assert_eq!(again["data"]["flags"], 64, "only the agent sees it");
    assert!(
        again["data"]["content"]
            .as_str()
            .unwrap()
            .contains("already received"),
        "{again}"
    );
    bot.terminate().await;
    assert_eq!(audit(&exported(&w).await, "resolved").len(), 1);
}

#[tokio::test]
async fn a_webhook_resent_with_a_new_body_is_the_same_mention() {
    let w = World::new().await;
    let _bot = crate::webhook_flows::start(&w).await;
    let first = json!({
        "source": "brandwatch", "id": "bw-7", "platform": "instagram",
        "url": "https://www.instagram.com/p/C0ffee/", "text": "Still waiting",
        "created_at": "2026-11-25T10:00:00Z", "author": {"handle": "@ana_ig"}
    });
    let (status, body) = deliver(&w, &first.to_string(), now(), true).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["new_tickets"], json!([1]));
    // The same delivery again, then the tool's re-send of the same mention with more in it.
    let (_, body) = deliver(&w, &first.to_string(), now(), true).await;
    assert_eq!(body["duplicates"], 1, "{body}");
    let mut richer = first.clone();
    richer["text"] = json!("Still waiting (edited)");
    richer["remote_id"] = json!("3141592653");
    richer["url"] = json!("https://www.instagram.com/p/C0ffee/?igsh=abc");
    let (_, body) = deliver(&w, &richer.to_string(), now(), true).await;
    assert_eq!(body["duplicates"], 1, "{body}");
    assert_eq!(body["new_tickets"], json!([]), "{body}");
    w.card(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.cards().len(), 1);
}

#[tokio::test]
async fn the_same_post_from_the_poller_and_a_webhook_is_one_ticket() {
    let w = World::new().await;
    let ids = w
        .mastodon
        .add_mention("alice@other.social", "my order never came");
    let _bot = crate::webhook_flows::start(&w).await;
    w.card(1).await;
    // A listening tool saw the same status, by its ActivityPub address, with tracking.
    let same = json!({
        "source": "talkwalker", "id": "tw-1", "platform": "mastodon",
        "url": format!("https://other.social/users/alice/statuses/{}?utm_source=tw", ids.status_id),
        "text": "my order never came",
        "created_at": "2026-11-25T10:00:00Z", "author": {"handle": "alice@other.social"}
    });
    let (status, body) = deliver(&w, &same.to_string(), now(), true).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["duplicates"], 1, "{body}");
    // Another status of hers is another ticket.
    let mut other = same.clone();
    other["id"] = json!("tw-2");
    other["url"] = json!("https://other.social/@alice/999999");
    let (_, body) = deliver(&w, &other.to_string(), now(), true).await;
    assert_eq!(body["new_tickets"], json!([2]), "{body}");
    w.card(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.cards().len(), 2);
}
