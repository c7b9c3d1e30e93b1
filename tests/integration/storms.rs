//! Storms: 2,000 near-identical mentions within a minute become one incident card (a
//! handful of chat messages, one page), and one bulk answer publishes one reply to each
//! member exactly once, also when the bot is SIGKILLed while it is going out.

use crate::drivers::Who;
use crate::fakes::slack::SlackMessage;
use crate::harness::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

const STORM: usize = 2000;
/// Long enough for a storm of this size on a busy machine.
const LONG: Duration = Duration::from_secs(240);
// (the second test waits far less in practice)

fn incident_card(w: &World) -> Option<SlackMessage> {
    w.slack.messages(CHANNEL).into_iter().find(|m| {
        m.metadata
            .as_ref()
            .is_some_and(|md| md["event_type"] == "mentionbridge_incident")
    })
}

/// Top-level messages and thread lines the bot posted, and card edits.
fn chat_calls(w: &World) -> (usize, usize) {
    (
        w.slack.count("chat.postMessage"),
        w.slack.count("chat.update"),
    )
}

/// Waits, looking every quarter second, until `cond` holds; panics after `timeout`.
async fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until Mastodon has at least `n` replies; on a timeout, shows what the bot last
/// said about anything but single replies.
async fn replies_at_least(w: &World, bot: &Bot, n: usize) {
    let deadline = tokio::time::Instant::now() + LONG;
    while w.mastodon.posted_statuses().len() < n {
        if tokio::time::Instant::now() > deadline {
            let log = bot.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("no card of its own") && !l.contains("reply published"))
                .collect();
            panic!(
                "{} replies published, not {n}; the bot's last lines:\n{}",
                w.mastodon.posted_statuses().len(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Mastodon's API throttle (300 requests per 5 minutes) is the publisher's to keep: in
/// these tests it is out of the way, so answers go at the pace `[storms]` sets.
fn no_throttle(w: &World) {
    w.mastodon.set_rate_limit(1_000_000);
    w.mastodon.set_paging_rate_limit(1_000_000);
}

fn storm_config(w: &World) {
    // The desk keeps its own pace (about a message a second per channel) and the fake
    // Slack answers 429 to anything faster, as Slack does.
    w.slack_extra.lock().unwrap().clear();
    w.slack.set_channel_pace(Some(Duration::from_secs(1)));
    w.page_on_call.store(true, Ordering::SeqCst);
    no_throttle(w);
    *w.extra_config.lock().unwrap() = "
[storms]
hold_seconds = 10
update_seconds = 5
bulk_mastodon_per_hour = 1000000
"
    .into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_is_one_card_and_one_answer_published_exactly_once_per_customer_across_a_kill() {
    let w = World::new().await;
    storm_config(&w);
    let bot = w.start_bot().await;
    // The first poll sets the cursor: what follows is new.
    w.mastodon
        .wait_for_requests("GET", "/api/v1/notifications", 2, WAIT)
        .await;
    let before = chat_calls(&w);
    let mut statuses = Vec::with_capacity(STORM);
    for i in 0..STORM {
        let text = format!(
            "@brandco is the app down? It will not load for me since this morning ({})",
            i % 50
        );
        statuses.push(w.mastodon.add_mention(&format!("user{i}"), &text).status_id);
    }

    // One incident card, with every member on it.
    w.slack
        .wait_until(LONG, "the incident card to count every member", |_| {
            incident_card(&w)
                .is_some_and(|c| blocks_text(&c).contains(&format!("*{}* mentions", "2,000")))
        })
        .await;
    let card = incident_card(&w).unwrap();
    // Every held card comes due and is skipped: nothing more reaches the channel.
    eventually(LONG, "the members' own card jobs to be settled", || {
        bot.log().matches("no card of its own").count() >= STORM
    })
    .await;
    let storm = chat_calls(&w);
    let posted = storm.0 - before.0;
    let updated = storm.1 - before.1;
    eprintln!(
        "storm of {STORM}: {posted} chat.postMessage, {updated} chat.update, {} answered 429",
        w.slack.rate_limited()
    );
    assert!(posted <= 3, "a handful of messages: {posted}");
    assert!(updated <= 8, "a bounded number of refreshes: {updated}");
    assert_eq!(
        w.slack.messages(CHANNEL).len(),
        1,
        "one card in the channel, no member's own"
    );
    let pages: Vec<SlackMessage> = w
        .slack
        .thread(CHANNEL, &card.ts)
        .into_iter()
        .filter(|m| m.text.contains("(on call)"))
        .collect();
    assert_eq!(pages.len(), 1, "on call paged once: {pages:?}");
    assert!(pages[0].text.contains(&format!("<@{ANA}>")));

    // Members are listed and opened one by one.
    let listed = w
        .slack_driver()
        .slash_command(ANA, "ana", "incident 1")
        .await;
    let listed = listed.to_string();
    assert!(listed.contains("page 1 of 100"), "{listed}");
    assert!(listed.contains("#2"), "{listed}");

    // One answer for all: Ana writes it once.
    let values = json!({
        "lang_en": {"text": {"type": "plain_text_input", "value": null}},
        "lang_any": {"text": {"type": "plain_text_input", "value": "Sorry {author}, the app is back: please try again."}},
    });
    let answer = w
        .slack_driver()
        .submit_form_on(&card.ts, ANA, "ana", "mbi_answer", values)
        .await;
    assert!(answer.is_null(), "the form is accepted: {answer}");

    // Killed while the replies are going out, then restarted on the same store.
    replies_at_least(&w, &bot, STORM / 3).await;
    bot.kill().await;
    let during = w.mastodon.posted_statuses().len();
    let bot = w.start_bot().await;
    w.mastodon.wait_for_posts(STORM, LONG).await;
    w.slack
        .wait_until(LONG, "the card to show every member answered", |s| {
            s.message(CHANNEL, &card.ts).is_some_and(|m| {
                let text = blocks_text(&m);
                text.contains("(done)") && text.contains("2,000 of 2,000 answered")
            })
        })
        .await;
    // Whatever was still on its way has settled: nothing more goes out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(bot);
    let replies = w.mastodon.posted_statuses();
    let mut per_status: HashMap<String, usize> = HashMap::new();
    for r in &replies {
        *per_status
            .entry(r.in_reply_to_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_status.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "a customer answered twice: {twice:?}");
    assert_eq!(replies.len(), STORM, "one reply per member");
    for s in &statuses {
        assert_eq!(per_status.get(s), Some(&1), "status {s} answered once");
    }
    assert!(replies
        .iter()
        .all(|r| r.status.contains("@user") && r.status.contains("the app is back")));
    let after = chat_calls(&w);
    eprintln!(
        "bulk answer of {STORM} ({during} published before the SIGKILL): {} chat.postMessage, {} chat.update",
        after.0 - storm.0,
        after.1 - storm.1
    );
    assert!(after.0 - storm.0 <= 4, "thread lines about the answer only");
    assert_eq!(w.slack.messages(CHANNEL).len(), 1, "still one card");
}

fn ticket_cards(w: &World) -> Vec<SlackMessage> {
    w.slack
        .messages(CHANNEL)
        .into_iter()
        .filter(|m| {
            m.metadata
                .as_ref()
                .is_some_and(|md| md["event_type"] == "mentionbridge_ticket")
        })
        .collect()
}

/// The incident card on Discord: its message id.
fn discord_incident(w: &World) -> Option<String> {
    w.discord
        .messages(D_CHANNEL)
        .into_iter()
        .find(|m| {
            m.embeds[0]["title"]
                .as_str()
                .is_some_and(|t| t.contains("Incident #1"))
        })
        .map(|m| m.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_both_surfaces_an_incident_is_listed_split_and_its_answer_paused_and_cancelled() {
    let w = World::both().await;
    w.page_on_call.store(true, Ordering::SeqCst);
    no_throttle(&w);
    // One reply every two seconds: slow enough to pause in the middle.
    *w.extra_config.lock().unwrap() = "
[storms]
hold_seconds = 4
update_seconds = 1
bulk_mastodon_per_hour = 1800
"
    .into();
    let bot = w.start_bot().await;
    w.mastodon
        .wait_for_requests("GET", "/api/v1/notifications", 2, WAIT)
        .await;
    let statuses: Vec<String> = (0..8)
        .map(|i| {
            w.mastodon
                .add_mention(
                    &format!("fan{i}"),
                    &format!("@brandco my order never arrived and support is silent #{i}"),
                )
                .status_id
        })
        .collect();
    w.slack
        .wait_until(LONG, "the Slack incident card with every member", |_| {
            incident_card(&w).is_some_and(|c| blocks_text(&c).contains("*8* mentions"))
        })
        .await;
    let card = incident_card(&w).unwrap();
    eventually(LONG, "the Discord incident card", || {
        discord_incident(&w).is_some()
    })
    .await;
    let on_discord = discord_incident(&w).unwrap();
    assert!(
        ticket_cards(&w).is_empty(),
        "no member has a card of its own"
    );
    w.slack
        .wait_until(LONG, "the page in the incident's thread", |s| {
            s.thread(CHANNEL, &card.ts)
                .iter()
                .any(|m| m.text.contains("(on call)"))
        })
        .await;
    let pages = w
        .slack
        .thread(CHANNEL, &card.ts)
        .into_iter()
        .filter(|m| m.text.contains("(on call)"))
        .count();
    assert_eq!(pages, 1, "paged once");

    // Listed on Discord, split off on Slack: the member gets a card of its own.
    let discord = w.discord_driver();
    let listed = discord
        .interact(
            Who::Ana,
            discord.command_payload(
                Who::Ana,
                json!([{"type": 1, "name": "incident", "options": [
                    {"type": 4, "name": "incident", "value": 1}
                ]}]),
            ),
        )
        .await;
    let listed = listed["data"]["content"].as_str().unwrap_or_default();
    assert!(listed.contains("8 members"), "{listed}");
    assert!(listed.contains("#3"), "{listed}");
    let split = w.slack_driver().slash_command(ANA, "ana", "split 3").await;
    assert!(split.to_string().contains("left incident #1"), "{split}");
    eventually(LONG, "ticket 3's own card", || {
        ticket_cards(&w).iter().any(|c| ticket_of(c) == 3)
    })
    .await;
    let own = ticket_cards(&w)
        .into_iter()
        .find(|c| ticket_of(c) == 3)
        .unwrap();
    let split_status = statuses
        .iter()
        .find(|s| blocks_text(&own).contains(s.as_str()))
        .expect("the card links its post")
        .clone();
    w.wait_card_text(&card, "1 split off").await;

    // The answer is written on Discord, one text for every language.
    let answer = "mbi:answer:1";
    let opened = discord
        .interact(
            Who::Ana,
            w.discord.component_interaction(
                D_CHANNEL,
                &on_discord,
                D_ANA,
                "ana",
                &[D_SUPPORT_ROLE],
                answer,
            ),
        )
        .await;
    assert_eq!(opened["type"], 9, "the bulk answer form opens: {opened}");
    let rows = opened["data"]["components"].as_array().unwrap().len();
    assert!(
        (1..=5).contains(&rows),
        "Discord forms hold five fields: {rows}"
    );
    let submitted = discord
        .interact(
            Who::Ana,
            discord.form_submission(
                Who::Ana,
                "mbi:bulk:1",
                &[
                    ("lang:en", ""),
                    ("lang:", "Sorry {author}, it is on its way now."),
                ],
            ),
        )
        .await;
    assert!(
        submitted["data"]["content"]
            .as_str()
            .is_some_and(|s| s.contains("started")),
        "{submitted}"
    );

    // Paused on Slack after the first replies: nothing more goes out meanwhile.
    w.wait_card_text(&card, "(going out)").await;
    replies_at_least(&w, &bot, 1).await;
    w.press(&card, ANA, "mbi_pause").await;
    w.wait_card_text(&card, "(paused)").await;
    let at_pause = w.mastodon.posted_statuses().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let paused = w.mastodon.posted_statuses().len();
    assert!(paused <= at_pause + 1, "{at_pause} then {paused}");
    // Resumed, then cancelled: what was queued goes out, nothing after it.
    w.press(&w.card_now(&card), ANA, "mbi_resume").await;
    w.wait_card_text(&card, "(going out)").await;
    replies_at_least(&w, &bot, paused + 1).await;
    w.press(&w.card_now(&card), ANA, "mbi_cancel").await;
    w.wait_card_text(&card, "(cancelled)").await;
    let at_cancel = w.mastodon.posted_statuses().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replies = w.mastodon.posted_statuses();
    assert!(
        replies.len() <= at_cancel + 1,
        "{at_cancel} then {}",
        replies.len()
    );
    assert!(
        replies.len() < 7,
        "cancelled before every member was answered"
    );
    let mut answered: Vec<&str> = replies
        .iter()
        .filter_map(|r| r.in_reply_to_id.as_deref())
        .collect();
    answered.sort();
    let before = answered.len();
    answered.dedup();
    assert_eq!(answered.len(), before, "nobody answered twice");
    assert!(
        !answered.contains(&split_status.as_str()),
        "the split-off member is answered on its own, not by the bulk answer"
    );
    let stats = w
        .slack_driver()
        .slash_command(ANA, "ana", "stats 24h")
        .await;
    assert!(
        stats.to_string().contains("Incidents: 1 (7 mentions"),
        "{stats}"
    );
}
