//! Which clock the desk runs on. The system clock, unless the test hook
//! `MENTIONBRIDGE_CLOCK_FILE` names a file holding an RFC 3339 instant: then the desk
//! lives at that instant, re-read at every call, so an end-to-end test can walk a whole
//! week of shifts in seconds without sleeping. Read once, at start, and passed down as a
//! value.

use crate::ports::{Clock, SystemClock};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;

/// The test hook's environment variable.
pub const CLOCK_FILE_ENV: &str = "MENTIONBRIDGE_CLOCK_FILE";

/// The clock the environment asks for.
pub fn from_env() -> Arc<dyn Clock> {
    match std::env::var_os(CLOCK_FILE_ENV) {
        Some(path) => Arc::new(FileClock {
            path: PathBuf::from(path),
        }),
        None => Arc::new(SystemClock),
    }
}

/// A clock that reads its instant from a file at every call.
#[derive(Debug, Clone)]
pub struct FileClock {
    pub path: PathBuf,
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        match std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        {
            Some(t) => t.with_timezone(&Utc),
            None => {
                tracing::warn!(file = %self.path.display(), "the test clock file is unreadable; using the system clock");
                Utc::now()
            }
        }
    }

    fn is_manual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_clock_reads_its_instant_at_every_call_and_falls_back_when_unreadable() {
        let dir = std::env::temp_dir().join(format!("mb-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = FileClock {
            path: dir.join("now"),
        };
        std::fs::write(&clock.path, "2026-03-02T09:00:00Z\n").unwrap();
        assert_eq!(clock.now().to_rfc3339(), "2026-03-02T09:00:00+00:00");
        std::fs::write(&clock.path, "2026-03-09T17:30:00+01:00").unwrap();
        assert_eq!(clock.now().to_rfc3339(), "2026-03-09T16:30:00+00:00");
        std::fs::write(&clock.path, "not a time").unwrap();
        let fallback = clock.now();
        assert!((Utc::now() - fallback).num_seconds().abs() < 5);
        assert!(clock.is_manual() && !SystemClock.is_manual());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
