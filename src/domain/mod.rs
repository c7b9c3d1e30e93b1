//! The pure core: tickets, the rules that change them, and the effects those changes ask
//! the outside world to carry out. Nothing here does I/O, reads a clock or draws random
//! numbers, so every rule is exhaustively unit-testable; time and the agent roster come in
//! as arguments.

pub mod agents;
pub mod approval;
pub mod canned;
pub mod customer;
pub mod handoff;
pub mod incident;
pub mod intake;
pub mod language;
mod model;
pub mod oncall;
pub mod priority;
pub mod privacy;
pub mod routes;
mod rules;
pub mod sentiment;
pub mod sla;
pub mod storms;
pub mod survey;
pub mod text;
pub mod translation;
pub mod triage;
pub mod words;

pub use model::*;
pub use rules::{apply, apply_followup, apply_system, Desk, Rejection, Roster};
pub use text::compose_reply;
