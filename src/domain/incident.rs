//! Incidents: the tickets of one storm, shown on one card and answered together. An
//! incident keeps a bounded summary of its members (how many, how fast they came, a few
//! sample posts, their languages, the most-followed authors) so its card renders without
//! reading them; the members themselves are tickets that name the incident. Joining,
//! splitting a member off and steering a bulk answer are decisions made here on the
//! incident as stored; the store commits each with its jobs in one transaction.

use super::storms::Topic;
use super::{
    canned::fill_author, AgentRef, AuditEntry, BulkStep, CardRef, Effect, IncidentId, Note,
    ReplyState, Ticket, TicketId,
};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Sample posts an incident keeps for its card.
pub const SAMPLES: usize = 3;
/// Authors an incident keeps as its most followed.
pub const NOTABLE: usize = 5;
/// Minutes of arrival counts kept for the rate.
const RATE_MINUTES: usize = 15;

/// A member's post as the card quotes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub ticket: TicketId,
    pub handle: String,
    pub name: String,
    pub url: String,
    /// Cut to a few hundred characters (the member's own ticket has it whole).
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The author's followers, when the platform says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<u64>,
}

/// Arrivals in one minute (its start, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    pub at: DateTime<Utc>,
    pub count: u64,
}

/// Where a bulk answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkState {
    /// Waits for another agent's approval (`[approvals] bulk_answers`, or its author is
    /// in training): nothing goes out before it.
    AwaitingApproval,
    Running,
    Paused,
    Cancelled,
    /// Every member up to `cursor` was handled; members that arrive later wait for an
    /// agent to say they are answered the same way.
    Done,
}

/// One answer for every member of an incident, a reply each, one text per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkAnswer {
    /// Language (primary tag, lower case) → text; the `""` entry answers every other
    /// language. Variables as in canned replies (`{author}`, `{author_name}`, `{agent}`,
    /// `{ticket}`, `{brand}`).
    pub texts: BTreeMap<String, String>,
    pub by: AgentRef,
    pub started_at: DateTime<Utc>,
    pub state: BulkState,
    /// Members up to and including this ticket were handled (queued or skipped).
    #[serde(default)]
    pub cursor: Option<TicketId>,
    /// Replies queued, and members skipped (answered already, closed, held by someone
    /// else, or a network we cannot answer on).
    #[serde(default)]
    pub queued: u64,
    #[serde(default)]
    pub skipped: u64,
    pub updated_at: DateTime<Utc>,
    /// Who approved it, when it had to wait for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<AgentRef>,
}

impl BulkAnswer {
    /// The text for a member, its variables filled in.
    pub fn text_for(&self, ticket: &Ticket, brand: &str) -> Option<String> {
        let language = language_of(ticket);
        let text = self
            .texts
            .get(&language)
            .or_else(|| self.texts.get(""))
            .filter(|t| !t.trim().is_empty())?;
        Some(
            fill_author(text, &ticket.mention.author)
                .replace("{agent}", &self.by.name)
                .replace("{ticket}", &ticket.id.to_string())
                .replace("{brand}", brand),
        )
    }
}

/// A member's language as incidents group them, the one the desk goes by (`""`: unknown).
fn language_of(ticket: &Ticket) -> String {
    ticket
        .mention
        .language_in_use()
        .map(|(l, _)| primary_language(l))
        .unwrap_or_default()
}

/// A language tag's primary part, lower case (`pt-BR` → `pt`).
pub fn primary_language(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub topic: Topic,
    pub opened_at: DateTime<Utc>,
    pub last_member_at: DateTime<Utc>,
    /// Members now (split-off ones no longer count).
    pub members: u64,
    #[serde(default)]
    pub split_off: u64,
    /// Members by language (primary tag; `""` when unknown).
    #[serde(default)]
    pub languages: BTreeMap<String, u64>,
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// The most-followed authors among the members (the first ones, when no platform
    /// says how many follow them).
    #[serde(default)]
    pub notable: Vec<Sample>,
    /// Arrivals per minute, the latest minutes.
    #[serde(default)]
    pub minutes: Vec<Minute>,
    #[serde(default)]
    pub peak_per_minute: u64,
    /// The incident's cards, one per surface.
    #[serde(default)]
    pub cards: Vec<CardRef>,
    /// The on-call agents were paged (once per incident).
    #[serde(default)]
    pub paged: bool,
    /// Members whose first answer was published, and members whose reply failed.
    #[serde(default)]
    pub answered: u64,
    #[serde(default)]
    pub failed: u64,
    /// When the first member got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_answer_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkAnswer>,
}

/// What the store commits for an incident, in one transaction with the incident itself.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentChange {
    pub incident: Incident,
    /// Tickets that become members (each only if it is in no incident yet).
    pub join: Vec<TicketId>,
    /// Members that leave (each only if it is in this incident).
    pub leave: Vec<TicketId>,
    /// Jobs among the desk's own (the incident's cards and their thread).
    pub effects: Vec<Effect>,
    /// Jobs of single tickets (a split-off member's own card).
    pub ticket_effects: Vec<(TicketId, Effect)>,
    pub audit: Vec<AuditEntry>,
}

impl IncidentChange {
    /// A change the incident's cards show, with a line about it in their thread.
    fn announced(incident: Incident, note: Note) -> IncidentChange {
        let id = incident.id;
        let mut change = IncidentChange::of(incident);
        change.effects = vec![
            Effect::UpdateIncidentCards { incident: id },
            Effect::IncidentNote { incident: id, note },
        ];
        change
    }

    fn of(incident: Incident) -> IncidentChange {
        IncidentChange {
            incident,
            join: Vec::new(),
            leave: Vec::new(),
            effects: Vec::new(),
            ticket_effects: Vec::new(),
            audit: Vec::new(),
        }
    }
}

/// Why an agent's step on an incident was refused, in words for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAMember {
        ticket: TicketId,
        incident: IncidentId,
    },
    NoText,
    BulkRunning,
    NoBulk,
    BulkFinished,
    AlreadyThat(&'static str),
    /// Only another agent approves a bulk answer.
    OwnBulk,
    NotAwaitingApproval,
    TraineeCannotApprove,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAMember { ticket, incident } => {
                write!(
                    f,
                    "Ticket #{ticket} is not a member of incident #{incident}."
                )
            }
            Refusal::NoText => write!(
                f,
                "The answer is empty: write at least the text for every language."
            ),
            Refusal::BulkRunning => write!(
                f,
                "A bulk answer is already going out for this incident: pause or cancel it first."
            ),
            Refusal::NoBulk => write!(f, "This incident has no bulk answer."),
            Refusal::BulkFinished => write!(f, "This bulk answer was cancelled; start a new one."),
            Refusal::AlreadyThat(state) => write!(f, "The bulk answer is already {state}."),
            Refusal::OwnBulk => write!(f, "You wrote this bulk answer: another agent approves it."),
            Refusal::NotAwaitingApproval => write!(f, "This bulk answer waits for no approval."),
            Refusal::TraineeCannotApprove => {
                write!(f, "Agents in training approve nobody's answers.")
            }
        }
    }
}

/// The author's reach, when the platform tells it.
pub fn followers_of(ticket: &Ticket) -> Option<u64> {
    ticket.mention.author.followers
}

fn sample_of(ticket: &Ticket) -> Sample {
    let m = &ticket.mention;
    Sample {
        ticket: ticket.id,
        handle: m.author.handle.clone(),
        name: m.author.name.clone(),
        url: m.url.clone(),
        text: m.text.chars().take(400).collect(),
        language: m.language_in_use().map(|(l, _)| l.to_string()),
        followers: followers_of(ticket),
    }
}

impl Incident {
    /// A new incident about `topic`, before any member joined.
    pub fn new(id: IncidentId, topic: Topic, now: DateTime<Utc>) -> Incident {
        Incident {
            id,
            topic,
            opened_at: now,
            last_member_at: now,
            members: 0,
            split_off: 0,
            languages: BTreeMap::new(),
            samples: Vec::new(),
            notable: Vec::new(),
            minutes: Vec::new(),
            peak_per_minute: 0,
            cards: Vec::new(),
            paged: false,
            answered: 0,
            failed: 0,
            first_answer_at: None,
            bulk: None,
        }
    }

    /// Whether it still takes members at `now` (`quiet`: how long it may go without one).
    pub fn is_open(&self, now: DateTime<Utc>, quiet: Duration) -> bool {
        self.last_member_at + quiet > now
    }

    /// Members in the latest minute counted.
    pub fn last_minute(&self) -> u64 {
        self.minutes.last().map_or(0, |m| m.count)
    }

    /// How long the first answer took, from the incident's opening.
    pub fn time_to_first_answer(&self) -> Option<Duration> {
        self.first_answer_at
            .map(|t| (t - self.opened_at).max(Duration::zero()))
    }

    /// Members no bulk answer has reached yet (none running: all of them).
    pub fn unanswered_by_bulk(&self) -> u64 {
        let handled = self
            .bulk
            .as_ref()
            .filter(|b| b.state != BulkState::Cancelled)
            .map_or(0, |b| b.queued + b.skipped);
        self.members.saturating_sub(handled)
    }

    fn count_member(&mut self, ticket: &Ticket) {
        self.members += 1;
        let received = ticket.received_at();
        self.last_member_at = self.last_member_at.max(received);
        let language = language_of(ticket);
        *self.languages.entry(language).or_insert(0) += 1;
        if self.samples.len() < SAMPLES
            && !self
                .samples
                .iter()
                .any(|s| s.text == ticket.mention.text.chars().take(400).collect::<String>())
        {
            self.samples.push(sample_of(ticket));
        }
        let sample = sample_of(ticket);
        if !self.notable.iter().any(|s| s.handle == sample.handle) {
            self.notable.push(sample);
            // Most followed first; unknown counts after known ones, in arrival order.
            self.notable
                .sort_by_key(|s| std::cmp::Reverse(s.followers.map(|f| f + 1).unwrap_or(0)));
            self.notable.truncate(NOTABLE);
        }
        let minute = received
            .duration_trunc(Duration::minutes(1))
            .unwrap_or(received);
        match self.minutes.iter_mut().find(|m| m.at == minute) {
            Some(m) => m.count += 1,
            None => {
                self.minutes.push(Minute {
                    at: minute,
                    count: 1,
                });
                self.minutes.sort_by_key(|m| m.at);
                if self.minutes.len() > RATE_MINUTES {
                    self.minutes.remove(0);
                }
            }
        }
        self.peak_per_minute = self
            .peak_per_minute
            .max(self.minutes.iter().map(|m| m.count).max().unwrap_or(0));
    }

    /// A member's reply came back from the platform: count the first answer a member
    /// got, and a reply that failed (`before` and `after` the outcome was recorded).
    pub fn count_outcome(&mut self, before: &Ticket, after: &Ticket, now: DateTime<Utc>) {
        if before.first_response().is_none() && after.first_response().is_some() {
            self.answered += 1;
            if self.first_answer_at.is_none() {
                self.first_answer_at = Some(now);
            }
        }
        let failed = |t: &Ticket| {
            t.replies
                .iter()
                .filter(|r| !r.auto && matches!(r.state, ReplyState::Failed { .. }))
                .count()
        };
        if failed(after) > failed(before) {
            self.failed += 1;
        }
    }
}

fn line(
    ticket: TicketId,
    what: String,
    actor: Option<&AgentRef>,
    now: DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        ticket,
        at: now,
        actor: actor.cloned(),
        what,
        detail: None,
    }
}

/// `tickets` (as stored) join `incident` (`None`: it is new and gets number `id` and
/// `topic`). Tickets already in an incident stay where they are. A new incident's card is
/// queued; an existing one's cards are refreshed by whoever paces them.
pub fn join(
    incident: Option<&Incident>,
    id: IncidentId,
    topic: &Topic,
    tickets: &[Ticket],
    now: DateTime<Utc>,
) -> Option<IncidentChange> {
    let fresh = incident.is_none();
    let mut next = incident
        .cloned()
        .unwrap_or_else(|| Incident::new(id, topic.clone(), now));
    let joining: Vec<&Ticket> = tickets.iter().filter(|t| t.incident.is_none()).collect();
    if joining.is_empty() && !fresh {
        return None;
    }
    for t in &joining {
        next.count_member(t);
    }
    let mut change = IncidentChange::of(next);
    change.join = joining.iter().map(|t| t.id).collect();
    change.audit = joining
        .iter()
        .map(|t| line(t.id, format!("joined incident {}", id), None, now))
        .collect();
    if fresh {
        change
            .effects
            .push(Effect::PostIncidentCard { incident: id });
    }
    Some(change)
}

/// What a change of incident `id` does to the tickets named (`read`, as stored): each
/// that joins and is in no incident yet, or leaves and is in this one, as it becomes.
/// The rest stay as they are.
pub fn moved_members(change: &IncidentChange, id: IncidentId, read: &[Ticket]) -> Vec<Ticket> {
    read.iter()
        .filter_map(|t| {
            let becomes = if change.join.contains(&t.id) && t.incident.is_none() {
                Some(id)
            } else if change.leave.contains(&t.id) && t.incident == Some(id) {
                None
            } else {
                return None;
            };
            let mut member = t.clone();
            member.incident = becomes;
            Some(member)
        })
        .collect()
}

/// An agent splits `ticket` off its incident: it leaves, and gets a card of its own.
pub fn split(
    incident: &Incident,
    ticket: &Ticket,
    by: &AgentRef,
    now: DateTime<Utc>,
) -> Result<IncidentChange, Refusal> {
    if ticket.incident != Some(incident.id) {
        return Err(Refusal::NotAMember {
            ticket: ticket.id,
            incident: incident.id,
        });
    }
    let mut next = incident.clone();
    next.members = next.members.saturating_sub(1);
    next.split_off += 1;
    let mut change = IncidentChange::announced(
        next,
        Note::SplitOff {
            ticket: ticket.id,
            by: by.clone(),
        },
    );
    change.leave = vec![ticket.id];
    change.ticket_effects = vec![(ticket.id, Effect::PostCards)];
    change.audit = vec![line(
        ticket.id,
        format!("split off incident {}", incident.id),
        Some(by),
        now,
    )];
    Ok(change)
}

/// An agent starts a bulk answer with `texts` (language → text, `""` for every other
/// language); an earlier one that finished continues with the members that came since.
/// With `held`, it waits for another agent's approval before anything goes out.
pub fn start_bulk(
    incident: &Incident,
    texts: BTreeMap<String, String>,
    by: &AgentRef,
    held: bool,
    now: DateTime<Utc>,
) -> Result<IncidentChange, Refusal> {
    let texts: BTreeMap<String, String> = texts
        .into_iter()
        .map(|(l, t)| (primary_language(&l), t.trim().to_string()))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    if !texts.contains_key("") {
        return Err(Refusal::NoText);
    }
    if let Some(b) = &incident.bulk {
        if matches!(
            b.state,
            BulkState::Running | BulkState::Paused | BulkState::AwaitingApproval
        ) {
            return Err(Refusal::BulkRunning);
        }
    }
    let mut next = incident.clone();
    // After a finished answer, the members it handled are not handled again.
    let (cursor, queued, skipped) = match &incident.bulk {
        Some(b) if b.state == BulkState::Done => (b.cursor, b.queued, b.skipped),
        _ => (None, 0, 0),
    };
    let languages: Vec<String> = texts.keys().filter(|l| !l.is_empty()).cloned().collect();
    next.bulk = Some(BulkAnswer {
        texts,
        by: by.clone(),
        started_at: now,
        state: if held {
            BulkState::AwaitingApproval
        } else {
            BulkState::Running
        },
        cursor,
        queued,
        skipped,
        updated_at: now,
        approved_by: None,
    });
    let members = next.unanswered_by_bulk();
    Ok(IncidentChange::announced(
        next,
        Note::Bulk {
            by: Some(by.clone()),
            step: BulkStep::Started {
                members,
                languages,
                held,
            },
        },
    ))
}

/// What an agent can do to a bulk answer under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkControl {
    /// Another agent lets a bulk answer that waits for approval go out.
    Approve,
    Pause,
    Resume,
    Cancel,
}

impl BulkControl {
    pub fn verb(self) -> &'static str {
        match self {
            BulkControl::Approve => "approve",
            BulkControl::Pause => "pause",
            BulkControl::Resume => "resume",
            BulkControl::Cancel => "cancel",
        }
    }

    pub fn from_verb(verb: &str) -> Option<BulkControl> {
        [
            BulkControl::Approve,
            BulkControl::Pause,
            BulkControl::Resume,
            BulkControl::Cancel,
        ]
        .into_iter()
        .find(|c| c.verb() == verb)
    }
}

/// Pause, resume (also: answer the members that came after it finished) or cancel the
/// bulk answer. Replies already handed to the outbox still go out: each is one
/// customer's answer, and they are few at any moment.
pub fn control_bulk(
    incident: &Incident,
    control: BulkControl,
    by: &AgentRef,
    now: DateTime<Utc>,
) -> Result<IncidentChange, Refusal> {
    let Some(bulk) = &incident.bulk else {
        return Err(Refusal::NoBulk);
    };
    let (state, step) = match (control, bulk.state) {
        (_, BulkState::Cancelled) => return Err(Refusal::BulkFinished),
        (BulkControl::Approve, BulkState::AwaitingApproval) if by.same_person(&bulk.by) => {
            return Err(Refusal::OwnBulk)
        }
        (BulkControl::Approve, BulkState::AwaitingApproval) => {
            (BulkState::Running, BulkStep::Approved)
        }
        (BulkControl::Approve, _) => return Err(Refusal::NotAwaitingApproval),
        // Waiting for approval, it is approved or cancelled, nothing else.
        (BulkControl::Pause | BulkControl::Resume, BulkState::AwaitingApproval) => {
            return Err(Refusal::AlreadyThat("waiting for approval"))
        }
        (BulkControl::Pause, BulkState::Paused) => return Err(Refusal::AlreadyThat("paused")),
        (BulkControl::Pause, BulkState::Done) => return Err(Refusal::AlreadyThat("done")),
        (BulkControl::Resume, BulkState::Running) => return Err(Refusal::AlreadyThat("running")),
        (BulkControl::Pause, _) => (BulkState::Paused, BulkStep::Paused),
        (BulkControl::Resume, _) => (BulkState::Running, BulkStep::Resumed),
        (BulkControl::Cancel, _) => (BulkState::Cancelled, BulkStep::Cancelled),
    };
    let mut next = incident.clone();
    if let Some(b) = next.bulk.as_mut() {
        b.state = state;
        b.updated_at = now;
        if control == BulkControl::Approve {
            b.approved_by = Some(by.clone());
        }
    }
    Ok(IncidentChange::announced(
        next,
        Note::Bulk {
            by: Some(by.clone()),
            step,
        },
    ))
}

/// The bulk answer handled members up to `cursor` (`queued` replies, `skipped`
/// members more); `finished`: no member after it is waiting.
pub fn bulk_progress(
    incident: &Incident,
    cursor: TicketId,
    queued: u64,
    skipped: u64,
    finished: bool,
    now: DateTime<Utc>,
) -> Option<IncidentChange> {
    let bulk = incident.bulk.as_ref()?;
    if bulk.state != BulkState::Running {
        return None;
    }
    let mut next = incident.clone();
    let b = next.bulk.as_mut()?;
    b.cursor = Some(b.cursor.map_or(cursor, |c| c.max(cursor)));
    b.queued += queued;
    b.skipped += skipped;
    b.updated_at = now;
    if !finished {
        return Some(IncidentChange::of(next));
    }
    b.state = BulkState::Done;
    let step = BulkStep::Finished {
        queued: b.queued,
        skipped: b.skipped,
    };
    Some(IncidentChange::announced(
        next,
        Note::Bulk { by: None, step },
    ))
}

/// One member's reply from a bulk answer, judged on the ticket as stored: only a member
/// that has no answer yet (published or on its way) gets one, so a repeated try (after a
/// crash) or a member answered on its own is skipped. `own_card`: the member has a card
/// of its own to keep in sync; without one, the reply is its only job.
pub fn bulk_reply(
    ticket: &Ticket,
    incident: IncidentId,
    text: &str,
    actor: &AgentRef,
    desk: &super::Desk,
    own_card: bool,
    now: DateTime<Utc>,
) -> Result<super::Transition, super::Rejection> {
    if ticket.incident != Some(incident) {
        return Err(super::Rejection::NotInIncident);
    }
    if ticket.first_response().is_some() || ticket.pending_reply().is_some() {
        return Err(super::Rejection::AnsweredAlready);
    }
    let mut tr = super::apply(
        ticket,
        super::AgentAction::Reply {
            text: text.to_string(),
        },
        actor,
        desk,
        now,
    )?;
    if !own_card {
        tr.effects
            .retain(|e| matches!(e, Effect::PublishReply { .. }));
    }
    tr.audit.what = format!("bulk answer of incident {incident} queued");
    Ok(tr)
}

/// Whether this bulk answer already reached the member (its reply, by the bulk's agent
/// since it started, is there): a step repeated after a crash, not a member skipped.
pub fn reached_by(ticket: &Ticket, bulk: &BulkAnswer, brand: &str) -> bool {
    let Some(text) = bulk.text_for(ticket, brand) else {
        return false;
    };
    let sent = super::compose_reply(&ticket.mention, &text);
    ticket
        .replies
        .iter()
        .any(|r| !r.auto && r.at >= bulk.started_at && r.by.same_person(&bulk.by) && r.text == sent)
}

/// The incident's cards were posted (or found): remember them, and page the on-call
/// agents once (`page`: the note that calls them, if anyone is to be called).
pub fn cards_posted(
    incident: &Incident,
    cards: Vec<CardRef>,
    page: Option<Note>,
) -> IncidentChange {
    let mut next = incident.clone();
    for card in cards {
        next.cards.retain(|c| c.surface != card.surface);
        next.cards.push(card);
    }
    let mut change = IncidentChange::of(next);
    if !incident.paged {
        change.incident.paged = true;
        if let Some(note) = page {
            change.effects.push(Effect::IncidentNote {
                incident: incident.id,
                note,
            });
        }
        // What arrived while the card was being posted.
        change.effects.push(Effect::UpdateIncidentCards {
            incident: incident.id,
        });
    }
    change
}

/// A card of the incident is gone: it is no longer kept in sync.
pub fn card_lost(incident: &Incident, surface: super::SurfaceKind) -> IncidentChange {
    let mut next = incident.clone();
    next.cards.retain(|c| c.surface != surface);
    IncidentChange::of(next)
}

/// The incident as it is, with nothing else to do (a decision that changes only the
/// record).
pub fn unchanged(incident: &Incident) -> IncidentChange {
    IncidentChange::of(incident.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::priority::tests::now;
    use crate::domain::{SurfaceKind, Visibility};

    fn ticket(id: u64, handle: &str, language: Option<&str>, seconds: i64) -> Ticket {
        let text = format!("the app is down again ({id})");
        let mut m = crate::domain::priority::tests::mention(handle, &text, None);
        m.remote_id = id.to_string();
        m.url = format!("https://m.example/@{handle}/{id}");
        m.author.name = handle.to_uppercase();
        m.language = language.map(str::to_string);
        Ticket::open(TicketId(id), m, now() + Duration::seconds(seconds))
    }

    fn agent() -> AgentRef {
        AgentRef {
            surface: SurfaceKind::Slack,
            user_id: "U0ANA".into(),
            name: "Ana".into(),
            roles: Vec::new(),
        }
    }

    fn topic() -> Topic {
        Topic::SimilarText {
            sample: "the app is down again".into(),
        }
    }

    #[test]
    fn a_new_incident_counts_its_members_and_queues_its_card() {
        let tickets: Vec<Ticket> = (1..=5)
            .map(|i| {
                ticket(
                    i,
                    &format!("user{}", i % 4),
                    if i % 2 == 0 {
                        Some("da")
                    } else {
                        Some("en-GB")
                    },
                    i as i64 * 20,
                )
            })
            .collect();
        let change = join(None, IncidentId(3), &topic(), &tickets, now()).unwrap();
        let i = &change.incident;
        assert_eq!((i.id, i.members), (IncidentId(3), 5));
        assert_eq!(change.join.len(), 5);
        assert_eq!(
            change.effects,
            vec![Effect::PostIncidentCard {
                incident: IncidentId(3)
            }]
        );
        assert_eq!(i.languages.get("en"), Some(&3));
        assert_eq!(i.languages.get("da"), Some(&2));
        assert_eq!(i.samples.len(), SAMPLES);
        assert_eq!(i.notable.len(), 4, "one entry per author");
        assert_eq!(i.minutes.iter().map(|m| m.count).sum::<u64>(), 5);
        assert_eq!(
            i.peak_per_minute, 3,
            "two of them in the first minute, three in the next"
        );
        assert_eq!(change.audit.len(), 5);
        // Tickets already in an incident stay there; nothing new, nothing written.
        let mut member = ticket(9, "x", None, 0);
        member.incident = Some(IncidentId(1));
        assert_eq!(
            join(Some(i), IncidentId(3), &topic(), &[member], now()),
            None
        );
    }

    #[test]
    fn a_split_member_leaves_and_gets_its_own_card() {
        let t = ticket(1, "ana", None, 0);
        let mut i = join(
            None,
            IncidentId(2),
            &topic(),
            std::slice::from_ref(&t),
            now(),
        )
        .unwrap()
        .incident;
        i.members = 1;
        let mut member = t.clone();
        member.incident = Some(IncidentId(2));
        let change = split(&i, &member, &agent(), now()).unwrap();
        assert_eq!(change.leave, vec![TicketId(1)]);
        assert_eq!(
            change.ticket_effects,
            vec![(TicketId(1), Effect::PostCards)]
        );
        assert_eq!((change.incident.members, change.incident.split_off), (0, 1));
        assert_eq!(
            split(&i, &t, &agent(), now()),
            Err(Refusal::NotAMember {
                ticket: TicketId(1),
                incident: IncidentId(2)
            })
        );
    }

    #[test]
    fn a_bulk_answer_picks_the_members_language_and_can_be_paused_and_cancelled() {
        let i = Incident::new(IncidentId(1), topic(), now());
        let texts = BTreeMap::from([
            (
                "".to_string(),
                "Hi {author}, we are on it. {agent}".to_string(),
            ),
            (
                "DA".to_string(),
                "Hej {author_name}, vi arbejder på det.".to_string(),
            ),
        ]);
        assert_eq!(
            start_bulk(
                &i,
                BTreeMap::from([("da".into(), "Hej".into())]),
                &agent(),
                false,
                now()
            ),
            Err(Refusal::NoText),
            "a text for every other language is needed"
        );
        let started = start_bulk(&i, texts, &agent(), false, now())
            .unwrap()
            .incident;
        let bulk = started.bulk.as_ref().unwrap();
        assert_eq!(bulk.state, BulkState::Running);
        assert_eq!(
            bulk.text_for(&ticket(1, "sofie", Some("da-DK"), 0), "BrandCo")
                .as_deref(),
            Some("Hej SOFIE, vi arbejder på det.")
        );
        assert_eq!(
            bulk.text_for(&ticket(2, "kim", None, 0), "BrandCo")
                .as_deref(),
            Some("Hi @kim, we are on it. Ana")
        );
        assert_eq!(
            start_bulk(
                &started,
                BTreeMap::from([("".into(), "again".into())]),
                &agent(),
                false,
                now()
            ),
            Err(Refusal::BulkRunning)
        );
        let paused = control_bulk(&started, BulkControl::Pause, &agent(), now())
            .unwrap()
            .incident;
        assert_eq!(paused.bulk.as_ref().unwrap().state, BulkState::Paused);
        assert_eq!(
            control_bulk(&paused, BulkControl::Pause, &agent(), now()),
            Err(Refusal::AlreadyThat("paused"))
        );
        let cancelled = control_bulk(&paused, BulkControl::Cancel, &agent(), now())
            .unwrap()
            .incident;
        assert_eq!(
            control_bulk(&cancelled, BulkControl::Resume, &agent(), now()),
            Err(Refusal::BulkFinished)
        );
    }

    #[test]
    fn a_held_bulk_answer_goes_out_only_once_another_agent_approves_it() {
        let i = Incident::new(IncidentId(1), topic(), now());
        let texts = BTreeMap::from([("".to_string(), "Hi".to_string())]);
        let held = start_bulk(&i, texts, &agent(), true, now()).unwrap();
        assert!(matches!(
            held.effects.last(),
            Some(Effect::IncidentNote {
                note: Note::Bulk {
                    step: BulkStep::Started { held: true, .. },
                    ..
                },
                ..
            })
        ));
        let held = held.incident;
        assert_eq!(
            held.bulk.as_ref().unwrap().state,
            BulkState::AwaitingApproval
        );
        assert_eq!(
            control_bulk(&held, BulkControl::Approve, &agent(), now()),
            Err(Refusal::OwnBulk),
            "never by its author"
        );
        assert_eq!(
            control_bulk(&held, BulkControl::Pause, &agent(), now()),
            Err(Refusal::AlreadyThat("waiting for approval"))
        );
        let ben = AgentRef {
            user_id: "U0BEN".into(),
            name: "Ben".into(),
            ..agent()
        };
        let approved = control_bulk(&held, BulkControl::Approve, &ben, now())
            .unwrap()
            .incident;
        let b = approved.bulk.as_ref().unwrap();
        assert_eq!(
            (b.state, b.approved_by.as_ref()),
            (BulkState::Running, Some(&ben))
        );
        assert_eq!(
            control_bulk(&approved, BulkControl::Approve, &ben, now()),
            Err(Refusal::NotAwaitingApproval)
        );
    }

    #[test]
    fn progress_moves_the_cursor_and_a_finished_answer_continues_with_later_members() {
        let mut i = Incident::new(IncidentId(1), topic(), now());
        i.members = 10;
        let i = start_bulk(
            &i,
            BTreeMap::from([("".into(), "Hi".into())]),
            &agent(),
            false,
            now(),
        )
        .unwrap()
        .incident;
        let i = bulk_progress(&i, TicketId(8), 7, 1, false, now())
            .unwrap()
            .incident;
        let done = bulk_progress(&i, TicketId(12), 2, 0, true, now()).unwrap();
        let b = done.incident.bulk.as_ref().unwrap();
        assert_eq!(
            (b.state, b.cursor, b.queued, b.skipped),
            (BulkState::Done, Some(TicketId(12)), 9, 1)
        );
        assert!(matches!(
            done.effects.last(),
            Some(Effect::IncidentNote {
                note: Note::Bulk {
                    step: BulkStep::Finished {
                        queued: 9,
                        skipped: 1
                    },
                    ..
                },
                ..
            })
        ));
        let mut later = done.incident.clone();
        later.members = 14;
        assert_eq!(later.unanswered_by_bulk(), 4);
        let again = control_bulk(&later, BulkControl::Resume, &agent(), now())
            .unwrap()
            .incident;
        assert_eq!(
            again.bulk.as_ref().unwrap().cursor,
            Some(TicketId(12)),
            "from where it stopped"
        );
    }

    #[test]
    fn answers_are_counted_once_per_member_and_the_page_goes_out_once() {
        let mut i = Incident::new(IncidentId(1), topic(), now());
        let before = ticket(1, "a", None, 0);
        let mut after = before.clone();
        after.replies.push(crate::domain::Reply {
            seq: 1,
            text: "hi".into(),
            visibility: Visibility::Public,
            private: false,
            by: agent(),
            at: now() + Duration::minutes(4),
            state: ReplyState::Published {
                remote_id: "9".into(),
                url: "u".into(),
            },
            auto: false,
            review: None,
        });
        i.count_outcome(&before, &after, now() + Duration::minutes(4));
        i.count_outcome(&after, &after, now() + Duration::minutes(5));
        assert_eq!(i.answered, 1);
        assert_eq!(i.time_to_first_answer(), Some(Duration::minutes(4)));
        let card = CardRef {
            surface: SurfaceKind::Slack,
            channel: "C".into(),
            message_id: "1.2".into(),
            thread_id: None,
        };
        let page = Note::Paged {
            members: vec!["slack:U0ANA".into()],
        };
        let first = cards_posted(&i, vec![card.clone()], Some(page.clone()));
        assert!(first.incident.paged);
        assert_eq!(first.effects.len(), 2);
        let again = cards_posted(&first.incident, vec![card], Some(page));
        assert!(again.effects.is_empty(), "paged once");
        assert_eq!(again.incident.cards.len(), 1);
    }
}
