//! The machine translation services behind the `Translator` port: a LibreTranslate
//! server the team runs, or DeepL. Each adapter owns its service's wire format (codes,
//! batching, errors); what they share about HTTP is in `exchange`. Built only from a
//! `[translation]` section: without one, nothing here is ever called.

mod deepl;
mod exchange;
mod libretranslate;

pub use deepl::{source_code as deepl_source_code, target_code as deepl_target_code, DeepL};
pub use exchange::MAX_ANSWER_BYTES;
pub use libretranslate::LibreTranslate;

use crate::config::{TranslationConfig, TranslationProvider};
use crate::ports::Translator;
use std::sync::Arc;

/// The configured service. The error is the sentence to show at start-up.
pub fn connect(config: &TranslationConfig) -> Result<Arc<dyn Translator>, String> {
    Ok(match config.provider {
        TranslationProvider::LibreTranslate => Arc::new(LibreTranslate::new(
            &config.url,
            config.api_key.clone(),
            config.timeout,
        )?),
        TranslationProvider::DeepL => Arc::new(DeepL::new(
            &config.url,
            config
                .api_key
                .clone()
                .ok_or("DeepL needs translation.api_key")?,
            config.timeout,
        )?),
    })
}
