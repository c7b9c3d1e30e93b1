//! The store on PostgreSQL, for replicas sharing one database. Every method that writes
//! runs in one transaction (READ COMMITTED), and a commit is durable when it returns
//! (PostgreSQL's default `synchronous_commit`), so `flush` has nothing left to do.
//!
//! How concurrent replicas stay correct, per method:
//! - `ingest` locks the `next_ticket` counter row (`FOR UPDATE`) first: intakes run one
//!   at a time across replicas, each seeing what the one before committed, so a mention
//!   two replicas bring at once is one ticket and one duplicate, and ticket numbers come
//!   out 1, 2, 3… without gaps. The unique dedupe key is the backstop.
//! - `act`, `transition`, `complete_with` and `report_lost_card` lock the ticket row
//!   (`FOR UPDATE`) and judge the ticket as it is then: of two agents claiming at once
//!   one wins and the other is judged on the claimed ticket. Whatever queues jobs for a
//!   ticket holds that lock, so a ticket's jobs are numbered in the order its changes
//!   commit (the head-of-lane rule relies on it). Across tickets, job ids come from one
//!   sequence and may commit out of order: a sender reading pages sees a late one on
//!   its next round.
//! - `claim_jobs` picks the head job of each ticket lane in one statement, locking what
//!   it takes with `FOR UPDATE SKIP LOCKED`, so two senders never take one job; claims
//!   and leases are timed by the database's clock (`clock_timestamp()`), so clock skew
//!   between replicas does not matter.
//! - `defer`, `give_up`, `complete_with` lock the job row and leave it alone if another
//!   sender claimed it since (a higher attempt count).
//! - leases are one upsert each; a fenced handle's write takes a share lock on its
//!   duty's lease row in its own transaction, so no new grant commits while it writes.
//! - a transaction that fails on a serialization failure or deadlock (SQLSTATE 40001,
//!   40P01) runs again, a few times.
//!
//! Records are stored as the JSON serde writes and read back exactly, except a job's
//! `not_before`, a `timestamptz` column: PostgreSQL keeps microseconds.
//!
//! Logs and errors name the database by `PostgresConfig::describe` only, never the URL.

mod index;
mod schema;

use crate::config::PostgresConfig;
use crate::domain::incident::Incident;
use crate::domain::intake::{self, Intake};
use crate::domain::priority::{author_key, ticket_author_key, Contact, CONTACTS_KEPT};
use crate::domain::privacy;
use crate::domain::routes::Routes;
use crate::domain::{
    apply_system, AuditEntry, CardRef, Effect, IncidentId, Mention, Note, SurfaceKind, SystemEvent,
    Ticket, TicketId, Transition,
};
use crate::ports::tally;
use crate::ports::{
    ActOutcome, AuditPos, Claimed, Decide, Delivery, Due, Fence, IncidentDecide, Ingested, Job,
    Judge, Lease, LeaseState, Mark, SharedStore, Slots, Store, StoreError, DESK_JOBS,
    SEEN_EVENTS_FOR,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool, PoolError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Json, ToSql};
use tokio_postgres::Row;

use self::schema::plain;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// Expired event ids removed per sighting, so pruning never stalls an inbound event.
const PRUNE_PER_SIGHTING: i64 = 64;

/// Rows a store copy writes per statement.
const IMPORT_ROWS: usize = 1000;

/// How often a transaction that lost a serialization race or a deadlock runs again.
const RETRIES: u32 = 5;

/// The longest claim or lease the database is asked for (a duration beyond this is
/// "for ever" in practice, and keeps interval arithmetic in range).
const LONGEST_HOLD_MICROS: i64 = 100 * 365 * 24 * 3600 * 1_000_000;

/// The store in one PostgreSQL database: a pool of connections shared by every task of
/// this replica (cloning shares it); other replicas have pools of their own on the same
/// database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// The routes intake stamps new tickets with, and next-due instants follow.
    routes: Arc<Routes>,
    /// Whether the due instants were compared with `routes` yet (see `due_tickets`).
    routes_checked: Arc<AtomicBool>,
    /// Set on a fenced handle: its writes go under this lease.
    fence: Option<Arc<Fence>>,
}

/// Run a transaction body again while it fails on a serialization failure or deadlock.
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut tries = 0u32;
        loop {
            match $attempt.await {
                Err(e) if tries < RETRIES && is_retryable(&e) => {
                    tries += 1;
                    tracing::debug!(tries, "store transaction lost a race; running it again");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(tries)))
                        .await;
                }
                other => break other,
            }
        }
    }};
}

fn is_retryable(e: &StoreError) -> bool {
    let StoreError::Backend(source) = e else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
}

/// Statement parameters.
type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The statements of [`Conn`] and [`Tx`]: each SQL text is prepared once per pooled
/// connection and cached there.
macro_rules! cached_statements {
    () => {
        async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
            let statement = self.0.prepare_cached(sql).await?;
            Ok(self.0.query(&statement, params).await?)
        }

        async fn query_opt(
            &self,
            sql: &str,
            params: Params<'_>,
        ) -> Result<Option<Row>, StoreError> {
            let statement = self.0.prepare_cached(sql).await?;
            Ok(self.0.query_opt(&statement, params).await?)
        }

        async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
            let statement = self.0.prepare_cached(sql).await?;
            Ok(self.0.query_one(&statement, params).await?)
        }

        async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
            let statement = self.0.prepare_cached(sql).await?;
            Ok(self.0.execute(&statement, params).await?)
        }
    };
}

/// A connection from the pool.
struct Conn(Object);

impl Conn {
    cached_statements!();

    async fn transaction(&mut self) -> Result<Tx<'_>, StoreError> {
        Ok(Tx(self.0.transaction().await?))
    }
}

/// A transaction: rolled back if dropped before [`Tx::commit`].
struct Tx<'a>(deadpool_postgres::Transaction<'a>);

impl Tx<'_> {
    cached_statements!();

    async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }
}

/// What a ticket's judge decided: the transition to commit with the instant its jobs
/// are queued at, nothing to do, or a refusal that writes nothing.
type Decided<R> = Result<Option<(Transition, DateTime<Utc>)>, R>;

/// What an outbox row's `body` holds: the parts of a job that never change.
#[derive(Debug, Serialize, Deserialize)]
struct QueuedJob {
    effect: Effect,
    created_at: DateTime<Utc>,
}

fn unreadable(what: impl Into<String>) -> StoreError {
    StoreError::Backend(plain(what))
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    Ok(row.try_get(idx)?)
}

fn json_of<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> Result<T, StoreError> {
    let text: &str = get(row, idx)?;
    Ok(serde_json::from_str(text)?)
}

/// An id as the database keeps it; `None`: beyond what it can hold (so it is not there).
fn sql_id(id: u64) -> Option<i64> {
    i64::try_from(id).ok()
}

fn id_of(row: &Row, idx: usize) -> Result<u64, StoreError> {
    let id: i64 = get(row, idx)?;
    u64::try_from(id).map_err(|_| unreadable(format!("a negative id ({id}) in the store")))
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros())
        .unwrap_or(i64::MAX)
        .min(LONGEST_HOLD_MICROS)
}

fn surface_key(surface: SurfaceKind) -> String {
    format!("{surface:?}")
}

fn lost_cards_key(surface: SurfaceKind) -> String {
    format!("cards_lost:{}", surface.label())
}

/// The columns [`job_of`] reads, in its order.
const JOB_COLUMNS: &str = "id, ticket, body::text, attempts, not_before, last_error";

fn job_of(row: &Row) -> Result<Job, StoreError> {
    let queued: QueuedJob = json_of(row, 2)?;
    let attempts: i32 = get(row, 3)?;
    let last_error: Option<Vec<u8>> = get(row, 5)?;
    Ok(Job {
        id: id_of(row, 0)?,
        ticket: TicketId(id_of(row, 1)?),
        effect: queued.effect,
        attempts: u32::try_from(attempts)
            .map_err(|_| unreadable(format!("a negative attempt count ({attempts})")))?,
        not_before: get(row, 4)?,
        created_at: queued.created_at,
        last_error: last_error.map(|raw| String::from_utf8_lossy(&raw).into_owned()),
    })
}

impl PostgresStore {
    /// The store in the database `config` names: a pool of `pool_size` connections, the
    /// schema migrated (see [`migrate`]). A database that cannot be reached, or refuses
    /// the login, is [`StoreError::Open`]; one migrated by a newer release is
    /// [`StoreError::SchemaTooNew`].
    pub async fn connect(config: &PostgresConfig) -> Result<PostgresStore, StoreError> {
        let pool = schema::pool(config)?;
        schema::apply(&pool, config).await?;
        let store = PostgresStore {
            pool,
            routes: Arc::new(Routes::default()),
            routes_checked: Arc::default(),
            fence: None,
        };
        index::fill(&mut store.client().await?, &store.routes).await?;
        Ok(store)
    }

    /// Stamp each new ticket with its route and first-response deadline from `routes`
    /// (without: the default route's).
    pub fn with_routes(mut self, routes: Routes) -> PostgresStore {
        self.routes = Arc::new(routes);
        self
    }

    /// The record `sql` selects by `id`, read from its JSON body.
    async fn body_by_id<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        let Some(id) = sql_id(id) else {
            return Ok(None);
        };
        let client = self.client().await?;
        client
            .query_opt(sql, &[&id])
            .await?
            .map(|row| json_of(&row, 0))
            .transpose()
    }

    /// `count_up` in one transaction: the row is locked by the upsert, so replicas
    /// counting at once each see the other's count.
    async fn count_up_once(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        // Locks the row (or creates it), then reads what is there.
        tx.execute(
            "INSERT INTO state (key, value) VALUES ($1, '0') ON CONFLICT (key) DO NOTHING",
            &[&key],
        )
        .await?;
        let row = tx
            .query_one("SELECT value FROM state WHERE key = $1 FOR UPDATE", &[&key])
            .await?;
        let old: Vec<u8> = get(&row, 0)?;
        let count = crate::ports::count_of(Some(&old)).saturating_add(by);
        tx.execute(
            "UPDATE state SET value = $2 WHERE key = $1",
            &[&key, &count.to_string().as_bytes()],
        )
        .await?;
        tx.commit().await?;
        Ok(count)
    }

    /// Write everything in `snap` into this database, which must hold no desk yet, in
    /// one transaction (all or nothing): tickets keep their numbers, jobs their ids and
    /// attempt counts, the audit log its order (`mentionbridge store copy`).
    pub async fn import(&self, snap: &super::snapshot::Snapshot) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // No replica may start on it meanwhile: intake waits on this row.
        tx.query_opt(
            "SELECT value FROM counters WHERE name = 'next_ticket' FOR UPDATE",
            &[],
        )
        .await?;
        let held: i64 = get(
            &tx.query_one(
                "SELECT (SELECT count(*) FROM tickets) + (SELECT count(*) FROM outbox)
                      + (SELECT count(*) FROM audit) + (SELECT count(*) FROM failed_jobs)",
                &[],
            )
            .await?,
            0,
        )?;
        if held > 0 {
            return Err(StoreError::Backend(plain(
                "the database already holds a desk (tickets, jobs or audit lines): copy into an empty one",
            )));
        }
        let id = |n: u64| sql_id(n).ok_or_else(|| unreadable(format!("id {n} is out of range")));
        for chunk in snap.tickets.chunks(IMPORT_ROWS) {
            let rows: Vec<(Option<&Ticket>, &Ticket)> = chunk.iter().map(|t| (None, t)).collect();
            index::upsert_tickets(&tx, &rows, &self.routes).await?;
        }
        for chunk in snap.dedupe.chunks(IMPORT_ROWS) {
            let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_bytes()).collect();
            let tickets = chunk
                .iter()
                .map(|(_, t)| id(t.0))
                .collect::<Result<Vec<_>, _>>()?;
            remember_keys(&tx, &keys, &tickets).await?;
        }
        let cursors: Vec<(&str, &[u8])> = snap
            .cursors
            .iter()
            .map(|(source, cursor)| (source.as_str(), cursor.as_bytes()))
            .collect();
        put_cursors(&tx, &cursors).await?;
        for (key, value) in &snap.state {
            put_state(&tx, key, value).await?;
        }
        for (ticket, card) in &snap.cards {
            let surface = surface_key(card.surface);
            tx.execute(
                "INSERT INTO cards (ticket, surface, body) VALUES ($1, $2, $3)
                 ON CONFLICT (ticket, surface) DO UPDATE SET body = EXCLUDED.body",
                &[&id(ticket.0)?, &surface, &Json(card)],
            )
            .await?;
            tx.execute(
                "INSERT INTO card_index (surface, channel, message_id, ticket) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (surface, channel, message_id) DO UPDATE SET ticket = EXCLUDED.ticket",
                &[
                    &surface,
                    &card.channel.as_bytes(),
                    &card.message_id.as_bytes(),
                    &id(ticket.0)?,
                ],
            )
            .await?;
        }
        for incident in &snap.incidents {
            put_incident(&tx, incident).await?;
        }
        let members: Vec<(i64, i64)> = snap
            .tickets
            .iter()
            .filter_map(|t| Some((sql_id(t.incident?.0)?, sql_id(t.id.0)?)))
            .collect();
        for chunk in members.chunks(IMPORT_ROWS) {
            let (incidents, tickets): (Vec<i64>, Vec<i64>) = chunk.iter().copied().unzip();
            tx.execute(
                "INSERT INTO incident_members (incident, ticket)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                &[&incidents, &tickets],
            )
            .await?;
        }
        tx.execute(
            "UPDATE counters SET value = $1 WHERE name = 'next_incident'",
            &[&id(snap.next_incident.max(1))?],
        )
        .await?;
        for job in &snap.jobs {
            let queued = QueuedJob {
                effect: job.effect.clone(),
                created_at: job.created_at,
            };
            let attempts = i32::try_from(job.attempts).unwrap_or(i32::MAX);
            tx.execute(
                "INSERT INTO outbox (id, ticket, lane, body, attempts, not_before, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &id(job.id)?,
                    &id(job.ticket.0)?,
                    &job.effect.lane().as_str(),
                    &Json(&queued),
                    &attempts,
                    &job.not_before,
                    &job.last_error.as_deref().map(str::as_bytes),
                ],
            )
            .await?;
        }
        // New jobs are numbered after the copied ones, so queue order holds.
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('outbox', 'id'),
                           GREATEST((SELECT max(id) FROM outbox), 1))",
            &[],
        )
        .await?;
        for job in &snap.failed_jobs {
            tx.execute(
                "INSERT INTO failed_jobs (id, body) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
                &[&id(job.id)?, &Json(job)],
            )
            .await?;
        }
        for chunk in snap.audit.chunks(IMPORT_ROWS) {
            append_audits(&tx, &chunk.iter().collect::<Vec<_>>()).await?;
        }
        for (source, event, at) in &snap.seen_events {
            tx.execute(
                "INSERT INTO seen_events (source, id, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source, id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
                &[&source.as_bytes(), &event.as_bytes(), at],
            )
            .await?;
        }
        tx.execute(
            "UPDATE counters SET value = $1 WHERE name = 'next_ticket'",
            &[&id(snap.next_ticket.max(1))?],
        )
        .await?;
        for (surface, lost) in &snap.cards_lost {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&lost_cards_key(*surface), &id(*lost)?],
            )
            .await?;
        }
        tx.commit().await
    }

    async fn client(&self) -> Result<Conn, StoreError> {
        Ok(Conn(self.pool.get().await?))
    }

    /// On a fenced handle, refuse a write unless its lease is still the duty's grant,
    /// keeping a share lock on the lease row until `tx` ends so no new grant commits
    /// while this write does.
    async fn check_fence(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        match check_fences(tx, &[self.fence.as_ref()]).await?.pop() {
            Some(Some(refused)) => Err(refused),
            _ => Ok(()),
        }
    }

    /// Run `sql` in a transaction of its own (fenced like every write).
    async fn write_once(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let n = tx.execute(sql, params).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn write(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        retrying!(self.write_once(sql, params))
    }

    /// [`Store::ingest_many`] in one transaction: the fences checked and the ticket
    /// counter locked once, what every mention is known by read in one look-up (and the
    /// tickets they answer, locked, in another), intake judged here in delivery order on
    /// that, kept up to date as it goes, and what it decided written with one statement
    /// per table.
    async fn ingest_many_once(
        &self,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Slots, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let fences: Vec<Option<&Arc<Fence>>> = deliveries
            .iter()
            .map(|d| d.fence.as_ref().or(self.fence.as_ref()))
            .collect();
        let mut refused = check_fences(&tx, &fences).await?;
        // Intake runs one transaction at a time across replicas: this lock first.
        let row = tx
            .query_opt(
                "SELECT value FROM counters WHERE name = 'next_ticket' FOR UPDATE",
                &[],
            )
            .await?
            .ok_or_else(|| unreadable("the ticket counter is missing"))?;
        let first: i64 = get(&row, 0)?;
        let first = u64::try_from(first)
            .map_err(|_| unreadable(format!("the ticket counter is {first}")))?;
        let live: Vec<&Delivery> = deliveries
            .iter()
            .zip(&refused)
            .filter(|(_, r)| r.is_none())
            .map(|(d, _)| d)
            .collect();
        let mut known = IntakeView::read(&tx, &live).await?;
        let mut next = first;
        let mut written = Written::default();
        let mut done = Vec::with_capacity(live.len());
        for d in &live {
            let mut ingested = Ingested::default();
            for m in &d.mentions {
                let keys = m.dedupe_keys();
                let seen = keys.iter().any(|k| known.keys.contains_key(k.as_bytes()));
                let parent = match (seen, known.parent_of(m)) {
                    (false, Some(id)) => known.ticket(&tx, id).await?,
                    _ => None,
                };
                let contacts = if seen {
                    Vec::new()
                } else {
                    known
                        .contacts
                        .get(&author_key(m))
                        .cloned()
                        .unwrap_or_default()
                };
                let judged = intake::Known {
                    seen,
                    parent: parent.as_ref(),
                    contacts: &contacts,
                };
                let decided = intake::admit(m, judged, TicketId(next), &self.routes, now);
                if ingested.record(&decided) {
                    next += 1;
                }
                if let Intake::Opened(tr) = &decided {
                    if let Some(at) = intake::cards_not_before(&self.routes, &tr.ticket) {
                        written.held.push((tr.ticket.id, at));
                    }
                }
                let (Intake::Opened(tr) | Intake::FollowUp(tr)) = decided else {
                    continue;
                };
                let id = tr.ticket.id;
                for k in keys {
                    let k = k.into_bytes();
                    known.keys.insert(k.clone(), id.0);
                    written.keys.insert(k, id.0);
                }
                written.jobs.extend(tr.effects.into_iter().map(|e| (id, e)));
                written.audit.push(tr.audit);
                known.wrote(&tr.ticket);
                let was = known.tickets.insert(id.0, Some(tr.ticket)).flatten();
                written.tickets.entry(id.0).or_insert(was);
            }
            if let Some(c) = &d.cursor {
                written.cursors.retain(|(source, _)| *source != d.source);
                written.cursors.push((d.source.as_str(), c.as_bytes()));
            }
            done.push(ingested);
        }
        written.write(&tx, &known, now, &self.routes).await?;
        written.hold_cards(&tx).await?;
        if next != first {
            let next = sql_id(next).ok_or_else(|| unreadable("ticket numbers ran out"))?;
            tx.execute(
                "UPDATE counters SET value = $1 WHERE name = 'next_ticket'",
                &[&next],
            )
            .await?;
        }
        tx.commit().await?;
        let mut done = done.into_iter();
        Ok(refused
            .iter_mut()
            .map(|r| match r.take() {
                Some(e) => Err(e),
                None => done
                    .next()
                    .ok_or_else(|| unreadable("an ingest outcome went missing")),
            })
            .collect())
    }

    /// Judge ticket `id` as stored (locked until the commit) and commit the transition
    /// `decide` returns, with the instant its jobs are queued at: the ticket committed
    /// (`None`: nothing to do), or `decide`'s refusal (nothing written).
    async fn judge_once<R>(
        &self,
        id: TicketId,
        decide: &(dyn Fn(&Ticket) -> Decided<R> + Send + Sync),
    ) -> Result<Result<Option<Ticket>, R>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let Some(ticket) = lock_ticket(&tx, id).await? else {
            return Err(StoreError::NoSuchTicket(id));
        };
        let (tr, now) = match decide(&ticket) {
            Err(r) => return Ok(Err(r)),
            Ok(None) => return Ok(Ok(None)),
            Ok(Some(decided)) => decided,
        };
        commit_transition(&tx, Some(&ticket), &tr, now, &self.routes).await?;
        tx.commit().await?;
        Ok(Ok(Some(tr.ticket)))
    }

    async fn queue_desk_job_once(
        &self,
        effect: &Effect,
        state_key: &str,
        state_value: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        enqueue(&tx, DESK_JOBS, effect, now).await?;
        put_state(&tx, state_key, state_value).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_jobs_once(
        &self,
        claimant: &str,
        limit: usize,
        now: DateTime<Utc>,
        hold_for: std::time::Duration,
    ) -> Result<Claimed, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Walking the queue in id order (its primary key), take the due jobs nobody holds
        // a live claim on that head their ticket lane (no older job in it: the lanes
        // index answers that), locked, skipping any another sender is taking right now.
        // The walk stops after `limit`, so its cost follows the claims, not the queue.
        let sql = format!(
            "WITH picked AS (
                 SELECT o.id FROM outbox o
                 WHERE (o.not_before IS NULL OR o.not_before <= $1)
                   AND (o.claimed_until IS NULL OR o.claimed_until <= clock_timestamp())
                   AND NOT EXISTS (
                       SELECT 1 FROM outbox e
                       WHERE e.ticket = o.ticket AND e.lane = o.lane AND e.id < o.id
                   )
                 ORDER BY o.id
                 LIMIT $2
                 FOR UPDATE OF o SKIP LOCKED
             )
             UPDATE outbox SET attempts = outbox.attempts + 1,
                               claimed_by = $3,
                               claimed_until = clock_timestamp() + $4::bigint * interval '1 microsecond'
             FROM picked WHERE outbox.id = picked.id
             RETURNING {}",
            JOB_COLUMNS
                .split(", ")
                .map(|c| format!("outbox.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = tx
            .query(&sql, &[&now, &limit, &claimant, &micros(hold_for)])
            .await?;
        let mut jobs = rows.iter().map(job_of).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| j.id);
        // Only a sender with room to spare asks when the next deferred head comes due
        // (deferred jobs are few: the partial index holds only them).
        let next_due: Option<DateTime<Utc>> =
            if jobs.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
                tx.query_one(
                    "SELECT min(o.not_before) FROM outbox o
                 WHERE o.not_before > $1
                   AND (o.claimed_until IS NULL OR o.claimed_until <= clock_timestamp())
                   AND NOT EXISTS (
                       SELECT 1 FROM outbox e
                       WHERE e.ticket = o.ticket AND e.lane = o.lane AND e.id < o.id
                   )",
                    &[&now],
                )
                .await?
                .try_get(0)?
            } else {
                None
            };
        tx.commit().await?;
        Ok(Claimed { jobs, next_due })
    }

    async fn give_up_once(
        &self,
        job: &Job,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(id) = sql_id(job.id) else {
            return Ok(());
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        if claimed_since(&tx, id, job).await? {
            return Ok(());
        }
        tx.execute("DELETE FROM outbox WHERE id = $1", &[&id])
            .await?;
        let mut kept = job.clone();
        kept.last_error = Some(reason.to_string());
        tx.execute(
            "INSERT INTO failed_jobs (id, body) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
            &[&id, &Json(&kept)],
        )
        .await?;
        if job.ticket != DESK_JOBS {
            append_audit(
                &tx,
                &AuditEntry::gave_up(job.ticket, now, job.attempts, reason),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn complete_once(
        &self,
        job: &Job,
        event: Option<&SystemEvent>,
        more: &[Effect],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        if let Some(id) = sql_id(job.id) {
            if claimed_since(&tx, id, job).await? {
                return Ok(()); // another sender's now
            }
            tx.execute("DELETE FROM outbox WHERE id = $1", &[&id])
                .await?;
        }
        // The ticket is locked before anything is queued for it, so its jobs are queued
        // in the order its changes commit.
        let ticket = lock_ticket(&tx, job.ticket).await?;
        for effect in more {
            enqueue(&tx, job.ticket, effect, now).await?;
        }
        if let Some(ev) = event {
            let Some(ticket) = ticket else {
                return Err(StoreError::NoSuchTicket(job.ticket));
            };
            if let SystemEvent::ReplyPublished { remote_id, .. } = ev {
                let keys = intake::post_keys(&ticket.mention, remote_id);
                let raw_keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
                let id = sql_id(ticket.id.0).ok_or(StoreError::NoSuchTicket(ticket.id))?;
                remember_keys(&tx, &raw_keys, &vec![id; raw_keys.len()]).await?;
            }
            let tr = apply_system(&ticket, ev.clone(), now);
            if let Some(id) = ticket.incident {
                // After the ticket's lock, as every change of an incident takes them.
                if let Some(mut incident) = lock_incident(&tx, id).await? {
                    let was = incident.clone();
                    incident.count_outcome(&ticket, &tr.ticket, now);
                    if incident != was {
                        put_incident(&tx, &incident).await?;
                    }
                }
            }
            commit_transition(&tx, Some(&ticket), &tr, now, &self.routes).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// [`Store::change_incident`] in one transaction: the tickets named are locked first
    /// (in number order, as everything that locks several does), then the incident (or
    /// the incident counter, for a new one).
    async fn change_incident_once(
        &self,
        id: Option<IncidentId>,
        tickets: &[TicketId],
        decide: &IncidentDecide<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let ids: Vec<i64> = tickets.iter().filter_map(|t| sql_id(t.0)).collect();
        let rows = tx
            .query(
                "SELECT body::text FROM tickets WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .await?;
        let read: Vec<Ticket> = rows
            .iter()
            .map(|r| json_of(r, 0))
            .collect::<Result<_, _>>()?;
        let (stored, number) = match id {
            Some(id) => match lock_incident(&tx, id).await? {
                Some(incident) => (Some(incident), id),
                None => return Err(StoreError::NoSuchIncident(id)),
            },
            None => {
                let row = tx
                    .query_opt(
                        "SELECT value FROM counters WHERE name = 'next_incident' FOR UPDATE",
                        &[],
                    )
                    .await?
                    .ok_or_else(|| unreadable("the incident counter is missing"))?;
                (None, IncidentId(id_of(&row, 0)?))
            }
        };
        let Some(change) = decide(stored.as_ref(), number, &read) else {
            return Ok(None);
        };
        let number_sql = sql_id(number.0).ok_or_else(|| unreadable("incident numbers ran out"))?;
        if id.is_none() {
            tx.execute(
                "UPDATE counters SET value = $1 WHERE name = 'next_incident'",
                &[&(number_sql + 1)],
            )
            .await?;
        }
        let changed: Vec<(Ticket, Ticket)> =
            crate::domain::incident::moved_members(&change, number, &read)
                .into_iter()
                .filter_map(|new| {
                    let old = read.iter().find(|t| t.id == new.id)?.clone();
                    Some((old, new))
                })
                .collect();
        let rows: Vec<(Option<&Ticket>, &Ticket)> =
            changed.iter().map(|(old, new)| (Some(old), new)).collect();
        index::upsert_tickets(&tx, &rows, &self.routes).await?;
        let (joined, left): (Vec<i64>, Vec<i64>) = {
            let mut joined = Vec::new();
            let mut left = Vec::new();
            for (_, t) in &changed {
                let id = sql_id(t.id.0).ok_or(StoreError::NoSuchTicket(t.id))?;
                if t.incident.is_some() {
                    joined.push(id);
                } else {
                    left.push(id);
                }
            }
            (joined, left)
        };
        if !joined.is_empty() {
            tx.execute(
                "INSERT INTO incident_members (incident, ticket)
                 SELECT $1, ticket FROM unnest($2::bigint[]) AS m(ticket)
                 ON CONFLICT DO NOTHING",
                &[&number_sql, &joined],
            )
            .await?;
        }
        if !left.is_empty() {
            tx.execute(
                "DELETE FROM incident_members WHERE incident = $1 AND ticket = ANY($2)",
                &[&number_sql, &left],
            )
            .await?;
        }
        let mut jobs: Vec<(TicketId, &Effect)> =
            change.effects.iter().map(|e| (DESK_JOBS, e)).collect();
        jobs.extend(change.ticket_effects.iter().map(|(t, e)| (*t, e)));
        enqueue_all(&tx, &jobs, now).await?;
        let audit: Vec<&AuditEntry> = change.audit.iter().collect();
        append_audits(&tx, &audit).await?;
        let mut incident = change.incident.clone();
        incident.id = number;
        put_incident(&tx, &incident).await?;
        tx.commit().await?;
        Ok(Some(incident))
    }

    async fn save_card_once(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError> {
        let Some(id) = sql_id(ticket.0) else {
            return Err(StoreError::NoSuchTicket(ticket));
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let surface = surface_key(card.surface);
        tx.execute(
            "INSERT INTO cards (ticket, surface, body) VALUES ($1, $2, $3)
             ON CONFLICT (ticket, surface) DO UPDATE SET body = EXCLUDED.body",
            &[&id, &surface, &Json(card)],
        )
        .await?;
        tx.execute(
            "INSERT INTO card_index (surface, channel, message_id, ticket) VALUES ($1, $2, $3, $4)
             ON CONFLICT (surface, channel, message_id) DO UPDATE SET ticket = EXCLUDED.ticket",
            &[
                &surface,
                &card.channel.as_bytes(),
                &card.message_id.as_bytes(),
                &id,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn report_lost_card_once(
        &self,
        ticket: TicketId,
        surface: SurfaceKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(id) = sql_id(ticket.0) else {
            return Err(StoreError::NoSuchTicket(ticket));
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        lock_ticket(&tx, ticket).await?;
        let key = surface_key(surface);
        let removed = tx
            .query_opt(
                "DELETE FROM cards WHERE ticket = $1 AND surface = $2 RETURNING body::text",
                &[&id, &key],
            )
            .await?;
        if let Some(row) = removed {
            let card: CardRef = json_of(&row, 0)?;
            tx.execute(
                "DELETE FROM card_index WHERE surface = $1 AND channel = $2 AND message_id = $3",
                &[&key, &card.channel.as_bytes(), &card.message_id.as_bytes()],
            )
            .await?;
        }
        // Counted for `/metrics`, in the same transaction as the loss itself.
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ($1, 1)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
            &[&lost_cards_key(surface)],
        )
        .await?;
        let note = Note::CardLost {
            surface,
            reason: reason.to_string(),
        };
        enqueue(&tx, ticket, &Effect::ThreadNote(note), now).await?;
        append_audit(&tx, &AuditEntry::card_lost(ticket, now, surface, reason)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn first_delivery_once(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let fresh_since = now - SEEN_EVENTS_FOR;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        // Of concurrent upserts of one id, the first commits; the others wait on its row
        // and then find it fresh.
        let first = tx
            .query_opt(
                "INSERT INTO seen_events (source, id, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source, id) DO UPDATE SET seen_at = EXCLUDED.seen_at
                 WHERE seen_events.seen_at < $4
                 RETURNING 1",
                &[&source.as_bytes(), &id.as_bytes(), &now, &fresh_since],
            )
            .await?
            .is_some();
        if first {
            tx.execute(
                "DELETE FROM seen_events WHERE (source, id) IN (
                     SELECT source, id FROM seen_events WHERE seen_at < $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED
                 )",
                &[&fresh_since, &PRUNE_PER_SIGHTING],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(first)
    }

    async fn append_audit_once(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        append_audit(&tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The due instants are compared with this handle's routes once: computed under
    /// other policies, their recomputation starts (see `due_tickets`).
    async fn check_routes(&self) -> Result<(), StoreError> {
        if self.routes_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let fingerprint = self.routes.policy_fingerprint();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let stored = tx
            .query_opt(
                "SELECT value FROM state WHERE key = $1 FOR UPDATE",
                &[&index::FINGERPRINT],
            )
            .await?
            .map(|row| get::<Vec<u8>>(&row, 0))
            .transpose()?;
        if stored.as_deref() != Some(fingerprint.as_bytes()) {
            put_state(&tx, index::FINGERPRINT, fingerprint.as_bytes()).await?;
            put_state(&tx, index::RECHECK, b"0").await?;
            tracing::info!("the routes' SLA policies changed: every open ticket's next check is computed again, a round at a time");
        }
        tx.commit().await?;
        self.routes_checked.store(true, Ordering::Release);
        Ok(())
    }

    async fn recheck_due_once(&self, limit: usize) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let more = index::recheck_due(&tx, &self.routes, limit).await?;
        tx.commit().await?;
        Ok(more)
    }

    async fn rewrite_once(&self, rw: &privacy::Rewrite) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let id = rw.ticket.id;
        let Some(ticket) = lock_ticket(&tx, id).await? else {
            return Err(StoreError::NoSuchTicket(id));
        };
        index::upsert_ticket(&tx, Some(&ticket), &rw.ticket, &self.routes).await?;
        let sql_ticket = sql_id(id.0).ok_or(StoreError::NoSuchTicket(id))?;
        let rows = tx
            .query(
                "SELECT seq, body::text FROM audit WHERE ticket = $1 ORDER BY seq FOR UPDATE",
                &[&sql_ticket],
            )
            .await?;
        let mut seqs = Vec::new();
        let mut bodies = Vec::new();
        for row in &rows {
            let entry: AuditEntry = json_of(row, 1)?;
            let red = privacy::redact_audit(&entry, &rw.redact);
            if red != entry {
                seqs.push(get::<i64>(row, 0)?);
                bodies.push(Json(red));
            }
        }
        if !seqs.is_empty() {
            tx.execute(
                "UPDATE audit SET body = u.body
                 FROM unnest($1::bigint[], $2::json[]) AS u(seq, body)
                 WHERE audit.seq = u.seq",
                &[&seqs, &bodies],
            )
            .await?;
        }
        let plain: Vec<&[u8]> = rw.rekey.iter().map(|(p, _)| p.as_bytes()).collect();
        let hashed: Vec<&[u8]> = rw.rekey.iter().map(|(_, h)| h.as_bytes()).collect();
        if !plain.is_empty() {
            // A plain key naming another ticket stays that ticket's.
            tx.execute(
                "WITH k AS (SELECT * FROM unnest($1::bytea[], $2::bytea[]) AS k(plain, hashed)),
                 gone AS (
                     DELETE FROM dedupe d USING k
                     WHERE d.key = k.plain AND d.ticket = $3
                     RETURNING d.key
                 )
                 INSERT INTO dedupe (key, ticket)
                 SELECT k.hashed, $3 FROM k
                 WHERE NOT EXISTS (SELECT 1 FROM dedupe d WHERE d.key = k.plain AND d.ticket <> $3)
                 ON CONFLICT (key) DO UPDATE SET ticket = EXCLUDED.ticket",
                &[&plain, &hashed, &sql_ticket],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_once(&self, id: TicketId, mark: &Mark<'_>) -> Result<Option<Ticket>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.check_fence(&tx).await?;
        let Some(ticket) = lock_ticket(&tx, id).await? else {
            return Err(StoreError::NoSuchTicket(id));
        };
        let Some(marks) = mark(&ticket) else {
            return Ok(None);
        };
        let marked = Ticket {
            sla: marks,
            ..ticket.clone()
        };
        index::upsert_ticket(&tx, Some(&ticket), &marked, &self.routes).await?;
        tx.commit().await?;
        Ok(Some(marked))
    }

    async fn counter(&self, name: &str) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM counters WHERE name = $1",
                &[&format!("{}{name}", index::TALLY)],
            )
            .await?;
        Ok(match row {
            Some(row) => usize::try_from(index::count(&row)?).unwrap_or(usize::MAX),
            None => 0,
        })
    }

    async fn tickets_where(&self, sql: &str) -> Result<Vec<Ticket>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(sql, &[]).await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }

    async fn audit_where(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(sql, params).await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }
}

/// Apply every migration `config`'s database lacks (as [`PostgresStore::connect`] does
/// first): the versions applied now, none if it was up to date. For
/// `mentionbridge migrate`, run before a release rolls out.
pub async fn migrate(config: &PostgresConfig) -> Result<Vec<i64>, StoreError> {
    let pool = schema::pool(config)?;
    let applied = schema::apply(&pool, config).await?;
    let mut conn = Conn(pool.get().await?);
    index::fill(&mut conn, &Routes::default()).await?;
    Ok(applied)
}

/// Whether writes under each of `fences` may go ahead: `None` for a write under no
/// fence or under its duty's latest grant, the refusal otherwise. Each duty's lease row
/// is read once and stays share-locked until `tx` ends, so no new grant commits while
/// the writes do.
async fn check_fences(
    tx: &Tx<'_>,
    fences: &[Option<&Arc<Fence>>],
) -> Result<Vec<Option<StoreError>>, StoreError> {
    let leases: Vec<Option<Result<Lease, StoreError>>> =
        fences.iter().map(|f| f.map(|f| f.lease())).collect();
    let mut duties: Vec<&str> = leases
        .iter()
        .filter_map(|l| match l {
            Some(Ok(lease)) => Some(lease.duty.as_str()),
            _ => None,
        })
        .collect();
    duties.sort_unstable();
    duties.dedup();
    let mut granted: HashMap<String, (String, i64)> = HashMap::new();
    if !duties.is_empty() {
        let rows = tx
            .query(
                "SELECT duty, holder, token FROM leases WHERE duty = ANY($1)
                 ORDER BY duty FOR SHARE",
                &[&duties],
            )
            .await?;
        for row in rows {
            granted.insert(get(&row, 0)?, (get(&row, 1)?, get(&row, 2)?));
        }
    }
    Ok(leases
        .into_iter()
        .map(|l| match l {
            None => None,
            Some(Err(refused)) => Some(refused),
            Some(Ok(lease)) => match granted.get(&lease.duty) {
                Some((holder, token))
                    if *holder == lease.holder && sql_id(lease.token) == Some(*token) =>
                {
                    None
                }
                _ => Some(StoreError::Fenced { duty: lease.duty }),
            },
        })
        .collect())
}

/// What intake of a group of deliveries reads, fetched up front and kept up to date as
/// it decides: dedupe keys → ticket, and the tickets mentions answer (locked for the
/// rest of the transaction; `None`: the ticket a key names is not there).
#[derive(Default)]
struct IntakeView {
    keys: HashMap<Vec<u8>, u64>,
    tickets: HashMap<u64, Option<Ticket>>,
    /// Each author's latest tickets, newest first (by `domain::priority::author_key`).
    contacts: HashMap<String, Vec<Contact>>,
}

impl IntakeView {
    /// Every key the deliveries' mentions are known by or answer, in one look-up; then
    /// the tickets they answer, in another.
    async fn read(tx: &Tx<'_>, deliveries: &[&Delivery]) -> Result<IntakeView, StoreError> {
        let mentions = || deliveries.iter().flat_map(|d| &d.mentions);
        let wanted: HashSet<String> = mentions()
            .flat_map(|m| m.dedupe_keys().into_iter().chain(intake::parent_keys(m)))
            .collect();
        let mut view = IntakeView::default();
        if wanted.is_empty() {
            return Ok(view);
        }
        view.read_contacts(tx, mentions().map(author_key).collect())
            .await?;
        // Where a post's ticket was erased, its keys are kept as keyed hashes: each
        // wanted key is looked up by its hash too, found as the plain key.
        let hash_key: Option<Vec<u8>> = tx
            .query_opt(
                "SELECT value FROM state WHERE key = $1",
                &[&privacy::HASH_KEY_STATE],
            )
            .await?
            .map(|row| get::<Vec<u8>>(&row, 0))
            .transpose()?
            .and_then(|raw| privacy::hash_key_of(&raw));
        let plain: Vec<String> = wanted.iter().cloned().collect();
        let hashed: HashMap<String, String> = match &hash_key {
            Some(k) => privacy::hashed_keys(k, &plain)
                .into_iter()
                .map(|(plain, hashed)| (hashed, plain))
                .collect(),
            None => HashMap::new(),
        };
        let raw: Vec<&[u8]> = plain
            .iter()
            .chain(hashed.keys())
            .map(|k| k.as_bytes())
            .collect();
        let rows = tx
            .query(
                "SELECT key, ticket FROM dedupe WHERE key = ANY($1)",
                &[&raw],
            )
            .await?;
        let mut erased = Vec::new();
        for row in rows {
            let key: Vec<u8> = get(&row, 0)?;
            let ticket = id_of(&row, 1)?;
            match std::str::from_utf8(&key).ok().and_then(|k| hashed.get(k)) {
                Some(plain) => erased.push((plain.clone().into_bytes(), ticket)),
                None => {
                    view.keys.insert(key, ticket);
                }
            }
        }
        for (plain, ticket) in erased {
            view.keys.entry(plain).or_insert(ticket);
        }
        let parents: BTreeSet<u64> = mentions().filter_map(|m| view.parent_of(m)).collect();
        if parents.is_empty() {
            return Ok(view);
        }
        let ids: Vec<i64> = parents.iter().filter_map(|id| sql_id(*id)).collect();
        let rows = tx
            .query(
                "SELECT id, body::text FROM tickets WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .await?;
        for row in rows {
            view.tickets
                .insert(id_of(&row, 0)?, Some(json_of(&row, 1)?));
        }
        for id in parents {
            view.tickets.entry(id).or_insert(None);
        }
        Ok(view)
    }

    /// The latest tickets of each of `authors`, in one look-up through the index by
    /// author.
    async fn read_contacts(
        &mut self,
        tx: &Tx<'_>,
        authors: BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let authors: Vec<String> = authors.into_iter().collect();
        let kept = CONTACTS_KEPT as i64;
        let rows = tx
            .query(
                "SELECT a.k, t.id, t.received_ns, NOT t.closed
                 FROM unnest($1::text[]) AS a(k)
                 CROSS JOIN LATERAL (
                     SELECT id, received_ns, closed FROM tickets
                     WHERE author_key = a.k ORDER BY id DESC LIMIT $2
                 ) t",
                &[&authors, &kept],
            )
            .await?;
        for row in rows {
            let author: String = get(&row, 0)?;
            let received: Option<i64> = get(&row, 2)?;
            self.contacts.entry(author).or_default().push(Contact {
                ticket: TicketId(id_of(&row, 1)?),
                received: DateTime::from_timestamp_nanos(received.unwrap_or(0)),
                open: get(&row, 3)?,
            });
        }
        for list in self.contacts.values_mut() {
            list.sort_by_key(|c| std::cmp::Reverse(c.ticket));
        }
        Ok(())
    }

    /// A ticket this intake wrote, as its author's latest contact.
    fn wrote(&mut self, ticket: &Ticket) {
        let list = self.contacts.entry(ticket_author_key(ticket)).or_default();
        let open = !ticket.is_closed();
        match list.iter_mut().find(|c| c.ticket == ticket.id) {
            Some(c) => c.open = open,
            None => {
                list.insert(
                    0,
                    Contact {
                        ticket: ticket.id,
                        received: ticket.received_at(),
                        open,
                    },
                );
                list.truncate(CONTACTS_KEPT);
            }
        }
    }

    /// The ticket holding the post `m` answers: the first of intake's keys for it that
    /// is known.
    fn parent_of(&self, m: &Mention) -> Option<u64> {
        intake::parent_keys(m)
            .iter()
            .find_map(|k| self.keys.get(k.as_bytes()).copied())
    }

    /// Ticket `id` as this transaction has it (read and locked now if it was not yet).
    async fn ticket(&mut self, tx: &Tx<'_>, id: u64) -> Result<Option<Ticket>, StoreError> {
        if let Some(ticket) = self.tickets.get(&id) {
            return Ok(ticket.clone());
        }
        let ticket = lock_ticket(tx, TicketId(id)).await?;
        self.tickets.insert(id, ticket.clone());
        Ok(ticket)
    }
}

/// What intake of a group decided to write; each ticket's row once, as it ends up.
#[derive(Default)]
struct Written<'d> {
    /// Each ticket written, with the row it replaces (`None`: a new ticket).
    tickets: BTreeMap<u64, Option<Ticket>>,
    keys: BTreeMap<Vec<u8>, u64>,
    jobs: Vec<(TicketId, Effect)>,
    audit: Vec<AuditEntry>,
    cursors: Vec<(&'d str, &'d [u8])>,
    /// New tickets whose card waits (for storms), and until when.
    held: Vec<(TicketId, DateTime<Utc>)>,
}

impl Written<'_> {
    /// Once the jobs are queued: each held ticket's card job (its only one: the ticket
    /// is new) is not due before its time.
    async fn hold_cards(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let tickets = self
            .held
            .iter()
            .map(|(t, _)| sql_id(t.0).ok_or(StoreError::NoSuchTicket(*t)))
            .collect::<Result<Vec<_>, _>>()?;
        let until: Vec<DateTime<Utc>> = self.held.iter().map(|(_, at)| *at).collect();
        tx.execute(
            "UPDATE outbox o SET not_before = h.until
             FROM unnest($1::bigint[], $2::timestamptz[]) AS h(ticket, until)
             WHERE o.ticket = h.ticket AND o.lane = 'chat'",
            &[&tickets, &until],
        )
        .await?;
        Ok(())
    }

    /// One statement per table, sent together (the connection pipelines them: one round
    /// trip).
    async fn write(
        &self,
        tx: &Tx<'_>,
        view: &IntakeView,
        now: DateTime<Utc>,
        routes: &Routes,
    ) -> Result<(), StoreError> {
        let tickets: Vec<(Option<&Ticket>, &Ticket)> = self
            .tickets
            .iter()
            .filter_map(|(id, was)| Some((was.as_ref(), view.tickets.get(id)?.as_ref()?)))
            .collect();
        let keys: Vec<&[u8]> = self.keys.keys().map(Vec::as_slice).collect();
        let owners = self
            .keys
            .values()
            .map(|id| sql_id(*id).ok_or(StoreError::NoSuchTicket(TicketId(*id))))
            .collect::<Result<Vec<_>, _>>()?;
        let jobs: Vec<(TicketId, &Effect)> = self.jobs.iter().map(|(t, e)| (*t, e)).collect();
        let audit: Vec<&AuditEntry> = self.audit.iter().collect();
        tokio::try_join!(
            index::upsert_tickets(tx, &tickets, routes),
            remember_keys(tx, &keys, &owners),
            enqueue_all(tx, &jobs, now),
            append_audits(tx, &audit),
            put_cursors(tx, &self.cursors),
        )?;
        Ok(())
    }
}

/// A row of (id, received_ns, points, waiting) as the open list sorts it.
fn open_priority_of(row: &Row) -> Result<crate::ports::OpenPriority, StoreError> {
    let received: Option<i64> = get(row, 1)?;
    Ok(crate::ports::OpenPriority {
        ticket: TicketId(id_of(row, 0)?),
        received: DateTime::from_timestamp_nanos(received.unwrap_or(0)),
        score: get(row, 2)?,
        waiting: get(row, 3)?,
    })
}

/// Incident `id`, locked for the rest of `tx`.
async fn lock_incident(tx: &Tx<'_>, id: IncidentId) -> Result<Option<Incident>, StoreError> {
    lock_body(
        tx,
        "SELECT body::text FROM incidents WHERE id = $1 FOR UPDATE",
        id.0,
    )
    .await
}

/// The record `sql` selects by `id` (locking it), read from its JSON body.
async fn lock_body<T: serde::de::DeserializeOwned>(
    tx: &Tx<'_>,
    sql: &str,
    id: u64,
) -> Result<Option<T>, StoreError> {
    let Some(id) = sql_id(id) else {
        return Ok(None);
    };
    tx.query_opt(sql, &[&id])
        .await?
        .map(|row| json_of(&row, 0))
        .transpose()
}

async fn put_incident(tx: &Tx<'_>, incident: &Incident) -> Result<(), StoreError> {
    let id = sql_id(incident.id.0).ok_or_else(|| unreadable("incident numbers ran out"))?;
    tx.execute(
        "INSERT INTO incidents (id, body) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
        &[&id, &Json(incident)],
    )
    .await?;
    Ok(())
}

/// Ticket `id`, locked for the rest of `tx`.
async fn lock_ticket(tx: &Tx<'_>, id: TicketId) -> Result<Option<Ticket>, StoreError> {
    lock_body(
        tx,
        "SELECT body::text FROM tickets WHERE id = $1 FOR UPDATE",
        id.0,
    )
    .await
}

/// Another sender claimed `job` since this one did (its row, locked, counts more
/// attempts).
async fn claimed_since(tx: &Tx<'_>, id: i64, job: &Job) -> Result<bool, StoreError> {
    let row = tx
        .query_opt(
            "SELECT attempts FROM outbox WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(row) => {
            let stored: i32 = get(&row, 0)?;
            i64::from(stored) > i64::from(job.attempts)
        }
        None => false,
    })
}

/// Remember each key of `keys` as its ticket's (the same position of `tickets`),
/// replacing what a key pointed at. Each key at most once.
async fn remember_keys(tx: &Tx<'_>, keys: &[&[u8]], tickets: &[i64]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO dedupe (key, ticket) SELECT * FROM unnest($1::bytea[], $2::bigint[])
         ON CONFLICT (key) DO UPDATE SET ticket = EXCLUDED.ticket",
        &[&keys, &tickets],
    )
    .await?;
    Ok(())
}

/// Move each source's cursor (each source at most once).
async fn put_cursors(tx: &Tx<'_>, cursors: &[(&str, &[u8])]) -> Result<(), StoreError> {
    if cursors.is_empty() {
        return Ok(());
    }
    let (sources, values): (Vec<&str>, Vec<&[u8]>) = cursors.iter().copied().unzip();
    tx.execute(
        "INSERT INTO cursors (source, value) SELECT * FROM unnest($1::text[], $2::bytea[])
         ON CONFLICT (source) DO UPDATE SET value = EXCLUDED.value",
        &[&sources, &values],
    )
    .await?;
    Ok(())
}

async fn put_state(tx: &Tx<'_>, key: &str, value: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO state (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

/// Queue one job per effect, numbered in the order given (each ticket's jobs must be,
/// for the head-of-lane rule): rows are inserted in their position's order, and the
/// serial is taken row by row as they go in.
async fn enqueue_all(
    tx: &Tx<'_>,
    jobs: &[(TicketId, &Effect)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut tickets = Vec::with_capacity(jobs.len());
    let mut lanes = Vec::with_capacity(jobs.len());
    let mut bodies = Vec::with_capacity(jobs.len());
    for (ticket, effect) in jobs {
        tickets.push(sql_id(ticket.0).ok_or(StoreError::NoSuchTicket(*ticket))?);
        lanes.push(effect.lane().as_str());
        bodies.push(Json(QueuedJob {
            effect: (*effect).clone(),
            created_at: now,
        }));
    }
    tx.execute(
        "INSERT INTO outbox (ticket, lane, body)
         SELECT ticket, lane, body
         FROM unnest($1::bigint[], $2::text[], $3::json[]) WITH ORDINALITY
              AS job(ticket, lane, body, position)
         ORDER BY position",
        &[&tickets, &lanes, &bodies],
    )
    .await?;
    Ok(())
}

async fn enqueue(
    tx: &Tx<'_>,
    ticket: TicketId,
    effect: &Effect,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    enqueue_all(tx, &[(ticket, effect)], now).await
}

/// Append audit lines, in the order given (a ticket's trail reads back in it).
async fn append_audits(tx: &Tx<'_>, entries: &[&AuditEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let tickets = entries
        .iter()
        .map(|e| sql_id(e.ticket.0).ok_or(StoreError::NoSuchTicket(e.ticket)))
        .collect::<Result<Vec<_>, _>>()?;
    let bodies: Vec<Json<&AuditEntry>> = entries.iter().map(|e| Json(*e)).collect();
    tx.execute(
        "INSERT INTO audit (ticket, body)
         SELECT ticket, body
         FROM unnest($1::bigint[], $2::json[]) WITH ORDINALITY AS line(ticket, body, position)
         ORDER BY position",
        &[&tickets, &bodies],
    )
    .await?;
    Ok(())
}

async fn append_audit(tx: &Tx<'_>, entry: &AuditEntry) -> Result<(), StoreError> {
    append_audits(tx, &[entry]).await
}

/// Commit a transition of the ticket stored as `old` (`None`: a new ticket).
async fn commit_transition(
    tx: &Tx<'_>,
    old: Option<&Ticket>,
    tr: &Transition,
    now: DateTime<Utc>,
    routes: &Routes,
) -> Result<(), StoreError> {
    index::upsert_ticket(tx, old, &tr.ticket, routes).await?;
    let jobs: Vec<(TicketId, &Effect)> = tr.effects.iter().map(|e| (tr.ticket.id, e)).collect();
    enqueue_all(tx, &jobs, now).await?;
    append_audit(tx, &tr.audit).await
}

fn lease_state(row: &Row) -> Result<LeaseState, StoreError> {
    Ok(LeaseState {
        duty: get(row, 0)?,
        holder: get(row, 1)?,
        token: id_of(row, 2)?,
        renewed_at: get(row, 3)?,
        expires_at: get(row, 4)?,
    })
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    /// Every commit is durable when it returns (PostgreSQL's `synchronous_commit`, on by
    /// default and assumed): nothing is left to flush.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM cursors WHERE source = $1", &[&source])
            .await?;
        row.map(|r| {
            let raw: &[u8] = get(&r, 0)?;
            Ok(String::from_utf8_lossy(raw).into_owned())
        })
        .transpose()
    }

    async fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM state WHERE key = $1", &[&key])
            .await?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn set_state(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )
        .await?;
        Ok(())
    }

    async fn count_up(&self, key: &str, by: u64) -> Result<u64, StoreError> {
        retrying!(self.count_up_once(key, by))
    }

    async fn first_delivery(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        retrying!(self.first_delivery_once(source, id, now))
    }

    async fn seen_event_count(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n: i64 = get(
            &client
                .query_one("SELECT count(*) FROM seen_events", &[])
                .await?,
            0,
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn ingest_many(
        &self,
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Slots, StoreError> {
        retrying!(self.ingest_many_once(deliveries, now))
    }

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        self.body_by_id("SELECT body::text FROM tickets WHERE id = $1", id.0)
            .await
    }

    // -- customer history (issue 14) --
    async fn author_contacts(
        &self,
        author_key: &str,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError> {
        let limit = limit.min(CONTACTS_KEPT) as i64;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, received_ns, NOT closed FROM tickets
                 WHERE author_key = $1 ORDER BY id DESC LIMIT $2",
                &[&author_key, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let received: Option<i64> = get(row, 1)?;
                Ok(Contact {
                    ticket: TicketId(id_of(row, 0)?),
                    received: DateTime::from_timestamp_nanos(received.unwrap_or(0)),
                    open: get(row, 2)?,
                })
            })
            .collect()
    }

    async fn add_person_note(
        &self,
        author_key: &str,
        note: &crate::domain::customer::PersonNote,
    ) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO person_notes (author_key, body) VALUES ($1, $2)",
            &[&author_key, &Json(note)],
        )
        .await?;
        Ok(())
    }

    async fn person_notes(
        &self,
        author_key: &str,
    ) -> Result<Vec<crate::domain::customer::PersonNote>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body::text FROM person_notes WHERE author_key = $1 ORDER BY id",
                &[&author_key],
            )
            .await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }

    async fn forget_person_notes(&self, author_key: &str) -> Result<u64, StoreError> {
        self.write(
            "DELETE FROM person_notes WHERE author_key = $1",
            &[&author_key],
        )
        .await
    }

    async fn open_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where("SELECT body::text FROM tickets WHERE NOT closed ORDER BY id")
            .await
    }

    async fn all_tickets(&self) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where("SELECT body::text FROM tickets ORDER BY id")
            .await
    }

    async fn tickets_after(
        &self,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let after = match after {
            Some(id) => sql_id(id.0).unwrap_or(i64::MAX),
            None => -1,
        };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body::text FROM tickets WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }

    async fn ticket_count(&self) -> Result<usize, StoreError> {
        self.counter(tally::TICKETS).await
    }

    async fn open_tickets_numbered(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let client = self.client().await?;
        index::open_numbered(&client, &tally::number_ranges(prefix), limit).await
    }

    async fn open_ticket_count(&self) -> Result<usize, StoreError> {
        self.counter(tally::OPEN).await
    }

    async fn open_priorities(&self) -> Result<Vec<crate::ports::OpenPriority>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, received_ns, coalesce(priority_score, 0), first_answer_ns IS NULL
                 FROM tickets WHERE NOT closed ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(open_priority_of).collect()
    }

    /// Read through the index of open tickets that carries what the list sorts by;
    /// only each group's first `limit` rows leave the database.
    async fn open_list_heads(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::ports::OpenPriority>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, received_ns, score, waiting FROM (
                     SELECT id, received_ns, coalesce(priority_score, 0) AS score,
                            first_answer_ns IS NULL AS waiting,
                            row_number() OVER (
                                PARTITION BY coalesce(priority_score, 0), first_answer_ns IS NULL
                                ORDER BY received_ns, id) AS n
                     FROM tickets WHERE NOT closed) AS heads
                 WHERE n <= $1",
                &[&limit],
            )
            .await?;
        rows.iter().map(open_priority_of).collect()
    }

    async fn due_tickets(&self, until: DateTime<Utc>, limit: usize) -> Result<Due, StoreError> {
        retrying!(self.check_routes())?;
        let rechecking = retrying!(self.recheck_due_once(limit))?;
        let client = self.client().await?;
        let cap = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT body::text FROM tickets WHERE due_ns <= $1 ORDER BY due_ns, id LIMIT $2",
                &[&tally::nanos(until), &cap],
            )
            .await?;
        let tickets = rows
            .iter()
            .map(|r| json_of(r, 0))
            .collect::<Result<Vec<Ticket>, _>>()?;
        let taken = i64::try_from(tickets.len()).unwrap_or(i64::MAX);
        let next: Option<i64> = client
            .query_opt(
                "SELECT due_ns FROM tickets WHERE due_ns IS NOT NULL
                 ORDER BY due_ns, id OFFSET $1 LIMIT 1",
                &[&taken],
            )
            .await?
            .map(|r| get(&r, 0))
            .transpose()?;
        let next = next.map(DateTime::<Utc>::from_timestamp_nanos);
        Ok(Due {
            tickets,
            next: if rechecking {
                Some(next.map_or(until, |n| n.min(until)))
            } else {
                next
            },
        })
    }

    async fn mark(&self, id: TicketId, mark: &Mark<'_>) -> Result<Option<Ticket>, StoreError> {
        retrying!(self.mark_once(id, mark))
    }

    async fn rewrite_ticket(&self, rw: &privacy::Rewrite) -> Result<(), StoreError> {
        retrying!(self.rewrite_once(rw))
    }

    async fn received_facts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, TicketId)>,
        limit: usize,
    ) -> Result<Vec<crate::ports::tally::TicketFacts>, StoreError> {
        let (after_at, after_id) = match after {
            Some((at, id)) if at >= from => (tally::nanos(at), sql_id(id.0).unwrap_or(i64::MAX)),
            _ => (tally::nanos(from), -1),
        };
        let client = self.client().await?;
        let rows = client
            .query(
                // Only the index's own columns: read from the index alone where the
                // rows are all-visible.
                "SELECT id, facts::text FROM tickets
                 WHERE received_ns >= $1 AND received_ns < $2 AND (received_ns, id) > ($3, $4)
                 ORDER BY received_ns, id LIMIT $5",
                &[
                    &tally::nanos(from),
                    &tally::nanos(to),
                    &after_at,
                    &after_id,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        let mut facts = Vec::with_capacity(rows.len());
        let mut missing = Vec::new();
        for (at, r) in rows.iter().enumerate() {
            match get::<Option<&str>>(r, 1)? {
                Some(text) => facts.push(Some(serde_json::from_str(text)?)),
                None => {
                    // Written before version 4: from the body, below.
                    missing.push((get::<i64>(r, 0)?, at));
                    facts.push(None);
                }
            }
        }
        if !missing.is_empty() {
            let ids: Vec<i64> = missing.iter().map(|(id, _)| *id).collect();
            let bodies = client
                .query(
                    "SELECT id, body::text FROM tickets WHERE id = ANY($1)",
                    &[&ids],
                )
                .await?;
            let mut by_id = HashMap::with_capacity(bodies.len());
            for r in &bodies {
                by_id.insert(get::<i64>(r, 0)?, json_of::<Ticket>(r, 1)?);
            }
            for (id, at) in missing {
                // A ticket is never deleted; gone in between, it is left out.
                facts[at] = by_id.get(&id).map(tally::TicketFacts::of);
            }
        }
        Ok(facts.into_iter().flatten().collect())
    }

    async fn first_answers_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM tickets WHERE first_answer_ns >= $1 AND first_answer_ns < $2",
                &[&tally::nanos(from), &tally::nanos(to)],
            )
            .await?;
        Ok(usize::try_from(index::count(&row)?).unwrap_or(usize::MAX))
    }

    async fn counters(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, value FROM counters WHERE name LIKE $1",
                &[&format!("{}%", index::TALLY)],
            )
            .await?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let name: &str = get(row, 0)?;
            if let Some(name) = name.strip_prefix(index::TALLY) {
                out.insert(name.to_string(), get::<i64>(row, 1)?);
            }
        }
        Ok(out)
    }

    async fn answered_within(&self, route: &str, seconds: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(tickets), 0)::bigint FROM first_response_waits
                 WHERE route = $1 AND seconds <= $2",
                &[&route, &seconds],
            )
            .await?;
        index::count(&row)
    }

    async fn unanswered_since(&self, route: &str, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM tickets WHERE unanswered_route = $1 AND received_ns >= $2",
                &[&route, &tally::nanos(since)],
            )
            .await?;
        index::count(&row)
    }

    async fn act(&self, id: TicketId, judge: &Judge<'_>) -> Result<ActOutcome, StoreError> {
        let decide = |ticket: &Ticket| -> Result<_, crate::domain::Rejection> {
            let tr = judge(ticket)?;
            let at = ticket.updated_at.max(tr.audit.at);
            Ok(Some((tr, at)))
        };
        match retrying!(self.judge_once(id, &decide))? {
            Ok(Some(t)) => Ok(Ok(t)),
            Ok(None) => Err(unreadable("an accepted action wrote nothing")),
            Err(r) => Ok(Err(r)),
        }
    }

    async fn transition(
        &self,
        id: TicketId,
        decide: &Decide<'_>,
    ) -> Result<Option<Ticket>, StoreError> {
        let decide = |ticket: &Ticket| -> Result<_, std::convert::Infallible> {
            Ok(decide(ticket).map(|tr| {
                let at = tr.audit.at;
                (tr, at)
            }))
        };
        match retrying!(self.judge_once(id, &decide))? {
            Ok(t) => Ok(t),
            Err(never) => match never {},
        }
    }

    async fn queue_desk_job(
        &self,
        effect: Effect,
        state_key: &str,
        state_value: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        retrying!(self.queue_desk_job_once(&effect, state_key, state_value, now))
    }

    async fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM outbox ORDER BY id"),
                &[],
            )
            .await?;
        rows.iter().map(job_of).collect()
    }

    async fn pending_job_count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = get(
            &client.query_one("SELECT count(*) FROM outbox", &[]).await?,
            0,
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        let Some(id) = sql_id(id) else {
            return Ok(None);
        };
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM outbox WHERE id = $1"),
                &[&id],
            )
            .await?
            .map(|r| job_of(&r))
            .transpose()
    }

    async fn claim_jobs(
        &self,
        claimant: &str,
        limit: usize,
        now: DateTime<Utc>,
        hold_for: std::time::Duration,
    ) -> Result<Claimed, StoreError> {
        retrying!(self.claim_jobs_once(claimant, limit, now, hold_for))
    }

    async fn renew_claims(
        &self,
        claimant: &str,
        hold_for: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE outbox
             SET claimed_until = clock_timestamp() + $2::bigint * interval '1 microsecond'
             WHERE claimed_by = $1 AND claimed_until > clock_timestamp()",
            &[&claimant, &micros(hold_for)],
        )
        .await?;
        Ok(())
    }

    async fn holds_claim(
        &self,
        job: &Job,
        claimant: &str,
        hold_for: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let (Some(id), Ok(attempts)) = (sql_id(job.id), i32::try_from(job.attempts)) else {
            return Ok(false);
        };
        let extended = self
            .write(
                "UPDATE outbox
                 SET claimed_until = clock_timestamp() + $4::bigint * interval '1 microsecond'
                 WHERE id = $1 AND claimed_by = $2 AND attempts = $3
                   AND claimed_until > clock_timestamp()",
                &[&id, &claimant, &attempts, &micros(hold_for)],
            )
            .await?;
        Ok(extended == 1)
    }

    async fn defer(
        &self,
        job: &Job,
        not_before: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let Some(id) = sql_id(job.id) else {
            return Ok(());
        };
        // Left alone if done (no row) or claimed by another sender since.
        self.write(
            "UPDATE outbox
             SET not_before = $2, last_error = $3, claimed_by = NULL, claimed_until = NULL
             WHERE id = $1 AND attempts <= $4::bigint",
            &[
                &id,
                &not_before,
                &error.as_bytes(),
                &i64::from(job.attempts),
            ],
        )
        .await?;
        Ok(())
    }

    async fn give_up(&self, job: &Job, reason: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        retrying!(self.give_up_once(job, reason, now))
    }

    async fn failed_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT body::text FROM failed_jobs ORDER BY id", &[])
            .await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }

    async fn complete_with(
        &self,
        job: &Job,
        event: Option<SystemEvent>,
        more: &[Effect],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        retrying!(self.complete_once(job, event.as_ref(), more, now))
    }

    async fn save_card(&self, ticket: TicketId, card: &CardRef) -> Result<(), StoreError> {
        retrying!(self.save_card_once(ticket, card))
    }

    async fn report_lost_card(
        &self,
        ticket: TicketId,
        surface: SurfaceKind,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        retrying!(self.report_lost_card_once(ticket, surface, reason, now))
    }

    async fn cards_lost(&self, surface: SurfaceKind) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM counters WHERE name = $1",
                &[&lost_cards_key(surface)],
            )
            .await?;
        row.map(|r| id_of(&r, 0))
            .transpose()
            .map(|n| n.unwrap_or(0))
    }

    async fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        self.body_by_id("SELECT body::text FROM incidents WHERE id = $1", id.0)
            .await
    }

    async fn incidents_after(
        &self,
        after: Option<IncidentId>,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError> {
        let after = after.map_or(Some(0), |a| sql_id(a.0));
        let Some(after) = after else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body::text FROM incidents WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }

    async fn incident_members(
        &self,
        id: IncidentId,
        after: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketId>, StoreError> {
        let (Some(id), Some(after)) = (sql_id(id.0), after.map_or(Some(0), |a| sql_id(a.0))) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT ticket FROM incident_members WHERE incident = $1 AND ticket > $2
                 ORDER BY ticket LIMIT $3",
                &[&id, &after, &limit],
            )
            .await?;
        rows.iter().map(|r| id_of(r, 0).map(TicketId)).collect()
    }

    async fn change_incident(
        &self,
        id: Option<IncidentId>,
        tickets: &[TicketId],
        decide: &IncidentDecide<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>, StoreError> {
        retrying!(self.change_incident_once(id, tickets, decide, now))
    }

    async fn cards(&self, ticket: TicketId) -> Result<Vec<CardRef>, StoreError> {
        let Some(id) = sql_id(ticket.0) else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT body::text FROM cards WHERE ticket = $1 ORDER BY surface COLLATE \"C\"",
                &[&id],
            )
            .await?;
        rows.iter().map(|r| json_of(r, 0)).collect()
    }

    async fn ticket_by_card(
        &self,
        surface: SurfaceKind,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<TicketId>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT ticket FROM card_index
                 WHERE surface = $1 AND channel = $2 AND message_id = $3",
                &[
                    &surface_key(surface),
                    &channel.as_bytes(),
                    &message_id.as_bytes(),
                ],
            )
            .await?;
        row.map(|r| id_of(&r, 0).map(TicketId)).transpose()
    }

    async fn acquire_lease(
        &self,
        duty: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        // A new grant (nobody, expired, or another holder's expired lease) takes the
        // next token; the live holder asking again keeps its token, extended.
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO leases (duty, holder, token, renewed_at, expires_at)
                 VALUES ($1, $2, 1, clock_timestamp(),
                         clock_timestamp() + $3::bigint * interval '1 microsecond')
                 ON CONFLICT (duty) DO UPDATE SET
                     holder = EXCLUDED.holder,
                     token = CASE
                         WHEN leases.holder = EXCLUDED.holder
                              AND leases.expires_at > clock_timestamp()
                         THEN leases.token
                         ELSE leases.token + 1
                     END,
                     renewed_at = EXCLUDED.renewed_at,
                     expires_at = EXCLUDED.expires_at
                 WHERE leases.expires_at <= clock_timestamp() OR leases.holder = EXCLUDED.holder
                 RETURNING token",
                &[&duty, &holder, &micros(ttl)],
            )
            .await?;
        row.map(|r| {
            Ok(Lease {
                duty: duty.to_string(),
                holder: holder.to_string(),
                token: id_of(&r, 0)?,
            })
        })
        .transpose()
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let Some(token) = sql_id(lease.token) else {
            return Ok(false);
        };
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE leases
                 SET renewed_at = clock_timestamp(),
                     expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'
                 WHERE duty = $1 AND holder = $2 AND token = $3
                   AND expires_at > clock_timestamp()",
                &[&lease.duty, &lease.holder, &token, &micros(ttl)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let Some(token) = sql_id(lease.token) else {
            return Ok(());
        };
        let client = self.client().await?;
        client
            .execute(
                "UPDATE leases SET expires_at = 'epoch'
                 WHERE duty = $1 AND holder = $2 AND token = $3",
                &[&lease.duty, &lease.holder, &token],
            )
            .await?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseState>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT duty, holder, token, renewed_at, expires_at FROM leases
                 ORDER BY duty COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter().map(lease_state).collect()
    }

    fn fenced(&self, fence: Arc<Fence>) -> SharedStore {
        let mut handle = self.clone();
        handle.fence = Some(fence);
        Arc::new(handle)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        retrying!(self.append_audit_once(entry))
    }

    async fn audit_of(&self, ticket: TicketId) -> Result<Vec<AuditEntry>, StoreError> {
        let Some(id) = sql_id(ticket.0) else {
            return Ok(Vec::new());
        };
        self.audit_where(
            "SELECT body::text FROM audit WHERE ticket = $1 ORDER BY seq",
            &[&id],
        )
        .await
    }

    async fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_where("SELECT body::text FROM audit ORDER BY ticket, seq", &[])
            .await
    }

    async fn audit_after(
        &self,
        after: Option<AuditPos>,
        limit: usize,
    ) -> Result<Vec<(AuditPos, AuditEntry)>, StoreError> {
        let (ticket, line) = match after {
            Some(p) => (
                sql_id(p.ticket).unwrap_or(i64::MAX),
                sql_id(p.line).unwrap_or(i64::MAX),
            ),
            None => (i64::MIN, i64::MIN),
        };
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT ticket, seq, body::text FROM audit WHERE (ticket, seq) > ($1, $2)
                 ORDER BY ticket, seq LIMIT $3",
                &[&ticket, &line, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let pos = AuditPos {
                    ticket: id_of(r, 0)?,
                    line: id_of(r, 1)?,
                };
                Ok((pos, json_of(r, 2)?))
            })
            .collect()
    }
}
