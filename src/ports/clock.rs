//! The desk's clock, passed in as a value: when a mention was received, a claim taken, a
//! reply queued, and when an SLA step or a shift hand-off is due. Production runs on the
//! system clock; tests pass one they move by hand. Wire-level times (request signatures,
//! rate-limit resets, retry backoff) are not the desk's and use the system clock.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    /// The desk's current instant. Never panics; a clock that cannot tell falls back to
    /// the system clock rather than stopping the desk.
    fn now(&self) -> DateTime<Utc>;

    /// True when a test moves the clock by hand: waiting loops then look at it often
    /// instead of sleeping until the next due instant.
    fn is_manual(&self) -> bool {
        false
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
