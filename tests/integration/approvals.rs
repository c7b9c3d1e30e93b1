//! A second pair of eyes: a risky reply waits on the card until another agent approves
//! it, the author can never approve their own words, and what goes out is exactly what
//! was approved, on Slack and on Discord alike.

use crate::drivers::{Driver, Who};
use crate::harness::*;
use std::time::Duration;

fn careful(w: &World) {
    w.extra_config
        .lock()
        .unwrap()
        .push_str("\n[approvals]\nwords = [\"refund\", \"legal\"]\nremind_after_minutes = 10\n");
}

async fn a_risky_reply_waits_for_another_agent_and_goes_out_as_approved(
    w: &World,
    d: &impl Driver,
) {
    w.mastodon
        .add_mention("alice", "@brand I want a refund for order 1234");
    careful(w);
    let bot = w.start_bot().await;
    let card = d.card(1).await;

    d.reply_via_modal(&card, Who::Ana, "Sorry Alice, we are on it.")
        .await
        .expect("the draft is accepted, to wait");
    let text = d.wait_card_text(&card, "awaits approval").await;
    assert!(text.contains("mentions refund"), "{text}");
    let buttons = d.buttons(&card);
    assert!(
        buttons.iter().any(|b| b.contains("approve"))
            && buttons.iter().any(|b| b.contains("edit"))
            && buttons.iter().any(|b| b.contains("reject")),
        "{buttons:?}"
    );
    d.wait_note(&card, "waits for another agent's approval")
        .await;

    // The author cannot wave her own draft through.
    d.press(&card, Who::Ana, "approve").await;
    d.wait_told(Who::Ana, "You wrote this draft").await;

    // Ben rewrites it: the form opens with the draft; now he is its author.
    let (filled, sent) = d
        .edit_draft_via_form(&card, Who::Ben, &|_| {
            "Sorry Alice, your refund is on its way.".to_string()
        })
        .await;
    assert!(filled.contains("Sorry Alice, we are on it."), "{filled}");
    sent.expect("the edit is accepted");
    d.wait_card_text(&card, "your refund is on its way").await;
    d.press(&card, Who::Ben, "approve").await;
    d.wait_told(Who::Ben, "You wrote this draft").await;
    assert!(
        w.mastodon.posted_statuses().is_empty(),
        "nothing is published before approval"
    );

    // Ana did not write these words: she approves them, and exactly they go out.
    d.press(&card, Who::Ana, "approve").await;
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert!(
        posted[0]
            .status
            .ends_with("Sorry Alice, your refund is on its way."),
        "{:?}",
        posted[0].status
    );
    d.wait_card_text(&card, &posted[0].id).await;
    d.wait_note(&card, "approved").await;
    d.wait_card_text(&card, "approved by").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.mastodon.posted_statuses().len(), 1);

    // The audit keeps who approved what.
    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let audit: Vec<String> = crate::inbound_once::exported(w)
        .await
        .iter()
        .map(|v| v.to_string())
        .collect();
    let approved = audit
        .iter()
        .find(|l| l.contains("\"reply approved\""))
        .unwrap_or_else(|| panic!("an audit line for the approval: {audit:?}"));
    assert!(
        approved.contains("your refund is on its way") && approved.contains("ana"),
        "{approved}"
    );
}

#[tokio::test]
async fn slack_a_risky_reply_waits_for_another_agent_and_goes_out_as_approved() {
    let w = World::new().await;
    a_risky_reply_waits_for_another_agent_and_goes_out_as_approved(&w, &w.slack_driver()).await;
}

#[tokio::test]
async fn discord_a_risky_reply_waits_for_another_agent_and_goes_out_as_approved() {
    let w = World::discord().await;
    a_risky_reply_waits_for_another_agent_and_goes_out_as_approved(&w, &w.discord_driver()).await;
}

#[tokio::test]
async fn a_rejected_draft_is_never_sent_and_a_new_answer_can_follow() {
    let w = World::new().await;
    w.mastodon
        .add_mention("bob", "my lawyer will hear about this");
    w.extra_config
        .lock()
        .unwrap()
        .push_str("\n[approvals]\nwords = [\"lawyer\"]\n");
    let _bot = w.start_bot().await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "Please calm down.")
        .await
        .unwrap();
    d.wait_card_text(&card, "awaits approval").await;
    let answer = d
        .command(Who::Ben, &format!("reject {}", card.ticket))
        .await;
    assert!(answer.contains("rejected the draft"), "{answer}");
    d.wait_card_text(&card, "rejected by").await;
    d.reply_via_modal(&card, Who::Ana, "We are sorry; a manager will call you.")
        .await
        .unwrap();
    d.wait_card_text(&card, "a manager will call you").await;
    let answer = d
        .command(Who::Ben, &format!("approve {}", card.ticket))
        .await;
    assert!(answer.contains("approved the draft"), "{answer}");
    let posted = w.mastodon.wait_for_posts(1, WAIT).await;
    assert!(posted[0].status.ends_with("a manager will call you."));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        w.mastodon.posted_statuses().len(),
        1,
        "the rejected draft never went out"
    );
}
