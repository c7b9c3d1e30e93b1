//! What can go wrong when we call a platform, in the two kinds the outbox cares about,
//! and how long to wait before the next try.

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

/// Exponential backoff with a cap; the platform's Retry-After wins when it says more.
pub fn backoff(attempt: u32, hint: Option<Duration>, cap: Duration) -> Duration {
    let exp = Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(16)));
    let base = exp.min(cap);
    match hint {
        Some(h) => h.max(Duration::from_millis(100)).min(cap.max(h)),
        None => base,
    }
}

/// Parse an HTTP `Retry-After` header given in seconds.
pub fn retry_after_secs(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_and_honours_the_platform_hint() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(0, None, cap), Duration::from_millis(500));
        assert_eq!(backoff(3, None, cap), Duration::from_secs(4));
        assert_eq!(backoff(30, None, cap), cap);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(7)), cap),
            Duration::from_secs(7)
        );
        // A hint longer than our cap is still honoured: the platform knows best.
        assert_eq!(
            backoff(0, Some(Duration::from_secs(90)), cap),
            Duration::from_secs(90)
        );
        assert_eq!(retry_after_secs(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_secs(Some("soon")), None);
    }
}
