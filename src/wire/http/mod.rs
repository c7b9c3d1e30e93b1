//! Serving HTTP: connections that slow and hostile clients cannot hold (`server`), and
//! request bodies read under a per-route limit and deadline before any handler sees them
//! (`body`). Each inbound adapter builds its own routes with these; the app merges them.

pub mod body;
pub mod server;

use std::time::Duration;

/// The HTTP server's defences against slow and hostile clients.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// For a request's headers to arrive, and for an idle keep-alive connection to
    /// send its next request.
    pub header_read_timeout: Duration,
    /// For a request's whole body to arrive.
    pub body_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The largest body a POST route reads.
    pub max_body_bytes: usize,
}
