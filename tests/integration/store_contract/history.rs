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
