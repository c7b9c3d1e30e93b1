//! The store port: the desk's durable memory, whatever holds it (sled on one machine,
//! PostgreSQL for replicas). Each method's doc comment is its contract. Two rules hold
//! for all of them: a method that writes several things writes them in one transaction
//! (all or nothing, also across a crash), and a write is durable once `flush` has
//! returned — callers flush before they acknowledge anything outside (a platform's
//! cursor, a chat surface's event) and before the external call a change leads to (the
//! outbox rule). A backend may be more durable than that, never less.

use crate::domain::incident::{Incident, IncidentChange};
use crate::domain::{
    AuditEntry, CardRef, Effect, IncidentId, Mention, Rejection, SlaMarks, SurfaceKind,
    SystemEvent, Ticket, TicketId, Transition,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

/// The store as the program holds it: one backend, shared by every task.
pub type SharedStore = Arc<dyn Store>;

/// What a backend's failure is, whatever the backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "the store at {path} cannot be opened: {source} (is another mentionbridge running on it?)"
    )]
    Open {
        path: String,
        #[source]
        source: BackendError,
    },
    #[error("store I/O failed: {0}")]
    Backend(#[source] BackendError),
    #[error("stored record is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("ticket {0} does not exist")]
    NoSuchTicket(TicketId),
    #[error("incident {0} does not exist")]
    NoSuchIncident(IncidentId),
    /// A write through a fenced handle whose lease is no longer this replica's: another
    /// replica holds the duty now, and nothing was written.
    #[error("this replica no longer holds the duty `{duty}`; nothing was written")]
    Fenced { duty: String },
    /// The store's schema is newer than this binary knows (a newer release migrated it).
    #[error("the store's schema is at version {found}, newer than this binary's {known}: run the newer release, or restore the database")]
    SchemaTooNew { found: i64, known: i64 },
}

impl StoreError {
    /// Worth trying again soon (the database is away or restarting), as opposed to a
    /// refusal that stays.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend(_))
    }
}

/// A duty (a source's watcher, the scheduler, the Discord gateway session) that one
/// replica at a time carries out, as granted by [`Store::acquire_lease`]. The token grows
/// with every grant of the duty, whoever gets it: writes made under an older token are
/// refused once a newer one is out (see [`Store::fenced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub duty: String,
    pub holder: String,
    pub token: u64,
}

/// Who holds a duty, as the store sees it (for `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseState {
    pub duty: String,
    pub holder: String,
    pub token: u64,
    /// When the holder last renewed it (the store's clock).
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The lease a fenced handle writes under: set by whoever runs the duty when it is
/// granted, cleared when it is lost. Without one, every write through the handle fails
/// with [`StoreError::Fenced`].
#[derive(Debug)]
pub struct Fence {
    duty: String,
    current: std::sync::Mutex<Option<Lease>>,
}

impl Fence {
    pub fn new(duty: impl Into<String>) -> Arc<Fence> {
        Arc::new(Fence {
            duty: duty.into(),
            current: std::sync::Mutex::new(None),
        })
    }

    pub fn set(&self, lease: Option<Lease>) {
        *self.current.lock().expect("fence lock") = lease;
    }

    /// The lease writes go under now, or the refusal to write at all.
    pub fn lease(&self) -> Result<Lease, StoreError> {
        self.current
            .lock()
            .expect("fence lock")
            .clone()
            .ok_or_else(|| StoreError::Fenced {
                duty: self.duty.clone(),
            })
    }
}

/// Jobs taken by one sender (see [`Store::claim_jobs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// In queue order, each with its attempt count as the claim set it.
    pub jobs: Vec<Job>,
    /// The earliest `not_before` among the jobs that wait for it, if any.
    pub next_due: Option<DateTime<Utc>>,
}

/// One effect waiting to be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Grows with every job queued: queue order is id order.
    pub id: u64,
    pub ticket: TicketId,
    pub effect: Effect,
    /// How many times a send was started. Above zero, the effect may already have
    /// happened: the executor must look before it acts again.
    pub attempts: u32,
    pub not_before: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// A counter kept by [`Store::count_up`] (decimal text in state), read back: absent or
/// unreadable, 0.
pub fn count_of(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The desk's key for the keyed hashes that stand in for erased identities
/// ([`crate::domain::privacy::hashed`]): read from state
/// [`crate::domain::privacy::HASH_KEY_STATE`], or made (32 random bytes) and stored on
/// first need. The one place erasure and retention get it from.
pub async fn hash_key(store: &dyn Store) -> Result<Vec<u8>, StoreError> {
    use crate::domain::privacy::{hash_key_of, HASH_KEY_STATE};
    if let Some(key) = store
        .state(HASH_KEY_STATE)
        .await?
        .as_deref()
        .and_then(hash_key_of)
    {
        return Ok(key);
    }
    let mut fresh = [0u8; 32];
    getrandom::getrandom(&mut fresh)
        .map_err(|e| StoreError::Backend(format!("no randomness for the hash key: {e}").into()))?;
    store
        .set_state(HASH_KEY_STATE, hex::encode(fresh).as_bytes())
        .await?;
    store.flush().await?;
    Ok(fresh.to_vec())
}

/// Every ticket of one person (their author key, `domain::priority::author_key`; once
/// erased, the hashed key their tickets are filed under), by number, read `page` at a
/// time: the whole history, not only the latest the index of contacts keeps.
pub async fn tickets_of_author(
    store: &dyn Store,
    author: &str,
    page: usize,
) -> Result<Vec<Ticket>, StoreError> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let tickets = store.tickets_after(after, page.max(1)).await?;
        let Some(last) = tickets.last() else {
            break;
        };
        after = Some(last.id);
        found.extend(
            tickets
                .into_iter()
                .filter(|t| crate::domain::priority::ticket_author_key(t) == author),
        );
    }
    Ok(found)
}

/// What an ingest did with a batch of mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    pub new_tickets: Vec<TicketId>,
    /// Tickets a customer's follow-up joined (and reopened if they were closed).
    pub followups: Vec<TicketId>,
    pub duplicates: usize,
}

impl Ingested {
    /// Count what intake decided for one mention; `true`: it opened a ticket (so the
    /// next ticket number is taken).
    pub fn record(&mut self, decided: &crate::domain::intake::Intake) -> bool {
        use crate::domain::intake::Intake;
        match decided {
            Intake::Duplicate => self.duplicates += 1,
            Intake::FollowUp(tr) => self.followups.push(tr.ticket.id),
            Intake::Opened(tr) => {
                self.new_tickets.push(tr.ticket.id);
                return true;
            }
        }
        false
    }

    /// Anything for the outbox to do.
    pub fn changed(&self) -> bool {
        !self.new_tickets.is_empty() || !self.followups.is_empty()
    }
}

/// One source's batch for [`Store::ingest_many`]: what a single [`Store::ingest`] call
/// stores, with the lease it is written under.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub source: String,
    pub mentions: Vec<Mention>,
    /// Where `source` continues once this delivery is stored; `None` leaves it.
    pub cursor: Option<String>,
    /// The duty lease this delivery is written under (a source's watcher holds one):
    /// unless it is still the duty's latest grant, the delivery is refused with
    /// [`StoreError::Fenced`] and writes nothing. `None`: written whoever holds what
    /// (on a fenced handle: under the handle's fence).
    pub fence: Option<Arc<Fence>>,
}

impl Delivery {
    pub fn new(source: &str, mentions: &[Mention], cursor: Option<&str>) -> Delivery {
        Delivery {
            source: source.to_string(),
            mentions: mentions.to_vec(),
            cursor: cursor.map(str::to_string),
            fence: None,
        }
    }
}

/// What [`Store::ingest_many`] did with each delivery, in the order they were given.
pub type Slots = Vec<Result<Ingested, StoreError>>;

/// The outcome of an agent's action as the store committed it.
pub type ActOutcome = Result<Ticket, Rejection>;

/// An agent's action judged on the ticket as stored (see [`Store::act`]).
pub type Judge<'a> = dyn Fn(&Ticket) -> Result<Transition, Rejection> + Send + Sync + 'a;

/// A change the desk decides on the ticket as stored (see [`Store::transition`]).
pub type Decide<'a> = dyn Fn(&Ticket) -> Option<Transition> + Send + Sync + 'a;

/// New SLA marks for the ticket as stored, or `None` to leave it (see [`Store::mark`]).
pub type Mark<'a> = dyn Fn(&Ticket) -> Option<SlaMarks> + Send + Sync + 'a;

/// A change of an incident decided on the incident as stored (`None`: a new one, which
/// gets the number passed along) and the tickets named, as stored (see
/// [`Store::change_incident`]). `None` from it: nothing to do, nothing written.
pub type IncidentDecide<'a> =
    dyn Fn(Option<&Incident>, IncidentId, &[Ticket]) -> Option<IncidentChange> + Send + Sync + 'a;

/// Where an audit line is in the audit's order: its ticket, then the order it was
/// written in (a backend's own numbering, only compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditPos {
    pub ticket: u64,
    pub line: u64,
}

/// Open tickets the scheduler must look at now (see [`Store::due_tickets`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Soonest due first.
    pub tickets: Vec<Ticket>,
    /// When the next ticket not returned is due: no later than `until` when more were
    /// due than returned (or the index is being recomputed), `None` when nothing else is
    /// scheduled.
    pub next: Option<DateTime<Utc>>,
}

/// An open ticket as the open list sorts it (see [`Store::open_priorities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPriority {
    pub ticket: TicketId,
    pub received: DateTime<Utc>,
    /// Its priority's points as judged on arrival.
    pub score: i32,
    /// No agent's first answer yet (see `domain::priority::waits_for_answer`).
    pub waiting: bool,
}

impl OpenPriority {
    pub fn of(t: &Ticket) -> OpenPriority {
        OpenPriority {
            ticket: t.id,
            received: t.received_at(),
            score: t.priority.score,
            waiting: crate::domain::priority::waits_for_answer(t),
        }
    }
}

/// Of each group (points, waiting or not) of `open`, the `limit` received first.
pub fn heads_of(mut open: Vec<OpenPriority>, limit: usize) -> Vec<OpenPriority> {
    open.sort_by_key(|o| (o.waiting, o.score, o.received, o.ticket));
    let mut taken: Vec<OpenPriority> = Vec::new();
    let mut in_group = 0;
    for o in open {
        let same = taken
            .last()
            .is_some_and(|l| (l.waiting, l.score) == (o.waiting, o.score));
        in_group = if same { in_group + 1 } else { 1 };
        if in_group <= limit {
            taken.push(o);
        }
    }
    taken
}

/// The outbox key of jobs that concern no ticket (shift hand-off digests).
pub const DESK_JOBS: TicketId = TicketId(0);

/// How long an inbound event id is remembered. Slack retries an event for about six
/// minutes (at once, after 1 and after 5 minutes); a Discord gateway resume replays a few
/// minutes at most. A day covers those, and a restart or outage in between, while
/// keeping the set small (one entry per event).
pub const SEEN_EVENTS_FOR: chrono::Duration = chrono::Duration::hours(24);

/// The desk's durable memory. Every backend passes the contract suite in
/// `tests/integration/store_contract.rs`; each method says what it changes atomically and
/// what is durable once `flush` returns. Nothing outside the desk is told of a change
/// (a card, a reply, an acknowledgement) before that change is flushed.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Make everything written so far durable. Returns only once it is.
    async fn flush(&self) -> Result<(), StoreError>;

    // -- sources ------------------------------------------------------------------------

    /// Where `source` continues, as its last ingest left it.
    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError>;

    /// Small per-source or desk state (a Bluesky session, an X request budget, on-call
    /// overrides), by key; keys never see each other's values.
    async fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Remember state under `key`, replacing what was there; durable after `flush`.
    async fn set_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Add `by` to the counter kept as decimal text under state `key` (absent: 0) and
    /// return the new count, atomically: replicas counting at once lose no count (the X
    /// daily request budget). Durable after `flush`.
    async fn count_up(&self, key: &str, by: u64) -> Result<u64, StoreError>;

    /// Whether this is the first delivery of inbound event `id` from `source` (e.g.
    /// `slack-event`, `discord-interaction`) within [`SEEN_EVENTS_FOR`]. The id is
    /// remembered durably before this returns `true`, so a retry after a restart is
    /// still recognised; of many concurrent calls for one id, exactly one gets `true`.
    /// Expired ids may be forgotten.
    async fn first_delivery(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// How many inbound event ids are remembered (for tests and the numbers).
    async fn seen_event_count(&self) -> Result<usize, StoreError>;

    /// Store a batch of new mentions and move `source`'s cursor to `cursor`, in one
    /// transaction: after a crash either the batch's tickets and the cursor are there,
    /// or neither. What each mention does is `domain::intake`'s decision, made on what
    /// this transaction sees (earlier mentions of the same batch included). Idempotent:
    /// a mention already stored, by any of its keys (the same post by its platform-wide
    /// key from another source too), changes nothing and is counted as a duplicate.
    /// Durable after `flush` (a backend may make it durable before it returns). It is
    /// [`Store::ingest_many`] of one delivery; through a fenced handle, refused with
    /// [`StoreError::Fenced`] unless the handle's lease is current.
    async fn ingest(
        &self,
        source: &str,
        mentions: &[Mention],
        cursor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ingested, StoreError> {
        let delivery = Delivery::new(source, mentions, cursor);
        let mut slots = self
            .ingest_many(std::slice::from_ref(&delivery), now)
            .await?;
        match slots.pop() {
            Some(slot) if slots.is_empty() => slot,
            _ => Err(StoreError::Backend(
                "the store answered one delivery with a count of outcomes other than one".into(),
            )),
        }
    }

    /// Store several deliveries (from one source or many) in ONE transaction, each
    /// judged in the order given exactly as successive [`Store::ingest`] calls would
    /// judge it: intake for a delivery sees what the earlier deliveries of the call
    /// wrote (a mention in two deliveries is one ticket and one duplicate; ticket numbers
    /// follow delivery order), and each delivery's cursor moves with its own mentions.
    /// A delivery whose fence (or, without one, the fenced handle's) is not its duty's
    /// latest grant gets `Err(StoreError::Fenced)` in its slot and writes nothing; the
    /// others commit. The outcome has one slot per delivery, in order. The outer `Err`
    /// means nothing at all was written (the transaction failed as a whole). Durable
    /// after `flush`.
    async fn ingest_many(
        &self,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Slots, StoreError>;

    // -- tickets ------------------------------------------------------------------------

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError>;

    /// Every ticket that is neither resolved nor ignored, oldest first (by the index of
    /// open tickets: the cost follows the open set, not the history).
    async fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError>;

    /// Every ticket, whatever its stage, in ticket number order (for exports; nothing
    /// the running desk does reads it).
    async fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError>;

    /// Tickets by number after `after` (`None`: from the first), at most `limit`: the
    /// whole store a page at a time, in bounded memory (`mentionbridge export`).
    async fn tickets_after(
        &self,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError>;

    /// How many tickets there are (a maintained counter).
    async fn ticket_count(&self) -> Result<usize, StoreError>;

    // -- customer history (issue 14) ----------------------------------------------------

    /// The latest tickets of one author (see `domain::priority::author_key`), newest
    /// first, at most `limit` (the index keeps the latest `CONTACTS_KEPT`): one index
    /// read, for the customer's history on a card.
    async fn author_contacts(
        &self,
        author_key: &str,
        limit: usize,
    ) -> Result<Vec<crate::domain::priority::Contact>, StoreError>;

    /// Keep what an agent wrote about a person (by their author key); durable when it
    /// returns. Notes are never sent anywhere outside the team's chat.
    async fn add_person_note(
        &self,
        author_key: &str,
        note: &crate::domain::customer::PersonNote,
    ) -> Result<(), StoreError>;

    /// Every note about a person, oldest first.
    async fn person_notes(
        &self,
        author_key: &str,
    ) -> Result<Vec<crate::domain::customer::PersonNote>, StoreError>;

    /// Remove every note about a person (an erasure); how many there were.
    async fn forget_person_notes(&self, author_key: &str) -> Result<u64, StoreError>;

    // -- privacy (issue 14) ---------------------------------------------------------------

    /// Commit one ticket's privacy rewrite ([`crate::domain::privacy::Rewrite`]) in one
    /// transaction: the ticket as rewritten, with its indexes (its author's entry moves
    /// to the hashed author key it carries); the `redact` strings blanked out of the
    /// ticket's audit lines; each plain dedupe key of `rekey` replaced by its hash, still
    /// naming the ticket. Intake looks a post's keys up by their hash too where the plain
    /// key misses (under the key in state [`crate::domain::privacy::HASH_KEY_STATE`]), so
    /// an erased post delivered again is still a duplicate. No effect is queued and no
    /// audit line written. [`StoreError::NoSuchTicket`] when it is not there. Durable
    /// after `flush`.
    async fn rewrite_ticket(&self, rw: &crate::domain::privacy::Rewrite) -> Result<(), StoreError>;

    // -- indexes, kept in the transaction of every ticket write ---------------------------
    //
    // Every write of a ticket (intake, an action, a transition, a completed job, a mark)
    // updates these in its own transaction. A store made before they existed builds them
    // once when it is opened (sled) or migrated (PostgreSQL).

    /// Open tickets, oldest first, whose number in decimal starts with `prefix` (digits
    /// as typed; empty: every open ticket; anything that starts no number: none), at
    /// most `limit`. Reads only the open tickets it returns and the index of their numbers.
    async fn open_tickets_numbered(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError>;

    /// How many tickets are open (a maintained counter).
    async fn open_ticket_count(&self) -> Result<usize, StoreError>;

    /// Every open ticket's number, instant received, points on arrival and whether it
    /// still waits for a first answer, in number order: what the open list sorts by,
    /// read from the index of open tickets (a backend keeps them there; this default
    /// reads the tickets).
    async fn open_priorities(&self) -> Result<Vec<OpenPriority>, StoreError> {
        Ok(self
            .open_tickets()
            .await?
            .iter()
            .map(OpenPriority::of)
            .collect())
    }

    /// The open tickets that can be among the first `limit` of the open list at any
    /// time: of each group of open tickets with the same points that wait for an answer
    /// or not, the `limit` received first (waiting only raises a ticket, and the oldest
    /// of a group has waited longest), in no particular order. A backend reads them from
    /// an index in about `limit` per group; this default reads every open ticket.
    async fn open_list_heads(&self, limit: usize) -> Result<Vec<OpenPriority>, StoreError> {
        Ok(heads_of(self.open_priorities().await?, limit))
    }

    /// Open tickets whose next-due instant ([`crate::domain::routes::Routes::next_due`] under the
    /// routes this store was given) is at or before `until`, soonest first, at most
    /// `limit`, with when the next one is due. A round with nothing due reads the index
    /// alone. When the routes' policies differ from those the index was computed under
    /// ([`crate::domain::routes::Routes::policy_fingerprint`], kept in the store: the configuration
    /// changed between runs), the first call notices, and each call then computes the
    /// instants of the next `limit` open tickets again (oldest first) before it answers,
    /// so no step is missed and no start-up waits for it; until that is done, `next` is
    /// no later than `until`.
    async fn due_tickets(&self, until: DateTime<Utc>, limit: usize) -> Result<Due, StoreError>;

    /// The desk's own bookkeeping on a ticket (e.g. that the scheduler weighed its
    /// off-hours acknowledgement): `mark` decides new SLA marks on the ticket as stored,
    /// written with the ticket's indexes in one transaction; no effect is queued and no
    /// audit line written, since nothing happened that a person would look for. `None`
    /// from `mark`: nothing written. Durable after `flush`.
    async fn mark(&self, id: TicketId, mark: &Mark<'_>) -> Result<Option<Ticket>, StoreError>;

    /// What the numbers need of the tickets received in `from <= t < to`
    /// ([`crate::ports::tally::TicketFacts`], as of each ticket's last write), oldest
    /// first (by the instant received, then number), at most `limit`, after `after` (the
    /// instant and number of the last one of the previous page). Read from the index by
    /// time, never from the tickets: the cost follows the window, not the history.
    async fn received_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, TicketId)>,
        limit: usize,
    ) -> Result<Vec<crate::ports::tally::TicketFacts>, StoreError>;

    /// How many tickets, whatever their stage now, got an agent's first answer in
    /// `from <= t < to` (by the index of first answers).
    async fn first_answers_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<usize, StoreError>;

    /// The maintained counters, by name (see [`crate::ports::tally`]); read without any
    /// ticket.
    async fn counters(&self) -> Result<std::collections::BTreeMap<String, i64>, StoreError>;

    /// Of the answered tickets of `route` (as stamped; ignored ones aside), how many had
    /// their first response within `seconds` (the wait rounded up to whole seconds).
    async fn answered_within(&self, route: &str, seconds: i64) -> Result<u64, StoreError>;

    /// Of the unanswered tickets of `route` (as stamped; ignored ones aside), how many
    /// were received at or after `since`.
    async fn unanswered_since(&self, route: &str, since: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Judge an agent's action on the ticket as stored and commit the outcome: the new
    /// ticket, its effects as outbox jobs and its audit entry, together or not at all.
    /// Actions on one ticket are serialised, so of two agents claiming at once exactly
    /// one wins and the other is judged on the claimed ticket. `judge` may run more than
    /// once (it must be pure); a rejection writes nothing. Durable after `flush`.
    async fn act(&self, id: TicketId, judge: &Judge<'_>) -> Result<ActOutcome, StoreError>;

    /// A change the desk itself decides (an SLA step, a claim released at hand-off, an
    /// off-hours acknowledgement), judged on the ticket as stored and committed like
    /// [`Store::act`]. `None` from `decide`: nothing to do, nothing written.
    async fn transition(
        &self,
        id: TicketId,
        decide: &Decide<'_>,
    ) -> Result<Option<Ticket>, StoreError>;

    // -- the outbox ---------------------------------------------------------------------

    /// Queue a job that concerns no ticket ([`DESK_JOBS`]) together with a piece of desk
    /// state (e.g. the hand-off digest and the instant it covers), in one transaction.
    async fn queue_desk_job(
        &self,
        effect: Effect,
        state_key: &str,
        state_value: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every pending job in the order it was queued.
    async fn jobs(&self) -> Result<Vec<Job>, StoreError>;

    async fn job(&self, id: u64) -> Result<Option<Job>, StoreError>;

    /// How many jobs are pending (the outbox's depth), without reading them.
    async fn pending_job_count(&self) -> Result<u64, StoreError>;

    /// Take up to `limit` jobs to send now for `claimant`, in one transaction. Of each
    /// ticket's lane ([`crate::domain::Lane`]) only the oldest pending job is a
    /// candidate, so a ticket's effects run in order whoever sends them; a candidate is
    /// taken if it is due (`not_before` at or before `now`) and nobody holds a live claim
    /// on it. A taken job's attempt count grows by one — the send may happen from then
    /// on, so after a crash its executor knows to look first — and it is claimed for `hold_for` (measured by the store's clock): no other sender
    /// takes it until then, unless the claim is released ([`Store::defer`]). A sender
    /// that dies leaves its claims to expire, and the next claimant sees, by the attempt
    /// count, that it must look before it acts. Durable after `flush`.
    async fn claim_jobs(
        &self,
        claimant: &str,
        limit: usize,
        now: DateTime<Utc>,
        hold_for: std::time::Duration,
    ) -> Result<Claimed, StoreError>;

    /// Extend every live claim `claimant` holds by `hold_for` (a sender's heartbeat
    /// while its sends run).
    async fn renew_claims(
        &self,
        claimant: &str,
        hold_for: std::time::Duration,
    ) -> Result<(), StoreError>;

    /// Whether `claimant` still holds `job` as claimed (same attempt), extending the
    /// claim by `hold_for` if so: the check right before an external call, so a sender
    /// that was paused past its claim does not act on a job another sender took over.
    async fn holds_claim(
        &self,
        job: &Job,
        claimant: &str,
        hold_for: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// A send failed for now: the job waits until `not_before` (pending, not due), with
    /// `error` kept on it, and its claim is released. An unknown (done) job, or one
    /// another sender has claimed since (a higher attempt count), is left alone.
    async fn defer(
        &self,
        job: &Job,
        not_before: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The outbox gives up on a job (unless another sender claimed it since): out of the queue, kept with `reason` among the
    /// failed jobs, and written into the ticket's audit trail, in one transaction. The
    /// ticket itself is untouched: its mention stays on the desk.
    async fn give_up(&self, job: &Job, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Jobs the outbox gave up on, oldest first.
    async fn failed_jobs(&self) -> Result<Vec<Job>, StoreError>;

    /// A job is done: remove it and fold what the outside world reported into the ticket
    /// (queuing any follow-up effects), in one transaction. A job another sender claimed
    /// since (a higher attempt count than `job`'s) is left to that sender: the report
    /// is dropped, and that sender looks before it acts. Completing a job already
    /// done is harmless: nothing is removed twice, and an outcome the ticket already
    /// shows queues no effect again (the core's rules ignore a repeat).
    async fn complete(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.complete_with(job, event, &[], now).await
    }

    /// [`Store::complete`], also queuing `more` effects for the ticket in the same
    /// transaction. A published reply's post is remembered as part of the ticket's
    /// conversation, so an answer to it is a follow-up. When the ticket is a member of
    /// an incident, its first answer (and a failed reply) is counted on the incident in
    /// the same transaction ([`Incident::count_outcome`]).
    async fn complete_with(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        more: &[Effect],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    // -- cards --------------------------------------------------------------------------

    /// Remember where a ticket's card went on a surface (replacing an earlier card of
    /// that surface), indexed by its message, in one transaction.
    async fn save_card(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError>;

    /// A card on `surface` is gone (or could not be posted): forget it, so it is no longer
    /// kept in sync, count it, and queue a note about it for the ticket's other cards,
    /// in one transaction.
    async fn report_lost_card(
        &self,
        ticket: TicketId,
        surface: SurfaceKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// How many cards each surface lost or refused for good since the store began.
    async fn cards_lost(&self, surface: SurfaceKind) -> Result<u64, StoreError>;

    /// A ticket's cards, one per surface.
    async fn cards(&self, ticket: TicketId) -> Result<Vec<CardRef>, StoreError>;

    /// The ticket whose card is this message, if any.
    async fn ticket_by_card(
        &self,
        surface: SurfaceKind,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>, StoreError>;

    // -- incidents ----------------------------------------------------------------------

    /// Incident `id`, as last committed.
    async fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError>;

    /// Incidents by number after `after` (`None`: from the first), at most `limit` (the
    /// numbers, exports, a storm watch rebuilt after a restart). Incidents are few: one
    /// per storm.
    async fn incidents_after(
        &self,
        after: Option<IncidentId>,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError>;

    /// The members of incident `id` by ticket number after `after`, at most `limit`.
    async fn incident_members(
        &self,
        id: IncidentId,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError>;

    /// Decide a change of incident `id` (`None`: a new incident, numbered here, one after
    /// the last) on the incident and the `tickets` named (those that exist), as stored,
    /// and commit it in one transaction: the incident as decided; each ticket of
    /// `change.join` made a member, unless it is in an incident already; each of
    /// `change.leave` no longer one, if it was of this incident; the audit lines; the
    /// incident's jobs among the desk's own ([`DESK_JOBS`]) and the tickets' jobs. Changes
    /// of one incident are serialised: `decide` may run more than once (it must be
    /// pure). `None` from it: nothing written. Returns the incident as committed.
    /// [`StoreError::NoSuchIncident`] when `id` names none. Durable after `flush`.
    async fn change_incident(
        &self,
        id: Option<IncidentId>,
        tickets: &[TicketId],
        decide: &IncidentDecide<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>, StoreError>;

    // -- duties held by one replica ---------------------------------------------------

    /// Grant `duty` to `holder` for `ttl` (the store's clock) if nobody holds it, its
    /// lease expired, or `holder` holds it already (then it is renewed, same token). A
    /// new grant gets a token above every earlier one for the duty. `None`: another
    /// holder's lease is live.
    async fn acquire_lease(
        &self,
        duty: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError>;

    /// Extend a lease by `ttl` from now, if it is still live and still this grant
    /// (holder and token). `false`: it is lost, and the duty must stop.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// Give a lease up at once (a clean stop), so another replica takes the duty
    /// without waiting for it to expire. A lease no longer held is left alone.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Every duty's lease, live or expired, by duty.
    async fn leases(&self) -> Result<Vec<LeaseState>, StoreError>;

    /// A handle on this store whose writes commit only under `fence`'s lease: each
    /// write checks, in its own transaction, that the lease is still the duty's latest
    /// grant, and fails with [`StoreError::Fenced`] otherwise (nothing written). Reads
    /// are not fenced. A replica paused past its lease thus cannot write with it after
    /// another replica took the duty over.
    fn fenced(&self, fence: Arc<Fence>) -> SharedStore;

    // -- the audit log ------------------------------------------------------------------

    /// Append a line to the audit log outside any transition (e.g. an internal note).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The audit trail of one ticket, oldest first.
    async fn audit_of(&self, ticket: TicketId) -> Result<Vec<AuditEntry>, StoreError>;

    /// The whole audit log: by ticket, then oldest first.
    async fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError>;

    /// The audit a page at a time, in the order of [`Store::audit_all`] (by ticket, then
    /// as written): at most `limit` lines after the position `after` (`None`: from the
    /// first), each with its own position.
    async fn audit_after(
        &self,
        after: Option<AuditPos>,
        limit: usize,
    ) -> Result<Vec<(AuditPos, AuditEntry)>, StoreError>;
}
