//! The store contract: what every backend behind `ports::Store` must do, written once
//! against `Arc<dyn Store>`. A backend joins with one line at the bottom:
//! `store_contract!(name, factory)`, where the factory makes a fresh [`Place`] (where
//! that backend keeps its data) and each contract test becomes one `#[tokio::test]`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use mentionbridge::config::{PgTls, PostgresConfig, Secret};
use mentionbridge::domain::text::TextRules;
use mentionbridge::domain::{
    apply, AgentAction, AgentRef, AuditEntry, Author, CardRef, Desk, Effect, Mention, Note,
    Platform, Rejection, SurfaceKind, SystemEvent, TicketId, Visibility,
};
use mentionbridge::ports::{Delivery, Fence, SharedStore, StoreError, DESK_JOBS};
use mentionbridge::store::{GroupCommit, PostgresStore, SledStore};
use std::collections::HashSet;
use std::sync::Arc;

mod history;
mod incidents;
mod indexes;
mod privacy;
use history::*;
use incidents::*;
use privacy::*;
mod triage;
use indexes::*;
use triage::*;

/// Where a backend under test keeps its data. `open` gives a store on it; called again
/// once every handle of the last one is dropped, it is the same store after a restart.
pub trait Place: Send + Sync {
    fn open(&self) -> SharedStore;

    /// A store on it whose tickets follow `routes` (as the configured desk opens it).
    fn open_with(&self, routes: mentionbridge::domain::routes::Routes) -> SharedStore;

    /// Another handle on the data `first` holds, as a second replica would have it (its
    /// own connections). A backend one process holds alone (sled locks its directory)
    /// gives `first` again: its concurrency is that of tasks sharing one handle.
    fn open_second(&self, first: &SharedStore) -> SharedStore {
        first.clone()
    }
}

/// Sled in a temporary directory, removed when the place is dropped.
pub struct SledPlace(tempfile::TempDir);

impl SledPlace {
    pub fn new() -> SledPlace {
        SledPlace(tempfile::tempdir().expect("a temporary directory"))
    }
}

impl SledPlace {
    /// The sled database itself, to lay out a store as an older version left it.
    fn raw(&self) -> ::sled::Db {
        mentionbridge::store::open_sled_db(&self.0.path().join("store.sled")).unwrap()
    }

    fn store(&self) -> SledStore {
        SledStore::open(&self.0.path().join("store.sled")).expect("the sled store")
    }
}

impl Place for SledPlace {
    fn open(&self) -> SharedStore {
        Arc::new(self.store())
    }

    fn open_with(&self, routes: mentionbridge::domain::routes::Routes) -> SharedStore {
        Arc::new(self.store().with_routes(routes))
    }
}

/// A fresh database of its own on the cluster the test binary shares (see
/// `postgres::shared`); left behind with the cluster (on a developer's server, `mb_*`
/// databases may be dropped at will).
pub struct PgPlace {
    config: PostgresConfig,
}

impl PgPlace {
    pub fn new() -> PgPlace {
        let url = crate::postgres::shared().fresh_database();
        PgPlace {
            config: PostgresConfig {
                url: Secret::new(url),
                pool_size: 8,
                // The cluster offers no TLS: `prefer` goes through the TLS set-up and
                // then connects in the clear.
                tls: PgTls::Prefer,
                ca_file: None,
                connect_timeout: std::time::Duration::from_secs(10),
            },
        }
    }

    fn connect(&self) -> PostgresStore {
        // Places are opened from inside the (multi-threaded) test runtime.
        let store = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(PostgresStore::connect(&self.config))
        });
        store.expect("the PostgreSQL store")
    }
}

impl Place for PgPlace {
    fn open(&self) -> SharedStore {
        Arc::new(self.connect())
    }

    fn open_with(&self, routes: mentionbridge::domain::routes::Routes) -> SharedStore {
        Arc::new(self.connect().with_routes(routes))
    }

    fn open_second(&self, _first: &SharedStore) -> SharedStore {
        Arc::new(self.connect())
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
                jobs_come_out_in_queue_order,
                a_started_job_is_marked_maybe_sent_and_a_deferred_one_waits,
                completing_a_job_twice_is_harmless,
                a_job_given_up_on_is_kept_and_written_in_the_audit_trail,
                a_desk_job_is_queued_with_its_state,
                the_audit_log_reads_back_in_order,
                a_card_is_found_by_its_message_until_it_is_lost,
                source_state_round_trips_by_key_and_survives_a_restart,
                an_inbound_event_is_first_once_also_after_a_restart,
                two_senders_never_take_one_job_and_together_take_every_due_head,
                only_the_oldest_job_of_a_ticket_lane_is_handed_out,
                a_translation_waits_in_its_own_lane_and_stays_on_its_ticket,
                an_expired_claim_is_taken_over_and_the_first_sender_stands_down,
                renewed_claims_outlive_their_first_hold,
                a_lease_is_one_holders_until_it_expires_or_is_released,
                a_fenced_handle_writes_only_under_the_current_lease,
                two_replicas_ingesting_the_same_mentions_make_each_ticket_once,
                counts_from_two_handles_at_once_are_all_kept,
                one_group_of_several_sources_moves_every_cursor,
                a_mention_in_two_deliveries_of_a_group_is_one_ticket_and_one_duplicate,
                ticket_numbers_and_jobs_follow_delivery_order,
                a_fenced_out_delivery_alone_is_refused_and_the_others_commit,
                concurrent_ingests_through_group_commit_are_each_acknowledged_and_kept,
                a_fenced_handle_of_the_grouped_store_is_refused_alone,
                the_indexes_follow_every_kind_of_ticket_write,
                a_due_instant_moves_when_its_sla_step_is_taken,
                an_off_hours_mark_stops_a_ticket_being_due_for_it,
                a_change_of_routes_makes_every_open_ticket_looked_at_again,
                open_tickets_are_found_by_the_number_typed,
                a_storm_is_one_incident_with_its_members_and_card_committed_together,
                a_held_card_waits_and_a_member_leaves_for_a_card_of_its_own,
                a_members_first_answer_is_counted_on_its_incident_once,
                concurrent_joins_keep_every_member_once,
                intake_finds_the_authors_earlier_tickets_also_in_the_same_batch_and_after_a_restart,
                a_rule_ignored_mention_is_stored_with_no_card_to_post,
                the_heads_of_the_open_list_are_each_groups_longest_waiting,
                an_authors_contacts_are_read_newest_first_per_network,
                notes_about_a_person_are_kept_per_author_and_forgotten_together,
                a_rewritten_ticket_keeps_no_trace_of_the_person_and_its_post_is_still_known,
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
store_contract!(postgres, super::PgPlace::new);

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
            followers: None,
        },
        text: "where is my order?".into(),
        language: None,
        created_at: now(),
        in_reply_to: None,
        visibility: Visibility::Public,
        reply_context: None,
        external_id: None,
        detected_language: None,
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

pub async fn jobs_come_out_in_queue_order(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b", "c", "d", "e"]).await;
    let all = store.jobs().await.unwrap();
    let tickets: Vec<u64> = all.iter().map(|j| j.ticket.0).collect();
    assert_eq!(tickets, [1, 2, 3, 4, 5], "in the order they were queued");
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(store.pending_job_count().await.unwrap(), all.len() as u64);
    assert_eq!(store.job(all[2].id).await.unwrap().as_ref(), Some(&all[2]));
}

pub async fn a_started_job_is_marked_maybe_sent_and_a_deferred_one_waits(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b"]).await;
    let jobs = store.jobs().await.unwrap();
    let claimed = store
        .claim_jobs("sender", 1, now(), std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.jobs.len(), 1);
    assert_eq!(claimed.jobs[0].id, jobs[0].id);
    let started = store.job(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(started.attempts, 1);
    assert_eq!(claimed.jobs[0], started);
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
    let queued = ana_replies(&store).await;
    let publish = store
        .claim_jobs("sender", 10, now(), std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .jobs
        .into_iter()
        .find(|j| j.id == queued.id)
        .expect("the reply's job is its lane's head");
    assert_eq!(publish.attempts, 1);
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
    let queued = store.jobs().await.unwrap().remove(0);
    let job = store
        .claim_jobs("sender", 1, now(), std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .jobs
        .remove(0);
    assert_eq!((job.id, job.attempts), (queued.id, 1));
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
    // A page at a time (as the export reads it), the same lines in the same order.
    let whole = store.audit_all().await.unwrap();
    for page in [1, 2, 5, 100] {
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let lines = store.audit_after(after, page).await.unwrap();
            assert!(lines.len() <= page);
            let Some((last, _)) = lines.last() else { break };
            after = Some(*last);
            paged.extend(lines.into_iter().map(|(_, e)| e));
        }
        assert_eq!(paged, whole, "the audit in pages of {page}");
    }
    let tickets = store.all_tickets().await.unwrap();
    for page in [1, 2, 100] {
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let some = store.tickets_after(after, page).await.unwrap();
            assert!(some.len() <= page);
            let Some(last) = some.last() else { break };
            after = Some(last.id);
            paged.extend(some);
        }
        assert_eq!(paged, tickets, "the tickets in pages of {page}");
    }
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

// -- several senders on one outbox ---------------------------------------------------------

const LONG: std::time::Duration = std::time::Duration::from_secs(60);

fn ids_of(jobs: &[mentionbridge::ports::Job]) -> Vec<u64> {
    jobs.iter().map(|j| j.id).collect()
}

pub async fn two_senders_never_take_one_job_and_together_take_every_due_head(place: &dyn Place) {
    let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let one = with_tickets(place, &refs).await;
    let two = place.open_second(&one);
    let heads = ids_of(&one.jobs().await.unwrap());
    assert_eq!(heads.len(), 12, "one card post per ticket");
    for round in 0..3 {
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let take = |store: SharedStore, claimant: &'static str| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut taken = Vec::new();
                // Small batches, so the two senders interleave.
                loop {
                    let claimed = store.claim_jobs(claimant, 2, now(), LONG).await.unwrap();
                    if claimed.jobs.is_empty() {
                        break taken;
                    }
                    assert!(claimed.jobs.windows(2).all(|w| w[0].id < w[1].id));
                    taken.extend(claimed.jobs);
                }
            })
        };
        let (a, b) = (take(one.clone(), "A"), take(two.clone(), "B"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let a_ids: HashSet<u64> = a.iter().map(|j| j.id).collect();
        let b_ids: HashSet<u64> = b.iter().map(|j| j.id).collect();
        assert!(
            a_ids.is_disjoint(&b_ids),
            "a job handed out twice: {a_ids:?} {b_ids:?}"
        );
        assert_eq!(a.len() + b.len(), heads.len(), "every head job taken once");
        let all: HashSet<u64> = a_ids.union(&b_ids).copied().collect();
        assert_eq!(all, heads.iter().copied().collect::<HashSet<_>>());
        assert!(a.iter().chain(&b).all(|j| j.attempts == round + 1));
        // Release them all for the next round.
        for job in a.iter().chain(&b) {
            one.defer(job, now(), "again").await.unwrap();
        }
        let released = one.jobs().await.unwrap();
        assert!(released
            .iter()
            .all(|j| j.last_error.as_deref() == Some("again")));
    }
    // Everything is claimed once more; a third look finds nothing, and nothing waits.
    let taken = one.claim_jobs("A", 100, now(), LONG).await.unwrap();
    assert_eq!(taken.jobs.len(), heads.len());
    assert!(taken.jobs.iter().all(|j| j.attempts == 4));
    let none = two.claim_jobs("B", 100, now(), LONG).await.unwrap();
    assert_eq!(none.jobs, vec![]);
    assert_eq!(none.next_due, None);
}

pub async fn only_the_oldest_job_of_a_ticket_lane_is_handed_out(place: &dyn Place) {
    let store = with_tickets(place, &["a"]).await;
    let publish = ana_replies(&store).await;
    let queued = store.jobs().await.unwrap();
    assert!(
        queued.len() >= 3,
        "card post, the reply's chat jobs, its publish"
    );
    let post = queued[0].clone();
    assert_eq!(post.effect, Effect::PostCards);
    let other = place.open_second(&store);

    let first = store.claim_jobs("A", 10, now(), LONG).await.unwrap();
    assert_eq!(
        ids_of(&first.jobs),
        vec![post.id, publish.id],
        "the chat lane's head and the platform lane's head"
    );
    assert_eq!(first.next_due, None);
    // While the head of the chat lane is claimed, nothing else of it goes out.
    let second = other.claim_jobs("B", 10, now(), LONG).await.unwrap();
    assert_eq!(second.jobs, vec![]);

    // Deferred, the head still holds its lane back, and says when it is due.
    let claimed_post = first.jobs[0].clone();
    let until = now() + Duration::minutes(10);
    store
        .defer(&claimed_post, until, "Slack said 503")
        .await
        .unwrap();
    let waiting = other.claim_jobs("B", 10, now(), LONG).await.unwrap();
    assert_eq!(waiting.jobs, vec![]);
    assert_eq!(waiting.next_due, Some(until));
    // Once due it is taken again (the count tells the sender to look first).
    let due = other.claim_jobs("B", 10, until, LONG).await.unwrap();
    assert_eq!(ids_of(&due.jobs), vec![post.id]);
    assert_eq!(due.jobs[0].attempts, 2);
    // Done, the next chat job is the lane's head.
    other.complete(&due.jobs[0], None, until).await.unwrap();
    let next_chat = queued[1..]
        .iter()
        .find(|j| j.effect.lane() == mentionbridge::domain::Lane::Chat)
        .expect("the reply's chat jobs");
    let next = store.claim_jobs("A", 10, until, LONG).await.unwrap();
    assert_eq!(ids_of(&next.jobs), vec![next_chat.id]);
}

/// A mention's translation (`Effect::TranslateMention`) has a lane of its own: a
/// translation service that is away holds up none of the card's jobs, and the
/// translation, once made, is kept on the ticket with the card's refresh, once.
pub async fn a_translation_waits_in_its_own_lane_and_stays_on_its_ticket(place: &dyn Place) {
    use mentionbridge::domain::translation::record_translation;
    use mentionbridge::domain::{Lane, MentionTranslation};
    let translation = MentionTranslation {
        text: "Where is my order?".into(),
        from: Some("de".into()),
        to: "en".into(),
        by: "DeepL".into(),
        at: now(),
    };
    let store = with_tickets(place, &["a"]).await;
    let post = store.claim_jobs("A", 10, now(), LONG).await.unwrap().jobs;
    assert_eq!(post[0].effect, Effect::PostCards);
    store
        .complete_with(
            &post[0],
            Some(SystemEvent::CardPosted),
            &[Effect::TranslateMention],
            now(),
        )
        .await
        .unwrap();
    let desk = desk_of(&["ANA".to_string()]);
    store
        .act(TicketId(1), &|t| {
            apply(t, AgentAction::Claim, &agent("ANA"), &desk, now())
        })
        .await
        .unwrap()
        .expect("Ana may claim");
    let heads = store.claim_jobs("A", 10, now(), LONG).await.unwrap().jobs;
    let effects: Vec<Effect> = heads.iter().map(|j| j.effect.clone()).collect();
    assert_eq!(
        effects,
        vec![Effect::TranslateMention, Effect::UpdateCards],
        "the translation lane's head beside the chat lane's"
    );
    // The service is away: the translation waits; the card's next job does not.
    let until = now() + Duration::minutes(10);
    store
        .defer(&heads[0], until, "DeepL is unavailable")
        .await
        .unwrap();
    store.complete(&heads[1], None, now()).await.unwrap();
    let next = store.claim_jobs("A", 10, now(), LONG).await.unwrap();
    assert_eq!(next.jobs.len(), 1, "{:?}", next.jobs);
    assert_eq!(next.jobs[0].effect.lane(), Lane::Chat);
    assert_eq!(next.next_due, Some(until));

    let recorded = store
        .transition(TicketId(1), &|t| {
            record_translation(t, translation.clone(), until)
        })
        .await
        .unwrap()
        .expect("the first translation is kept");
    assert_eq!(recorded.translation.as_ref(), Some(&translation));
    let refresh = store
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.effect == Effect::UpdateCards)
        .count();
    assert_eq!(refresh, 1, "the card is refreshed to show it");
    let again = store
        .transition(TicketId(1), &|t| {
            record_translation(t, translation.clone(), until)
        })
        .await
        .unwrap();
    assert!(again.is_none(), "a second one changes nothing");
    let ticket = store.ticket(TicketId(1)).await.unwrap().unwrap();
    assert_eq!(
        ticket.translation,
        Some(translation),
        "read back with the ticket"
    );
}

pub async fn an_expired_claim_is_taken_over_and_the_first_sender_stands_down(place: &dyn Place) {
    let store = with_tickets(place, &["a"]).await;
    let other = place.open_second(&store);
    let short = std::time::Duration::from_millis(300);
    let mine = store.claim_jobs("A", 10, now(), short).await.unwrap().jobs;
    assert_eq!(mine.len(), 1);
    let mine = mine[0].clone();
    assert_eq!(mine.attempts, 1);
    assert!(store.holds_claim(&mine, "A", short).await.unwrap());
    assert!(
        !other.holds_claim(&mine, "B", short).await.unwrap(),
        "B never claimed it"
    );
    assert_eq!(
        other.claim_jobs("B", 10, now(), LONG).await.unwrap().jobs,
        vec![]
    );

    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let theirs = other.claim_jobs("B", 10, now(), LONG).await.unwrap().jobs;
    assert_eq!(
        ids_of(&theirs),
        vec![mine.id],
        "the expired claim is taken over"
    );
    let theirs = theirs[0].clone();
    assert_eq!(theirs.attempts, 2);
    assert!(!store.holds_claim(&mine, "A", LONG).await.unwrap());
    assert!(other.holds_claim(&theirs, "B", LONG).await.unwrap());

    // What A reports late (a lower attempt count) changes nothing.
    store
        .defer(&mine, now() + Duration::minutes(5), "late")
        .await
        .unwrap();
    store.complete(&mine, None, now()).await.unwrap();
    store.give_up(&mine, "late", now()).await.unwrap();
    let stored = store.job(mine.id).await.unwrap().expect("still queued");
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.not_before, None);
    assert_eq!(stored.last_error, None);
    assert!(store.failed_jobs().await.unwrap().is_empty());
    assert!(
        other.holds_claim(&theirs, "B", LONG).await.unwrap(),
        "B's claim stands"
    );
    // B's own report is taken.
    other.complete(&theirs, None, now()).await.unwrap();
    assert_eq!(store.job(mine.id).await.unwrap(), None);
}

pub async fn renewed_claims_outlive_their_first_hold(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b"]).await;
    let other = place.open_second(&store);
    let hold = std::time::Duration::from_millis(800);
    let mine = store.claim_jobs("A", 10, now(), hold).await.unwrap().jobs;
    assert_eq!(mine.len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    store
        .renew_claims("A", std::time::Duration::from_secs(10))
        .await
        .unwrap();
    // Another sender's heartbeat renews only its own claims.
    other.renew_claims("B", LONG).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    // Past the first hold: still A's.
    assert_eq!(
        other.claim_jobs("B", 10, now(), LONG).await.unwrap().jobs,
        vec![]
    );
    for job in &mine {
        assert!(store.holds_claim(job, "A", hold).await.unwrap());
    }
}

// -- duties held by one replica ------------------------------------------------------------

pub async fn a_lease_is_one_holders_until_it_expires_or_is_released(place: &dyn Place) {
    let one = place.open();
    let two = place.open_second(&one);
    let ttl = std::time::Duration::from_secs(1);
    let duty = "watcher:mastodon:brand";
    let a = one
        .acquire_lease(duty, "A", ttl)
        .await
        .unwrap()
        .expect("free");
    assert_eq!((a.duty.as_str(), a.holder.as_str()), (duty, "A"));
    assert_eq!(two.acquire_lease(duty, "B", ttl).await.unwrap(), None);
    let again = one.acquire_lease(duty, "A", ttl).await.unwrap();
    assert_eq!(
        again.as_ref(),
        Some(&a),
        "the holder asking again keeps its grant"
    );
    // Another duty is another lease.
    assert!(two
        .acquire_lease("scheduler", "B", ttl)
        .await
        .unwrap()
        .is_some());
    let seen = two.leases().await.unwrap();
    let held: Vec<(&str, &str)> = seen
        .iter()
        .map(|l| (l.duty.as_str(), l.holder.as_str()))
        .collect();
    assert_eq!(held, [("scheduler", "B"), (duty, "A")], "by duty");
    assert!(seen[1].expires_at > seen[1].renewed_at);

    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let b = two
        .acquire_lease(duty, "B", ttl)
        .await
        .unwrap()
        .expect("expired");
    assert!(b.token > a.token, "{} after {}", b.token, a.token);
    assert!(
        !one.renew_lease(&a, ttl).await.unwrap(),
        "A's grant is gone"
    );
    assert!(two.renew_lease(&b, ttl).await.unwrap());
    // Releasing a grant no longer held leaves the holder's alone.
    one.release_lease(&a).await.unwrap();
    assert_eq!(one.acquire_lease(duty, "A", ttl).await.unwrap(), None);
    // A clean stop hands the duty over at once, to a newer token.
    two.release_lease(&b).await.unwrap();
    let a2 = one
        .acquire_lease(duty, "A", ttl)
        .await
        .unwrap()
        .expect("released");
    assert!(a2.token > b.token);
    assert!(!two.renew_lease(&b, ttl).await.unwrap());
    let state = one.leases().await.unwrap();
    let watcher = state.iter().find(|l| l.duty == duty).unwrap();
    assert_eq!((watcher.holder.as_str(), watcher.token), ("A", a2.token));
}

pub async fn a_fenced_handle_writes_only_under_the_current_lease(place: &dyn Place) {
    let one = place.open();
    let two = place.open_second(&one);
    let duty = "watcher:mastodon:brand";
    let fence = Fence::new(duty);
    let fenced = one.fenced(fence.clone());
    let fenced_out =
        |r: Result<_, StoreError>| matches!(r, Err(StoreError::Fenced { duty: d }) if d == duty);

    // No lease set: every write is refused, and nothing is written.
    let r = fenced
        .ingest(
            "mastodon:brand",
            &[mention("a", "alice")],
            Some("c0"),
            now(),
        )
        .await;
    assert!(fenced_out(r.map(|_| ())), "without a lease");
    assert!(fenced_out(fenced.set_state("k", b"v").await));
    assert_eq!(one.cursor("mastodon:brand").await.unwrap(), None);
    assert_eq!(one.ticket_count().await.unwrap(), 0);
    assert_eq!(one.state("k").await.unwrap(), None);

    let ttl = std::time::Duration::from_secs(1);
    let lease = one
        .acquire_lease(duty, "A", ttl)
        .await
        .unwrap()
        .expect("free");
    fence.set(Some(lease));
    fenced
        .ingest(
            "mastodon:brand",
            &[mention("a", "alice")],
            Some("c1"),
            now(),
        )
        .await
        .unwrap();
    fenced.set_state("k", b"v1").await.unwrap();
    assert_eq!(
        fenced.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("c1")
    );

    // Paused past its lease, A's handle cannot write once B took the duty over.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let b = two
        .acquire_lease(duty, "B", ttl)
        .await
        .unwrap()
        .expect("expired");
    let r = fenced
        .ingest("mastodon:brand", &[mention("b", "bob")], Some("c2"), now())
        .await;
    assert!(fenced_out(r.map(|_| ())), "after the takeover");
    assert!(fenced_out(fenced.set_state("k", b"v2").await));
    assert!(fenced_out(
        fenced
            .append_audit(&AuditEntry {
                ticket: TicketId(1),
                at: now(),
                actor: None,
                what: "late".into(),
                detail: None,
            })
            .await
    ));
    assert_eq!(
        two.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("c1"),
        "the cursor did not move"
    );
    assert_eq!(two.ticket_count().await.unwrap(), 1);
    assert_eq!(two.state("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(two.audit_of(TicketId(1)).await.unwrap().len(), 1);
    // Reads through the fenced handle still work; B's own fenced handle writes.
    assert_eq!(fenced.ticket_count().await.unwrap(), 1);
    let b_fence = Fence::new(duty);
    b_fence.set(Some(b));
    two.fenced(b_fence)
        .ingest("mastodon:brand", &[mention("b", "bob")], Some("c2"), now())
        .await
        .unwrap();
    assert_eq!(
        one.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("c2")
    );
}

// -- replicas ingesting at once -------------------------------------------------------------

pub async fn two_replicas_ingesting_the_same_mentions_make_each_ticket_once(place: &dyn Place) {
    let one = place.open();
    let two = place.open_second(&one);
    let mut expected = 0u64;
    for round in 0..4 {
        let batch: Vec<Mention> = (0..5)
            .map(|i| mention(&format!("r{round}m{i}"), "alice"))
            .collect();
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let run = |store: SharedStore| {
            let (batch, start) = (batch.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .ingest("mastodon:brand", &batch, None, now())
                    .await
                    .unwrap()
            })
        };
        let (a, b) = (run(one.clone()), run(two.clone()));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let mut new: Vec<u64> = a
            .new_tickets
            .iter()
            .chain(&b.new_tickets)
            .map(|t| t.0)
            .collect();
        new.sort_unstable();
        let numbers: Vec<u64> = (expected + 1..=expected + 5).collect();
        assert_eq!(
            new, numbers,
            "each mention one ticket, numbered in sequence"
        );
        assert_eq!(
            a.duplicates + b.duplicates,
            5,
            "the other copy of each a duplicate"
        );
        expected += 5;
    }
    assert_eq!(one.ticket_count().await.unwrap(), 20);
    assert_eq!(
        two.jobs().await.unwrap().len(),
        20,
        "one card post per ticket"
    );
    for t in 1..=20 {
        assert_eq!(
            one.audit_of(TicketId(t)).await.unwrap().len(),
            1,
            "ticket {t} received once"
        );
    }
}

// -- what only sled does --------------------------------------------------------------------

mod sled_only {
    use super::*;

    /// A sled directory from before the indexes: they are built when it is opened.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_store_made_before_the_indexes_builds_them_when_opened() {
        let place = SledPlace::new();
        a_varied_desk(&place.open()).await;
        {
            let db = place.raw();
            db.drop_tree("ticket_index").unwrap();
            db.open_tree("meta")
                .unwrap()
                .remove("index_version")
                .unwrap();
            db.flush().unwrap();
        }
        let store = place.open();
        let routes = mentionbridge::domain::routes::Routes::default();
        assert_indexes_match(&store, &routes, now() + Duration::minutes(90), "built").await;
        assert_eq!(store.ticket_count().await.unwrap(), 3);
    }

    /// A sled directory with the first version of the indexes (nothing kept beside the
    /// tickets by the instant received): they are built again when it is opened.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_store_with_the_first_version_of_the_indexes_builds_them_again() {
        let place = SledPlace::new();
        a_varied_desk(&place.open()).await;
        {
            let db = place.raw();
            let index = db.open_tree("ticket_index").unwrap();
            let received: Vec<_> = index.scan_prefix(b"r").keys().map(Result::unwrap).collect();
            assert_eq!(received.len(), 3);
            for k in received {
                index.insert(k, &[]).unwrap();
            }
            db.open_tree("meta")
                .unwrap()
                .insert("index_version", "1")
                .unwrap();
            db.flush().unwrap();
        }
        let store = place.open();
        let routes = mentionbridge::domain::routes::Routes::default();
        assert_indexes_match(&store, &routes, now() + Duration::minutes(90), "rebuilt").await;
    }
}

// -- what only PostgreSQL does -------------------------------------------------------------

mod postgres_only {
    use super::*;
    use mentionbridge::store::postgres::migrate;

    fn config_for(url: String) -> PostgresConfig {
        PostgresConfig {
            url: Secret::new(url),
            pool_size: 2,
            tls: PgTls::Disable,
            ca_file: None,
            connect_timeout: std::time::Duration::from_secs(2),
        }
    }

    /// Everything an error says, its sources included.
    fn said(e: &StoreError) -> String {
        let mut all = format!("{e} / {e:?}");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            all.push_str(&format!(" / {s}"));
            source = s.source();
        }
        all
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrations_apply_once_even_when_replicas_start_together() {
        let place = PgPlace::new();
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let config = place.config.clone();
                tokio::spawn(async move { migrate(&config).await.unwrap() })
            })
            .collect();
        let mut applied = Vec::new();
        for run in runs {
            applied.push(run.await.unwrap());
        }
        applied.sort();
        assert_eq!(applied, [vec![], vec![], vec![], vec![1, 2, 3, 4, 5, 6, 7]]);
        assert_eq!(migrate(&place.config).await.unwrap(), Vec::<i64>::new());
        let cluster = crate::postgres::shared();
        assert_eq!(
            cluster.psql_in(
                place.config.url.expose(),
                "select string_agg(version || ':' || name, ',' order by version) from schema_migrations"
            ),
            "1:initial,2:outbox_deferred,3:flat_costs,4:ticket_facts,5:triage,6:incidents,7:person_notes"
        );
        // A store opens on it, and its ticket numbers start at 1.
        let store = place.open();
        let done = store
            .ingest("src", &[mention("a", "alice")], None, now())
            .await
            .unwrap();
        assert_eq!(done.new_tickets, vec![TicketId(1)]);
    }

    /// A database at version 2 with tickets in it: migrating adds the index columns and
    /// fills them, with the counters, from the tickets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_database_at_version_2_is_indexed_when_migrated() {
        let place = PgPlace::new();
        a_varied_desk(&place.open()).await;
        // Back to version 2: what migration 3 added, and what the binary filled, gone.
        crate::postgres::shared().psql_in(
            place.config.url.expose(),
            "ALTER TABLE tickets DROP COLUMN received_ns, DROP COLUMN due_ns,
                 DROP COLUMN first_answer_ns, DROP COLUMN unanswered_route, DROP COLUMN facts,
                 DROP COLUMN author_key, DROP COLUMN priority_score;
             DROP TABLE first_response_waits;
             DELETE FROM counters WHERE name LIKE 'tally:%';
             DELETE FROM state WHERE key IN ('ticket_index', 'due:routes');
             DROP TABLE incidents; DROP TABLE incident_members;
             DROP TABLE person_notes;
             DELETE FROM schema_migrations WHERE version IN (3, 4, 5, 6, 7);",
        );
        assert_eq!(migrate(&place.config).await.unwrap(), vec![3, 4, 5, 6, 7]);
        let store = place.open();
        let routes = mentionbridge::domain::routes::Routes::default();
        assert_indexes_match(&store, &routes, now() + Duration::minutes(90), "filled").await;
        assert_eq!(store.ticket_count().await.unwrap(), 3);
    }

    /// A database at version 3: its rows have no facts beside them, so a window's
    /// numbers read those tickets' bodies, until each is written again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_database_at_version_3_reads_the_facts_of_its_rows_from_their_bodies() {
        let place = PgPlace::new();
        a_varied_desk(&place.open()).await;
        crate::postgres::shared().psql_in(
            place.config.url.expose(),
            "ALTER TABLE tickets DROP COLUMN facts, DROP COLUMN author_key,
                 DROP COLUMN priority_score;
             DROP TABLE incidents; DROP TABLE incident_members;
             DROP TABLE person_notes;
             DELETE FROM schema_migrations WHERE version IN (4, 5, 6, 7);",
        );
        assert_eq!(migrate(&place.config).await.unwrap(), vec![4, 5, 6, 7]);
        let store = place.open();
        let routes = mentionbridge::domain::routes::Routes::default();
        assert_indexes_match(&store, &routes, now() + Duration::minutes(90), "version 3").await;
        let without = crate::postgres::shared().psql_in(
            place.config.url.expose(),
            "select count(*) from tickets where facts is null",
        );
        assert_eq!(without, "3");
    }

    /// A database at version 4: migrating to 5 gives its recent and open rows their
    /// author, written as intake writes it, so the next mention by the same person (its
    /// handle written in other case) is a repeat contact; the open list reads their
    /// points as 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_database_at_version_4_knows_its_authors_once_migrated() {
        let place = PgPlace::new();
        let store = place.open();
        let first = mention("1", "@Alice@Other.Social");
        store
            .ingest("src", &[first], None, Utc::now())
            .await
            .unwrap();
        store.flush().await.unwrap();
        drop(store);
        crate::postgres::shared().psql_in(
            place.config.url.expose(),
            "ALTER TABLE tickets DROP COLUMN author_key, DROP COLUMN priority_score;
             DROP TABLE incidents; DROP TABLE incident_members;
             DROP TABLE person_notes;
             DELETE FROM schema_migrations WHERE version IN (5, 6, 7);",
        );
        assert_eq!(migrate(&place.config).await.unwrap(), vec![5, 6, 7]);
        let store = place.open();
        let open = store.open_priorities().await.unwrap();
        assert_eq!((open.len(), open[0].score), (1, 0));
        store
            .ingest(
                "src",
                &[mention("2", "alice@other.social")],
                None,
                Utc::now(),
            )
            .await
            .unwrap();
        let again = store.ticket(TicketId(2)).await.unwrap().unwrap();
        assert_eq!(again.priority.why(), "2nd contact this week");
    }

    /// `mentionbridge migrate` brings the configured database up to date, then finds
    /// nothing to do; it needs only the store's own variables.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_migrate_command_applies_the_schema_once() {
        let place = PgPlace::new();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bot-config.toml");
        std::fs::write(
            &config,
            "[store]\nbackend = \"postgres\"\nurl = \"${MB_TEST_STORE_URL}\"\ntls = \"disable\"\n",
        )
        .unwrap();
        let run = || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_mentionbridge"))
                .args(["migrate", "--config"])
                .arg(&config)
                .env("MB_TEST_STORE_URL", place.config.url.expose())
                .env_remove("MENTIONBRIDGE_CONFIG")
                .output()
                .expect("mentionbridge runs");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{stdout}{stderr}");
            assert!(
                !stdout.contains(place.config.url.expose())
                    && !stderr.contains(place.config.url.expose()),
                "the URL is never printed: {stdout}{stderr}"
            );
            stdout
        };
        let first = run();
        assert!(first.contains("applied 1, 2, 3"), "{first}");
        let second = run();
        assert!(second.contains("up to date"), "{second}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_schema_newer_than_this_binary_is_refused() {
        let place = PgPlace::new();
        migrate(&place.config).await.unwrap();
        let cluster = crate::postgres::shared();
        cluster.psql_in(
            place.config.url.expose(),
            "insert into schema_migrations values (99, 'from the future', now())",
        );
        for refused in [
            PostgresStore::connect(&place.config).await.map(|_| ()),
            migrate(&place.config).await.map(|_| ()),
        ] {
            assert!(
                matches!(
                    refused,
                    Err(StoreError::SchemaTooNew {
                        found: 99,
                        known: 7
                    })
                ),
                "{refused:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_unreachable_database_is_an_error_that_never_shows_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let config = config_for(format!(
            "postgres://desk:hunter2-secret@127.0.0.1:{port}/desk?sslmode=disable"
        ));
        let started = std::time::Instant::now();
        let err = PostgresStore::connect(&config)
            .await
            .err()
            .expect("nobody listens there");
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        let shown = said(&err);
        assert!(shown.contains(&format!("127.0.0.1:{port}/desk")), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));

        // TLS required by the configuration, even against the URL's `sslmode=disable`:
        // the test server offers none, so it is refused.
        let place = PgPlace::new();
        let mut required = place.config.clone();
        required.tls = PgTls::Require;
        required.url = Secret::new(format!("{}?sslmode=disable", required.url.expose()));
        let err = PostgresStore::connect(&required)
            .await
            .err()
            .expect("no TLS on the test server");
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    }

    /// A test CA and a server certificate it signed for 127.0.0.1, in `dir`.
    fn make_certificates(dir: &std::path::Path) {
        let script = r#"set -e
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mentionbridge-test-ca \
                -keyout ca.key -out ca.pem \
                -addext basicConstraints=critical,CA:TRUE \
                -addext keyUsage=critical,keyCertSign,cRLSign
            openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
                -keyout server.key -out server.csr
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days 2 -extfile server.ext -out server.pem"#;
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tls_is_used_and_the_certificate_verified_against_the_ca_file() {
        let pg = crate::postgres::Postgres::start();
        if !pg.is_throwaway() {
            return; // TLS is set up on a cluster of the test's own
        }
        let certs = tempfile::tempdir().unwrap();
        make_certificates(certs.path());
        pg.enable_tls(
            &certs.path().join("server.pem"),
            &certs.path().join("server.key"),
        );

        let mut config = config_for(pg.url());
        config.tls = PgTls::Require;
        config.ca_file = Some(certs.path().join("ca.pem"));
        let store: SharedStore = Arc::new(PostgresStore::connect(&config).await.unwrap());
        store.set_state("k", b"over TLS").await.unwrap();
        assert_eq!(
            store.state("k").await.unwrap().as_deref(),
            Some(&b"over TLS"[..])
        );
        let encrypted = pg.psql_in(
            &format!("{}?sslmode=disable", pg.url()),
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE s.ssl AND a.backend_type = 'client backend'",
        );
        assert_ne!(encrypted, "0", "the store's connections are encrypted");

        // Without the CA the certificate is not trusted: refused, with `require` and with
        // `prefer` alike (a certificate that fails is never a reason to go unencrypted).
        for tls in [PgTls::Require, PgTls::Prefer] {
            let mut untrusted = config.clone();
            untrusted.tls = tls;
            untrusted.ca_file = None;
            let err = PostgresStore::connect(&untrusted)
                .await
                .err()
                .expect("an untrusted certificate");
            assert!(matches!(err, StoreError::Open { .. }), "{tls:?}: {err:?}");
        }
        // A CA file that holds no certificate is refused before connecting.
        let empty = certs.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let mut bad = config.clone();
        bad.ca_file = Some(empty);
        let err = PostgresStore::connect(&bad).await.err().expect("no CA");
        assert!(said(&err).contains("no certificate"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_database_that_goes_away_is_a_transient_error() {
        let pg = crate::postgres::Postgres::start();
        if !pg.is_throwaway() {
            return; // the developer's database is not ours to stop
        }
        let store: SharedStore =
            Arc::new(PostgresStore::connect(&config_for(pg.url())).await.unwrap());
        store
            .ingest("src", &[mention("a", "alice")], Some("1"), now())
            .await
            .unwrap();
        pg.stop();
        let started = std::time::Instant::now();
        for _ in 0..2 {
            let err = store.ticket_count().await.expect_err("the server is gone");
            assert!(err.is_transient(), "{err:?}");
            let err = store
                .ingest("src", &[mention("b", "bob")], Some("2"), now())
                .await
                .expect_err("the server is gone");
            assert!(err.is_transient(), "{err:?}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_caller_of_a_group_hears_when_the_database_goes_away() {
        let pg = crate::postgres::Postgres::start();
        if !pg.is_throwaway() {
            return; // the developer's database is not ours to stop
        }
        let store = GroupCommit::wrap(Arc::new(
            PostgresStore::connect(&config_for(pg.url())).await.unwrap(),
        ));
        store
            .ingest("src", &[mention("a", "alice")], Some("1"), now())
            .await
            .unwrap();
        pg.stop();
        let started = std::time::Instant::now();
        let callers: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let m = [mention(&format!("m{i}"), "bob")];
                    store.ingest(&format!("stream:{i}"), &m, None, now()).await
                })
            })
            .collect();
        for caller in callers {
            let err = caller.await.unwrap().expect_err("the server is gone");
            assert!(err.is_transient(), "{err:?}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Back up: the same store carries on, and nothing of the failed groups was kept.
        pg.start_again();
        let done = store
            .ingest("src", &[mention("b", "bob")], Some("2"), now())
            .await
            .unwrap();
        assert_eq!(done.new_tickets, vec![TicketId(2)]);
    }
}

pub async fn counts_from_two_handles_at_once_are_all_kept(place: &dyn Place) {
    let store = with_tickets(place, &["a", "b", "c"]).await;
    assert_eq!(
        store.pending_job_count().await.unwrap(),
        store.jobs().await.unwrap().len() as u64
    );
    let other = place.open_second(&store);
    let mut counting = tokio::task::JoinSet::new();
    for handle in [store.clone(), other] {
        for _ in 0..4 {
            let handle = handle.clone();
            counting.spawn(async move {
                for _ in 0..10 {
                    handle.count_up("x:budget:2026-11-25", 1).await.unwrap();
                }
            });
        }
    }
    while let Some(done) = counting.join_next().await {
        done.unwrap();
    }
    assert_eq!(store.count_up("x:budget:2026-11-25", 0).await.unwrap(), 80);
    // The count is the state's decimal text: what the X budget reads at start.
    assert_eq!(
        store.state("x:budget:2026-11-25").await.unwrap().as_deref(),
        Some(&b"80"[..])
    );
    assert_eq!(store.count_up("fresh", 5).await.unwrap(), 5);
}

// -- several deliveries in one transaction ------------------------------------------------

fn delivery(source: &str, mentions: &[Mention], cursor: Option<&str>) -> Delivery {
    Delivery::new(source, mentions, cursor)
}

pub async fn one_group_of_several_sources_moves_every_cursor(place: &dyn Place) {
    let store = place.open();
    let group = [
        delivery(
            "mastodon:brand",
            &[mention("m1", "alice"), mention("m2", "bob")],
            Some("m-2"),
        ),
        delivery("bluesky:brand", &[mention("b1", "carol")], Some("b-1")),
        delivery("webhook", &[mention("w1", "dan")], None),
        // Only a cursor: a poll that found nothing new.
        delivery("x:brand", &[], Some("x-9")),
    ];
    let slots = store.ingest_many(&group, now()).await.unwrap();
    assert_eq!(slots.len(), 4, "one outcome per delivery");
    let counts: Vec<usize> = slots
        .iter()
        .map(|s| s.as_ref().unwrap().new_tickets.len())
        .collect();
    assert_eq!(counts, vec![2, 1, 1, 0]);
    store.flush().await.unwrap();
    drop(store);
    let store = place.open();
    for (source, cursor) in [
        ("mastodon:brand", Some("m-2")),
        ("bluesky:brand", Some("b-1")),
        ("webhook", None),
        ("x:brand", Some("x-9")),
    ] {
        assert_eq!(
            store.cursor(source).await.unwrap().as_deref(),
            cursor,
            "{source}'s cursor"
        );
    }
    assert_eq!(store.ticket_count().await.unwrap(), 4);
    assert_eq!(store.jobs().await.unwrap().len(), 4, "one card post each");
}

pub async fn a_mention_in_two_deliveries_of_a_group_is_one_ticket_and_one_duplicate(
    place: &dyn Place,
) {
    let store = with_tickets(place, &["old"]).await;
    let post = mention("p", "alice");
    // The stream and the catch-up poll bring the same post, and alice answers it at once;
    // the second delivery also repeats a post stored long before.
    let mut answer = mention("p2", "alice");
    answer.in_reply_to = Some("p".into());
    let group = [
        delivery("mastodon:stream", std::slice::from_ref(&post), Some("s1")),
        delivery(
            "mastodon:poll",
            &[post.clone(), answer, mention("old", "alice")],
            Some("n1"),
        ),
    ];
    let slots = store.ingest_many(&group, now()).await.unwrap();
    let first = slots[0].as_ref().unwrap();
    let second = slots[1].as_ref().unwrap();
    assert_eq!(first.new_tickets, vec![TicketId(2)]);
    assert_eq!(first.duplicates, 0);
    assert!(second.new_tickets.is_empty(), "{second:?}");
    assert_eq!(second.duplicates, 2, "the post again, and the old one");
    assert_eq!(
        second.followups,
        vec![TicketId(2)],
        "the answer joins the ticket the first delivery opened"
    );
    assert_eq!(store.ticket_count().await.unwrap(), 2);
    let ticket = store.ticket(TicketId(2)).await.unwrap().unwrap();
    assert_eq!(ticket.mention, post);
    assert_eq!(ticket.followups.len(), 1);
    assert_eq!(
        store.cursor("mastodon:poll").await.unwrap().as_deref(),
        Some("n1")
    );
    assert_eq!(
        store.audit_of(TicketId(2)).await.unwrap().len(),
        2,
        "received, then the follow-up"
    );
    // The same group again changes nothing.
    let again = store.ingest_many(&group, now()).await.unwrap();
    let dups: Vec<usize> = again
        .iter()
        .map(|s| s.as_ref().unwrap().duplicates)
        .collect();
    assert_eq!(dups, vec![1, 3]);
    assert_eq!(store.ticket_count().await.unwrap(), 2);
}

pub async fn ticket_numbers_and_jobs_follow_delivery_order(place: &dyn Place) {
    let store = place.open();
    let group = [
        delivery("a", &[mention("1", "u1"), mention("2", "u2")], None),
        delivery("b", &[mention("3", "u3")], None),
        delivery("c", &[mention("4", "u4"), mention("5", "u5")], None),
    ];
    let slots = store.ingest_many(&group, now()).await.unwrap();
    let numbers: Vec<Vec<u64>> = slots
        .iter()
        .map(|s| {
            s.as_ref()
                .unwrap()
                .new_tickets
                .iter()
                .map(|t| t.0)
                .collect()
        })
        .collect();
    assert_eq!(numbers, vec![vec![1, 2], vec![3], vec![4, 5]]);
    for n in 1..=5u64 {
        let ticket = store.ticket(TicketId(n)).await.unwrap().unwrap();
        assert_eq!(ticket.mention.remote_id, n.to_string(), "ticket {n}");
        assert_eq!(store.audit_of(TicketId(n)).await.unwrap().len(), 1);
    }
    // The outbox holds their card posts in the same order.
    let queued: Vec<u64> = store
        .jobs()
        .await
        .unwrap()
        .iter()
        .map(|j| j.ticket.0)
        .collect();
    assert_eq!(queued, vec![1, 2, 3, 4, 5]);
    // The next ingest continues the numbers.
    let next = store
        .ingest("a", &[mention("6", "u6")], None, now())
        .await
        .unwrap();
    assert_eq!(next.new_tickets, vec![TicketId(6)]);
}

pub async fn a_fenced_out_delivery_alone_is_refused_and_the_others_commit(place: &dyn Place) {
    let store = place.open();
    let duty = "watcher:mastodon:brand";
    let held = Fence::new(duty);
    let lease = store
        .acquire_lease(duty, "A", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("free");
    held.set(Some(lease));
    // Another duty's fence without a lease: whoever carries it has lost it.
    let lost = Fence::new("watcher:bluesky:brand");
    let group = [
        Delivery {
            fence: Some(held.clone()),
            ..delivery("mastodon:brand", &[mention("m1", "alice")], Some("m-1"))
        },
        Delivery {
            fence: Some(lost),
            ..delivery("bluesky:brand", &[mention("b1", "bob")], Some("b-1"))
        },
        delivery("webhook", &[mention("w1", "carol")], None),
    ];
    let slots = store.ingest_many(&group, now()).await.unwrap();
    assert_eq!(slots[0].as_ref().unwrap().new_tickets, vec![TicketId(1)]);
    assert!(
        matches!(&slots[1], Err(StoreError::Fenced { duty }) if duty == "watcher:bluesky:brand"),
        "{:?}",
        slots[1]
    );
    assert_eq!(
        slots[2].as_ref().unwrap().new_tickets,
        vec![TicketId(2)],
        "the refused delivery took no ticket number"
    );
    assert_eq!(store.cursor("bluesky:brand").await.unwrap(), None);
    assert_eq!(
        store.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("m-1")
    );
    assert_eq!(store.ticket_count().await.unwrap(), 2);
    let stored: HashSet<String> = store
        .all_tickets()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.mention.remote_id)
        .collect();
    assert!(!stored.contains("b1"), "{stored:?}");
    // Once B takes the duty over, A's fence is stale: refused the same way.
    store.release_lease(&held.lease().unwrap()).await.unwrap();
    store
        .acquire_lease(duty, "B", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("released");
    let late = Delivery {
        fence: Some(held),
        ..delivery("mastodon:brand", &[mention("m2", "alice")], Some("m-2"))
    };
    let slots = store.ingest_many(&[late], now()).await.unwrap();
    assert!(matches!(&slots[0], Err(StoreError::Fenced { .. })));
    assert_eq!(
        store.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("m-1")
    );
}

// -- group commit over the backend --------------------------------------------------------

pub async fn concurrent_ingests_through_group_commit_are_each_acknowledged_and_kept(
    place: &dyn Place,
) {
    const CALLERS: usize = 48;
    const EACH: usize = 5;
    let store = GroupCommit::wrap(place.open());
    let start = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let mut callers = tokio::task::JoinSet::new();
    for c in 0..CALLERS {
        let (store, start) = (store.clone(), start.clone());
        callers.spawn(async move {
            start.wait().await;
            let mut acknowledged = Vec::new();
            for i in 0..EACH {
                let id = format!("c{c}-{i}");
                let m = mention(&id, &format!("u{c}"));
                let source = format!("stream:{c}");
                let done = store.ingest(&source, &[m], Some(&id), now()).await.unwrap();
                store.flush().await.unwrap();
                assert_eq!(done.new_tickets.len(), 1, "{id}: {done:?}");
                acknowledged.push((id, done.new_tickets[0]));
            }
            acknowledged
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(done) = callers.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    let numbers: HashSet<u64> = acknowledged.iter().map(|(_, t)| t.0).collect();
    assert_eq!(
        numbers,
        (1..=(CALLERS * EACH) as u64).collect::<HashSet<_>>(),
        "distinct tickets, numbered without gaps"
    );
    // Every acknowledged mention is there after a restart, with the ticket it was told.
    drop(store);
    let store = place.open();
    for (id, ticket) in &acknowledged {
        let stored = store.ticket(*ticket).await.unwrap().expect("kept");
        assert_eq!(&stored.mention.remote_id, id);
    }
    for c in 0..CALLERS {
        assert_eq!(
            store.cursor(&format!("stream:{c}")).await.unwrap(),
            Some(format!("c{c}-{}", EACH - 1)),
            "each stream's cursor is its last acknowledged mention's"
        );
    }
}

pub async fn a_fenced_handle_of_the_grouped_store_is_refused_alone(place: &dyn Place) {
    let store = GroupCommit::wrap(place.open());
    let fence = Fence::new("watcher:mastodon:brand");
    let fenced = store.fenced(fence.clone());
    // Without its lease, the fenced handle's ingest is refused while another caller's,
    // in the same moment, goes through.
    let (a, b) = ([mention("a", "alice")], [mention("b", "bob")]);
    let (refused, other) = tokio::join!(
        fenced.ingest("mastodon:brand", &a, Some("c1"), now()),
        store.ingest("webhook", &b, None, now()),
    );
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    assert!(fenced_out(fenced.set_state("k", b"v").await));
    assert_eq!(other.unwrap().new_tickets, vec![TicketId(1)]);
    assert_eq!(store.cursor("mastodon:brand").await.unwrap(), None);
    let lease = store
        .acquire_lease(
            "watcher:mastodon:brand",
            "A",
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap()
        .expect("free");
    fence.set(Some(lease));
    let done = fenced
        .ingest(
            "mastodon:brand",
            &[mention("a", "alice")],
            Some("c1"),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(done.new_tickets, vec![TicketId(2)]);
    fenced.set_state("k", b"v").await.unwrap();
    assert_eq!(
        store.cursor("mastodon:brand").await.unwrap().as_deref(),
        Some("c1")
    );
}

fn fenced_out<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Fenced { .. }))
}
