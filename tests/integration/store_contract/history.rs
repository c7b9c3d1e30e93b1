//! The contract of what a card's customer history needs from a store (issue 14): one
//! author's latest tickets, newest first, by the same author key intake uses (the
//! network and the handle), with whether each is still open.

use super::*;

pub async fn an_authors_contacts_are_read_newest_first_per_network(place: &dyn Place) {
    let store = place.open();
    let on = |id: &str, platform: Platform| Mention {
        platform,
        ..mention(id, "kim")
    };
    store
        .ingest(
            "src",
            &[
                on("1", Platform::Mastodon),
                on("2", Platform::Bluesky),
                on("3", Platform::Mastodon),
                mention("4", "lee"),
                on("5", Platform::Mastodon),
            ],
            None,
            now(),
        )
        .await
        .unwrap();
    let desk = desk_of(&["ANA".to_string()]);
    store
        .act(TicketId(1), &|t| {
            apply(t, AgentAction::Resolve, &agent("ANA"), &desk, now())
        })
        .await
        .unwrap()
        .expect("resolved");
    let ids = |c: Vec<mentionbridge::domain::priority::Contact>| {
        c.iter().map(|c| (c.ticket.0, c.open)).collect::<Vec<_>>()
    };
    let kim = store.author_contacts("mastodon/kim", 32).await.unwrap();
    assert_eq!(ids(kim), vec![(5, true), (3, true), (1, false)]);
    let two = store.author_contacts("mastodon/kim", 2).await.unwrap();
    assert_eq!(ids(two), vec![(5, true), (3, true)]);
    let sky = store.author_contacts("bluesky/kim", 32).await.unwrap();
    assert_eq!(ids(sky), vec![(2, true)]);
    assert!(store
        .author_contacts("mastodon/nobody", 32)
        .await
        .unwrap()
        .is_empty());
    // After a restart, the same.
    store.flush().await.unwrap();
    drop(store);
    let store = place.open();
    let kim = store.author_contacts("mastodon/kim", 32).await.unwrap();
    assert_eq!(ids(kim), vec![(5, true), (3, true), (1, false)]);
}

/// Agents' notes about a person: kept per author key, read back oldest first (also after
/// a restart), never mixed with another person's (not even one whose key starts the
/// same), and all forgotten at once for an erasure.
pub async fn notes_about_a_person_are_kept_per_author_and_forgotten_together(place: &dyn Place) {
    use mentionbridge::domain::customer::PersonNote;
    let store = place.open();
    let note = |text: &str, minute: i64| PersonNote {
        by: agent("ANA"),
        at: now() + Duration::minutes(minute),
        text: text.to_string(),
    };
    store
        .add_person_note("mastodon/kim", &note("prefers German", 0))
        .await
        .unwrap();
    store
        .add_person_note("mastodon/kimberly", &note("someone else", 1))
        .await
        .unwrap();
    store
        .add_person_note("bluesky/kim", &note("another network", 2))
        .await
        .unwrap();
    store
        .add_person_note("mastodon/kim", &note("VIP since the outage", 3))
        .await
        .unwrap();
    let texts = |notes: Vec<PersonNote>| notes.into_iter().map(|n| n.text).collect::<Vec<_>>();
    let kim = store.person_notes("mastodon/kim").await.unwrap();
    assert_eq!(kim[0].by, agent("ANA"));
    assert_eq!(kim[1].at, now() + Duration::minutes(3));
    assert_eq!(texts(kim), vec!["prefers German", "VIP since the outage"]);
    store.flush().await.unwrap();
    drop(store);
    let store = place.open();
    assert_eq!(
        texts(store.person_notes("mastodon/kim").await.unwrap()),
        vec!["prefers German", "VIP since the outage"]
    );
    assert_eq!(store.forget_person_notes("mastodon/kim").await.unwrap(), 2);
    assert!(store.person_notes("mastodon/kim").await.unwrap().is_empty());
    assert_eq!(store.forget_person_notes("mastodon/kim").await.unwrap(), 0);
    assert_eq!(
        texts(store.person_notes("mastodon/kimberly").await.unwrap()),
        vec!["someone else"]
    );
    assert_eq!(
        texts(store.person_notes("bluesky/kim").await.unwrap()),
        vec!["another network"]
    );
}
