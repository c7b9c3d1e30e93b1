//! The contract of what triage needs from a store: intake finds the author's earlier
//! tickets inside its transaction (earlier mentions of the same batch, other batches,
//! after a restart), a rule-ignored mention is stored with no card to post, and the
//! index of open tickets keeps what the open list sorts by.

use super::*;
use mentionbridge::domain::priority::Level;
use mentionbridge::domain::routes::Routes;
use mentionbridge::domain::triage::{Actions, Rule};
use mentionbridge::domain::words::Term;
use mentionbridge::domain::Stage;

fn by(id: &str, author: &str, text: &str) -> Mention {
    Mention {
        text: text.into(),
        ..mention(id, author)
    }
}

/// Routes whose triage knows one VIP and ignores "airdrop".
fn triaged() -> Routes {
    let mut routes = Routes::default();
    routes
        .triage
        .priority
        .vip
        .insert(Platform::Mastodon, vec!["bigcorp".into()]);
    routes.triage.rules = vec![Rule {
        name: "crypto spam".into(),
        words: vec![Term::new("airdrop").unwrap()],
        actions: Actions {
            ignore: true,
            ..Actions::default()
        },
        ..Rule::default()
    }];
    routes
}

async fn reasons(store: &SharedStore, id: u64) -> String {
    store
        .ticket(TicketId(id))
        .await
        .unwrap()
        .expect("the ticket")
        .priority
        .why()
}

pub async fn intake_finds_the_authors_earlier_tickets_also_in_the_same_batch_and_after_a_restart(
    place: &dyn Place,
) {
    let store = place.open_with(triaged());
    // Two by kim in one batch, one by lee.
    store
        .ingest(
            "src",
            &[
                by("1", "kim", "hello"),
                by("2", "Kim", "hello?"),
                by("3", "lee", "hi"),
            ],
            None,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(reasons(&store, 1).await, "");
    assert_eq!(reasons(&store, 2).await, "2nd contact this week");
    assert_eq!(reasons(&store, 3).await, "");
    store.flush().await.unwrap();
    drop(store);
    let store = place.open_with(triaged());
    store
        .ingest(
            "src",
            &[by("4", "kim", "anyone?")],
            None,
            now() + Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(reasons(&store, 4).await, "3rd contact this week");
    // Closed and long ago, they no longer count; one still open does.
    let desk = desk_of(&["ANA".to_string()]);
    for id in [1, 2] {
        store
            .act(TicketId(id), &|t| {
                apply(t, AgentAction::Resolve, &agent("ANA"), &desk, now())
            })
            .await
            .unwrap()
            .expect("resolved");
    }
    store
        .ingest(
            "src",
            &[by("5", "kim", "me again")],
            None,
            now() + Duration::days(30),
        )
        .await
        .unwrap();
    assert_eq!(
        reasons(&store, 5).await,
        "2nd contact this week",
        "tickets 1 and 2 are closed and old; ticket 4 is still open"
    );
}
pub async fn a_rule_ignored_mention_is_stored_with_no_card_to_post(place: &dyn Place) {
    let store = place.open_with(triaged());
    let done = store
        .ingest(
            "src",
            &[
                by("1", "spammer", "Free AIRDROP now"),
                by("2", "bigcorp", "hi"),
            ],
            None,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(done.new_tickets, vec![TicketId(1), TicketId(2)]);
    let spam = store.ticket(TicketId(1)).await.unwrap().expect("kept");
    assert_eq!(spam.stage, Stage::Ignored);
    assert!(spam.kept_off_by_rule());
    let jobs = store.jobs().await.unwrap();
    assert!(
        jobs.iter().all(|j| j.ticket != TicketId(1)),
        "no card for the spam: {jobs:?}"
    );
    assert!(jobs
        .iter()
        .any(|j| j.ticket == TicketId(2) && j.effect == Effect::PostCards));
    let audit = store.audit_of(TicketId(1)).await.unwrap();
    assert!(
        audit[0]
            .what
            .contains("rule \"crypto spam\": ignored (word \"airdrop\")"),
        "{audit:?}"
    );
    assert_eq!(store.ticket_count().await.unwrap(), 2);
    assert_eq!(store.open_ticket_count().await.unwrap(), 1);
    // The open list's index has the VIP's points; the spam is not open.
    let open = store.open_priorities().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].ticket, TicketId(2));
    assert_eq!(open[0].score, 40);
    assert!(open[0].waiting);
    let vip = store.ticket(TicketId(2)).await.unwrap().unwrap();
    assert_eq!(vip.priority.level, Level::High);
}

pub async fn the_heads_of_the_open_list_are_each_groups_longest_waiting(place: &dyn Place) {
    let store = place.open_with(triaged());
    // Five plain tickets, then two by the VIP, one minute apart.
    for (i, author) in ["a", "b", "c", "d", "e", "bigcorp", "bigcorp"]
        .iter()
        .enumerate()
    {
        store
            .ingest(
                "src",
                &[by(&format!("m{i}"), author, "hello")],
                None,
                now() + Duration::minutes(i as i64),
            )
            .await
            .unwrap();
    }
    let mut heads = store.open_list_heads(2).await.unwrap();
    heads.sort_by_key(|o| o.ticket);
    let ids: Vec<u64> = heads.iter().map(|o| o.ticket.0).collect();
    assert_eq!(ids, vec![1, 2, 6, 7], "two of each group, oldest first");
    assert!(heads.iter().all(|o| o.waiting));
    assert_eq!(heads[2].score, 40, "VIP");
    assert_eq!(heads[3].score, 50, "VIP, and a second contact");
}
