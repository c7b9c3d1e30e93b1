//! Shared test fakes: Mastodon, Bluesky, X, Slack (Web API + Socket Mode) and Discord
//! (REST + gateway), each bound to 127.0.0.1 and speaking the platform's real wire
//! protocol, all built on one scaffold (`scaffold.rs`: server, request log, fault queue,
//! waiting).
//!
//! Used by `tests/integration` (as `crate::fakes`) and by `benches/pipeline.rs`
//! (through `#[path = "../tests/fakes/mod.rs"] mod fakes;`), so nothing in here may
//! depend on test-only crate paths.
#![allow(dead_code)]

pub mod bluesky;
pub mod deepl;
pub mod discord;
pub mod libretranslate;
pub mod mastodon;
pub mod scaffold;
pub mod slack;
pub mod translation;
pub mod x;

pub use scaffold::{wait_until, Fault};

/// A small, non-cryptographic pseudo random source (splitmix64), seeded from the clock
/// and a process-wide counter. Good enough for ids that only need to be unique.
pub(crate) fn next_random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(nanos);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random UUID-v4-shaped string (envelope ids, client_msg_id, ...).
pub fn uuid_like() -> String {
    let a = next_random();
    let b = next_random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a as u16) & 0x0fff,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Marks every credential and token the fakes and the harness hand out, so any of them
/// that reaches a log line is found by one search (see `harness::canary_leaks`).
pub const CANARY: &str = "CANARY";

/// A fresh secret for something a fake mints (session tokens, interaction tokens,
/// `response_url`s): `CANARY` and 16 random hex digits, unique per call.
pub fn canary() -> String {
    format!("{CANARY}{:016x}", next_random())
}

fn signatures() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Remember a request signature (hex) the fakes computed: a signature cannot carry the
/// marker, so the leak scan looks every long hex run up among these.
pub fn remember_signature(hex: &str) {
    signatures()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(hex.to_ascii_lowercase());
}

/// Whether `hex` is a signature one of the fakes computed.
pub fn is_known_signature(hex: &str) -> bool {
    signatures()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&hex.to_ascii_lowercase())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
