//! The PostgreSQL store's ticket indexes (migration 3): the columns each ticket row keeps
//! for them, written by the one ticket upsert; the counters behind `/metrics` (`tally:`
//! rows of `counters`) and the first responses per route, changed in the same
//! transaction; the one-time fill of all of it for a database migrated from version 2;
//! and the recomputation of next-due instants after the routes changed.

use super::{get, json_of, sql_id, unreadable, Conn, Tx};
use crate::domain::routes::Routes;
use crate::domain::Ticket;
use crate::ports::tally::{counter_changes, nanos, TicketCounts, TicketFacts};
use crate::ports::StoreError;
use std::collections::BTreeMap;
use tokio_postgres::types::Json;

/// The prefix of the counters this module keeps in `counters`.
pub(super) const TALLY: &str = "tally:";

/// State keys: the indexes were filled (absent: a database just migrated from version
/// 2), the routes' fingerprint the due instants were computed under, and where their
/// recomputation stands (the next open ticket number).
const BUILT: &str = "ticket_index";
pub(super) const FINGERPRINT: &str = "due:routes";
pub(super) const RECHECK: &str = "due:recheck";

/// Rows read and written per statement while the indexes are filled.
const FILL_PAGE: i64 = 2000;

/// The columns of one ticket row.
struct Columns {
    id: i64,
    received: i64,
    due: Option<i64>,
    first_answer: Option<i64>,
    unanswered_route: Option<String>,
    author: String,
    score: i32,
}

impl Columns {
    fn of(ticket: &Ticket, counts: &TicketCounts, routes: &Routes) -> Result<Columns, StoreError> {
        Ok(Columns {
            id: sql_id(ticket.id.0).ok_or(StoreError::NoSuchTicket(ticket.id))?,
            received: nanos(counts.received),
            due: routes.next_due(ticket).map(nanos),
            first_answer: counts.first_answer.map(nanos),
            unanswered_route: counts.unanswered_key().map(|(route, _)| route.to_string()),
            author: crate::domain::priority::ticket_author_key(ticket),
            score: ticket.priority.score,
        })
    }
}

/// Every write of a ticket goes through here: the row with its index columns, and the
/// counters and first responses moved from `old` (`None`: a new ticket) to `ticket`,
/// in `tx`.
pub(super) async fn upsert_ticket(
    tx: &Tx<'_>,
    old: Option<&Ticket>,
    ticket: &Ticket,
    routes: &Routes,
) -> Result<(), StoreError> {
    upsert_tickets(tx, &[(old, ticket)], routes).await
}

/// [`upsert_ticket`] for many tickets (each at most once) in three statements: the rows,
/// the counters and the first responses, each moved from the row's `old` to its ticket.
pub(super) async fn upsert_tickets(
    tx: &Tx<'_>,
    rows: &[(Option<&Ticket>, &Ticket)],
    routes: &Routes,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut changes: BTreeMap<String, i64> = BTreeMap::new();
    let mut waits: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (old, ticket) in rows {
        let counts = TicketCounts::of(ticket);
        columns.push(Columns::of(ticket, &counts, routes)?);
        let was = old.map(TicketCounts::of);
        for (name, by) in counter_changes(was.as_ref(), &counts) {
            *changes.entry(name).or_default() += by;
        }
        let old_wait = was.as_ref().and_then(TicketCounts::wait_key);
        if old_wait != counts.wait_key() {
            if let Some((route, secs)) = old_wait {
                *waits.entry((route.to_string(), secs)).or_default() -= 1;
            }
            if let Some((route, secs)) = counts.wait_key() {
                *waits.entry((route.to_string(), secs)).or_default() += 1;
            }
        }
    }
    changes.retain(|_, by| *by != 0);
    let ids: Vec<i64> = columns.iter().map(|c| c.id).collect();
    let closed: Vec<bool> = rows.iter().map(|(_, t)| t.is_closed()).collect();
    let bodies: Vec<Json<&Ticket>> = rows.iter().map(|(_, t)| Json(*t)).collect();
    let facts: Vec<Json<TicketFacts>> =
        rows.iter().map(|(_, t)| Json(TicketFacts::of(t))).collect();
    let received: Vec<i64> = columns.iter().map(|c| c.received).collect();
    let due: Vec<Option<i64>> = columns.iter().map(|c| c.due).collect();
    let answered: Vec<Option<i64>> = columns.iter().map(|c| c.first_answer).collect();
    let unanswered: Vec<Option<&str>> = columns
        .iter()
        .map(|c| c.unanswered_route.as_deref())
        .collect();
    let authors: Vec<&str> = columns.iter().map(|c| c.author.as_str()).collect();
    let scores: Vec<i32> = columns.iter().map(|c| c.score).collect();
    tx.execute(
        "INSERT INTO tickets (id, closed, body, received_ns, due_ns, first_answer_ns,
                              unanswered_route, facts, author_key, priority_score)
         SELECT * FROM unnest($1::bigint[], $2::boolean[], $3::json[], $4::bigint[],
                              $5::bigint[], $6::bigint[], $7::text[], $8::json[],
                              $9::text[], $10::integer[])
         ON CONFLICT (id) DO UPDATE SET closed = EXCLUDED.closed, body = EXCLUDED.body,
             received_ns = EXCLUDED.received_ns, due_ns = EXCLUDED.due_ns,
             first_answer_ns = EXCLUDED.first_answer_ns,
             unanswered_route = EXCLUDED.unanswered_route, facts = EXCLUDED.facts,
             author_key = EXCLUDED.author_key, priority_score = EXCLUDED.priority_score",
        &[
            &ids,
            &closed,
            &bodies,
            &received,
            &due,
            &answered,
            &unanswered,
            &facts,
            &authors,
            &scores,
        ],
    )
    .await?;
    add_counts(tx, &changes).await?;
    add_waits(tx, &waits).await
}

/// Add to the named tally counters, in name order (so concurrent writers lock the rows in
/// one order).
async fn add_counts(tx: &Tx<'_>, changes: &BTreeMap<String, i64>) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = changes.keys().map(|n| format!("{TALLY}{n}")).collect();
    let by: Vec<i64> = changes.values().copied().collect();
    tx.execute(
        "INSERT INTO counters (name, value) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value",
        &[&names, &by],
    )
    .await?;
    Ok(())
}

async fn add_waits(tx: &Tx<'_>, waits: &BTreeMap<(String, i64), i64>) -> Result<(), StoreError> {
    let waits: Vec<_> = waits.iter().filter(|(_, by)| **by != 0).collect();
    if waits.is_empty() {
        return Ok(());
    }
    let routes: Vec<&str> = waits.iter().map(|((r, _), _)| r.as_str()).collect();
    let seconds: Vec<i64> = waits.iter().map(|((_, s), _)| *s).collect();
    let by: Vec<i64> = waits.iter().map(|(_, by)| **by).collect();
    tx.execute(
        "INSERT INTO first_response_waits (route, seconds, tickets)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
         ON CONFLICT (route, seconds)
         DO UPDATE SET tickets = first_response_waits.tickets + EXCLUDED.tickets",
        &[&routes, &seconds, &by],
    )
    .await?;
    Ok(())
}

/// Set the index columns of `rows` in one statement.
async fn set_columns(tx: &Tx<'_>, rows: &[Columns]) -> Result<(), StoreError> {
    let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
    let received: Vec<i64> = rows.iter().map(|c| c.received).collect();
    let due: Vec<Option<i64>> = rows.iter().map(|c| c.due).collect();
    let answered: Vec<Option<i64>> = rows.iter().map(|c| c.first_answer).collect();
    let unanswered: Vec<Option<&str>> =
        rows.iter().map(|c| c.unanswered_route.as_deref()).collect();
    let authors: Vec<&str> = rows.iter().map(|c| c.author.as_str()).collect();
    let scores: Vec<i32> = rows.iter().map(|c| c.score).collect();
    tx.execute(
        "UPDATE tickets SET received_ns = u.received, due_ns = u.due,
                first_answer_ns = u.answered, unanswered_route = u.unanswered,
                author_key = u.author, priority_score = u.score
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                     $6::text[], $7::integer[])
              AS u(id, received, due, answered, unanswered, author, score)
         WHERE tickets.id = u.id",
        &[
            &ids,
            &received,
            &due,
            &answered,
            &unanswered,
            &authors,
            &scores,
        ],
    )
    .await?;
    Ok(())
}

/// Fill the indexes of a database migrated from version 2 (or whose fill was cut
/// short), once, under the migration lock so replicas starting together fill it once:
/// every row's columns, the counters and the first responses, from the tickets, in one
/// transaction. Next-due instants follow `routes`; their fingerprint is kept, so a store
/// given other routes recomputes them (see `due_tickets`). `true`: it filled them now.
pub(super) async fn fill(conn: &mut Conn, routes: &Routes) -> Result<bool, StoreError> {
    let tx = conn.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&super::schema::MIGRATION_LOCK],
    )
    .await?;
    if tx
        .query_opt("SELECT 1 FROM state WHERE key = $1", &[&BUILT])
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let began = std::time::Instant::now();
    tx.execute(
        "DELETE FROM counters WHERE name LIKE $1",
        &[&format!("{TALLY}%")],
    )
    .await?;
    tx.execute("DELETE FROM first_response_waits", &[]).await?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut waits: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut after = 0i64;
    let mut filled = 0usize;
    loop {
        let rows = tx
            .query(
                "SELECT id, body::text FROM tickets WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &FILL_PAGE],
            )
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = get(last, 0)?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in &rows {
            let ticket: Ticket = json_of(row, 1)?;
            let c = TicketCounts::of(&ticket);
            for (name, by) in c.counters() {
                *counts.entry(name).or_default() += by;
            }
            if let Some((route, secs)) = c.wait_key() {
                *waits.entry((route.to_string(), secs)).or_default() += 1;
            }
            columns.push(Columns::of(&ticket, &c, routes)?);
        }
        set_columns(&tx, &columns).await?;
        filled += rows.len();
    }
    add_counts(&tx, &counts).await?;
    add_waits(&tx, &waits).await?;
    for (key, value) in [
        (BUILT, "1".to_string()),
        (FINGERPRINT, routes.policy_fingerprint()),
    ] {
        super::put_state(&tx, key, value.as_bytes()).await?;
    }
    tx.commit().await?;
    if filled > 0 {
        tracing::info!(
            tickets = filled,
            seconds = began.elapsed().as_secs_f64(),
            "ticket indexes filled for a database migrated from version 2"
        );
    }
    Ok(true)
}

/// After a change of routes, compute the due instants of the next `limit` open tickets
/// again (their rows locked, so no newer write is overwritten), moving the recheck on.
/// `true`: more remain.
pub(super) async fn recheck_due(
    tx: &Tx<'_>,
    routes: &Routes,
    limit: usize,
) -> Result<bool, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT value FROM state WHERE key = $1 FOR UPDATE",
            &[&RECHECK],
        )
        .await?
    else {
        return Ok(false);
    };
    let raw: Vec<u8> = get(&row, 0)?;
    let from: i64 = String::from_utf8_lossy(&raw).parse().unwrap_or(0);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            "SELECT id, body::text FROM tickets WHERE NOT closed AND id >= $1
             ORDER BY id LIMIT $2 FOR UPDATE",
            &[&from, &limit],
        )
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut due = Vec::with_capacity(rows.len());
    for row in &rows {
        let ticket: Ticket = json_of(row, 1)?;
        ids.push(get::<i64>(row, 0)?);
        due.push(routes.next_due(&ticket).map(nanos));
    }
    tx.execute(
        "UPDATE tickets SET due_ns = u.due FROM unnest($1::bigint[], $2::bigint[]) AS u(id, due)
         WHERE tickets.id = u.id",
        &[&ids, &due],
    )
    .await?;
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    match ids.last().filter(|_| more) {
        Some(last) => {
            super::put_state(tx, RECHECK, (last + 1).to_string().as_bytes()).await?;
        }
        None => {
            tx.execute("DELETE FROM state WHERE key = $1", &[&RECHECK])
                .await?;
        }
    }
    Ok(more)
}

/// Open tickets in the number `ranges` (half-open, ascending), oldest first, at most
/// `limit`: one index scan per range, stopping once `limit` are found.
pub(super) async fn open_numbered(
    conn: &Conn,
    ranges: &[(u64, u64)],
    limit: usize,
) -> Result<Vec<Ticket>, StoreError> {
    let mut out = Vec::new();
    for (lo, hi) in ranges {
        let Some(lo) = sql_id(*lo) else {
            break;
        };
        let hi = sql_id(*hi).unwrap_or(i64::MAX);
        let left = i64::try_from(limit.saturating_sub(out.len())).unwrap_or(i64::MAX);
        if left == 0 {
            break;
        }
        let rows = conn
            .query(
                "SELECT body::text FROM tickets WHERE NOT closed AND id >= $1 AND id < $2
                 ORDER BY id LIMIT $3",
                &[&lo, &hi, &left],
            )
            .await?;
        for row in &rows {
            out.push(json_of(row, 0)?);
        }
    }
    Ok(out)
}

/// A count from the database as the port has it.
pub(super) fn count(row: &tokio_postgres::Row) -> Result<u64, StoreError> {
    let n: i64 = get(row, 0)?;
    u64::try_from(n).map_err(|_| unreadable(format!("a negative count ({n})")))
}
