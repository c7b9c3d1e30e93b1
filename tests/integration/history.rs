//! Who the desk is talking to (issue 14, part 1), through the real binary: a card shows
//! the customer's earlier tickets on the same network with links to their cards, open
//! ones flagged; agents' notes about a person show on that person's next cards and in
//! `/mentions who`, never in anything sent to the platform.

use crate::drivers::{Card, Driver, Who};
use crate::harness::*;
use serde_json::json;

const KIM: &str = "kim@elsewhere.example";

/// A new card for a new Mastodon mention from `author`, once it is up.
async fn next_card(w: &World, d: &impl Driver, n: usize, author: &str, text: &str) -> Card {
    w.mastodon.add_mention(author, text);
    let card = d.card(n).await;
    assert_eq!(card.ticket, n as u64, "{}", d.card_text(&card));
    card
}

/// Where Slack's permalink to a card on the fake workspace points.
fn slack_link(card: &Card) -> String {
    format!(
        "https://{}.slack.com/archives/{CHANNEL}/p{}",
        crate::fakes::slack::TEAM_DOMAIN,
        card.id.replace('.', "")
    )
}

#[tokio::test]
async fn a_card_shows_the_customers_earlier_tickets_on_that_network_and_the_teams_notes() {
    let w = World::new().await;
    let d = w.slack_driver();
    let _bot = crate::webhook_flows::start(&w).await;

    // A first contact says nothing about history.
    let first = next_card(&w, &d, 1, KIM, "my order never came").await;
    assert!(!d.card_text(&first).contains("earlier ticket"));
    assert_eq!(
        d.command(Who::Ana, "resolve 1").await,
        "Done: resolved ticket #1."
    );
    d.wait_card_text(&first, "Resolved").await;

    // The same handle on another network (a listening tool's Instagram) is someone else.
    let instagram = json!({
        "source": "brandwatch", "id": "bw-kim", "platform": "instagram",
        "url": "https://www.instagram.com/p/K1m/", "text": "hello from instagram",
        "created_at": "2026-11-25T10:00:00Z", "author": {"handle": format!("@{KIM}"), "name": "Kim"}
    })
    .to_string();
    let (status, _) =
        crate::webhook_flows::deliver(&w, &instagram, crate::webhook_flows::now(), true).await;
    assert_eq!(status, 202);
    let other = d.card(2).await;
    assert!(
        !d.card_text(&other).contains("earlier ticket"),
        "{}",
        d.card_text(&other)
    );

    // Back on Mastodon: one earlier ticket, resolved, linked to its Slack card.
    let second = next_card(&w, &d, 3, KIM, "still nothing").await;
    let text = d.card_text(&second);
    assert!(
        text.contains("1 earlier ticket · last: #1 Resolved"),
        "{text}"
    );
    assert!(text.contains(&slack_link(&first)), "{text}");
    assert!(!text.contains("still open"), "{text}");

    // The second one is still open when the third comes: it is flagged.
    let third = next_card(&w, &d, 4, KIM, "hello again").await;
    let text = d.card_text(&third);
    assert!(text.contains("2 earlier tickets"), "{text}");
    assert!(text.contains("1 open"), "{text}");
    assert!(
        text.contains(&format!("{}|#3 Open> *(still open)*", slack_link(&second))),
        "{text}"
    );

    // Someone who is not an agent cannot leave a note; nothing is kept.
    let refused = d
        .command(Who::Eve, &format!("note @{KIM} pretend VIP"))
        .await;
    assert!(refused.contains("Only support agents"), "{refused}");
    let who = d.command(Who::Ana, &format!("who @{KIM}")).await;
    assert!(who.contains("No notes about them."), "{who}");
    assert!(!who.contains("pretend VIP"), "{who}");

    // An agent's note, pings and all, shows inert on the person's next card.
    let noted = d
        .command(
            Who::Ana,
            &format!("note @{KIM} prefers email <!channel> <@U0BEN>"),
        )
        .await;
    assert!(
        noted.contains(&format!("Noted about @{KIM} on mastodon")),
        "{noted}"
    );
    // Their cards still open show it at once (re-rendered), inert.
    d.wait_card_text(&third, "prefers email").await;
    assert!(!d.card_text(&third).contains("<!channel>"));
    let fourth = next_card(&w, &d, 5, KIM, "any news?").await;
    let text = d.card_text(&fourth);
    assert!(text.contains("Note from"), "{text}");
    assert!(text.contains("prefers email"), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(!text.contains("<@U0BEN>"), "{text}");

    // `/mentions who`: every ticket of theirs on Mastodon with links, and the note.
    let who = d.command(Who::Ana, &format!("who @{KIM} mastodon")).await;
    assert!(who.contains("4 earlier tickets"), "{who}");
    assert!(who.contains(&slack_link(&first)), "{who}");
    assert!(who.contains("prefers email"), "{who}");
    assert!(!who.contains("hello from instagram"), "{who}");

    // The customer hears the reply, never the note.
    d.reply_via_modal(&fourth, Who::Ana, "We are on it, Kim.")
        .await
        .expect("accepted");
    let posts = w.mastodon.wait_for_posts(1, WAIT).await;
    assert!(posts.iter().any(|p| p.status.contains("We are on it")));
    for post in w.mastodon.posted_statuses() {
        assert!(!post.status.contains("prefers"), "{}", post.status);
    }
}

#[tokio::test]
async fn on_discord_the_card_links_the_earlier_card_and_who_answers_privately() {
    let w = World::discord().await;
    let d = w.discord_driver();
    let _bot = w.start_bot().await;
    let first = next_card(&w, &d, 1, KIM, "my order never came").await;
    assert_eq!(
        d.command(Who::Ana, "resolve 1").await,
        "Done: resolved ticket #1."
    );
    d.wait_card_text(&first, "Resolved").await;
    let second = next_card(&w, &d, 2, KIM, "still nothing").await;
    let link = format!(
        "https://discord.com/channels/{}/{D_CHANNEL}/{}",
        crate::fakes::discord::GUILD_ID,
        first.id
    );
    let text = d.card_text(&second);
    assert!(text.contains("1 earlier ticket"), "{text}");
    assert!(text.contains(&link), "{text}");

    let note = d.command_payload(
        Who::Ana,
        json!([{"type": 1, "name": "note", "options": [
            {"type": 3, "name": "handle", "value": format!("@{KIM}")},
            {"type": 3, "name": "text", "value": "likes @everyone to know"},
        ]}]),
    );
    let answer = d.interact(Who::Ana, note).await;
    assert_eq!(answer["type"], 4, "{answer}");
    // `interact` checks every answer is ephemeral (flag 64).
    let who = d.command_payload(
        Who::Ana,
        json!([{"type": 1, "name": "who", "options": [
            {"type": 3, "name": "handle", "value": format!("@{KIM}")},
        ]}]),
    );
    let answer = d.interact(Who::Ana, who).await;
    assert_eq!(answer["data"]["flags"], 64, "{answer}");
    let content = answer["data"]["content"].as_str().unwrap_or_default();
    assert!(content.contains("2 earlier tickets"), "{content}");
    assert!(content.contains(&link), "{content}");
    assert!(content.contains("likes"), "{content}");
    assert!(!content.contains("@everyone"), "{content}");
}
