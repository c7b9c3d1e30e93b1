//! The store on sled, for one machine. Every multi-key change happens in one sled
//! transaction; `flush` makes everything written so far durable. Sled is synchronous: the
//! port's async methods run its calls in place (they take microseconds), and only the
//! flush waits on the disk asynchronously.

mod flusher;
mod index;

use crate::domain::incident::{self, Incident};
use crate::domain::intake::{self, Known};
use crate::domain::priority::author_key;
use crate::domain::privacy;
use crate::domain::routes::Routes;
use crate::domain::Lane;
use crate::domain::{
    apply_system, AuditEntry, CardRef, Effect, IncidentId, Mention, Note, Rejection, SurfaceKind,
    SystemEvent, Ticket, TicketId, Transition,
};
use crate::ports::tally;
use crate::ports::{
    count_of, ActOutcome, AuditPos, Claimed, Decide, Delivery, Due, Fence, IncidentDecide,
    Ingested, Job, Judge, Lease, LeaseState, Mark, SharedStore, Slots, Store, StoreError,
    DESK_JOBS, SEEN_EVENTS_FOR,
};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

#[derive(Clone)]
pub struct SledStore {
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
    /// The ticket indexes and counters (see [`index`]).
    index: sled::Tree,
    /// Incidents by number, and their members (incident ‖ ticket → nothing).
    incidents: sled::Tree,
    incident_members: sled::Tree,
    /// Agents' notes about a person: author key ‖ 0 ‖ note number → the note.
    person_notes: sled::Tree,
    /// The routes intake stamps new tickets with, and next-due instants follow.
    routes: Arc<Routes>,
    /// Whether the next-due index was compared with `routes` yet (see `due_tickets`).
    routes_checked: Arc<AtomicBool>,
    /// One flush at a time, shared by every handle (see [`flusher`]).
    flusher: Arc<flusher::Flusher>,
    /// Live outbox claims (job id → claimant, until when). Sled is one process, so
    /// claims and leases live in memory: a restart starts with none, as it should.
    claims: Arc<Mutex<Claims>>,
    leases: Arc<Mutex<BTreeMap<String, LeaseState>>>,
    /// Set on a fenced handle: its writes go under this lease.
    fence: Option<Arc<Fence>>,
}

/// Live outbox claims: job id → claimant, until when.
type Claims = HashMap<u64, (String, DateTime<Utc>)>;

/// Expired event ids removed per sighting, so pruning never stalls an inbound event.
const PRUNE_PER_SIGHTING: usize = 64;

const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Meta keys: the version of the ticket indexes built (absent: a store made before them),
/// the routes' fingerprint the next-due index was computed under, and where its
/// recomputation stands after the routes changed (the next open ticket number).
const INDEX_VERSION: &str = "index_version";

/// The version of the indexes this binary builds and keeps: 4 adds each ticket's priority
/// and language to its facts (for the numbers by priority and language); 3 keeps what the open list
/// sorts by in the open tickets' entries and each author's latest tickets; 2 kept each
/// ticket's facts in the index by the instant received (1 kept nothing there). A store
/// with another version builds them again when opened.
const INDEX_BUILT: &[u8] = b"4";
const ROUTES_FINGERPRINT: &str = "routes_fingerprint";
const DUE_RECHECK: &str = "due_recheck";

/// Tickets decoded and indexed per batch while the indexes are built.
const BUILD_CHUNK: usize = 10_000;

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Where a person's notes start in `person_notes`: their author key and a 0 byte (no key
/// holds one), so one person's prefix never covers another's.
fn person_prefix(author_key: &str) -> Vec<u8> {
    let mut k = author_key.as_bytes().to_vec();
    k.push(0);
    k
}

fn id_of(raw: &[u8]) -> u64 {
    u64::from_be_bytes(raw.try_into().unwrap_or([0; 8]))
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
    MissingIncident(IncidentId),
    Corrupt(serde_json::Error),
}

fn tx_dec<T: DeserializeOwned>(bytes: &[u8]) -> TxResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ConflictableTransactionError::Abort(Abort::Corrupt(e)))
}

fn card_index_key(surface: SurfaceKind, channel: &str, message_id: &str) -> Vec<u8> {
    format!("{surface:?}\u{0}{channel}\u{0}{message_id}").into_bytes()
}

fn member_key(incident: IncidentId, ticket: TicketId) -> Vec<u8> {
    [key(incident.0), key(ticket.0)].concat()
}

const NEXT_INCIDENT: &str = "next_incident";

fn card_key(ticket: TicketId, surface: SurfaceKind) -> Vec<u8> {
    let mut k = key(ticket.0).to_vec();
    k.extend_from_slice(format!("{surface:?}").as_bytes());
    k
}

/// Open the sled database in `path` as the store keeps it. A handle this process just
/// let go of (a store dropped while its last flush winds down) holds the directory's lock
/// for a moment: that is waited for, briefly; a lock held by another process outlasts the
/// wait and is returned as sled's error.
pub fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let opened = sled::Config::new()
            .path(path)
            // sled's default page cache is 1 GiB; the desk's working set is far smaller.
            .cache_capacity(CACHE_BYTES)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Rewrite the sled store at `path` into fresh files, so nothing overwritten or removed
/// (an erased person's text, say) lingers in the old log segments, where sled keeps
/// superseded records until it happens to clean them. Every tree is copied, and the id
/// generator (audit line and job numbers) continues above where it was. The store must
/// not be open anywhere; `path` is replaced only once the copy is flushed.
pub fn compact(path: &Path) -> Result<(), StoreError> {
    let opened = |p: &Path| {
        open_db(p).map_err(|source| StoreError::Open {
            path: p.display().to_string(),
            source: Box::new(source),
        })
    };
    let fresh_path = path.with_extension("compacting");
    let old_path = path.with_extension("superseded");
    for p in [&fresh_path, &old_path] {
        if p.exists() {
            std::fs::remove_dir_all(p).map_err(|e| StoreError::Backend(Box::new(e)))?;
        }
    }
    {
        let old = opened(path)?;
        let next_id = old.generate_id()?;
        let fresh = opened(&fresh_path)?;
        fresh.import(old.export());
        while fresh.generate_id()? < next_id {}
        fresh.flush()?;
    }
    let io = |e: std::io::Error| StoreError::Backend(Box::new(e));
    std::fs::rename(path, &old_path).map_err(io)?;
    std::fs::rename(&fresh_path, path).map_err(io)?;
    std::fs::remove_dir_all(&old_path).map_err(io)?;
    Ok(())
}

impl SledStore {
    /// The store at `path`; sled takes a lock on it, so a second process fails here.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = open_db(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        Self::with_db(db)
    }

    /// A throwaway store for tests and benchmarks.
    pub fn temporary() -> Result<SledStore, StoreError> {
        Self::with_db(
            sled::Config::new()
                .temporary(true)
                .cache_capacity(CACHE_BYTES)
                .open()?,
        )
    }

    fn with_db(db: sled::Db) -> Result<SledStore, StoreError> {
        SledStore {
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
            index: db.open_tree(index::TREE)?,
            incidents: db.open_tree("incidents")?,
            incident_members: db.open_tree("incident_members")?,
            person_notes: db.open_tree("person_notes")?,
            routes: Arc::new(Routes::default()),
            routes_checked: Arc::default(),
            flusher: Arc::default(),
            claims: Arc::default(),
            leases: Arc::default(),
            fence: None,
            db,
        }
        .with_index()
    }

    /// Build the ticket indexes if this store was made before they existed, or before
    /// this version of them (or a build was cut short): from scratch, in batches, then marked done. A store made with
    /// them returns at once.
    fn with_index(self) -> Result<SledStore, StoreError> {
        if self.meta.get(INDEX_VERSION)?.as_deref() == Some(INDEX_BUILT) {
            return Ok(self);
        }
        let began = std::time::Instant::now();
        self.index.clear()?;
        let mut counts = BTreeMap::new();
        let mut entries = BTreeMap::new();
        let mut chunk: Vec<Ticket> = Vec::with_capacity(BUILD_CHUNK);
        let mut indexed = 0;
        let mut items = self.tickets.iter().values();
        loop {
            let item = items.next().transpose()?;
            if let Some(raw) = &item {
                chunk.push(dec(raw)?);
            }
            if chunk.len() == BUILD_CHUNK || (item.is_none() && !chunk.is_empty()) {
                let mut authors = BTreeMap::new();
                index::entries_of(
                    chunk.iter(),
                    &self.routes,
                    &mut entries,
                    &mut counts,
                    &mut authors,
                );
                let mut batch = sled::Batch::default();
                for (k, v) in std::mem::take(&mut entries) {
                    batch.insert(k, v);
                }
                for (k, v) in index::author_values(&self.index, authors)? {
                    batch.insert(k, v);
                }
                self.index.apply_batch(batch)?;
                indexed += chunk.len();
                chunk.clear();
            }
            if item.is_none() {
                break;
            }
        }
        let mut batch = sled::Batch::default();
        for (k, v) in index::count_values(counts) {
            batch.insert(k, &v);
        }
        self.index.apply_batch(batch)?;
        self.meta.insert(
            ROUTES_FINGERPRINT,
            self.routes.policy_fingerprint().as_bytes(),
        )?;
        self.meta.insert(INDEX_VERSION, INDEX_BUILT)?;
        self.db.flush()?;
        if indexed > 0 {
            tracing::info!(
                tickets = indexed,
                seconds = began.elapsed().as_secs_f64(),
                "ticket indexes built for a store made before them"
            );
        }
        Ok(self)
    }

    /// Stamp each new ticket with its route and first-response deadline from `routes`
    /// (without: the default route's).
    pub fn with_routes(mut self, routes: Routes) -> SledStore {
        self.routes = Arc::new(routes);
        self
    }

    /// Everything this store holds, read in one pass (stop the bot first: the copy is
    /// of a store nobody writes to).
    pub fn snapshot(&self) -> Result<super::snapshot::Snapshot, StoreError> {
        use super::snapshot::Snapshot;
        let text = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
        let mut snap = Snapshot {
            next_ticket: self
                .meta
                .get("next_ticket")?
                .map(|v| id_of(&v))
                .unwrap_or(1),
            ..Snapshot::default()
        };
        for item in self.tickets.iter().values() {
            snap.tickets.push(dec(&item?)?);
        }
        for item in self.incidents.iter().values() {
            snap.incidents.push(dec(&item?)?);
        }
        snap.next_incident = self
            .meta
            .get(NEXT_INCIDENT)?
            .map(|v| id_of(&v))
            .unwrap_or(1);
        for item in self.dedupe.iter() {
            let (k, v) = item?;
            snap.dedupe.push((text(&k), TicketId(id_of(&v))));
        }
        for item in self.cursors.iter() {
            let (k, v) = item?;
            snap.cursors.push((text(&k), text(&v)));
        }
        for item in self.cards.iter() {
            let (k, v) = item?;
            let card: CardRef = dec(&v)?;
            snap.cards
                .push((TicketId(id_of(&k[..8.min(k.len())])), card));
        }
        for item in self.outbox.iter().values() {
            snap.jobs.push(dec(&item?)?);
        }
        for item in self.failed_jobs.iter().values() {
            snap.failed_jobs.push(dec(&item?)?);
        }
        for item in self.audit.iter().values() {
            snap.audit.push(dec(&item?)?);
        }
        for item in self.state.iter() {
            let (k, v) = item?;
            snap.state.push((text(&k), v.to_vec()));
        }
        for item in self.seen.iter() {
            let (k, v) = item?;
            let ms = i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]));
            let key = text(&k);
            let (source, id) = key.split_once('\u{0}').unwrap_or(("", key.as_str()));
            if let Some(at) = DateTime::<Utc>::from_timestamp_millis(ms) {
                snap.seen_events
                    .push((source.to_string(), id.to_string(), at));
            }
        }
        for surface in [SurfaceKind::Slack, SurfaceKind::Discord] {
            let lost = self
                .meta
                .get(lost_cards_key(surface).as_bytes())?
                .and_then(|raw| raw.as_ref().try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if lost > 0 {
                snap.cards_lost.push((surface, lost));
            }
        }
        Ok(snap)
    }

    /// On a fenced handle, refuse a write unless its lease is still the duty's grant.
    fn check_fence(&self) -> Result<(), StoreError> {
        self.fence_holds(self.fence.as_ref())
    }

    /// Whether a write under `fence` (none: unfenced) may go ahead.
    fn fence_holds(&self, fence: Option<&Arc<Fence>>) -> Result<(), StoreError> {
        let Some(fence) = fence else {
            return Ok(());
        };
        let lease = fence.lease()?;
        let leases = self.leases.lock().expect("lease lock");
        match leases.get(&lease.duty) {
            Some(l) if l.holder == lease.holder && l.token == lease.token => Ok(()),
            _ => Err(StoreError::Fenced { duty: lease.duty }),
        }
    }

    /// The stored attempt count of job `id`, if it is still queued.
    fn stored_attempts(&self, id: u64) -> Result<Option<u32>, StoreError> {
        self.outbox
            .get(key(id))?
            .map(|raw| dec::<Job>(&raw).map(|j| j.attempts))
            .transpose()
    }

    /// Another sender claimed `job` since this one did.
    fn claimed_since(&self, job: &Job) -> Result<bool, StoreError> {
        Ok(self
            .stored_attempts(job.id)?
            .is_some_and(|stored| stored > job.attempts))
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

    /// Judge a ticket as stored and commit the transition `decide` returns (with the
    /// instant its jobs are queued at), in one transaction; `None`: nothing written.
    fn judge_and_commit(
        &self,
        id: TicketId,
        decide: impl Fn(&Ticket) -> TxResult<Option<(Transition, DateTime<Utc>)>>,
    ) -> Result<Option<Ticket>, TransactionError<Abort>> {
        let trees = (&self.tickets, &self.outbox, &self.audit, &self.index);
        trees.transaction(|(tickets, outbox, audit, index)| {
            let Some(raw) = tickets.get(key(id.0))? else {
                return Err(ConflictableTransactionError::Abort(Abort::Missing(id)));
            };
            let ticket: Ticket = tx_dec(&raw)?;
            let Some((tr, now)) = decide(&ticket)? else {
                return Ok(None);
            };
            let ticket_trees = TicketTrees {
                tickets,
                index,
                routes: &self.routes,
            };
            commit_transition(&ticket_trees, outbox, audit, &tr, now)?;
            Ok(Some(tr.ticket))
        })
    }

    /// The next-due index is compared with this handle's routes once: if it was computed
    /// under other policies, its recomputation starts (see `due_tickets`).
    fn check_routes(&self) -> Result<(), StoreError> {
        if self.routes_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let fingerprint = self.routes.policy_fingerprint();
        if self.meta.get(ROUTES_FINGERPRINT)?.as_deref() != Some(fingerprint.as_bytes()) {
            let result = self.meta.transaction(|meta| {
                meta.insert(ROUTES_FINGERPRINT, fingerprint.as_bytes())?;
                meta.insert(DUE_RECHECK, &key(0))?;
                Ok(())
            });
            finish(result)?;
            tracing::info!("the routes' SLA policies changed: every open ticket's next check is computed again, a round at a time");
        }
        self.routes_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// After a change of routes: the next-due instants of the next `limit` open
    /// tickets computed again, in one transaction. `true`: more remain.
    fn recheck_due(&self, limit: usize) -> Result<bool, StoreError> {
        let Some(from) = self.meta.get(DUE_RECHECK)?.map(|v| id_of(&v)) else {
            return Ok(false);
        };
        let ids = index::Reader(&self.index).open_numbers(&[(from, u64::MAX)], limit)?;
        let more = ids.len() >= limit;
        let trees = (&self.tickets, &self.index, &self.meta);
        let result = trees.transaction(|(tickets, idx, meta)| {
            for id in &ids {
                if let Some(raw) = tickets.get(key(*id))? {
                    let ticket: Ticket = tx_dec(&raw)?;
                    index::set_due(idx, &ticket, &self.routes)?;
                }
            }
            match ids.last().filter(|_| more) {
                Some(last) => meta.insert(DUE_RECHECK, &key(last + 1))?,
                None => meta.remove(DUE_RECHECK)?,
            };
            Ok(())
        });
        finish(result)?;
        Ok(more)
    }

    fn tickets_by_id(&self, ids: &[u64]) -> Result<Vec<Ticket>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(raw) = self.tickets.get(key(*id))? {
                out.push(dec(&raw)?);
            }
        }
        Ok(out)
    }

    /// The desk's hash key, if one was made (see `ports::hash_key`).
    fn hash_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .get(privacy::HASH_KEY_STATE)?
            .and_then(|raw| privacy::hash_key_of(&raw)))
    }

    fn counter(&self, name: &str) -> Result<usize, StoreError> {
        let n = index::Reader(&self.index).counter(name)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn flush(&self) -> Result<(), StoreError> {
        self.flusher.flush(&self.db).await
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .cursors
            .get(source)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    async fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.get(key)?.map(|v| v.to_vec()))
    }

    async fn set_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check_fence()?;
        self.state.insert(key, value)?;
        Ok(())
    }

    async fn count_up(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        self.check_fence()?;
        let updated = self.state.update_and_fetch(key, |old| {
            Some(count_of(old).saturating_add(by).to_string().into_bytes())
        })?;
        Ok(count_of(updated.as_deref()))
    }

    async fn first_delivery(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.check_fence()?;
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

    async fn seen_event_count(&self) -> Result<usize, StoreError> {
        Ok(self.seen.len())
    }

    async fn ingest_many(
        &self,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Slots, StoreError> {
        // Leases live in this process: each delivery's is judged once, up front.
        let mut refused: Vec<Option<StoreError>> = deliveries
            .iter()
            .map(|d| {
                self.fence_holds(d.fence.as_ref().or(self.fence.as_ref()))
                    .err()
            })
            .collect();
        // Made once and never changed: read outside the transaction.
        let hash_key = self.hash_key()?;
        let trees = (
            &self.tickets,
            &self.dedupe,
            &self.cursors,
            &self.outbox,
            &self.audit,
            &self.meta,
            &self.index,
        );
        let result = trees.transaction(|(tickets, dedupe, cursors, outbox, audit, meta, index)| {
            let known = KnownKeys {
                dedupe,
                hash_key: hash_key.as_deref(),
            };
            let ticket_trees = TicketTrees {
                tickets,
                index,
                routes: &self.routes,
            };
            let first = match meta.get("next_ticket")? {
                Some(v) => id_of(&v),
                None => 1,
            };
            let mut next = first;
            let mut slots = Vec::with_capacity(deliveries.len());
            for (d, refused) in deliveries.iter().zip(&refused) {
                if refused.is_some() {
                    slots.push(Ingested::default());
                    continue;
                }
                let mut done = Ingested::default();
                for m in &d.mentions {
                    let keys = m.dedupe_keys();
                    let seen = known.ticket_of(&keys)?.is_some();
                    let parent = if seen {
                        None
                    } else {
                        parent_of(tickets, &known, m)?
                    };
                    let contacts = if seen {
                        Vec::new()
                    } else {
                        index::contacts(index, &author_key(m))?
                    };
                    let known = Known {
                        seen,
                        parent: parent.as_ref(),
                        contacts: &contacts,
                    };
                    let decided = intake::admit(m, known, TicketId(next), &self.routes, now);
                    if done.record(&decided) {
                        next += 1;
                    }
                    let hold = match &decided {
                        intake::Intake::Opened(tr) => {
                            intake::cards_not_before(&self.routes, &tr.ticket)
                        }
                        _ => None,
                    };
                    if let Some(tr) = decided.transition() {
                        commit_transition_held(&ticket_trees, outbox, audit, tr, now, hold)?;
                        for k in &keys {
                            dedupe.insert(k.as_bytes(), &key(tr.ticket.id.0))?;
                        }
                    }
                }
                if let Some(c) = &d.cursor {
                    cursors.insert(d.source.as_bytes(), c.as_bytes())?;
                }
                slots.push(done);
            }
            if next != first {
                meta.insert("next_ticket", &key(next))?;
            }
            Ok(slots)
        });
        let slots = finish(result)?;
        Ok(slots
            .into_iter()
            .zip(refused.iter_mut())
            .map(|(done, refused)| match refused.take() {
                Some(e) => Err(e),
                None => Ok(done),
            })
            .collect())
    }

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.tickets.get(key(id.0))?.map(|v| dec(&v)).transpose()
    }

    // -- customer history (issue 14) --
    async fn author_contacts(
        &self,
        author_key: &str,
        limit: usize,
    ) -> Result<Vec<crate::domain::priority::Contact>, StoreError> {
        Ok(index::Reader(&self.index).contacts(author_key, limit)?)
    }

    async fn add_person_note(
        &self,
        author_key: &str,
        note: &crate::domain::customer::PersonNote,
    ) -> Result<(), StoreError> {
        self.check_fence()?;
        let mut k = person_prefix(author_key);
        k.extend_from_slice(&key(self.db.generate_id()?));
        self.person_notes.insert(k, enc(note))?;
        Ok(())
    }

    async fn person_notes(
        &self,
        author_key: &str,
    ) -> Result<Vec<crate::domain::customer::PersonNote>, StoreError> {
        self.person_notes
            .scan_prefix(person_prefix(author_key))
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    async fn forget_person_notes(&self, author_key: &str) -> Result<u64, StoreError> {
        self.check_fence()?;
        let mut gone = 0;
        for k in self
            .person_notes
            .scan_prefix(person_prefix(author_key))
            .keys()
        {
            self.person_notes.remove(k?)?;
            gone += 1;
        }
        Ok(gone)
    }

    async fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.open_tickets_numbered("", usize::MAX).await
    }

    async fn rewrite_ticket(&self, rw: &privacy::Rewrite) -> Result<(), StoreError> {
        self.check_fence()?;
        let id = rw.ticket.id;
        // Sled transactions cannot scan: the trail is read first, each line rewritten in
        // the transaction only if it is still as read.
        let lines: Vec<(sled::IVec, sled::IVec)> = self
            .audit
            .scan_prefix(key(id.0))
            .collect::<Result<_, _>>()?;
        let trees = (&self.tickets, &self.index, &self.audit, &self.dedupe);
        let result = trees.transaction(|(tickets, index, audit, dedupe)| {
            if tickets.get(key(id.0))?.is_none() {
                return Err(ConflictableTransactionError::Abort(Abort::Missing(id)));
            }
            let ticket_trees = TicketTrees {
                tickets,
                index,
                routes: &self.routes,
            };
            write_ticket(&ticket_trees, &rw.ticket)?;
            for (k, v) in &lines {
                let entry: AuditEntry = tx_dec(v)?;
                let red = privacy::redact_audit(&entry, &rw.redact);
                if red != entry && audit.get(k)?.as_ref() == Some(v) {
                    audit.insert(k, enc(&red))?;
                }
            }
            for (plain, hashed) in &rw.rekey {
                let named = dedupe.get(plain.as_bytes())?.map(|raw| id_of(&raw));
                if named.is_none_or(|t| t == id.0) {
                    dedupe.remove(plain.as_bytes())?;
                    dedupe.insert(hashed.as_bytes(), &key(id.0))?;
                }
            }
            Ok(())
        });
        finish(result)
    }

    async fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.tickets.iter().values().map(|v| dec(&v?)).collect()
    }

    async fn tickets_after(
        &self,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let start = match after {
            Some(id) => Bound::Excluded(key(id.0)),
            None => Bound::Unbounded,
        };
        self.tickets
            .range::<[u8; 8], _>((start, Bound::Unbounded))
            .values()
            .take(limit)
            .map(|v| dec(&v?))
            .collect()
    }

    async fn ticket_count(&self) -> Result<usize, StoreError> {
        self.counter(tally::TICKETS)
    }

    async fn open_tickets_numbered(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let ids = index::Reader(&self.index).open_numbers(&tally::number_ranges(prefix), limit)?;
        self.tickets_by_id(&ids)
    }

    async fn open_ticket_count(&self) -> Result<usize, StoreError> {
        self.counter(tally::OPEN)
    }

    async fn open_priorities(&self) -> Result<Vec<crate::ports::OpenPriority>, StoreError> {
        Ok(index::Reader(&self.index).open_priorities()?)
    }

    async fn open_list_heads(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::ports::OpenPriority>, StoreError> {
        Ok(index::Reader(&self.index).open_heads(limit)?)
    }

    async fn due_tickets(&self, until: DateTime<Utc>, limit: usize) -> Result<Due, StoreError> {
        self.check_fence()?;
        self.check_routes()?;
        let rechecking = self.recheck_due(limit)?;
        let (ids, next) = index::Reader(&self.index).due(tally::nanos(until), limit)?;
        let next = next.map(DateTime::<Utc>::from_timestamp_nanos);
        Ok(Due {
            tickets: self.tickets_by_id(&ids)?,
            next: if rechecking {
                Some(next.map_or(until, |n| n.min(until)))
            } else {
                next
            },
        })
    }

    async fn mark(&self, id: TicketId, mark: &Mark<'_>) -> Result<Option<Ticket>, StoreError> {
        self.check_fence()?;
        let result = (&self.tickets, &self.index).transaction(|(tickets, index)| {
            let Some(raw) = tickets.get(key(id.0))? else {
                return Err(ConflictableTransactionError::Abort(Abort::Missing(id)));
            };
            let ticket: Ticket = tx_dec(&raw)?;
            let Some(marks) = mark(&ticket) else {
                return Ok(None);
            };
            let marked = Ticket {
                sla: marks,
                ..ticket
            };
            let trees = TicketTrees {
                tickets,
                index,
                routes: &self.routes,
            };
            write_ticket(&trees, &marked)?;
            Ok(Some(marked))
        });
        finish(result)
    }

    async fn received_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, TicketId)>,
        limit: usize,
    ) -> Result<Vec<crate::ports::tally::TicketFacts>, StoreError> {
        index::Reader(&self.index).received(from, to, after.map(|(at, id)| (at, id.0)), limit)
    }

    async fn first_answers_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(index::Reader(&self.index).answers_between(from, to)?)
    }

    async fn counters(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        Ok(index::Reader(&self.index).counters()?)
    }

    async fn answered_within(&self, route: &str, seconds: i64) -> Result<u64, StoreError> {
        Ok(index::Reader(&self.index).answered_within(route, seconds)?)
    }

    async fn unanswered_since(&self, route: &str, since: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(index::Reader(&self.index).unanswered_since(route, since)?)
    }

    async fn act(&self, id: TicketId, judge: &Judge<'_>) -> Result<ActOutcome, StoreError> {
        self.check_fence()?;
        // Two agents acting at once are serialised by sled: the loser's transaction runs
        // again on the ticket the winner wrote.
        let result = self.judge_and_commit(id, |ticket| {
            let tr = judge(ticket)
                .map_err(|r| ConflictableTransactionError::Abort(Abort::Rejected(r)))?;
            let at = ticket.updated_at.max(tr.audit.at);
            Ok(Some((tr, at)))
        });
        match result {
            Ok(Some(t)) => Ok(Ok(t)),
            Ok(None) => unreachable!("an accepted action always writes"),
            Err(TransactionError::Abort(Abort::Rejected(r))) => Ok(Err(r)),
            Err(e) => finish(Err(e)),
        }
    }

    async fn transition(
        &self,
        id: TicketId,
        decide: &Decide<'_>,
    ) -> Result<Option<Ticket>, StoreError> {
        self.check_fence()?;
        finish(self.judge_and_commit(id, |ticket| {
            Ok(decide(ticket).map(|tr| {
                let at = tr.audit.at;
                (tr, at)
            }))
        }))
    }

    async fn queue_desk_job(
        &self,
        effect: Effect,
        state_key: &str,
        state_value: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_fence()?;
        let trees = (&self.outbox, &self.state);
        let result = trees.transaction(|(outbox, state)| {
            enqueue(outbox, DESK_JOBS, effect.clone(), now)?;
            state.insert(state_key, state_value)?;
            Ok(())
        });
        finish(result)
    }

    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.outbox.iter().values().map(|v| dec(&v?)).collect()
    }

    async fn pending_job_count(&self) -> Result<u64, StoreError> {
        Ok(self.outbox.len() as u64)
    }

    async fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        self.outbox.get(key(id))?.map(|v| dec(&v)).transpose()
    }

    async fn claim_jobs(
        &self,
        claimant: &str,
        limit: usize,
        now: DateTime<Utc>,
        hold_for: std::time::Duration,
    ) -> Result<Claimed, StoreError> {
        self.check_fence()?;
        let wall = Utc::now();
        let until = crate::wire::hints::later(wall, hold_for);
        // One claimant at a time in this process: the scan and the marks are one step.
        let mut claims = self.claims.lock().expect("claims lock");
        claims.retain(|_, (_, t)| *t > wall);
        let mut taken: HashSet<(TicketId, Lane)> = HashSet::new();
        let mut claimed = Claimed::default();
        let mut chosen = Vec::new();
        for item in self.outbox.iter().values() {
            let job: Job = dec(&item?)?;
            if !taken.insert((job.ticket, job.effect.lane())) || claims.contains_key(&job.id) {
                continue;
            }
            if let Some(t) = job.not_before.filter(|t| *t > now) {
                claimed.next_due = Some(claimed.next_due.map_or(t, |d| d.min(t)));
                continue;
            }
            chosen.push(job.id);
            if chosen.len() >= limit {
                break;
            }
        }
        let result = self.outbox.transaction(|outbox| {
            let mut jobs = Vec::new();
            for id in &chosen {
                if let Some(raw) = outbox.get(key(*id))? {
                    let mut job: Job = tx_dec(&raw)?;
                    job.attempts += 1;
                    outbox.insert(&key(*id), enc(&job))?;
                    jobs.push(job);
                }
            }
            Ok(jobs)
        });
        claimed.jobs = finish(result)?;
        for job in &claimed.jobs {
            claims.insert(job.id, (claimant.to_string(), until));
        }
        Ok(claimed)
    }

    async fn renew_claims(
        &self,
        claimant: &str,
        hold_for: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.check_fence()?;
        let wall = Utc::now();
        let until = crate::wire::hints::later(wall, hold_for);
        for (who, t) in self.claims.lock().expect("claims lock").values_mut() {
            if who == claimant && *t > wall {
                *t = until;
            }
        }
        Ok(())
    }

    async fn holds_claim(
        &self,
        job: &Job,
        claimant: &str,
        hold_for: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.check_fence()?;
        let wall = Utc::now();
        let mut claims = self.claims.lock().expect("claims lock");
        let live = matches!(claims.get(&job.id), Some((who, t)) if who == claimant && *t > wall);
        if !live || self.stored_attempts(job.id)? != Some(job.attempts) {
            return Ok(false);
        }
        claims.insert(
            job.id,
            (
                claimant.to_string(),
                crate::wire::hints::later(wall, hold_for),
            ),
        );
        Ok(true)
    }

    async fn defer(
        &self,
        job: &Job,
        not_before: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.check_fence()?;
        if let Some(raw) = self.outbox.get(key(job.id))? {
            let mut stored: Job = dec(&raw)?;
            if stored.attempts > job.attempts {
                return Ok(()); // another sender's now
            }
            stored.not_before = Some(not_before);
            stored.last_error = Some(error.to_string());
            self.outbox.insert(key(job.id), enc(&stored))?;
            self.claims.lock().expect("claims lock").remove(&job.id);
        }
        Ok(())
    }

    async fn give_up(&self, job: &Job, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.check_fence()?;
        if self.claimed_since(job)? {
            return Ok(());
        }
        self.claims.lock().expect("claims lock").remove(&job.id);
        let trees = (&self.outbox, &self.failed_jobs, &self.audit);
        let result = trees.transaction(|(outbox, failed, audit)| {
            outbox.remove(&key(job.id))?;
            let mut kept = job.clone();
            kept.last_error = Some(reason.to_string());
            failed.insert(&key(job.id), enc(&kept))?;
            if job.ticket != DESK_JOBS {
                append_audit(
                    audit,
                    &AuditEntry::gave_up(job.ticket, now, job.attempts, reason),
                )?;
            }
            Ok(())
        });
        finish(result)
    }

    async fn failed_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.failed_jobs.iter().values().map(|v| dec(&v?)).collect()
    }

    async fn complete_with(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        more: &[Effect],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_fence()?;
        if self.claimed_since(job)? {
            return Ok(());
        }
        self.claims.lock().expect("claims lock").remove(&job.id);
        let trees = (
            &self.tickets,
            &self.outbox,
            &self.audit,
            &self.dedupe,
            &self.index,
            &self.incidents,
        );
        let result = trees.transaction(|(tickets, outbox, audit, dedupe, index, incidents)| {
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
                if let SystemEvent::ReplyPublished { remote_id, .. } = ev {
                    for k in intake::post_keys(&ticket.mention, remote_id) {
                        dedupe.insert(k.as_bytes(), &key(ticket.id.0))?;
                    }
                }
                let tr = apply_system(&ticket, ev.clone(), now);
                if let Some(id) = ticket.incident {
                    if let Some(raw) = incidents.get(key(id.0))? {
                        let mut incident: Incident = tx_dec(&raw)?;
                        let was = incident.clone();
                        incident.count_outcome(&ticket, &tr.ticket, now);
                        if incident != was {
                            incidents.insert(&key(id.0), enc(&incident))?;
                        }
                    }
                }
                let ticket_trees = TicketTrees {
                    tickets,
                    index,
                    routes: &self.routes,
                };
                commit_transition(&ticket_trees, outbox, audit, &tr, now)?;
            }
            Ok(())
        });
        finish(result)
    }

    async fn save_card(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError> {
        self.check_fence()?;
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

    async fn report_lost_card(
        &self,
        ticket: TicketId,
        surface: SurfaceKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.check_fence()?;
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
            append_audit(audit, &AuditEntry::card_lost(ticket, now, surface, reason))?;
            Ok(())
        });
        finish(result)
    }

    async fn cards_lost(&self, surface: SurfaceKind) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(lost_cards_key(surface).as_bytes())?
            .and_then(|raw| raw.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    async fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        self.incidents.get(key(id.0))?.map(|v| dec(&v)).transpose()
    }

    async fn incidents_after(
        &self,
        after: Option<IncidentId>,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        let start = match after {
            Some(id) => Bound::Excluded(key(id.0)),
            None => Bound::Unbounded,
        };
        self.incidents
            .range::<[u8; 8], _>((start, Bound::Unbounded))
            .values()
            .take(limit)
            .map(|v| dec(&v?))
            .collect()
    }

    async fn incident_members(
        &self,
        id: IncidentId,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError> {
        let start = match after {
            Some(t) => Bound::Excluded(member_key(id, t)),
            None => Bound::Included(key(id.0).to_vec()),
        };
        let end = match id.0.checked_add(1) {
            Some(next) => Bound::Excluded(key(next).to_vec()),
            None => Bound::Unbounded,
        };
        self.incident_members
            .range::<Vec<u8>, _>((start, end))
            .keys()
            .take(limit)
            .map(|k| Ok(TicketId(id_of(&k?[8..]))))
            .collect()
    }

    async fn change_incident(
        &self,
        id: Option<IncidentId>,
        tickets: &[TicketId],
        decide: &IncidentDecide<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>, StoreError> {
        self.check_fence()?;
        let trees = (
            &self.incidents,
            &self.incident_members,
            &self.tickets,
            &self.index,
            &self.outbox,
            &self.audit,
            &self.meta,
        );
        let result = trees.transaction(
            |(incidents, members, tickets_tree, index, outbox, audit, meta)| {
                let (stored, number) = match id {
                    Some(id) => match incidents.get(key(id.0))? {
                        Some(raw) => (Some(tx_dec::<Incident>(&raw)?), id),
                        None => {
                            return Err(ConflictableTransactionError::Abort(
                                Abort::MissingIncident(id),
                            ))
                        }
                    },
                    None => {
                        let next = meta.get(NEXT_INCIDENT)?.map(|v| id_of(&v)).unwrap_or(1);
                        (None, IncidentId(next))
                    }
                };
                let mut read = Vec::with_capacity(tickets.len());
                for t in tickets {
                    if let Some(raw) = tickets_tree.get(key(t.0))? {
                        read.push(tx_dec::<Ticket>(&raw)?);
                    }
                }
                let Some(change) = decide(stored.as_ref(), number, &read) else {
                    return Ok(None);
                };
                if id.is_none() {
                    meta.insert(NEXT_INCIDENT, &key(number.0 + 1))?;
                }
                let ticket_trees = TicketTrees {
                    tickets: tickets_tree,
                    index,
                    routes: &self.routes,
                };
                for member in incident::moved_members(&change, number, &read) {
                    match member.incident {
                        Some(_) => members.insert(member_key(number, member.id), &[])?,
                        None => members.remove(member_key(number, member.id))?,
                    };
                    write_ticket(&ticket_trees, &member)?;
                }
                for effect in &change.effects {
                    enqueue(outbox, DESK_JOBS, effect.clone(), now)?;
                }
                for (ticket, effect) in &change.ticket_effects {
                    enqueue(outbox, *ticket, effect.clone(), now)?;
                }
                for line in &change.audit {
                    append_audit(audit, line)?;
                }
                let mut incident = change.incident;
                incident.id = number;
                incidents.insert(&key(number.0), enc(&incident))?;
                Ok(Some(incident))
            },
        );
        finish(result)
    }

    async fn cards(&self, ticket: TicketId) -> Result<Vec<CardRef>, StoreError> {
        self.cards
            .scan_prefix(key(ticket.0))
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    async fn ticket_by_card(
        &self,
        surface: SurfaceKind,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>, StoreError> {
        Ok(self
            .card_index
            .get(card_index_key(surface, channel, message_id))?
            .map(|v| TicketId(id_of(&v))))
    }

    async fn acquire_lease(
        &self,
        duty: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let now = Utc::now();
        let expires_at = crate::wire::hints::later(now, ttl);
        let mut leases = self.leases.lock().expect("lease lock");
        let token = match leases.get(duty) {
            Some(l) if l.expires_at > now && l.holder != holder => return Ok(None),
            Some(l) if l.expires_at > now => l.token,
            Some(l) => l.token + 1,
            None => 1,
        };
        leases.insert(
            duty.to_string(),
            LeaseState {
                duty: duty.to_string(),
                holder: holder.to_string(),
                token,
                renewed_at: now,
                expires_at,
            },
        );
        Ok(Some(Lease {
            duty: duty.to_string(),
            holder: holder.to_string(),
            token,
        }))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let mut leases = self.leases.lock().expect("lease lock");
        match leases.get_mut(&lease.duty) {
            Some(l) if l.holder == lease.holder && l.token == lease.token && l.expires_at > now => {
                l.renewed_at = now;
                l.expires_at = crate::wire::hints::later(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut leases = self.leases.lock().expect("lease lock");
        if let Some(l) = leases.get_mut(&lease.duty) {
            if l.holder == lease.holder && l.token == lease.token {
                l.expires_at = DateTime::<Utc>::UNIX_EPOCH;
            }
        }
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseState>, StoreError> {
        Ok(self
            .leases
            .lock()
            .expect("lease lock")
            .values()
            .cloned()
            .collect())
    }

    fn fenced(&self, fence: Arc<Fence>) -> SharedStore {
        let mut handle = self.clone();
        handle.fence = Some(fence);
        Arc::new(handle)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.check_fence()?;
        let id = self.db.generate_id()?;
        let mut k = key(entry.ticket.0).to_vec();
        k.extend_from_slice(&key(id));
        self.audit.insert(k, enc(entry))?;
        Ok(())
    }

    async fn audit_of(&self, ticket: TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit
            .scan_prefix(key(ticket.0))
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    async fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit.iter().values().map(|v| dec(&v?)).collect()
    }

    async fn audit_after(
        &self,
        after: Option<AuditPos>,
        limit: usize,
    ) -> Result<Vec<(AuditPos, AuditEntry)>, StoreError> {
        // Keys are the ticket's number then the line's, both big-endian.
        let start = match after {
            Some(p) => Bound::Excluded([p.ticket.to_be_bytes(), p.line.to_be_bytes()].concat()),
            None => Bound::Unbounded,
        };
        self.audit
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let pos = AuditPos {
                    ticket: id_of(&k[..k.len().min(8)]),
                    line: id_of(&k[k.len().min(8)..]),
                };
                Ok((pos, dec(&v)?))
            })
            .collect()
    }
}

/// The dedupe tree as intake reads it inside its transaction: each key as stored, or,
/// where that misses, by its keyed hash (the key an erasure left in its place).
struct KnownKeys<'a> {
    dedupe: &'a TransactionalTree,
    hash_key: Option<&'a [u8]>,
}

impl KnownKeys<'_> {
    /// The ticket the first known of `keys` names.
    fn ticket_of(&self, keys: &[String]) -> Result<Option<u64>, UnabortableTransactionError> {
        for k in keys {
            if let Some(raw) = self.dedupe.get(k.as_bytes())? {
                return Ok(Some(id_of(&raw)));
            }
        }
        if let Some(hash_key) = self.hash_key {
            for (_, h) in privacy::hashed_keys(hash_key, keys) {
                if let Some(raw) = self.dedupe.get(h.as_bytes())? {
                    return Ok(Some(id_of(&raw)));
                }
            }
        }
        Ok(None)
    }
}

/// The ticket holding the post `m` answers, as far as the keys intake names find one.
fn parent_of(
    tickets: &TransactionalTree,
    known: &KnownKeys,
    m: &Mention,
) -> TxResult<Option<Ticket>> {
    let Some(id) = known.ticket_of(&intake::parent_keys(m))? else {
        return Ok(None);
    };
    match tickets.get(key(id))? {
        Some(raw) => Ok(Some(tx_dec(&raw)?)),
        None => Ok(None),
    }
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
    enqueue_at(outbox, ticket, effect, now, None)
}

/// Queue a job that is not due before `not_before` (`None`: due at once).
fn enqueue_at(
    outbox: &TransactionalTree,
    ticket: TicketId,
    effect: Effect,
    now: DateTime<Utc>,
    not_before: Option<DateTime<Utc>>,
) -> Result<(), UnabortableTransactionError> {
    let id = outbox.generate_id()?;
    let job = Job {
        id,
        ticket,
        effect,
        attempts: 0,
        not_before,
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

/// Where a ticket is written inside a transaction: its tree, the index tree, and the
/// routes its next-due instant follows.
struct TicketTrees<'a> {
    tickets: &'a TransactionalTree,
    index: &'a TransactionalTree,
    routes: &'a Routes,
}

/// Every write of a ticket goes through here: the ticket and, in the same transaction,
/// its indexes and counters, brought from what was stored to what is written.
fn write_ticket(trees: &TicketTrees, ticket: &Ticket) -> TxResult<()> {
    let k = key(ticket.id.0);
    let old: Option<Ticket> = trees.tickets.get(k)?.map(|raw| tx_dec(&raw)).transpose()?;
    trees.tickets.insert(&k, enc(ticket))?;
    index::reindex(trees.index, old.as_ref(), ticket, trees.routes)?;
    Ok(())
}

fn commit_transition(
    trees: &TicketTrees,
    outbox: &TransactionalTree,
    audit: &TransactionalTree,
    tr: &Transition,
    now: DateTime<Utc>,
) -> TxResult<()> {
    commit_transition_held(trees, outbox, audit, tr, now, None)
}

/// [`commit_transition`], its card posted no earlier than `cards_after` (a new ticket's
/// card held for storms).
fn commit_transition_held(
    trees: &TicketTrees,
    outbox: &TransactionalTree,
    audit: &TransactionalTree,
    tr: &Transition,
    now: DateTime<Utc>,
    cards_after: Option<DateTime<Utc>>,
) -> TxResult<()> {
    write_ticket(trees, &tr.ticket)?;
    for effect in &tr.effects {
        let not_before = cards_after.filter(|_| *effect == Effect::PostCards);
        enqueue_at(outbox, tr.ticket.id, effect.clone(), now, not_before)?;
    }
    append_audit(audit, &tr.audit)?;
    Ok(())
}

fn finish<T>(result: Result<T, TransactionError<Abort>>) -> Result<T, StoreError> {
    match result {
        Ok(v) => Ok(v),
        Err(TransactionError::Storage(e)) => Err(e.into()),
        Err(TransactionError::Abort(Abort::Missing(id))) => Err(StoreError::NoSuchTicket(id)),
        Err(TransactionError::Abort(Abort::MissingIncident(id))) => {
            Err(StoreError::NoSuchIncident(id))
        }
        Err(TransactionError::Abort(Abort::Corrupt(e))) => Err(StoreError::Corrupt(e)),
        Err(TransactionError::Abort(Abort::Rejected(r))) => {
            unreachable!("rejections are handled by act(): {r}")
        }
    }
}

#[cfg(test)]
mod tests {
    //! What any backend must do is proven by the contract suite
    //! (`tests/integration/store_contract.rs`); here, what only sled does.
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn a_store_from_before_the_triage_indexes_builds_them_when_opened() {
        use crate::domain::{Author, Mention, Platform, Visibility};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sled");
        let by_kim = |id: &str| Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: id.into(),
            url: format!("https://m.example/@kim/{id}"),
            author: Author {
                handle: "kim".into(),
                ..Author::default()
            },
            text: "hello".into(),
            language: None,
            created_at: now(),
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        };
        {
            let store = SledStore::open(&path).unwrap();
            store
                .ingest("src", &[by_kim("1"), by_kim("2")], None, now())
                .await
                .unwrap();
            // As a store of index version 2 left it: no author lists, empty open entries.
            store.index.clear().unwrap();
            store.meta.insert(INDEX_VERSION, b"2").unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(&path).unwrap();
        let open = store.open_priorities().await.unwrap();
        assert_eq!(open.len(), 2);
        assert!(open.iter().all(|o| o.waiting && o.received == now()));
        store
            .ingest("src", &[by_kim("3")], None, now())
            .await
            .unwrap();
        let third = store.ticket(TicketId(3)).await.unwrap().unwrap();
        assert_eq!(third.priority.why(), "3rd contact this week");
    }

    #[tokio::test]
    async fn expired_event_ids_are_pruned_so_the_tree_stays_small() {
        let store = SledStore::temporary().unwrap();
        for source in ["slack-event", "discord-interaction"] {
            assert!(store.first_delivery(source, "Ev1", now()).await.unwrap());
        }
        let much_later = now() + SEEN_EVENTS_FOR + chrono::Duration::minutes(1);
        assert!(store
            .first_delivery("slack-event", "Ev2", much_later)
            .await
            .unwrap());
        assert_eq!(
            store.seen_event_count().await.unwrap(),
            1,
            "Ev1 of both sources pruned"
        );
        assert!(store
            .first_delivery("slack-event", "Ev1", much_later)
            .await
            .unwrap());
    }
}
