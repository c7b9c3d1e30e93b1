//! `[translation]`: the optional machine translation service (a LibreTranslate server
//! the team runs, or DeepL), its key from the environment, the team's language and how
//! long a request may take. Without the section the desk sends nothing to any service.

use super::{Secret, Validator};
use crate::domain::translation::is_language_tag;
use serde::Deserialize;
use std::time::Duration;

const SECTION: &str = "translation";

/// DeepL's two API hosts: keys of the free plan end in `:fx` (developers.deepl.com).
pub const DEEPL_FREE_URL: &str = "https://api-free.deepl.com";
pub const DEEPL_PRO_URL: &str = "https://api.deepl.com";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTranslation {
    provider: String,
    url: Option<String>,
    api_key: Option<String>,
    #[serde(default = "default_team_language")]
    team_language: String,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: f64,
}

fn default_team_language() -> String {
    "en".into()
}

fn default_timeout_secs() -> f64 {
    10.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslationProvider {
    /// A LibreTranslate-compatible server (`POST /translate`).
    LibreTranslate,
    /// DeepL's API (`POST /v2/translate`).
    DeepL,
}

/// The translation service as the desk uses it.
#[derive(Debug, Clone)]
pub struct TranslationConfig {
    pub provider: TranslationProvider,
    /// The service's base URL, without a trailing slash.
    pub url: String,
    /// From the environment; optional for a LibreTranslate server that needs none.
    pub api_key: Option<Secret>,
    /// What the team reads and writes (a BCP 47 tag such as `en` or `en-GB`): mentions
    /// in other languages are shown translated into it.
    pub team_language: String,
    /// The longest one request to the service may take.
    pub timeout: Duration,
}

impl Validator<'_> {
    pub(super) fn translation(&mut self, raw: &RawTranslation) -> TranslationConfig {
        let provider = match raw.provider.trim().to_ascii_lowercase().as_str() {
            "libretranslate" => TranslationProvider::LibreTranslate,
            "deepl" => TranslationProvider::DeepL,
            other => {
                self.problem(
                    SECTION,
                    "provider",
                    format!("is {other:?}: expected \"libretranslate\" or \"deepl\""),
                );
                TranslationProvider::LibreTranslate
            }
        };
        let api_key = raw
            .api_key
            .as_deref()
            .map(|k| self.secret(SECTION, "api_key", k));
        if provider == TranslationProvider::DeepL && api_key.is_none() {
            self.problem(
                SECTION,
                "api_key",
                "missing: DeepL needs an API key, e.g. api_key = \"${DEEPL_API_KEY}\"",
            );
        }
        let url = match (&raw.url, provider) {
            (Some(url), _) => self.service_url(url),
            (None, TranslationProvider::DeepL) => {
                let free = api_key
                    .as_ref()
                    .is_none_or(|k| k.expose().trim_end().ends_with(":fx"));
                if free { DEEPL_FREE_URL } else { DEEPL_PRO_URL }.to_string()
            }
            (None, TranslationProvider::LibreTranslate) => {
                self.problem(
                    SECTION,
                    "url",
                    "missing: the address of your LibreTranslate server, e.g. url = \"http://127.0.0.1:5000\"",
                );
                String::new()
            }
        };
        let team_language = raw.team_language.trim().to_string();
        if !is_language_tag(&team_language) {
            self.problem(
                SECTION,
                "team_language",
                format!(
                    "is {team_language:?}: expected a language tag such as \"en\" or \"en-GB\""
                ),
            );
        }
        let timeout = self.bounded_secs(SECTION, "timeout_secs", raw.timeout_secs, 1.0..=120.0);
        TranslationConfig {
            provider,
            url,
            api_key,
            team_language,
            timeout,
        }
    }

    /// The service's base URL: http(s) with a host, no credentials (they would show in
    /// logs; the key has its own setting) and no query. A URL with credentials is not
    /// echoed.
    fn service_url(&mut self, value: &str) -> String {
        let value = self.interpolate(SECTION, "url", value);
        let problem = match url::Url::parse(&value) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => Some(
                "must not carry credentials: give the key as api_key = \"${SOME_VAR}\"".to_string(),
            ),
            Ok(u) if !matches!(u.scheme(), "http" | "https") || u.host().is_none() => Some(
                format!("expected an http(s) URL like http://127.0.0.1:5000, found {value:?}"),
            ),
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                Some("expected the service's base URL, without a query".to_string())
            }
            Ok(_) => None,
            Err(_) => Some(format!(
                "expected an http(s) URL like http://127.0.0.1:5000, found {value:?}"
            )),
        };
        if let Some(message) = problem {
            self.problem(SECTION, "url", message);
        }
        value.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    use super::super::tests::GOOD as DESK;

    fn parse(section: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse(
            Path::new("/etc/mb/bot-config.toml"),
            &format!("{DESK}{section}"),
            env,
        )
    }

    fn env(var: &str) -> Option<String> {
        match var {
            "DEEPL_FREE" => Some("0a1b2c3d-key-of-the-free-plan:fx".into()),
            "DEEPL_PRO" => Some("0a1b2c3d-key-of-the-pro-plan".into()),
            "EMPTY" => Some(" ".into()),
            "MISSING" => None,
            other => Some(format!("value-of-{other}")),
        }
    }

    /// The 1-based line of the file that starts with `needle`.
    fn line_of(section: &str, needle: &str) -> usize {
        let text = format!("{DESK}{section}");
        text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
    }

    #[test]
    fn without_the_section_nothing_is_translated() {
        assert!(parse("", &env).unwrap().translation.is_none());
    }

    #[test]
    fn a_libretranslate_server_needs_its_url_and_may_go_without_a_key() {
        let c = parse(
            "\n[translation]\nprovider = \"libretranslate\"\nurl = \"http://127.0.0.1:5000/\"\n",
            &env,
        )
        .unwrap()
        .translation
        .unwrap();
        assert_eq!(c.provider, TranslationProvider::LibreTranslate);
        assert_eq!(c.url, "http://127.0.0.1:5000");
        assert!(c.api_key.is_none());
        assert_eq!(c.team_language, "en");
        assert_eq!(c.timeout, Duration::from_secs(10));

        let section = "\n[translation]\nprovider = \"libretranslate\"\n";
        let err = parse(section, &env).unwrap_err().to_string();
        let at = line_of(section, "[translation]");
        assert!(
            err.contains(&format!(":{at}: `translation.url`: missing")),
            "{err}"
        );
    }

    #[test]
    fn deepl_takes_its_host_from_the_kind_of_key_and_a_url_overrides_it() {
        let deepl = |key: &str, url: &str| {
            parse(
                &format!("\n[translation]\nprovider = \"DeepL\"\napi_key = \"${{{key}}}\"\nteam_language = \"en-GB\"\ntimeout_secs = 3\n{url}"),
                &env,
            )
            .unwrap()
            .translation
            .unwrap()
        };
        let free = deepl("DEEPL_FREE", "");
        assert_eq!(free.provider, TranslationProvider::DeepL);
        assert_eq!(free.url, DEEPL_FREE_URL);
        assert_eq!(
            free.api_key.as_ref().unwrap().expose(),
            "0a1b2c3d-key-of-the-free-plan:fx"
        );
        assert_eq!(free.team_language, "en-GB");
        assert_eq!(free.timeout, Duration::from_secs(3));
        assert_eq!(deepl("DEEPL_PRO", "").url, DEEPL_PRO_URL);
        assert_eq!(
            deepl("DEEPL_PRO", "url = \"http://127.0.0.1:9/\"\n").url,
            "http://127.0.0.1:9"
        );
        assert!(
            !format!("{free:?}").contains("free-plan"),
            "the key shows in Debug"
        );
    }

    #[test]
    fn a_key_written_in_the_file_is_refused_at_its_line_and_never_echoed() {
        let section =
            "\n[translation]\nprovider = \"deepl\"\napi_key = \"9f8e7d6c-5b4a-literal-key:fx\"\n";
        let err = parse(section, &env).unwrap_err().to_string();
        let at = line_of(section, "api_key");
        assert!(
            err.contains(&format!(
                ":{at}: `translation.api_key`: secrets must come from the environment"
            )),
            "{err}"
        );
        assert!(!err.contains("literal-key"), "{err}");
    }

    #[test]
    fn mistakes_name_their_line_and_key_and_change_nothing() {
        let section = "\n[translation]\nprovider = \"babelfish\"\nurl = \"https://user:hunter2@translate.example\"\napi_key = \"${EMPTY}\"\nteam_language = \"english\"\ntimeout_secs = 0\n";
        let err = parse(section, &env).unwrap_err().to_string();
        for (key, needle, says) in [
            (
                "provider",
                "provider =",
                "expected \"libretranslate\" or \"deepl\"",
            ),
            ("url", "url =", "must not carry credentials"),
            ("api_key", "api_key =", "is set but empty"),
            (
                "team_language",
                "team_language =",
                "expected a language tag",
            ),
            (
                "timeout_secs",
                "timeout_secs =",
                "expected 1 to 120 seconds",
            ),
        ] {
            let at = line_of(section, needle);
            let line = err
                .lines()
                .find(|l| l.contains(&format!(":{at}: `translation.{key}`: ")))
                .unwrap_or_else(|| panic!("{key} at line {at}: {err}"));
            assert!(line.contains(says), "{key}: {line}");
        }
        assert!(!err.contains("hunter2"), "{err}");
        // DeepL without a key, and a key whose variable is not set.
        let err = parse("\n[translation]\nprovider = \"deepl\"\n", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`translation.api_key`: missing: DeepL needs an API key"),
            "{err}"
        );
        let err = parse(
            "\n[translation]\nprovider = \"deepl\"\napi_key = \"${MISSING}\"\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("MISSING (for translation.api_key)"), "{err}");
        // An unknown key is a syntax error on its line.
        let section = "\n[translation]\nprovider = \"deepl\"\napi_key = \"${DEEPL_FREE}\"\nsource_language = \"de\"\n";
        let err = parse(section, &env).unwrap_err().to_string();
        assert!(
            err.contains(&format!(":{}:", line_of(section, "source_language"))),
            "{err}"
        );
    }
}
