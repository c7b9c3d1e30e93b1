//! The desk as an agent reaches it from chat: act on a ticket, leave an internal note,
//! look at the open tickets, the canned replies, the numbers and who is on call. The chat
//! surfaces hold an `AgentDesk` and nothing else of the runtime; every sentence they show
//! an agent about a refusal or a failure is an [`ActError`].

use crate::domain::canned::CannedReply;
use crate::domain::incident::{BulkControl, Incident};
use crate::domain::oncall::{OnCall, Override};
use crate::domain::translation::{DraftChoice, TranslatedDraft};
use crate::domain::{
    text::TextRules, AgentAction, AgentRef, IncidentId, Platform, Rejection, SurfaceKind, Ticket,
    TicketId,
};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use std::collections::HashSet;
use thiserror::Error;

/// The desk's records could not be read or written; the cause is kept for the log.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct StoreFailure(pub Box<dyn std::error::Error + Send + Sync>);

/// Why the desk did not do what an agent asked, in words for that agent.
#[derive(Debug, Error)]
pub enum ActError {
    #[error("{0}")]
    Rejected(Rejection),
    #[error("There is no ticket {0}.")]
    NoSuchTicket(TicketId),
    #[error("There is no incident {0}.")]
    NoSuchIncident(IncidentId),
    #[error("{0}")]
    Invalid(String),
    #[error("The desk could not save that ({0}); nothing changed. Try again.")]
    Store(#[source] StoreFailure),
}

/// Contract: a refusal (`Err`) changes nothing. An `Ok` from a method that changes
/// something ([`act`](Self::act), [`internal_note`](Self::internal_note),
/// [`override_on_call`](Self::override_on_call), [`first_delivery`](Self::first_delivery))
/// means the change is durable; what it sets off (card updates, the reply to the customer)
/// is carried out by the outbox afterwards, exactly once. Only configured agents may act
/// or read the desk; anyone else gets [`Rejection::NotAnAgent`].
/// The first open tickets in the list's order (highest priority first, then whoever
/// has waited longest), each with its priority as of now, and how many are open in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenTickets {
    pub first: Vec<Ticket>,
    pub total: usize,
}

/// A page of an incident's members (`/mentions incident 7 2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentPage {
    pub incident: Incident,
    pub tickets: Vec<Ticket>,
    /// 1-based.
    pub page: usize,
    pub pages: usize,
}

impl IncidentPage {
    /// Members a page lists.
    pub const PER_PAGE: usize = 20;
}
/// An agent's draft to be machine-translated before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftToTranslate {
    pub text: String,
    /// The public acknowledgement of a private reply, translated with it.
    pub ack: Option<String>,
    pub private: bool,
    /// The language to translate into (a BCP 47 tag such as `de`).
    pub to: String,
}

/// What an agent is told when the reply form cannot translate.
pub const NO_TRANSLATION: &str =
    "Translation is not configured for this desk ([translation] in bot-config.toml); nothing was sent.";

/// `/mentions stats charts [window] [tz]` as the desk understood it: checked before any
/// drawing starts, so a surface can refuse at once and draw in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartAsk {
    /// As typed, checked (`7d`, `30d`, `24h`).
    pub window: String,
    /// An IANA time zone name (`UTC` unless asked).
    pub tz: String,
}

/// One drawn chart, ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    /// `week.png`, `first-response.png`, `daily.png`.
    pub filename: String,
    /// The title shown beside the image.
    pub title: String,
    /// What the image shows, in words (alt text).
    pub alt: String,
    pub png: Vec<u8>,
}

/// The charts for one ask, with the sentence that sums them up (our words only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawnCharts {
    pub summary: String,
    pub files: Vec<ChartFile>,
}

#[async_trait]
pub trait AgentDesk: Send + Sync {
    /// Whether `who` is one of the configured agents (by id, role or user group).
    fn is_agent(&self, who: &AgentRef) -> bool;

    /// How replies on `platform` are counted, if we can reply there at all.
    fn text_rules(&self, platform: Platform) -> Option<TextRules>;

    /// The canned replies that fit a ticket (its language first), for the card's picker.
    fn canned_for(&self, ticket: &Ticket) -> Vec<CannedReply>;

    /// The members of the configured agent user groups, as the surface last resolved them.
    fn set_group_members(&self, surface: SurfaceKind, members: HashSet<String>);

    /// Open tickets, oldest first: the first `limit` of them, and how many are open in
    /// all (the list agents ask for).
    async fn open_tickets(&self, limit: usize) -> Result<OpenTickets, ActError>;

    /// Open tickets whose number starts with what was typed (`#` and spaces aside;
    /// nothing typed: any), oldest first, at most `limit` (autocomplete's choices).
    async fn open_tickets_matching(
        &self,
        typed: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, ActError>;

    /// Would this action be allowed right now? Commits nothing (asked before a reply form
    /// opens, so nobody types an answer they cannot send).
    async fn preview(
        &self,
        id: TicketId,
        action: AgentAction,
        actor: &AgentRef,
    ) -> Result<Ticket, ActError>;

    /// Judge an agent's action with the core and commit it with its effects.
    async fn act(
        &self,
        id: TicketId,
        action: AgentAction,
        actor: &AgentRef,
    ) -> Result<Ticket, ActError>;

    /// An agent wrote in a card's thread: an internal note, recorded and never relayed.
    /// `None`: the thread is no card's.
    async fn internal_note(
        &self,
        surface: SurfaceKind,
        channel: &str,
        thread_id: &str,
        author: &AgentRef,
        text: &str,
    ) -> Result<Option<TicketId>, ActError>;

    /// `/mentions why <ticket>`: the ticket (whatever its stage) with its priority as of
    /// now, whose reasons, rule hits and tags say why it is where it is. Agents only.
    async fn explain(&self, who: &AgentRef, id: TicketId) -> Result<Ticket, ActError>;

    /// `/mentions note [network] @handle <text>`: keep what an agent wrote about a
    /// person, for the team's eyes on that person's next cards (never sent to them).
    /// `network` may be left out when one network is configured. Agents only; returns
    /// the person as the agent is told about them ("@kim on Mastodon").
    async fn note_person(
        &self,
        who: &AgentRef,
        network: Option<&str>,
        handle: &str,
        text: &str,
    ) -> Result<String, ActError>;

    /// `/mentions who @handle [network]`: the person (as `note_person` names them) with
    /// every ticket of theirs and every note about them. Agents only.
    async fn person(
        &self,
        who: &AgentRef,
        network: Option<&str>,
        handle: &str,
    ) -> Result<(String, crate::domain::customer::Customer), ActError>;

    /// `/mentions canned`: the whole library, as text.
    async fn canned_list(&self, who: &AgentRef) -> Result<String, ActError>;

    /// A canned reply filled in for this ticket and agent, if the agent may reply now.
    async fn canned_text(
        &self,
        id: TicketId,
        canned_id: &str,
        who: &AgentRef,
    ) -> Result<(Ticket, String), ActError>;

    /// `/mentions stats <window>`: the team's numbers as text (an empty window: 7 days).
    async fn stats(&self, who: &AgentRef, window: &str) -> Result<String, ActError>;

    /// `/mentions stats charts [window] [tz]`: checks who asks and what, draws nothing.
    fn ask_charts(&self, who: &AgentRef, window: &str, tz: &str) -> Result<ChartAsk, ActError>;

    /// Draw the charts an [`ask_charts`](Self::ask_charts) allowed (CPU work, off the
    /// async threads).
    async fn draw_charts(&self, ask: &ChartAsk) -> Result<DrawnCharts, ActError>;

    /// `/mentions oncall`: who is on call right now, and until when.
    async fn on_call_now(
        &self,
        who: &AgentRef,
    ) -> Result<(OnCall, Option<chrono::DateTime<chrono::Utc>>), ActError>;

    /// `/mentions oncall override <member|me> <length>`: put someone on call (primary)
    /// from now for a while; it survives restarts.
    async fn override_on_call(
        &self,
        who: &AgentRef,
        member: &str,
        length: &str,
    ) -> Result<Override, ActError>;

    /// `/mentions incident <n> [page]`: the incident and one page of its members.
    async fn incident_members(
        &self,
        who: &AgentRef,
        id: IncidentId,
        page: usize,
    ) -> Result<IncidentPage, ActError>;

    /// The incident, for its bulk answer form, with a draft per language the form asks
    /// for (a canned reply in that language, when there is one).
    async fn bulk_form(
        &self,
        who: &AgentRef,
        id: IncidentId,
    ) -> Result<(Incident, Vec<(String, String)>), ActError>;

    /// Start a bulk answer (language → text, `""` for every other language); it goes
    /// out one reply per member, each exactly once.
    async fn bulk_answer(
        &self,
        who: &AgentRef,
        id: IncidentId,
        texts: std::collections::BTreeMap<String, String>,
    ) -> Result<Incident, ActError>;

    /// Pause, resume or cancel the incident's bulk answer.
    async fn bulk_control(
        &self,
        who: &AgentRef,
        id: IncidentId,
        control: BulkControl,
    ) -> Result<Incident, ActError>;

    /// `/mentions split <ticket>`: a member leaves its incident and gets its own card.
    async fn split(&self, who: &AgentRef, ticket: TicketId) -> Result<Incident, ActError>;

    /// True the first time an inbound delivery (`kind`, `id`) is seen, false for a
    /// redelivery; remembered across restarts, so a retried event changes nothing.
    async fn first_delivery(&self, kind: &str, id: &str) -> Result<bool, StoreFailure>;

    /// The language a draft on this ticket can be machine-translated into before it is
    /// sent (the customer's), when `[translation]` is configured and that language is not
    /// the team's own. `None`: the reply form offers no translation.
    fn draft_language(&self, _ticket: &Ticket) -> Option<String> {
        None
    }

    /// Translate an agent's draft for ticket `id`, if the agent may reply there now.
    /// Commits nothing and sends nothing to the customer: what goes out is what the
    /// agent then picks, through [`act`](Self::act) or [`send_draft`](Self::send_draft).
    async fn translate_draft(
        &self,
        _id: TicketId,
        _draft: DraftToTranslate,
        _actor: &AgentRef,
    ) -> Result<TranslatedDraft, ActError> {
        Err(ActError::Invalid(NO_TRANSLATION.into()))
    }

    /// Keep a translated draft for `who` until they pick what to send (a surface whose
    /// choice comes back as a button press); returns its number. One per agent: a newer
    /// draft replaces the older, whose buttons then send nothing. Never sent anywhere.
    async fn hold_draft(&self, _who: &AgentRef, _draft: &TranslatedDraft) -> Result<u64, ActError> {
        Err(ActError::Invalid(NO_TRANSLATION.into()))
    }

    /// Send the version `choice` of the draft `number` held for `who`, exactly as it was
    /// shown, as their reply ([`act`](Self::act)); once accepted the draft is let go, so
    /// its buttons send nothing again. A refusal keeps it.
    async fn send_draft(
        &self,
        _who: &AgentRef,
        _number: u64,
        _choice: DraftChoice,
    ) -> Result<Ticket, ActError> {
        Err(ActError::Invalid(NO_TRANSLATION.into()))
    }

    /// Take the draft `number` held for `who` away (to edit it in a form): its buttons
    /// send nothing afterwards. `None`: it was sent or replaced already.
    async fn take_draft(
        &self,
        _who: &AgentRef,
        _number: u64,
    ) -> Result<Option<TranslatedDraft>, ActError> {
        Ok(None)
    }

    /// Work a chat handler leaves to finish after it has answered (a button press handled
    /// after the acknowledgement, a late answer). It runs under the runtime's supervision
    /// and stops with it; `name` says what it was if it panics.
    fn spawn_later(&self, name: &'static str, work: BoxFuture<'static, ()>);
}
