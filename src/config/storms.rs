//! `[storms]`: when many mentions about the same thing arrive at once, they join one
//! incident card instead of one card each. The section names the thresholds (how alike
//! posts must be, how many make a storm, what a surge is), how long a new card waits so a
//! storm is recognised before cards flood the channel, how often an incident's card is
//! refreshed, and the pace of a bulk answer on each platform. Without the section storms
//! are off and every card is posted at once.

use super::Validator;
use crate::domain::storms::StormRules;
use crate::domain::{Level, Platform};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorms {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_window")]
    window_minutes: f64,
    #[serde(default = "default_min_members")]
    min_members: usize,
    #[serde(default = "default_min_words")]
    min_words: usize,
    #[serde(default = "default_similarity")]
    similarity: f64,
    #[serde(default = "default_link_members")]
    link_members: usize,
    #[serde(default = "default_hashtag_members")]
    hashtag_members: usize,
    #[serde(default = "default_surge_factor")]
    surge_factor: f64,
    #[serde(default = "default_surge_per_minute")]
    surge_per_minute: usize,
    #[serde(default = "default_baseline")]
    baseline_minutes: f64,
    #[serde(default = "default_quiet")]
    quiet_minutes: f64,
    #[serde(default = "default_hold")]
    hold_seconds: f64,
    #[serde(default = "default_update")]
    update_seconds: f64,
    #[serde(default)]
    ignore_terms: Vec<String>,
    own_card_from: Option<String>,
    #[serde(default = "default_mastodon_pace")]
    bulk_mastodon_per_hour: f64,
    #[serde(default = "default_bluesky_pace")]
    bulk_bluesky_per_hour: f64,
    #[serde(default = "default_x_pace")]
    bulk_x_per_hour: f64,
}

fn yes() -> bool {
    true
}
fn default_window() -> f64 {
    10.0
}
fn default_min_members() -> usize {
    5
}
fn default_min_words() -> usize {
    4
}
fn default_similarity() -> f64 {
    0.6
}
fn default_link_members() -> usize {
    10
}
fn default_hashtag_members() -> usize {
    15
}
fn default_surge_factor() -> f64 {
    5.0
}
fn default_surge_per_minute() -> usize {
    30
}
fn default_baseline() -> f64 {
    60.0
}
fn default_quiet() -> f64 {
    30.0
}
fn default_hold() -> f64 {
    5.0
}
fn default_update() -> f64 {
    10.0
}
/// Mastodon allows 300 statuses per 3 hours per account: a bulk answer takes a third,
/// leaving the rest to agents' own replies.
fn default_mastodon_pace() -> f64 {
    100.0
}
/// Bluesky's writes cost 3 of 5,000 points an hour each (about 1,660 posts).
fn default_bluesky_pace() -> f64 {
    1000.0
}
/// Every X post is billed, and counts against the daily request budget besides.
fn default_x_pace() -> f64 {
    50.0
}

/// The validated `[storms]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct StormsConfig {
    pub enabled: bool,
    pub rules: StormRules,
    /// How long a new ticket's card waits before it is posted.
    pub hold: Duration,
    /// An incident's card is refreshed at most this often, whatever the arrival rate.
    pub update_every: Duration,
    /// Mentions of this priority or above keep their own card in a storm: their card
    /// never waits and they join no incident.
    pub own_card_from: Option<Level>,
    /// Bulk replies per hour on each platform.
    pub bulk_per_hour: BTreeMap<Platform, f64>,
}

impl Default for StormsConfig {
    /// Storms off: no section.
    fn default() -> Self {
        StormsConfig {
            enabled: false,
            rules: StormRules::default(),
            hold: Duration::ZERO,
            update_every: Duration::from_secs(10),
            own_card_from: None,
            bulk_per_hour: BTreeMap::from([
                (Platform::Mastodon, default_mastodon_pace()),
                (Platform::Bluesky, default_bluesky_pace()),
                (Platform::X, default_x_pace()),
            ]),
        }
    }
}

impl Validator<'_> {
    /// `[storms]`, with the brand's own words (its name, the handles and keywords the
    /// desk watches) among the terms that never make a shared topic.
    pub(super) fn storms(&mut self, raw: Option<&RawStorms>, own_words: &[String]) -> StormsConfig {
        let Some(raw) = raw else {
            return StormsConfig::default();
        };
        const S: &str = "storms";
        let minutes = |v: &mut Validator, key: &str, value: f64, max: f64| {
            if value.is_finite() && (1.0..=max).contains(&value) {
                chrono::Duration::seconds((value * 60.0) as i64)
            } else {
                v.problem(
                    S,
                    key,
                    format!("expected minutes between 1 and {max}, found {value}"),
                );
                chrono::Duration::minutes(1)
            }
        };
        let window = minutes(self, "window_minutes", raw.window_minutes, 1440.0);
        let baseline = minutes(self, "baseline_minutes", raw.baseline_minutes, 10_080.0);
        let quiet = minutes(self, "quiet_minutes", raw.quiet_minutes, 10_080.0);
        let mut count = |key: &str, value: usize, min: usize, max: usize| {
            if !(min..=max).contains(&value) {
                self.problem(
                    S,
                    key,
                    format!("expected a number between {min} and {max}, found {value}"),
                );
            }
            value.clamp(min, max)
        };
        let min_members = count("min_members", raw.min_members, 2, 100_000);
        let min_words = count("min_words", raw.min_words, 1, 100);
        let link_members = count("link_members", raw.link_members, 2, 100_000);
        let hashtag_members = count("hashtag_members", raw.hashtag_members, 2, 100_000);
        let surge_per_minute = count("surge_per_minute", raw.surge_per_minute, 2, 1_000_000);
        if !(raw.similarity.is_finite() && (0.1..=1.0).contains(&raw.similarity)) {
            self.problem(
                S,
                "similarity",
                format!(
                    "expected a share between 0.1 and 1.0 (0.6: most words alike), found {}",
                    raw.similarity
                ),
            );
        }
        if !(raw.surge_factor.is_finite() && (1.5..=1000.0).contains(&raw.surge_factor)) {
            self.problem(
                S,
                "surge_factor",
                format!(
                    "expected a factor between 1.5 and 1000, found {}",
                    raw.surge_factor
                ),
            );
        }
        let hold = self.storm_seconds("hold_seconds", raw.hold_seconds, 0.0, 600.0);
        let update_every = self.storm_seconds("update_seconds", raw.update_seconds, 1.0, 3600.0);
        for (i, term) in raw.ignore_terms.iter().enumerate() {
            if crate::domain::storms::words_of(term).is_empty() {
                self.problem(
                    S,
                    "ignore_terms",
                    format!("entry {} ({term:?}) has no word in it", i + 1),
                );
            }
        }
        let own_card_from = match &raw.own_card_from {
            None => None,
            Some(p) => {
                let level = Level::parse(p);
                if level.is_none() {
                    self.problem(
                        S,
                        "own_card_from",
                        format!(
                            "expected one of \"urgent\", \"high\", \"normal\", \"low\", found {p:?}"
                        ),
                    );
                }
                level
            }
        };
        let mut pace = |key: &str, value: f64| {
            if !(value.is_finite() && (1.0..=1_000_000.0).contains(&value)) {
                self.problem(
                    S,
                    key,
                    format!("expected replies per hour between 1 and 1000000, found {value}"),
                );
                return 1.0;
            }
            value
        };
        let bulk_per_hour = BTreeMap::from([
            (
                Platform::Mastodon,
                pace("bulk_mastodon_per_hour", raw.bulk_mastodon_per_hour),
            ),
            (
                Platform::Bluesky,
                pace("bulk_bluesky_per_hour", raw.bulk_bluesky_per_hour),
            ),
            (Platform::X, pace("bulk_x_per_hour", raw.bulk_x_per_hour)),
        ]);
        let mut terms: Vec<String> = own_words.to_vec();
        terms.extend(raw.ignore_terms.iter().cloned());
        StormsConfig {
            enabled: raw.enabled,
            rules: StormRules {
                window,
                min_members,
                min_words,
                similarity: raw.similarity.clamp(0.1, 1.0),
                link_members,
                hashtag_members,
                surge_factor: raw.surge_factor.clamp(1.5, 1000.0),
                surge_per_minute,
                baseline,
                quiet,
                ignore_terms: Vec::new(),
            }
            .with_ignore_terms(&terms),
            hold: if raw.enabled { hold } else { Duration::ZERO },
            update_every,
            own_card_from,
            bulk_per_hour,
        }
    }

    fn storm_seconds(&mut self, key: &str, value: f64, min: f64, max: f64) -> Duration {
        if value.is_finite() && (min..=max).contains(&value) {
            Duration::from_secs_f64(value)
        } else {
            self.problem(
                "storms",
                key,
                format!("expected seconds between {min} and {max}, found {value}"),
            );
            Duration::from_secs_f64(min)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use crate::domain::Platform;
    use std::path::Path;
    use std::time::Duration;

    /// The tests' desk of `config::tests`, with a brand name and a watched hashtag.
    fn base() -> String {
        format!(
            "brand = \"BrandCo\"\n{}hashtags = [\"BrandCoApp\"]\n",
            crate::config::tests::GOOD
        )
    }

    fn parse(storms: &str) -> Result<Config, ConfigError> {
        let text = format!("{}\n{storms}", base());
        crate::config::tests::parse(&text, &crate::config::tests::env_all)
    }

    #[test]
    fn without_the_section_storms_are_off_and_cards_never_wait() {
        let c = parse("").unwrap();
        assert!(!c.storms.enabled);
        assert_eq!(c.routes.card_hold.wait, chrono::Duration::zero());
    }

    #[test]
    fn the_section_turns_storms_on_with_defaults_and_the_brands_words_ignored() {
        let c = parse("[storms]\n").unwrap();
        let s = &c.storms;
        assert!(s.enabled);
        assert_eq!(s.hold, Duration::from_secs(5));
        assert_eq!(c.routes.card_hold.wait, chrono::Duration::seconds(5));
        assert_eq!(s.rules.min_members, 5);
        assert_eq!(s.rules.window, chrono::Duration::minutes(10));
        assert_eq!(s.bulk_per_hour[&Platform::Mastodon], 100.0);
        // The brand's name and the watched hashtag are never a storm's topic.
        assert_eq!(s.rules.ignore_terms, vec!["brandco", "brandcoapp"]);
        let off = parse("[storms]\nenabled = false\nhold_seconds = 30\n").unwrap();
        assert_eq!(off.routes.card_hold.wait, chrono::Duration::zero());
    }

    #[test]
    fn storm_mistakes_name_their_line_and_key_and_change_nothing() {
        let text = "[storms]\nsimilarity = 1.5\nmin_members = 1\nhold_seconds = -3\nown_card_from = \"vip\"\nignore_terms = [\"!!\"]\n";
        let Err(ConfigError::Invalid(problems)) = parse(text) else {
            panic!("refused");
        };
        let base = base().lines().count() + 1;
        let at = |key: &str| {
            problems
                .iter()
                .find(|p| p.key == format!("storms.{key}"))
                .unwrap_or_else(|| panic!("no problem with {key}: {problems:?}"))
                .line
        };
        assert_eq!(at("similarity"), Some(base + 2));
        assert_eq!(at("min_members"), Some(base + 3));
        assert_eq!(at("hold_seconds"), Some(base + 4));
        assert_eq!(at("own_card_from"), Some(base + 5));
        assert_eq!(at("ignore_terms"), Some(base + 6));
        let unknown = parse("[storms]\nsimilarty = 0.5\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("similarty"), "{unknown}");
    }

    #[test]
    fn the_shipped_file_turns_storms_on() {
        let text = include_str!("../../bot-config.toml");
        let c = Config::parse(Path::new("bot-config.toml"), text, &|v| {
            Some(format!("value-of-{v}-long-enough-for-any-key"))
        })
        .unwrap();
        assert!(c.storms.enabled);
        assert_eq!(c.storms.hold, Duration::from_secs(5));
    }
}
