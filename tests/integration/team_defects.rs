//! Defects found when the desk was tried as a team would use it: a busy channel under
//! Slack's and Discord's pacing, X's reply counting, `{author}`, on-call overrides typed
//! with a mention, and one person working on both surfaces.

use crate::drivers::{Driver, Who};
use crate::fakes::x::FakeX;
use crate::harness::*;
use std::time::Duration;

/// Long enough for 20 cards at one per second, with room on a loaded machine.
const PACED_WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn twenty_cards_under_slacks_channel_pace_draw_a_handful_of_429s_and_post_once_each() {
    let w = World::new().await;
    w.slack.set_channel_pace(Some(Duration::from_secs(1)));
    // The desk's own pace, as a new user gets it.
    w.slack_extra.lock().unwrap().clear();
    for i in 0..20 {
        w.mastodon
            .add_mention(&format!("customer{i}"), &format!("help {i}"));
    }
    let _bot = w.start_bot().await;
    w.slack
        .wait_until(PACED_WAIT, "20 cards", |s| {
            s.messages(CHANNEL)
                .iter()
                .filter(|m| m.metadata.is_some())
                .count()
                >= 20
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tickets: Vec<u64> = w.cards().iter().map(ticket_of).collect();
    assert_eq!(
        tickets,
        (1..=20).collect::<Vec<_>>(),
        "each card exactly once"
    );
    let refused = w.slack.rate_limited();
    eprintln!("Slack answered {refused} 429s for 20 cards");
    // The desk paces itself at one a second with a burst of 3; the fake allows no
    // burst at all, so the burst's second post may be refused, and that 429 holds
    // every worker back.
    assert!(
        refused <= 2,
        "{refused} posts were refused with 429: the desk must keep ahead of the pace"
    );
}

#[tokio::test]
async fn twenty_cards_under_discords_route_buckets_draw_a_handful_of_429s() {
    let w = World::discord().await;
    w.discord.set_rate_limit(3, Duration::from_secs(1));
    w.discord.set_enforce_rate_limit(true);
    for i in 0..20 {
        w.mastodon
            .add_mention(&format!("customer{i}"), &format!("help {i}"));
    }
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    w.discord
        .wait_until(PACED_WAIT, "20 Discord cards with threads", |f| {
            f.messages(D_CHANNEL)
                .iter()
                .filter(|m| m.embeds[0]["title"].is_string() && f.thread_of(&m.id).is_some())
                .count()
                >= 20
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tickets: Vec<u64> = d.cards().iter().map(|c| c.ticket).collect();
    assert_eq!(
        tickets,
        (1..=20).collect::<Vec<_>>(),
        "each card exactly once"
    );
    let refused = w.discord.rate_limited();
    eprintln!("Discord answered {refused} 429s for 20 cards");
    assert!(refused <= 5, "{refused} requests were refused with 429");
}

#[tokio::test]
async fn an_x_reply_of_exactly_280_characters_goes_out_with_xs_own_mention() {
    let w = World::new().await;
    let x = FakeX::start().await;
    let mention = x.add_mention("alice", "where is my order?");
    x.add_mention("carol", "me too");
    let _bot = crate::x_flows::with_oauth1(&w, &x, 100_000, &[]).await;
    let d = w.slack_driver();
    d.card(2).await;
    let full = format!("{} ok", "a".repeat(277));
    assert_eq!(full.chars().count(), 280);
    d.reply_via_modal(&d.card_with("where is my order"), Who::Ana, &full)
        .await
        .expect("280 weighted characters fit: X does not count the mention it adds");
    let posted = x.wait_for_tweets(1, WAIT).await;
    assert_eq!(posted[0].sent, full, "the desk adds no @handle on X");
    assert_eq!(
        posted[0].text,
        format!("@alice {full}"),
        "X filled in the mention itself"
    );
    assert_eq!(
        posted[0].in_reply_to_tweet_id.as_deref(),
        Some(mention.as_str())
    );
    // A mention the agent types is part of the text, and counts.
    let typed = format!("@carol {}", "b".repeat(274));
    let refused = d
        .reply_via_modal(&d.card_with("me too"), Who::Ana, &typed)
        .await
        .unwrap_err();
    assert!(refused.contains("281"), "{refused}");
}

#[tokio::test]
async fn author_is_the_handle_in_canned_replies_as_in_the_off_hours_answer() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "refund please");
    let _bot = w.start_bot().await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    let (filled, sent) = d
        .reply_with_canned(&card, Who::Ana, "refund", &|t| t.to_string())
        .await;
    assert!(filled.starts_with("Hi @alice, your refund"), "{filled}");
    sent.expect("accepted");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert!(
        posted[0].status.starts_with("Hi @alice, your refund"),
        "mentioned once, not prefixed again: {:?}",
        posted[0].status
    );
}

#[tokio::test]
async fn on_call_overrides_take_the_mentions_slack_and_discord_send() {
    let w = World::both().await;
    w.mastodon.add_mention("alice", "hello");
    let _bot = w.start_bot().await;
    let slack = w.slack_driver();
    let discord = w.discord_driver();
    slack.card(1).await;

    let said = slack
        .command(Who::Ana, &format!("oncall override <@{BEN}|ben> for 4h"))
        .await;
    assert!(said.contains("is on call until"), "{said}");
    let now = slack.command(Who::Ana, "oncall").await;
    assert!(now.contains(&format!("<@{BEN}>")), "{now}");

    let said = discord
        .command(Who::Ana, &format!("oncall override <@!{D_BEN}> 30m"))
        .await;
    assert!(said.contains("is on call until"), "{said}");

    // Anything else is refused with a clear answer, and nothing typed panics the desk.
    for (who, length) in [
        ("<!channel>", "4h"),
        ("me", "99999999999999999999h"),
        ("me", "9999999999999999h"),
        ("me", "-4h"),
        ("me", "４h"),
    ] {
        let said = slack
            .command(Who::Ana, &format!("oncall override {who} {length}"))
            .await;
        assert!(
            said.contains("not an agent") || said.contains("for how long"),
            "{who} {length}: {said}"
        );
    }
    for ticket in ["#1", "99999999999999999999", "-3", "١"] {
        let said = slack.command(Who::Ana, &format!("claim {ticket}")).await;
        assert!(!said.is_empty(), "{ticket}");
    }
    let said = slack.command(Who::Ana, "claim #1").await;
    assert!(
        said.contains("You already hold") || said.contains("Done"),
        "{said}"
    );
}

#[tokio::test]
async fn one_person_on_both_surfaces_claims_on_discord_and_resolves_on_slack() {
    const KIM: &str = "U0KIM";
    const D_KIM: &str = "1200000000000000009";
    let w = World::both().await;
    *w.extra_config.lock().unwrap() =
        format!("\n[[agents]]\nname = \"Kim\"\nslack = \"{KIM}\"\ndiscord = \"{D_KIM}\"\n");
    w.mastodon.add_mention("alice", "two surfaces");
    let _bot = w.start_bot().await;
    let d = w.discord_driver();
    let dcard = d.card(1).await;
    let card = w.card(1).await;

    // Kim is in no agent list but [[agents]]: she claims on Discord…
    let press = w.discord.component_interaction(
        D_CHANNEL,
        &dcard.id,
        D_KIM,
        "kim",
        &[],
        &format!("mb:claim:{}", dcard.ticket),
    );
    let (_, answer) = d.deliver(&press).await;
    assert_eq!(answer["type"], 6, "claimed, no refusal: {answer}");
    w.wait_card_text(&card, "held by").await;

    // …and resolves on Slack as the same person.
    w.press(&card, KIM, "mb_resolve").await;
    w.wait_card_text(&card, "*Resolved*").await;
    assert!(
        w.slack.ephemerals().iter().all(|e| e["user"] != KIM),
        "Kim was refused nothing"
    );
}
