//! Where the desk asks which language a text is in (a statistical model the desk
//! carries, behind this trait so the core stays pure and tests can use their own).

use crate::domain::language::Guess;

/// Contract: CPU only (no I/O, no clock), and the same answer for the same text. A call
/// may take a millisecond or more, so callers run it off the async worker threads.
pub trait LanguageDetector: Send + Sync {
    /// The most likely language of `text` (as `domain::language::text_to_detect` leaves
    /// a post) among those the detector knows, as an ISO 639-1 code with its confidence
    /// from 0 to 1; `None` when none fits.
    fn detect(&self, text: &str) -> Option<Guess>;
}
