//! The sled store's ticket indexes and counters, in one tree (`ticket_index`), each
//! index under a one-byte prefix so a ticket write adds one tree to its transaction:
//! open tickets by number, the next-due index (and each ticket's entry in it, so the
//! entry is found again whatever the routes are now), tickets by the instant they were
//! received, first answers by instant, unanswered tickets by route and instant, answered
//! tickets by route and first response (counts per whole second), and the named
//! counters of [`crate::ports::tally`]. The entries by the instant received hold each
//! ticket's [`TicketFacts`] (what a window's numbers need). Open tickets are also kept
//! by what the open list sorts by: whether they wait for an answer, their points on
//! arrival, then the instant received (within such a group, the list's own order, so
//! the first of the list are read from the head of each group). Each author's entry
//! lists their latest tickets (number and instant received), which intake reads inside
//! its transaction for repeat contact. Instants are nanoseconds and integers are stored
//! so that byte order is numeric order.

use crate::domain::priority::{ticket_author_key, waits_for_answer, Contact, CONTACTS_KEPT};
use crate::domain::routes::Routes;
use crate::domain::{Ticket, TicketId};
use crate::ports::tally::{counter_changes, nanos, TicketCounts, TicketFacts};
use crate::ports::{OpenPriority, StoreError};
use chrono::{DateTime, Utc};
use sled::transaction::{TransactionalTree, UnabortableTransactionError};
use std::collections::BTreeMap;
use std::ops::Bound;

pub(super) const TREE: &str = "ticket_index";

const OPEN: u8 = b'o';
const DUE: u8 = b'd';
const DUE_OF: u8 = b'D';
const RECEIVED: u8 = b'r';
const ANSWERED: u8 = b'a';
const UNANSWERED: u8 = b'u';
const WAITS: u8 = b'w';
const COUNTER: u8 = b'c';
const AUTHOR: u8 = b'p';
const PRIORITY: u8 = b'l';

type TxResult = Result<(), UnabortableTransactionError>;

/// A signed number whose big-endian bytes sort as the number does.
fn sortable(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

fn unsortable(raw: &[u8]) -> i64 {
    (u64::from_be_bytes(raw.try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64
}

fn number(raw: &[u8]) -> i64 {
    i64::from_be_bytes(raw.try_into().unwrap_or([0; 8]))
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A route's name, length first, so one route's keys never run into another's.
fn route_part(route: &str) -> Vec<u8> {
    let bytes = route.as_bytes();
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

pub(super) fn open_key(id: u64) -> Vec<u8> {
    key(OPEN, &[&id.to_be_bytes()])
}

/// An open ticket's entry in the index of what the list sorts by: waiting (1) or not,
/// points, instant received, number.
fn priority_key(t: &Ticket) -> Option<Vec<u8>> {
    (!t.is_closed()).then(|| {
        key(
            PRIORITY,
            &[
                &[u8::from(waits_for_answer(t))],
                &sortable(i64::from(t.priority.score)),
                &sortable(nanos(t.received_at())),
                &t.id.0.to_be_bytes(),
            ],
        )
    })
}

/// The group of a priority entry: its prefix (waiting, points).
const PRIORITY_GROUP: usize = 1 + 1 + 8;

fn open_priority_of(k: &[u8]) -> OpenPriority {
    let at = |from: usize| k.get(from..from + 8).map_or(0, unsortable);
    OpenPriority {
        ticket: TicketId(id_at_end(k)),
        received: DateTime::from_timestamp_nanos(at(PRIORITY_GROUP)),
        score: i32::try_from(at(2)).unwrap_or(0),
        waiting: k.get(1).is_some_and(|w| *w != 0),
    }
}

fn author_entry_key(author: &str) -> Vec<u8> {
    key(AUTHOR, &[author.as_bytes()])
}

/// An author's latest tickets, oldest first: (number, nanoseconds received) each.
fn author_list(raw: &[u8]) -> Vec<(u64, i64)> {
    raw.chunks_exact(16)
        .map(|c| {
            let (id, at) = c.split_at(8);
            (
                u64::from_be_bytes(id.try_into().unwrap_or([0; 8])),
                i64::from_be_bytes(at.try_into().unwrap_or([0; 8])),
            )
        })
        .collect()
}

fn author_value(list: &[(u64, i64)]) -> Vec<u8> {
    let from = list.len().saturating_sub(CONTACTS_KEPT);
    list[from..]
        .iter()
        .flat_map(|(id, at)| id.to_be_bytes().into_iter().chain(at.to_be_bytes()))
        .collect()
}

/// The earlier tickets of the author `author` (see `domain::priority::author_key`), newest first, as
/// this transaction sees them.
pub(super) fn contacts(
    index: &TransactionalTree,
    author: &str,
) -> Result<Vec<Contact>, UnabortableTransactionError> {
    let Some(raw) = index.get(author_entry_key(author))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (id, at) in author_list(&raw).into_iter().rev() {
        out.push(Contact {
            ticket: TicketId(id),
            received: DateTime::from_timestamp_nanos(at),
            open: index.get(open_key(id))?.is_some(),
        });
    }
    Ok(out)
}

/// A new ticket joins its author's list.
fn add_contact(index: &TransactionalTree, ticket: &Ticket) -> TxResult {
    let k = author_entry_key(&ticket_author_key(ticket));
    let mut list = index.get(&k)?.map(|v| author_list(&v)).unwrap_or_default();
    list.push((ticket.id.0, nanos(ticket.received_at())));
    // Oldest first by number: a ticket moved here (an erased identity) may be older.
    list.sort_unstable();
    list.dedup();
    index.insert(k, author_value(&list))?;
    Ok(())
}

/// A ticket filed under another author key now (its identity erased: the hashed key)
/// leaves its old author's list and joins the new one.
fn move_contact(index: &TransactionalTree, old: &Ticket, new: &Ticket) -> TxResult {
    let from = author_entry_key(&ticket_author_key(old));
    if from == author_entry_key(&ticket_author_key(new)) {
        return Ok(());
    }
    if let Some(raw) = index.get(&from)? {
        let mut list = author_list(&raw);
        list.retain(|(id, _)| *id != old.id.0);
        if list.is_empty() {
            index.remove(from)?;
        } else {
            index.insert(from, author_value(&list))?;
        }
    }
    add_contact(index, new)
}

fn due_key(at: i64, id: u64) -> Vec<u8> {
    key(DUE, &[&sortable(at), &id.to_be_bytes()])
}

fn due_of_key(id: u64) -> Vec<u8> {
    key(DUE_OF, &[&id.to_be_bytes()])
}

fn at_key(prefix: u8, at: DateTime<Utc>, id: u64) -> Vec<u8> {
    key(prefix, &[&sortable(nanos(at)), &id.to_be_bytes()])
}

fn unanswered_key(route: &str, at: DateTime<Utc>, id: u64) -> Vec<u8> {
    key(
        UNANSWERED,
        &[&route_part(route), &sortable(nanos(at)), &id.to_be_bytes()],
    )
}

fn wait_key(route: &str, seconds: i64) -> Vec<u8> {
    key(WAITS, &[&route_part(route), &sortable(seconds)])
}

fn counter_key(name: &str) -> Vec<u8> {
    key(COUNTER, &[name.as_bytes()])
}

/// The id at the end of a key.
fn id_at_end(k: &[u8]) -> u64 {
    let tail = &k[k.len().saturating_sub(8)..];
    u64::from_be_bytes(tail.try_into().unwrap_or([0; 8]))
}

/// Add `by` to the count under `k` (gone at zero).
fn add(index: &TransactionalTree, k: Vec<u8>, by: i64) -> TxResult {
    let now = index.get(&k)?.map_or(0, |v| number(&v)) + by;
    if now == 0 {
        index.remove(k)?;
    } else {
        index.insert(k, &now.to_be_bytes())?;
    }
    Ok(())
}

/// Move an entry from `old` to `new` (either may be absent).
fn replace(index: &TransactionalTree, old: Option<Vec<u8>>, new: Option<Vec<u8>>) -> TxResult {
    if old == new {
        return Ok(());
    }
    if let Some(k) = old {
        index.remove(k)?;
    }
    if let Some(k) = new {
        index.insert(k, &[])?;
    }
    Ok(())
}

/// What the index of tickets by the instant received keeps for a ticket.
fn facts_value(facts: &TicketFacts) -> Vec<u8> {
    serde_json::to_vec(facts).expect("ticket facts always serialize")
}

/// Put `ticket` where [`Routes::next_due`] says, wherever it was.
pub(super) fn set_due(index: &TransactionalTree, ticket: &Ticket, routes: &Routes) -> TxResult {
    let id = ticket.id.0;
    let was = index.get(due_of_key(id))?.map(|v| unsortable(&v));
    let due = routes.next_due(ticket).map(nanos);
    if was == due {
        return Ok(());
    }
    replace(
        index,
        was.map(|at| due_key(at, id)),
        due.map(|at| due_key(at, id)),
    )?;
    match due {
        Some(at) => index.insert(due_of_key(id), &sortable(at))?,
        None => index.remove(due_of_key(id))?,
    };
    Ok(())
}

/// Bring the indexes and counters from `old` (`None`: a new ticket) to `new`, in the
/// transaction that writes `new`.
pub(super) fn reindex(
    index: &TransactionalTree,
    old: Option<&Ticket>,
    new: &Ticket,
    routes: &Routes,
) -> TxResult {
    let id = new.id.0;
    let was = old.map(TicketCounts::of);
    let now = TicketCounts::of(new);
    let entry = |c: &TicketCounts| {
        (
            c.open.then(|| open_key(id)),
            at_key(RECEIVED, c.received, id),
            c.first_answer.map(|at| at_key(ANSWERED, at, id)),
            c.unanswered_key()
                .map(|(route, at)| unanswered_key(route, at, id)),
        )
    };
    let (open, received, answered, unanswered) = entry(&now);
    let facts = TicketFacts::of(new);
    match was.as_ref().map(entry) {
        Some((o, r, a, u)) => {
            replace(index, o, open)?;
            replace(index, old.and_then(priority_key), priority_key(new))?;
            if r != received {
                index.remove(r.as_slice())?;
            }
            if r != received || old.map(TicketFacts::of).as_ref() != Some(&facts) {
                index.insert(received, facts_value(&facts))?;
            }
            replace(index, a, answered)?;
            replace(index, u, unanswered)?;
            if let Some(old) = old {
                move_contact(index, old, new)?;
            }
        }
        None => {
            index.insert(received, facts_value(&facts))?;
            for k in [open, answered, unanswered, priority_key(new)]
                .into_iter()
                .flatten()
            {
                index.insert(k, &[])?;
            }
            add_contact(index, new)?;
        }
    }
    let old_wait = was.as_ref().and_then(TicketCounts::wait_key);
    if old_wait != now.wait_key() {
        if let Some((route, secs)) = old_wait {
            add(index, wait_key(route, secs), -1)?;
        }
        if let Some((route, secs)) = now.wait_key() {
            add(index, wait_key(route, secs), 1)?;
        }
    }
    for (name, by) in counter_changes(was.as_ref(), &now) {
        add(index, counter_key(&name), by)?;
    }
    set_due(index, new, routes)
}

/// Everything the index holds for `tickets`, from scratch: (key, value) pairs in key
/// order, counts summed. For a store made before the indexes existed.
pub(super) fn entries_of<'a>(
    tickets: impl Iterator<Item = &'a Ticket>,
    routes: &Routes,
    out: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    counts: &mut BTreeMap<Vec<u8>, i64>,
    authors: &mut BTreeMap<Vec<u8>, Vec<(u64, i64)>>,
) {
    for t in tickets {
        let id = t.id.0;
        let c = TicketCounts::of(t);
        authors
            .entry(author_entry_key(&ticket_author_key(t)))
            .or_default()
            .push((id, nanos(t.received_at())));
        let mut put = |k: Vec<u8>, v: Vec<u8>| {
            out.insert(k, v);
        };
        if c.open {
            put(open_key(id), Vec::new());
        }
        if let Some(k) = priority_key(t) {
            put(k, Vec::new());
        }
        put(
            at_key(RECEIVED, c.received, id),
            facts_value(&TicketFacts::of(t)),
        );
        if let Some(at) = c.first_answer {
            put(at_key(ANSWERED, at, id), Vec::new());
        }
        if let Some((route, at)) = c.unanswered_key() {
            put(unanswered_key(route, at, id), Vec::new());
        }
        if let Some(at) = routes.next_due(t).map(nanos) {
            put(due_key(at, id), Vec::new());
            put(due_of_key(id), sortable(at).to_vec());
        }
        if let Some((route, secs)) = c.wait_key() {
            *counts.entry(wait_key(route, secs)).or_default() += 1;
        }
        for (name, by) in c.counters() {
            *counts.entry(counter_key(&name)).or_default() += by;
        }
    }
}

/// The counts as stored values.
pub(super) fn count_values(
    counts: BTreeMap<Vec<u8>, i64>,
) -> impl Iterator<Item = (Vec<u8>, [u8; 8])> {
    counts
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(k, n)| (k, n.to_be_bytes()))
}

/// Authors' tickets found while the indexes are built (`found`, oldest first), joined
/// to what the tree already lists for each (from earlier batches), as values to write.
pub(super) fn author_values(
    tree: &sled::Tree,
    found: BTreeMap<Vec<u8>, Vec<(u64, i64)>>,
) -> sled::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::with_capacity(found.len());
    for (k, more) in found {
        let mut list = tree.get(&k)?.map(|v| author_list(&v)).unwrap_or_default();
        list.extend(more);
        out.push((k, author_value(&list)));
    }
    Ok(out)
}

/// Read side, on the tree itself.
pub(super) struct Reader<'a>(pub(super) &'a sled::Tree);

impl Reader<'_> {
    /// The latest tickets of `author` (see `domain::priority::author_key`), newest first, at most
    /// `limit` (customer history, issue 14).
    pub(super) fn contacts(&self, author: &str, limit: usize) -> sled::Result<Vec<Contact>> {
        let Some(raw) = self.0.get(author_entry_key(author))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (id, at) in author_list(&raw).into_iter().rev().take(limit) {
            out.push(Contact {
                ticket: TicketId(id),
                received: DateTime::from_timestamp_nanos(at),
                open: self.0.get(open_key(id))?.is_some(),
            });
        }
        Ok(out)
    }

    /// Open ticket numbers in `ranges` (half-open, ascending), at most `limit`.
    pub(super) fn open_numbers(
        &self,
        ranges: &[(u64, u64)],
        limit: usize,
    ) -> sled::Result<Vec<u64>> {
        let mut out = Vec::new();
        for (lo, hi) in ranges {
            for k in self.0.range(open_key(*lo)..open_key(*hi)).keys() {
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(id_at_end(&k?));
            }
        }
        Ok(out)
    }

    /// Every open ticket as the list sorts it, in number order.
    pub(super) fn open_priorities(&self) -> sled::Result<Vec<OpenPriority>> {
        let mut all: Vec<OpenPriority> = self
            .0
            .scan_prefix([PRIORITY])
            .keys()
            .map(|k| k.map(|k| open_priority_of(&k)))
            .collect::<sled::Result<_>>()?;
        all.sort_by_key(|o| o.ticket);
        Ok(all)
    }

    /// The first `limit` open tickets of each group (waiting or not, points): the
    /// list's first `limit` are among them, whatever `now` is, since within a group the
    /// oldest has waited longest. One seek per group, `limit` entries at most from each.
    pub(super) fn open_heads(&self, limit: usize) -> sled::Result<Vec<OpenPriority>> {
        let mut out = Vec::new();
        let mut from = vec![PRIORITY];
        loop {
            let Some(first) = self.0.range(from.clone()..).keys().next().transpose()? else {
                break;
            };
            if first.first() != Some(&PRIORITY) || first.len() < PRIORITY_GROUP {
                break;
            }
            let group = first[..PRIORITY_GROUP].to_vec();
            for k in self.0.scan_prefix(&group).keys().take(limit) {
                out.push(open_priority_of(&k?));
            }
            // The next group: just past every key of this one.
            from = group;
            from.push(0xff);
            from.extend_from_slice(&[0xff; 24]);
        }
        Ok(out)
    }

    /// Tickets due at or before `until`, soonest first (at most `limit`), and when the
    /// first one not taken is due.
    pub(super) fn due(&self, until: i64, limit: usize) -> sled::Result<(Vec<u64>, Option<i64>)> {
        let mut ids = Vec::new();
        for k in self.0.scan_prefix([DUE]).keys() {
            let k = k?;
            let at = unsortable(&k[1..9]);
            if at > until || ids.len() >= limit {
                return Ok((ids, Some(at)));
            }
            ids.push(id_at_end(&k));
        }
        Ok((ids, None))
    }

    /// The facts of the tickets received in `from <= t < to`, after `after`, oldest
    /// first.
    pub(super) fn received(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, u64)>,
        limit: usize,
    ) -> Result<Vec<TicketFacts>, StoreError> {
        let start = match after {
            Some((at, id)) if at >= from => Bound::Excluded(at_key(RECEIVED, at, id)),
            _ => Bound::Included(at_key(RECEIVED, from, 0)),
        };
        let end = Bound::Excluded(at_key(RECEIVED, to, 0));
        self.0
            .range::<Vec<u8>, _>((start, end))
            .values()
            .take(limit)
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// How many first answers fell in `from <= t < to`.
    pub(super) fn answers_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> sled::Result<usize> {
        let mut n = 0;
        for k in self
            .0
            .range(at_key(ANSWERED, from, 0)..at_key(ANSWERED, to, 0))
            .keys()
        {
            k?;
            n += 1;
        }
        Ok(n)
    }

    pub(super) fn counter(&self, name: &str) -> sled::Result<i64> {
        Ok(self.0.get(counter_key(name))?.map_or(0, |v| number(&v)))
    }

    pub(super) fn counters(&self) -> sled::Result<BTreeMap<String, i64>> {
        self.0
            .scan_prefix([COUNTER])
            .map(|item| {
                item.map(|(k, v)| (String::from_utf8_lossy(&k[1..]).into_owned(), number(&v)))
            })
            .collect()
    }

    pub(super) fn answered_within(&self, route: &str, seconds: i64) -> sled::Result<u64> {
        let mut n = 0;
        for v in self
            .0
            .range(wait_key(route, i64::MIN)..=wait_key(route, seconds))
            .values()
        {
            n += number(&v?).max(0) as u64;
        }
        Ok(n)
    }

    pub(super) fn unanswered_since(&self, route: &str, since: DateTime<Utc>) -> sled::Result<u64> {
        let start = unanswered_key(route, since, 0);
        let end = unanswered_key(route, DateTime::<Utc>::MAX_UTC, u64::MAX);
        let mut n = 0;
        for k in self.0.range(start..=end).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }
}
