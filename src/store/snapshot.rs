//! Everything a store holds, as plain values: what `mentionbridge store copy` reads out of
//! one backend and writes into another, so a desk moves without losing a ticket, the
//! audit log or an unsent job.

use crate::domain::incident::Incident;
use crate::domain::{AuditEntry, CardRef, SurfaceKind, Ticket, TicketId};
use crate::ports::Job;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// In ticket number order.
    pub tickets: Vec<Ticket>,
    /// Every dedupe key (a post's platform-wide and per-source keys, replies' posts)
    /// and the ticket it belongs to.
    pub dedupe: Vec<(String, TicketId)>,
    pub cursors: Vec<(String, String)>,
    pub cards: Vec<(TicketId, CardRef)>,
    /// Pending jobs in queue order, with their attempt counts.
    pub jobs: Vec<Job>,
    pub failed_jobs: Vec<Job>,
    /// By ticket, then oldest first.
    pub audit: Vec<AuditEntry>,
    pub state: Vec<(String, Vec<u8>)>,
    /// Inbound event ids still remembered: (source, id, first seen).
    pub seen_events: Vec<(String, String, DateTime<Utc>)>,
    /// The number the next ticket gets.
    pub next_ticket: u64,
    pub cards_lost: Vec<(SurfaceKind, u64)>,
    /// In number order; their members are the tickets that name them.
    pub incidents: Vec<Incident>,
    /// The number the next incident gets.
    pub next_incident: u64,
}

/// What a copy moved, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub tickets: usize,
    pub jobs: usize,
    pub failed_jobs: usize,
    pub audit: usize,
    pub cards: usize,
    pub dedupe_keys: usize,
    pub cursors: usize,
    pub state: usize,
    pub seen_events: usize,
    pub incidents: usize,
}

impl Snapshot {
    pub fn counts(&self) -> Copied {
        Copied {
            tickets: self.tickets.len(),
            jobs: self.jobs.len(),
            failed_jobs: self.failed_jobs.len(),
            audit: self.audit.len(),
            cards: self.cards.len(),
            dedupe_keys: self.dedupe.len(),
            cursors: self.cursors.len(),
            state: self.state.len(),
            seen_events: self.seen_events.len(),
            incidents: self.incidents.len(),
        }
    }
}
