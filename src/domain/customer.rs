//! Who the desk is talking to: a customer's earlier tickets on the same network (same
//! [`author_key`](super::priority::author_key)), as a card shows them. Pure: the outbox
//! reads the store and hands the result to the surfaces beside the ticket.

use super::priority::{network_key, Contact};
use super::{AgentRef, CardRef, Platform, Ticket, TicketId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many earlier tickets a card lists by name (newest first); the rest are counted.
pub const HISTORY_SHOWN: usize = 5;

/// How many of the person's notes a card shows (newest first); `/mentions who` shows all.
pub const NOTES_SHOWN: usize = 3;

/// How many of an author's contacts are read to count the earlier ones.
pub const CONTACTS_READ: usize = 64;

/// What an agent wrote about a person (`/mentions note`): shown to the team on that
/// person's next cards, never sent to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonNote {
    pub by: AgentRef,
    pub at: DateTime<Utc>,
    pub text: String,
}

/// Everything the desk knows about the person behind a ticket, as their cards and
/// `/mentions who` show it: their earlier tickets and the team's notes about them
/// (oldest first, as they were written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Customer {
    pub history: CustomerHistory,
    pub notes: Vec<PersonNote>,
}

impl Customer {
    /// Nothing to show: a first contact nobody wrote about.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty() && self.notes.is_empty()
    }

    /// The notes a card shows: the newest [`NOTES_SHOWN`], newest first.
    pub fn latest_notes(&self) -> impl Iterator<Item = &PersonNote> {
        self.notes.iter().rev().take(NOTES_SHOWN)
    }
}

/// One earlier ticket of the same person, as a card lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierTicket {
    pub id: TicketId,
    /// The ticket's state in the agents' words ("Resolved", "Ignored", "Open", …).
    pub state: String,
    pub open: bool,
    /// When it was received.
    pub received: DateTime<Utc>,
    /// When its state last changed (for a closed one: when it was closed).
    pub changed: DateTime<Utc>,
    /// Its cards, so each surface links to its own.
    pub cards: Vec<CardRef>,
}

/// The network an agent typed (`mastodon`, `Bluesky`, `bsky`, `twitter`, `instagram`) as
/// author keys name it: a network we have no source of our own for is a webhook's.
pub fn typed_network(word: &str) -> String {
    let word = word.trim().to_ascii_lowercase();
    match Platform::from_name(&word) {
        Platform::Other => {
            let name = word.strip_prefix("other:").unwrap_or(&word);
            network_key(Platform::Other, Some(name))
        }
        known => network_key(known, None),
    }
}

/// A customer's earlier tickets on the same network, newest first: at most
/// [`HISTORY_SHOWN`] listed, `more` further ones only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerHistory {
    pub earlier: Vec<EarlierTicket>,
    pub more: usize,
}

impl CustomerHistory {
    /// Nothing to show: a first contact.
    pub fn is_empty(&self) -> bool {
        self.earlier.is_empty() && self.more == 0
    }

    /// Every earlier ticket, listed or counted.
    pub fn total(&self) -> usize {
        self.earlier.len() + self.more
    }

    /// The contacts (newest first, as the store lists them) that came before `current`:
    /// the ones to read in full, and how many more there are.
    pub fn earlier_of(current: TicketId, contacts: &[Contact]) -> (Vec<TicketId>, usize) {
        let before: Vec<TicketId> = contacts
            .iter()
            .map(|c| c.ticket)
            .filter(|id| *id < current)
            .collect();
        let more = before.len().saturating_sub(HISTORY_SHOWN);
        (before.into_iter().take(HISTORY_SHOWN).collect(), more)
    }

    /// The history from the earlier tickets read in full (any order) with their cards.
    pub fn build(mut earlier: Vec<(Ticket, Vec<CardRef>)>, more: usize) -> CustomerHistory {
        earlier.sort_by_key(|(t, _)| std::cmp::Reverse(t.id));
        CustomerHistory {
            earlier: earlier
                .into_iter()
                .take(HISTORY_SHOWN)
                .map(|(t, cards)| EarlierTicket {
                    id: t.id,
                    state: t.state_label(),
                    open: !t.is_closed(),
                    received: t.received_at(),
                    changed: t.updated_at,
                    cards,
                })
                .collect(),
            more,
        }
    }

    /// The earlier ones still open, newest first.
    pub fn open(&self) -> impl Iterator<Item = &EarlierTicket> {
        self.earlier.iter().filter(|e| e.open)
    }

    /// The one-line summary: "2 earlier tickets · last: #4 Resolved 2026-03-01 10:00 UTC
    /// · 1 open" (the open count only when one is).
    pub fn summary(&self) -> Option<String> {
        let last = self.earlier.first()?;
        let n = self.total();
        let when = if last.open {
            format!("since {}", stamp(last.received))
        } else {
            stamp(last.changed)
        };
        let open = self.open().count();
        Some(format!(
            "{n} earlier ticket{} · last: #{} {} {when}{}",
            if n == 1 { "" } else { "s" },
            last.id,
            last.state,
            if open > 0 {
                format!(" · {open} open")
            } else {
                String::new()
            }
        ))
    }
}

/// A time as cards show it.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: u64, open: bool) -> Contact {
        Contact {
            ticket: TicketId(id),
            received: DateTime::from_timestamp(1_700_000_000 + id as i64, 0).unwrap(),
            open,
        }
    }

    #[test]
    fn only_tickets_before_the_current_one_count_and_five_are_listed() {
        let contacts: Vec<Contact> = (1..=9).rev().map(|i| contact(i, false)).collect();
        let (listed, more) = CustomerHistory::earlier_of(TicketId(9), &contacts);
        assert_eq!(
            listed,
            vec![
                TicketId(8),
                TicketId(7),
                TicketId(6),
                TicketId(5),
                TicketId(4)
            ]
        );
        assert_eq!(more, 3);
        let (listed, more) = CustomerHistory::earlier_of(TicketId(1), &contacts);
        assert!(listed.is_empty());
        assert_eq!(more, 0);
    }

    #[test]
    fn a_typed_network_names_the_same_network_as_author_keys() {
        assert_eq!(typed_network("Mastodon"), "mastodon");
        assert_eq!(typed_network("bsky"), "bluesky");
        assert_eq!(typed_network("twitter"), "x");
        assert_eq!(typed_network("Instagram"), "other:instagram");
        assert_eq!(typed_network("other:instagram"), "other:instagram");
    }

    #[test]
    fn a_card_shows_the_three_newest_notes_newest_first() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let note = |text: &str| PersonNote {
            by: AgentRef {
                surface: crate::domain::SurfaceKind::Slack,
                user_id: "U1".into(),
                name: "ana".into(),
                roles: vec![],
            },
            at,
            text: text.into(),
        };
        let customer = Customer {
            history: CustomerHistory::default(),
            notes: ["a", "b", "c", "d"].into_iter().map(note).collect(),
        };
        let shown: Vec<&str> = customer.latest_notes().map(|n| n.text.as_str()).collect();
        assert_eq!(shown, vec!["d", "c", "b"]);
        assert!(!customer.is_empty());
        assert!(Customer::default().is_empty());
    }

    #[test]
    fn the_summary_names_the_last_outcome_and_when() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let e = |id, open, state: &str| EarlierTicket {
            id: TicketId(id),
            state: state.into(),
            open,
            received: at,
            changed: at + chrono::Duration::hours(1),
            cards: vec![],
        };
        let h = CustomerHistory {
            earlier: vec![e(7, false, "Resolved"), e(5, true, "Open")],
            more: 1,
        };
        assert_eq!(
            h.summary().unwrap(),
            "3 earlier tickets · last: #7 Resolved 2023-11-14 23:13 UTC · 1 open"
        );
        assert_eq!(
            h.open().map(|e| e.id).collect::<Vec<_>>(),
            vec![TicketId(5)]
        );
        let first = CustomerHistory::default();
        assert!(first.is_empty());
        assert_eq!(first.summary(), None);
    }
}
