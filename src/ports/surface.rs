//! The team chat surfaces as the desk reaches them: a `Surface` posts cards and keeps
//! them in sync with their tickets.

use super::DeliveryError;
use crate::domain::customer::Customer;
use crate::domain::incident::Incident;
use crate::domain::{handoff::Digest, CardRef, Note, SurfaceKind, Ticket};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What a call to a chat surface is for. When calls wait for the same pace (one
/// channel's message rate, one route's bucket), the more urgent go first: a new card
/// before a note in a thread, both before a refresh of a card already in the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    NewCard,
    Note,
    Refresh,
}

tokio::task_local! {
    static URGENCY: Urgency;
}

/// Run `work` with every surface call it makes marked `urgency` (the outbox marks each
/// effect it carries out).
pub async fn with_urgency<F: std::future::Future>(urgency: Urgency, work: F) -> F::Output {
    URGENCY.scope(urgency, work).await
}

/// How urgent the calls the current task makes are (a note, when nobody said).
pub fn urgency() -> Urgency {
    URGENCY.try_with(|u| *u).unwrap_or(Urgency::Note)
}

/// A team chat surface (Slack, Discord) the desk keeps cards on.
///
/// Contract: every call may be repeated. The outbox persists each effect before it calls
/// and passes `maybe_posted` when an earlier try may have reached the surface unseen; the
/// surface must then find what it posted (by the ticket id in message metadata, a nonce,
/// or the thread after `queued_at`) rather than post it twice. `update_card` re-renders
/// from the ticket as it is now, so repeating it is harmless. `DeliveryError::Gone` is
/// only for the surface's own answer that the message or channel no longer exists.
#[async_trait]
pub trait Surface: Send + Sync {
    fn kind(&self) -> SurfaceKind;

    /// Calls waiting for the surface's pace or under way right now (`/metrics`).
    fn waiting_calls(&self) -> u64 {
        0
    }

    /// 429s the surface has answered since the start (`/metrics`).
    fn rate_limited_calls(&self) -> u64 {
        0
    }

    /// Post the ticket's card. With `maybe_posted`, a previous try may have succeeded
    /// unseen: find that card instead of posting a second one.
    async fn post_card(
        &self,
        ticket: &Ticket,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError>;

    /// Re-render a card in place from the ticket's current state.
    async fn update_card(&self, card: &CardRef, ticket: &Ticket) -> Result<(), DeliveryError>;

    /// Post the ticket's card with who the customer is (their earlier tickets, the
    /// team's notes about them) on it. A surface that shows no such thing posts the
    /// plain card.
    async fn post_card_for(
        &self,
        ticket: &Ticket,
        _customer: &Customer,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        self.post_card(ticket, maybe_posted).await
    }

    /// Re-render a card in place with who the customer is on it (see
    /// [`post_card_for`](Self::post_card_for)).
    async fn update_card_for(
        &self,
        card: &CardRef,
        ticket: &Ticket,
        _customer: &Customer,
    ) -> Result<(), DeliveryError> {
        self.update_card(card, ticket).await
    }

    /// Post an incident's card (its count and rate, samples, languages, authors, the
    /// bulk answer's progress, and its buttons). With `maybe_posted`, a previous try may
    /// have succeeded unseen: find that card instead of posting a second one.
    async fn post_incident_card(
        &self,
        incident: &Incident,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError>;

    /// Re-render an incident's card in place from the incident as it is now.
    async fn update_incident_card(
        &self,
        card: &CardRef,
        incident: &Incident,
    ) -> Result<(), DeliveryError>;

    /// Say something to the whole team in the cards channel (a source stopped, say).
    async fn announce(&self, text: &str) -> Result<(), DeliveryError>;

    /// Post a shift hand-off digest in the cards channel. With `maybe_posted`, look for
    /// it first (posted at or after `queued_at`).
    async fn post_digest(
        &self,
        digest: &Digest,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError>;

    /// Add a line to the card's thread. With `maybe_posted`, look for it first
    /// (posted at or after `queued_at`).
    async fn post_note(
        &self,
        card: &CardRef,
        note: &Note,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError>;
}
