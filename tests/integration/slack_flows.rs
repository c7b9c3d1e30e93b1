//! The support team's day in Slack, end to end: the real binary against fake Mastodon and
//! fake Slack (Socket Mode).

use crate::fakes::mastodon::IdStyle;
use crate::fakes::Fault;
use crate::harness::*;
use serde_json::Value;

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
        ["mb_claim", "mb_reply", "mb_resolve", "mb_ignore"]
    );
    let meta = card.metadata.as_ref().unwrap();
    assert_eq!(meta["event_type"], "mentionbridge_ticket");
    assert_eq!(meta["event_payload"]["remote_id"], ids.status_id.as_str());
    assert!(card
        .text
        .contains("Mastodon mention #1 from @alice@other.social"));
}

#[tokio::test]
async fn claim_updates_the_card_in_place_and_notes_it_in_the_thread() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "help please");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;

    let ack = w.press(&card, ANA, "mb_claim").await;
    assert_eq!(
        ack,
        Value::Null,
        "button presses are acknowledged empty, at once"
    );
    let card = w.wait_card_text(&card, "held by <@U0ANA>").await;
    assert!(blocks_text(&card).contains("*Claimed*"));
    assert_eq!(
        buttons(&card),
        ["mb_reply", "mb_resolve", "mb_unclaim", "mb_ignore"]
    );
    w.wait_note(&card, "<@U0ANA> claimed this ticket").await;

    w.press(&card, ANA, "mb_unclaim").await;
    let card = w.wait_card_text(&card, "*Open*").await;
    assert_eq!(buttons(&card)[0], "mb_claim");
    w.wait_note(&card, "released this ticket").await;
}

#[tokio::test]
async fn reply_through_the_modal_is_published_once_in_the_customers_thread() {
    let w = World::new().await;
    w.mastodon.set_id_style(IdStyle::Ulid);
    let ids = w
        .mastodon
        .mention("bob@elsewhere.example", "is the app down?")
        .visibility("unlisted")
        .add();
    let _bot = w.start_bot().await;
    let card = w.card(1).await;

    let ack = w
        .reply_via_modal(&card, ANA, "Not down: we are fixing a login issue.")
        .await;
    assert_eq!(ack, Value::Null, "accepted: the modal closes");
    let modal = &w.slack.views()[0];
    let modal_text = modal.to_string();
    assert!(
        modal_text.contains("is the app down?"),
        "the mention is quoted: {modal_text}"
    );
    assert!(
        modal_text.contains("500 characters"),
        "the limit is shown: {modal_text}"
    );

    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].status,
        "@bob@elsewhere.example Not down: we are fixing a login issue."
    );
    assert_eq!(
        posted[0].in_reply_to_id.as_deref(),
        Some(ids.status_id.as_str())
    );
    assert_eq!(
        posted[0].visibility.as_deref(),
        Some("unlisted"),
        "never wider than the mention"
    );
    assert!(posted[0].idempotency_key.is_some());

    let card = w.wait_card_text(&card, "published").await;
    assert!(
        blocks_text(&card).contains(&posted[0].id),
        "the reply's link is on the card"
    );
    assert!(blocks_text(&card).contains("*Replied*"));
    w.wait_note(&card, "Reply published").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1, "exactly one status");
}

#[tokio::test]
async fn slash_command_lists_claims_replies_and_resolves_without_buttons() {
    let w = World::new().await;
    let ids = w.mastodon.add_mention("carol", "refund?");
    w.mastodon.add_mention("dave", "shipping to Malaysia?");
    let _bot = w.start_bot().await;
    let card = w.card(2).await;
    let _ = card;
    let first = w.card(1).await;

    let list = w.slash(ANA, "").await;
    assert_eq!(list["response_type"], "ephemeral");
    let list = list["text"].as_str().unwrap();
    assert!(
        list.contains("Open mention tickets (2)") && list.contains("#1") && list.contains("#2"),
        "{list}"
    );

    let claimed = w.slash(ANA, "claim 1").await;
    assert_eq!(claimed["text"], "Done: claimed ticket #1.");
    w.wait_card_text(&first, "held by <@U0ANA>").await;

    let replied = w
        .slash(ANA, "reply 1 Refund issued today, sorry for the wait!")
        .await;
    assert!(
        replied["text"].as_str().unwrap().contains("reply queued"),
        "{replied}"
    );
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(
        posted[0].status,
        "@carol Refund issued today, sorry for the wait!"
    );
    assert_eq!(
        posted[0].in_reply_to_id.as_deref(),
        Some(ids.status_id.as_str())
    );

    let resolved = w.slash(ANA, "resolve 1").await;
    assert_eq!(resolved["text"], "Done: resolved ticket #1.");
    let first = w.wait_card_text(&first, "*Resolved*").await;
    assert_eq!(buttons(&first), ["mb_reopen"]);
    w.wait_note(&first, "resolved this ticket").await;

    let list = w.slash(ANA, "list").await;
    assert!(
        list["text"]
            .as_str()
            .unwrap()
            .contains("Open mention tickets (1)"),
        "{list}"
    );
    let unknown = w.slash(ANA, "frobnicate 1").await;
    assert!(unknown["text"]
        .as_str()
        .unwrap()
        .contains("Unknown subcommand `frobnicate`"));
    let missing = w.slash(ANA, "claim 99").await;
    assert!(
        missing["text"]
            .as_str()
            .unwrap()
            .contains("There is no ticket 99"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_non_agent_is_refused_privately_and_nothing_changes() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "hello");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    let updates_before = w.slack.count("chat.update");

    w.press(&card, EVE, "mb_claim").await;
    let said = w.wait_ephemeral(EVE, "Only support agents").await;
    assert!(said.contains("Ticket #1"), "{said}");
    let cmd = w.slash(EVE, "reply 1 hi").await;
    assert!(
        cmd["text"]
            .as_str()
            .unwrap()
            .contains("Only support agents"),
        "{cmd}"
    );
    let list = w.slash(EVE, "").await;
    assert!(list["text"]
        .as_str()
        .unwrap()
        .contains("Only support agents"));

    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        w.slack.count("chat.update"),
        updates_before,
        "the card did not change"
    );
    assert!(w.notes(&card).is_empty());
    assert!(w.mastodon.posted_statuses().is_empty());
    assert!(w.slack.views().is_empty(), "no reply modal for a non-agent");
}

#[tokio::test]
async fn two_agents_claiming_at_once_have_exactly_one_winner() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "race me");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;

    let a = w
        .slack
        .block_actions_on(CHANNEL, &card.ts, ANA, "ana", "mb_claim");
    let b = w
        .slack
        .block_actions_on(CHANNEL, &card.ts, BEN, "ben", "mb_claim");
    let (ra, rb) = tokio::join!(
        w.slack.send_envelope("interactive", a),
        w.slack.send_envelope("interactive", b)
    );
    assert_eq!((ra, rb), (Value::Null, Value::Null));

    w.slack
        .wait_until(WAIT, "the loser to be told", |s| {
            s.ephemerals()
                .iter()
                .any(|e| e.to_string().contains("Already claimed by"))
        })
        .await;
    let card = w.wait_card_text(&card, "held by").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let claims: Vec<_> = w
        .notes(&card)
        .into_iter()
        .filter(|n| n.contains("claimed this ticket"))
        .collect();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let winner = if claims[0].contains(ANA) { ANA } else { BEN };
    let loser = if winner == ANA { BEN } else { ANA };
    let told = w.wait_ephemeral(loser, "Already claimed by").await;
    let winner_name = if winner == ANA { "ana" } else { "ben" };
    assert!(
        told.contains(&format!("Already claimed by {winner_name}")),
        "the loser learns who has it: {told}"
    );
    assert!(blocks_text(&w.card_now(&card)).contains(&format!("held by <@{winner}>")));
}

#[tokio::test]
async fn a_too_long_reply_is_refused_inside_the_modal_and_nothing_is_sent() {
    let w = World::new().await;
    w.mastodon.set_max_characters(100);
    w.mastodon.add_mention("alice", "tell me everything");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;

    let long = "word ".repeat(30);
    let ack = w.reply_via_modal(&card, ANA, &long).await;
    assert_eq!(ack["response_action"], "errors", "{ack}");
    let msg = ack["errors"]["reply"].as_str().unwrap();
    assert!(msg.contains("the limit is 100"), "{msg}");
    // A link counts as 23 however long it is: this fits.
    let with_link = format!(
        "see https://status.example.com/{} for details",
        "x".repeat(150)
    );
    let ok = w.reply_via_modal(&card, ANA, &with_link).await;
    assert_eq!(ok, Value::Null, "{ok}");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert!(posted[0].status.ends_with("for details"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        w.mastodon.posted_statuses().len(),
        1,
        "the refused reply was never sent"
    );

    let cmd = w.slash(ANA, &format!("reply 1 {long}")).await;
    assert!(
        cmd["text"]
            .as_str()
            .unwrap()
            .contains("still being published")
            || cmd["text"].as_str().unwrap().contains("the limit is 100")
    );
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
async fn a_reply_refused_for_good_is_shown_on_the_card_with_the_platforms_reason() {
    let w = World::new().await;
    let ids = w.mastodon.add_mention("alice", "delete me later");
    let _bot = w.start_bot().await;
    let card = w.card(1).await;
    w.mastodon.delete_status(&ids.status_id);

    w.reply_via_modal(&card, ANA, "sorry to see you go").await;
    let card = w.wait_card_text(&card, "not published").await;
    assert!(
        blocks_text(&card).contains("Record not found"),
        "{}",
        blocks_text(&card)
    );
    assert!(blocks_text(&card).contains("*Reply failed*"));
    w.wait_note(&card, "Reply not published").await;
    assert!(w.mastodon.posted_statuses().is_empty());
}

#[tokio::test]
async fn messages_in_a_cards_thread_are_internal_notes_never_relayed() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "my password is leaked?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;

    let event = crate::fakes::slack::thread_message_event(
        ANA,
        CHANNEL,
        &card.ts,
        "1800000000.000100",
        "Internal: customer is a VIP, check the account first",
    );
    w.slack.send_envelope("events_api", event).await;
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
    w.slack.send_envelope("interactive", payload).await;
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
        log.contains("Slack rate-limited chat.postMessage") && log.contains("retry_in_ms=1000"),
        "{log}"
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
