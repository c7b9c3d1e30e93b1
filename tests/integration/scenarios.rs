//! The support team's day, written once and run on every chat surface: the real binary
//! against fake Mastodon and the surface's fake (see `on_every_surface!` at the bottom).

use crate::drivers::{Driver, Who};
use crate::harness::*;

pub async fn claim_updates_the_card_in_place_and_notes_it_in_the_thread<D: Driver>(
    w: &World,
    d: &D,
) {
    w.mastodon.add_mention("alice", "help please");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;
    assert_eq!(
        d.buttons(&card),
        ["claim", "reply", "dm", "resolve", "ignore"]
    );

    d.press(&card, Who::Ana, "claim").await;
    let text = d.wait_card_text(&card, &d.mention(Who::Ana)).await;
    assert!(text.contains("Claimed"), "{text}");
    assert_eq!(
        d.buttons(&card),
        ["reply", "dm", "resolve", "unclaim", "ignore"]
    );
    d.wait_note(&card, "claimed this ticket").await;

    d.press(&card, Who::Ana, "unclaim").await;
    d.wait_card_text(&card, "Open").await;
    assert_eq!(d.buttons(&card)[0], "claim");
    d.wait_note(&card, "released this ticket").await;
}

pub async fn reply_through_the_form_is_published_once_in_the_customers_thread<D: Driver>(
    w: &World,
    d: &D,
) {
    w.mastodon
        .set_id_style(crate::fakes::mastodon::IdStyle::Ulid);
    let ids = w
        .mastodon
        .mention("bob@elsewhere.example", "is the app down?")
        .visibility("unlisted")
        .add();
    let _bot = w.start_bot().await;
    let card = d.card(1).await;

    d.reply_via_modal(&card, Who::Ana, "Not down: we are fixing a login issue.")
        .await
        .expect("accepted");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
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

    let text = d.wait_card_text(&card, &posted[0].id).await;
    assert!(
        text.contains("Replied"),
        "the reply's link and state are on the card: {text}"
    );
    d.wait_note(&card, "Reply published").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1, "exactly one status");
}

pub async fn slash_command_lists_claims_replies_and_resolves_without_buttons<D: Driver>(
    w: &World,
    d: &D,
) {
    let ids = w.mastodon.add_mention("carol", "refund?");
    w.mastodon.add_mention("dave", "shipping to Malaysia?");
    let _bot = w.start_bot().await;
    d.card(2).await;
    let first = d.card(1).await;

    let list = d.command(Who::Ana, "list").await;
    assert!(
        list.contains("Open mention tickets (2)") && list.contains("#1") && list.contains("#2"),
        "{list}"
    );
    assert_eq!(
        d.command(Who::Ana, "claim 1").await,
        "Done: claimed ticket #1."
    );
    d.wait_card_text(&first, &d.mention(Who::Ana)).await;

    let replied = d
        .command(Who::Ana, "reply 1 Refund issued today, sorry for the wait!")
        .await;
    assert!(replied.contains("reply queued"), "{replied}");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(
        posted[0].status,
        "@carol Refund issued today, sorry for the wait!"
    );
    assert_eq!(
        posted[0].in_reply_to_id.as_deref(),
        Some(ids.status_id.as_str())
    );

    assert_eq!(
        d.command(Who::Ana, "resolve 1").await,
        "Done: resolved ticket #1."
    );
    d.wait_card_text(&first, "Resolved").await;
    assert_eq!(d.buttons(&first), ["reopen"]);
    d.wait_note(&first, "resolved this ticket").await;
    assert!(d
        .command(Who::Ana, "list")
        .await
        .contains("Open mention tickets (1)"));
    assert!(d
        .command(Who::Ana, "claim 99")
        .await
        .contains("There is no ticket 99"));
}

pub async fn a_non_agent_is_refused_privately_and_nothing_changes<D: Driver>(w: &World, d: &D) {
    w.mastodon.add_mention("alice", "hello");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;
    let updates_before = d.card_updates();

    d.press(&card, Who::Eve, "claim").await;
    let said = d.wait_told(Who::Eve, "Only support agents").await;
    assert!(said.contains("Ticket #1"), "{said}");
    d.press(&card, Who::Eve, "reply").await;
    d.wait_told(Who::Eve, "Only support agents").await;
    assert!(d
        .command(Who::Eve, "reply 1 hi")
        .await
        .contains("Only support agents"));
    assert!(d
        .command(Who::Eve, "list")
        .await
        .contains("Only support agents"));

    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(d.card_updates(), updates_before, "the card did not change");
    assert!(d.notes(&card).is_empty());
    assert!(w.mastodon.posted_statuses().is_empty());
    assert_eq!(d.forms_opened(), 0, "no reply form for a non-agent");
}

pub async fn two_agents_claiming_at_once_have_exactly_one_winner<D: Driver>(w: &World, d: &D) {
    w.mastodon.add_mention("alice", "race me");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;

    tokio::join!(
        d.press(&card, Who::Ana, "claim"),
        d.press(&card, Who::Ben, "claim")
    );
    crate::fakes::wait_until(WAIT, "the loser to be told", || {
        [Who::Ana, Who::Ben]
            .iter()
            .any(|w| d.told(*w).iter().any(|t| t.contains("Already claimed by")))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let claims: Vec<_> = d
        .notes(&card)
        .into_iter()
        .filter(|n| n.contains("claimed this ticket"))
        .collect();
    assert_eq!(claims.len(), 1, "{claims:?}");
    // The line names the winner without pinging them.
    assert!(!claims[0].contains(&d.mention(Who::Ana)) && !claims[0].contains(&d.mention(Who::Ben)));
    let (winner, loser) = if claims[0].contains("ana") {
        (Who::Ana, Who::Ben)
    } else {
        (Who::Ben, Who::Ana)
    };
    let told = d.wait_told(loser, "Already claimed by").await;
    assert!(
        told.contains(&format!("{winner:?}").to_lowercase()),
        "the loser learns who has it: {told}"
    );
    assert!(
        d.told(winner).is_empty(),
        "the winner is not told anything: {:?}",
        d.told(winner)
    );
    assert!(d.card_text(&card).contains(&d.mention(winner)));
}

pub async fn a_too_long_reply_is_refused_and_nothing_is_sent<D: Driver>(w: &World, d: &D) {
    w.mastodon.set_max_characters(100);
    w.mastodon.add_mention("alice", "tell me everything");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;

    let long = "word ".repeat(30);
    let refusal = d.reply_via_modal(&card, Who::Ana, &long).await.unwrap_err();
    assert!(refusal.contains("the limit is 100"), "{refusal}");
    // A link counts as 23 however long it is: this fits.
    let with_link = format!(
        "see https://status.example.com/{} for details",
        "x".repeat(150)
    );
    d.reply_via_modal(&card, Who::Ana, &with_link)
        .await
        .expect("fits");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert!(posted[0].status.ends_with("for details"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        w.mastodon.posted_statuses().len(),
        1,
        "the refused reply was never sent"
    );
}

pub async fn a_reply_refused_for_good_is_shown_on_the_card_with_the_platforms_reason<D: Driver>(
    w: &World,
    d: &D,
) {
    let ids = w.mastodon.add_mention("alice", "delete me later");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;
    w.mastodon.delete_status(&ids.status_id);

    d.reply_via_modal(&card, Who::Ana, "sorry to see you go")
        .await
        .expect("accepted");
    let text = d.wait_card_text(&card, "not published").await;
    assert!(
        text.contains("Record not found") && text.contains("Reply failed"),
        "{text}"
    );
    d.wait_note(&card, "Reply not published").await;
    assert!(w.mastodon.posted_statuses().is_empty());
}

pub async fn killed_before_the_publish_then_restarted_sends_exactly_one_reply<D: Driver>(
    w: &World,
    d: &D,
) {
    let ids = w.mastodon.add_mention("alice", "where is my parcel?");
    let bot = w
        .start_bot_with(&[("MENTIONBRIDGE_FAILPOINT", "before-publish")])
        .await;
    let card = d.card(1).await;

    d.reply_via_modal(&card, Who::Ana, "It ships tomorrow.")
        .await
        .expect("accepted");
    bot.wait_for_log("FAILPOINT before-publish reached", WAIT)
        .await;
    assert!(
        w.mastodon.posted_statuses().is_empty(),
        "stopped before the send"
    );
    bot.kill().await;

    let _bot = w.start_bot().await;
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(posted[0].status, "@alice It ships tomorrow.");
    assert_eq!(
        posted[0].in_reply_to_id.as_deref(),
        Some(ids.status_id.as_str())
    );
    d.wait_card_text(&card, "published").await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1, "exactly one status");
    assert_eq!(d.cards().len(), 1, "exactly one card");
}

pub async fn a_private_reply_goes_as_a_direct_message_after_a_public_acknowledgement<D: Driver>(
    w: &World,
    d: &D,
) {
    let ids = w
        .mastodon
        .add_mention("alice@other.social", "my account number is wrong");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;

    d.reply_privately_via_form(
        &card,
        Who::Ana,
        "Please send us the last 4 digits here.",
        Some("We've sent you a DM."),
    )
    .await
    .expect("accepted");
    let posted = w.mastodon.wait_for_posts(2, WAIT).await;
    assert_eq!(posted[0].status, "@alice@other.social We've sent you a DM.");
    assert_eq!(
        posted[0].visibility.as_deref(),
        Some("public"),
        "the acknowledgement is public, first"
    );
    assert_eq!(
        posted[1].status,
        "@alice@other.social Please send us the last 4 digits here."
    );
    assert_eq!(
        posted[1].visibility.as_deref(),
        Some("direct"),
        "the answer is private"
    );
    for p in &posted {
        assert_eq!(p.in_reply_to_id.as_deref(), Some(ids.status_id.as_str()));
    }
    // Both are linked on the ticket.
    let text = d.wait_card_text(&card, &posted[1].id).await;
    assert!(text.contains(&posted[0].id), "{text}");
    d.wait_note(&card, "(private)").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 2);
}

pub async fn the_numbers_are_asked_for_in_chat<D: Driver>(w: &World, d: &D) {
    w.mastodon.add_mention("alice", "one");
    w.mastodon.add_mention("bob", "two");
    let _bot = w.start_bot().await;
    d.card(2).await;
    let first = d.card(1).await;
    d.reply_via_modal(&first, Who::Ana, "hello!")
        .await
        .expect("accepted");
    w.mastodon.wait_for_posts(1, WAIT).await;
    d.wait_card_text(&first, "published").await;

    let report = d.command(Who::Ana, "stats 24h").await;
    assert!(report.starts_with("Mentions in the last 24h"), "{report}");
    assert!(
        report.contains("• 2 opened; now 1 open, 1 replied, 0 resolved, 0 ignored"),
        "{report}"
    );
    assert!(report.contains("(1 answered, 1 unanswered)"), "{report}");
    assert!(
        report.contains("Within the 60 min target: 1 of 1 (100%)"),
        "{report}"
    );
    assert!(
        report.contains("ana ("),
        "the agent of the first reply is named: {report}"
    );
    assert!(d
        .command(Who::Eve, "stats")
        .await
        .contains("Only support agents"));
}

pub async fn a_canned_reply_fills_the_form_and_is_edited_before_sending<D: Driver>(
    w: &World,
    d: &D,
) {
    w.mastodon.add_mention("alice", "where is my refund?");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;
    let list = d.command(Who::Ana, "canned").await;
    assert!(
        list.contains("Refund on its way") && list.contains("Tak for din besked"),
        "{list}"
    );

    let (filled, sent) = d
        .reply_with_canned(&card, Who::Ana, "refund", &|t| {
            format!("{t} Sorry for the wait!")
        })
        .await;
    sent.expect("accepted");
    assert!(
        filled.starts_with("Hi @alice,"),
        "{{author}} is the @handle: {filled}"
    );
    assert!(
        filled.contains("your refund is on its way. ana, BrandCo (ticket 1)"),
        "variables filled in: {filled}"
    );
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert_eq!(
        posted[0].status,
        format!("{filled} Sorry for the wait!"),
        "the edited text is what goes out, mentioning her once"
    );
}

pub async fn who_is_on_call_and_a_stored_override<D: Driver>(w: &World, d: &D) {
    let bot = w.start_bot().await;
    let now = d.command(Who::Ana, "oncall").await;
    assert!(now.starts_with("On call now: "), "{now}");
    assert!(
        now.contains(&d.mention(Who::Ana)),
        "the rotation's member, in this surface's words: {now}"
    );
    assert!(
        !now.contains("Next change"),
        "the rotation covers every hour with the same people: {now}"
    );

    let set = d.command(Who::Ben, "oncall override me 4h").await;
    assert!(set.contains("is on call until"), "{set}");
    let now = d.command(Who::Ben, "oncall").await;
    assert!(
        now.contains(&d.mention(Who::Ben)) && !now.contains(&d.mention(Who::Ana)),
        "the override replaces the rotation: {now}"
    );
    let bad = d.command(Who::Ben, "oncall override me forever").await;
    assert!(bad.contains("Say for how long"), "{bad}");
    assert!(d
        .command(Who::Eve, "oncall")
        .await
        .contains("Only support agents"));

    // Overrides are stored: a restart keeps them.
    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let _bot = w.start_bot().await;
    assert!(d
        .command(Who::Ana, "oncall")
        .await
        .contains(&d.mention(Who::Ben)));
}

pub async fn a_new_ticket_pages_whoever_is_on_call<D: Driver>(w: &World, d: &D) {
    w.page_on_call
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.mastodon
        .add_mention("alice", "urgent: checkout is broken");
    let _bot = w.start_bot().await;
    let card = d.card(1).await;
    d.wait_note(&card, "New ticket for").await;
    let page = d
        .notes(&card)
        .into_iter()
        .find(|n| n.contains("New ticket for"))
        .unwrap();
    assert!(
        page.contains(&d.mention(Who::Ana)),
        "the on-call agent is mentioned: {page}"
    );
    assert!(!page.contains(&d.mention(Who::Ben)), "{page}");
}

/// Instantiate each scenario once per surface.
macro_rules! on_every_surface {
    ($($scenario:ident),* $(,)?) => {
        mod on_slack {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let w = crate::harness::World::new().await;
                    let d = w.slack_driver();
                    super::$scenario(&w, &d).await;
                }
            )*
        }
        mod on_discord {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let w = crate::harness::World::discord().await;
                    let d = w.discord_driver();
                    super::$scenario(&w, &d).await;
                }
            )*
        }
    };
}

on_every_surface!(
    claim_updates_the_card_in_place_and_notes_it_in_the_thread,
    reply_through_the_form_is_published_once_in_the_customers_thread,
    slash_command_lists_claims_replies_and_resolves_without_buttons,
    a_non_agent_is_refused_privately_and_nothing_changes,
    two_agents_claiming_at_once_have_exactly_one_winner,
    a_too_long_reply_is_refused_and_nothing_is_sent,
    a_reply_refused_for_good_is_shown_on_the_card_with_the_platforms_reason,
    killed_before_the_publish_then_restarted_sends_exactly_one_reply,
    a_private_reply_goes_as_a_direct_message_after_a_public_acknowledgement,
    the_numbers_are_asked_for_in_chat,
    a_canned_reply_fills_the_form_and_is_edited_before_sending,
    who_is_on_call_and_a_stored_override,
    a_new_ticket_pages_whoever_is_on_call,
);

/// Instantiate scenarios with each surface reaching the bot over signed HTTP instead
/// (Slack's request URLs, Discord's interactions endpoint): the drivers choose the way in.
macro_rules! over_http {
    ($($scenario:ident),* $(,)?) => {
        mod on_slack_http {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let w = crate::harness::World::with_mode(crate::harness::Mode::Http).await;
                    let d = w.slack_driver();
                    super::$scenario(&w, &d).await;
                }
            )*
        }
        mod on_discord_http {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let w =
                        crate::harness::World::with(None, Some(crate::harness::Mode::Http)).await;
                    let d = w.discord_driver();
                    super::$scenario(&w, &d).await;
                }
            )*
        }
    };
}

over_http!(
    claim_updates_the_card_in_place_and_notes_it_in_the_thread,
    reply_through_the_form_is_published_once_in_the_customers_thread,
    slash_command_lists_claims_replies_and_resolves_without_buttons,
    a_non_agent_is_refused_privately_and_nothing_changes,
);
