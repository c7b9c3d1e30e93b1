//! The one place that decides what an action does to a ticket.

use super::agents::Agents;
use super::approval::ApprovalPolicy;
use super::model::*;
use super::text::{compose_reply, TextRules};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Who counts as an agent on one chat surface.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    /// User ids configured as agents.
    pub user_ids: HashSet<String>,
    /// Roles whose members are agents (Discord role ids).
    pub role_ids: HashSet<String>,
    /// Members of the configured agent groups, as last resolved by the surface (Slack
    /// user groups).
    pub group_members: HashSet<String>,
}

impl Roster {
    pub fn admits(&self, who: &AgentRef) -> bool {
        self.user_ids.contains(&who.user_id)
            || self.group_members.contains(&who.user_id)
            || who.roles.iter().any(|r| self.role_ids.contains(r))
    }
}

/// What the core needs to know about the desk to judge an action.
#[derive(Debug, Clone, Default)]
pub struct Desk {
    pub rosters: HashMap<SurfaceKind, Roster>,
    /// How each platform we can answer on counts a reply; a platform missing here has
    /// no publisher configured.
    pub text_rules: HashMap<Platform, TextRules>,
    /// People with accounts on several surfaces (`[[agents]]`): each is an agent, one
    /// person on every surface.
    pub agents: Agents,
    /// Which drafts wait for a second pair of eyes.
    pub approvals: ApprovalPolicy,
}

impl Desk {
    pub fn new() -> Desk {
        Desk::default()
    }

    pub fn with_rules(mut self, platform: Platform, rules: TextRules) -> Desk {
        self.text_rules.insert(platform, rules);
        self
    }

    pub fn roster_mut(&mut self, surface: SurfaceKind) -> &mut Roster {
        self.rosters.entry(surface).or_default()
    }

    pub fn is_agent(&self, who: &AgentRef) -> bool {
        self.rosters
            .get(&who.surface)
            .is_some_and(|r| r.admits(who))
            || self.agents.of(&who.member_key()).is_some()
    }

    /// The same person, whichever surface each acted on.
    pub fn same_person(&self, a: &AgentRef, b: &AgentRef) -> bool {
        a.same_person(b) || self.agents.same(&a.member_key(), &b.member_key())
    }

    /// Whether `who` is in training (on any of their surfaces).
    pub fn is_trainee(&self, who: &AgentRef) -> bool {
        let key = who.member_key();
        self.approvals
            .trainees
            .iter()
            .any(|t| *t == key || self.agents.same(t, &key))
    }
}

/// Why an action was refused, as a sentence for the agent who tried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotAnAgent,
    AlreadyClaimed {
        by: AgentRef,
        minutes: i64,
    },
    AlreadyYours,
    NotYours {
        holder: AgentRef,
    },
    NotClaimed,
    Closed {
        stage: Stage,
    },
    NotClosed,
    EmptyReply,
    ReplyTooLong {
        length: usize,
        limit: usize,
        platform: Platform,
    },
    /// Bluesky's second limit: the encoded size.
    ReplyTooManyBytes {
        bytes: usize,
        limit: usize,
    },
    CannotReplyOn {
        network: String,
    },
    ReplyInFlight,
    /// A bulk answer reached a member that was answered already (on its own, or by an
    /// earlier try of the same bulk answer).
    AnsweredAlready,
    /// A bulk answer reached a ticket that is no longer a member (split off).
    NotInIncident,
    /// No draft waits for approval on this ticket.
    NoDraftWaiting,
    /// The draft is the actor's own (or their edit): someone else must approve it.
    OwnDraft,
    /// Agents in training approve nobody's drafts.
    TraineeCannotApprove,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotAnAgent => write!(
                f,
                "Only support agents can act on mention tickets. Ask an admin to add you to the agents list."
            ),
            Rejection::AlreadyClaimed { by, minutes } => write!(
                f,
                "Already claimed by {} {} ago.",
                by.name,
                human_minutes(*minutes)
            ),
            Rejection::AlreadyYours => write!(f, "You already hold this ticket."),
            Rejection::NotYours { holder } => write!(
                f,
                "This ticket is held by {}; only they can do that (or they can unclaim it first).",
                holder.name
            ),
            Rejection::NotClaimed => write!(f, "Nobody holds this ticket."),
            Rejection::Closed { stage } => write!(
                f,
                "This ticket is {}; reopen it first.",
                match stage {
                    Stage::Ignored => "ignored",
                    _ => "resolved",
                }
            ),
            Rejection::NotClosed => write!(f, "This ticket is still open."),
            Rejection::EmptyReply => write!(f, "The reply is empty."),
            Rejection::ReplyTooLong {
                length,
                limit,
                platform,
            } => write!(
                f,
                "The reply is {length} characters as {} counts them{}; the limit is {limit}. Shorten it by {}.",
                platform.label(),
                if *platform == Platform::Mastodon {
                    " (with the @mention)"
                } else {
                    ""
                },
                length.saturating_sub(*limit)
            ),
            Rejection::ReplyTooManyBytes { bytes, limit } => write!(
                f,
                "The reply is {bytes} bytes; Bluesky allows {limit}. Shorten it (emoji and non-Latin letters take several bytes each)."
            ),
            Rejection::CannotReplyOn { network } => write!(
                f,
                "mentionbridge cannot post on {network}: open the original to answer there, then resolve the ticket."
            ),
            Rejection::ReplyInFlight => write!(
                f,
                "A reply to this mention is still being published or waits for approval; wait for it before sending another."
            ),
            Rejection::NoDraftWaiting => write!(f, "No draft waits for approval on this ticket."),
            Rejection::OwnDraft => write!(
                f,
                "You wrote this draft (or its last edit); another agent must approve it."
            ),
            Rejection::TraineeCannotApprove => write!(
                f,
                "Agents in training cannot approve drafts; ask a colleague."
            ),
            Rejection::AnsweredAlready => write!(f, "This customer was answered already."),
            Rejection::NotInIncident => write!(
                f,
                "This ticket is no longer part of the incident: it is answered on its own."
            ),
        }
    }
}

fn human_minutes(m: i64) -> String {
    match m {
        i64::MIN..=0 => "less than a minute".into(),
        1 => "1 min".into(),
        2..=119 => format!("{m} min"),
        _ => format!("{} h {} min", m / 60, m % 60),
    }
}

fn audit(
    ticket: &Ticket,
    actor: Option<&AgentRef>,
    what: &str,
    detail: Option<String>,
    now: DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        ticket: ticket.id,
        at: now,
        actor: actor.cloned(),
        what: what.into(),
        detail,
    }
}

/// Most actions change what the card shows and leave a line in its thread.
fn card_change(note: Note, what: &'static str) -> (Vec<Effect>, &'static str, Option<String>) {
    (
        vec![Effect::UpdateCards, Effect::ThreadNote(note)],
        what,
        None,
    )
}

fn ensure_open(ticket: &Ticket) -> Result<(), Rejection> {
    match ticket.stage {
        Stage::Resolved | Stage::Ignored => Err(Rejection::Closed {
            stage: ticket.stage,
        }),
        _ => Ok(()),
    }
}

/// Only the holder may change a claimed ticket.
fn ensure_not_held_by_other(
    ticket: &Ticket,
    actor: &AgentRef,
    desk: &Desk,
) -> Result<(), Rejection> {
    match &ticket.holder {
        Some(c) if !desk.same_person(&c.agent, actor) => Err(Rejection::NotYours {
            holder: c.agent.clone(),
        }),
        _ => Ok(()),
    }
}

/// Check and queue one or more replies (text, private?) as a single decision: either all
/// are accepted or none is.
fn queue_replies(
    ticket: &Ticket,
    next: &mut Ticket,
    actor: &AgentRef,
    desk: &Desk,
    now: DateTime<Utc>,
    parts: &[(String, bool)],
) -> Result<(Vec<Effect>, &'static str, Option<String>), Rejection> {
    ensure_open(ticket)?;
    ensure_not_held_by_other(ticket, actor, desk)?;
    if parts.iter().any(|(text, _)| text.trim().is_empty()) {
        return Err(Rejection::EmptyReply);
    }
    if ticket.pending_reply().is_some() {
        return Err(Rejection::ReplyInFlight);
    }
    let Some(rules) = desk.text_rules.get(&ticket.mention.platform) else {
        return Err(Rejection::CannotReplyOn {
            network: ticket.mention.network_label().to_string(),
        });
    };
    let mut effects = Vec::new();
    let mut notes = Vec::new();
    let texts: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    let mut reasons = Vec::new();
    if desk.is_trainee(actor) {
        reasons.push(format!("{} is in training", actor.name));
    }
    reasons.extend(desk.approvals.reasons(ticket, &texts));
    let held = !reasons.is_empty();
    let first_seq = ticket.replies.iter().map(|r| r.seq).max().unwrap_or(0) + 1;
    for (seq, (text, private)) in (first_seq..).zip(parts) {
        // On Mastodon a private message is a direct status, addressed by the handle like
        // a public reply; elsewhere a chat or DM goes to the person and needs no mention.
        let full = compose_reply(&ticket.mention, text);
        check_length(ticket, rules, &full)?;
        next.replies.push(Reply {
            seq,
            text: full.clone(),
            visibility: if *private {
                Visibility::Direct
            } else {
                ticket.mention.visibility
            },
            private: *private,
            by: actor.clone(),
            at: now,
            state: if held {
                ReplyState::AwaitingApproval
            } else {
                ReplyState::Pending
            },
            auto: false,
            review: held.then(|| Review {
                reasons: reasons.clone(),
                approved_by: None,
                approved_at: None,
                reminded: false,
            }),
        });
        let shown = if *private {
            format!("(private) {full}")
        } else {
            full.clone()
        };
        if held {
            notes.push(Note::ApprovalAsked {
                by: actor.clone(),
                text: shown,
                reasons: reasons.clone(),
            });
        } else {
            effects.push(Effect::PublishReply { seq });
            notes.push(Note::ReplyQueued {
                by: actor.clone(),
                text: shown,
            });
        }
    }
    next.customer_replied = false;
    // Replying to an unclaimed ticket claims it: the person answering owns it.
    if next.holder.is_none() {
        next.holder = Some(Claim {
            agent: actor.clone(),
            since: now,
        });
    }
    effects.push(Effect::UpdateCards);
    effects.extend(notes.into_iter().map(Effect::ThreadNote));
    let detail = next.replies[ticket.replies.len()..]
        .iter()
        .map(|r| r.text.clone())
        .collect::<Vec<_>>()
        .join("\n");
    let what = match (held, parts.iter().any(|(_, private)| *private)) {
        (true, true) => "private reply awaits approval",
        (true, false) => "reply awaits approval",
        (false, true) => "private reply queued",
        (false, false) => "reply queued",
    };
    Ok((effects, what, Some(detail)))
}

/// A reply as it will be sent must fit the platform's limits.
fn check_length(ticket: &Ticket, rules: &TextRules, full: &str) -> Result<(), Rejection> {
    let length = rules.count(full);
    if length > rules.max_chars {
        return Err(Rejection::ReplyTooLong {
            length,
            limit: rules.max_chars,
            platform: ticket.mention.platform,
        });
    }
    if !rules.fits(full) {
        return Err(Rejection::ReplyTooManyBytes {
            bytes: full.len(),
            limit: crate::domain::text::BLUESKY_MAX_BYTES,
        });
    }
    Ok(())
}

/// Approve, reject or rewrite the draft that waits for approval. Approving is never
/// open to its author (nor to whoever last edited it) nor to an agent in training; what
/// is approved goes out exactly as it reads.
fn review_draft(
    ticket: &Ticket,
    next: &mut Ticket,
    action: &AgentAction,
    actor: &AgentRef,
    desk: &Desk,
    now: DateTime<Utc>,
) -> Result<(Vec<Effect>, &'static str, Option<String>), Rejection> {
    ensure_open(ticket)?;
    let Some(draft) = ticket.draft_awaiting_approval() else {
        return Err(Rejection::NoDraftWaiting);
    };
    let author = draft.by.clone();
    match action {
        AgentAction::Approve => {
            if ticket
                .drafts_awaiting_approval()
                .any(|r| desk.same_person(&r.by, actor))
            {
                return Err(Rejection::OwnDraft);
            }
            if desk.is_trainee(actor) {
                return Err(Rejection::TraineeCannotApprove);
            }
            let mut effects = Vec::new();
            let mut texts = Vec::new();
            for r in next
                .replies
                .iter_mut()
                .filter(|r| matches!(r.state, ReplyState::AwaitingApproval))
            {
                r.state = ReplyState::Pending;
                if let Some(review) = r.review.as_mut() {
                    review.approved_by = Some(actor.clone());
                    review.approved_at = Some(now);
                }
                effects.push(Effect::PublishReply { seq: r.seq });
                texts.push(r.text.clone());
            }
            effects.push(Effect::UpdateCards);
            effects.push(Effect::ThreadNote(Note::DraftApproved {
                by: actor.clone(),
                author: author.clone(),
            }));
            Ok((
                effects,
                "reply approved",
                Some(format!(
                    "written by {}: {}",
                    author.member_key(),
                    texts.join("\n")
                )),
            ))
        }
        AgentAction::RejectDraft => {
            for r in next
                .replies
                .iter_mut()
                .filter(|r| matches!(r.state, ReplyState::AwaitingApproval))
            {
                r.state = ReplyState::Rejected { by: actor.clone() };
            }
            Ok((
                vec![
                    Effect::UpdateCards,
                    Effect::ThreadNote(Note::DraftRejected {
                        by: actor.clone(),
                        author: author.clone(),
                    }),
                ],
                "draft rejected",
                Some(format!("written by {}", author.member_key())),
            ))
        }
        AgentAction::EditDraft { text } => {
            if text.trim().is_empty() {
                return Err(Rejection::EmptyReply);
            }
            let Some(rules) = desk.text_rules.get(&ticket.mention.platform) else {
                return Err(Rejection::CannotReplyOn {
                    network: ticket.mention.network_label().to_string(),
                });
            };
            let full = compose_reply(&ticket.mention, text);
            check_length(ticket, rules, &full)?;
            let seq = draft.seq;
            let reasons = desk.approvals.reasons(ticket, &[text.as_str()]);
            let r = next
                .replies
                .iter_mut()
                .find(|r| r.seq == seq)
                .expect("the draft is on the ticket");
            r.text = full.clone();
            // Whoever rewrote it is now its author: their own words need other eyes.
            r.by = actor.clone();
            r.at = now;
            if let Some(review) = r.review.as_mut() {
                for reason in reasons {
                    if !review.reasons.contains(&reason) {
                        review.reasons.push(reason);
                    }
                }
                review.reminded = false;
            }
            Ok((
                vec![
                    Effect::UpdateCards,
                    Effect::ThreadNote(Note::DraftEdited {
                        by: actor.clone(),
                        text: full.clone(),
                    }),
                ],
                "draft edited",
                Some(full),
            ))
        }
        _ => unreachable!("only review actions reach review_draft"),
    }
}

/// Judge an agent's action on a ticket. Pure: same inputs, same answer.
pub fn apply(
    ticket: &Ticket,
    action: AgentAction,
    actor: &AgentRef,
    desk: &Desk,
    now: DateTime<Utc>,
) -> Result<Transition, Rejection> {
    if !desk.is_agent(actor) {
        return Err(Rejection::NotAnAgent);
    }
    let mut next = ticket.clone();
    next.updated_at = now;
    let (effects, what, detail) = match action {
        AgentAction::Claim => {
            ensure_open(ticket)?;
            match &ticket.holder {
                Some(c) if desk.same_person(&c.agent, actor) => {
                    return Err(Rejection::AlreadyYours)
                }
                Some(c) => {
                    return Err(Rejection::AlreadyClaimed {
                        by: c.agent.clone(),
                        minutes: (now - c.since).num_minutes(),
                    })
                }
                None => {}
            }
            next.holder = Some(Claim {
                agent: actor.clone(),
                since: now,
            });
            card_change(Note::Claimed { by: actor.clone() }, "claimed")
        }
        AgentAction::Unclaim => {
            if ticket.holder.is_none() {
                return Err(Rejection::NotClaimed);
            }
            ensure_not_held_by_other(ticket, actor, desk)?;
            next.holder = None;
            card_change(Note::Unclaimed { by: actor.clone() }, "unclaimed")
        }
        AgentAction::Reply { text } => {
            queue_replies(ticket, &mut next, actor, desk, now, &[(text, false)])?
        }
        AgentAction::ReplyPrivately { text, public_ack } => {
            let mut parts = Vec::new();
            // The short public "we've sent you a DM" goes first, so the customer looks.
            if let Some(ack) = public_ack.filter(|a| !a.trim().is_empty()) {
                parts.push((ack, false));
            }
            parts.push((text, true));
            queue_replies(ticket, &mut next, actor, desk, now, &parts)?
        }
        AgentAction::Resolve | AgentAction::Ignore => {
            ensure_open(ticket)?;
            ensure_not_held_by_other(ticket, actor, desk)?;
            let resolve = action == AgentAction::Resolve;
            next.stage = if resolve {
                Stage::Resolved
            } else {
                Stage::Ignored
            };
            next.closed_by = Some(actor.clone());
            let note = if resolve {
                Note::Resolved { by: actor.clone() }
            } else {
                Note::Ignored { by: actor.clone() }
            };
            (
                vec![Effect::UpdateCards, Effect::ThreadNote(note)],
                if resolve { "resolved" } else { "ignored" },
                None,
            )
        }
        AgentAction::Approve | AgentAction::RejectDraft | AgentAction::EditDraft { .. } => {
            review_draft(ticket, &mut next, &action, actor, desk, now)?
        }
        AgentAction::Reopen => {
            if !ticket.is_closed() {
                return Err(Rejection::NotClosed);
            }
            next.stage = if ticket.first_answer().is_some() {
                Stage::Replied
            } else {
                Stage::Posted
            };
            next.holder = None;
            next.closed_by = None;
            if ticket.kept_off_by_rule() {
                // A rule kept it off the channel: reopened, it gets the card it never had.
                next.stage = Stage::New;
                (
                    vec![Effect::PostCards],
                    "reopened; its card is posted",
                    None,
                )
            } else {
                card_change(Note::Reopened { by: actor.clone() }, "reopened")
            }
        }
    };
    let audit = audit(ticket, Some(actor), what, detail, now);
    Ok(Transition {
        ticket: next,
        effects,
        audit,
    })
}

/// The customer wrote again in the conversation: the post joins the ticket, the card
/// says "Customer replied", and a closed ticket is reopened (unclaimed, for whoever is on).
pub fn apply_followup(ticket: &Ticket, mention: &Mention, now: DateTime<Utc>) -> Transition {
    let mut next = ticket.clone();
    let reopened = ticket.is_closed();
    next.followups.push(FollowUp {
        remote_id: mention.remote_id.clone(),
        url: mention.url.clone(),
        text: mention.text.clone(),
        // When the desk heard it: the post's own claimed time is not trusted.
        at: now,
    });
    next.customer_replied = true;
    next.updated_at = now;
    if reopened {
        next.stage = if ticket.first_answer().is_some() {
            Stage::Replied
        } else {
            Stage::Posted
        };
        next.holder = None;
        next.closed_by = None;
    }
    let note = Note::CustomerFollowUp {
        text: mention.text.clone(),
        url: mention.url.clone(),
        reopened,
    };
    Transition {
        audit: audit(
            ticket,
            None,
            if reopened {
                "customer wrote again; reopened"
            } else {
                "customer follow-up"
            },
            Some(mention.url.clone()),
            now,
        ),
        ticket: next,
        effects: vec![Effect::UpdateCards, Effect::ThreadNote(note)],
    }
}

/// Record what the outside world reported. Idempotent: reporting the same outcome twice
/// changes nothing the second time and asks for no effect.
pub fn apply_system(ticket: &Ticket, event: SystemEvent, now: DateTime<Utc>) -> Transition {
    let mut next = ticket.clone();
    let mut effects = Vec::new();
    let (what, detail) = match event {
        SystemEvent::CardPosted => {
            if next.stage == Stage::New {
                next.stage = Stage::Posted;
            }
            ("card posted", None)
        }
        SystemEvent::ReplyPublished {
            seq,
            remote_id,
            url,
        } => {
            if let Some(r) = next.replies.iter_mut().find(|r| r.seq == seq) {
                if matches!(r.state, ReplyState::Pending) {
                    r.state = ReplyState::Published {
                        remote_id,
                        url: url.clone(),
                    };
                    // The desk's own acknowledgement answers nobody's question.
                    if !ticket.is_closed() && !r.auto {
                        next.stage = Stage::Replied;
                    }
                    effects = vec![
                        Effect::UpdateCards,
                        Effect::ThreadNote(Note::ReplyPublished { url: url.clone() }),
                    ];
                }
            }
            ("reply published", Some(url))
        }
        SystemEvent::ReplyFailed { seq, reason } => {
            if let Some(r) = next.replies.iter_mut().find(|r| r.seq == seq) {
                if matches!(r.state, ReplyState::Pending) {
                    r.state = ReplyState::Failed {
                        reason: reason.clone(),
                    };
                    effects = vec![
                        Effect::UpdateCards,
                        Effect::ThreadNote(Note::ReplyFailed {
                            reason: reason.clone(),
                        }),
                    ];
                }
            }
            ("reply failed", Some(reason))
        }
    };
    if !effects.is_empty() {
        next.updated_at = now;
    }
    // A storm's member that never had a card of its own has none to keep in sync: what
    // came back shows on its incident's card.
    if ticket.incident.is_some() && ticket.stage == Stage::New {
        effects.retain(|e| !matches!(e, Effect::UpdateCards | Effect::ThreadNote(_)));
    }
    let audit = audit(ticket, None, what, detail, now);
    Transition {
        ticket: next,
        effects,
        audit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn agent(id: &str) -> AgentRef {
        AgentRef {
            surface: SurfaceKind::Slack,
            user_id: id.into(),
            name: format!("name-{id}"),
            roles: vec![],
        }
    }

    fn desk() -> Desk {
        let mut desk = Desk::new().with_rules(Platform::Mastodon, TextRules::mastodon(30, 23));
        let slack = desk.roster_mut(SurfaceKind::Slack);
        slack.user_ids = ["ANA", "BEN"].into_iter().map(String::from).collect();
        slack.group_members = ["GIA"].into_iter().map(String::from).collect();
        desk.roster_mut(SurfaceKind::Discord).role_ids = ["R-SUPPORT".to_string()].into();
        desk
    }

    fn ticket() -> Ticket {
        let mention = Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: "1".into(),
            url: "https://m.example/@alice/1".into(),
            author: Author {
                handle: "alice@m.example".into(),
                name: "Alice".into(),
                profile_url: "https://m.example/@alice".into(),
                id: None,
                followers: None,
            },
            text: "my order is late".into(),
            language: Some("en".into()),
            created_at: t(0),
            in_reply_to: None,
            visibility: Visibility::Unlisted,
            reply_context: None,
            external_id: None,
            detected_language: None,
        };
        let mut tk = Ticket::open(TicketId(7), mention, t(0));
        tk.stage = Stage::Posted;
        tk
    }

    fn run(tk: &Ticket, a: AgentAction, who: &str, at: i64) -> Result<Transition, Rejection> {
        apply(tk, a, &agent(who), &desk(), t(at))
    }

    #[test]
    fn only_agents_may_act_and_a_refusal_changes_nothing() {
        let tk = ticket();
        assert_eq!(
            run(&tk, AgentAction::Claim, "EVE", 1),
            Err(Rejection::NotAnAgent)
        );
        // Group members are agents too.
        assert!(run(&tk, AgentAction::Claim, "GIA", 1).is_ok());
        // On Discord, a role makes an agent; the same user id on another surface does not.
        let mut discord = AgentRef {
            surface: SurfaceKind::Discord,
            user_id: "ANA".into(),
            name: "ana".into(),
            roles: vec![],
        };
        assert_eq!(
            apply(&tk, AgentAction::Claim, &discord, &desk(), t(1)),
            Err(Rejection::NotAnAgent)
        );
        discord.roles = vec!["R-OTHER".into(), "R-SUPPORT".into()];
        assert!(apply(&tk, AgentAction::Claim, &discord, &desk(), t(1)).is_ok());
    }

    #[test]
    fn the_second_claim_loses_and_is_told_who_holds_it() {
        let tk = run(&ticket(), AgentAction::Claim, "ANA", 1).unwrap().ticket;
        let err = run(&tk, AgentAction::Claim, "BEN", 4).unwrap_err();
        assert_eq!(
            err,
            Rejection::AlreadyClaimed {
                by: agent("ANA"),
                minutes: 3
            }
        );
        assert_eq!(err.to_string(), "Already claimed by name-ANA 3 min ago.");
        assert_eq!(
            run(&tk, AgentAction::Claim, "ANA", 4),
            Err(Rejection::AlreadyYours)
        );
    }

    #[test]
    fn claim_then_unclaim_round_trips_with_card_updates_and_notes() {
        let claimed = run(&ticket(), AgentAction::Claim, "ANA", 1).unwrap();
        assert_eq!(claimed.ticket.state_label(), "Claimed");
        assert_eq!(
            claimed.effects,
            vec![
                Effect::UpdateCards,
                Effect::ThreadNote(Note::Claimed { by: agent("ANA") })
            ]
        );
        assert!(matches!(
            run(&claimed.ticket, AgentAction::Unclaim, "BEN", 2),
            Err(Rejection::NotYours { .. })
        ));
        let released = run(&claimed.ticket, AgentAction::Unclaim, "ANA", 2).unwrap();
        assert_eq!(released.ticket.holder, None);
        assert_eq!(released.audit.what, "unclaimed");
    }

    #[test]
    fn reply_prefixes_the_handle_claims_and_queues_one_publish() {
        let tr = run(
            &ticket(),
            AgentAction::Reply {
                text: "on its way!".into(),
            },
            "ANA",
            1,
        )
        .unwrap();
        let r = &tr.ticket.replies[0];
        assert_eq!(r.text, "@alice@m.example on its way!");
        assert_eq!(r.visibility, Visibility::Unlisted);
        assert_eq!(r.state, ReplyState::Pending);
        assert_eq!(tr.ticket.holder.as_ref().unwrap().agent, agent("ANA"));
        assert_eq!(tr.effects[0], Effect::PublishReply { seq: 1 });
        // While it is in flight a second answer is refused: no mention is answered twice.
        assert_eq!(
            run(
                &tr.ticket,
                AgentAction::Reply {
                    text: "again".into()
                },
                "ANA",
                2
            ),
            Err(Rejection::ReplyInFlight)
        );
        // The handle is not doubled when the agent typed it.
        let tr2 = run(
            &ticket(),
            AgentAction::Reply {
                text: "@alice@m.example hi".into(),
            },
            "ANA",
            1,
        )
        .unwrap();
        assert_eq!(tr2.ticket.replies[0].text, "@alice@m.example hi");
    }

    #[test]
    fn replies_over_the_limit_or_empty_or_on_someone_elses_ticket_are_refused() {
        // "@alice@m.example " counts as 7; 24 more characters make 31 > 30.
        let long = "x".repeat(24);
        let err = run(&ticket(), AgentAction::Reply { text: long }, "ANA", 1).unwrap_err();
        assert_eq!(
            err,
            Rejection::ReplyTooLong {
                length: 31,
                limit: 30,
                platform: Platform::Mastodon
            }
        );
        assert!(err.to_string().contains("Shorten it by 1"));
        assert!(run(
            &ticket(),
            AgentAction::Reply {
                text: "x".repeat(23)
            },
            "ANA",
            1
        )
        .is_ok());
        assert_eq!(
            run(
                &ticket(),
                AgentAction::Reply { text: "  ".into() },
                "ANA",
                1
            ),
            Err(Rejection::EmptyReply)
        );
        let held = run(&ticket(), AgentAction::Claim, "BEN", 1).unwrap().ticket;
        assert!(matches!(
            run(&held, AgentAction::Reply { text: "hi".into() }, "ANA", 2),
            Err(Rejection::NotYours { .. })
        ));
    }

    #[test]
    fn each_platform_counts_its_own_way_and_unanswerable_networks_are_said_so() {
        let mut tk = ticket();
        tk.mention.platform = Platform::Bluesky;
        tk.mention.author.handle = "alice.bsky.social".into();
        let desk = desk().with_rules(Platform::Bluesky, TextRules::bluesky());
        // 300 graphemes fit…
        let ok = "ø".repeat(300 - "@alice.bsky.social ".chars().count());
        assert!(apply(
            &tk,
            AgentAction::Reply { text: ok },
            &agent("ANA"),
            &desk,
            t(1)
        )
        .is_ok());
        // …but 200 family emoji are over 3000 bytes.
        let heavy = "👨‍👩‍👧".repeat(200);
        assert_eq!(
            apply(
                &tk,
                AgentAction::Reply { text: heavy },
                &agent("ANA"),
                &desk,
                t(1)
            ),
            Err(Rejection::ReplyTooManyBytes {
                bytes: 3600,
                limit: 3000
            })
        );

        tk.mention.platform = Platform::Other;
        tk.mention.network = Some("Instagram".into());
        let err = apply(
            &tk,
            AgentAction::Reply { text: "hi".into() },
            &agent("ANA"),
            &desk,
            t(1),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Rejection::CannotReplyOn {
                network: "Instagram".into()
            }
        );
        assert!(err.to_string().contains("open the original"));
    }

    #[test]
    fn publish_outcomes_are_recorded_once() {
        let tr = run(
            &ticket(),
            AgentAction::Reply { text: "hi".into() },
            "ANA",
            1,
        )
        .unwrap();
        let ev = SystemEvent::ReplyPublished {
            seq: 1,
            remote_id: "99".into(),
            url: "https://m.example/@brand/99".into(),
        };
        let done = apply_system(&tr.ticket, ev.clone(), t(2));
        assert_eq!(done.ticket.stage, Stage::Replied);
        assert_eq!(done.effects.len(), 2);
        let again = apply_system(&done.ticket, ev, t(3));
        assert!(again.effects.is_empty());
        assert_eq!(again.ticket, done.ticket);

        let failed = apply_system(
            &tr.ticket,
            SystemEvent::ReplyFailed {
                seq: 1,
                reason: "Record not found".into(),
            },
            t(2),
        );
        assert_eq!(failed.ticket.state_label(), "Reply failed");
        // After a failure the agent may try again.
        assert!(run(
            &failed.ticket,
            AgentAction::Reply {
                text: "retry".into()
            },
            "ANA",
            3
        )
        .is_ok());
    }

    #[test]
    fn a_follow_up_is_flagged_and_reopens_a_closed_ticket_for_anyone() {
        let resolved = run(&ticket(), AgentAction::Resolve, "ANA", 1)
            .unwrap()
            .ticket;
        let mut later = ticket().mention;
        later.remote_id = "2".into();
        later.text = "still broken".into();
        let tr = apply_followup(&resolved, &later, t(60));
        assert_eq!(tr.ticket.stage, Stage::Posted);
        assert_eq!(tr.ticket.holder, None);
        assert_eq!(tr.ticket.state_label(), "Customer replied");
        assert_eq!(tr.ticket.followups.len(), 1);
        assert!(matches!(
            &tr.effects[1],
            Effect::ThreadNote(Note::CustomerFollowUp { reopened: true, .. })
        ));
        // An agent's answer clears the flag.
        let answered = run(
            &tr.ticket,
            AgentAction::Reply {
                text: "on it".into(),
            },
            "BEN",
            61,
        )
        .unwrap();
        assert!(!answered.ticket.customer_replied);
    }

    #[test]
    fn resolve_ignore_and_reopen() {
        let claimed = run(&ticket(), AgentAction::Claim, "ANA", 1).unwrap().ticket;
        assert!(matches!(
            run(&claimed, AgentAction::Resolve, "BEN", 2),
            Err(Rejection::NotYours { .. })
        ));
        let resolved = run(&claimed, AgentAction::Resolve, "ANA", 2)
            .unwrap()
            .ticket;
        assert_eq!(resolved.stage, Stage::Resolved);
        assert_eq!(
            run(&resolved, AgentAction::Claim, "BEN", 3),
            Err(Rejection::Closed {
                stage: Stage::Resolved
            })
        );
        let reopened = run(&resolved, AgentAction::Reopen, "BEN", 3)
            .unwrap()
            .ticket;
        assert_eq!(reopened.stage, Stage::Posted);
        assert_eq!(reopened.holder, None);
        assert_eq!(
            run(&reopened, AgentAction::Reopen, "BEN", 4),
            Err(Rejection::NotClosed)
        );
        let ignored = run(&reopened, AgentAction::Ignore, "BEN", 4)
            .unwrap()
            .ticket;
        assert_eq!(ignored.state_label(), "Ignored");
        // Ignored by an agent: reopening updates its card. Kept off the channel by a
        // rule: reopening posts the card it never had.
        assert!(!ignored.kept_off_by_rule());
        let mut spam = ticket();
        spam.stage = Stage::Ignored;
        spam.rule_hits.push(crate::domain::triage::RuleHit {
            rule: "spam".into(),
            matched: "word \"airdrop\"".into(),
            did: "ignored".into(),
            ignored: true,
        });
        let tr = run(&spam, AgentAction::Reopen, "BEN", 5).unwrap();
        assert_eq!(tr.ticket.stage, Stage::New);
        assert_eq!(tr.effects, vec![Effect::PostCards]);
        assert!(!tr.ticket.kept_off_by_rule());
    }

    #[test]
    fn x_and_bluesky_replies_get_no_added_mention_so_the_whole_limit_is_the_agents() {
        let desk = desk()
            .with_rules(Platform::X, TextRules::x())
            .with_rules(Platform::Bluesky, TextRules::bluesky());
        let mut tk = ticket();
        tk.mention.platform = Platform::X;
        tk.mention.author.handle = "alice".into();
        let reply = |tk: &Ticket, text: String| {
            apply(tk, AgentAction::Reply { text }, &agent("ANA"), &desk, t(1))
        };
        // X fills in the leading @alice itself and does not count it: 280 are the agent's.
        let exactly = "a".repeat(280);
        let tr = reply(&tk, exactly.clone()).unwrap();
        assert_eq!(tr.ticket.replies[0].text, exactly);
        // A mention the agent types is part of the text and counts.
        let typed = format!("@alice {}", "a".repeat(274));
        let err = reply(&tk, typed).unwrap_err();
        assert_eq!(
            err,
            Rejection::ReplyTooLong {
                length: 281,
                limit: 280,
                platform: Platform::X
            }
        );
        assert!(!err.to_string().contains("@mention"), "{err}");
        // Bluesky threads and notifies by the reply reference: 300 graphemes for the agent.
        tk.mention.platform = Platform::Bluesky;
        tk.mention.author.handle = "alice.bsky.social".into();
        let tr = reply(&tk, "ø".repeat(300)).unwrap();
        assert_eq!(tr.ticket.replies[0].text, "ø".repeat(300));
        // Mastodon needs the mention in the text, and counts it; once is enough.
        let m = ticket().mention;
        assert_eq!(compose_reply(&m, "hi"), "@alice@m.example hi");
        assert_eq!(
            compose_reply(&m, "Hi @alice@m.example, sorted."),
            "Hi @alice@m.example, sorted."
        );
        assert_eq!(
            compose_reply(&m, "cc @alice@m.example.org"),
            "@alice@m.example cc @alice@m.example.org"
        );
        assert_eq!(
            compose_reply(&m, "ask x@alice@m.example"),
            "@alice@m.example ask x@alice@m.example"
        );
    }

    #[test]
    fn one_person_on_two_surfaces_is_one_agent_for_claims() {
        let kim = |surface: SurfaceKind, id: &str| AgentRef {
            surface,
            user_id: id.into(),
            name: "Kim".into(),
            roles: vec![],
        };
        let (kim_discord, kim_slack) = (
            kim(SurfaceKind::Discord, "1200000000000000009"),
            kim(SurfaceKind::Slack, "U0KIM"),
        );
        let mut linked = desk();
        linked.agents = Agents::new(vec![crate::domain::agents::Agent {
            name: "Kim".into(),
            slack: Some("U0KIM".into()),
            discord: Some("1200000000000000009".into()),
        }]);
        // Listed in [[agents]]: an agent on both surfaces without any other list.
        let claimed = apply(&ticket(), AgentAction::Claim, &kim_discord, &linked, t(1))
            .unwrap()
            .ticket;
        assert_eq!(
            apply(&claimed, AgentAction::Claim, &kim_slack, &linked, t(2)),
            Err(Rejection::AlreadyYours)
        );
        assert!(apply(&claimed, AgentAction::Resolve, &kim_slack, &linked, t(2)).is_ok());
        assert!(matches!(
            apply(&claimed, AgentAction::Resolve, &agent("ANA"), &linked, t(2)),
            Err(Rejection::NotYours { .. })
        ));
        // Unlinked, the two accounts are two agents.
        let mut unlinked = desk();
        unlinked
            .roster_mut(SurfaceKind::Slack)
            .user_ids
            .insert("U0KIM".into());
        unlinked
            .roster_mut(SurfaceKind::Discord)
            .user_ids
            .insert("1200000000000000009".into());
        assert!(matches!(
            apply(&claimed, AgentAction::Resolve, &kim_slack, &unlinked, t(2)),
            Err(Rejection::NotYours { .. })
        ));
    }

    fn careful_desk() -> Desk {
        let mut d = desk();
        d.approvals = crate::domain::approval::ApprovalPolicy {
            words: vec!["refund".into()],
            trainees: vec!["slack:GIA".into()],
            ..Default::default()
        };
        d
    }

    fn careful(tk: &Ticket, a: AgentAction, who: &str, at: i64) -> Result<Transition, Rejection> {
        apply(tk, a, &agent(who), &careful_desk(), t(at))
    }

    fn reply(text: &str) -> AgentAction {
        AgentAction::Reply { text: text.into() }
    }

    #[test]
    fn a_risky_draft_waits_and_nothing_is_published_until_someone_else_approves_it() {
        let held = careful(&ticket(), reply("We refund you today"), "ANA", 1).unwrap();
        assert!(!held
            .effects
            .iter()
            .any(|e| matches!(e, Effect::PublishReply { .. })));
        assert!(held
            .effects
            .iter()
            .any(|e| matches!(e, Effect::ThreadNote(Note::ApprovalAsked { reasons, .. }) if reasons == &["mentions refund".to_string()])));
        assert_eq!(held.audit.what, "reply awaits approval");
        let tk = held.ticket;
        assert_eq!(tk.replies[0].state, ReplyState::AwaitingApproval);
        assert!(
            tk.awaiting_answer(),
            "the SLA clock runs while the draft waits"
        );
        // Nothing else can be sent meanwhile, and the author cannot wave it through.
        assert_eq!(
            careful(&tk, reply("other"), "ANA", 2),
            Err(Rejection::ReplyInFlight)
        );
        assert_eq!(
            careful(&tk, AgentAction::Approve, "ANA", 2),
            Err(Rejection::OwnDraft)
        );
        // Trainees approve nobody's drafts.
        assert_eq!(
            careful(&tk, AgentAction::Approve, "GIA", 2),
            Err(Rejection::TraineeCannotApprove)
        );
        let approved = careful(&tk, AgentAction::Approve, "BEN", 3).unwrap();
        assert!(approved.effects.contains(&Effect::PublishReply { seq: 1 }));
        let r = &approved.ticket.replies[0];
        assert_eq!(r.state, ReplyState::Pending);
        assert_eq!(r.text, "@alice@m.example We refund you today");
        let review = r.review.as_ref().unwrap();
        assert_eq!(review.approved_by.as_ref().unwrap().user_id, "BEN");
        assert_eq!(approved.audit.what, "reply approved");
        assert_eq!(
            careful(&approved.ticket, AgentAction::Approve, "BEN", 4),
            Err(Rejection::NoDraftWaiting)
        );
    }

    #[test]
    fn a_trainees_every_draft_waits_and_an_ordinary_one_goes_out_at_once() {
        let tk = careful(&ticket(), reply("Hello!"), "GIA", 1)
            .unwrap()
            .ticket;
        assert_eq!(tk.replies[0].state, ReplyState::AwaitingApproval);
        assert_eq!(
            tk.replies[0].review.as_ref().unwrap().reasons,
            ["name-GIA is in training"]
        );
        let plain = careful(&ticket(), reply("Hello!"), "ANA", 1).unwrap();
        assert_eq!(plain.ticket.replies[0].state, ReplyState::Pending);
        assert!(plain.effects.contains(&Effect::PublishReply { seq: 1 }));
        // Without [approvals] nothing ever waits, whatever it says.
        let free = run(&ticket(), reply("refund"), "GIA", 1).unwrap();
        assert_eq!(free.ticket.replies[0].state, ReplyState::Pending);
    }

    #[test]
    fn an_edit_makes_the_editor_its_author_and_a_rejected_draft_is_never_sent() {
        let tk = careful(&ticket(), reply("refund soon"), "ANA", 1)
            .unwrap()
            .ticket;
        let edited = careful(
            &tk,
            AgentAction::EditDraft {
                text: "A refund is on its way.".into(),
            },
            "BEN",
            2,
        )
        .unwrap()
        .ticket;
        let draft = edited.draft_awaiting_approval().unwrap();
        assert_eq!(draft.text, "@alice@m.example A refund is on its way.");
        assert_eq!(draft.by.user_id, "BEN");
        assert_eq!(
            careful(&edited, AgentAction::Approve, "BEN", 3),
            Err(Rejection::OwnDraft)
        );
        // Ana did not write these words: she may approve them.
        assert!(careful(&edited, AgentAction::Approve, "ANA", 3).is_ok());
        let rejected = careful(&edited, AgentAction::RejectDraft, "ANA", 3).unwrap();
        assert!(matches!(
            rejected.ticket.replies[0].state,
            ReplyState::Rejected { .. }
        ));
        assert!(!rejected
            .effects
            .iter()
            .any(|e| matches!(e, Effect::PublishReply { .. })));
        // A rejected draft is out of the way: a new answer can be written.
        assert!(careful(&rejected.ticket, reply("Sorry!"), "ANA", 4).is_ok());
    }
}
