//! The storm desk: one replica at a time follows the new tickets in number order (the
//! store numbers them as they commit), asks the storm watch whether each is part of a
//! storm, and commits what it decides — a new incident with its first members, or a
//! member joining one — before anything is said in chat. New tickets' cards wait
//! (`[storms] hold_seconds`) so a storm's members join its incident before their own
//! cards would go out; the outbox then skips them. It refreshes each incident's card at
//! most every `update_seconds`, whatever the arrival rate, and hands out bulk answers:
//! one reply per member, each committed with its outbox job (the reply path's
//! exactly-once machinery does the rest), paced per platform and within X's daily
//! budget, pausable and cancellable. Everything it knows is rebuilt from the store when
//! it starts, so a crash or a move to another replica loses nothing.

use crate::config::StormsConfig;
use crate::domain::incident::{self, BulkState, Incident};
use crate::domain::storms::{Observed, StormWatch, Topic, Verdict};
use crate::domain::{Effect, IncidentId, Platform, Ticket, TicketId};
use crate::ports::{Clock, SharedStore, StoreError};
use crate::runtime::desk::DeskService;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How often the new tickets are looked at (a held card waits far longer).
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// New tickets read per round.
const PAGE: usize = 500;
/// Where the storm desk continues after a restart: the last ticket it decided about.
const CURSOR_KEY: &str = "storms:cursor";
/// Replies of one bulk answer on their way to one platform at once: a pause or a cancel
/// stops all but these.
const IN_FLIGHT: usize = 32;
/// How often a running bulk answer's progress is saved (and its card refreshed).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How often the store is asked which incidents have a bulk answer going out.
const BULK_SCAN_EVERY: Duration = Duration::from_secs(2);
/// Members a bulk answer reads per step.
const MEMBERS_PAGE: usize = 100;

pub struct StormDesk {
    /// Fenced under the `storms` duty.
    pub store: SharedStore,
    pub desk: Arc<DeskService>,
    pub config: StormsConfig,
    pub clock: Arc<dyn Clock>,
    pub wake_outbox: Arc<Notify>,
    /// `[x] daily_request_budget`, when X is configured: bulk replies there wait for
    /// the next UTC day once it is spent.
    pub x_budget: Option<u32>,
}

/// What the storm desk holds in memory, all of it rebuilt from the store.
struct Following {
    watch: StormWatch,
    cursor: TicketId,
    /// Incidents whose card is to be refreshed, and when each was last.
    dirty: HashMap<IncidentId, ()>,
    refreshed: HashMap<IncidentId, Instant>,
    runs: HashMap<IncidentId, BulkRun>,
    last_scan: Option<Instant>,
    /// Answers and failures counted on each incident when last looked at: a change
    /// refreshes its card.
    outcomes: HashMap<IncidentId, (u64, u64)>,
}

/// A bulk answer being handed out.
struct BulkRun {
    cursor: Option<TicketId>,
    /// Members whose reply was queued and has not come back yet, by platform.
    in_flight: HashMap<TicketId, Platform>,
    /// Replies each platform may still take now (refilled at its pace).
    allowance: BTreeMap<Platform, f64>,
    filled_at: Instant,
    queued: u64,
    skipped: u64,
    saved_at: Instant,
}

impl BulkRun {
    fn new(cursor: Option<TicketId>) -> BulkRun {
        BulkRun {
            cursor,
            in_flight: HashMap::new(),
            allowance: BTreeMap::new(),
            filled_at: Instant::now(),
            queued: 0,
            skipped: 0,
            saved_at: Instant::now(),
        }
    }
}

impl StormDesk {
    /// Whether a ticket keeps its own card in a storm (`[storms] own_card_from`): one of
    /// that priority or above joins no incident (its card did not wait either).
    fn own_card(&self, ticket: &Ticket) -> bool {
        self.desk.routes().card_hold.own_card(ticket)
    }

    /// Work until `stop` flips; a store failure starts over from what the store holds.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let mut state = match self.start().await {
                Ok(state) => state,
                Err(e) => {
                    tracing::error!(error = %e, "storm desk could not read the store; trying again shortly");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            loop {
                if *stop.borrow() {
                    return;
                }
                if let Err(e) = self.round(&mut state).await {
                    tracing::error!(error = %e, "storm desk round failed; starting again from the store");
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                    _ = stop.changed() => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// The watch rebuilt: the open incidents, and the tickets of the window up to where
    /// the desk left off (each with the incident it is in).
    async fn start(&self) -> Result<Following, StoreError> {
        let now = self.clock.now();
        let rules = self.config.rules.clone();
        let cursor = match self.store.state(CURSOR_KEY).await? {
            Some(raw) => String::from_utf8_lossy(&raw).trim().parse().unwrap_or(0),
            // The first start: storms are about what arrives from now on.
            None => self.store.ticket_count().await? as u64,
        };
        let mut watch = StormWatch::new(rules.clone());
        let mut after = None;
        loop {
            let page = self.store.incidents_after(after, 200).await?;
            for i in &page {
                if i.is_open(now, rules.quiet) {
                    watch.reopen(i.id, &i.topic, i.last_member_at);
                }
            }
            match page.last() {
                Some(last) if page.len() == 200 => after = Some(last.id),
                _ => break,
            }
        }
        let mut after = None;
        loop {
            let facts = self
                .store
                .received_facts(
                    now - rules.window,
                    now + chrono::Duration::seconds(1),
                    after,
                    5000,
                )
                .await?;
            for f in &facts {
                if f.id.0 > cursor {
                    continue;
                }
                if let Some(t) = self.store.ticket(f.id).await? {
                    watch.remember(&Observed::of(&t, self.own_card(&t)));
                }
            }
            match facts.last() {
                Some(last) if facts.len() == 5000 => after = Some((last.opened_at, last.id)),
                _ => break,
            }
        }
        tracing::info!(
            after_ticket = cursor,
            open_incidents = watch.open_incidents(now).len(),
            "storm desk following new tickets"
        );
        Ok(Following {
            watch,
            cursor: TicketId(cursor),
            dirty: HashMap::new(),
            refreshed: HashMap::new(),
            runs: HashMap::new(),
            last_scan: None,
            outcomes: HashMap::new(),
        })
    }

    async fn round(&self, state: &mut Following) -> Result<(), StoreError> {
        let mut wrote = self.follow(state).await?;
        wrote |= self.refresh_cards(state).await?;
        wrote |= self.hand_out(state).await?;
        if wrote {
            self.store.flush().await?;
            self.wake_outbox.notify_one();
        }
        Ok(())
    }

    /// Decide about the tickets that arrived since the last round, and commit it.
    async fn follow(&self, state: &mut Following) -> Result<bool, StoreError> {
        let batch = self.store.tickets_after(Some(state.cursor), PAGE).await?;
        let Some(last) = batch.last().map(|t| t.id) else {
            return Ok(false);
        };
        let now = self.clock.now();
        let mut joins: BTreeMap<IncidentId, Vec<TicketId>> = BTreeMap::new();
        for t in &batch {
            match state.watch.observe(&Observed::of(t, self.own_card(t))) {
                Some(Verdict::Open {
                    group,
                    topic,
                    members,
                }) => {
                    let opened = self.open_incident(&topic, &members, now).await?;
                    tracing::info!(incident = %opened.id, members = opened.members, topic = opened.topic.kind(), "storm recognised: an incident");
                    state.watch.bind(&group, opened.id, &members, now);
                    // Its card renders what is there when it is posted.
                    state.refreshed.insert(opened.id, Instant::now());
                }
                Some(Verdict::Join { incident, ticket }) => {
                    joins.entry(incident).or_default().push(ticket)
                }
                None => {}
            }
        }
        for (id, tickets) in joins {
            let joined = self
                .store
                .change_incident(
                    Some(id),
                    &tickets,
                    &|stored, id, read| incident::join(stored, id, &Topic::Surge, read, now),
                    now,
                )
                .await?;
            if let Some(i) = joined {
                tracing::debug!(incident = %id, members = i.members, "tickets joined an incident");
                state.dirty.insert(id, ());
            }
        }
        self.store
            .set_state(CURSOR_KEY, last.0.to_string().as_bytes())
            .await?;
        state.cursor = last;
        Ok(true)
    }

    async fn open_incident(
        &self,
        topic: &Topic,
        members: &[TicketId],
        now: DateTime<Utc>,
    ) -> Result<Incident, StoreError> {
        self.store
            .change_incident(
                None,
                members,
                &|_, id, read| incident::join(None, id, topic, read, now),
                now,
            )
            .await?
            .ok_or_else(|| StoreError::Backend("a new incident was not written".into()))
    }

    /// Queue a refresh of each changed incident's cards, at most one per `update_every`.
    async fn refresh_cards(&self, state: &mut Following) -> Result<bool, StoreError> {
        let every = self.config.update_every;
        let due: Vec<IncidentId> = state
            .dirty
            .keys()
            .copied()
            .filter(|id| state.refreshed.get(id).is_none_or(|t| t.elapsed() >= every))
            .collect();
        let mut wrote = false;
        for id in due {
            state.dirty.remove(&id);
            state.refreshed.insert(id, Instant::now());
            // Without a card yet, the card is posted with what is there by then.
            let has_card = self
                .store
                .incident(id)
                .await?
                .is_some_and(|i| !i.cards.is_empty());
            if has_card {
                let now = self.clock.now();
                self.store
                    .queue_desk_job(
                        Effect::UpdateIncidentCards { incident: id },
                        &format!("storms:refreshed:{id}"),
                        now.to_rfc3339().as_bytes(),
                        now,
                    )
                    .await?;
                wrote = true;
            }
        }
        Ok(wrote)
    }

    /// Hand out the bulk answers going out: each member's reply committed with its job,
    /// at each platform's pace.
    async fn hand_out(&self, state: &mut Following) -> Result<bool, StoreError> {
        if state
            .last_scan
            .is_none_or(|t| t.elapsed() >= BULK_SCAN_EVERY)
        {
            state.last_scan = Some(Instant::now());
            let mut after = None;
            loop {
                let page = self.store.incidents_after(after, 200).await?;
                for i in &page {
                    let outcome = (i.answered, i.failed);
                    if !i.cards.is_empty()
                        && state
                            .outcomes
                            .insert(i.id, outcome)
                            .is_some_and(|o| o != outcome)
                    {
                        state.dirty.insert(i.id, ());
                    }
                    let running = i
                        .bulk
                        .as_ref()
                        .is_some_and(|b| b.state == BulkState::Running);
                    if running && !state.runs.contains_key(&i.id) {
                        let cursor = i.bulk.as_ref().and_then(|b| b.cursor);
                        state.runs.insert(i.id, BulkRun::new(cursor));
                    }
                }
                match page.last() {
                    Some(last) if page.len() == 200 => after = Some(last.id),
                    _ => break,
                }
            }
        }
        let mut wrote = false;
        let ids: Vec<IncidentId> = state.runs.keys().copied().collect();
        for id in ids {
            let Some(incident) = self.store.incident(id).await? else {
                state.runs.remove(&id);
                continue;
            };
            let Some(bulk) = incident
                .bulk
                .clone()
                .filter(|b| b.state == BulkState::Running)
            else {
                // Paused or cancelled: what was queued goes out; nothing more.
                state.runs.remove(&id);
                state.dirty.insert(id, ());
                continue;
            };
            let run = state
                .runs
                .get_mut(&id)
                .expect("a run of each listed incident");
            // Another replica's progress, or an agent's restart of a finished answer.
            if bulk.cursor > run.cursor {
                run.cursor = bulk.cursor;
            }
            let (finished, acted) = self.answer_members(&incident, &bulk, run).await?;
            wrote |= acted;
            let save = finished
                || (run.saved_at.elapsed() >= PROGRESS_EVERY && (run.queued + run.skipped) > 0);
            if save {
                if let Some(cursor) = run.cursor {
                    let (queued, skipped) = (run.queued, run.skipped);
                    let now = self.clock.now();
                    let saved = self
                        .store
                        .change_incident(
                            Some(id),
                            &[],
                            &|stored, _, _| {
                                incident::bulk_progress(
                                    stored?, cursor, queued, skipped, finished, now,
                                )
                            },
                            now,
                        )
                        .await?;
                    run.queued = 0;
                    run.skipped = 0;
                    run.saved_at = Instant::now();
                    wrote = true;
                    if saved.is_some() {
                        state.dirty.insert(id, ());
                    }
                }
                if finished {
                    tracing::info!(incident = %id, "bulk answer handed out to every member");
                    state.runs.remove(&id);
                }
            }
        }
        Ok(wrote)
    }

    /// Queue replies for the members after the run's cursor while the platforms take
    /// them: whether no member is left after it, and whether anything was written.
    async fn answer_members(
        &self,
        incident: &Incident,
        bulk: &incident::BulkAnswer,
        run: &mut BulkRun,
    ) -> Result<(bool, bool), StoreError> {
        // Replies that came back (published or failed) free their place.
        let waiting: Vec<TicketId> = run.in_flight.keys().copied().collect();
        for t in waiting {
            let done = self
                .store
                .ticket(t)
                .await?
                .is_none_or(|t| t.pending_reply().is_none());
            if done {
                run.in_flight.remove(&t);
            }
        }
        let elapsed = run.filled_at.elapsed().as_secs_f64();
        run.filled_at = Instant::now();
        for (platform, per_hour) in &self.config.bulk_per_hour {
            let a = run.allowance.entry(*platform).or_insert(1.0);
            *a = (*a + elapsed * per_hour / 3600.0).min((IN_FLIGHT as f64).max(1.0));
        }
        let x_spent = match self.x_budget {
            Some(limit) => crate::sources::x::spent_today(self.store.as_ref(), limit).await,
            None => false,
        };
        let brand = self.desk.brand().to_string();
        // The replies go out in the name of the agent who started the answer, judged an
        // agent then; a role that made them one is not kept with it (roles come with
        // each action), so they are admitted as themselves.
        let mut rules = self.desk.rules();
        rules
            .roster_mut(bulk.by.surface)
            .user_ids
            .insert(bulk.by.user_id.clone());
        // The answer was judged as a whole when it started (approved by another agent
        // where the policy asks): its replies do not wait one by one.
        rules.approvals = Default::default();
        let now = self.clock.now();
        let mut acted = false;
        loop {
            let members = self
                .store
                .incident_members(incident.id, run.cursor, MEMBERS_PAGE)
                .await?;
            if members.is_empty() {
                // Replies still on their way finish by themselves.
                return Ok((true, acted));
            }
            for member in members {
                let Some(ticket) = self.store.ticket(member).await? else {
                    run.cursor = Some(member);
                    continue;
                };
                let platform = ticket.mention.platform;
                let in_flight = run.in_flight.values().filter(|p| **p == platform).count();
                let allowance = run.allowance.get(&platform).copied().unwrap_or(1.0);
                let paced = self.config.bulk_per_hour.contains_key(&platform);
                if in_flight >= IN_FLIGHT
                    || (paced && allowance < 1.0)
                    || (platform == Platform::X && x_spent)
                {
                    // This platform waits; the members after it wait with it.
                    return Ok((false, acted));
                }
                let outcome = match bulk.text_for(&ticket, &brand) {
                    None => Err(crate::domain::Rejection::EmptyReply),
                    Some(text) => {
                        let own = !self.store.cards(member).await?.is_empty();
                        self.store
                            .act(member, &|t| {
                                incident::bulk_reply(
                                    t,
                                    incident.id,
                                    &text,
                                    &bulk.by,
                                    &rules,
                                    own,
                                    now,
                                )
                            })
                            .await?
                    }
                };
                acted = true;
                match outcome {
                    Ok(_) => {
                        run.queued += 1;
                        run.in_flight.insert(member, platform);
                        if let Some(a) = run.allowance.get_mut(&platform) {
                            *a -= 1.0;
                        }
                    }
                    Err(crate::domain::Rejection::AnsweredAlready)
                        if incident::reached_by(&ticket, bulk, &brand) =>
                    {
                        // Queued before a restart: counted as what it was.
                        run.queued += 1;
                    }
                    Err(why) => {
                        tracing::debug!(ticket = %member, incident = %incident.id, reason = %why, "bulk answer skips a member");
                        run.skipped += 1;
                    }
                }
                run.cursor = Some(member);
            }
        }
    }
}
