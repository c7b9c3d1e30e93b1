//! The tokio side: the source watcher, the outbox sender, the chat listener, and how they
//! start, supervise and shut down together.

pub mod desk;
pub mod failpoints;
pub mod outbox;
pub mod scheduler;
pub mod supervisor;
pub mod watcher;
