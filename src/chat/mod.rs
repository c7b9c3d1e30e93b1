//! Ports to the team chat surfaces. A `Surface` renders and keeps cards in sync; each
//! surface module also turns its own inbound events into desk actions.

pub mod slack;

use crate::delivery::DeliveryError;
use crate::domain::{Note, SurfaceKind, Ticket};
use crate::sources::BoxFuture;
use crate::store::CardRef;
use chrono::{DateTime, Utc};

pub trait Surface: Send + Sync {
    fn kind(&self) -> SurfaceKind;

    /// Post the ticket's card. With `maybe_posted`, a previous try may have succeeded
    /// unseen: find that card instead of posting a second one.
    fn post_card<'a>(
        &'a self,
        ticket: &'a Ticket,
        maybe_posted: bool,
    ) -> BoxFuture<'a, Result<CardRef, DeliveryError>>;

    /// Re-render a card in place from the ticket's current state.
    fn update_card<'a>(
        &'a self,
        card: &'a CardRef,
        ticket: &'a Ticket,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;

    /// Add a line to the card's thread. With `maybe_posted`, look for it first
    /// (posted at or after `queued_at`).
    fn post_note<'a>(
        &'a self,
        card: &'a CardRef,
        note: &'a Note,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}
