//! The tokio side: the desk service the surfaces act through, the source watchers, the
//! outbox sender and the scheduler, all run under the supervisor and stopped together.
//! What to start from a config is the app's business (`crate::app`).

pub mod customer;
pub mod desk;
pub mod duties;
pub mod failpoints;
pub mod language;
pub mod outbox;
pub mod retention;
pub mod scheduler;
pub mod storms;
pub mod supervisor;
pub mod translation;
pub mod watcher;
