//! `[language]`: whether the desk detects each mention's language, and how sure the
//! detector must be before its answer replaces the platform's tag (see
//! `domain::language`).

use super::Validator;
use crate::domain::language::{LanguagePolicy, DEFAULT_MIN_CONFIDENCE};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLanguage {
    #[serde(default = "super::default_true")]
    enabled: bool,
    min_confidence: Option<f64>,
}

impl Default for RawLanguage {
    fn default() -> Self {
        RawLanguage {
            enabled: true,
            min_confidence: None,
        }
    }
}

/// Language detection as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanguageConfig {
    /// Off: every mention's language is its platform's tag.
    pub enabled: bool,
    pub policy: LanguagePolicy,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            enabled: true,
            policy: LanguagePolicy::default(),
        }
    }
}

impl Validator<'_> {
    pub(super) fn language(&mut self, raw: &RawLanguage) -> LanguageConfig {
        let min_confidence = match raw.min_confidence {
            None => DEFAULT_MIN_CONFIDENCE,
            Some(c) if c.is_finite() && (0.0..=1.0).contains(&c) => c,
            Some(c) => {
                self.problem(
                    "language",
                    "min_confidence",
                    format!(
                        "is {c}: expected a number from 0 to 1, how sure the detector must be before its answer replaces the platform's tag (default {DEFAULT_MIN_CONFIDENCE})"
                    ),
                );
                DEFAULT_MIN_CONFIDENCE
            }
        };
        LanguageConfig {
            enabled: raw.enabled,
            policy: LanguagePolicy { min_confidence },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env_all, line_of, parse, GOOD};
    use super::*;

    #[test]
    fn detection_is_on_by_default_and_can_be_tuned_or_turned_off() {
        let c = parse(GOOD, &env_all).unwrap();
        assert_eq!(c.language, LanguageConfig::default());
        assert!(c.language.enabled);
        let tuned = format!("{GOOD}\n[language]\nmin_confidence = 0.75\n");
        let c = parse(&tuned, &env_all).unwrap();
        assert_eq!(c.language.policy.min_confidence, 0.75);
        assert!(c.language.enabled);
        let off = format!("{GOOD}\n[language]\nenabled = false\n");
        assert!(!parse(&off, &env_all).unwrap().language.enabled);
    }

    #[test]
    fn a_confidence_outside_zero_to_one_or_an_unknown_key_names_its_line() {
        let text = format!("{GOOD}\n[language]\nenabled = true\nmin_confidence = 40\n");
        let line = line_of(&text, "min_confidence = 40");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "/etc/mb/bot-config.toml:{line}: `language.min_confidence`: is 40: expected a number from 0 to 1"
            )),
            "{err}"
        );
        let text = format!("{GOOD}\n[language]\nmin_confidense = 0.5\n");
        let line = line_of(&text, "min_confidense = 0.5");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("/etc/mb/bot-config.toml:{line}:")),
            "{err}"
        );
        assert!(err.contains("unknown field `min_confidense`"), "{err}");
    }
}
