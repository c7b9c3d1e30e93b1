//! Incidents in the store: a storm's members and its card are committed together, a held
//! card waits, a member leaves for a card of its own, answers are counted once, and
//! concurrent joins keep every member once.

use super::*;
use mentionbridge::domain::incident::{self, Incident};
use mentionbridge::domain::storms::Topic;
use mentionbridge::domain::IncidentId;

fn topic() -> Topic {
    Topic::SimilarText {
        sample: "where is my order?".into(),
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<TicketId> {
    range.map(TicketId).collect()
}

async fn open_incident(store: &SharedStore, members: &[TicketId]) -> Incident {
    store
        .change_incident(
            None,
            members,
            &|_, id, read| incident::join(None, id, &topic(), read, now()),
            now(),
        )
        .await
        .unwrap()
        .expect("a new incident")
}

async fn join(store: &SharedStore, id: IncidentId, members: &[TicketId]) -> Option<Incident> {
    store
        .change_incident(
            Some(id),
            members,
            &|stored, id, read| incident::join(stored, id, &topic(), read, now()),
            now(),
        )
        .await
        .unwrap()
}

pub async fn a_storm_is_one_incident_with_its_members_and_card_committed_together(
    place: &dyn Place,
) {
    let names: Vec<String> = (1..=6).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let store = with_tickets(place, &refs).await;
    let before = store.jobs().await.unwrap().len();
    let first = open_incident(&store, &ids(1..=5)).await;
    assert_eq!((first.id, first.members), (IncidentId(1), 5));
    assert_eq!(
        store.incident_members(first.id, None, 100).await.unwrap(),
        ids(1..=5)
    );
    assert_eq!(
        store
            .incident_members(first.id, Some(TicketId(2)), 2)
            .await
            .unwrap(),
        ids(3..=4),
        "a page at a time"
    );
    let t = store.ticket(TicketId(3)).await.unwrap().unwrap();
    assert_eq!(t.incident, Some(first.id));
    let jobs = store.jobs().await.unwrap();
    assert_eq!(jobs.len(), before + 1, "one job: the incident's card");
    let card_job = jobs.last().unwrap();
    assert_eq!(card_job.ticket, DESK_JOBS);
    assert_eq!(
        card_job.effect,
        Effect::PostIncidentCard { incident: first.id }
    );
    assert!(store
        .audit_of(TicketId(4))
        .await
        .unwrap()
        .iter()
        .any(|a| a.what == "joined incident 1"));

    // A later member joins; one already in an incident is not moved.
    let joined = join(&store, first.id, &ids(5..=6)).await.unwrap();
    assert_eq!(joined.members, 6);
    assert_eq!(
        join(&store, first.id, &ids(6..=6)).await,
        None,
        "nothing new: nothing written"
    );
    let second = open_incident(&store, &ids(6..=6)).await;
    assert_eq!(
        (second.id, second.members),
        (IncidentId(2), 0),
        "ticket 6 stays in incident 1"
    );
    assert!(matches!(
        store
            .change_incident(Some(IncidentId(99)), &[], &|_, _, _| None, now())
            .await,
        Err(StoreError::NoSuchIncident(IncidentId(99)))
    ));
    assert_eq!(
        store
            .incidents_after(None, 10)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        vec![IncidentId(1), IncidentId(2)]
    );
    store.flush().await.unwrap();
    drop(store);
    // After a restart, all of it is there, and numbering goes on.
    let store = place.open();
    assert_eq!(store.incident(IncidentId(1)).await.unwrap(), Some(joined));
    assert_eq!(
        store
            .incident_members(IncidentId(1), None, 100)
            .await
            .unwrap(),
        ids(1..=6)
    );
    assert_eq!(open_incident(&store, &[]).await.id, IncidentId(3));
}

pub async fn a_held_card_waits_and_a_member_leaves_for_a_card_of_its_own(place: &dyn Place) {
    let routes = mentionbridge::domain::routes::Routes {
        card_hold: mentionbridge::domain::routes::CardHold {
            wait: Duration::seconds(20),
            own_card_from: None,
        },
        ..Default::default()
    };
    let store = place.open_with(routes);
    store
        .ingest("src", &[mention("1", "alice")], None, now())
        .await
        .unwrap();
    let jobs = store.jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].effect, Effect::PostCards);
    assert_eq!(jobs[0].not_before, Some(now() + Duration::seconds(20)));
    let claimed = store
        .claim_jobs("sender", 10, now(), std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(claimed.jobs.is_empty(), "the card waits");
    assert_eq!(claimed.next_due, Some(now() + Duration::seconds(20)));

    let incident = open_incident(&store, &ids(1..=1)).await;
    let member = store.ticket(TicketId(1)).await.unwrap().unwrap();
    let ana = agent("ANA");
    let left = store
        .change_incident(
            Some(incident.id),
            &[TicketId(1)],
            &|stored, _, read| incident::split(stored?, read.first()?, &ana, now()).ok(),
            now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((left.members, left.split_off), (0, 1));
    assert_eq!(member.incident, Some(incident.id));
    assert_eq!(
        store.ticket(TicketId(1)).await.unwrap().unwrap().incident,
        None
    );
    assert!(store
        .incident_members(incident.id, None, 10)
        .await
        .unwrap()
        .is_empty());
    let own_card = store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.ticket == TicketId(1) && j.effect == Effect::PostCards)
        .collect::<Vec<_>>();
    assert_eq!(own_card.len(), 2, "the held one and the split one's own");
    assert_eq!(own_card[1].not_before, None, "posted at once");
}

pub async fn a_members_first_answer_is_counted_on_its_incident_once(place: &dyn Place) {
    let store = with_tickets(place, &["1"]).await;
    let incident = open_incident(&store, &ids(1..=1)).await;
    let job = ana_replies(&store).await;
    let claimed = store
        .claim_jobs("sender", 10, now(), std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let job = claimed
        .jobs
        .into_iter()
        .find(|j| j.id == job.id)
        .expect("the publish job");
    let at = now() + Duration::minutes(3);
    let published = SystemEvent::ReplyPublished {
        seq: 1,
        remote_id: "r1".into(),
        url: "https://m.example/@brand/r1".into(),
    };
    store
        .complete(&job, Some(published.clone()), at)
        .await
        .unwrap();
    store.complete(&job, Some(published), at).await.unwrap();
    let counted = store.incident(incident.id).await.unwrap().unwrap();
    assert_eq!(counted.answered, 1);
    assert_eq!(counted.first_answer_at, Some(at));
    assert_eq!(counted.time_to_first_answer(), Some(Duration::minutes(3)));
}

pub async fn concurrent_joins_keep_every_member_once(place: &dyn Place) {
    let names: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let store = with_tickets(place, &refs).await;
    let incident = open_incident(&store, &ids(1..=2)).await;
    let second = place.open_second(&store);
    let mut tasks = Vec::new();
    for (n, handle) in [store.clone(), second.clone(), store.clone(), second]
        .into_iter()
        .enumerate()
    {
        // Overlapping sets: 3..=20, 12..=29, 21..=38, 30..=40.
        let from = 3 + n as u64 * 9;
        let members = ids(from..=(from + 17).min(40));
        let id = incident.id;
        tasks.push(tokio::spawn(async move {
            join(&handle, id, &members).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = store
        .incident_members(incident.id, None, 100)
        .await
        .unwrap();
    assert_eq!(all, ids(1..=40));
    assert_eq!(
        store.incident(incident.id).await.unwrap().unwrap().members,
        40,
        "each member counted once"
    );
}
