//! Nothing is lost, nothing is sent twice: the bot is SIGKILLed at the worst moments and
//! restarted on the same store, against the same fakes.

use crate::harness::*;

#[tokio::test]
async fn killed_while_mastodon_was_answering_then_restarted_finds_its_reply_instead_of_sending_again(
) {
    let w = World::new().await;
    // Some Mastodon-compatible servers ignore Idempotency-Key: the retry must look first.
    w.mastodon.set_ignore_idempotency(true);
    w.mastodon.add_mention("alice", "refund status?");
    let bot = w.start_bot().await;
    let card = w.card(1).await;

    w.mastodon.hold_status_posts(true);
    w.reply_via_modal(&card, ANA, "Refund sent.").await;
    w.mastodon.wait_for_posts(1, WAIT).await; // the server did the work, the bot never heard
    bot.kill().await;
    w.mastodon.hold_status_posts(false);

    let bot = w.start_bot().await;
    let card = w.wait_card_text(&card, "published").await;
    bot.wait_for_log("already published before the restart", WAIT)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let posted = w.mastodon.posted_statuses();
    assert_eq!(posted.len(), 1, "no second status: {posted:?}");
    assert!(blocks_text(&card).contains(&posted[0].id));
}

#[tokio::test]
async fn killed_before_posting_a_card_then_restarted_posts_exactly_one_card() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "first");
    let bot = w
        .start_bot_with(&[("MENTIONBRIDGE_FAILPOINT", "before-post-card")])
        .await;
    bot.wait_for_log("FAILPOINT before-post-card reached", WAIT)
        .await;
    assert!(w.cards().is_empty());
    bot.kill().await;

    let _bot = w.start_bot().await;
    w.card(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(w.cards().len(), 1);
}

#[tokio::test]
async fn killed_after_slack_posted_the_card_but_before_it_was_recorded_adopts_that_card() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "hello?");
    // Slack takes the message but the bot dies before reading the answer.
    w.slack.lose_next_answers("chat.postMessage", 1);
    let bot = w.start_bot().await;
    w.card(1).await; // in Slack, but the bot never heard back
    bot.kill().await;

    let bot = w.start_bot().await;
    bot.wait_for_log(
        "card was already posted before the restart; adopting it",
        WAIT,
    )
    .await;
    let card = w.card(1).await;
    w.press(&card, ANA, "mb_claim").await;
    w.wait_card_text(&card, "held by <@U0ANA>").await;
    assert_eq!(w.cards().len(), 1, "one card, and it is the live one");
}

#[tokio::test]
async fn a_restart_skips_nothing_and_reposts_nothing() {
    let w = World::new().await;
    w.mastodon.add_mention("a1", "one");
    w.mastodon.add_mention("a2", "two");
    let bot = w.start_bot().await;
    w.card(2).await;
    let (status, log) = bot.terminate().await;
    assert!(status.success(), "graceful exit on SIGTERM:\n{log}");
    assert!(log.contains("store flushed"), "{log}");

    // Mentions that arrive while the bot is down, more than one page of them.
    for i in 0..85 {
        w.mastodon
            .add_mention(&format!("late{i}"), &format!("while you slept {i}"));
    }
    let _bot = w.start_bot().await;
    w.card(87).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let cards = w.cards();
    assert_eq!(cards.len(), 87);
    let mut tickets: Vec<u64> = cards.iter().map(ticket_of).collect();
    tickets.dedup();
    assert_eq!(
        tickets,
        (1..=87).collect::<Vec<_>>(),
        "one card per mention, in order"
    );
}
