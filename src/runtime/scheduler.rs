//! The scheduler: runs the SLA clocks of open tickets (warnings, breaches, escalations,
//! idle-claim reminders and releases), acknowledges mentions that arrive while nobody is
//! on shift, and posts the hand-off digest when the people on call change. Every step is
//! committed to the store (with its outbox jobs) before anything is sent, and what was
//! done is recorded on the ticket or in desk state, so a restart neither repeats nor
//! skips a step. A round reads only the tickets the store's next-due index says are due
//! (a quiet round reads the index alone), at most [`ROUND_LIMIT`] of them, and the next
//! round follows at once while more are due. It sleeps until the next step is due,
//! never more than 30 s.

use crate::domain::handoff;
use crate::domain::oncall::Schedule;
use crate::domain::routes::{OffHoursAck, Route};
use crate::domain::sla::{
    acknowledge_off_hours, apply_steps, due_steps, first_response_due, next_check,
    off_hours_considered, release_at_handoff,
};
use crate::domain::{AgentRef, Effect, SurfaceKind, Ticket};
use crate::ports::{AgentDesk, Clock};
use crate::ports::{SharedStore, StoreError};
use crate::runtime::desk::DeskService;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Desk state: the last shift hand-off a digest was queued for.
const LAST_HANDOFF: &str = "handoff:last";

/// The most due tickets one round takes on; more are taken by the next round, at once.
pub const ROUND_LIMIT: usize = 500;

pub struct Scheduler {
    pub store: SharedStore,
    pub desk: Arc<DeskService>,
    pub wake_outbox: Arc<Notify>,
    pub brand: String,
    pub handoff_digest: bool,
    pub release_claims_at_handoff: bool,
    /// The surface whose name the desk's own replies are recorded under.
    pub surface: SurfaceKind,
    pub clock: Arc<dyn Clock>,
}

impl Scheduler {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // A test drives the clock by hand: look at it often instead of trusting sleeps.
        let longest = if self.clock.is_manual() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(30)
        };
        loop {
            let now = self.clock.now();
            let next = match self.tick(now).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler round failed; retrying shortly");
                    None
                }
            };
            let wait = next
                .map(|t| (t - now).to_std().unwrap_or_default())
                .unwrap_or(longest)
                .min(longest);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// One round at `now`; returns when the next step is due, if any is pending.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut next: Option<DateTime<Utc>> = None;
        let mut changed = false;
        let mut earliest = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: DateTime<Utc>| n.min(t)));
            }
        };
        // One round reads the schedule (with chat's overrides) once, whatever the number
        // of open tickets.
        let schedule = self.desk.schedule().await;
        let routes = self.desk.routes();
        let due = self.store.due_tickets(now, ROUND_LIMIT).await?;
        earliest(due.next);
        for ticket in due.tickets {
            let route = routes.of(&ticket);
            changed |= self
                .maybe_acknowledge(&ticket, route, &schedule, now)
                .await?;
            let mut current = ticket;
            if !due_steps(&current, &current.sla, &route.sla, now).is_empty() {
                let on_duty = route.schedule(&schedule).on_call(now);
                let step = |t: &Ticket| {
                    apply_steps(t, &due_steps(t, &t.sla, &route.sla, now), &on_duty, now)
                };
                if let Some(after) = self.store.transition(current.id, &step).await? {
                    tracing::info!(ticket = %after.id, route = %route.name, "SLA step taken");
                    current = after;
                    changed = true;
                }
            }
            earliest(next_check(&current, &current.sla, &route.sla, now));
        }
        if self.handoff_digest {
            let (queued, next_edge) = self.handoff(&schedule, now).await?;
            changed |= queued;
            earliest(next_edge);
        }
        if changed {
            self.store.flush().await?;
            self.wake_outbox.notify_one();
        }
        Ok(next)
    }

    /// Tell the customer when to expect an answer, when the ticket's route says it is
    /// owed one (see `Route::off_hours_ack`). Once per conversation (recorded on the
    /// ticket); a ticket found not to be owed one is marked as weighed, so it is not due
    /// for it again.
    async fn maybe_acknowledge(
        &self,
        ticket: &Ticket,
        route: &Route,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if route.off_hours_ack.is_none() || ticket.sla.off_hours_considered {
            return Ok(false);
        }
        let rules = self.desk.text_rules(ticket.mention.platform);
        let text = match route.off_hours_ack(ticket, schedule, rules, &self.brand, now) {
            None => return self.weighed(ticket).await,
            Some(OffHoursAck::TooLong) => {
                tracing::warn!(ticket = %ticket.id, route = %route.name, "the off-hours acknowledgement is too long for the platform; not sent");
                return self.weighed(ticket).await;
            }
            Some(OffHoursAck::Send(text)) => text,
        };
        let by = AgentRef {
            surface: self.surface,
            user_id: String::new(),
            name: "mentionbridge (off-hours)".into(),
            roles: Vec::new(),
        };
        let done = self
            .store
            .transition(ticket.id, &|t| {
                acknowledge_off_hours(t, &text, by.clone(), now)
            })
            .await?
            .is_some();
        if done {
            tracing::info!(ticket = %ticket.id, route = %route.name, "off-hours acknowledgement queued");
            return Ok(true);
        }
        self.weighed(ticket).await
    }

    /// The off-hours acknowledgement of `ticket` was weighed and is not to be sent.
    async fn weighed(&self, ticket: &Ticket) -> Result<bool, StoreError> {
        Ok(self
            .store
            .mark(ticket.id, &off_hours_considered)
            .await?
            .is_some())
    }

    /// Queue the digest for the latest change of the people on call since the last one
    /// handled (one digest, however many changes a downtime skipped). Returns whether
    /// one was queued and when the next change is.
    async fn handoff(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(bool, Option<DateTime<Utc>>), StoreError> {
        if schedule.rotations.is_empty() && schedule.overrides.is_empty() {
            return Ok((false, None));
        }
        let last = self
            .store
            .state(LAST_HANDOFF)
            .await?
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc));
        let Some(last) = last else {
            // First start: nothing to hand over yet.
            self.store
                .set_state(LAST_HANDOFF, now.to_rfc3339().as_bytes())
                .await?;
            return Ok((false, schedule.next_change(now)));
        };
        let Some(handoff::Handoff { since, at }) = handoff::latest_handoff(schedule, last, now)
        else {
            return Ok((false, schedule.next_change(now)));
        };
        let (before, after) = handoff::sides(schedule, at);
        let routes = self.desk.routes();
        let open = self.store.open_tickets().await?;
        let answered = self.store.first_answers_between(since, at).await?;
        let mut digest = handoff::digest(&open, answered, &before, &after, since, at, |t| {
            first_response_due(t, &routes.of(t).sla)
        });
        if self.release_claims_at_handoff {
            for (id, _) in &digest.held_by_outgoing {
                if self
                    .store
                    .transition(*id, &|t| release_at_handoff(t, &after, now))
                    .await?
                    .is_some()
                {
                    digest.released.push(*id);
                }
            }
        }
        tracing::info!(at = %at, waiting = digest.waiting, breaching = digest.breaching.len(), "shift hand-off digest queued");
        self.store
            .queue_desk_job(
                Effect::Digest(digest),
                LAST_HANDOFF,
                at.to_rfc3339().as_bytes(),
                now,
            )
            .await?;
        Ok((true, schedule.next_change(now)))
    }
}
