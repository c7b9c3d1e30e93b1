//! The desk's clock: when a mention was received, a claim taken, a reply queued, and when
//! an SLA step or a shift hand-off is due. It is the system clock unless the test hook
//! `MENTIONBRIDGE_CLOCK_FILE` names a file holding an RFC 3339 instant: then the desk
//! lives at that instant, re-read at every call, so an end-to-end test can walk a whole
//! week of shifts in seconds without sleeping. Wire-level times (request signatures,
//! rate-limit resets, retry backoff) always use the system clock.

use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The test hook's environment variable.
pub const CLOCK_FILE_ENV: &str = "MENTIONBRIDGE_CLOCK_FILE";

static CLOCK_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

fn clock_file() -> Option<&'static PathBuf> {
    CLOCK_FILE
        .get_or_init(|| std::env::var_os(CLOCK_FILE_ENV).map(PathBuf::from))
        .as_ref()
}

/// The desk's current instant.
pub fn now() -> DateTime<Utc> {
    let Some(path) = clock_file() else {
        return Utc::now();
    };
    match std::fs::read_to_string(path)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
    {
        Some(t) => t.with_timezone(&Utc),
        None => {
            tracing::warn!(file = %path.display(), "the test clock file is unreadable; using the system clock");
            Utc::now()
        }
    }
}

/// True when a test drives the clock: the scheduler then looks at it often instead of
/// sleeping until the next due step.
pub fn is_manual() -> bool {
    clock_file().is_some()
}
