//! A team working in Slack and Discord at once sees one truth.

use crate::drivers::{Driver, Who};
use crate::harness::*;

#[tokio::test]
async fn a_claim_in_discord_shows_in_slack_and_the_reply_goes_out_once() {
    let w = World::both().await;
    w.mastodon.add_mention("alice", "anyone there?");
    let _bot = w.start_bot().await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    let (s_card, d_card) = (slack.card(1).await, discord.card(1).await);

    discord.press(&d_card, Who::Ana, "claim").await;
    let text = slack.wait_card_text(&s_card, "ana").await;
    assert!(
        text.contains("*ana* (Discord)") && text.contains("Claimed"),
        "{text}"
    );
    slack
        .wait_note(&s_card, "*ana* (Discord) claimed this ticket")
        .await;
    discord.wait_note(&d_card, "claimed this ticket").await;

    // Ana holds it: Ben cannot reply or resolve from Slack.
    slack.press(&s_card, Who::Ben, "reply").await;
    slack.wait_told(Who::Ben, "held by ana").await;
    assert_eq!(slack.forms_opened(), 0);

    discord
        .reply_via_modal(&d_card, Who::Ana, "Yes, here to help!")
        .await
        .expect("accepted");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    slack.wait_card_text(&s_card, &posted[0].id).await;
    discord.wait_card_text(&d_card, &posted[0].id).await;
    slack.press(&s_card, Who::Ben, "resolve").await;
    crate::fakes::wait_until(WAIT, "Ben to be refused twice", || {
        slack
            .told(Who::Ben)
            .iter()
            .filter(|t| t.contains("held by ana"))
            .count()
            == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1);
}

#[tokio::test]
async fn a_claim_race_across_surfaces_has_exactly_one_winner() {
    let w = World::both().await;
    w.mastodon.add_mention("alice", "race across");
    let _bot = w.start_bot().await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    let (s_card, d_card) = (slack.card(1).await, discord.card(1).await);

    tokio::join!(
        slack.press(&s_card, Who::Ana, "claim"),
        discord.press(&d_card, Who::Ben, "claim")
    );
    crate::fakes::wait_until(WAIT, "the loser to be told", || {
        slack
            .told(Who::Ana)
            .iter()
            .chain(discord.told(Who::Ben).iter())
            .any(|t| t.contains("Already claimed by"))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let claims = |notes: Vec<String>| {
        notes
            .into_iter()
            .filter(|n| n.contains("claimed this ticket"))
            .count()
    };
    assert_eq!(claims(slack.notes(&s_card)), 1);
    assert_eq!(claims(discord.notes(&d_card)), 1);
    let slack_won = discord
        .told(Who::Ben)
        .iter()
        .any(|t| t.contains("Already claimed by"));
    let slack_text = slack.card_text(&s_card);
    let discord_text = discord.card_text(&d_card);
    if slack_won {
        assert!(
            slack_text.contains("<@U0ANA>") && discord_text.contains("**ana** (Slack)"),
            "{discord_text}"
        );
    } else {
        assert!(
            slack_text.contains("*ben* (Discord)") && discord_text.contains(&format!("<@{D_BEN}>")),
            "{slack_text}"
        );
    }
}

#[tokio::test]
async fn a_deleted_discord_card_is_reported_in_slack_and_slack_keeps_working() {
    let w = World::both().await;
    w.mastodon.add_mention("alice", "deleted card");
    let bot = w.start_bot().await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    let (s_card, d_card) = (slack.card(1).await, discord.card(1).await);
    w.discord.delete_message(D_CHANNEL, &d_card.id);

    slack.press(&s_card, Who::Ana, "claim").await;
    slack.wait_card_text(&s_card, "<@U0ANA>").await;
    slack.wait_note(&s_card, "Discord card is gone").await;
    bot.wait_for_log("card is gone; reported on the other surfaces", WAIT)
        .await;

    // Later actions keep Slack in sync and leave the lost card alone.
    let patches = discord.card_updates();
    slack.press(&s_card, Who::Ana, "resolve").await;
    slack.wait_card_text(&s_card, "Resolved").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        discord.card_updates(),
        patches,
        "the lost card is no longer updated"
    );
    let metrics = w.metrics().await;
    assert!(
        metrics.contains("mentionbridge_cards_lost_total{surface=\"discord\"} 1")
            && metrics.contains("mentionbridge_cards_lost_total{surface=\"slack\"} 0"),
        "{metrics}"
    );
}

/// A refusal that is not "this message is gone" (the bot lost access to the channel for a
/// while, a token was rotated) never makes the desk forget the card: once access is back,
/// the next change reaches it again.
#[tokio::test]
async fn a_card_refused_for_a_while_is_kept_and_synced_again_later() {
    let w = World::both().await;
    w.mastodon.add_mention("alice", "access comes and goes");
    let bot = w.start_bot().await;
    let (slack, discord) = (w.slack_driver(), w.discord_driver());
    let (s_card, d_card) = (slack.card(1).await, discord.card(1).await);
    w.discord.set_missing_access(D_CHANNEL, true);
    slack.press(&s_card, Who::Ana, "claim").await;
    slack.wait_card_text(&s_card, "<@U0ANA>").await;
    bot.wait_for_log("card update or thread line refused; the card is kept", WAIT)
        .await;
    w.discord.set_missing_access(D_CHANNEL, false);
    slack.press(&s_card, Who::Ana, "resolve").await;
    discord.wait_card_text(&d_card, "Resolved").await;
    assert!(
        !slack
            .notes(&s_card)
            .iter()
            .any(|n| n.contains("card is gone")),
        "{:?}",
        slack.notes(&s_card)
    );
}
