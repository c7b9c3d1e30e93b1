//! Ports to the team chat surfaces. A `Surface` renders and keeps cards in sync; each
//! surface module also turns its own inbound events into desk actions.

pub mod discord;
pub mod slack;

use crate::delivery::DeliveryError;
use crate::domain::{AgentRef, Note, SurfaceKind, Ticket};
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

/// How a surface writes agents, customer text and quotes in its own markup.
pub trait Markup {
    fn who(&self, agent: &AgentRef) -> String;
    fn escape(&self, text: &str) -> String;
    fn quote(&self, text: &str) -> String;
}

/// The wording of a card's thread line, the same on every surface.
pub fn note_sentence(note: &Note, m: &dyn Markup) -> String {
    match note {
        Note::Claimed { by } => format!("🙋 {} claimed this ticket.", m.who(by)),
        Note::Unclaimed { by } => format!("↩️ {} released this ticket.", m.who(by)),
        Note::ReplyQueued { by, text } => {
            format!("📤 {} is replying:\n{}", m.who(by), m.quote(text))
        }
        Note::ReplyPublished { url } => format!("✅ Reply published: {url}"),
        Note::ReplyFailed { reason } => format!("❌ Reply not published: {}", m.escape(reason)),
        Note::Resolved { by } => format!("✅ {} resolved this ticket.", m.who(by)),
        Note::Ignored { by } => format!("🚫 {} ignored this ticket.", m.who(by)),
        Note::Reopened { by } => format!("🔄 {} reopened this ticket.", m.who(by)),
        Note::CardLost { surface, reason } => format!(
            "⚠️ This ticket's {} card is gone ({}); it is no longer kept in sync there.",
            surface.label(),
            m.escape(reason)
        ),
    }
}
