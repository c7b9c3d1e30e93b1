//! Serving HTTP: connections that slow and hostile clients cannot hold (`server`), and
//! request bodies read under a per-route limit and deadline before any handler sees them
//! (`body`). Each inbound adapter builds its own routes with these; the app merges them.

pub mod body;
pub mod server;
