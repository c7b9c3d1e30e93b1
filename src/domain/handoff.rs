//! The shift hand-off digest: when the people on call change, the channel gets one
//! summary: what is open, what is breaching, what the outgoing agents still hold, and
//! what the ending shift answered. Pure: the scheduler passes the open tickets, the
//! count of first answers in the shift and the two on-call pictures.

use super::oncall::{OnCall, Schedule};
pub use super::Digest;
use super::Ticket;
use chrono::{DateTime, Utc};

/// A change of the people on call that a digest covers: the shift that ran from `since`
/// ended at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    pub since: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// The latest change of the people on call after `last` (the hand-off already handled)
/// and no later than `now`: one digest however many changes a downtime skipped, covering
/// the shift that ended there. `None` when nobody changed since `last`.
pub fn latest_handoff(
    schedule: &Schedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Handoff> {
    let (mut since, mut edge) = (last, None);
    let mut cursor = last;
    // A rotation changes at most a few times a day; the bound only guards a schedule
    // whose next change never advances.
    for _ in 0..1000 {
        match schedule.next_change(cursor) {
            Some(e) if e <= now => {
                if let Some(previous) = edge {
                    since = previous;
                }
                edge = Some(e);
                cursor = e;
            }
            _ => break,
        }
    }
    edge.map(|at| Handoff { since, at })
}

/// Who was on call just before and right at a hand-off.
pub fn sides(schedule: &Schedule, at: DateTime<Utc>) -> (OnCall, OnCall) {
    (
        schedule.on_call(at - chrono::Duration::seconds(1)),
        schedule.on_call(at),
    )
}

/// Build the digest for the hand-off at `at` from the open tickets (closed ones among
/// them are left out) and `answered`, how many tickets got their first answer in
/// `since <= t < at` (the store counts those by its index). `due` gives each ticket's
/// first-response deadline (its route's policy).
pub fn digest(
    open: &[Ticket],
    answered: usize,
    before: &OnCall,
    after: &OnCall,
    since: DateTime<Utc>,
    at: DateTime<Utc>,
    due: impl Fn(&Ticket) -> DateTime<Utc>,
) -> Digest {
    let going_off = |key: &String| !after.primary.contains(key) && !after.secondary.contains(key);
    let open: Vec<&Ticket> = open.iter().filter(|t| !t.is_closed()).collect();
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
        answered,
        released: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TicketId;
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
                    followers: None,
                },
                text: "help".into(),
                language: None,
                created_at: t(at),
                in_reply_to: None,
                visibility: Visibility::Public,
                reply_context: None,
                external_id: None,
                detected_language: None,
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
            review: None,
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
        // Which tickets were answered in the shift is the store's count (its index of
        // first answers, proven in the store contract); here it is passed through.
        let d = digest(&tickets, 1, &before, &after, t(0), t(8), |tk| {
            tk.mention.created_at + Duration::hours(1)
        });
        assert_eq!(d.incoming, vec!["slack:UB".to_string()]);
        assert_eq!(d.outgoing, vec!["slack:UA".to_string()]);
        // Waiting: 1, 2, 3 and 6 (only the desk's acknowledgement); 4 and 5 were answered.
        assert_eq!((d.waiting, d.answered_open), (4, 2));
        // Ticket 3 is not due yet; 4 and 5 were answered; the auto reply is no answer.
        assert_eq!(d.breaching, vec![TicketId(1), TicketId(2), TicketId(6)]);
        assert_eq!(d.held_by_outgoing, vec![(TicketId(1), "slack:UA".into())]);
    }

    #[test]
    fn the_latest_change_since_the_last_handoff_is_the_one_a_digest_covers() {
        use crate::domain::oncall::{Layer, Override, Schedule};
        let schedule = Schedule {
            overrides: vec![
                Override::lasting("slack:U1", Layer::Primary, t(9), chrono::Duration::hours(2)),
                Override::lasting(
                    "slack:U2",
                    Layer::Primary,
                    t(12),
                    chrono::Duration::hours(1),
                ),
            ],
            ..Schedule::default()
        };
        assert_eq!(
            latest_handoff(&schedule, t(8), t(8) + chrono::Duration::minutes(30)),
            None
        );
        assert_eq!(
            latest_handoff(&schedule, t(8), t(9) + chrono::Duration::minutes(30)),
            Some(Handoff {
                since: t(8),
                at: t(9)
            })
        );
        // A downtime skipped four changes: one digest, for the shift that ended last.
        assert_eq!(
            latest_handoff(&schedule, t(8), t(14)),
            Some(Handoff {
                since: t(12),
                at: t(13)
            })
        );
        assert_eq!(latest_handoff(&schedule, t(13), t(14)), None);
        let (before, after) = sides(&schedule, t(12));
        assert!(before.primary.is_empty());
        assert_eq!(after.primary, vec!["slack:U2".to_string()]);
    }
}
