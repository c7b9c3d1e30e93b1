//! Where mentions that arrive by themselves (the signed webhook) are handed to the desk.

use super::StoreFailure;
use crate::domain::{Mention, TicketId};
use async_trait::async_trait;

/// What became of a delivery's mentions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub new_tickets: Vec<TicketId>,
    /// Tickets a customer's follow-up joined (and reopened if they were closed).
    pub followups: Vec<TicketId>,
    /// Mentions already on the desk (same source and id), left alone.
    pub duplicates: usize,
}

/// Contract: `Ok` only once the mentions are durable and their cards are queued, so the
/// sender may be told they were accepted; a repeated mention (same source and id) is
/// counted as a duplicate and changes nothing. An `Err` stores nothing the sender must
/// not send again.
#[async_trait]
pub trait Intake: Send + Sync {
    async fn take_in(&self, source: &str, mentions: &[Mention]) -> Result<Received, StoreFailure>;
}
