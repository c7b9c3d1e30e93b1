//! The shift hand-off digest: when the people on call change, the channel gets one
//! summary: what is open, what is breaching, what the outgoing agents still hold, and
//! what the ending shift answered. Pure: the scheduler passes the tickets and the two
//! on-call pictures.

use super::oncall::OnCall;
use super::{Ticket, TicketId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The hand-off instant.
    pub at: DateTime<Utc>,
    /// The previous hand-off: "this shift" ran from here to `at`.
    pub since: DateTime<Utc>,
    /// Primary on call after and before the hand-off (member keys).
    pub incoming: Vec<String>,
    pub outgoing: Vec<String>,
    /// Open tickets still waiting for an agent (unanswered, or the customer wrote again).
    pub waiting: usize,
    /// Open tickets answered and not resolved yet.
    pub answered_open: usize,
    /// Open, unanswered, and past the first-response target.
    pub breaching: Vec<TicketId>,
    /// Tickets waiting for an agent and held by someone going off call, with the
    /// holder's member key.
    pub held_by_outgoing: Vec<(TicketId, String)>,
    /// Tickets whose first answer went out during the ending shift.
    pub answered: usize,
    /// Claims of outgoing agents released for the incoming shift.
    #[serde(default)]
    pub released: Vec<TicketId>,
}

/// Build the digest for the hand-off at `at`. `due` gives each ticket's first-response
/// deadline (its route's policy).
pub fn digest(
    tickets: &[Ticket],
    before: &OnCall,
    after: &OnCall,
    since: DateTime<Utc>,
    at: DateTime<Utc>,
    due: impl Fn(&Ticket) -> DateTime<Utc>,
) -> Digest {
    let going_off = |key: &String| !after.primary.contains(key) && !after.secondary.contains(key);
    let open: Vec<&Ticket> = tickets.iter().filter(|t| !t.is_closed()).collect();
    let waiting = |t: &&&Ticket| t.awaiting_answer() || t.customer_replied;
    Digest {
        at,
        since,
        incoming: after.primary.clone(),
        outgoing: before
            .primary
            .iter()
            .filter(|k| !after.primary.contains(k))
            .cloned()
            .collect(),
        waiting: open.iter().filter(waiting).count(),
        answered_open: open.iter().filter(|t| !waiting(t)).count(),
        breaching: open
            .iter()
            .filter(|t| t.awaiting_answer() && due(t) <= at)
            .map(|t| t.id)
            .collect(),
        held_by_outgoing: open
            .iter()
            .filter(waiting)
            .filter_map(|t| {
                let key = t.holder.as_ref()?.agent.member_key();
                (before.primary.contains(&key) || before.secondary.contains(&key))
                    .then_some(())
                    .filter(|_| going_off(&key))
                    .map(|_| (t.id, key))
            })
            .collect(),
        answered: tickets
            .iter()
            .filter_map(Ticket::first_answer)
            .filter(|a| since <= *a && *a < at)
            .count(),
        released: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AgentRef, Author, Claim, Mention, Platform, Reply, ReplyState, Stage, SurfaceKind,
        Visibility,
    };
    use chrono::{Duration, TimeZone};

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn ticket(id: u64, at: i64) -> Ticket {
        Ticket::open(
            TicketId(id),
            Mention {
                platform: Platform::Mastodon,
                network: None,
                account: "brand".into(),
                remote_id: id.to_string(),
                url: String::new(),
                author: Author {
                    handle: "c".into(),
                    name: "C".into(),
                    profile_url: String::new(),
                    id: None,
                },
                text: "help".into(),
                language: None,
                created_at: t(at),
                in_reply_to: None,
                visibility: Visibility::Public,
                reply_context: None,
                external_id: None,
            },
            t(at),
        )
    }

    fn agent(id: &str) -> AgentRef {
        AgentRef {
            surface: SurfaceKind::Slack,
            user_id: id.into(),
            name: id.into(),
            roles: vec![],
        }
    }

    fn answered(mut tk: Ticket, at: i64, auto: bool) -> Ticket {
        tk.replies.push(Reply {
            seq: tk.replies.len() as u32 + 1,
            text: "@c hi".into(),
            visibility: Visibility::Public,
            private: false,
            by: agent("UA"),
            at: t(at),
            state: ReplyState::Published {
                remote_id: "r".into(),
                url: String::new(),
            },
            auto,
        });
        tk.stage = Stage::Replied;
        tk
    }

    #[test]
    fn the_digest_counts_what_the_next_shift_needs_to_know() {
        let before = OnCall {
            primary: vec!["slack:UA".into()],
            secondary: vec![],
        };
        let after = OnCall {
            primary: vec!["slack:UB".into()],
            secondary: vec![],
        };
        let mut held = ticket(1, 5);
        held.holder = Some(Claim {
            agent: agent("UA"),
            since: t(6),
        });
        let overdue = ticket(2, 2);
        let fresh = ticket(3, 8);
        let done_this_shift = answered(ticket(4, 1), 3, false);
        let done_before = answered(ticket(5, -10), -9, false);
        let only_auto = answered(ticket(6, 1), 1, true);
        let mut closed = ticket(7, 1);
        closed.stage = Stage::Resolved;
        let tickets = [
            held,
            overdue,
            fresh,
            done_this_shift,
            done_before,
            only_auto,
            closed,
        ];
        let d = digest(&tickets, &before, &after, t(0), t(8), |tk| {
            tk.mention.created_at + Duration::hours(1)
        });
        assert_eq!(d.incoming, vec!["slack:UB".to_string()]);
        assert_eq!(d.outgoing, vec!["slack:UA".to_string()]);
        // Waiting: 1, 2, 3 and 6 (only the desk's acknowledgement); 4 and 5 were answered.
        assert_eq!((d.waiting, d.answered_open), (4, 2));
        // Ticket 3 is not due yet; 4 and 5 were answered; the auto reply is no answer.
        assert_eq!(d.breaching, vec![TicketId(1), TicketId(2), TicketId(6)]);
        assert_eq!(d.held_by_outgoing, vec![(TicketId(1), "slack:UA".into())]);
        assert_eq!(d.answered, 1);
    }
}
