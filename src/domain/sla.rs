//! SLA clocks, as pure functions of a ticket (which carries what was already done about
//! it) and `now`: when the first response is due, what should happen next (a warning, a
//! breach, an escalation, a reminder to an idle holder, releasing their claim, an overdue
//! resolution), and when to look again; and the transition that records a step with the
//! thread notes it calls for. The runtime's scheduler calls these with the desk's clock;
//! tests call them with any instant, so nothing here sleeps or reads time.

use super::oncall::OnCall;
use super::{AgentRef, AuditEntry, Effect, Note, SlaMarks, Ticket, Transition};
use chrono::{DateTime, Duration, Utc};

/// A route's targets and how loudly to chase them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    /// The customer gets a first answer within this (default 60 min).
    pub first_response: Duration,
    /// The ticket is resolved within this, if set.
    pub resolution: Option<Duration>,
    /// Warn when this share of the first-response time is used (default 0.75).
    pub warn_at: f64,
    /// An unclaimed ticket escalates one level at each of these ages: level 1 (the
    /// secondary on-call), level 2 (the whole channel), …
    pub unclaimed_escalation: Vec<Duration>,
    /// A holder who has not answered within this is reminded…
    pub idle_claim_reminder: Duration,
    /// …and their claim is released after this, for whoever is on.
    pub idle_claim_release: Duration,
    /// A draft waiting for approval this long reminds the on-call agents (`[approvals]`).
    pub approval_reminder: Option<Duration>,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            first_response: Duration::minutes(60),
            resolution: None,
            warn_at: 0.75,
            unclaimed_escalation: vec![Duration::minutes(15), Duration::minutes(30)],
            idle_claim_reminder: Duration::minutes(20),
            idle_claim_release: Duration::minutes(40),
            approval_reminder: None,
        }
    }
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
    /// The resolution target passed with the ticket still open.
    ResolutionOverdue,
    /// A draft has waited for approval too long.
    RemindApprovers,
}

/// When the first response is due: as stamped on arrival, else the time the desk received
/// the mention plus the target.
pub fn first_response_due(ticket: &Ticket, policy: &SlaPolicy) -> DateTime<Utc> {
    ticket
        .respond_by
        .unwrap_or(ticket.received_at() + policy.first_response)
}

/// The steps due at `now` that have not happened yet, in the order to take them.
pub fn due_steps(
    ticket: &Ticket,
    marks: &SlaMarks,
    policy: &SlaPolicy,
    now: DateTime<Utc>,
) -> Vec<SlaStep> {
    let mut steps = Vec::new();
    if let Some(resolution) = policy.resolution {
        if !ticket.is_closed()
            && !marks.resolution_overdue
            && now >= ticket.received_at() + resolution
        {
            steps.push(SlaStep::ResolutionOverdue);
        }
    }
    if !ticket.awaiting_answer() {
        return steps;
    }
    let due = first_response_due(ticket, policy);
    let warn_from = warn_from(ticket, policy);
    if now >= due {
        if !marks.breached {
            steps.insert(0, SlaStep::Breach);
        }
    } else if now >= warn_from && !marks.warned {
        steps.insert(0, SlaStep::Warn { left: due - now });
    }
    if let Some(at) = approval_reminder_at(ticket, policy) {
        if now >= at {
            steps.push(SlaStep::RemindApprovers);
        }
    }
    match &ticket.holder {
        // The holder has done their part while their draft waits for approval.
        Some(_) if ticket.draft_awaiting_approval().is_some() => {}
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

/// When the draft waiting for approval reminds the approvers, unless it already did.
fn approval_reminder_at(ticket: &Ticket, policy: &SlaPolicy) -> Option<DateTime<Utc>> {
    let after = policy.approval_reminder?;
    let draft = ticket.draft_awaiting_approval()?;
    let reminded = draft.review.as_ref().is_some_and(|r| r.reminded);
    (!reminded).then(|| draft.at + after)
}

fn warn_from(ticket: &Ticket, policy: &SlaPolicy) -> DateTime<Utc> {
    let due = first_response_due(ticket, policy);
    let span = due - ticket.received_at();
    ticket.received_at() + scaled(span, policy.warn_at)
}

/// The earliest instant, from `now` on, at which a step could become due (None: the
/// clocks have stopped). The scheduler sleeps until then; tests jump there.
pub fn next_check(
    ticket: &Ticket,
    marks: &SlaMarks,
    policy: &SlaPolicy,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // An edge already passed but not acted on (a claim just released, say) is due now.
    edges(ticket, marks, policy).map(|t| t.max(now)).min()
}

/// Every SLA edge of `ticket` not acted on yet, passed or not.
fn edges(
    ticket: &Ticket,
    marks: &SlaMarks,
    policy: &SlaPolicy,
) -> impl Iterator<Item = DateTime<Utc>> {
    let mut candidates = Vec::new();
    if let Some(resolution) = policy.resolution {
        if !ticket.is_closed() && !marks.resolution_overdue {
            candidates.push(ticket.received_at() + resolution);
        }
    }
    if ticket.awaiting_answer() {
        // A warning is moot once the target has passed.
        if !marks.warned && !marks.breached {
            candidates.push(warn_from(ticket, policy));
        }
        if !marks.breached {
            candidates.push(first_response_due(ticket, policy));
        }
        candidates.extend(approval_reminder_at(ticket, policy));
        match &ticket.holder {
            Some(_) if ticket.draft_awaiting_approval().is_some() => {}
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
    }
    candidates.into_iter()
}

/// The instant the scheduler must next look at `ticket` on a route with SLA `policy`
/// that acknowledges off-hours mentions or not (not clamped to any now: an edge already
/// passed is returned as it is), or `None` when nothing about it will ever be due (it is
/// closed, or every clock has stopped). That is the policy's earliest SLA edge not acted
/// on (as [`next_check`] sees them), or, where off-hours mentions are acknowledged, the
/// instant it was opened, until the scheduler has weighed that acknowledgement
/// ([`SlaMarks::off_hours_considered`]). The store keeps this per open ticket (see
/// `Routes::next_due`), so a quiet scheduler round reads nothing else.
pub fn next_due(
    ticket: &Ticket,
    policy: &SlaPolicy,
    acknowledges_off_hours: bool,
) -> Option<DateTime<Utc>> {
    let acknowledgement = (acknowledges_off_hours
        && !ticket.is_closed()
        && !ticket.off_hours_acked
        && ticket.replies.is_empty()
        && !ticket.sla.off_hours_considered)
        .then_some(ticket.opened_at);
    edges(ticket, &ticket.sla, policy)
        .chain(acknowledgement)
        .min()
}

/// What next-due instants depend on in one route's policy, as text: its SLA targets and
/// whether it acknowledges off hours (see `Routes::policy_fingerprint`).
pub fn policy_fingerprint(policy: &SlaPolicy, acknowledges_off_hours: bool) -> String {
    let ms = |d: &Duration| d.num_milliseconds().to_string();
    let p = policy;
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        ms(&p.first_response),
        p.resolution.as_ref().map(ms).unwrap_or_default(),
        p.warn_at,
        p.unclaimed_escalation
            .iter()
            .map(ms)
            .collect::<Vec<_>>()
            .join(","),
        ms(&p.idle_claim_reminder),
        ms(&p.idle_claim_release),
        acknowledges_off_hours,
        p.approval_reminder.as_ref().map(ms).unwrap_or_default(),
    )
}

/// The scheduler has weighed the off-hours acknowledgement of `ticket` (and found it not
/// owed, or too long to send): the marks that say so, or `None` if they already do.
pub fn off_hours_considered(ticket: &Ticket) -> Option<SlaMarks> {
    if ticket.sla.off_hours_considered {
        return None;
    }
    Some(SlaMarks {
        off_hours_considered: true,
        ..ticket.sla.clone()
    })
}

fn scaled(d: Duration, share: f64) -> Duration {
    Duration::milliseconds((d.num_milliseconds() as f64 * share.clamp(0.0, 1.0)) as i64)
}

/// Record `steps` on the ticket (so each happens once) with the notes that chase the
/// right people: a warning goes to the holder (or the primary on-call), a breach and an
/// escalation climb one level each (level 1 the secondary on-call, then the channel), a
/// reminder goes to the idle holder, and a released claim goes back to the primary
/// on-call. `None` when there is nothing to do.
pub fn apply_steps(
    ticket: &Ticket,
    steps: &[SlaStep],
    on_duty: &OnCall,
    now: DateTime<Utc>,
) -> Option<Transition> {
    if steps.is_empty() {
        return None;
    }
    let mut next = ticket.clone();
    let mut notes = Vec::new();
    let mut card_changes = false;
    let mut what = Vec::new();
    let holder_or_primary = |t: &Ticket| match &t.holder {
        Some(c) => vec![c.agent.member_key()],
        None => on_duty.primary.clone(),
    };
    // Several levels reached in one look (a late look, a breach on top of an age) call
    // only the highest: one loud line, not a burst of them.
    let escalate = |next: &mut Ticket, notes: &mut Vec<Note>, level: usize| {
        next.sla.escalated = next.sla.escalated.max(level);
        let (members, channel) = if level == 1 && !on_duty.secondary.is_empty() {
            (on_duty.secondary.clone(), false)
        } else {
            (Vec::new(), true)
        };
        notes.retain(|n| !matches!(n, Note::Escalated { .. }));
        notes.push(Note::Escalated {
            level,
            members,
            channel,
        });
    };
    for step in steps {
        match *step {
            // Each step checks its own mark, so a stale step list repeats nothing.
            SlaStep::Warn { left } if !next.sla.warned => {
                next.sla.warned = true;
                card_changes = true;
                notes.push(Note::SlaWarning {
                    minutes_left: (left.num_seconds() + 59) / 60,
                    members: holder_or_primary(&next),
                });
                what.push("first-response warning".to_string());
            }
            SlaStep::Breach if !next.sla.breached => {
                next.sla.breached = true;
                card_changes = true;
                notes.push(Note::SlaBreached {
                    members: holder_or_primary(&next),
                });
                let level = next.sla.escalated + 1;
                escalate(&mut next, &mut notes, level);
                what.push(format!(
                    "first-response target breached; escalated to level {level}"
                ));
            }
            SlaStep::Escalate { level } if level > next.sla.escalated => {
                escalate(&mut next, &mut notes, level);
                what.push(format!("unclaimed; escalated to level {level}"));
            }
            SlaStep::RemindHolder => {
                if let Some(claim) = ticket
                    .holder
                    .as_ref()
                    .filter(|c| next.sla.reminded_claim != Some(c.since))
                {
                    next.sla.reminded_claim = Some(claim.since);
                    notes.push(Note::ClaimReminder {
                        holder: claim.agent.clone(),
                        idle_minutes: (now - claim.since).num_minutes(),
                    });
                    what.push("idle claim reminded".to_string());
                }
            }
            SlaStep::ReleaseClaim => {
                if let Some(claim) = next.holder.take() {
                    next.sla.released_claim = Some(claim.since);
                    card_changes = true;
                    notes.push(released(
                        &claim.agent,
                        format!(
                            "no answer {} min after claiming",
                            (now - claim.since).num_minutes()
                        ),
                        on_duty,
                    ));
                    what.push("idle claim released".to_string());
                }
            }
            SlaStep::RemindApprovers => {
                let author = ticket.draft_awaiting_approval().map(|d| d.by.clone());
                let mut reminded = false;
                for r in next
                    .replies
                    .iter_mut()
                    .filter(|r| matches!(r.state, super::ReplyState::AwaitingApproval))
                {
                    if let Some(review) = r.review.as_mut().filter(|v| !v.reminded) {
                        review.reminded = true;
                        reminded = true;
                    }
                }
                if let (true, Some(author)) = (reminded, author) {
                    let waited = ticket
                        .draft_awaiting_approval()
                        .map(|d| (now - d.at).num_minutes())
                        .unwrap_or_default();
                    let members = on_duty
                        .primary
                        .iter()
                        .chain(&on_duty.secondary)
                        .filter(|k| **k != author.member_key())
                        .cloned()
                        .collect();
                    notes.push(Note::ApprovalReminder {
                        author,
                        minutes: waited,
                        members,
                    });
                    what.push("approvers reminded".to_string());
                }
            }
            SlaStep::ResolutionOverdue if !next.sla.resolution_overdue => {
                next.sla.resolution_overdue = true;
                card_changes = true;
                notes.push(Note::ResolutionOverdue {
                    members: holder_or_primary(&next),
                });
                what.push("resolution target passed".to_string());
            }
            _ => {}
        }
    }
    if notes.is_empty() {
        return None;
    }
    let mut effects = Vec::new();
    if card_changes {
        effects.push(Effect::UpdateCards);
    }
    effects.extend(notes.into_iter().map(Effect::ThreadNote));
    Some(Transition {
        audit: AuditEntry {
            ticket: ticket.id,
            at: now,
            actor: None,
            what: format!("sla: {}", what.join("; ")),
            detail: None,
        },
        ticket: next,
        effects,
    })
}

fn released(holder: &AgentRef, why: String, on_duty: &OnCall) -> Note {
    Note::ClaimReleased {
        holder: holder.clone(),
        why,
        members: on_duty.primary.clone(),
    }
}

/// A shift ended for the holder of an unanswered ticket: free it for the incoming shift.
pub fn release_at_handoff(
    ticket: &Ticket,
    incoming: &OnCall,
    now: DateTime<Utc>,
) -> Option<Transition> {
    let claim = ticket.holder.as_ref()?;
    if !ticket.awaiting_answer() {
        return None;
    }
    let mut next = ticket.clone();
    next.holder = None;
    next.updated_at = now;
    Some(Transition {
        audit: AuditEntry {
            ticket: ticket.id,
            at: now,
            actor: None,
            what: "claim released at shift hand-off".into(),
            detail: Some(claim.agent.member_key()),
        },
        ticket: next,
        effects: vec![
            Effect::UpdateCards,
            Effect::ThreadNote(released(&claim.agent, "their shift ended".into(), incoming)),
        ],
    })
}

/// The customer wrote while nobody is on shift: a short public acknowledgement, once per
/// conversation. It is the desk's own reply (`auto`), so the SLA clocks keep running.
pub fn acknowledge_off_hours(
    ticket: &Ticket,
    text: &str,
    by: AgentRef,
    now: DateTime<Utc>,
) -> Option<Transition> {
    if ticket.off_hours_acked || ticket.is_closed() || !ticket.replies.is_empty() {
        return None;
    }
    let mut next = ticket.clone();
    next.off_hours_acked = true;
    let seq = 1;
    next.replies.push(super::Reply {
        seq,
        text: super::text::compose_reply(&ticket.mention, text),
        visibility: ticket.mention.visibility,
        private: false,
        by,
        at: now,
        state: super::ReplyState::Pending,
        auto: true,
        review: None,
    });
    Some(Transition {
        audit: AuditEntry {
            ticket: ticket.id,
            at: now,
            actor: None,
            what: "off-hours acknowledgement queued".into(),
            detail: Some(next.replies[0].text.clone()),
        },
        ticket: next,
        effects: vec![
            Effect::PublishReply { seq },
            Effect::ThreadNote(Note::OffHoursAcknowledged),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AgentRef, Author, Claim, Mention, Platform, Reply, ReplyState, SurfaceKind, TicketId,
        Visibility,
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
                    followers: None,
                },
                text: "help".into(),
                language: None,
                // The post claims it was written two minutes before the desk saw it:
                // the clocks start when the desk received it, never at the claimed time.
                created_at: t(-2),
                in_reply_to: None,
                visibility: Visibility::Public,
                reply_context: None,
                external_id: None,
                detected_language: None,
            },
            t(0),
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
                    SlaStep::ResolutionOverdue => marks.resolution_overdue = true,
                    SlaStep::RemindApprovers => {
                        for r in ticket.replies.iter_mut() {
                            if let Some(review) = r.review.as_mut() {
                                review.reminded = true;
                            }
                        }
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
                (15, SlaStep::Escalate { level: 1 }),
                (30, SlaStep::Escalate { level: 2 }),
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
            auto: false,
            review: None,
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
        assert_eq!(answered.first_answer(), Some(t(10)));

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
            auto: false,
            review: None,
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
        assert_eq!(next_check(&ticket(), &marks, &policy, t(0)), Some(t(15)));
        let after_escalations = SlaMarks {
            escalated: 2,
            ..SlaMarks::default()
        };
        assert_eq!(
            next_check(&ticket(), &after_escalations, &policy, t(31)),
            Some(t(45))
        );
        assert_eq!(first_response_due(&ticket(), &policy), t(60));
    }

    fn on_duty() -> OnCall {
        OnCall {
            primary: vec!["slack:UPRIME".into()],
            secondary: vec!["slack:USECOND".into()],
        }
    }

    fn claimed_by_ana(since: DateTime<Utc>) -> Ticket {
        let mut tk = ticket();
        tk.holder = Some(Claim {
            agent: ana(),
            since,
        });
        tk
    }

    fn answer(at: DateTime<Utc>) -> Reply {
        Reply {
            seq: 1,
            text: "@alice on it".into(),
            visibility: Visibility::Public,
            private: false,
            by: ana(),
            at,
            state: ReplyState::Published {
                remote_id: "2".into(),
                url: String::new(),
            },
            auto: false,
            review: None,
        }
    }

    fn notes(tr: &Transition) -> Vec<Note> {
        tr.effects
            .iter()
            .filter_map(|e| match e {
                Effect::ThreadNote(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn updates_cards(tr: &Transition) -> bool {
        tr.effects.contains(&Effect::UpdateCards)
    }

    /// One scheduler round: the steps due on the ticket as it stands, recorded.
    fn round(tk: &Ticket, policy: &SlaPolicy, now: DateTime<Utc>) -> Option<Transition> {
        apply_steps(tk, &due_steps(tk, &tk.sla, policy, now), &on_duty(), now)
    }

    #[test]
    fn an_unclaimed_ticket_calls_the_secondary_on_call_first_then_the_whole_channel() {
        let level1 = apply_steps(
            &ticket(),
            &[SlaStep::Escalate { level: 1 }],
            &on_duty(),
            t(17),
        )
        .unwrap();
        assert_eq!(
            notes(&level1),
            vec![Note::Escalated {
                level: 1,
                members: vec!["slack:USECOND".into()],
                channel: false,
            }]
        );
        assert_eq!(level1.ticket.sla.escalated, 1);

        // Nobody on the secondary layer: level 1 already calls the channel.
        let nobody_secondary = OnCall {
            secondary: vec![],
            ..on_duty()
        };
        let alone = apply_steps(
            &ticket(),
            &[SlaStep::Escalate { level: 1 }],
            &nobody_secondary,
            t(17),
        )
        .unwrap();
        assert_eq!(
            notes(&alone),
            vec![Note::Escalated {
                level: 1,
                members: vec![],
                channel: true,
            }]
        );

        // Level 2 is the channel, however many secondaries are on.
        let level2 = apply_steps(
            &level1.ticket,
            &[SlaStep::Escalate { level: 2 }],
            &on_duty(),
            t(32),
        )
        .unwrap();
        assert_eq!(
            notes(&level2),
            vec![Note::Escalated {
                level: 2,
                members: vec![],
                channel: true,
            }]
        );
        assert_eq!(level2.ticket.sla.escalated, 2);

        // A level already reached is not called again.
        assert_eq!(
            apply_steps(
                &level2.ticket,
                &[SlaStep::Escalate { level: 2 }],
                &on_duty(),
                t(33)
            ),
            None
        );
    }

    #[test]
    fn a_warning_names_the_holder_or_else_the_primary_on_call_with_the_minutes_left_rounded_up() {
        let almost_15 = SlaStep::Warn {
            left: Duration::minutes(14) + Duration::seconds(30),
        };
        let unclaimed = apply_steps(&ticket(), &[almost_15], &on_duty(), t(45)).unwrap();
        assert_eq!(
            notes(&unclaimed),
            vec![Note::SlaWarning {
                minutes_left: 15,
                members: vec!["slack:UPRIME".into()],
            }]
        );
        assert!(unclaimed.ticket.sla.warned);
        assert!(updates_cards(&unclaimed), "the card shows the warning");

        let held = apply_steps(&claimed_by_ana(t(40)), &[almost_15], &on_duty(), t(45)).unwrap();
        assert_eq!(
            notes(&held),
            vec![Note::SlaWarning {
                minutes_left: 15,
                members: vec![ana().member_key()],
            }]
        );
        assert_eq!(ana().member_key(), "slack:U1");

        // Whole minutes stay whole.
        let exactly = SlaStep::Warn {
            left: Duration::minutes(15),
        };
        let tr = apply_steps(&ticket(), &[exactly], &on_duty(), t(45)).unwrap();
        assert!(matches!(
            notes(&tr)[..],
            [Note::SlaWarning {
                minutes_left: 15,
                ..
            }]
        ));
    }

    #[test]
    fn a_breach_is_recorded_and_calls_one_level_above_the_last_escalation() {
        let mut tk = ticket();
        tk.sla.escalated = 2;
        let tr = apply_steps(&tk, &[SlaStep::Breach], &on_duty(), t(60)).unwrap();
        assert_eq!(
            notes(&tr),
            vec![
                Note::SlaBreached {
                    members: vec!["slack:UPRIME".into()],
                },
                Note::Escalated {
                    level: 3,
                    members: vec![],
                    channel: true,
                },
            ]
        );
        assert!(tr.ticket.sla.breached);
        assert_eq!(tr.ticket.sla.escalated, 3);
        assert!(updates_cards(&tr));
        assert!(due_steps(&tr.ticket, &tr.ticket.sla, &SlaPolicy::default(), t(60)).is_empty());

        // A held ticket that was never escalated: the holder hears of the breach and the
        // secondary on-call is called in.
        let held =
            apply_steps(&claimed_by_ana(t(5)), &[SlaStep::Breach], &on_duty(), t(60)).unwrap();
        assert_eq!(
            notes(&held),
            vec![
                Note::SlaBreached {
                    members: vec!["slack:U1".into()],
                },
                Note::Escalated {
                    level: 1,
                    members: vec!["slack:USECOND".into()],
                    channel: false,
                },
            ]
        );
        assert_eq!(held.ticket.sla.escalated, 1);
    }

    #[test]
    fn an_idle_holder_is_reminded_by_name_once() {
        let policy = SlaPolicy::default();
        let tk = claimed_by_ana(t(5));
        assert_eq!(
            due_steps(&tk, &tk.sla, &policy, t(25)),
            vec![SlaStep::RemindHolder]
        );
        let tr = round(&tk, &policy, t(25)).unwrap();
        assert_eq!(
            notes(&tr),
            vec![Note::ClaimReminder {
                holder: ana(),
                idle_minutes: 20,
            }]
        );
        assert_eq!(tr.ticket.sla.reminded_claim, Some(t(5)));
        assert_eq!(tr.ticket.holder, tk.holder, "a reminder keeps the claim");
        assert_eq!(round(&tr.ticket, &policy, t(25)), None);
    }

    #[test]
    fn an_idle_claim_is_released_for_the_primary_on_call_and_only_once() {
        let policy = SlaPolicy::default();
        let mut tk = claimed_by_ana(t(5));
        tk.sla.warned = true;
        tk.sla.reminded_claim = Some(t(5));
        let steps = due_steps(&tk, &tk.sla, &policy, t(45));
        assert_eq!(steps, vec![SlaStep::ReleaseClaim]);

        let tr = apply_steps(&tk, &steps, &on_duty(), t(45)).unwrap();
        let next = tr.ticket.clone();
        assert_eq!(next.holder, None);
        assert_eq!(next.sla.released_claim, Some(t(5)));
        assert!(updates_cards(&tr));
        assert_eq!(
            notes(&tr),
            vec![Note::ClaimReleased {
                holder: ana(),
                why: "no answer 40 min after claiming".into(),
                members: vec!["slack:UPRIME".into()],
            }]
        );

        // Taking the due steps again on the released ticket repeats nothing: what is left
        // is the unclaimed clock, already past both escalation ages.
        let again = due_steps(&next, &next.sla, &policy, t(45));
        assert_eq!(again, vec![SlaStep::Escalate { level: 2 }]);
        let escalated = apply_steps(&next, &again, &on_duty(), t(45)).unwrap();
        assert!(!notes(&escalated)
            .iter()
            .any(|n| matches!(n, Note::ClaimReleased { .. })));
        assert!(due_steps(&escalated.ticket, &escalated.ticket.sla, &policy, t(45)).is_empty());
    }

    #[test]
    fn rounds_fed_back_at_the_same_instant_settle_and_never_repeat_a_step() {
        let policy = SlaPolicy::default();
        // (ticket, when the scheduler looks, the notes all rounds together should leave)
        let cases = vec![
            (
                claimed_by_ana(t(5)),
                t(45),
                vec![
                    Note::SlaWarning {
                        minutes_left: 15,
                        members: vec!["slack:U1".into()],
                    },
                    Note::ClaimReleased {
                        holder: ana(),
                        why: "no answer 40 min after claiming".into(),
                        members: vec!["slack:UPRIME".into()],
                    },
                    Note::Escalated {
                        level: 2,
                        members: vec![],
                        channel: true,
                    },
                ],
            ),
            // First looked at after the target: the breach, and only the highest level
            // reached (the channel, which includes the secondary), once.
            (
                ticket(),
                t(60),
                vec![
                    Note::SlaBreached {
                        members: vec!["slack:UPRIME".into()],
                    },
                    Note::Escalated {
                        level: 2,
                        members: vec![],
                        channel: true,
                    },
                ],
            ),
        ];
        for (start, now, want) in cases {
            let mut tk = start;
            let mut left = Vec::new();
            let mut rounds = 0;
            while let Some(tr) = round(&tk, &policy, now) {
                rounds += 1;
                assert!(
                    rounds <= 3,
                    "still taking steps after {rounds} rounds: {left:?}"
                );
                left.extend(notes(&tr));
                tk = tr.ticket;
            }
            assert_eq!(left, want);
            assert_eq!(round(&tk, &policy, now), None);
        }
    }

    #[test]
    fn a_claim_is_released_at_hand_off_only_while_the_customer_still_waits() {
        let incoming = OnCall {
            primary: vec!["slack:UNEXT".into()],
            secondary: vec![],
        };
        assert_eq!(release_at_handoff(&ticket(), &incoming, t(30)), None);

        let mut answered = claimed_by_ana(t(5));
        answered.replies.push(answer(t(10)));
        assert_eq!(release_at_handoff(&answered, &incoming, t(30)), None);

        let tk = claimed_by_ana(t(5));
        let tr = release_at_handoff(&tk, &incoming, t(30)).unwrap();
        assert_eq!(tr.ticket.holder, None);
        assert_eq!(tr.ticket.updated_at, t(30));
        assert_eq!(
            tr.effects,
            vec![
                Effect::UpdateCards,
                Effect::ThreadNote(Note::ClaimReleased {
                    holder: ana(),
                    why: "their shift ended".into(),
                    members: vec!["slack:UNEXT".into()],
                }),
            ]
        );
        assert_eq!(tr.audit.detail.as_deref(), Some("slack:U1"));
    }

    #[test]
    fn off_hours_the_customer_is_told_once_and_the_clocks_keep_running() {
        let bot = AgentRef {
            user_id: String::new(),
            name: "mentionbridge (off-hours)".into(),
            ..ana()
        };
        let tk = ticket();
        assert_eq!(tk.mention.author.handle, "alice");
        let tr = acknowledge_off_hours(&tk, "we are back at 9:00.", bot.clone(), t(3)).unwrap();
        let publishes: Vec<_> = tr
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::PublishReply { .. }))
            .collect();
        assert_eq!(publishes, vec![&Effect::PublishReply { seq: 1 }]);
        assert!(notes(&tr).contains(&Note::OffHoursAcknowledged));
        let acked = tr.ticket;
        assert!(acked.off_hours_acked);
        let [reply] = &acked.replies[..] else {
            panic!("expected exactly one reply: {:?}", acked.replies);
        };
        assert_eq!(reply.seq, 1);
        assert!(reply.auto);
        assert!(reply.text.starts_with("@alice "), "{}", reply.text);
        assert_eq!(reply.text, "@alice we are back at 9:00.");
        assert_eq!(reply.state, ReplyState::Pending);
        assert!(
            acked.awaiting_answer(),
            "a queued acknowledgement is no answer"
        );

        assert_eq!(acknowledge_off_hours(&acked, "again", bot, t(4)), None);

        // Published, it is still the desk talking, not an agent: the target still counts.
        let mut published = acked.clone();
        published.replies[0].state = ReplyState::Published {
            remote_id: "9".into(),
            url: String::new(),
        };
        assert_eq!(published.first_answer(), None);
        assert!(
            due_steps(&published, &published.sla, &SlaPolicy::default(), t(60))
                .contains(&SlaStep::Breach)
        );
    }

    #[test]
    fn an_answered_but_open_ticket_is_flagged_once_when_the_resolution_target_passes() {
        let policy = SlaPolicy {
            resolution: Some(Duration::hours(4)),
            ..SlaPolicy::default()
        };
        let mut tk = ticket();
        tk.replies.push(answer(t(10)));
        assert_eq!(next_check(&tk, &tk.sla, &policy, t(11)), Some(t(240)));
        assert!(due_steps(&tk, &tk.sla, &policy, t(239)).is_empty());
        assert_eq!(
            due_steps(&tk, &tk.sla, &policy, t(240)),
            vec![SlaStep::ResolutionOverdue]
        );

        let tr = round(&tk, &policy, t(240)).unwrap();
        assert_eq!(
            notes(&tr),
            vec![Note::ResolutionOverdue {
                members: vec!["slack:UPRIME".into()],
            }]
        );
        assert!(tr.ticket.sla.resolution_overdue);
        assert!(updates_cards(&tr));
        assert!(due_steps(&tr.ticket, &tr.ticket.sla, &policy, t(300)).is_empty());
        assert_eq!(
            next_check(&tr.ticket, &tr.ticket.sla, &policy, t(241)),
            None
        );

        let mut resolved = tk;
        resolved.stage = crate::domain::Stage::Resolved;
        assert!(due_steps(&resolved, &resolved.sla, &policy, t(300)).is_empty());
    }

    #[test]
    fn a_stale_list_of_steps_repeats_nothing() {
        let tk = claimed_by_ana(t(5));
        let steps = [
            SlaStep::Warn {
                left: Duration::minutes(15),
            },
            SlaStep::Breach,
            SlaStep::RemindHolder,
            SlaStep::ResolutionOverdue,
        ];
        let once = apply_steps(&tk, &steps, &on_duty(), t(60)).expect("first time: notes");
        assert!(apply_steps(&once.ticket, &steps, &on_duty(), t(61)).is_none());
    }

    fn routes_of(policy: SlaPolicy, ack: bool) -> crate::domain::routes::Routes {
        let mut default = crate::domain::routes::Route::default_route(policy, true);
        default.off_hours_ack = ack.then(|| "Back {expected}.".to_string());
        crate::domain::routes::Routes {
            routes: Vec::new(),
            default,
            card_hold: Default::default(),
            triage: Default::default(),
        }
    }

    #[test]
    fn a_ticket_is_due_exactly_when_a_step_is() {
        // Minute by minute over two days, a claim taken at 5 and another at 70 after the
        // first was released: whenever the index says "due", a step is there to take, and
        // whenever a step is there, the index said so no later than that minute.
        let policy = SlaPolicy {
            resolution: Some(Duration::hours(6)),
            ..SlaPolicy::default()
        };
        let routes = routes_of(policy.clone(), false);
        let mut tk = ticket();
        let mut taken = Vec::new();
        for minute in 0..2 * 24 * 60 {
            let now = t(minute);
            if minute == 5 {
                tk.holder = Some(Claim {
                    agent: ana(),
                    since: now,
                });
            }
            if minute == 70 && tk.holder.is_none() {
                tk.holder = Some(Claim {
                    agent: ana(),
                    since: now,
                });
            }
            let due = routes.next_due(&tk);
            let steps = due_steps(&tk, &tk.sla, &policy, now);
            assert_eq!(
                due.is_some_and(|d| d <= now),
                !steps.is_empty(),
                "minute {minute}: due {due:?}, steps {steps:?}"
            );
            if let Some(tr) = apply_steps(&tk, &steps, &on_duty(), now) {
                taken.push(minute);
                tk = tr.ticket;
            }
            // Unclamped: an edge is never later than when the round that takes it runs.
            assert_eq!(
                next_check(&tk, &tk.sla, &policy, now),
                routes.next_due(&tk).map(|d| d.max(now))
            );
        }
        assert!(
            taken.contains(&360),
            "the resolution target at 6 h: {taken:?}"
        );
        assert_eq!(routes.next_due(&tk), None, "every clock has stopped");
    }

    #[test]
    fn an_acknowledging_route_makes_a_fresh_ticket_due_until_it_is_weighed() {
        let policy = SlaPolicy::default();
        let acking = routes_of(policy.clone(), true);
        let quiet = routes_of(policy.clone(), false);
        let tk = ticket();
        assert_eq!(quiet.next_due(&tk), Some(t(15)));
        assert_eq!(acking.next_due(&tk), Some(t(0)), "due at once");
        let mut weighed = tk.clone();
        weighed.sla = off_hours_considered(&tk).expect("not weighed yet");
        assert_eq!(off_hours_considered(&weighed), None, "once");
        assert_eq!(acking.next_due(&weighed), Some(t(15)));
        let mut acked = tk.clone();
        acked.off_hours_acked = true;
        assert_eq!(acking.next_due(&acked), Some(t(15)));
        let mut closed = tk;
        closed.stage = crate::domain::Stage::Ignored;
        assert_eq!(acking.next_due(&closed), None);
    }

    #[test]
    fn the_fingerprint_changes_with_any_policy_the_index_depends_on() {
        let base = routes_of(SlaPolicy::default(), false);
        let same = routes_of(SlaPolicy::default(), false);
        assert_eq!(base.policy_fingerprint(), same.policy_fingerprint());
        let faster = routes_of(
            SlaPolicy {
                first_response: Duration::minutes(30),
                ..SlaPolicy::default()
            },
            false,
        );
        let acking = routes_of(SlaPolicy::default(), true);
        let mut renamed = base.clone();
        renamed.routes.push(crate::domain::routes::Route {
            name: "vip".into(),
            ..base.default.clone()
        });
        for other in [faster, acking, renamed] {
            assert_ne!(base.policy_fingerprint(), other.policy_fingerprint());
        }
    }

    #[test]
    fn a_draft_waiting_for_approval_reminds_the_on_call_once_and_spares_its_author_the_idle_nags() {
        let policy = SlaPolicy {
            approval_reminder: Some(Duration::minutes(15)),
            ..SlaPolicy::default()
        };
        let mut tk = claimed_by_ana(t(1));
        let mut draft = answer(t(2));
        draft.state = ReplyState::AwaitingApproval;
        draft.review = Some(crate::domain::Review {
            reasons: vec!["mentions refund".into()],
            approved_by: None,
            approved_at: None,
            reminded: false,
        });
        // Ana is on call herself: the reminder asks the others.
        let on = OnCall {
            primary: vec![ana().member_key(), "slack:UPRIME".into()],
            secondary: vec!["slack:USECOND".into()],
        };
        tk.replies.push(draft);
        assert_eq!(next_check(&tk, &tk.sla, &policy, t(2)), Some(t(17)));
        assert!(apply_steps(&tk, &due_steps(&tk, &tk.sla, &policy, t(16)), &on, t(16)).is_none());
        let reminded =
            apply_steps(&tk, &due_steps(&tk, &tk.sla, &policy, t(17)), &on, t(17)).unwrap();
        assert_eq!(
            notes(&reminded),
            vec![Note::ApprovalReminder {
                author: ana(),
                minutes: 15,
                members: vec!["slack:UPRIME".into(), "slack:USECOND".into()],
            }]
        );
        let tk = reminded.ticket;
        // Once only; and Ana, who has done her part, is neither reminded nor released.
        let later = due_steps(&tk, &tk.sla, &policy, t(120));
        assert!(!later.contains(&SlaStep::RemindApprovers));
        assert!(!later.contains(&SlaStep::RemindHolder));
        assert!(!later.contains(&SlaStep::ReleaseClaim));
        assert!(
            later.contains(&SlaStep::Breach),
            "the customer still waits: {later:?}"
        );
    }
}
