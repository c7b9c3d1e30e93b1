//! The durable memory of the desk, on sled. Every multi-key change happens in one
//! transaction; callers flush before they acknowledge anything the store must not lose
//! or before the external call a change leads to (the outbox rule).

use crate::domain::CardRef;
use crate::domain::{
    apply_followup, apply_system, AuditEntry, Effect, Mention, Note, Rejection, SurfaceKind,
    SystemEvent, Ticket, TicketId, Transition,
};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "the store at {path} cannot be opened: {source} (is another mentionbridge running on it?)"
    )]
    Open { path: String, source: sled::Error },
    #[error("store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("ticket {0} does not exist")]
    NoSuchTicket(TicketId),
}

/// One effect waiting to be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
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

/// What an ingest did with a batch of mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    pub new_tickets: Vec<TicketId>,
    /// Tickets a customer's follow-up joined (and reopened if they were closed).
    pub followups: Vec<TicketId>,
    pub duplicates: usize,
}

impl Ingested {
    /// Anything for the outbox to do.
    pub fn changed(&self) -> bool {
        !self.new_tickets.is_empty() || !self.followups.is_empty()
    }
}

/// The outcome of an agent's action as the store committed it.
pub type ActOutcome = Result<Ticket, Rejection>;

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tickets: sled::Tree,
    dedupe: sled::Tree,
    cursors: sled::Tree,
    cards: sled::Tree,
    card_index: sled::Tree,
    outbox: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
    /// Small per-source state that must survive restarts (a Bluesky session, an X
    /// request budget), by key.
    state: sled::Tree,
    /// Inbound event ids already acted on (Slack `event_id`, Discord interaction id) →
    /// when first seen; `seen_by_time` indexes them by that time for pruning.
    seen: sled::Tree,
    seen_by_time: sled::Tree,
    /// Jobs the outbox gave up on, with their last error: kept for the team to see.
    failed_jobs: sled::Tree,
    /// Stamps a new ticket with its route and first-response deadline.
    router: Option<Router>,
}

/// For a new mention: the route it takes and that route's first-response target.
pub type Router = std::sync::Arc<dyn Fn(&Mention) -> (String, chrono::Duration) + Send + Sync>;

/// The outbox key of jobs that concern no ticket (shift hand-off digests).
pub const DESK_JOBS: TicketId = TicketId(0);

/// How long an inbound event id is remembered. Slack retries an event for about six
/// minutes (at once, after 1 and after 5 minutes); a Discord gateway resume replays a few
/// minutes at most. A day covers those, and a restart or outage in between, while
/// keeping the tree small (one key per event).
pub const SEEN_EVENTS_FOR: chrono::Duration = chrono::Duration::hours(24);

/// Expired event ids removed per sighting, so pruning never stalls an inbound event.
const PRUNE_PER_SIGHTING: usize = 64;

const CACHE_BYTES: u64 = 64 * 1024 * 1024;

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("our records always serialize")
}

fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

type TxResult<T> = Result<T, ConflictableTransactionError<Abort>>;

/// Why a transaction stopped on purpose.
#[derive(Debug)]
enum Abort {
    Rejected(Rejection),
    Missing(TicketId),
    Corrupt(serde_json::Error),
}

fn tx_dec<T: DeserializeOwned>(bytes: &[u8]) -> TxResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ConflictableTransactionError::Abort(Abort::Corrupt(e)))
}

fn card_index_key(surface: SurfaceKind, channel: &str, message_id: &str) -> Vec<u8> {
    format!("{surface:?}\u{0}{channel}\u{0}{message_id}").into_bytes()
}

fn card_key(ticket: TicketId, surface: SurfaceKind) -> Vec<u8> {
    let mut k = key(ticket.0).to_vec();
    k.extend_from_slice(format!("{surface:?}").as_bytes());
    k
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            // sled's default page cache is 1 GiB; the desk's working set is far smaller.
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Self::with_db(db)
    }

    /// A throwaway store for tests and benchmarks.
    pub fn temporary() -> Result<Store, StoreError> {
        Self::with_db(
            sled::Config::new()
                .temporary(true)
                .cache_capacity(CACHE_BYTES)
                .open()?,
        )
    }

    fn with_db(db: sled::Db) -> Result<Store, StoreError> {
        Ok(Store {
            tickets: db.open_tree("tickets")?,
            dedupe: db.open_tree("dedupe")?,
            cursors: db.open_tree("cursors")?,
            cards: db.open_tree("cards")?,
            card_index: db.open_tree("card_index")?,
            outbox: db.open_tree("outbox")?,
            audit: db.open_tree("audit")?,
            meta: db.open_tree("meta")?,
            state: db.open_tree("state")?,
            seen: db.open_tree("seen_events")?,
            seen_by_time: db.open_tree("seen_events_by_time")?,
            failed_jobs: db.open_tree("failed_jobs")?,
            router: None,
            db,
        })
    }

    /// Stamp each new ticket with its route and first-response deadline.
    pub fn with_router(mut self, router: Router) -> Store {
        self.router = Some(router);
        self
    }

    /// Make everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .cursors
            .get(source)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.get(key)?.map(|v| v.to_vec()))
    }

    /// Remember source state; the caller flushes when it must survive a crash.
    pub fn set_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.state.insert(key, value)?;
        Ok(())
    }

    /// Whether this is the first delivery of inbound event `id` from `source` (e.g.
    /// `slack-event`, `discord-interaction`) within `SEEN_EVENTS_FOR`; it is remembered
    /// durably either way, so a retry after a restart is still recognised. Expired ids
    /// are forgotten a few at a time.
    pub async fn first_delivery(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = format!("{source}\u{0}{id}").into_bytes();
        let stamp = now.timestamp_millis().to_be_bytes();
        let fresh_since = (now - SEEN_EVENTS_FOR).timestamp_millis();
        let time_key = |ms: &[u8]| [ms, key.as_slice()].concat();
        let result = (&self.seen, &self.seen_by_time).transaction(|(seen, by_time)| {
            if let Some(old) = seen.get(&key)? {
                let at = i64::from_be_bytes(old.as_ref().try_into().unwrap_or([0; 8]));
                if at >= fresh_since {
                    return Ok(false);
                }
                by_time.remove(time_key(&old))?;
            }
            seen.insert(key.as_slice(), &stamp)?;
            by_time.insert(time_key(&stamp), &[])?;
            Ok(true)
        });
        let first = finish(result)?;
        if first {
            self.prune_seen(fresh_since)?;
            self.flush().await?;
        }
        Ok(first)
    }

    fn prune_seen(&self, fresh_since: i64) -> Result<(), StoreError> {
        let expired: Vec<sled::IVec> = self
            .seen_by_time
            .range(..fresh_since.to_be_bytes().to_vec())
            .keys()
            .take(PRUNE_PER_SIGHTING)
            .collect::<Result<_, _>>()?;
        for time_key in expired {
            let id = &time_key[8..];
            // Only if not seen again since (then it has a newer time key).
            if self.seen.get(id)?.as_deref() == Some(&time_key[..8]) {
                self.seen.remove(id)?;
            }
            self.seen_by_time.remove(&time_key)?;
        }
        Ok(())
    }

    /// How many inbound event ids are remembered (for tests and the numbers).
    pub fn seen_event_count(&self) -> usize {
        self.seen.len()
    }

    /// Store new mentions, in one transaction with the source's new cursor. A mention
    /// already seen is skipped; one that answers a post of an open or closed ticket's
    /// conversation (the mention, a follow-up, or our reply), by the same author, joins
    /// that ticket; anything else becomes a new ticket with its cards queued.
    pub fn ingest(
        &self,
        source: &str,
        mentions: &[Mention],
        cursor: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ingested, StoreError> {
        let trees = (
            &self.tickets,
            &self.dedupe,
            &self.cursors,
            &self.outbox,
            &self.audit,
            &self.meta,
        );
        let result = trees.transaction(|(tickets, dedupe, cursors, outbox, audit, meta)| {
            let mut done = Ingested::default();
            for m in mentions {
                let keys = m.dedupe_keys();
                let mut seen = false;
                for k in &keys {
                    seen |= dedupe.get(k.as_bytes())?.is_some();
                }
                if seen {
                    done.duplicates += 1;
                    continue;
                }
                let remember = |id: TicketId| -> Result<(), UnabortableTransactionError> {
                    for k in &keys {
                        dedupe.insert(k.as_bytes(), &key(id.0))?;
                    }
                    Ok(())
                };
                if let Some(id) = conversation_of(tickets, dedupe, m)? {
                    let raw = tickets.get(key(id.0))?.expect("indexed tickets exist");
                    let ticket: Ticket = tx_dec(&raw)?;
                    let tr = apply_followup(&ticket, m, now);
                    commit_transition(tickets, outbox, audit, &tr, now)?;
                    remember(id)?;
                    done.followups.push(id);
                    continue;
                }
                let next = match meta.get("next_ticket")? {
                    Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
                    None => 1,
                };
                meta.insert("next_ticket", &key(next + 1))?;
                let id = TicketId(next);
                remember(id)?;
                let mut ticket = Ticket::open(id, m.clone(), now);
                if let Some(route) = &self.router {
                    let (name, first_response) = route(m);
                    ticket.route = name;
                    ticket.respond_by = Some(now + first_response);
                }
                tickets.insert(&key(id.0), enc(&ticket))?;
                enqueue(outbox, id, Effect::PostCards, now)?;
                append_audit(
                    audit,
                    &AuditEntry {
                        ticket: id,
                        at: now,
                        actor: None,
                        what: "mention received".into(),
                        detail: Some(m.url.clone()),
                    },
                )?;
                done.new_tickets.push(id);
            }
            if let Some(c) = cursor {
                cursors.insert(source, c.as_bytes())?;
            }
            Ok(done)
        });
        finish(result)
    }

    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.tickets.get(key(id.0))?.map(|v| dec(&v)).transpose()
    }

    /// Every ticket that is neither resolved nor ignored, oldest first.
    pub fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        let mut out = Vec::new();
        for item in self.tickets.iter() {
            let (_, v) = item?;
            let t: Ticket = dec(&v)?;
            if !t.is_closed() {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub fn ticket_count(&self) -> usize {
        self.tickets.len()
    }

    /// Judge and commit an agent's action atomically: two agents acting at once are
    /// serialised by sled, so exactly one claim wins.
    pub fn act(
        &self,
        id: TicketId,
        decide: impl Fn(&Ticket) -> Result<Transition, Rejection>,
    ) -> Result<ActOutcome, StoreError> {
        let trees = (&self.tickets, &self.outbox, &self.audit);
        let result = trees.transaction(|(tickets, outbox, audit)| {
            let Some(raw) = tickets.get(key(id.0))? else {
                return Err(ConflictableTransactionError::Abort(Abort::Missing(id)));
            };
            let ticket: Ticket = tx_dec(&raw)?;
            let tr = decide(&ticket)
                .map_err(|r| ConflictableTransactionError::Abort(Abort::Rejected(r)))?;
            commit_transition(
                tickets,
                outbox,
                audit,
                &tr,
                ticket.updated_at.max(tr.audit.at),
            )?;
            Ok(tr.ticket)
        });
        match result {
            Ok(t) => Ok(Ok(t)),
            Err(TransactionError::Abort(Abort::Rejected(r))) => Ok(Err(r)),
            Err(e) => finish(Err(e)),
        }
    }

    /// A change the desk itself decides (an SLA step, a claim released at hand-off, an
    /// off-hours acknowledgement), judged on the ticket as stored and committed with its
    /// effects in one transaction. `None` from `decide`: nothing to do, nothing written.
    pub fn transition(
        &self,
        id: TicketId,
        decide: impl Fn(&Ticket) -> Option<Transition>,
    ) -> Result<Option<Ticket>, StoreError> {
        let trees = (&self.tickets, &self.outbox, &self.audit);
        let result = trees.transaction(|(tickets, outbox, audit)| {
            let Some(raw) = tickets.get(key(id.0))? else {
                return Err(ConflictableTransactionError::Abort(Abort::Missing(id)));
            };
            let ticket: Ticket = tx_dec(&raw)?;
            let Some(tr) = decide(&ticket) else {
                return Ok(None);
            };
            commit_transition(tickets, outbox, audit, &tr, tr.audit.at)?;
            Ok(Some(tr.ticket))
        });
        finish(result)
    }

    /// Queue a job that concerns no ticket, together with a piece of desk state (e.g.
    /// the hand-off digest and the instant it covers), in one transaction.
    pub fn queue_desk_job(
        &self,
        effect: Effect,
        state_key: &str,
        state_value: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let trees = (&self.outbox, &self.state);
        let result = trees.transaction(|(outbox, state)| {
            enqueue(outbox, DESK_JOBS, effect.clone(), now)?;
            state.insert(state_key, state_value)?;
            Ok(())
        });
        finish(result)
    }

    /// Pending jobs in the order they were queued.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.pending_jobs().collect()
    }

    /// Pending jobs in queue order, read lazily: the sender stops as soon as its batch is
    /// full instead of decoding a whole backlog every round.
    pub fn pending_jobs(&self) -> impl Iterator<Item = Result<Job, StoreError>> + '_ {
        self.outbox.iter().values().map(|v| dec(&v?))
    }

    pub fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        self.outbox.get(key(id))?.map(|v| dec(&v)).transpose()
    }

    /// Record that sends are about to start (persist before calling out).
    pub fn mark_started(&self, ids: &[u64]) -> Result<(), StoreError> {
        let result = self.outbox.transaction(|outbox| {
            for id in ids {
                if let Some(raw) = outbox.get(key(*id))? {
                    let mut job: Job = tx_dec(&raw)?;
                    job.attempts += 1;
                    outbox.insert(&key(*id), enc(&job))?;
                }
            }
            Ok(())
        });
        finish(result)
    }

    /// A send failed for now: try again no earlier than `not_before`.
    pub fn defer(&self, id: u64, not_before: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
        if let Some(raw) = self.outbox.get(key(id))? {
            let mut job: Job = dec(&raw)?;
            job.not_before = Some(not_before);
            job.last_error = Some(error.to_string());
            self.outbox.insert(key(id), enc(&job))?;
        }
        Ok(())
    }

    /// The outbox gives up on a job: out of the queue, kept with `reason` among the
    /// failed jobs, and written into the ticket's audit trail, in one transaction. The
    /// ticket itself is untouched: its mention stays on the desk.
    pub fn give_up(&self, job: &Job, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let trees = (&self.outbox, &self.failed_jobs, &self.audit);
        let result = trees.transaction(|(outbox, failed, audit)| {
            outbox.remove(&key(job.id))?;
            let mut kept = job.clone();
            kept.last_error = Some(reason.to_string());
            failed.insert(&key(job.id), enc(&kept))?;
            if job.ticket != DESK_JOBS {
                append_audit(
                    audit,
                    &AuditEntry {
                        ticket: job.ticket,
                        at: now,
                        actor: None,
                        what: format!("gave up after {} tries", job.attempts),
                        detail: Some(reason.to_string()),
                    },
                )?;
            }
            Ok(())
        });
        finish(result)
    }

    /// Jobs the outbox gave up on, oldest first.
    /// How many cards each surface lost or refused for good since the store began.
    pub fn cards_lost(&self, surface: SurfaceKind) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(lost_cards_key(surface).as_bytes())?
            .and_then(|raw| raw.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    pub fn failed_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.failed_jobs.iter().values().map(|v| dec(&v?)).collect()
    }

    /// Remember where a ticket's card went on a surface.
    pub fn save_card(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError> {
        let result = (&self.cards, &self.card_index).transaction(|(cards, card_index)| {
            cards.insert(card_key(ticket, card.surface), enc(card))?;
            card_index.insert(
                card_index_key(card.surface, &card.channel, &card.message_id),
                &key(ticket.0),
            )?;
            Ok(())
        });
        finish(result)
    }

    /// A card on `surface` is gone (or could not be posted): forget it, so it is no longer
    /// kept in sync, and queue a note about it for the ticket's other cards.
    pub fn report_lost_card(
        &self,
        ticket: TicketId,
        surface: SurfaceKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let trees = (
            &self.cards,
            &self.card_index,
            &self.outbox,
            &self.audit,
            &self.meta,
        );
        let result = trees.transaction(|(cards, card_index, outbox, audit, meta)| {
            if let Some(raw) = cards.remove(card_key(ticket, surface))? {
                let card: CardRef = tx_dec(&raw)?;
                card_index.remove(card_index_key(surface, &card.channel, &card.message_id))?;
            }
            // Counted for `/metrics`, in the same transaction as the loss itself.
            let counter = lost_cards_key(surface);
            let lost = meta
                .get(counter.as_bytes())?
                .and_then(|raw| raw.as_ref().try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            meta.insert(counter.as_bytes(), &key(lost + 1))?;
            let note = Note::CardLost {
                surface,
                reason: reason.to_string(),
            };
            enqueue(outbox, ticket, Effect::ThreadNote(note), now)?;
            append_audit(
                audit,
                &AuditEntry {
                    ticket,
                    at: now,
                    actor: None,
                    what: format!("{} card lost", surface.label()),
                    detail: Some(reason.to_string()),
                },
            )?;
            Ok(())
        });
        finish(result)
    }

    /// A job is done: remove it and fold what the outside world reported into the ticket
    /// (queuing any follow-up effects), in one transaction.
    pub fn complete(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.complete_with(job, event, &[], now)
    }

    /// `complete`, also queuing `more` effects for the ticket in the same transaction.
    pub fn complete_with(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        more: &[Effect],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let trees = (&self.tickets, &self.outbox, &self.audit, &self.dedupe);
        let result = trees.transaction(|(tickets, outbox, audit, dedupe)| {
            outbox.remove(&key(job.id))?;
            for effect in more {
                enqueue(outbox, job.ticket, effect.clone(), now)?;
            }
            if let Some(ev) = &event {
                let Some(raw) = tickets.get(key(job.ticket.0))? else {
                    return Err(ConflictableTransactionError::Abort(Abort::Missing(
                        job.ticket,
                    )));
                };
                let ticket: Ticket = tx_dec(&raw)?;
                // Our published reply is part of the conversation: an answer to it is a
                // follow-up on this ticket.
                if let SystemEvent::ReplyPublished { remote_id, .. } = ev {
                    let mut ours = ticket.mention.clone();
                    ours.remote_id = remote_id.clone();
                    let keys = std::iter::once(ours.dedupe_key())
                        .chain(ticket.mention.post_key_of(remote_id));
                    for k in keys {
                        dedupe.insert(k.as_bytes(), &key(ticket.id.0))?;
                    }
                }
                let tr = apply_system(&ticket, ev.clone(), now);
                commit_transition(tickets, outbox, audit, &tr, now)?;
            }
            Ok(())
        });
        finish(result)
    }

    pub fn cards(&self, ticket: TicketId) -> Result<Vec<CardRef>, StoreError> {
        self.cards
            .scan_prefix(key(ticket.0))
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    /// The ticket whose card is this message, if any.
    pub fn ticket_by_card(
        &self,
        surface: SurfaceKind,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>, StoreError> {
        Ok(self
            .card_index
            .get(card_index_key(surface, channel, message_id))?
            .map(|v| TicketId(u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))))
    }

    /// Append a line to the audit log outside any transition (e.g. an internal note).
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        let mut k = key(entry.ticket.0).to_vec();
        k.extend_from_slice(&key(id));
        self.audit.insert(k, enc(entry))?;
        Ok(())
    }

    /// The audit trail of one ticket, oldest first.
    pub fn audit_of(&self, ticket: TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit
            .scan_prefix(key(ticket.0))
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    /// Every ticket, whatever its stage, in ticket number order (for stats and exports).
    pub fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.tickets.iter().values().map(|v| dec(&v?)).collect()
    }

    /// The whole audit log in key order: by ticket, then oldest first.
    pub fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit.iter().values().map(|v| dec(&v?)).collect()
    }
}

/// The ticket whose conversation `m` continues: it answers a post we know (the first
/// mention, a follow-up, or one of our replies) and comes from the same author.
fn conversation_of(
    tickets: &TransactionalTree,
    dedupe: &TransactionalTree,
    m: &Mention,
) -> TxResult<Option<TicketId>> {
    let Some(parent) = &m.in_reply_to else {
        return Ok(None);
    };
    let mut parent_key = m.clone();
    parent_key.remote_id = parent.clone();
    // The source's own key first; then, where a post id is global (X, Bluesky), the
    // post's key, so an answer brought by another path (a webhook) still finds it.
    let mut found = dedupe.get(parent_key.dedupe_key().as_bytes())?;
    if found.is_none() {
        if let Some(k) = m.post_key_of(parent) {
            found = dedupe.get(k.as_bytes())?;
        }
    }
    let Some(raw) = found else {
        return Ok(None);
    };
    let id = TicketId(u64::from_be_bytes(
        raw.as_ref().try_into().unwrap_or([0; 8]),
    ));
    let Some(raw) = tickets.get(key(id.0))? else {
        return Ok(None);
    };
    let ticket: Ticket = tx_dec(&raw)?;
    Ok((ticket.mention.author.handle == m.author.handle).then_some(id))
}

fn lost_cards_key(surface: SurfaceKind) -> String {
    format!("cards_lost:{}", surface.label())
}

fn enqueue(
    outbox: &TransactionalTree,
    ticket: TicketId,
    effect: Effect,
    now: DateTime<Utc>,
) -> Result<(), UnabortableTransactionError> {
    let id = outbox.generate_id()?;
    let job = Job {
        id,
        ticket,
        effect,
        attempts: 0,
        not_before: None,
        created_at: now,
        last_error: None,
    };
    outbox.insert(&key(id), enc(&job))?;
    Ok(())
}

fn append_audit(
    audit: &TransactionalTree,
    entry: &AuditEntry,
) -> Result<(), UnabortableTransactionError> {
    // Audit keys: ticket id then a unique id, so one ticket's trail is a prefix scan.
    let mut k = key(entry.ticket.0).to_vec();
    k.extend_from_slice(&key(audit.generate_id()?));
    audit.insert(k, enc(entry))?;
    Ok(())
}

fn commit_transition(
    tickets: &TransactionalTree,
    outbox: &TransactionalTree,
    audit: &TransactionalTree,
    tr: &Transition,
    now: DateTime<Utc>,
) -> TxResult<()> {
    tickets.insert(&key(tr.ticket.id.0), enc(&tr.ticket))?;
    for effect in &tr.effects {
        enqueue(outbox, tr.ticket.id, effect.clone(), now)?;
    }
    append_audit(audit, &tr.audit)?;
    Ok(())
}

fn finish<T>(result: Result<T, TransactionError<Abort>>) -> Result<T, StoreError> {
    match result {
        Ok(v) => Ok(v),
        Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
        Err(TransactionError::Abort(Abort::Missing(id))) => Err(StoreError::NoSuchTicket(id)),
        Err(TransactionError::Abort(Abort::Corrupt(e))) => Err(StoreError::Corrupt(e)),
        Err(TransactionError::Abort(Abort::Rejected(r))) => {
            unreachable!("rejections are handled by act(): {r}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    fn mention(id: &str) -> Mention {
        Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: id.into(),
            url: format!("https://m.example/@alice/{id}"),
            author: Author {
                handle: "alice".into(),
                name: "Alice".into(),
                profile_url: "https://m.example/@alice".into(),
                id: None,
            },
            text: "help".into(),
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

    fn desk_of(ids: &[&str]) -> Desk {
        let mut desk = Desk::new().with_rules(
            Platform::Mastodon,
            crate::domain::text::TextRules::default(),
        );
        desk.roster_mut(SurfaceKind::Slack).user_ids = ids.iter().map(|s| s.to_string()).collect();
        desk
    }

    #[test]
    fn ingest_numbers_tickets_skips_duplicates_and_moves_the_cursor_atomically() {
        let store = Store::temporary().unwrap();
        let ids = store
            .ingest("src", &[mention("a"), mention("b")], Some("n2"), now())
            .unwrap();
        assert_eq!(ids.new_tickets, vec![TicketId(1), TicketId(2)]);
        let again = store
            .ingest("src", &[mention("b"), mention("c")], Some("n3"), now())
            .unwrap();
        assert_eq!(
            again.new_tickets,
            vec![TicketId(3)],
            "b was already a ticket"
        );
        assert_eq!(again.duplicates, 1);
        assert_eq!(store.cursor("src").unwrap().as_deref(), Some("n3"));
        let jobs = store.jobs().unwrap();
        assert_eq!(jobs.len(), 3);
        assert!(jobs
            .iter()
            .all(|j| j.effect == Effect::PostCards && j.attempts == 0));
        assert_eq!(
            store.audit_of(TicketId(3)).unwrap()[0].what,
            "mention received"
        );
    }

    #[test]
    fn concurrent_claims_have_exactly_one_winner() {
        let store = Store::temporary().unwrap();
        store.ingest("src", &[mention("a")], None, now()).unwrap();
        let ids: Vec<String> = (0..8).map(|i| format!("U{i}")).collect();
        let desk = desk_of(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (store, desk, barrier) = (store.clone(), desk.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store
                        .act(TicketId(1), |t| {
                            apply(
                                t,
                                AgentAction::Claim,
                                &agent(&format!("U{i}")),
                                &desk,
                                now(),
                            )
                        })
                        .unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
        assert_eq!(winners.len(), 1);
        let holder = store
            .ticket(TicketId(1))
            .unwrap()
            .unwrap()
            .holder
            .unwrap()
            .agent;
        for o in &outcomes {
            if let Err(r) = o {
                assert_eq!(
                    r,
                    &Rejection::AlreadyClaimed {
                        by: holder.clone(),
                        minutes: 0
                    }
                );
            }
        }
        // One claim: one card update and one thread note queued besides the card post.
        assert_eq!(store.jobs().unwrap().len(), 3);
    }

    #[test]
    fn a_rejection_writes_nothing() {
        let store = Store::temporary().unwrap();
        store.ingest("src", &[mention("a")], None, now()).unwrap();
        let before = (
            store.ticket(TicketId(1)).unwrap(),
            store.jobs().unwrap().len(),
        );
        let outcome = store
            .act(TicketId(1), |t| {
                apply(
                    t,
                    AgentAction::Claim,
                    &agent("EVE"),
                    &Desk::default(),
                    now(),
                )
            })
            .unwrap();
        assert_eq!(outcome, Err(Rejection::NotAnAgent));
        assert_eq!(
            (
                store.ticket(TicketId(1)).unwrap(),
                store.jobs().unwrap().len()
            ),
            before
        );
        assert!(matches!(
            store.act(TicketId(9), |t| apply(
                t,
                AgentAction::Claim,
                &agent("U1"),
                &Desk::default(),
                now()
            )),
            Err(StoreError::NoSuchTicket(TicketId(9)))
        ));
    }

    #[test]
    fn completing_a_publish_records_the_outcome_once_and_queues_follow_ups() {
        let store = Store::temporary().unwrap();
        store.ingest("src", &[mention("a")], None, now()).unwrap();
        let desk = desk_of(&["U1"]);
        store
            .act(TicketId(1), |t| {
                apply(
                    t,
                    AgentAction::Reply { text: "hi".into() },
                    &agent("U1"),
                    &desk,
                    now(),
                )
            })
            .unwrap()
            .unwrap();
        let publish = store
            .jobs()
            .unwrap()
            .into_iter()
            .find(|j| matches!(j.effect, Effect::PublishReply { .. }))
            .unwrap();
        store.mark_started(&[publish.id]).unwrap();
        assert_eq!(store.job(publish.id).unwrap().unwrap().attempts, 1);
        let ev = SystemEvent::ReplyPublished {
            seq: 1,
            remote_id: "99".into(),
            url: "https://m.example/@brand/99".into(),
        };
        store.complete(&publish, Some(ev), now()).unwrap();
        assert!(store.job(publish.id).unwrap().is_none());
        let t = store.ticket(TicketId(1)).unwrap().unwrap();
        assert_eq!(t.stage, Stage::Replied);
        let notes = store
            .jobs()
            .unwrap()
            .into_iter()
            .filter(|j| matches!(j.effect, Effect::ThreadNote(Note::ReplyPublished { .. })))
            .count();
        assert_eq!(notes, 1);
    }

    #[tokio::test]
    async fn an_inbound_event_is_new_once_within_the_retention_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sled");
        {
            let store = Store::open(&path).unwrap();
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
        let store = Store::open(&path).unwrap();
        let later = now() + chrono::Duration::hours(1);
        assert!(
            !store
                .first_delivery("slack-event", "Ev1", later)
                .await
                .unwrap(),
            "remembered across a restart"
        );
        // Past the retention it is forgotten (and pruned), so the tree stays small.
        let much_later = now() + SEEN_EVENTS_FOR + chrono::Duration::minutes(1);
        assert!(store
            .first_delivery("slack-event", "Ev2", much_later)
            .await
            .unwrap());
        assert_eq!(store.seen_event_count(), 1, "Ev1 of both sources pruned");
        assert!(store
            .first_delivery("slack-event", "Ev1", much_later)
            .await
            .unwrap());
    }

    #[test]
    fn the_same_post_from_a_poller_and_a_webhook_is_one_ticket() {
        let store = Store::temporary().unwrap();
        let polled = mention("1234");
        store
            .ingest("mastodon", std::slice::from_ref(&polled), None, now())
            .unwrap();
        let mut pushed = polled.clone();
        pushed.platform = Platform::Other;
        pushed.network = Some("Mastodon".into());
        pushed.account = "webhook:bw".into();
        pushed.remote_id = "bw-1".into();
        pushed.external_id = Some("bw-1".into());
        let done = store
            .ingest("webhook", &[pushed.clone()], None, now())
            .unwrap();
        assert_eq!(done.duplicates, 1);
        // A different post by the same author is its own ticket.
        let mut other = pushed;
        other.url = "https://m.example/@alice/1235".into();
        other.external_id = Some("bw-2".into());
        other.remote_id = "bw-2".into();
        let done = store.ingest("webhook", &[other], None, now()).unwrap();
        assert_eq!(done.new_tickets, vec![TicketId(2)]);
    }
}
