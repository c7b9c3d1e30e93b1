//! Test hooks in the manner of `fail-rs`: named points in the runtime that a test turns
//! on with `MENTIONBRIDGE_FAILPOINT` (a comma-separated list), read once at start and
//! passed down as a value. Inert when the variable is unset, as it is in production.
//!
//! - `before-publish`, `before-post-card`: the outbox stops dead after an attempt is
//!   persisted and before the call goes out, so a test can SIGKILL it exactly there.
//! - `panic:<component>`: that supervised component panics every time it starts;
//!   `panic-once:<component>` only the first time.
//! - `panic-job:<effect>`: executing an outbox job of that effect panics (`post-cards`,
//!   `update-cards`, `thread-note`, `publish-reply`, `digest`).
//! - `slow-desk` (read by the desk service): every agent action takes 2.5 s.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub const FAILPOINT_ENV: &str = "MENTIONBRIDGE_FAILPOINT";

#[derive(Clone, Default, Debug)]
pub struct Failpoints {
    on: Arc<HashSet<String>>,
    /// `panic-once` points already hit.
    spent: Arc<Mutex<HashSet<String>>>,
}

impl Failpoints {
    pub fn from_env() -> Self {
        Self::parse(&std::env::var(FAILPOINT_ENV).unwrap_or_default())
    }

    pub fn parse(list: &str) -> Self {
        Failpoints {
            on: Arc::new(
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            spent: Arc::default(),
        }
    }

    pub fn is_on(&self, point: &str) -> bool {
        self.on.contains(point)
    }

    /// Whether `component` is to panic as it starts now.
    pub fn panics_at_start(&self, component: &str) -> bool {
        if self.is_on(&format!("panic:{component}")) {
            return true;
        }
        let once = format!("panic-once:{component}");
        self.is_on(&once) && self.spent.lock().expect("failpoints lock").insert(once)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_off_unless_listed_and_once_means_once() {
        let none = Failpoints::parse("");
        assert!(!none.is_on("before-publish"));
        assert!(!none.panics_at_start("scheduler"));

        let fp = Failpoints::parse("before-publish, panic:outbox,panic-once:scheduler");
        assert!(fp.is_on("before-publish"));
        assert!(fp.panics_at_start("outbox") && fp.panics_at_start("outbox"));
        assert!(fp.panics_at_start("scheduler"));
        assert!(!fp.panics_at_start("scheduler"));
        assert!(!fp.panics_at_start("http"));
    }
}
