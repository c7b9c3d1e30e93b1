//! One ticket per conversation: the customer's follow-ups join it, even after it closed.

use crate::drivers::{Driver, Who};
use crate::harness::*;

#[tokio::test]
async fn a_customers_follow_up_joins_the_ticket_and_reopens_it_after_resolution() {
    let w = World::new().await;
    w.mastodon.add_mention("alice", "my order is late");
    let _bot = w.start_bot().await;
    let d = w.slack_driver();
    let card = d.card(1).await;
    d.reply_via_modal(&card, Who::Ana, "Sorry! Which order number?")
        .await
        .expect("accepted");
    let ours = w.mastodon.wait_for_posts(1, WAIT).await.remove(0);
    d.wait_card_text(&card, &ours.id).await;

    // The customer answers our reply: no new card, the card says so.
    w.mastodon
        .mention("alice", "It's #4411")
        .in_reply_to(&ours.id)
        .add();
    d.wait_card_text(&card, "Customer replied").await;
    d.wait_note(&card, "It's #4411").await;
    assert_eq!(d.cards().len(), 1);

    // Answering clears the flag.
    d.reply_via_modal(&card, Who::Ana, "Found it, it ships today.")
        .await
        .expect("accepted");
    w.mastodon.wait_for_posts(2, WAIT).await;
    d.wait_card_text(&card, "*Replied*").await;

    // After resolution, a new message from the customer reopens the same ticket.
    d.press(&card, Who::Ana, "resolve").await;
    d.wait_card_text(&card, "Resolved").await;
    w.mastodon
        .mention("alice", "Still nothing arrived")
        .in_reply_to(&ours.id)
        .add();
    d.wait_note(&card, "ticket reopened").await;
    d.wait_card_text(&card, "Customer replied").await;
    assert_eq!(d.buttons(&card)[0], "claim", "reopened for whoever is on");
    assert_eq!(d.cards().len(), 1, "still one card for one conversation");

    // Someone else joining the thread is their own conversation.
    w.mastodon
        .mention("bob", "same problem here")
        .in_reply_to(&ours.id)
        .add();
    d.card(2).await;
    assert_eq!(d.cards().len(), 2);
}
