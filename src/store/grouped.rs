//! Group commit: ingests that arrive together, from every source, share one transaction
//! and one flush. Each `ingest` joins the group being formed; one committer task takes
//! what is queued (up to a count of mentions, and for a few milliseconds at most while
//! more keep arriving: a lone ingest commits at once), stores it with
//! `Store::ingest_many`, flushes once, and only then answers each caller with its own
//! outcome. So through this layer an `ingest` that returns `Ok` is already durable, and
//! the `flush` callers make next costs nothing unless something else was written since.
//! Every other call goes straight to the backend.

use crate::domain::incident::Incident;
use crate::domain::{
    AuditEntry, CardRef, Effect, IncidentId, Mention, SurfaceKind, SystemEvent, Ticket, TicketId,
};
use crate::ports::{
    ActOutcome, AuditPos, Claimed, Decide, Delivery, Due, Fence, IncidentDecide, Ingested, Job,
    Judge, Lease, LeaseState, Mark, SharedStore, Slots, Store, StoreError,
};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// When a group stops taking deliveries and commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// The most mentions a group holds; a caller's deliveries are never split, so one
    /// larger than this is a group of its own.
    pub max_batch: usize,
    /// The longest a group stays open, from its first delivery, while more keep
    /// arriving.
    pub max_wait: Duration,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_batch: 2_000,
            max_wait: Duration::from_millis(2),
        }
    }
}

/// Callers' clocks stamp their deliveries; a group takes the latest stamp among its
/// members as the instant it received them. Stamps further apart than this (a test's
/// clock set to another day) never share a group.
const SAME_INSTANT: chrono::Duration = chrono::Duration::seconds(1);

/// How many times the committer lets other tasks run, with nothing new arriving,
/// before it closes a group that more than one caller joined.
const QUIET_TURNS: usize = 2;

/// A store whose ingests are committed in groups (see the module's comment).
pub struct GroupCommit {
    group: Arc<Group>,
    /// This handle's deliveries go under this fence (a duty's fenced handle).
    fence: Option<Arc<Fence>>,
    /// Where every other call goes: the backend, or its handle fenced like this one.
    direct: SharedStore,
}

/// What every handle of one grouped store shares.
struct Group {
    inner: SharedStore,
    limits: GroupLimits,
    /// The committer's queue; a new committer is started when there is none (first
    /// use) or the last one ended.
    queue: Mutex<Option<mpsc::UnboundedSender<Submission>>>,
    marks: Arc<FlushMarks>,
}

/// How much has been written outside groups, and how much of that a flush covers, so a
/// flush with nothing new to make durable returns at once.
#[derive(Default)]
struct FlushMarks {
    /// Counts every write that went straight to the backend, once it returned.
    written: AtomicU64,
    /// The `written` count a completed flush had seen before it began.
    flushed: AtomicU64,
}

impl FlushMarks {
    fn wrote(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }

    /// Flush `store` unless every write counted so far is covered already.
    async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let written = self.written.load(Ordering::SeqCst);
        if self.flushed.load(Ordering::SeqCst) >= written {
            return Ok(());
        }
        store.flush().await?;
        self.flushed.fetch_max(written, Ordering::SeqCst);
        Ok(())
    }

    /// Flush `store` whatever the count says (a group was just written), noting what it
    /// covers.
    async fn flush_all(&self, store: &dyn Store) -> Result<(), StoreError> {
        let written = self.written.load(Ordering::SeqCst);
        store.flush().await?;
        self.flushed.fetch_max(written, Ordering::SeqCst);
        Ok(())
    }
}

/// One caller's deliveries, committed together in whatever group they join.
struct Submission {
    deliveries: Vec<Delivery>,
    now: DateTime<Utc>,
    answer: oneshot::Sender<Result<Slots, StoreError>>,
}

impl Submission {
    fn mentions(&self) -> usize {
        self.deliveries.iter().map(|d| d.mentions.len()).sum()
    }
}

impl GroupCommit {
    /// `inner`, its ingests committed in groups bounded by [`GroupLimits::default`].
    pub fn wrap(inner: SharedStore) -> SharedStore {
        Arc::new(GroupCommit::new(inner, GroupLimits::default()))
    }

    pub fn new(inner: SharedStore, limits: GroupLimits) -> GroupCommit {
        GroupCommit {
            direct: inner.clone(),
            fence: None,
            group: Arc::new(Group {
                inner,
                limits: GroupLimits {
                    max_batch: limits.max_batch.max(1),
                    ..limits
                },
                queue: Mutex::new(None),
                marks: Arc::default(),
            }),
        }
    }

    /// Join the group being formed and wait for its outcome.
    async fn submit(
        &self,
        deliveries: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<Slots, StoreError> {
        let (answer, answered) = oneshot::channel();
        let submission = Submission {
            deliveries,
            now,
            answer,
        };
        if self.group.queue().send(submission).is_err() {
            return Err(stopped());
        }
        answered.await.map_err(|_| stopped())?
    }

    /// Count a write that went straight to the backend (so the next flush makes it
    /// durable), then pass its outcome on.
    fn wrote<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        self.group.marks.wrote();
        outcome
    }
}

impl Group {
    /// The committer's queue, starting a committer if none is running.
    fn queue(&self) -> mpsc::UnboundedSender<Submission> {
        let mut queue = self.queue.lock().expect("group queue lock");
        if let Some(running) = queue.as_ref().filter(|q| !q.is_closed()) {
            return running.clone();
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        // The committer holds the backend weakly: once every handle is dropped, so is
        // the backend (sled releases its directory), and the committer ends with its
        // queue.
        tokio::spawn(commit_groups(
            Arc::downgrade(&self.inner),
            self.limits,
            receiver,
            self.marks.clone(),
        ));
        *queue = Some(sender.clone());
        sender
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's group commit stopped before it answered".into())
}

/// The committer: forms groups from the queue and commits each, until every handle is
/// gone.
async fn commit_groups(
    store: Weak<dyn Store>,
    limits: GroupLimits,
    mut queue: mpsc::UnboundedReceiver<Submission>,
    marks: Arc<FlushMarks>,
) {
    let mut held = None;
    loop {
        let first = match held.take() {
            Some(first) => first,
            None => match queue.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let (group, next) = gather(first, &mut queue, limits).await;
        held = next;
        // The backend is let go of before anyone is answered: a caller that drops its
        // last handle on hearing back can open the store again at once.
        let answers = match store.upgrade() {
            Some(store) => commit(&*store, group, &marks).await,
            None => group.into_iter().map(|s| (s, Err(stopped()))).collect(),
        };
        for (s, outcome) in answers {
            let _ = s.answer.send(outcome);
        }
    }
}

/// Each caller of a group with what to tell it.
type Answers = Vec<(Submission, Result<Slots, StoreError>)>;

/// A group starting with `first`: what else is queued, and while more keep arriving,
/// what comes within the limits. The submission that may not join (it would take the
/// group past `max_batch`, or it is from another instant) is handed back to open the
/// next one.
async fn gather(
    first: Submission,
    queue: &mut mpsc::UnboundedReceiver<Submission>,
    limits: GroupLimits,
) -> (Vec<Submission>, Option<Submission>) {
    let opened = Instant::now();
    let instant = first.now;
    let mut mentions = first.mentions();
    let mut group = vec![first];
    let mut quiet = 0;
    while mentions < limits.max_batch {
        match queue.try_recv() {
            // Too many for this group, or from another instant: it opens the next one.
            Ok(s)
                if mentions + s.mentions() > limits.max_batch
                    || (s.now - instant).abs() > SAME_INSTANT =>
            {
                return (group, Some(s))
            }
            Ok(s) => {
                mentions += s.mentions();
                group.push(s);
                quiet = 0;
            }
            // Alone: committed at once. With company: the callers just answered get a
            // moment to come back, bounded by `max_wait`.
            Err(mpsc::error::TryRecvError::Empty)
                if group.len() > 1 && quiet < QUIET_TURNS && opened.elapsed() < limits.max_wait =>
            {
                quiet += 1;
                tokio::task::yield_now().await;
            }
            Err(_) => break,
        }
    }
    (group, None)
}

/// Commit a group: what to tell each of its callers. A group that fails as a whole for
/// a reason other than the backend being away (one delivery's unreadable record) is
/// committed again caller by caller, so that failure is only its own caller's.
async fn commit(store: &dyn Store, mut group: Vec<Submission>, marks: &FlushMarks) -> Answers {
    let sizes: Vec<usize> = group.iter().map(|s| s.deliveries.len()).collect();
    let deliveries: Vec<Delivery> = group
        .iter_mut()
        .flat_map(|s| std::mem::take(&mut s.deliveries))
        .collect();
    let now = group.iter().map(|s| s.now).max().unwrap_or_else(Utc::now);
    match store_and_flush(store, &deliveries, now, marks).await {
        Ok(slots) => {
            let mut slots = slots.into_iter();
            group
                .into_iter()
                .zip(sizes)
                .map(|(s, size)| (s, Ok(slots.by_ref().take(size).collect())))
                .collect()
        }
        Err(e) if group.len() > 1 && !e.is_transient() => {
            tracing::warn!(error = %e, callers = group.len(), "a group's commit failed; committing its callers one by one");
            let mut deliveries = deliveries.into_iter();
            let mut answers = Vec::with_capacity(group.len());
            for (s, size) in group.into_iter().zip(sizes) {
                let own: Vec<Delivery> = deliveries.by_ref().take(size).collect();
                let outcome = store_and_flush(store, &own, s.now, marks).await;
                answers.push((s, outcome));
            }
            answers
        }
        Err(e) => {
            // Every caller hears of it: the last with the error itself, the others with
            // its words.
            let mut left = group.len();
            let mut error = Some(e);
            group
                .into_iter()
                .map(|s| {
                    left -= 1;
                    let told = if left == 0 {
                        error.take()
                    } else {
                        error.as_ref().map(told_again)
                    };
                    (s, Err(told.unwrap_or_else(stopped)))
                })
                .collect()
        }
    }
}

/// `e` again, for one more caller: the same kind (so whether to retry is judged the
/// same), its causes in words.
fn told_again(e: &StoreError) -> StoreError {
    let words = |source: &(dyn std::error::Error + 'static)| {
        let mut all = source.to_string();
        let mut cause = source.source();
        while let Some(c) = cause {
            all.push_str(": ");
            all.push_str(&c.to_string());
            cause = c.source();
        }
        all
    };
    match e {
        StoreError::Open { path, source } => StoreError::Open {
            path: path.clone(),
            source: words(source.as_ref()).into(),
        },
        StoreError::Backend(source) => StoreError::Backend(words(source.as_ref()).into()),
        StoreError::Corrupt(source) => {
            StoreError::Corrupt(<serde_json::Error as serde::de::Error>::custom(source))
        }
        StoreError::NoSuchTicket(id) => StoreError::NoSuchTicket(*id),
        StoreError::NoSuchIncident(id) => StoreError::NoSuchIncident(*id),
        StoreError::Fenced { duty } => StoreError::Fenced { duty: duty.clone() },
        StoreError::SchemaTooNew { found, known } => StoreError::SchemaTooNew {
            found: *found,
            known: *known,
        },
    }
}

/// `ingest_many` and then one flush; a panic in the backend is an error for the callers,
/// and the committer carries on.
async fn store_and_flush(
    store: &dyn Store,
    deliveries: &[Delivery],
    now: DateTime<Utc>,
    marks: &FlushMarks,
) -> Result<Slots, StoreError> {
    let run = async {
        let slots = store.ingest_many(deliveries, now).await?;
        if slots.len() != deliveries.len() {
            return Err(StoreError::Backend(
                format!(
                    "the store answered {} deliveries with {} outcomes",
                    deliveries.len(),
                    slots.len()
                )
                .into(),
            ));
        }
        if slots.iter().any(Result::is_ok) {
            marks.flush_all(store).await?;
        }
        Ok(slots)
    };
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!("the store panicked while committing a group of ingests");
            Err(StoreError::Backend(
                "the store failed while committing these mentions".into(),
            ))
        }
    }
}

#[async_trait::async_trait]
impl Store for GroupCommit {
    /// Ingests through this layer are durable when they return; anything else written
    /// since the last flush is flushed now.
    async fn flush(&self) -> Result<(), StoreError> {
        self.group.marks.flush(&*self.group.inner).await
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.direct.cursor(source).await
    }

    async fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.direct.state(key).await
    }

    async fn set_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.wrote(self.direct.set_state(key, value).await)
    }

    async fn count_up(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        self.wrote(self.direct.count_up(key, by).await)
    }

    async fn first_delivery(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.wrote(self.direct.first_delivery(source, id, now).await)
    }

    async fn seen_event_count(&self) -> Result<usize, StoreError> {
        self.direct.seen_event_count().await
    }

    /// Joins the group being formed; `Ok` means stored and flushed.
    async fn ingest(
        &self,
        source: &str,
        mentions: &[Mention],
        cursor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ingested, StoreError> {
        let delivery = Delivery {
            fence: self.fence.clone(),
            ..Delivery::new(source, mentions, cursor)
        };
        let mut slots = self.submit(vec![delivery], now).await?;
        slots.pop().unwrap_or_else(|| Err(stopped()))
    }

    /// The deliveries join the group being formed together (one transaction, never
    /// split); `Ok` means stored and flushed.
    async fn ingest_many(
        &self,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Slots, StoreError> {
        let deliveries = deliveries
            .iter()
            .map(|d| Delivery {
                fence: d.fence.clone().or_else(|| self.fence.clone()),
                ..d.clone()
            })
            .collect();
        self.submit(deliveries, now).await
    }

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.direct.ticket(id).await
    }

    // -- customer history (issue 14) --
    async fn author_contacts(
        &self,
        author_key: &str,
        limit: usize,
    ) -> Result<Vec<crate::domain::priority::Contact>, StoreError> {
        self.direct.author_contacts(author_key, limit).await
    }

    async fn add_person_note(
        &self,
        author_key: &str,
        note: &crate::domain::customer::PersonNote,
    ) -> Result<(), StoreError> {
        self.direct.add_person_note(author_key, note).await
    }

    async fn person_notes(
        &self,
        author_key: &str,
    ) -> Result<Vec<crate::domain::customer::PersonNote>, StoreError> {
        self.direct.person_notes(author_key).await
    }

    async fn forget_person_notes(&self, author_key: &str) -> Result<u64, StoreError> {
        self.direct.forget_person_notes(author_key).await
    }

    async fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.direct.open_tickets().await
    }

    async fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.direct.all_tickets().await
    }

    async fn open_tickets_numbered(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.direct.open_tickets_numbered(prefix, limit).await
    }

    async fn open_ticket_count(&self) -> Result<usize, StoreError> {
        self.direct.open_ticket_count().await
    }

    async fn open_priorities(&self) -> Result<Vec<crate::ports::OpenPriority>, StoreError> {
        self.direct.open_priorities().await
    }

    async fn open_list_heads(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::ports::OpenPriority>, StoreError> {
        self.direct.open_list_heads(limit).await
    }

    async fn due_tickets(&self, until: DateTime<Utc>, limit: usize) -> Result<Due, StoreError> {
        let due = self.direct.due_tickets(until, limit).await?;
        // It writes only while it recomputes due instants after the routes changed, and
        // then says the next is due by `until` (as it does when more were due than it
        // returned): only then is the next flush owed anything, so a quiet round leaves
        // the next flush free to skip.
        if due.next.is_some_and(|next| next <= until) {
            self.group.marks.wrote();
        }
        Ok(due)
    }

    async fn mark(&self, id: TicketId, mark: &Mark<'_>) -> Result<Option<Ticket>, StoreError> {
        self.wrote(self.direct.mark(id, mark).await)
    }

    async fn rewrite_ticket(&self, rw: &crate::domain::privacy::Rewrite) -> Result<(), StoreError> {
        self.wrote(self.direct.rewrite_ticket(rw).await)
    }

    async fn received_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, TicketId)>,
        limit: usize,
    ) -> Result<Vec<crate::ports::tally::TicketFacts>, StoreError> {
        self.direct.received_facts(from, to, after, limit).await
    }

    async fn first_answers_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.direct.first_answers_between(from, to).await
    }

    async fn counters(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        self.direct.counters().await
    }

    async fn answered_within(&self, route: &str, seconds: i64) -> Result<u64, StoreError> {
        self.direct.answered_within(route, seconds).await
    }

    async fn unanswered_since(&self, route: &str, since: DateTime<Utc>) -> Result<u64, StoreError> {
        self.direct.unanswered_since(route, since).await
    }

    async fn ticket_count(&self) -> Result<usize, StoreError> {
        self.direct.ticket_count().await
    }

    async fn act(&self, id: TicketId, judge: &Judge<'_>) -> Result<ActOutcome, StoreError> {
        self.wrote(self.direct.act(id, judge).await)
    }

    async fn transition(
        &self,
        id: TicketId,
        decide: &Decide<'_>,
    ) -> Result<Option<Ticket>, StoreError> {
        self.wrote(self.direct.transition(id, decide).await)
    }

    async fn queue_desk_job(
        &self,
        effect: Effect,
        state_key: &str,
        state_value: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.wrote(
            self.direct
                .queue_desk_job(effect, state_key, state_value, now)
                .await,
        )
    }

    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.direct.jobs().await
    }

    async fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        self.direct.job(id).await
    }

    async fn pending_job_count(&self) -> Result<u64, StoreError> {
        self.direct.pending_job_count().await
    }

    async fn claim_jobs(
        &self,
        claimant: &str,
        limit: usize,
        now: DateTime<Utc>,
        hold_for: Duration,
    ) -> Result<Claimed, StoreError> {
        self.wrote(self.direct.claim_jobs(claimant, limit, now, hold_for).await)
    }

    async fn renew_claims(&self, claimant: &str, hold_for: Duration) -> Result<(), StoreError> {
        self.wrote(self.direct.renew_claims(claimant, hold_for).await)
    }

    async fn holds_claim(
        &self,
        job: &Job,
        claimant: &str,
        hold_for: Duration,
    ) -> Result<bool, StoreError> {
        self.wrote(self.direct.holds_claim(job, claimant, hold_for).await)
    }

    async fn defer(
        &self,
        job: &Job,
        not_before: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.wrote(self.direct.defer(job, not_before, error).await)
    }

    async fn give_up(&self, job: &Job, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.wrote(self.direct.give_up(job, reason, now).await)
    }

    async fn failed_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.direct.failed_jobs().await
    }

    async fn complete_with(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        more: &[Effect],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.wrote(self.direct.complete_with(job, event, more, now).await)
    }

    async fn save_card(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError> {
        self.wrote(self.direct.save_card(ticket, card).await)
    }

    async fn report_lost_card(
        &self,
        ticket: TicketId,
        surface: SurfaceKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.wrote(
            self.direct
                .report_lost_card(ticket, surface, reason, now)
                .await,
        )
    }

    async fn cards_lost(&self, surface: SurfaceKind) -> Result<u64, StoreError> {
        self.direct.cards_lost(surface).await
    }

    async fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        self.direct.incident(id).await
    }

    async fn incidents_after(
        &self,
        after: Option<IncidentId>,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        self.direct.incidents_after(after, limit).await
    }

    async fn incident_members(
        &self,
        id: IncidentId,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError> {
        self.direct.incident_members(id, after, limit).await
    }

    async fn change_incident(
        &self,
        id: Option<IncidentId>,
        tickets: &[TicketId],
        decide: &IncidentDecide<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>, StoreError> {
        self.wrote(self.direct.change_incident(id, tickets, decide, now).await)
    }

    async fn cards(&self, ticket: TicketId) -> Result<Vec<CardRef>, StoreError> {
        self.direct.cards(ticket).await
    }

    async fn ticket_by_card(
        &self,
        surface: SurfaceKind,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>, StoreError> {
        self.direct
            .ticket_by_card(surface, channel, message_id)
            .await
    }

    async fn acquire_lease(
        &self,
        duty: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.wrote(self.direct.acquire_lease(duty, holder, ttl).await)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.wrote(self.direct.renew_lease(lease, ttl).await)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.wrote(self.direct.release_lease(lease).await)
    }

    async fn leases(&self) -> Result<Vec<LeaseState>, StoreError> {
        self.direct.leases().await
    }

    /// Its ingests join the same groups under `fence`; its other writes go through the
    /// backend's handle fenced by it.
    fn fenced(&self, fence: Arc<Fence>) -> SharedStore {
        Arc::new(GroupCommit {
            group: self.group.clone(),
            direct: self.group.inner.fenced(fence.clone()),
            fence: Some(fence),
        })
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.wrote(self.direct.append_audit(entry).await)
    }

    async fn audit_of(&self, ticket: TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        self.direct.audit_of(ticket).await
    }

    async fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.direct.audit_all().await
    }

    async fn audit_after(
        &self,
        after: Option<AuditPos>,
        limit: usize,
    ) -> Result<Vec<(AuditPos, AuditEntry)>, StoreError> {
        self.direct.audit_after(after, limit).await
    }

    async fn tickets_after(
        &self,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.direct.tickets_after(after, limit).await
    }
}

#[cfg(test)]
mod tests {
    //! The group's own rules, over a backend that records what it is asked and fails on
    //! demand. What backends do with a group is the contract suite's
    //! (`tests/integration/store_contract.rs`).
    use super::*;
    use crate::domain::{Author, Platform, Visibility};
    use crate::store::SledStore;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// A sled store that records its ingests and flushes, and fails as told.
    #[derive(Default)]
    struct Recording {
        sled: Option<SledStore>,
        /// Mentions per `ingest_many` call, in order.
        calls: Mutex<Vec<usize>>,
        flushes: AtomicUsize,
        /// Something was ingested and not flushed since.
        unflushed: AtomicBool,
        fail: AtomicBool,
        fail_flush: AtomicBool,
        panic: AtomicBool,
        /// How long each `ingest_many` takes (so callers pile up behind it).
        slow: Duration,
        /// A mention whose ingest fails as an unreadable record would.
        poison: Option<&'static str>,
    }

    impl Recording {
        fn new(slow: Duration) -> Arc<Recording> {
            Arc::new(Recording {
                sled: Some(SledStore::temporary().unwrap()),
                slow,
                ..Recording::default()
            })
        }

        fn sled(&self) -> &SledStore {
            self.sled.as_ref().expect("a sled store")
        }

        fn calls(&self) -> Vec<usize> {
            self.calls.lock().unwrap().clone()
        }
    }

    fn mention(id: &str) -> Mention {
        Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: id.into(),
            url: format!("https://m.example/@c/{id}"),
            author: Author {
                handle: format!("c{id}"),
                name: "C".into(),
                profile_url: String::new(),
                id: None,
                followers: None,
            },
            text: "where is my order?".into(),
            language: None,
            created_at: Utc::now(),
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    fn grouped(backend: &Arc<Recording>, limits: GroupLimits) -> SharedStore {
        Arc::new(GroupCommit::new(backend.clone(), limits))
    }

    /// `callers` ingests of one mention each (`c0`, `c1`, …), all at once.
    async fn at_once(
        store: &SharedStore,
        callers: usize,
    ) -> Vec<(String, Result<Ingested, StoreError>)> {
        let mut running = tokio::task::JoinSet::new();
        for c in 0..callers {
            let store = store.clone();
            running.spawn(async move {
                let id = format!("c{c}");
                let mine = [mention(&id)];
                let ingest = store.ingest("stream", &mine, None, Utc::now());
                let outcome = tokio::time::timeout(Duration::from_secs(10), ingest)
                    .await
                    .expect("every caller is answered");
                (id, outcome)
            });
        }
        running.join_all().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_ingest_commits_at_once_and_is_flushed_before_it_returns() {
        let backend = Recording::new(Duration::ZERO);
        let limits = GroupLimits {
            max_batch: 100,
            max_wait: Duration::from_secs(10),
        };
        let store = grouped(&backend, limits);
        let started = Instant::now();
        let done = store
            .ingest("stream", &[mention("1")], Some("1"), Utc::now())
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a lone ingest does not wait for company"
        );
        assert_eq!(done.new_tickets, vec![TicketId(1)]);
        assert_eq!(backend.calls(), vec![1]);
        assert!(
            !backend.unflushed.load(Ordering::SeqCst),
            "flushed before the caller heard back"
        );
        assert_eq!(backend.flushes.load(Ordering::SeqCst), 1);
        // The flush a watcher makes next has nothing left to do.
        store.flush().await.unwrap();
        assert_eq!(backend.flushes.load(Ordering::SeqCst), 1);
        // Anything else written since is flushed, once.
        store.set_state("k", b"v").await.unwrap();
        store.flush().await.unwrap();
        store.flush().await.unwrap();
        assert_eq!(backend.flushes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_arriving_together_share_groups_within_the_limit() {
        let backend = Recording::new(Duration::from_millis(30));
        let limits = GroupLimits {
            max_batch: 8,
            max_wait: Duration::from_millis(50),
        };
        let store = grouped(&backend, limits);
        let big: Vec<Mention> = (0..12).map(|i| mention(&format!("big{i}"))).collect();
        let (outcomes, whole) = tokio::join!(at_once(&store, 40), async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            store.ingest("poll", &big, Some("p1"), Utc::now()).await
        });
        // Each caller is told of its own mention's ticket.
        for (id, outcome) in outcomes {
            let done = outcome.unwrap();
            assert_eq!(done.new_tickets.len(), 1, "{id}");
            let ticket = store.ticket(done.new_tickets[0]).await.unwrap().unwrap();
            assert_eq!(ticket.mention.remote_id, id);
        }
        assert_eq!(whole.unwrap().new_tickets.len(), 12);
        let calls = backend.calls();
        assert_eq!(calls.iter().sum::<usize>(), 52);
        assert!(
            calls.contains(&12),
            "a batch is never split, nor joined: {calls:?}"
        );
        assert!(
            calls.iter().filter(|n| **n != 12).all(|n| *n <= 8),
            "groups stop at the limit: {calls:?}"
        );
        assert!(
            calls.len() <= 8,
            "callers waiting together share a commit: {calls:?}"
        );
        assert_eq!(backend.flushes.load(Ordering::SeqCst), calls.len());
        assert_eq!(store.ticket_count().await.unwrap(), 52);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_backend_fails_every_caller_of_its_group_and_the_next_one_goes_through() {
        let backend = Recording::new(Duration::from_millis(20));
        let store = grouped(&backend, GroupLimits::default());
        for failure in [&backend.fail, &backend.fail_flush, &backend.panic] {
            failure.store(true, Ordering::SeqCst);
            for (id, outcome) in at_once(&store, 10).await {
                let e = outcome.expect_err("the group failed");
                assert!(e.is_transient(), "{id}: {e}");
            }
            failure.store(false, Ordering::SeqCst);
            let done = store
                .ingest("stream", &[mention("after")], None, Utc::now())
                .await
                .unwrap();
            assert_eq!(done.new_tickets.len() + done.duplicates, 1);
        }
        assert!(backend.calls().len() >= 6, "{:?}", backend.calls());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_callers_unreadable_record_fails_only_that_caller() {
        // A stored ticket the poisoned mention answers is unreadable (as if corrupt on
        // disk): the backend refuses the whole transaction.
        let backend = Arc::new(Recording {
            poison: Some("c3"),
            ..Arc::into_inner(Recording::new(Duration::from_millis(20))).unwrap()
        });
        let store = grouped(&backend, GroupLimits::default());
        let outcomes = at_once(&store, 10).await;
        let refused: Vec<&String> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Err(StoreError::Corrupt(_))))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(refused, vec!["c3"], "{outcomes:?}");
        assert!(outcomes
            .iter()
            .filter(|(id, _)| id != "c3")
            .all(|(_, o)| o.as_ref().is_ok_and(|d| d.new_tickets.len() == 1)));
    }

    #[test]
    fn a_committer_whose_runtime_is_gone_is_replaced() {
        let backend = Recording::new(Duration::ZERO);
        let store = grouped(&backend, GroupLimits::default());
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        first
            .block_on(store.ingest("stream", &[mention("1")], None, Utc::now()))
            .unwrap();
        // Its committer ran on that runtime, which is shut down now.
        drop(first);
        let second = runtime();
        let done = second
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    store.ingest("stream", &[mention("2")], None, Utc::now()),
                )
                .await
            })
            .expect("answered")
            .unwrap();
        assert_eq!(done.new_tickets, vec![TicketId(2)]);
    }

    #[async_trait::async_trait]
    impl Store for Recording {
        async fn flush(&self) -> Result<(), StoreError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            if self.fail_flush.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("the disk is full".into()));
            }
            self.sled().flush().await?;
            self.unflushed.store(false, Ordering::SeqCst);
            Ok(())
        }

        async fn ingest_many(
            &self,
            deliveries: &[Delivery],
            now: DateTime<Utc>,
        ) -> Result<Slots, StoreError> {
            let mentions = deliveries.iter().flat_map(|d| &d.mentions);
            self.calls.lock().unwrap().push(mentions.clone().count());
            tokio::time::sleep(self.slow).await;
            if self.panic.load(Ordering::SeqCst) {
                panic!("the backend broke");
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("the database went away".into()));
            }
            if mentions
                .clone()
                .any(|m| Some(m.remote_id.as_str()) == self.poison)
            {
                let unreadable = serde_json::from_str::<Ticket>("{").unwrap_err();
                return Err(StoreError::Corrupt(unreadable));
            }
            let slots = self.sled().ingest_many(deliveries, now).await?;
            self.unflushed.store(true, Ordering::SeqCst);
            Ok(slots)
        }

        async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
            self.sled().cursor(source).await
        }
        async fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.sled().state(key).await
        }
        async fn set_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.sled().set_state(key, value).await
        }
        async fn count_up(&self, key: &str, by: u64) -> Result<u64, StoreError> {
            self.sled().count_up(key, by).await
        }
        async fn first_delivery(
            &self,
            source: &str,
            id: &str,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            self.sled().first_delivery(source, id, now).await
        }
        async fn seen_event_count(&self) -> Result<usize, StoreError> {
            self.sled().seen_event_count().await
        }
        async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
            self.sled().ticket(id).await
        }
        async fn author_contacts(
            &self,
            author_key: &str,
            limit: usize,
        ) -> Result<Vec<crate::domain::priority::Contact>, StoreError> {
            self.sled().author_contacts(author_key, limit).await
        }
        async fn add_person_note(
            &self,
            author_key: &str,
            note: &crate::domain::customer::PersonNote,
        ) -> Result<(), StoreError> {
            self.sled().add_person_note(author_key, note).await
        }
        async fn person_notes(
            &self,
            author_key: &str,
        ) -> Result<Vec<crate::domain::customer::PersonNote>, StoreError> {
            self.sled().person_notes(author_key).await
        }
        async fn forget_person_notes(&self, author_key: &str) -> Result<u64, StoreError> {
            self.sled().forget_person_notes(author_key).await
        }
        async fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
            self.sled().open_tickets().await
        }
        async fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
            self.sled().all_tickets().await
        }

        async fn open_tickets_numbered(
            &self,
            prefix: &str,
            limit: usize,
        ) -> Result<Vec<Ticket>, StoreError> {
            self.sled().open_tickets_numbered(prefix, limit).await
        }

        async fn open_ticket_count(&self) -> Result<usize, StoreError> {
            self.sled().open_ticket_count().await
        }

        async fn due_tickets(&self, until: DateTime<Utc>, limit: usize) -> Result<Due, StoreError> {
            self.sled().due_tickets(until, limit).await
        }

        async fn mark(&self, id: TicketId, mark: &Mark<'_>) -> Result<Option<Ticket>, StoreError> {
            self.sled().mark(id, mark).await
        }

        async fn rewrite_ticket(
            &self,
            rw: &crate::domain::privacy::Rewrite,
        ) -> Result<(), StoreError> {
            self.sled().rewrite_ticket(rw).await
        }

        async fn received_facts(
            &self,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
            after: Option<(DateTime<Utc>, TicketId)>,
            limit: usize,
        ) -> Result<Vec<crate::ports::tally::TicketFacts>, StoreError> {
            self.sled().received_facts(from, to, after, limit).await
        }

        async fn first_answers_between(
            &self,
            from: DateTime<Utc>,
            to: DateTime<Utc>,
        ) -> Result<usize, StoreError> {
            self.sled().first_answers_between(from, to).await
        }

        async fn counters(&self) -> Result<BTreeMap<String, i64>, StoreError> {
            self.sled().counters().await
        }

        async fn answered_within(&self, route: &str, seconds: i64) -> Result<u64, StoreError> {
            self.sled().answered_within(route, seconds).await
        }

        async fn unanswered_since(
            &self,
            route: &str,
            since: DateTime<Utc>,
        ) -> Result<u64, StoreError> {
            self.sled().unanswered_since(route, since).await
        }
        async fn ticket_count(&self) -> Result<usize, StoreError> {
            self.sled().ticket_count().await
        }
        async fn act(&self, id: TicketId, judge: &Judge<'_>) -> Result<ActOutcome, StoreError> {
            self.sled().act(id, judge).await
        }
        async fn transition(
            &self,
            id: TicketId,
            decide: &Decide<'_>,
        ) -> Result<Option<Ticket>, StoreError> {
            self.sled().transition(id, decide).await
        }
        async fn queue_desk_job(
            &self,
            effect: Effect,
            state_key: &str,
            state_value: &[u8],
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.sled()
                .queue_desk_job(effect, state_key, state_value, now)
                .await
        }
        async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
            self.sled().jobs().await
        }
        async fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
            self.sled().job(id).await
        }
        async fn pending_job_count(&self) -> Result<u64, StoreError> {
            self.sled().pending_job_count().await
        }
        async fn claim_jobs(
            &self,
            claimant: &str,
            limit: usize,
            now: DateTime<Utc>,
            hold_for: Duration,
        ) -> Result<Claimed, StoreError> {
            self.sled().claim_jobs(claimant, limit, now, hold_for).await
        }
        async fn renew_claims(&self, claimant: &str, hold_for: Duration) -> Result<(), StoreError> {
            self.sled().renew_claims(claimant, hold_for).await
        }
        async fn holds_claim(
            &self,
            job: &Job,
            claimant: &str,
            hold_for: Duration,
        ) -> Result<bool, StoreError> {
            self.sled().holds_claim(job, claimant, hold_for).await
        }
        async fn defer(
            &self,
            job: &Job,
            not_before: DateTime<Utc>,
            error: &str,
        ) -> Result<(), StoreError> {
            self.sled().defer(job, not_before, error).await
        }
        async fn give_up(
            &self,
            job: &Job,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.sled().give_up(job, reason, now).await
        }
        async fn failed_jobs(&self) -> Result<Vec<Job>, StoreError> {
            self.sled().failed_jobs().await
        }
        async fn complete_with(
            &self,
            job: &Job,
            event: Option<SystemEvent>,
            more: &[Effect],
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.sled().complete_with(job, event, more, now).await
        }
        async fn save_card(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError> {
            self.sled().save_card(ticket, card).await
        }
        async fn report_lost_card(
            &self,
            ticket: TicketId,
            surface: SurfaceKind,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            self.sled()
                .report_lost_card(ticket, surface, reason, now)
                .await
        }
        async fn cards_lost(&self, surface: SurfaceKind) -> Result<u64, StoreError> {
            self.sled().cards_lost(surface).await
        }
        async fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
            self.sled().incident(id).await
        }
        async fn incidents_after(
            &self,
            after: Option<IncidentId>,
            limit: usize,
        ) -> Result<Vec<Incident>, StoreError> {
            self.sled().incidents_after(after, limit).await
        }
        async fn incident_members(
            &self,
            id: IncidentId,
            after: Option<TicketId>,
            limit: usize,
        ) -> Result<Vec<TicketId>, StoreError> {
            self.sled().incident_members(id, after, limit).await
        }
        async fn change_incident(
            &self,
            id: Option<IncidentId>,
            tickets: &[TicketId],
            decide: &IncidentDecide<'_>,
            now: DateTime<Utc>,
        ) -> Result<Option<Incident>, StoreError> {
            self.sled().change_incident(id, tickets, decide, now).await
        }
        async fn cards(&self, ticket: TicketId) -> Result<Vec<CardRef>, StoreError> {
            self.sled().cards(ticket).await
        }
        async fn ticket_by_card(
            &self,
            surface: SurfaceKind,
            channel: &str,
            message_id: &str,
        ) -> Result<Option<TicketId>, StoreError> {
            self.sled()
                .ticket_by_card(surface, channel, message_id)
                .await
        }
        async fn acquire_lease(
            &self,
            duty: &str,
            holder: &str,
            ttl: Duration,
        ) -> Result<Option<Lease>, StoreError> {
            self.sled().acquire_lease(duty, holder, ttl).await
        }
        async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
            self.sled().renew_lease(lease, ttl).await
        }
        async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
            self.sled().release_lease(lease).await
        }
        async fn leases(&self) -> Result<Vec<LeaseState>, StoreError> {
            self.sled().leases().await
        }
        fn fenced(&self, fence: Arc<Fence>) -> SharedStore {
            self.sled().fenced(fence)
        }
        async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
            self.sled().append_audit(entry).await
        }
        async fn audit_of(&self, ticket: TicketId) -> Result<Vec<AuditEntry>, StoreError> {
            self.sled().audit_of(ticket).await
        }
        async fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
            self.sled().audit_all().await
        }
        async fn audit_after(
            &self,
            after: Option<AuditPos>,
            limit: usize,
        ) -> Result<Vec<(AuditPos, AuditEntry)>, StoreError> {
            self.sled().audit_after(after, limit).await
        }
        async fn tickets_after(
            &self,
            after: Option<TicketId>,
            limit: usize,
        ) -> Result<Vec<Ticket>, StoreError> {
            self.sled().tickets_after(after, limit).await
        }
    }
}
