//! The outbox sender: carries out queued effects, at most one at a time per ticket and
//! lane (chat surfaces vs the social platform), so a card is posted before it is updated
//! while a slow Slack never delays a customer's reply. Before a send starts its attempt is
//! persisted; a job whose attempt count shows an earlier start looks for its own result
//! before acting again, so a crash at any point never doubles a card or a reply.
//! A job whose send failed, or panicked, waits out a backoff; after `max_attempts` tries
//! it is given up on: kept among the store's failed jobs, logged, counted on `/metrics`
//! and told to the team (on the card for a reply, in the channel otherwise). Its ticket
//! stays on the desk.

use crate::config::OutboxConfig;
use crate::domain::{CardRef, Effect, IncidentId, Platform, ReplyState, SystemEvent};
use crate::ports::DeliveryError;
use crate::ports::{with_urgency, Surface, Urgency};
use crate::ports::{Clock, SystemClock};
use crate::ports::{Job, SharedStore, StoreError};
use crate::ports::{Publisher, ReplyRequest};
use crate::runtime::failpoints::Failpoints;
use crate::runtime::supervisor::{panic_message, ComponentHealth, ComponentState};
use crate::wire::hints::{backoff, later};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long an idle sender waits before looking at the queue again (it is woken at once
/// when the desk queues something).
const IDLE: Duration = Duration::from_secs(30);

/// How long one or two free send slots wait for more to free before they are filled.
const TOP_UP_AFTER: Duration = Duration::from_millis(100);

pub struct OutboxSender {
    store: SharedStore,
    surfaces: Vec<Arc<dyn Surface>>,
    publishers: HashMap<Platform, Arc<dyn Publisher>>,
    wake: Arc<Notify>,
    config: OutboxConfig,
    failpoints: Failpoints,
    clock: Arc<dyn Clock>,
    /// Whom to page about a new ticket (the on-call agents), if paging is on.
    pager: Option<Arc<crate::runtime::desk::DeskService>>,
    /// Who this sender is among the replicas, for its claims on jobs.
    claimant: String,
    /// Mentions are translated for their cards (`[translation]`); None: never.
    translation: Option<Arc<crate::runtime::translation::Translation>>,
}

enum Outcome {
    Done(Option<SystemEvent>),
    Failed(DeliveryError),
    /// Another sender took the job over (this one was paused or cut off past its
    /// claim): nothing was sent, and the job is left to it.
    TakenOver,
}

/// Why a send stopped short.
enum Stop {
    Failed(DeliveryError),
    TakenOver,
}

impl From<DeliveryError> for Stop {
    fn from(e: DeliveryError) -> Self {
        Stop::Failed(e)
    }
}

impl OutboxSender {
    pub fn new(
        store: SharedStore,
        surfaces: Vec<Arc<dyn Surface>>,
        publishers: Vec<Arc<dyn Publisher>>,
        wake: Arc<Notify>,
        config: OutboxConfig,
    ) -> Self {
        OutboxSender {
            store,
            surfaces,
            publishers: publishers.into_iter().map(|p| (p.platform(), p)).collect(),
            wake,
            config,
            failpoints: Failpoints::default(),
            clock: Arc::new(SystemClock),
            pager: None,
            claimant: "local".to_string(),
            translation: None,
        }
    }

    /// Claim jobs as `claimant` (this replica's name), so replicas share the queue.
    pub fn with_claimant(mut self, claimant: impl Into<String>) -> Self {
        self.claimant = claimant.into();
        self
    }

    /// Whether this sender still holds `job`'s claim: checked right before each
    /// external call, so a sender paused past its claim leaves the job to whoever
    /// took it over.
    async fn still_mine(&self, job: &Job) -> Result<(), Stop> {
        match self
            .store
            .holds_claim(job, &self.claimant, self.config.claim_for)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Stop::TakenOver),
            Err(e) => Err(Stop::Failed(DeliveryError::retry(e.to_string()))),
        }
    }

    /// The desk's clock, for the history outcomes are recorded in.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Test hooks (see `failpoints`).
    pub fn with_failpoints(mut self, failpoints: Failpoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    /// Translate new tickets' mentions for their cards once the cards are up.
    pub fn with_translation(
        mut self,
        translation: Option<Arc<crate::runtime::translation::Translation>>,
    ) -> Self {
        self.translation = translation;
        self
    }

    /// Page the on-call agents in a new ticket's thread once its card is up.
    pub fn with_pager(mut self, desk: Arc<crate::runtime::desk::DeskService>) -> Self {
        self.pager = Some(desk);
        self
    }

    /// Work until `shutdown` flips; sends in flight are finished first. Up to
    /// `concurrency` sends run at once, and a free slot is filled as soon as it frees:
    /// one slow send (a platform that does not answer) never holds up the others.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut running: JoinSet<Outcome> = JoinSet::new();
        let mut sending: HashMap<tokio::task::Id, Job> = HashMap::new();
        // Claims are renewed while their sends run, well inside their expiry.
        let mut heartbeat = tokio::time::interval(self.config.claim_for / 3);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut look_at = Instant::now();
        // Free slots are filled a few at a time (one claim and one flush for several
        // sends), or after a short while when only one or two are free.
        let top_up = (self.config.concurrency / 4).max(1);
        let mut last_claim = Instant::now();
        loop {
            let stopping = *shutdown.borrow();
            if stopping && running.is_empty() {
                tracing::info!("outbox sender stopped; unsent jobs stay queued for the next start");
                return;
            }
            let free = self.config.concurrency.saturating_sub(running.len());
            let worth =
                free >= top_up || running.is_empty() || last_claim.elapsed() >= TOP_UP_AFTER;
            if !stopping && free > 0 && worth && Instant::now() >= look_at {
                last_claim = Instant::now();
                look_at = match self.claim(free).await {
                    Ok((batch, wait)) => {
                        let full = batch.len() == free;
                        for job in batch {
                            let me = self.clone();
                            let sent = job.clone();
                            let task = running.spawn(async move { me.execute(&sent).await });
                            sending.insert(task.id(), job);
                        }
                        // Nothing more to take now: look again when something is due,
                        // a job finishes, or the desk queues more.
                        if full {
                            Instant::now()
                        } else {
                            Instant::now() + wait.unwrap_or(IDLE)
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "outbox could not take jobs; retrying shortly");
                        Instant::now() + Duration::from_secs(1)
                    }
                };
                continue;
            }
            let wake_at = if worth {
                look_at
            } else {
                look_at.max(last_claim + TOP_UP_AFTER)
            };
            tokio::select! {
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    self.finished(joined, &mut sending).await;
                    // Settle whatever else is done before taking more.
                    while let Some(joined) = running.try_join_next_with_id() {
                        self.finished(joined, &mut sending).await;
                    }
                    // What was settled is flushed with the next claim (before that
                    // claim's sends start); with nothing left running, now.
                    if running.is_empty() {
                        if let Err(e) = self.store.flush().await {
                            tracing::error!(error = %e, "outbox could not flush what it settled");
                        }
                    }
                    // The ticket's next job may be free to go now.
                    look_at = Instant::now();
                }
                _ = heartbeat.tick(), if !running.is_empty() => {
                    if let Err(e) = self.store.renew_claims(&self.claimant, self.config.claim_for).await {
                        tracing::warn!(error = %e, "could not renew the outbox's claims");
                    }
                }
                _ = self.wake.notified() => look_at = Instant::now(),
                _ = tokio::time::sleep_until(wake_at), if !stopping && free > 0 => {}
                _ = shutdown.changed(), if !stopping => {}
            }
        }
    }

    /// Claim up to `limit` jobs, their attempts made durable before any send starts.
    /// With none to take: how long until one is due, as far as this sender can tell.
    async fn claim(&self, limit: usize) -> Result<(Vec<Job>, Option<Duration>), StoreError> {
        let now = Utc::now();
        // Claimed in the store, so replicas sharing it never run one job twice.
        let claimed = self
            .store
            .claim_jobs(&self.claimant, limit, now, self.config.claim_for)
            .await?;
        if claimed.jobs.is_empty() {
            let wait = claimed
                .next_due
                .map(|t| (t - now).to_std().unwrap_or_default());
            // Jobs another sender holds (or held, and died) come due when its claim
            // runs out: look again then.
            let pending = self.store.pending_job_count().await? > 0;
            let recheck = pending.then_some(self.config.claim_for);
            let wait = match (wait, recheck) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return Ok((Vec::new(), wait));
        }
        self.store.flush().await?;
        self.maybe_stop_here(&claimed.jobs).await;
        Ok((claimed.jobs, None))
    }

    /// Settle one finished send (a panic in it is a failure of that job alone).
    async fn finished(
        &self,
        joined: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
        sending: &mut HashMap<tokio::task::Id, Job>,
    ) {
        let (job, outcome) = match joined {
            Ok((task, outcome)) => (sending.remove(&task), outcome),
            Err(e) => {
                let job = sending.remove(&e.id());
                let why = if e.is_panic() {
                    format!("the send panicked: {}", panic_message(&*e.into_panic()))
                } else {
                    "the send was cancelled".to_string()
                };
                if let Some(job) = &job {
                    tracing::error!(ticket = %job.ticket, job = job.id, attempt = job.attempts, error = %why, "outbox job panicked");
                }
                (job, Outcome::Failed(DeliveryError::retry(why)))
            }
        };
        if let Some(job) = job {
            let (ticket, id) = (job.ticket, job.id);
            if let Err(e) = self.settle(job, outcome).await {
                // Its claim runs out and the job is taken again (looking first).
                tracing::error!(ticket = %ticket, job = id, error = %e, "could not record a send's outcome; the job will be tried again");
            }
        }
    }

    async fn maybe_stop_here(&self, batch: &[Job]) {
        for (point, effect) in [
            ("before-publish", "publish-reply"),
            ("before-post-card", "post-cards"),
        ] {
            if self.failpoints.is_on(point)
                && batch.iter().any(|j| effect_name(&j.effect) == effect)
            {
                eprintln!("FAILPOINT {point} reached");
                std::future::pending::<()>().await;
            }
        }
    }

    async fn settle(&self, job: Job, outcome: Outcome) -> Result<(), StoreError> {
        if matches!(outcome, Outcome::TakenOver) {
            tracing::warn!(ticket = %job.ticket, job = job.id, "job taken over by another sender; left to it");
            return Ok(());
        }
        if let Outcome::Failed(e) = &outcome {
            // Bounded: the last try's failure, whatever its kind, gives the job up.
            let refused_card = matches!(
                (e, &job.effect),
                (
                    DeliveryError::Permanent { .. },
                    Effect::PostCards | Effect::PostIncidentCard { .. }
                )
            );
            let retrying = matches!(e, DeliveryError::Retry { .. }) || refused_card;
            if retrying && job.attempts >= self.config.max_attempts {
                return self.give_up(job, &e.to_string()).await;
            }
        }
        self.settle_try(job, outcome).await
    }

    /// Stop trying a job and tell the team; the ticket and its mention stay on the desk.
    async fn give_up(&self, job: Job, reason: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let tries = job.attempts;
        let what = effect_name(&job.effect);
        tracing::error!(ticket = %job.ticket, job = job.id, effect = what, tries, %reason, "outbox gave up on a job");
        if let Effect::PublishReply { seq } = job.effect {
            // A reply's failure is shown on its card, where the agent who wrote it looks.
            let reason = format!("gave up after {tries} tries: {reason}");
            self.store.give_up(&job, &reason, now).await?;
            return self
                .store
                .complete(&job, Some(SystemEvent::ReplyFailed { seq, reason }), now)
                .await;
        }
        self.store.give_up(&job, reason, now).await?;
        if job.effect == Effect::TranslateMention {
            // The card shows the mention as written; with the service down, telling the
            // channel about every ticket would flood it. Logged and counted on /metrics.
            return Ok(());
        }
        let text = match job.effect {
            Effect::PostCards => format!(
                "The card of ticket {} could not be posted after {tries} tries ({reason}). \
                 The mention is kept: `/mentions list` shows it.",
                job.ticket
            ),
            Effect::Digest(_) => {
                format!(
                    "The shift hand-off digest could not be posted after {tries} tries ({reason})."
                )
            }
            Effect::PostIncidentCard { incident } => format!(
                "The card of incident {incident} could not be posted after {tries} tries ({reason}). \
                 Its members are kept: `/mentions incident {incident}` lists them."
            ),
            _ => format!(
                "A {} for ticket {} could not be delivered after {tries} tries ({reason}).",
                what.replace('-', " "),
                job.ticket
            ),
        };
        for surface in &self.surfaces {
            if let Err(e) = surface.announce(&text).await {
                tracing::warn!(surface = ?surface.kind(), error = %e, "could not tell the team that a job was given up");
            }
        }
        Ok(())
    }

    async fn settle_try(&self, job: Job, outcome: Outcome) -> Result<(), StoreError> {
        // Outcomes are desk history (the desk's clock); retry times are wall-clock.
        let now = self.clock.now();
        let wall = Utc::now();
        match outcome {
            Outcome::TakenOver => Ok(()),
            Outcome::Done(event) => {
                let mut more = Vec::new();
                let card_up = matches!(
                    (&job.effect, &event),
                    (Effect::PostCards, Some(SystemEvent::CardPosted))
                );
                if card_up && (self.pager.is_some() || self.translation.is_some()) {
                    if let Some(t) = self.store.ticket(job.ticket).await? {
                        if let Some(desk) = &self.pager {
                            more.extend(desk.paging(&t, now).await);
                        }
                        // The card is up first; its translation follows in its own lane.
                        if self.translation.as_ref().is_some_and(|tr| {
                            crate::domain::translation::wants_translation(&t, tr.team_language())
                        }) {
                            more.push(Effect::TranslateMention);
                        }
                    }
                }
                self.store.complete_with(&job, event, &more, now).await
            }
            Outcome::Failed(DeliveryError::Retry { after, reason }) => {
                let wait = backoff(
                    job.attempts.saturating_sub(1),
                    after,
                    self.config.max_backoff,
                );
                tracing::warn!(ticket = %job.ticket, job = job.id, attempt = job.attempts, retry_in_ms = wait.as_millis() as u64, %reason, "send failed; will retry");
                self.store.defer(&job, later(wall, wait), &reason).await
            }
            Outcome::Failed(
                DeliveryError::Permanent { reason } | DeliveryError::Gone { reason },
            ) => match job.effect {
                Effect::PublishReply { seq } => {
                    tracing::error!(ticket = %job.ticket, %reason, "reply refused by the platform; shown on the card");
                    self.store
                        .complete(&job, Some(SystemEvent::ReplyFailed { seq, reason }), now)
                        .await
                }
                Effect::PostCards | Effect::PostIncidentCard { .. } => {
                    // A channel fixed in config may still let it through: try again at
                    // the longest backoff, up to `max_attempts` (see `settle`).
                    tracing::error!(ticket = %job.ticket, attempt = job.attempts, %reason, "card cannot be posted; will try again");
                    self.store
                        .defer(&job, later(wall, self.config.max_backoff), &reason)
                        .await
                }
                Effect::TranslateMention => {
                    tracing::warn!(ticket = %job.ticket, %reason, "the mention could not be translated; its card shows it as written");
                    self.store.complete(&job, None, now).await
                }
                // Per-card refusals are handled where they happen; this is the rest.
                _ => {
                    tracing::warn!(ticket = %job.ticket, %reason, "card update or note refused; skipped");
                    self.store.complete(&job, None, now).await
                }
            },
        }
    }

    async fn execute(&self, job: &Job) -> Outcome {
        // Where the surfaces' paces make calls wait, new cards go first.
        let urgency = match job.effect {
            Effect::PostCards | Effect::PostIncidentCard { .. } => Urgency::NewCard,
            Effect::UpdateCards | Effect::UpdateIncidentCards { .. } | Effect::TranslateMention => {
                Urgency::Refresh
            }
            Effect::ThreadNote(_)
            | Effect::PublishReply { .. }
            | Effect::Digest(_)
            | Effect::IncidentNote { .. } => Urgency::Note,
        };
        match with_urgency(urgency, self.try_execute(job)).await {
            Ok(ev) => Outcome::Done(ev),
            Err(Stop::Failed(e)) => Outcome::Failed(e),
            Err(Stop::TakenOver) => Outcome::TakenOver,
        }
    }

    async fn try_execute(&self, job: &Job) -> Result<Option<SystemEvent>, Stop> {
        if self
            .failpoints
            .is_on(&format!("panic-job:{}", effect_name(&job.effect)))
        {
            panic!("failpoint: panic in a {} job", effect_name(&job.effect));
        }
        self.still_mine(job).await?;
        let store_err = |e: StoreError| DeliveryError::retry(e.to_string());
        let maybe_done = job.attempts > 1;
        if let Effect::Digest(digest) = &job.effect {
            let mut retry = None;
            for surface in &self.surfaces {
                match surface
                    .post_digest(digest, maybe_done, job.created_at)
                    .await
                {
                    Ok(()) => {}
                    Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                        tracing::error!(surface = ?surface.kind(), %reason, "hand-off digest refused");
                    }
                    Err(e) => retry = Some(e),
                }
            }
            return retry.map_or(Ok(None), |e| Err(e.into()));
        }
        match &job.effect {
            Effect::PostIncidentCard { incident } => {
                return self.post_incident_cards(*incident, maybe_done).await;
            }
            Effect::UpdateIncidentCards { incident } => {
                return self.update_incident_cards(*incident).await;
            }
            Effect::IncidentNote { incident, note } => {
                return self
                    .incident_note(*incident, note, maybe_done, job.created_at)
                    .await;
            }
            _ => {}
        }
        let Some(ticket) = self.store.ticket(job.ticket).await.map_err(store_err)? else {
            return Ok(None);
        };
        match &job.effect {
            Effect::PostCards if ticket.incident.is_some() => {
                // A storm's member is shown on its incident's card, not on one of its own.
                tracing::debug!(ticket = %ticket.id, incident = ?ticket.incident, "no card of its own: the ticket is in an incident");
                Ok(None)
            }
            Effect::PostCards => {
                let existing = self.store.cards(ticket.id).await.map_err(store_err)?;
                let mut posted_somewhere = !existing.is_empty();
                let mut refused = Vec::new();
                let mut retry = None;
                let customer = self.customer(&ticket).await?;
                for surface in &self.surfaces {
                    if existing.iter().any(|c| c.surface == surface.kind()) {
                        continue;
                    }
                    match surface.post_card_for(&ticket, &customer, maybe_done).await {
                        Ok(card) => {
                            self.store
                                .save_card(ticket.id, &card)
                                .await
                                .map_err(store_err)?;
                            posted_somewhere = true;
                            tracing::info!(ticket = %ticket.id, surface = ?card.surface, message = %card.message_id, "card posted");
                        }
                        Err(
                            DeliveryError::Permanent { reason } | DeliveryError::Gone { reason },
                        ) => refused.push((surface.kind(), reason)),
                        Err(e) => retry = Some(e),
                    }
                }
                // Cards already posted are saved: a retry only tries the missing ones.
                if let Some(e) = retry {
                    return Err(e.into());
                }
                if !refused.is_empty() {
                    if !posted_somewhere {
                        let reasons: Vec<String> = refused.into_iter().map(|(_, r)| r).collect();
                        return Err(DeliveryError::Permanent {
                            reason: reasons.join("; "),
                        }
                        .into());
                    }
                    for (surface, reason) in refused {
                        tracing::error!(ticket = %ticket.id, ?surface, %reason, "card could not be posted on one surface; told the others");
                        self.store
                            .report_lost_card(
                                ticket.id,
                                surface,
                                &format!("could not be posted: {reason}"),
                                self.clock.now(),
                            )
                            .await
                            .map_err(store_err)?;
                    }
                }
                Ok(Some(SystemEvent::CardPosted))
            }
            Effect::UpdateCards | Effect::ThreadNote(_) => {
                let mut retry = None;
                // A card is re-rendered whole: with who the customer is, as when posted.
                let customer = match &job.effect {
                    Effect::UpdateCards => self.customer(&ticket).await?,
                    _ => Default::default(),
                };
                for card in self.store.cards(ticket.id).await.map_err(store_err)? {
                    let Some(surface) = self.surfaces.iter().find(|s| s.kind() == card.surface)
                    else {
                        continue;
                    };
                    let sent = match &job.effect {
                        Effect::ThreadNote(note) => {
                            surface
                                .post_note(&card, note, maybe_done, job.created_at)
                                .await
                        }
                        _ => surface.update_card_for(&card, &ticket, &customer).await,
                    };
                    match sent {
                        Ok(()) => {}
                        // Refused for good, but the card is still there (a revoked token,
                        // a permission, an edit Slack will not take): the next change
                        // renders the whole card again, so nothing is forgotten.
                        Err(DeliveryError::Permanent { reason }) => {
                            tracing::error!(ticket = %ticket.id, surface = ?card.surface, %reason, "card update or thread line refused; the card is kept and re-rendered on the next change");
                        }
                        // The message or channel is gone: stop syncing it, tell the others.
                        Err(DeliveryError::Gone { reason }) => {
                            tracing::error!(ticket = %ticket.id, surface = ?card.surface, %reason, "card is gone; reported on the other surfaces");
                            self.store
                                .report_lost_card(
                                    ticket.id,
                                    card.surface,
                                    &reason,
                                    self.clock.now(),
                                )
                                .await
                                .map_err(store_err)?;
                        }
                        Err(e) => retry = Some(e),
                    }
                }
                match retry {
                    Some(e) => Err(e.into()),
                    None => Ok(None),
                }
            }
            Effect::Digest(_)
            | Effect::PostIncidentCard { .. }
            | Effect::UpdateIncidentCards { .. }
            | Effect::IncidentNote { .. } => Ok(None),
            Effect::TranslateMention => self.translate_mention(job, &ticket).await,
            Effect::PublishReply { seq } => {
                let Some(reply) = ticket.reply(*seq) else {
                    return Ok(None);
                };
                if !matches!(reply.state, ReplyState::Pending) {
                    return Ok(None);
                }
                let request = ReplyRequest {
                    ticket: ticket.id,
                    seq: *seq,
                    text: reply.text.clone(),
                    visibility: reply.visibility,
                    private: reply.private,
                    in_reply_to: ticket.mention.remote_id.clone(),
                    reply_context: ticket.mention.reply_context.clone(),
                    author_id: ticket.mention.author.id.clone(),
                    author_handle: ticket.mention.author.handle.clone(),
                    idempotency_key: format!(
                        "mentionbridge-{}-{}-{}",
                        ticket.mention.account, ticket.mention.remote_id, seq
                    ),
                    maybe_sent: maybe_done,
                    queued_at: job.created_at,
                    earlier_replies: ticket
                        .replies
                        .iter()
                        .filter_map(|r| match &r.state {
                            ReplyState::Published { remote_id, .. } => Some(remote_id.clone()),
                            _ => None,
                        })
                        .collect(),
                };
                let Some(publisher) = self.publishers.get(&ticket.mention.platform) else {
                    return Ok(Some(SystemEvent::ReplyFailed {
                        seq: *seq,
                        reason: format!(
                            "no {} account is configured to publish from",
                            ticket.mention.network_label()
                        ),
                    }));
                };
                // A customer's reply is the one effect that must never happen twice:
                // the claim is checked once more right before it goes out.
                self.still_mine(job).await?;
                match publisher.publish(&request).await {
                    Ok(p) => {
                        tracing::info!(ticket = %ticket.id, remote_id = %p.remote_id, "reply published");
                        Ok(Some(SystemEvent::ReplyPublished {
                            seq: *seq,
                            remote_id: p.remote_id,
                            url: p.url,
                        }))
                    }
                    Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                        Ok(Some(SystemEvent::ReplyFailed { seq: *seq, reason }))
                    }
                    Err(retry) => Err(retry.into()),
                }
            }
        }
    }
}

impl OutboxSender {
    /// Who the ticket's customer is, for its cards: their tickets before this one on
    /// the same network, and the team's notes about them.
    async fn customer(
        &self,
        ticket: &crate::domain::Ticket,
    ) -> Result<crate::domain::customer::Customer, Stop> {
        let key = crate::domain::priority::author_key(&ticket.mention);
        crate::runtime::customer::customer_of(self.store.as_ref(), &key, ticket.id)
            .await
            .map_err(|e| DeliveryError::retry(e.to_string()).into())
    }

    /// Translate the mention and keep the translation on its ticket, which refreshes the
    /// card. A ticket that has one already (a retry after a crash), or no longer needs
    /// one, is left alone: the service is asked once per ticket.
    async fn translate_mention(
        &self,
        job: &Job,
        ticket: &crate::domain::Ticket,
    ) -> Result<Option<SystemEvent>, Stop> {
        let Some(translation) = &self.translation else {
            return Ok(None);
        };
        if !crate::domain::translation::wants_translation(ticket, translation.team_language()) {
            return Ok(None);
        }
        self.still_mine(job).await?;
        let now = self.clock.now();
        let translated = translation
            .of_mention(ticket, now)
            .await
            .map_err(crate::runtime::translation::delivery_error)?;
        let from = translated.from.clone().unwrap_or_default();
        self.store
            .transition(ticket.id, &|t| {
                crate::domain::translation::record_translation(t, translated.clone(), now)
            })
            .await
            .map_err(|e| DeliveryError::retry(e.to_string()))?;
        tracing::info!(ticket = %ticket.id, service = translation.service(), from = %from, "mention translated for its card");
        Ok(None)
    }
}

/// An effect's name in logs, failpoints and metrics.
fn effect_name(effect: &Effect) -> &'static str {
    match effect {
        Effect::PostCards => "post-cards",
        Effect::UpdateCards => "update-cards",
        Effect::ThreadNote(_) => "thread-note",
        Effect::PublishReply { .. } => "publish-reply",
        Effect::Digest(_) => "digest",
        Effect::PostIncidentCard { .. } => "post-incident-card",
        Effect::UpdateIncidentCards { .. } => "update-incident-cards",
        Effect::IncidentNote { .. } => "incident-note",
        Effect::TranslateMention => "translate-mention",
    }
}

impl OutboxSender {
    /// An incident's card on every surface that has none yet; once one is up, the
    /// on-call agents are paged in its thread, once for the whole incident.
    async fn post_incident_cards(
        &self,
        id: IncidentId,
        maybe_done: bool,
    ) -> Result<Option<SystemEvent>, Stop> {
        let store_err = |e: StoreError| DeliveryError::retry(e.to_string());
        let Some(incident) = self.store.incident(id).await.map_err(store_err)? else {
            return Ok(None);
        };
        let mut posted = Vec::new();
        let mut retry = None;
        for surface in &self.surfaces {
            if incident.cards.iter().any(|c| c.surface == surface.kind()) {
                continue;
            }
            match surface.post_incident_card(&incident, maybe_done).await {
                Ok(card) => {
                    tracing::info!(incident = %id, surface = ?card.surface, message = %card.message_id, "incident card posted");
                    posted.push(card);
                }
                Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                    tracing::error!(incident = %id, surface = ?surface.kind(), %reason, "incident card refused");
                }
                Err(e) => retry = Some(e),
            }
        }
        let now = self.clock.now();
        let has_card = !posted.is_empty() || !incident.cards.is_empty();
        if has_card && (!posted.is_empty() || !incident.paged) {
            let page = match &self.pager {
                Some(desk) => desk.incident_paging(&incident, now).await,
                None => None,
            };
            let cards = posted.clone();
            self.store
                .change_incident(
                    Some(id),
                    &[],
                    &|stored, _, _| {
                        Some(crate::domain::incident::cards_posted(
                            stored?,
                            cards.clone(),
                            page.clone(),
                        ))
                    },
                    now,
                )
                .await
                .map_err(store_err)?;
        }
        match retry {
            Some(e) => Err(e.into()),
            None if !has_card => Err(DeliveryError::Permanent {
                reason: format!("no surface took the card of incident {id}"),
            }
            .into()),
            None => Ok(None),
        }
    }

    /// The incident, and each of its cards with the surface it is on (`None`: no such
    /// incident).
    async fn incident_cards(
        &self,
        id: IncidentId,
    ) -> Result<
        Option<(
            crate::domain::incident::Incident,
            Vec<(&Arc<dyn Surface>, CardRef)>,
        )>,
        Stop,
    > {
        let store_err = |e: StoreError| DeliveryError::retry(e.to_string());
        let Some(incident) = self.store.incident(id).await.map_err(store_err)? else {
            return Ok(None);
        };
        let cards = incident
            .cards
            .iter()
            .filter_map(|card| {
                let surface = self.surfaces.iter().find(|s| s.kind() == card.surface)?;
                Some((surface, card.clone()))
            })
            .collect();
        Ok(Some((incident, cards)))
    }

    /// Every card of the incident rendered again from the incident as it is now.
    async fn update_incident_cards(&self, id: IncidentId) -> Result<Option<SystemEvent>, Stop> {
        let store_err = |e: StoreError| DeliveryError::retry(e.to_string());
        let Some((incident, cards)) = self.incident_cards(id).await? else {
            return Ok(None);
        };
        let mut retry = None;
        for (surface, card) in &cards {
            match surface.update_incident_card(card, &incident).await {
                Ok(()) => {}
                Err(DeliveryError::Permanent { reason }) => {
                    tracing::error!(incident = %id, surface = ?card.surface, %reason, "incident card update refused; re-rendered on the next change");
                }
                Err(DeliveryError::Gone { reason }) => {
                    tracing::error!(incident = %id, surface = ?card.surface, %reason, "incident card is gone; no longer kept in sync");
                    let surface = card.surface;
                    self.store
                        .change_incident(
                            Some(id),
                            &[],
                            &|stored, _, _| {
                                Some(crate::domain::incident::card_lost(stored?, surface))
                            },
                            self.clock.now(),
                        )
                        .await
                        .map_err(store_err)?;
                }
                Err(e) => retry = Some(e),
            }
        }
        retry.map_or(Ok(None), |e| Err(e.into()))
    }

    /// A line in the thread of each of the incident's cards.
    async fn incident_note(
        &self,
        id: IncidentId,
        note: &crate::domain::Note,
        maybe_done: bool,
        queued_at: chrono::DateTime<Utc>,
    ) -> Result<Option<SystemEvent>, Stop> {
        let Some((_, cards)) = self.incident_cards(id).await? else {
            return Ok(None);
        };
        let mut retry = None;
        for (surface, card) in &cards {
            match surface.post_note(card, note, maybe_done, queued_at).await {
                Ok(()) => {}
                Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                    tracing::error!(incident = %id, surface = ?card.surface, %reason, "incident thread line refused");
                }
                Err(e) => retry = Some(e),
            }
        }
        retry.map_or(Ok(None), |e| Err(e.into()))
    }
}

/// The outbox's and the supervisor's lines for `/metrics`: jobs given up on (kept in
/// the store, so the count survives restarts) and each component's state.
pub fn exposition(
    failed: &[Job],
    components: &std::collections::BTreeMap<String, ComponentHealth>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str(
        "# HELP mentionbridge_outbox_jobs_failed Outbox jobs given up on after their last try.\n",
    );
    out.push_str("# TYPE mentionbridge_outbox_jobs_failed gauge\n");
    for effect in [
        "post-cards",
        "update-cards",
        "thread-note",
        "publish-reply",
        "digest",
        "post-incident-card",
        "update-incident-cards",
        "incident-note",
        "translate-mention",
    ] {
        let n = failed
            .iter()
            .filter(|j| effect_name(&j.effect) == effect)
            .count();
        let _ = writeln!(
            out,
            "mentionbridge_outbox_jobs_failed{{effect=\"{effect}\"}} {n}"
        );
    }
    out.push_str("# HELP mentionbridge_component_up 1 while a supervised component runs.\n");
    out.push_str("# TYPE mentionbridge_component_up gauge\n");
    for (name, c) in components {
        let up = u8::from(c.state == ComponentState::Running);
        let _ = writeln!(
            out,
            "mentionbridge_component_up{{component=\"{name}\"}} {up}"
        );
    }
    out.push_str(
        "# HELP mentionbridge_component_restarts_total Restarts of a supervised component.\n",
    );
    out.push_str("# TYPE mentionbridge_component_restarts_total counter\n");
    for (name, c) in components {
        let _ = writeln!(
            out,
            "mentionbridge_component_restarts_total{{component=\"{name}\"}} {}",
            c.restarts
        );
    }
    out
}
