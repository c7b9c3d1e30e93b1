//! What only Slack has: its card's Block Kit details, Socket Mode drops, thread messages
//! as internal notes, user groups, Slack's own rate limits. The scenarios every surface
//! shares are in `scenarios.rs`.

use crate::drivers::Driver;
use crate::fakes::Fault;
use crate::harness::*;

#[tokio::test]
async fn a_mention_becomes_a_card_with_everything_an_agent_needs() {
    let w = World::new().await;
    let ids = w.mastodon.add_mention(
        "alice@other.social",
        "My order #123 never arrived & I'm upset",
    );
    let _bot = w.start_bot().await;

    let card = w.card(1).await;
    let text = blocks_text(&card);
    assert!(text.contains("Mastodon"), "{text}");
    assert!(text.contains("@alice@other.social"), "{text}");
    assert!(
        text.contains("My order #123 never arrived &amp; I'm upset"),
        "{text}"
    );
    assert!(
        text.contains(&ids.status_id),
        "link to the original: {text}"
    );
    assert!(text.contains("*Open*"), "{text}");
    assert!(
        text.contains("{ago}"),
        "age, rendered by Slack in each reader's zone: {text}"
    );
    assert_eq!(
        buttons(&card),
        ["mb_claim", "mb_reply", "mb_dm", "mb_resolve", "mb_ignore"]
    );
    let meta = card.metadata.as_ref().unwrap();
    assert_eq!(meta["event_type"], "mentionbridge_ticket");
    assert_eq!(meta["event_payload"]["remote_id"], ids.status_id.as_str());
    assert!(card
        .text
        .contains("Mastodon mention #1 from @alice@other.social"));
}

#[tokio::test]
async fn mastodon_429_and_5xx_are_retried_with_the_servers_hint_and_nothing_is_doubled() {
    let w = World::new().await;
    w.mastodon.fail_next(
        "/api/v1/notifications",
        vec![Fault::too_many_requests(1), Fault::status(503)],
    );
    w.mastodon.add_mention("alice", "are you there?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;

    w.mastodon.fail_next(
        "/api/v1/statuses",
        vec![Fault::too_many_requests(1), Fault::status(502)],
    );
    w.reply_via_modal(&card, ANA, "yes!").await;
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted[0].status, "@alice yes!");
    w.wait_card_text(&card, "published").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1);
    assert_eq!(w.cards().len(), 1);
    let log = bot.log();
    assert!(
        log.contains("retry_in_ms=1000"),
        "Retry-After: 1 was honoured:\n{log}"
    );
}

#[tokio::test]
async fn messages_in_a_cards_thread_are_internal_notes_never_relayed() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "my password is leaked?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;

    w.slack_driver()
        .post_in_thread(
            ANA,
            &card.ts,
            "1800000000.000100",
            "Internal: customer is a VIP, check the account first",
        )
        .await;
    bot.wait_for_log("internal note recorded (not relayed)", WAIT)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        w.mastodon.posted_statuses().is_empty(),
        "nothing goes to the customer"
    );
}

#[tokio::test]
async fn unknown_buttons_are_refused_and_change_nothing() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "hi");
    let bot = w.start_bot().await;
    let card = w.card(1).await;
    let payload = crate::fakes::slack::block_actions(
        ANA,
        "ana",
        "mb_teleport",
        "1",
        CHANNEL,
        &card.ts,
        &crate::fakes::slack::new_trigger_id(),
    );
    w.slack_driver().interactive(payload).await;
    w.wait_ephemeral(ANA, "not one mentionbridge knows").await;
    bot.wait_for_log("unknown button pressed", WAIT).await;
    assert_eq!(w.slack.count("chat.update"), 0);
}

#[tokio::test]
async fn socket_mode_drops_are_survived_and_work_continues() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "first");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    let before = w.slack.connections();

    w.slack.drop_socket();
    w.slack.wait_for_connection(before + 1, WAIT).await;
    w.slack
        .wait_until(WAIT, "an open socket again", |s| s.open_connections() >= 1)
        .await;
    w.press(&card, ANA, "mb_claim").await;
    w.wait_card_text(&card, "held by <@U0ANA>").await;

    let before = w.slack.connections();
    w.slack.send_disconnect("refresh_requested");
    w.slack.wait_for_connection(before + 1, WAIT).await;
    w.slack
        .wait_until(WAIT, "an open socket again", |s| s.open_connections() >= 1)
        .await;
    w.press(&card, ANA, "mb_resolve").await;
    w.wait_card_text(&card, "*Resolved*").await;
}

#[tokio::test]
async fn members_of_the_agents_user_group_may_act() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "group test");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    w.slack
        .wait_until(WAIT, "the user group to be resolved", |s| {
            s.count("usergroups.users.list") >= 1
        })
        .await;
    w.press(&card, GIA, "mb_claim").await;
    w.wait_card_text(&card, "held by <@U0GIA>").await;
}

#[tokio::test]
async fn slack_429_is_honoured_and_the_card_is_still_posted_once() {
    let w = World::new().await;
    w.slack.fail_next(
        "chat.postMessage",
        vec![crate::fakes::Fault::too_many_requests(1)],
    );
    w.mastodon.add_mention("alice", "rate limited card");
    let bot = w.start_bot().await;
    w.card(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.cards().len(), 1);
    assert_eq!(
        w.slack.count("chat.postMessage"),
        2,
        "one refused, one accepted"
    );
    let log = bot.log();
    assert!(
        log.contains("rate-limited; holding back every call through this gate")
            && log.contains("chat.postMessage C0SUPPORT"),
        "the 429 held the channel's gate and the post waited its turn: {log}"
    );
    // Secrets never reach the log, even at debug level.
    for secret in [
        w.slack.bot_token(),
        w.slack.app_token(),
        w.mastodon.token(),
        SIGNING_SECRET,
    ] {
        assert!(!log.contains(secret), "a secret leaked into the log");
    }
}

#[tokio::test]
async fn a_hashtag_watch_turns_public_posts_into_tickets_without_duplicates() {
    let w = World::new().await;
    *w.mastodon_extra.lock().unwrap() = "hashtags = [\"#brandco\"]".into();
    w.mastodon
        .add_status("dana", "Loving the new #BrandCo app!");
    w.mastodon.add_status("erik", "unrelated #weather post");
    let _bot = w.start_bot().await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    assert!(d.card_text(&card).contains("Loving the new #BrandCo app!"));

    // A post that both mentions us and carries the hashtag is one ticket, not two; more
    // posts after the first poll are read from where the last one stopped.
    w.mastodon.add_mention("frank", "help #brandco");
    for i in 0..3 {
        w.mastodon.add_status("gina", &format!("#brandco post {i}"));
    }
    d.card(5).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        d.cards().len(),
        5,
        "{:?}",
        d.cards().iter().map(|c| d.card_text(c)).collect::<Vec<_>>()
    );
    assert!(w.mastodon.count("GET", "/api/v1/timelines/tag/brandco") >= 2);
}
