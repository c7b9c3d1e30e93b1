//! The desk behind the `AgentDesk` port the chat surfaces hold: judge an agent's action
//! with the core, commit it with its effects in one transaction, make it durable, then
//! wake the outbox sender.

use crate::domain::canned::{choices_for, CannedReply};
use crate::domain::incident::{BulkControl, Incident, IncidentChange, Refusal};
use crate::domain::oncall::{Layer, OnCall, Override, Schedule};
use crate::domain::routes::Routes;
use crate::domain::survey::{ask_after_resolve, SurveyPolicy};
use crate::domain::translation::{customer_language, same_language, DraftChoice, TranslatedDraft};
use crate::domain::IncidentId;
use crate::domain::{
    apply, text::TextRules, AgentAction, AgentRef, AuditEntry, Desk, Effect, Platform, Rejection,
    SurfaceKind, Ticket, TicketId,
};
use crate::ports::{
    ActError, AgentDesk, ChartAsk, ChartFile, DraftToTranslate, DrawnCharts, IncidentPage,
    OpenTickets, StoreFailure,
};
use crate::ports::{Clock, SystemClock};
use crate::ports::{SharedStore, StoreError};
use crate::runtime::failpoints::Failpoints;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

impl From<StoreError> for ActError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchTicket(id) => ActError::NoSuchTicket(id),
            StoreError::NoSuchIncident(id) => ActError::NoSuchIncident(id),
            other => ActError::Store(StoreFailure(Box::new(other))),
        }
    }
}

pub struct DeskService {
    store: SharedStore,
    canned: Vec<CannedReply>,
    brand: String,
    desk: RwLock<Desk>,
    outbox_wake: Arc<Notify>,
    /// Test hook (failpoint `slow-desk`): every action takes 2.5 s, so tests can watch a
    /// surface defer its answer.
    slow: bool,
    clock: Arc<dyn Clock>,
    /// The configured rotations; chat overrides live in the store.
    oncall: Schedule,
    routes: Routes,
    /// Where the surfaces' handlers leave work they do not wait for.
    background: crate::runtime::supervisor::Background,
    background_work: Arc<crate::runtime::supervisor::BackgroundWork>,
    /// Drafts can be translated in the reply form (`[translation]`); None: never.
    translation: Option<Arc<crate::runtime::translation::Translation>>,
    /// One agent's choice among their held drafts at a time, so two quick presses
    /// cannot both send.
    drafts: tokio::sync::Mutex<()>,
    /// `[surveys]`: the question a resolve asks; None: nobody is asked.
    surveys: Option<SurveyPolicy>,
    /// The networks the desk answers on (author keys' network part), for a person named
    /// without one (`/mentions note @kim …` with one network configured).
    networks: Vec<String>,
}

const OVERRIDES_KEY: &str = "oncall:overrides";

/// An agent's step on an incident, judged on it and the tickets named, as stored.
type AgentStep<'a> =
    dyn Fn(&Incident, &[Ticket]) -> Result<IncidentChange, Refusal> + Send + Sync + 'a;
/// Numbers translated drafts, across replicas.
const DRAFT_NUMBERS_KEY: &str = "translation:drafts";

/// Where the one translated draft an agent may hold is kept.
fn held_draft_key(who: &AgentRef) -> String {
    format!("translation:draft:{}", who.member_key())
}

/// A translated draft waiting for its agent's choice, with the number its buttons carry.
#[derive(serde::Serialize, serde::Deserialize)]
struct HeldDraft {
    number: u64,
    draft: TranslatedDraft,
}

/// What an agent is told when a held draft's buttons no longer send anything.
const DRAFT_GONE: &str =
    "This translation was already sent, edited or replaced by a newer one; nothing was sent.";

/// Tickets' facts read per page for `/mentions stats` (about 150 bytes each): what it
/// holds at once, whatever the window, and few round trips to a networked store.
const STATS_PAGE: usize = 5000;

impl DeskService {
    pub fn new(store: SharedStore, desk: Desk, outbox_wake: Arc<Notify>) -> Self {
        let (background, background_work) = crate::runtime::supervisor::background();
        DeskService {
            background,
            background_work: Arc::new(background_work),
            store,
            canned: Vec::new(),
            brand: String::new(),
            oncall: Schedule::default(),
            routes: Routes::default(),
            desk: RwLock::new(desk),
            outbox_wake,
            slow: false,
            clock: Arc::new(SystemClock),
            translation: None,
            drafts: tokio::sync::Mutex::new(()),
            surveys: None,
            networks: Vec::new(),
        }
    }

    /// Ask the customer the satisfaction survey after a resolve (`[surveys]`).
    pub fn with_surveys(mut self, surveys: Option<SurveyPolicy>) -> Self {
        self.surveys = surveys;
        self
    }

    /// Whether the author of ticket `id` was asked a survey within the policy's
    /// `once_per_person`, on another of their tickets (their latest
    /// [`crate::domain::priority::CONTACTS_KEPT`], as the store keeps them). Only looked
    /// up when this resolve would otherwise ask.
    async fn asked_recently(
        &self,
        id: TicketId,
        policy: &SurveyPolicy,
        now: DateTime<Utc>,
    ) -> Result<bool, ActError> {
        let ticket = self.ticket(id).await?;
        if !crate::domain::survey::owed(&ticket, policy) {
            return Ok(false);
        }
        let since = now - policy.once_per_person;
        let key = crate::domain::priority::author_key(&ticket.mention);
        let contacts = self
            .store
            .author_contacts(&key, crate::domain::priority::CONTACTS_KEPT)
            .await?;
        for contact in contacts.iter().filter(|c| c.ticket != id) {
            let asked = self
                .store
                .ticket(contact.ticket)
                .await?
                .and_then(|t| t.survey)
                .is_some_and(|s| s.asked_at >= since);
            if asked {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The networks the configured publishers answer on (see
    /// `domain::priority::network_key`).
    pub fn with_networks(mut self, networks: Vec<String>) -> Self {
        self.networks = networks;
        self.networks.sort();
        self.networks.dedup();
        self
    }

    /// The author key of a person an agent named, and how the agent is told about them.
    fn person_named(
        &self,
        network: Option<&str>,
        handle: &str,
    ) -> Result<(String, String), ActError> {
        let handle = handle.trim();
        if crate::domain::priority::plain_handle(handle).is_empty() {
            return Err(ActError::Invalid(
                "Whose? Name them by their handle, e.g. `@kim@social.example`.".into(),
            ));
        }
        let network = match (network, self.networks.as_slice()) {
            (Some(typed), _) => crate::domain::customer::typed_network(typed),
            (None, [only]) => only.clone(),
            (None, several) => {
                return Err(ActError::Invalid(format!(
                    "Which network? Say it before the handle, e.g. `/mentions note mastodon @kim …` or `/mentions who @kim mastodon` (configured: {}).",
                    if several.is_empty() { "none".to_string() } else { several.join(", ") }
                )))
            }
        };
        let key = crate::domain::priority::person_key(&network, handle);
        let shown = format!("@{} on {network}", handle.trim_start_matches('@'));
        Ok((key, shown))
    }

    /// Let agents translate their drafts into the customer's language.
    pub fn with_translation(
        mut self,
        translation: Option<Arc<crate::runtime::translation::Translation>>,
    ) -> Self {
        self.translation = translation;
        self
    }

    /// The draft `who` holds, if any (see [`AgentDesk::hold_draft`]).
    async fn held_draft(&self, who: &AgentRef) -> Result<Option<HeldDraft>, ActError> {
        Ok(self
            .store
            .state(&held_draft_key(who))
            .await?
            .filter(|raw| !raw.is_empty())
            .and_then(|raw| serde_json::from_slice(&raw).ok()))
    }

    async fn let_go_of_draft(&self, who: &AgentRef) -> Result<(), ActError> {
        self.store.set_state(&held_draft_key(who), b"").await?;
        self.store.flush().await?;
        Ok(())
    }

    /// The desk's clock (the system clock unless a test passes its own).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Test hooks: `slow-desk` makes every action take 2.5 s.
    pub fn with_failpoints(mut self, failpoints: &Failpoints) -> Self {
        self.slow = failpoints.is_on("slow-desk");
        self
    }

    /// The desk's current instant.
    pub fn now(&self) -> chrono::DateTime<Utc> {
        self.clock.now()
    }

    /// The component that runs what [`Self::background`] was given.
    pub fn background_work(&self) -> Arc<crate::runtime::supervisor::BackgroundWork> {
        self.background_work.clone()
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn with_oncall(mut self, schedule: Schedule, routes: Routes) -> Self {
        self.oncall = schedule;
        self.routes = routes;
        self
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The whole schedule with the overrides set from chat.
    pub async fn schedule(&self) -> Schedule {
        let mut schedule = self.oncall.clone();
        schedule.overrides = self.overrides().await.unwrap_or_default();
        schedule
    }

    /// What a new ticket's card asks of the people on call once it is up: its route
    /// decides, from who is on call for that route at `now`.
    pub async fn paging(&self, ticket: &Ticket, now: chrono::DateTime<Utc>) -> Vec<Effect> {
        let route = self.routes.of(ticket);
        let on_call = route.schedule(&self.schedule().await).on_call(now);
        self.routes.paging(ticket, &on_call)
    }

    /// What an incident's card asks of the people on call once it is up: one page for
    /// the whole storm, as the route of its first member would page for a ticket.
    pub async fn incident_paging(
        &self,
        incident: &crate::domain::incident::Incident,
        now: chrono::DateTime<Utc>,
    ) -> Option<crate::domain::Note> {
        let first = match incident.samples.first() {
            Some(s) => self.store.ticket(s.ticket).await.ok().flatten(),
            None => None,
        };
        let route = match &first {
            Some(t) => self.routes.of(t),
            None => &self.routes.default,
        };
        route
            .paging(&route.schedule(&self.schedule().await).on_call(now))
            .into_iter()
            .find_map(|e| match e {
                Effect::ThreadNote(crate::domain::Note::Paged { members }) => {
                    Some(crate::domain::Note::IncidentPaged { members })
                }
                _ => None,
            })
    }

    async fn overrides(&self) -> Result<Vec<Override>, ActError> {
        Ok(self
            .store
            .state(OVERRIDES_KEY)
            .await?
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default())
    }

    pub fn with_canned(mut self, library: Vec<CannedReply>, brand: String) -> Self {
        self.canned = library;
        self.brand = brand;
        self
    }

    /// The ticket part of `/metrics`: the store's counters, each route judged at the
    /// desk's now against its target. Reads no ticket.
    pub async fn ticket_metrics(&self) -> Result<String, StoreError> {
        let routes = &self.routes;
        let target = |route: &str| routes.named(route).sla.first_response;
        let counts =
            crate::ports::tally::desk_counts(self.store.as_ref(), self.now(), &target).await?;
        Ok(crate::reports::prometheus_from(&counts))
    }

    /// Every incident, oldest first (they are few: one per storm).
    pub async fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.incidents_after(after, 500).await?;
            let full = page.len() == 500;
            after = page.last().map(|i| i.id);
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Every ticket received in `window`, as the numbers see it, read [`STATS_PAGE`] at a
    /// time and handed to `each` in order.
    async fn each_received(
        &self,
        window: &crate::reports::Window,
        mut each: impl FnMut(crate::ports::tally::TicketFacts) + Send,
    ) -> Result<(), StoreError> {
        let mut after = None;
        loop {
            let page = self
                .store
                .received_facts(window.from, window.to, after, STATS_PAGE)
                .await?;
            let full = page.len() == STATS_PAGE;
            after = page.last().map(|l| (l.opened_at, l.id));
            page.into_iter().for_each(&mut each);
            if !full {
                return Ok(());
            }
        }
    }

    /// What the charts are drawn from for `window` in `tz` (the HTTP charts and
    /// `/mentions stats charts` both ask here).
    pub async fn chart_data(
        &self,
        window: &crate::reports::Window,
        tz: chrono_tz::Tz,
    ) -> Result<crate::reports::ChartData, StoreError> {
        let mut facts = Vec::new();
        self.each_received(window, |t| facts.push(t)).await?;
        let schedule = self.schedule().await;
        let targets = self.targets();
        let csat = crate::reports::csat_by_day(&facts, window, tz);
        Ok(crate::reports::ChartData::of(
            &facts,
            window,
            tz,
            &schedule,
            &targets,
            &csat,
            self.clock.now(),
        ))
    }

    /// How the numbers judge each ticket: its route's target, the shift it arrived in.
    pub fn targets(&self) -> crate::reports::Targets<'_> {
        let has_shifts = !self.oncall.rotations.is_empty();
        crate::reports::Targets {
            default_sla: self.routes.default.sla.first_response,
            sla_of: Box::new(|route| self.routes.named(route).sla.first_response),
            shift_of: Box::new(move |at| has_shifts.then(|| self.oncall.shift_label(at))),
        }
    }

    fn desk(&self) -> Desk {
        self.desk.read().expect("desk lock").clone()
    }

    /// Who may act and how replies are counted, as the core judges actions.
    pub fn rules(&self) -> Desk {
        self.desk()
    }

    /// The brand's name, for `{brand}` in what the desk writes to customers.
    pub fn brand(&self) -> &str {
        &self.brand
    }

    async fn incident_of(&self, id: IncidentId) -> Result<Incident, ActError> {
        self.store
            .incident(id)
            .await?
            .ok_or(ActError::NoSuchIncident(id))
    }

    fn ensure_agent(&self, who: &AgentRef) -> Result<(), ActError> {
        if self.is_agent(who) {
            Ok(())
        } else {
            Err(ActError::Rejected(Rejection::NotAnAgent))
        }
    }

    /// Commit an agent's decision about incident `id` (judged on it as stored) and tell
    /// the outbox.
    async fn change_incident(
        &self,
        id: IncidentId,
        tickets: &[TicketId],
        decide: &AgentStep<'_>,
    ) -> Result<Incident, ActError> {
        let refused: std::sync::Mutex<Option<Refusal>> = std::sync::Mutex::new(None);
        let now = self.clock.now();
        let changed = self
            .store
            .change_incident(
                Some(id),
                tickets,
                &|stored, _, read| {
                    let stored = stored?;
                    match decide(stored, read) {
                        Ok(change) => Some(change),
                        Err(why) => {
                            *refused.lock().expect("refusal lock") = Some(why);
                            None
                        }
                    }
                },
                now,
            )
            .await?;
        match changed {
            Some(incident) => {
                self.store.flush().await?;
                self.outbox_wake.notify_one();
                Ok(incident)
            }
            None => Err(ActError::Invalid(
                refused
                    .into_inner()
                    .expect("refusal lock")
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "Nothing changed.".into()),
            )),
        }
    }

    pub async fn ticket(&self, id: TicketId) -> Result<Ticket, ActError> {
        self.store
            .ticket(id)
            .await?
            .ok_or(ActError::NoSuchTicket(id))
    }
}

/// Chat reaches the desk through the port; the runtime's own callers use the methods above.
#[async_trait::async_trait]
impl AgentDesk for DeskService {
    fn is_agent(&self, who: &AgentRef) -> bool {
        self.desk.read().expect("desk lock").is_agent(who)
    }

    /// How replies on `platform` are counted, if we can reply there at all.
    fn text_rules(&self, platform: Platform) -> Option<TextRules> {
        self.desk
            .read()
            .expect("desk lock")
            .text_rules
            .get(&platform)
            .copied()
    }

    /// The canned replies that fit a ticket (its language first), for the card's picker.
    fn canned_for(&self, ticket: &Ticket) -> Vec<CannedReply> {
        choices_for(&self.canned, ticket)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The members of the configured agent user groups, as the surface last resolved them.
    fn set_group_members(&self, surface: SurfaceKind, members: HashSet<String>) {
        self.desk
            .write()
            .expect("desk lock")
            .roster_mut(surface)
            .group_members = members;
    }

    /// Sorted from the heads of the index of what the list sorts by (points, instant
    /// received, answered yet), so only the tickets shown are read.
    async fn open_tickets(&self, limit: usize) -> Result<OpenTickets, ActError> {
        let now = self.clock.now();
        let policy = &self.routes.triage.priority;
        let mut open: Vec<_> = self
            .store
            .open_list_heads(limit)
            .await?
            .into_iter()
            .map(|o| {
                let level = policy.current_level(o.score, o.received, o.waiting, now);
                (level, o.received, o.ticket)
            })
            .collect();
        open.sort_unstable_by(|a, b| crate::domain::priority::list_order(*a, *b));
        let mut first = Vec::with_capacity(limit.min(open.len()));
        for (_, _, id) in open.iter().take(limit) {
            if let Some(mut t) = self.store.ticket(*id).await? {
                t.priority = policy.current(&t, now);
                first.push(t);
            }
        }
        Ok(OpenTickets {
            first,
            total: self.store.open_ticket_count().await?,
        })
    }

    async fn explain(&self, who: &AgentRef, id: TicketId) -> Result<Ticket, ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let mut ticket = self.ticket(id).await?;
        ticket.priority = self
            .routes
            .triage
            .priority
            .current(&ticket, self.clock.now());
        Ok(ticket)
    }

    async fn note_person(
        &self,
        who: &AgentRef,
        network: Option<&str>,
        handle: &str,
        text: &str,
    ) -> Result<String, ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let (key, shown) = self.person_named(network, handle)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(ActError::Invalid(
                "What should the note say? e.g. `/mentions note @kim prefers email`.".into(),
            ));
        }
        // Notes name their writer: as `[[agents]]` knows them, else as the surface did
        // (a Slack command carries only the user id).
        let mut by = who.clone();
        if let Some(person) = self
            .desk
            .read()
            .expect("desk lock")
            .agents
            .of(&who.member_key())
        {
            by.name = person.name.clone();
        }
        let note = crate::domain::customer::PersonNote {
            by,
            at: self.clock.now(),
            text: text.to_string(),
        };
        self.store.add_person_note(&key, &note).await?;
        // Their open cards show it too: each is re-rendered, with a line on its trail
        // saying a note was left (not what it says).
        let line = |ticket| AuditEntry {
            ticket,
            at: note.at,
            actor: Some(who.clone()),
            what: "left a note about the customer".into(),
            detail: None,
        };
        let contacts = self
            .store
            .author_contacts(&key, crate::domain::priority::CONTACTS_KEPT)
            .await?;
        let mut refreshed = 0usize;
        for c in contacts.iter().filter(|c| c.open) {
            let changed = self
                .store
                .transition(c.ticket, &|stored| {
                    (!stored.is_closed()).then(|| crate::domain::Transition {
                        ticket: stored.clone(),
                        effects: vec![Effect::UpdateCards],
                        audit: line(stored.id),
                    })
                })
                .await?;
            refreshed += usize::from(changed.is_some());
        }
        self.store.flush().await?;
        if refreshed > 0 {
            self.outbox_wake.notify_one();
        }
        tracing::info!(agent = %who.member_key(), open_cards = refreshed, "note about a person recorded");
        Ok(shown)
    }

    async fn person(
        &self,
        who: &AgentRef,
        network: Option<&str>,
        handle: &str,
    ) -> Result<(String, crate::domain::customer::Customer), ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let (key, shown) = self.person_named(network, handle)?;
        let customer =
            crate::runtime::customer::customer_of(self.store.as_ref(), &key, TicketId(u64::MAX))
                .await?;
        Ok((shown, customer))
    }

    async fn open_tickets_matching(
        &self,
        typed: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, ActError> {
        let number = typed.trim().trim_start_matches('#');
        Ok(self.store.open_tickets_numbered(number, limit).await?)
    }

    /// Would this action be allowed right now? Commits nothing (used before opening a
    /// modal, so nobody types a reply they cannot send).
    async fn preview(
        &self,
        id: TicketId,
        action: AgentAction,
        actor: &AgentRef,
    ) -> Result<Ticket, ActError> {
        let ticket = self.ticket(id).await?;
        apply(&ticket, action, actor, &self.desk(), self.clock.now())
            .map(|t| t.ticket)
            .map_err(ActError::Rejected)?;
        Ok(ticket)
    }

    /// Judge, commit and make durable an agent's action; the outbox then carries out its
    /// effects. A refusal changes nothing.
    async fn act(
        &self,
        id: TicketId,
        action: AgentAction,
        actor: &AgentRef,
    ) -> Result<Ticket, ActError> {
        if self.slow {
            tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        }
        let desk = self.desk();
        let now = self.clock.now();
        // A resolve may ask the satisfaction survey, in the same commit (see
        // `domain::survey::ask_after_resolve`), unless the person was asked lately.
        let survey = match (&self.surveys, &action) {
            (Some(policy), AgentAction::Resolve) => {
                (!self.asked_recently(id, policy, now).await?).then_some(policy)
            }
            _ => None,
        };
        let outcome = self
            .store
            .act(id, &|t| {
                let tr = apply(t, action.clone(), actor, &desk, now)?;
                Ok(match survey {
                    Some(policy) => ask_after_resolve(
                        tr,
                        t,
                        policy,
                        desk.text_rules.get(&t.mention.platform),
                        actor.clone(),
                        now,
                    ),
                    None => tr,
                })
            })
            .await?;
        match outcome {
            Ok(ticket) => {
                self.store.flush().await?;
                self.outbox_wake.notify_one();
                tracing::info!(ticket = %id, action = action.verb(), agent = %actor.user_id, "agent action committed");
                Ok(ticket)
            }
            Err(rejection) => {
                tracing::info!(ticket = %id, action = action.verb(), agent = %actor.user_id, reason = %rejection, "agent action refused");
                Err(ActError::Rejected(rejection))
            }
        }
    }

    /// An agent wrote in a card's thread: an internal note. Recorded, never relayed. A
    /// message by anyone else (a bystander, another bot) is no note and changes nothing.
    async fn internal_note(
        &self,
        surface: SurfaceKind,
        channel: &str,
        thread_id: &str,
        author: &AgentRef,
        text: &str,
    ) -> Result<Option<TicketId>, ActError> {
        if !self.is_agent(author) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let Some(ticket) = self
            .store
            .ticket_by_card(surface, channel, thread_id)
            .await?
        else {
            return Ok(None);
        };
        self.store
            .append_audit(&AuditEntry {
                ticket,
                at: self.clock.now(),
                actor: Some(author.clone()),
                what: "internal note".into(),
                detail: Some(text.to_string()),
            })
            .await?;
        self.store.flush().await?;
        Ok(Some(ticket))
    }

    /// `/mentions canned`: the whole library.
    async fn canned_list(&self, who: &AgentRef) -> Result<String, ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        if self.canned.is_empty() {
            return Ok("No canned replies are configured ([[canned]] in bot-config.toml).".into());
        }
        Ok(self
            .canned
            .iter()
            .map(|c| {
                format!(
                    "• {} ({}{}): {}",
                    c.title,
                    c.id,
                    c.language
                        .as_deref()
                        .map(|l| format!(", {l}"))
                        .unwrap_or_default(),
                    c.text
                )
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// A canned reply filled in for this ticket and agent, if the agent may reply now.
    async fn canned_text(
        &self,
        id: TicketId,
        canned_id: &str,
        who: &AgentRef,
    ) -> Result<(Ticket, String), ActError> {
        let ticket = self
            .preview(id, AgentAction::Reply { text: ".".into() }, who)
            .await?;
        let canned = self
            .canned
            .iter()
            .find(|c| c.id == canned_id)
            .ok_or_else(|| ActError::Invalid(format!("There is no canned reply `{canned_id}`.")))?;
        let text = canned.render(&ticket, who, &self.brand);
        Ok((ticket, text))
    }

    /// `/mentions stats [24h|7d|30d]`: the team's numbers, for agents only.
    async fn stats(&self, who: &AgentRef, window: &str) -> Result<String, ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let window = crate::reports::Window::parse(
            if window.trim().is_empty() {
                "7d"
            } else {
                window
            },
            self.clock.now(),
        )
        .map_err(|e| ActError::Invalid(e.to_string()))?;
        let targets = self.targets();
        let mut summary = crate::reports::Summarizer::new(&window, &targets);
        self.each_received(&window, |t| summary.add(&t)).await?;
        let mut text = crate::reports::render_text(&summary.finish());
        let incidents = self.incidents().await?;
        text.push_str(&crate::reports::incidents_text(
            &crate::reports::incident_figures(&incidents, &window),
        ));
        Ok(text)
    }

    fn ask_charts(&self, who: &AgentRef, window: &str, tz: &str) -> Result<ChartAsk, ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let window = match window.trim() {
            "" => "7d",
            typed => typed,
        };
        crate::reports::Window::parse(window, self.clock.now())
            .map_err(|e| ActError::Invalid(e.to_string()))?;
        let tz = match tz.trim() {
            "" => chrono_tz::Tz::UTC,
            typed => typed.parse::<chrono_tz::Tz>().map_err(|_| {
                ActError::Invalid(
                    "That is not a time zone: give an IANA name such as Europe/Berlin or America/New_York."
                        .into(),
                )
            })?,
        };
        Ok(ChartAsk {
            window: window.to_ascii_lowercase(),
            tz: tz.name().to_string(),
        })
    }

    async fn draw_charts(&self, ask: &ChartAsk) -> Result<DrawnCharts, ActError> {
        let window = crate::reports::Window::parse(&ask.window, self.clock.now())
            .map_err(|e| ActError::Invalid(e.to_string()))?;
        let tz: chrono_tz::Tz = ask
            .tz
            .parse()
            .map_err(|_| ActError::Invalid(format!("`{}` is not a time zone.", ask.tz)))?;
        let data = self.chart_data(&window, tz).await?;
        let drawn = tokio::task::spawn_blocking(move || {
            let caption = data.caption();
            let charts = [
                (
                    "week.png",
                    "Mentions per hour of the week, and who is on shift",
                    crate::reports::week_png(&data),
                ),
                (
                    "first-response.png",
                    "First response by hour of the day (median and p90)",
                    crate::reports::first_response_png(&data),
                ),
                (
                    "daily.png",
                    "SLA % and CSAT by day",
                    crate::reports::daily_png(&data),
                ),
            ];
            let mut files = Vec::new();
            for (filename, title, png) in charts {
                files.push(ChartFile {
                    filename: filename.to_string(),
                    title: title.to_string(),
                    alt: format!("{title}, {caption}"),
                    png: png.map_err(|e| {
                        ActError::Invalid(format!("The charts could not be drawn ({e})."))
                    })?,
                });
            }
            Ok::<_, ActError>(DrawnCharts {
                summary: format!("{} {}.", data.gap_sentence, caption),
                files,
            })
        })
        .await
        .map_err(|_| ActError::Invalid("The charts could not be drawn.".into()))??;
        Ok(drawn)
    }

    /// `/mentions oncall`: who is on call right now, and until when.
    async fn on_call_now(
        &self,
        who: &AgentRef,
    ) -> Result<(OnCall, Option<DateTime<Utc>>), ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let now = self.clock.now();
        let schedule = self.schedule().await;
        Ok((schedule.on_call(now), schedule.next_change(now)))
    }

    /// `/mentions oncall override <member|me> <4h>`: put someone on call (primary) from
    /// now for a while; stored, so it survives restarts.
    async fn override_on_call(
        &self,
        who: &AgentRef,
        member: &str,
        length: &str,
    ) -> Result<Override, ActError> {
        if !self.is_agent(who) {
            return Err(ActError::Rejected(Rejection::NotAnAgent));
        }
        let member = crate::domain::oncall::override_member(member, &who.member_key(), who.surface)
            .map_err(ActError::Invalid)?;
        let length = crate::domain::oncall::override_length(length).map_err(ActError::Invalid)?;
        let now = self.clock.now();
        let added = Override::lasting(member, Layer::Primary, now, length);
        let mut all: Vec<Override> = self
            .overrides()
            .await?
            .into_iter()
            .filter(|o| o.until > now)
            .collect();
        all.push(added.clone());
        self.store
            .set_state(
                OVERRIDES_KEY,
                &serde_json::to_vec(&all).expect("overrides serialize"),
            )
            .await?;
        self.store.flush().await?;
        tracing::info!(member = %added.member, until = %added.until, by = %who.user_id, "on-call override");
        Ok(added)
    }

    async fn incident_members(
        &self,
        who: &AgentRef,
        id: IncidentId,
        page: usize,
    ) -> Result<IncidentPage, ActError> {
        self.ensure_agent(who)?;
        let incident = self.incident_of(id).await?;
        let per = IncidentPage::PER_PAGE;
        let pages = (incident.members as usize).div_ceil(per).max(1);
        let page = page.clamp(1, pages);
        // Pages are read from the first: members are listed by ticket number.
        let mut after = None;
        let mut ids = Vec::new();
        for _ in 0..page {
            ids = self.store.incident_members(id, after, per).await?;
            match ids.last() {
                Some(last) => after = Some(*last),
                None => break,
            }
        }
        let mut tickets = Vec::with_capacity(ids.len());
        for t in ids {
            if let Some(t) = self.store.ticket(t).await? {
                tickets.push(t);
            }
        }
        Ok(IncidentPage {
            incident,
            tickets,
            page,
            pages,
        })
    }

    async fn bulk_form(
        &self,
        who: &AgentRef,
        id: IncidentId,
    ) -> Result<(Incident, Vec<(String, String)>), ActError> {
        self.ensure_agent(who)?;
        let incident = self.incident_of(id).await?;
        // A canned reply per language the incident speaks, its variables left for each
        // member; every other language takes a reply for any language.
        let mut drafts = Vec::new();
        for language in incident.languages.keys() {
            let canned = self
                .canned
                .iter()
                .find(|c| match (&c.language, language.as_str()) {
                    (_, "") => c.language.is_none(),
                    (Some(l), code) => crate::domain::incident::primary_language(l) == code,
                    (None, _) => false,
                });
            if let Some(c) = canned {
                drafts.push((language.clone(), c.text.clone()));
            }
        }
        if !drafts.iter().any(|(l, _)| l.is_empty()) {
            if let Some(c) = self
                .canned
                .iter()
                .find(|c| c.language.is_none())
                .or(self.canned.first())
            {
                drafts.push((String::new(), c.text.clone()));
            }
        }
        Ok((incident, drafts))
    }

    async fn bulk_answer(
        &self,
        who: &AgentRef,
        id: IncidentId,
        texts: std::collections::BTreeMap<String, String>,
    ) -> Result<Incident, ActError> {
        self.ensure_agent(who)?;
        let now = self.clock.now();
        // One approval for the whole answer: its member replies then go out as approved.
        let desk = self.desk();
        let held = desk.approvals.bulk_answers || desk.is_trainee(who);
        let started = self
            .change_incident(id, &[], &|stored, _| {
                crate::domain::incident::start_bulk(stored, texts.clone(), who, held, now)
            })
            .await?;
        tracing::info!(incident = %id, agent = %who.user_id, members = started.members, "bulk answer started");
        Ok(started)
    }

    async fn bulk_control(
        &self,
        who: &AgentRef,
        id: IncidentId,
        control: BulkControl,
    ) -> Result<Incident, ActError> {
        self.ensure_agent(who)?;
        if control == BulkControl::Approve && self.desk().is_trainee(who) {
            return Err(ActError::Invalid(Refusal::TraineeCannotApprove.to_string()));
        }
        let now = self.clock.now();
        let changed = self
            .change_incident(id, &[], &|stored, _| {
                crate::domain::incident::control_bulk(stored, control, who, now)
            })
            .await?;
        tracing::info!(incident = %id, agent = %who.user_id, step = control.verb(), "bulk answer steered");
        Ok(changed)
    }

    async fn split(&self, who: &AgentRef, ticket: TicketId) -> Result<Incident, ActError> {
        self.ensure_agent(who)?;
        let member = self.ticket(ticket).await?;
        let Some(id) = member.incident else {
            return Err(ActError::Invalid(format!(
                "Ticket #{ticket} is in no incident: it has a card of its own."
            )));
        };
        let now = self.clock.now();
        let changed = self
            .change_incident(id, &[ticket], &|stored, read| {
                let member = read.iter().find(|t| t.id == ticket).ok_or(
                    crate::domain::incident::Refusal::NotAMember {
                        ticket,
                        incident: id,
                    },
                )?;
                crate::domain::incident::split(stored, member, who, now)
            })
            .await?;
        tracing::info!(incident = %id, %ticket, agent = %who.user_id, "member split off its incident");
        Ok(changed)
    }

    async fn first_delivery(&self, kind: &str, id: &str) -> Result<bool, StoreFailure> {
        self.store
            .first_delivery(kind, id, Utc::now())
            .await
            .map_err(|e| StoreFailure(Box::new(e)))
    }

    fn spawn_later(&self, name: &'static str, work: futures_util::future::BoxFuture<'static, ()>) {
        self.background.spawn(name, work)
    }

    /// The customer's language (as the platform said, or as the mention's translation
    /// found), when it is not the team's.
    fn draft_language(&self, ticket: &Ticket) -> Option<String> {
        let team = self.translation.as_ref()?.team_language();
        customer_language(ticket)
            .or_else(|| ticket.translation.as_ref().and_then(|t| t.from.clone()))
            .filter(|l| !same_language(l, team))
    }

    async fn translate_draft(
        &self,
        id: TicketId,
        draft: DraftToTranslate,
        actor: &AgentRef,
    ) -> Result<TranslatedDraft, ActError> {
        let Some(translation) = &self.translation else {
            return Err(ActError::Invalid(crate::ports::NO_TRANSLATION.into()));
        };
        // The same judgement as opening the form: nobody translates what they cannot send.
        let ticket = self
            .preview(id, AgentAction::Reply { text: ".".into() }, actor)
            .await?;
        if draft.text.trim().is_empty() {
            return Err(ActError::Rejected(Rejection::EmptyReply));
        }
        if !crate::domain::translation::is_language_tag(&draft.to) {
            return Err(ActError::Invalid(format!(
                "`{}` is not a language code (try de, fr or pt-BR); nothing was sent.",
                draft.to.chars().take(40).collect::<String>()
            )));
        }
        match translation.of_draft(&ticket, &draft).await {
            Ok(done) => {
                tracing::info!(ticket = %id, agent = %actor.user_id, to = %draft.to, service = translation.service(), "draft translated; nothing sent yet");
                Ok(done)
            }
            Err(e) => {
                tracing::warn!(ticket = %id, error = %e, "a draft could not be translated");
                Err(ActError::Invalid(format!(
                    "The translation did not work ({e}). Nothing was sent: send your draft as written, or try again."
                )))
            }
        }
    }

    async fn hold_draft(&self, who: &AgentRef, draft: &TranslatedDraft) -> Result<u64, ActError> {
        if self.translation.is_none() {
            return Err(ActError::Invalid(crate::ports::NO_TRANSLATION.into()));
        }
        let _one_at_a_time = self.drafts.lock().await;
        let number = self.store.count_up(DRAFT_NUMBERS_KEY, 1).await?;
        let held = HeldDraft {
            number,
            draft: draft.clone(),
        };
        self.store
            .set_state(
                &held_draft_key(who),
                &serde_json::to_vec(&held).expect("a draft serializes"),
            )
            .await?;
        self.store.flush().await?;
        Ok(number)
    }

    async fn send_draft(
        &self,
        who: &AgentRef,
        number: u64,
        choice: DraftChoice,
    ) -> Result<Ticket, ActError> {
        let _one_at_a_time = self.drafts.lock().await;
        let Some(held) = self.held_draft(who).await?.filter(|h| h.number == number) else {
            return Err(ActError::Invalid(DRAFT_GONE.into()));
        };
        let draft = held.draft;
        let (text, ack) = draft.chosen(choice);
        let action = if draft.private {
            AgentAction::ReplyPrivately {
                text,
                public_ack: ack,
            }
        } else {
            AgentAction::Reply { text }
        };
        let ticket = self.act(draft.ticket, action, who).await?;
        self.let_go_of_draft(who).await?;
        tracing::info!(ticket = %draft.ticket, agent = %who.user_id, translated = (choice == DraftChoice::Translation), "translated draft's choice sent");
        Ok(ticket)
    }

    async fn take_draft(
        &self,
        who: &AgentRef,
        number: u64,
    ) -> Result<Option<TranslatedDraft>, ActError> {
        let _one_at_a_time = self.drafts.lock().await;
        let Some(held) = self.held_draft(who).await?.filter(|h| h.number == number) else {
            return Ok(None);
        };
        self.let_go_of_draft(who).await?;
        Ok(Some(held.draft))
    }
}
