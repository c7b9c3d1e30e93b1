//! A machine translation service as the desk reaches it (`[translation]`): texts in,
//! the same number of texts out, in order, in the language asked for.

use async_trait::async_trait;
use std::time::Duration;
use thiserror::Error;

/// One text as the service rendered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub text: String,
    /// The language the service found the text was in, when it says (asked to detect
    /// it, or always, as DeepL does). Lower case, as given (`de`, `pt-br`).
    pub detected: Option<String>,
}

/// Why a translation did not come back. No variant carries the service's key, and none
/// carries the text that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TranslateError {
    /// The service could not be reached, did not answer within the configured timeout,
    /// or failed on its side (5xx): worth trying again later.
    #[error("{service} is unavailable: {reason}")]
    Unavailable { service: String, reason: String },
    /// Too many requests for now; `after` is the service's own wait, if it gave one.
    #[error("{service} asks us to slow down")]
    RateLimited {
        service: String,
        after: Option<Duration>,
    },
    /// The account's character quota is used up (DeepL 456): nothing more is translated
    /// until it renews or is raised.
    #[error("{service}: the translation quota is used up")]
    QuotaExceeded { service: String },
    /// The key was refused (or is required and missing): the configuration needs fixing.
    #[error("{service} refused the key: {reason}")]
    Refused { service: String, reason: String },
    /// The service cannot translate between these languages, or refused the request as
    /// it was made (400, 413).
    #[error("{service} could not translate this: {reason}")]
    Unsupported { service: String, reason: String },
    /// The answer was not a translation of what was sent: not JSON, too large, or with
    /// a different number of texts.
    #[error("{service} gave an answer that is not a translation: {reason}")]
    Malformed { service: String, reason: String },
}

impl TranslateError {
    /// Worth trying again later, by itself.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TranslateError::Unavailable { .. } | TranslateError::RateLimited { .. }
        )
    }
}

/// A translation service.
///
/// Contract: `translate` changes nothing anywhere (beyond the account's usage), so it
/// may be repeated. On `Ok` it returns exactly one [`Translated`] per text, in the order
/// given; it splits the texts into as many requests as the service's limits need. It
/// never waits longer than the configured timeout per request. `from` is the texts'
/// language when known (all texts of one call are in one language); `to` is a BCP 47
/// tag such as `en`, `de` or `pt-BR`, which the adapter maps to the service's own codes.
#[async_trait]
pub trait Translator: Send + Sync {
    /// The service's name as agents read it on the card ("DeepL", "LibreTranslate").
    fn service(&self) -> &'static str;

    async fn translate(
        &self,
        texts: &[String],
        from: Option<&str>,
        to: &str,
    ) -> Result<Vec<Translated>, TranslateError>;
}
