//! The store contract: what every backend behind `ports::Store` must do, written once
//! against `Arc<dyn Store>`. A backend joins with one line at the bottom:
//! `store_contract!(name, factory)`, where the factory makes a fresh [`Place`] (where
//! that backend keeps its data) and each contract test becomes one `#[tokio::test]`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use mentionbridge::domain::text::TextRules;
use mentionbridge::domain::{
    apply, AgentAction, AgentRef, AuditEntry, Author, CardRef, Desk, Effect, Mention, Note,
    Platform, Rejection, SurfaceKind, SystemEvent, TicketId, Visibility,
};
use mentionbridge::ports::{SharedStore, DESK_JOBS};
use mentionbridge::store::SledStore;
use std::sync::Arc;

/// Where a backend under test keeps its data. `open` gives a store on it; called again
/// once every handle of the last one is dropped, it is the same store after a restart.
pub trait Place: Send + Sync {
    fn open(&self) -> SharedStore;
}

/// Sled in a temporary directory, removed when the place is dropped.
pub struct SledPlace(tempfile::TempDir);

impl SledPlace {
    pub fn new() -> SledPlace {
        SledPlace(tempfile::tempdir().expect("a temporary directory"))
    }
}

impl Place for SledPlace {
    fn open(&self) -> SharedStore {
        Arc::new(SledStore::open(&self.0.path().join("store.sled")).expect("the sled store"))
    }
}

/// One `#[tokio::test]` per contract test, in a module named after the backend.
macro_rules! store_contract {
    ($backend:ident, $place:expr) => {
        mod $backend {
            store_contract!(@each $place;
                the_same_post_twice_is_one_ticket,
                the_same_post_from_two_sources_is_one_ticket,
                an_answer_by_the_same_author_joins_its_ticket,
                a_cursor_moves_with_its_batch_or_not_at_all,
                of_many_simultaneous_claims_exactly_one_wins,
                a_rejected_action_writes_nothing,
                jobs_come_out_in_queue_order_a_page_at_a_time,
                a_started_job_is_marked_maybe_sent_and_a_deferred_one_waits,
                completing_a_job_twice_is_harmless,
                a_job_given_up_on_is_kept_and_written_in_the_audit_trail,
                a_desk_job_is_queued_with_its_state,
                the_audit_log_reads_back_in_order,
                a_card_is_found_by_its_message_until_it_is_lost,
                source_state_round_trips_by_key_and_survives_a_restart,
                an_inbound_event_is_first_once_also_after_a_restart,
            );
        }
    };
    (@each $place:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test(&$place()).await
            }
        )*
    };
}

store_contract!(sled, super::SledPlace::new);

// -- what the tests build ------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
}

fn mention(id: &str, author: &str) -> Mention {
    Mention {
        platform: Platform::Mastodon,
        network: None,
        account: "brand".into(),
        remote_id: id.into(),
        url: format!("https://m.example/@{author}/{id}"),
        author: Author {
            handle: author.into(),
            name: author.into(),
            profile_url: format!("https://m.example/@{author}"),
            id: None,
        },
        text: "where is my order?".into(),
        language: None,
        created_at: now(),
        in_reply_to: None,
        visibility: Visibility::Public,
        reply_context: None,
        external_id: None,
    }
}

fn agent(id: &str) -> AgentRef {
    AgentRef {
        surface: SurfaceKind::Slack,
        user_id: id.into(),
        name: id.into(),
        roles: vec![],
    }
}

/// A desk whose agents are `ids`, answering on Mastodon.
fn desk_of(ids: &[String]) -> Desk {
    let mut desk = Desk::new().with_rules(Platform::Mastodon, TextRules::default());
    desk.roster_mut(SurfaceKind::Slack).user_ids = ids.iter().cloned().collect();
    desk
}

fn card(message_id: &str) -> CardRef {
    CardRef {
        surface: SurfaceKind::Slack,
        channel: "C0SUPPORT".into(),
        message_id: message_id.into(),
        thread_id: None,
    }
}

/// A store holding one ticket per mention id, by alice.
async fn with_tickets(place: &dyn Place, ids: &[&str]) -> SharedStore {
    let store = place.open();
    let mentions: Vec<Mention> = ids.iter().map(|id| mention(id, "alice")).collect();
    store.ingest("src", &mentions, None, now()).await.unwrap();
    store
}

/// Ana replies on ticket 1; the reply's publish job.
async fn ana_replies(store: &SharedStore) -> mentionbridge::ports::Job {
    let desk = desk_of(&["ANA".to_string()]);
    store
        .act(TicketId(1), &|t| {
            let reply = AgentAction::Reply {
                text: "on its way".into(),
            };
            apply(t, reply, &agent("ANA"), &desk, now())
        })
        .await
        .unwrap()
        .expect("Ana may reply");
    store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| matches!(j.effect, Effect::PublishReply { .. }))
        .expect("a publish job")
}

// -- ingest and dedupe ---------------------------------------------------------------------

pub async fn the_same_post_twice_is_one_ticket(place: &dyn Place) {
    let store = place.open();
    let first = store
        .ingest("src", &[mention("a", "alice")], Some("1"), now())
        .await
        .unwrap();
    assert_eq!(first.new_tickets, vec![TicketId(1)]);
    let again = store
        .ingest(
            "src",
            &[mention("a", "alice"), mention("b", "bob")],
            Some("2"),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(again.new_tickets, vec![TicketId(2)], "only b is new");
    assert_eq!(again.duplicates, 1);
    assert!(again.followups.is_empty());
    assert_eq!(store.cursor("src").await.unwrap().as_deref(), Some("2"));
    assert_eq!(store.ticket_count().await.unwrap(), 2);
    let jobs = store.jobs().await.unwrap();
    assert_eq!(
        jobs.len(),
        2,
        "one card post per ticket, none for the repeat"
    );
    assert!(jobs
        .iter()
        .all(|j| j.effect == Effect::PostCards && j.attempts == 0));
    assert_eq!(
        store.audit_of(TicketId(1)).await.unwrap()[0].what,
        "mention received"
    );
    let opened = store.ticket(TicketId(2)).await.unwrap().unwrap();
    assert_eq!(opened.mention, mention("b", "bob"));
    assert_eq!(opened.opened_at, now());
}

pub async fn the_same_post_from_two_sources_is_one_ticket(place: &dyn Place) {
    let store = place.open();
    let polled = mention("1234", "alice");
    store
        .ingest("mastodon", std::slice::from_ref(&polled), None, now())
        .await
        .unwrap();
    // A listening tool's webhook brings the same status: its own id, the same URL.
    let mut pushed = polled.clone();
    pushed.platform = Platform::Other;
    pushed.network = Some("Mastodon".into());
    pushed.account = "webhook:bw".into();
    pushed.remote_id = "bw-1".into();
    pushed.external_id = Some("bw-1".into());
    let done = store
        .ingest("webhook", std::slice::from_ref(&pushed), None, now())
        .await
        .unwrap();
    assert_eq!(done.duplicates, 1);
    assert!(done.new_tickets.is_empty());
    // A different post by the same author is a ticket of its own.
    let mut other = pushed;
    other.url = "https://m.example/@alice/1235".into();
    other.remote_id = "bw-2".into();
    other.external_id = Some("bw-2".into());
    let done = store
        .ingest("webhook", &[other], None, now())
        .await
        .unwrap();
    assert_eq!(done.new_tickets, vec![TicketId(2)]);
}

pub async fn an_answer_by_the_same_author_joins_its_ticket(place: &dyn Place) {
    let store = with_tickets(place, &["1"]).await;
    let mut answer = mention("2", "alice");
    answer.in_reply_to = Some("1".into());
    let mut bystander = mention("3", "bob");
    bystander.in_reply_to = Some("1".into());
    let later = now() + Duration::minutes(5);
    let done = store
        .ingest("src", &[answer, bystander], None, later)
        .await
        .unwrap();
    assert_eq!(done.followups, vec![TicketId(1)]);
    assert_eq!(
        done.new_tickets,
        vec![TicketId(2)],
        "bob's answer is his own"
    );
    let ticket = store.ticket(TicketId(1)).await.unwrap().unwrap();
    assert_eq!(ticket.followups.len(), 1);
    assert_eq!(ticket.followups[0].at, later);
    // An answer to our published reply is part of the conversation too.
    let publish = ana_replies(&store).await;
    let published = SystemEvent::ReplyPublished {
        seq: 1,
        remote_id: "99".into(),
        url: "https://m.example/@brand/99".into(),
    };
    store
        .complete(&publish, Some(published), later)
        .await
        .unwrap();
    let mut to_us = mention("4", "alice");
    to_us.in_reply_to = Some("99".into());
    let done = store.ingest("src", &[to_us], None, later).await.unwrap();
    assert_eq!(done.followups, vec![TicketId(1)]);
}

// -- cursors -------------------------------------------------------------------------------

pub async fn a_cursor_moves_with_its_batch_or_not_at_all(place: &dyn Place) {
    {
        let store = place.open();
        assert_eq!(store.cursor("mastodon:brand").await.unwrap(), None);
        store
            .ingest(
                "mastodon:brand",
                &[mention("a", "alice"), mention("b", "bob")],
                Some("n2"),
                now(),
            )
            .await
            .unwrap();
        store.flush().await.unwrap();
        // Written and not flushed: after the restart, all of it or none of it.
        store
            .ingest(
                "mastodon:brand",
                &[mention("c", "carol")],
                Some("n3"),
                now(),
            )
            .await
            .unwrap();
    }
    let store = place.open();
    let cursor = store.cursor("mastodon:brand").await.unwrap();
    let tickets = store.ticket_count().await.unwrap();
    assert!(
        (cursor.as_deref() == Some("n2") && tickets == 2)
            || (cursor.as_deref() == Some("n3") && tickets == 3),
        "the cursor {cursor:?} and {tickets} tickets disagree"
    );
    // An empty batch still moves the cursor; another source's cursor is its own.
    store
        .ingest("mastodon:brand", &[], Some("n4"), now())
        .await
        .unwrap();
    assert_eq!(
        store.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("n4")
    );
    assert_eq!(store.cursor("bluesky:brand").await.unwrap(), None);
    // A batch without a new cursor leaves it where it was.
    store
        .ingest("mastodon:brand", &[mention("d", "dan")], None, now())
        .await
        .unwrap();
    assert_eq!(
        store.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("n4")
    );
}

// -- agents' actions -----------------------------------------------------------------------

pub async fn of_many_simultaneous_claims_exactly_one_wins(place: &dyn Place) {
    const AGENTS: usize = 16;
    let store = with_tickets(place, &["a"]).await;
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("U{i}")).collect();
    let desk = desk_of(&ids);
    let start = Arc::new(tokio::sync::Barrier::new(AGENTS));
    let claims: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, desk, start, claimant) =
                (store.clone(), desk.clone(), start.clone(), agent(id));
            tokio::spawn(async move {
                start.wait().await;
                store
                    .act(TicketId(1), &|t| {
                        apply(t, AgentAction::Claim, &claimant, &desk, now())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for claim in claims {
        outcomes.push(claim.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    let holder = store
        .ticket(TicketId(1))
        .await
        .unwrap()
        .unwrap()
        .holder
        .expect("claimed")
        .agent;
    for rejected in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(
            rejected,
            &Rejection::AlreadyClaimed {
                by: holder.clone(),
                minutes: 0
            }
        );
    }
    let by_agents = store
        .audit_of(TicketId(1))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor.is_some())
        .count();
    assert_eq!(by_agents, 1, "one claim in the audit trail");
    // The card post, and the one claim's card update and thread note.
    assert_eq!(store.jobs().await.unwrap().len(), 3);
}

pub async fn a_rejected_action_writes_nothing(place: &dyn Place) {
    let store = with_tickets(place, &["a"]).await;
    let before = (
        store.ticket(TicketId(1)).await.unwrap(),
        store.jobs().await.unwrap(),
        store.audit_of(TicketId(1)).await.unwrap(),
    );
    let outcome = store
        .act(TicketId(1), &|t| {
            apply(
                t,
                AgentAction::Claim,
                &agent("EVE"),
                &Desk::default(),
                now(),
            )
        })
        .await
        .unwrap();
    assert_eq!(outcome, Err(Rejection::NotAnAgent));
    let after = (
        store.ticket(TicketId(1)).await.unwrap(),
        store.jobs().await.unwrap(),
        store.audit_of(TicketId(1)).await.unwrap(),
    );
    assert_eq!(after, before);
    let missing = store
        .act(TicketId(9), &|t| {
            apply(t, AgentAction::Claim, &agent("U1"), &desk_of(&[]), now())
        })
        .await;
    assert!(
        matches!(
            missing,
            Err(mentionbridge::ports::StoreError::NoSuchTicket(TicketId(9)))
        ),
        "{missing:?}"
    );
    // A desk decision that finds nothing to do writes nothing either.
    assert_eq!(
        store.transition(TicketId(1), &|_| None).await.unwrap(),
        None
    );
    assert_eq!(store.jobs().await.unwrap(), before.1);
}

// -- the outbox ----------------------------------------------------------------------------

pub async fn jobs_come_out_in_queue_order_a_page_at_a_time(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b", "c", "d", "e"]).await;
    let all = store.jobs().await.unwrap();
    let tickets: Vec<u64> = all.iter().map(|j| j.ticket.0).collect();
    assert_eq!(tickets, [1, 2, 3, 4, 5], "in the order they were queued");
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.pending_jobs(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(store.job(all[2].id).await.unwrap().as_ref(), Some(&all[2]));
}

pub async fn a_started_job_is_marked_maybe_sent_and_a_deferred_one_waits(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b"]).await;
    let jobs = store.jobs().await.unwrap();
    store.mark_started(&[jobs[0].id, 999_999]).await.unwrap();
    let started = store.job(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(started.attempts, 1);
    assert_eq!(store.job(jobs[1].id).await.unwrap().unwrap().attempts, 0);
    let until = now() + Duration::minutes(10);
    store
        .defer(&started, until, "Slack said 503")
        .await
        .unwrap();
    let deferred = store.job(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(deferred.not_before, Some(until));
    assert_eq!(deferred.last_error.as_deref(), Some("Slack said 503"));
    assert_eq!(deferred.attempts, 1, "deferring keeps the count");
    assert_eq!(
        store.jobs().await.unwrap()[0].id,
        jobs[0].id,
        "still pending, in its place"
    );
    // Deferring a job that is done does not bring it back.
    store.complete(&jobs[1], None, now()).await.unwrap();
    store.defer(&jobs[1], until, "late").await.unwrap();
    assert_eq!(store.job(jobs[1].id).await.unwrap(), None);
}

pub async fn completing_a_job_twice_is_harmless(place: &dyn Place) {
    let store = with_tickets(place, &["a"]).await;
    let mut publish = ana_replies(&store).await;
    store.mark_started(&[publish.id]).await.unwrap();
    publish.attempts = 1;
    let published = SystemEvent::ReplyPublished {
        seq: 1,
        remote_id: "99".into(),
        url: "https://m.example/@brand/99".into(),
    };
    for _ in 0..2 {
        store
            .complete(&publish, Some(published.clone()), now())
            .await
            .unwrap();
    }
    assert_eq!(store.job(publish.id).await.unwrap(), None);
    let ticket = store.ticket(TicketId(1)).await.unwrap().unwrap();
    assert_eq!(ticket.stage, mentionbridge::domain::Stage::Replied);
    let notes = store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| matches!(j.effect, Effect::ThreadNote(Note::ReplyPublished { .. })))
        .count();
    assert_eq!(notes, 1, "the follow-up effects are queued once");
    // `complete_with` queues more effects in the same step.
    let post = store.jobs().await.unwrap()[0].clone();
    store
        .complete_with(&post, None, &[Effect::UpdateCards], now())
        .await
        .unwrap();
    assert_eq!(store.job(post.id).await.unwrap(), None);
    let last = store.jobs().await.unwrap().pop().unwrap();
    assert_eq!(
        (last.ticket, last.effect),
        (TicketId(1), Effect::UpdateCards)
    );
}

pub async fn a_job_given_up_on_is_kept_and_written_in_the_audit_trail(place: &dyn Place) {
    let store = with_tickets(place, &["a"]).await;
    let mut job = store.jobs().await.unwrap().remove(0);
    store.mark_started(&[job.id]).await.unwrap();
    job.attempts = 1;
    store
        .give_up(&job, "channel_not_found", now())
        .await
        .unwrap();
    assert_eq!(store.job(job.id).await.unwrap(), None);
    let failed = store.failed_jobs().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, job.id);
    assert_eq!(failed[0].last_error.as_deref(), Some("channel_not_found"));
    let last = store.audit_of(TicketId(1)).await.unwrap().pop().unwrap();
    assert_eq!(last.what, "gave up after 1 tries");
    assert_eq!(last.detail.as_deref(), Some("channel_not_found"));
    assert!(
        store.ticket(TicketId(1)).await.unwrap().is_some(),
        "the ticket stays on the desk"
    );
}

pub async fn a_desk_job_is_queued_with_its_state(place: &dyn Place) {
    let store = place.open();
    store
        .queue_desk_job(Effect::UpdateCards, "handoff:last", b"2026-11-25", now())
        .await
        .unwrap();
    let jobs = store.jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].ticket, DESK_JOBS);
    assert_eq!(jobs[0].created_at, now());
    assert_eq!(
        store.state("handoff:last").await.unwrap().as_deref(),
        Some(&b"2026-11-25"[..])
    );
    // Giving up on a desk job writes no ticket's audit trail.
    store.give_up(&jobs[0], "no channel", now()).await.unwrap();
    assert!(store.audit_all().await.unwrap().is_empty());
}

// -- the audit log -------------------------------------------------------------------------

pub async fn the_audit_log_reads_back_in_order(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b"]).await;
    let note = |ticket: u64, text: &str, minute: i64| AuditEntry {
        ticket: TicketId(ticket),
        at: now() + Duration::minutes(minute),
        actor: Some(agent("ANA")),
        what: "internal note".into(),
        detail: Some(text.into()),
    };
    let written = [
        note(2, "first", 1),
        note(1, "second", 2),
        note(2, "third", 3),
    ];
    for entry in &written {
        store.append_audit(entry).await.unwrap();
    }
    let of_two = store.audit_of(TicketId(2)).await.unwrap();
    assert_eq!(of_two[0].what, "mention received");
    assert_eq!(&of_two[1..], &[written[0].clone(), written[2].clone()]);
    let all: Vec<(u64, Option<String>)> = store
        .audit_all()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.ticket.0, e.detail))
        .collect();
    let line = |t: u64, d: &str| (t, Some(d.to_string()));
    assert_eq!(
        all,
        [
            line(1, "https://m.example/@alice/a"),
            line(1, "second"),
            line(2, "https://m.example/@alice/b"),
            line(2, "first"),
            line(2, "third"),
        ],
        "by ticket, then oldest first"
    );
}

// -- cards ---------------------------------------------------------------------------------

pub async fn a_card_is_found_by_its_message_until_it_is_lost(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b"]).await;
    store.save_card(TicketId(1), &card("1700.1")).await.unwrap();
    let discord = CardRef {
        surface: SurfaceKind::Discord,
        channel: "1100".into(),
        message_id: "1101".into(),
        thread_id: Some("1102".into()),
    };
    store.save_card(TicketId(1), &discord).await.unwrap();
    store.save_card(TicketId(2), &card("1700.2")).await.unwrap();
    let cards = store.cards(TicketId(1)).await.unwrap();
    assert_eq!(cards.len(), 2);
    assert!(cards.contains(&card("1700.1")) && cards.contains(&discord));
    let find = |surface, channel: &'static str, message: &'static str| {
        let store = store.clone();
        async move {
            store
                .ticket_by_card(surface, channel, message)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        find(SurfaceKind::Slack, "C0SUPPORT", "1700.2").await,
        Some(TicketId(2))
    );
    assert_eq!(
        find(SurfaceKind::Discord, "1100", "1101").await,
        Some(TicketId(1))
    );
    assert_eq!(
        find(SurfaceKind::Discord, "C0SUPPORT", "1700.1").await,
        None
    );
    assert_eq!(store.cards_lost(SurfaceKind::Slack).await.unwrap(), 0);

    store
        .report_lost_card(TicketId(1), SurfaceKind::Slack, "message_not_found", now())
        .await
        .unwrap();
    assert_eq!(store.cards(TicketId(1)).await.unwrap(), vec![discord]);
    assert_eq!(find(SurfaceKind::Slack, "C0SUPPORT", "1700.1").await, None);
    assert_eq!(store.cards_lost(SurfaceKind::Slack).await.unwrap(), 1);
    assert_eq!(store.cards_lost(SurfaceKind::Discord).await.unwrap(), 0);
    let told = store.jobs().await.unwrap().pop().unwrap();
    assert_eq!(told.ticket, TicketId(1));
    assert!(matches!(
        told.effect,
        Effect::ThreadNote(Note::CardLost {
            surface: SurfaceKind::Slack,
            ..
        })
    ));
    let last = store.audit_of(TicketId(1)).await.unwrap().pop().unwrap();
    assert_eq!(last.detail.as_deref(), Some("message_not_found"));
}

// -- per-source state and inbound events ---------------------------------------------------

pub async fn source_state_round_trips_by_key_and_survives_a_restart(place: &dyn Place) {
    {
        let store = place.open();
        assert_eq!(store.state("bluesky:session:brand").await.unwrap(), None);
        store
            .set_state("bluesky:session:brand", b"{\"jwt\":1}")
            .await
            .unwrap();
        store.set_state("x:budget:2026-11-25", b"7").await.unwrap();
        store.set_state("x:budget:2026-11-25", b"8").await.unwrap();
        assert_eq!(
            store.state("x:budget:2026-11-25").await.unwrap().as_deref(),
            Some(&b"8"[..]),
            "the last value wins"
        );
        assert_eq!(store.state("x:budget:2026-11-26").await.unwrap(), None);
        store.flush().await.unwrap();
    }
    let store = place.open();
    assert_eq!(
        store
            .state("bluesky:session:brand")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"{\"jwt\":1}"[..])
    );
    assert_eq!(
        store.state("x:budget:2026-11-25").await.unwrap().as_deref(),
        Some(&b"8"[..])
    );
}

pub async fn an_inbound_event_is_first_once_also_after_a_restart(place: &dyn Place) {
    {
        let store = place.open();
        assert!(store
            .first_delivery("slack-event", "Ev1", now())
            .await
            .unwrap());
        assert!(!store
            .first_delivery("slack-event", "Ev1", now())
            .await
            .unwrap());
        // Another source's id of the same spelling is another event.
        assert!(store
            .first_delivery("discord-interaction", "Ev1", now())
            .await
            .unwrap());
    }
    let store = place.open();
    let later = now() + Duration::hours(1);
    assert!(
        !store
            .first_delivery("slack-event", "Ev1", later)
            .await
            .unwrap(),
        "remembered across a restart"
    );
    // Many deliveries of one new event at once: one of them is first.
    let deliveries: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.first_delivery("slack-event", "Ev2", later).await })
        })
        .collect();
    let mut firsts = 0;
    for d in deliveries {
        firsts += usize::from(d.await.unwrap().unwrap());
    }
    assert_eq!(firsts, 1);
    // Past the retention an id is new again.
    let much_later = later + mentionbridge::ports::SEEN_EVENTS_FOR + Duration::minutes(1);
    assert!(store
        .first_delivery("slack-event", "Ev1", much_later)
        .await
        .unwrap());
}
