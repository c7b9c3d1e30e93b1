//! What can go wrong when an adapter calls a platform, in the kinds the outbox acts on.

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    /// Worth trying again (network, 5xx, 429): `after` is the platform's own hint.
    #[error("{reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The platform refused for good; `reason` is its own words, for the agent.
    #[error("{reason}")]
    Permanent { reason: String },
    /// The message (or the channel it was in) no longer exists: the surface said so with
    /// its specific answer for that (Slack `message_not_found`, Discord 10008). Only this
    /// makes the desk stop keeping a card in sync; a 401, a 403 or any other refusal never
    /// does, so an expired or rotated token cannot make the desk forget its cards.
    #[error("{reason}")]
    Gone { reason: String },
}

impl DeliveryError {
    pub fn retry(reason: impl Into<String>) -> Self {
        DeliveryError::Retry {
            after: None,
            reason: reason.into(),
        }
    }
}
