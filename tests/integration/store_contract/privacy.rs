//! The contract of a privacy rewrite (issue 14): one ticket's customer text and identity
//! leave the ticket, its audit lines and the indexes in one commit; its dedupe keys are
//! kept only as keyed hashes, so the same post delivered again is still a duplicate;
//! every other ticket is untouched.

use super::*;
use mentionbridge::domain::priority::author_key;
use mentionbridge::domain::privacy::{self, Removal};

pub async fn a_rewritten_ticket_keeps_no_trace_of_the_person_and_its_post_is_still_known(
    place: &dyn Place,
) {
    let store = place.open();
    let zelda = Mention {
        text: "Zorblax order 55721 never came".into(),
        ..mention("901", "zeldapriv")
    };
    let other = Mention {
        text: "my parcel 4410 is late".into(),
        ..mention("902", "otto")
    };
    store
        .ingest("src", &[zelda.clone(), other.clone()], None, now())
        .await
        .unwrap();
    let desk = desk_of(&["ANA".to_string()]);
    store
        .act(TicketId(1), &|t| {
            let reply = AgentAction::Reply {
                text: "Sorry @zeldapriv, we resend 55721 today".into(),
            };
            apply(t, reply, &agent("ANA"), &desk, now())
        })
        .await
        .unwrap()
        .expect("Ana may reply");
    let before = store.ticket(TicketId(1)).await.unwrap().unwrap();
    let key = mentionbridge::ports::hash_key(&*store).await.unwrap();
    assert_eq!(
        key,
        mentionbridge::ports::hash_key(&*store).await.unwrap(),
        "the key is made once"
    );
    let rw = privacy::rewrite(&before, Removal::ALL, "erasure", &key, now());
    store.rewrite_ticket(&rw).await.unwrap();
    store.flush().await.unwrap();

    let gone = ["zeldapriv", "Zorblax", "55721", "m.example/@zeldapriv"];
    let after = store.ticket(TicketId(1)).await.unwrap().unwrap();
    let json = serde_json::to_string(&after).unwrap();
    let audit = serde_json::to_string(&store.audit_of(TicketId(1)).await.unwrap()).unwrap();
    for s in gone {
        assert!(!json.contains(s), "{s} in the ticket: {json}");
        assert!(!audit.contains(s), "{s} in the audit: {audit}");
    }
    assert!(audit.contains("ANA"), "who did what stays: {audit}");
    assert_eq!(
        (after.stage, after.route.clone()),
        (before.stage, before.route)
    );
    // The author's index entry moved to the hashed key.
    assert!(store
        .author_contacts(&author_key(&zelda), 32)
        .await
        .unwrap()
        .is_empty());
    let hashed_author = privacy::hashed(&key, &author_key(&zelda));
    let filed = store.author_contacts(&hashed_author, 32).await.unwrap();
    assert_eq!(
        filed.iter().map(|c| c.ticket).collect::<Vec<_>>(),
        vec![TicketId(1)]
    );
    // The same post again, now and after a restart: a duplicate, not a new ticket.
    let again = store
        .ingest("src", std::slice::from_ref(&zelda), None, now())
        .await
        .unwrap();
    assert_eq!((again.duplicates, again.new_tickets.len()), (1, 0));
    drop(store);
    let store = place.open();
    let again = store
        .ingest("other-src", std::slice::from_ref(&zelda), None, now())
        .await
        .unwrap();
    assert_eq!((again.duplicates, again.new_tickets.len()), (1, 0));
    assert_eq!(store.ticket_count().await.unwrap(), 2);
    // Otto's ticket is as it was.
    let otto = store.ticket(TicketId(2)).await.unwrap().unwrap();
    assert_eq!(otto.mention.text, "my parcel 4410 is late");
    assert_eq!(otto.mention.author.handle, "otto");
    assert!(otto.anonymised.is_none());
    assert_eq!(
        store
            .author_contacts("mastodon/otto", 32)
            .await
            .unwrap()
            .len(),
        1
    );
    // A rewrite of a ticket that is not there is refused.
    let mut missing = rw.clone();
    missing.ticket.id = TicketId(77);
    assert!(matches!(
        store.rewrite_ticket(&missing).await,
        Err(StoreError::NoSuchTicket(TicketId(77)))
    ));
}
