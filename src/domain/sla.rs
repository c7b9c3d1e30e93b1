//! SLA clocks, as pure functions of a ticket, what was already done about it, and `now`:
//! when the first response is due, what should happen next (a warning, a breach, an
//! escalation, a reminder to an idle holder, releasing their claim), and when to look
//! again. The runtime's scheduler (not built yet) calls these with the real clock; tests
//! call them with any instant, so nothing here sleeps or reads time.

use super::{ReplyState, Ticket};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A route's targets and how loudly to chase them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    /// The customer gets a first answer within this (default 60 min).
    pub first_response: Duration,
    /// Warn when this share of the first-response time is used (default 0.75).
    pub warn_at: f64,
    /// An unclaimed ticket escalates one level at each of these ages: level 1 (the
    /// secondary on-call), level 2 (the whole channel), …
    pub unclaimed_escalation: Vec<Duration>,
    /// A holder who has not answered within this is reminded…
    pub idle_claim_reminder: Duration,
    /// …and their claim is released after this, for whoever is on.
    pub idle_claim_release: Duration,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            first_response: Duration::minutes(60),
            warn_at: 0.75,
            unclaimed_escalation: vec![Duration::minutes(15), Duration::minutes(30)],
            idle_claim_reminder: Duration::minutes(20),
            idle_claim_release: Duration::minutes(40),
        }
    }
}

/// What was already done about a ticket's clocks, so each step happens once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaMarks {
    pub warned: bool,
    pub breached: bool,
    /// Escalation levels already reached.
    pub escalated: usize,
    /// The claim (by its start) whose holder was reminded / released.
    pub reminded_claim: Option<DateTime<Utc>>,
    pub released_claim: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaStep {
    /// Time is running out: `left` of the first-response time remains.
    Warn { left: Duration },
    /// The first-response target passed without an answer.
    Breach,
    /// Nobody claimed it in time: chase the next level (1 = secondary, 2 = channel…).
    Escalate { level: usize },
    /// The holder has not answered for a while.
    RemindHolder,
    /// The holder still has not answered: free the ticket for someone else.
    ReleaseClaim,
}

/// When the first public or private answer was sent, if it was.
pub fn first_answer(ticket: &Ticket) -> Option<DateTime<Utc>> {
    ticket
        .replies
        .iter()
        .filter(|r| matches!(r.state, ReplyState::Published { .. }))
        .map(|r| r.at)
        .min()
}

/// When the first response is due: the customer's post time plus the target.
pub fn first_response_due(ticket: &Ticket, policy: &SlaPolicy) -> DateTime<Utc> {
    ticket.mention.created_at + policy.first_response
}

/// The clocks run while the ticket is open and unanswered.
fn running(ticket: &Ticket) -> bool {
    !ticket.is_closed() && first_answer(ticket).is_none() && ticket.pending_reply().is_none()
}

/// The steps due at `now` that have not happened yet, in the order to take them.
pub fn due_steps(
    ticket: &Ticket,
    marks: &SlaMarks,
    policy: &SlaPolicy,
    now: DateTime<Utc>,
) -> Vec<SlaStep> {
    let mut steps = Vec::new();
    if !running(ticket) {
        return steps;
    }
    let due = first_response_due(ticket, policy);
    let warn_from = ticket.mention.created_at + scaled(policy.first_response, policy.warn_at);
    if now >= due {
        if !marks.breached {
            steps.push(SlaStep::Breach);
        }
    } else if now >= warn_from && !marks.warned {
        steps.push(SlaStep::Warn { left: due - now });
    }
    match &ticket.holder {
        None => {
            let age = now - ticket.opened_at;
            let reached = policy
                .unclaimed_escalation
                .iter()
                .filter(|after| age >= **after)
                .count();
            if reached > marks.escalated {
                steps.push(SlaStep::Escalate { level: reached });
            }
        }
        Some(claim) => {
            let idle = now - claim.since;
            if idle >= policy.idle_claim_release && marks.released_claim != Some(claim.since) {
                steps.push(SlaStep::ReleaseClaim);
            } else if idle >= policy.idle_claim_reminder
                && marks.reminded_claim != Some(claim.since)
            {
                steps.push(SlaStep::RemindHolder);
            }
        }
    }
    steps
}

/// The earliest instant, from `now` on, at which a step could become due (None: the
/// clocks have stopped). The scheduler sleeps until then; tests jump there.
pub fn next_check(
    ticket: &Ticket,
    marks: &SlaMarks,
    policy: &SlaPolicy,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !running(ticket) {
        return None;
    }
    let mut candidates = Vec::new();
    // A warning is moot once the target has passed.
    if !marks.warned && !marks.breached {
        candidates.push(ticket.mention.created_at + scaled(policy.first_response, policy.warn_at));
    }
    if !marks.breached {
        candidates.push(first_response_due(ticket, policy));
    }
    match &ticket.holder {
        None => candidates.extend(
            policy
                .unclaimed_escalation
                .iter()
                .skip(marks.escalated)
                .map(|after| ticket.opened_at + *after),
        ),
        Some(claim) => {
            if marks.reminded_claim != Some(claim.since) {
                candidates.push(claim.since + policy.idle_claim_reminder);
            }
            if marks.released_claim != Some(claim.since) {
                candidates.push(claim.since + policy.idle_claim_release);
            }
        }
    }
    // An edge already passed but not acted on (a claim just released, say) is due now.
    candidates.into_iter().map(|t| t.max(now)).min()
}

fn scaled(d: Duration, share: f64) -> Duration {
    Duration::milliseconds((d.num_milliseconds() as f64 * share.clamp(0.0, 1.0)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AgentRef, Author, Claim, Mention, Platform, Reply, SurfaceKind, TicketId, Visibility,
    };
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 8, 6, 30, 0).unwrap() + Duration::minutes(min)
    }

    fn ticket() -> Ticket {
        Ticket::open(
            TicketId(1),
            Mention {
                platform: Platform::Mastodon,
                network: None,
                account: "brand".into(),
                remote_id: "1".into(),
                url: "https://m.example/1".into(),
                author: Author {
                    handle: "alice".into(),
                    name: "Alice".into(),
                    profile_url: String::new(),
                    id: None,
                },
                text: "help".into(),
                language: None,
                created_at: t(0),
                in_reply_to: None,
                visibility: Visibility::Public,
                reply_context: None,
            },
            // Seen two minutes after the customer wrote: the clock started when they did.
            t(2),
        )
    }

    fn ana() -> AgentRef {
        AgentRef {
            surface: SurfaceKind::Slack,
            user_id: "U1".into(),
            name: "ana".into(),
            roles: vec![],
        }
    }

    /// Run the clocks from 0 to `until` minutes, taking each step as it falls due (as the
    /// scheduler would, marking it done), jumping from check to check.
    fn walk(mut ticket: Ticket, policy: &SlaPolicy, until: i64) -> Vec<(i64, SlaStep)> {
        let mut marks = SlaMarks::default();
        let mut log = Vec::new();
        let mut now = t(0);
        while now <= t(until) {
            for step in due_steps(&ticket, &marks, policy, now) {
                log.push(((now - t(0)).num_minutes(), step));
                match step {
                    SlaStep::Warn { .. } => marks.warned = true,
                    SlaStep::Breach => marks.breached = true,
                    SlaStep::Escalate { level } => marks.escalated = level,
                    SlaStep::RemindHolder => {
                        marks.reminded_claim = ticket.holder.as_ref().map(|c| c.since)
                    }
                    SlaStep::ReleaseClaim => {
                        marks.released_claim = ticket.holder.as_ref().map(|c| c.since);
                        ticket.holder = None;
                    }
                }
            }
            match next_check(&ticket, &marks, policy, now) {
                Some(next) => now = next,
                None => break,
            }
        }
        log
    }

    #[test]
    fn an_untouched_ticket_warns_escalates_and_breaches_once_each_on_time() {
        let log = walk(ticket(), &SlaPolicy::default(), 24 * 60);
        assert_eq!(
            log,
            vec![
                (17, SlaStep::Escalate { level: 1 }),
                (32, SlaStep::Escalate { level: 2 }),
                (
                    45,
                    SlaStep::Warn {
                        left: Duration::minutes(15)
                    }
                ),
                (60, SlaStep::Breach),
            ]
        );
    }

    #[test]
    fn an_idle_claim_is_reminded_then_released_and_the_unclaimed_clock_goes_on() {
        let mut tk = ticket();
        tk.holder = Some(Claim {
            agent: ana(),
            since: t(5),
        });
        let policy = SlaPolicy::default();
        let log = walk(tk, &policy, 120);
        assert_eq!(
            log,
            vec![
                (25, SlaStep::RemindHolder),
                (
                    45,
                    SlaStep::Warn {
                        left: Duration::minutes(15)
                    }
                ),
                (45, SlaStep::ReleaseClaim),
                // Released: it is unclaimed and already past both escalation ages.
                (45, SlaStep::Escalate { level: 2 }),
                (60, SlaStep::Breach),
            ]
        );
    }

    #[test]
    fn the_clocks_stop_when_the_customer_is_answered_or_the_ticket_closes() {
        let mut answered = ticket();
        answered.replies.push(Reply {
            seq: 1,
            text: "hi".into(),
            visibility: Visibility::Public,
            private: false,
            by: ana(),
            at: t(10),
            state: ReplyState::Published {
                remote_id: "2".into(),
                url: String::new(),
            },
        });
        assert!(due_steps(
            &answered,
            &SlaMarks::default(),
            &SlaPolicy::default(),
            t(90)
        )
        .is_empty());
        assert_eq!(
            next_check(
                &answered,
                &SlaMarks::default(),
                &SlaPolicy::default(),
                t(11)
            ),
            None
        );
        assert_eq!(first_answer(&answered), Some(t(10)));

        let mut resolved = ticket();
        resolved.stage = crate::domain::Stage::Resolved;
        assert!(due_steps(
            &resolved,
            &SlaMarks::default(),
            &SlaPolicy::default(),
            t(90)
        )
        .is_empty());

        // A failed reply is no answer: the clock runs on.
        let mut failed = ticket();
        failed.replies.push(Reply {
            seq: 1,
            text: "hi".into(),
            visibility: Visibility::Public,
            private: false,
            by: ana(),
            at: t(10),
            state: ReplyState::Failed {
                reason: "gone".into(),
            },
        });
        assert!(
            due_steps(&failed, &SlaMarks::default(), &SlaPolicy::default(), t(60))
                .contains(&SlaStep::Breach)
        );
    }

    #[test]
    fn the_next_check_is_the_earliest_pending_edge() {
        let marks = SlaMarks::default();
        let policy = SlaPolicy::default();
        assert_eq!(next_check(&ticket(), &marks, &policy, t(0)), Some(t(17)));
        let after_escalations = SlaMarks {
            escalated: 2,
            ..SlaMarks::default()
        };
        assert_eq!(
            next_check(&ticket(), &after_escalations, &policy, t(33)),
            Some(t(45))
        );
        assert_eq!(first_response_due(&ticket(), &policy), t(60));
    }
}
