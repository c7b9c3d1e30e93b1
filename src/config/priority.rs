//! `[priority]`: how a new ticket's priority is judged (see `domain::priority`): the
//! points for reach tiers, the VIP list per platform, urgent words per language, repeat
//! contact, the sentiment hint and waiting, the scores each level starts at, shorter
//! first-response targets by level, and from which level every new ticket pages. Every
//! key is optional; without the section the defaults of `PriorityPolicy` apply (reach
//! and sentiment count, nobody is a VIP, no word is urgent).

use super::{locate_key, platform_named, Validator};
use crate::domain::priority::{plain_handle, Level, PriorityPolicy, ReachTier};
use crate::domain::words::Term;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Points any one reason may give or take: beyond this a typo, not a weight.
const MAX_POINTS: i32 = 1000;
/// Entries a word list or VIP list may hold (per language or platform).
const MAX_LIST: usize = 1000;
/// The longest repeat window (and what the stores keep at hand for it).
const MAX_REPEAT_DAYS: f64 = 90.0;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPriority {
    /// Handles per platform: `vip = { x = ["acme"], mastodon = ["ceo@social.example"] }`.
    #[serde(default)]
    vip: BTreeMap<String, Vec<String>>,
    vip_points: Option<i32>,
    reach: Option<Vec<RawReach>>,
    /// Words per language: `urgent_words = { en = ["outage"], all = ["GDPR"] }`.
    #[serde(default)]
    urgent_words: BTreeMap<String, Vec<String>>,
    urgent_points: Option<i32>,
    repeat_window_days: Option<f64>,
    repeat_points: Option<i32>,
    repeat_max: Option<u32>,
    sentiment_points: Option<i32>,
    wait_points_per_hour: Option<i32>,
    wait_max_points: Option<i32>,
    normal_from: Option<i32>,
    high_from: Option<i32>,
    urgent_from: Option<i32>,
    page_from: Option<String>,
    /// Minutes by level: `first_response_minutes = { urgent = 15, high = 30 }`.
    #[serde(default)]
    first_response_minutes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReach {
    followers: u64,
    points: i32,
}

/// A language key as lists take it: a primary tag (`en`, `pt`, `fil`), lowercase, or
/// `all`.
pub(super) fn is_language_key(key: &str) -> bool {
    key == "all" || ((2..=3).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_lowercase()))
}

impl Validator<'_> {
    /// The line of `key` in `[priority]`, or of `sub` in its own `[priority.key]` table.
    fn priority_line(&self, key: &str, sub: Option<&str>) -> Option<usize> {
        sub.and_then(|s| locate_key(self.text, &format!("priority.{key}"), s))
            .or_else(|| locate_key(self.text, "priority", key))
    }

    fn priority_problem(&mut self, key: &str, sub: Option<&str>, message: impl Into<String>) {
        let line = self.priority_line(key, sub);
        let shown = match sub {
            Some(s) => format!("priority.{key}.{s}"),
            None => format!("priority.{key}"),
        };
        self.problem_at(line, shown, message);
    }

    fn points(&mut self, key: &str, value: Option<i32>, default: i32) -> i32 {
        match value {
            None => default,
            Some(p) if (-MAX_POINTS..=MAX_POINTS).contains(&p) => p,
            Some(p) => {
                self.priority_problem(
                    key,
                    None,
                    format!("expected points from -{MAX_POINTS} to {MAX_POINTS}, found {p}"),
                );
                default
            }
        }
    }

    pub(super) fn priority(&mut self, raw: &RawPriority) -> PriorityPolicy {
        let mut p = PriorityPolicy::default();
        p.vip_points = self.points("vip_points", raw.vip_points, p.vip_points);
        p.urgent_points = self.points("urgent_points", raw.urgent_points, p.urgent_points);
        p.repeat_points = self.points("repeat_points", raw.repeat_points, p.repeat_points);
        p.sentiment_points =
            self.points("sentiment_points", raw.sentiment_points, p.sentiment_points);
        p.wait_points_per_hour = self.points(
            "wait_points_per_hour",
            raw.wait_points_per_hour,
            p.wait_points_per_hour,
        );
        p.wait_max_points = self.points("wait_max_points", raw.wait_max_points, p.wait_max_points);
        p.normal_from = self.points("normal_from", raw.normal_from, p.normal_from);
        p.high_from = self.points("high_from", raw.high_from, p.high_from);
        p.urgent_from = self.points("urgent_from", raw.urgent_from, p.urgent_from);
        if !(p.normal_from < p.high_from && p.high_from < p.urgent_from) {
            let key = if raw.urgent_from.is_some() {
                "urgent_from"
            } else if raw.high_from.is_some() {
                "high_from"
            } else {
                "normal_from"
            };
            self.priority_problem(
                key,
                None,
                format!(
                    "the levels must start at rising scores: normal_from ({}) < high_from ({}) < urgent_from ({})",
                    p.normal_from, p.high_from, p.urgent_from
                ),
            );
        }
        if let Some(max) = raw.repeat_max {
            if max > 100 {
                self.priority_problem("repeat_max", None, "expected at most 100 contacts");
            }
            p.repeat_max = max.min(100);
        }
        if let Some(days) = raw.repeat_window_days {
            if days.is_finite() && days > 0.0 && days <= MAX_REPEAT_DAYS {
                p.repeat_window = chrono::Duration::seconds((days * 86_400.0) as i64);
            } else {
                self.priority_problem(
                    "repeat_window_days",
                    None,
                    format!("expected a number of days above 0 and at most {MAX_REPEAT_DAYS}"),
                );
            }
        }
        if let Some(tiers) = &raw.reach {
            let rising = tiers.windows(2).all(|w| w[0].followers < w[1].followers);
            let in_range = tiers
                .iter()
                .all(|t| (-MAX_POINTS..=MAX_POINTS).contains(&t.points));
            if !rising || !in_range || tiers.len() > 20 {
                self.priority_problem(
                    "reach",
                    None,
                    format!("expected up to 20 tiers of rising followers with points from -{MAX_POINTS} to {MAX_POINTS}, e.g. [{{ followers = 10000, points = 20 }}, {{ followers = 100000, points = 40 }}]"),
                );
            }
            p.reach = tiers
                .iter()
                .map(|t| ReachTier {
                    followers: t.followers,
                    points: t.points.clamp(-MAX_POINTS, MAX_POINTS),
                })
                .collect();
        }
        for (platform, handles) in &raw.vip {
            let Some(named) = platform_named(platform) else {
                self.priority_problem(
                    "vip",
                    Some(platform),
                    format!("{platform:?} is not a platform (mastodon, bluesky, x, other)"),
                );
                continue;
            };
            if handles.len() > MAX_LIST || handles.iter().any(|h| plain_handle(h).is_empty()) {
                self.priority_problem(
                    "vip",
                    Some(platform),
                    format!("expected up to {MAX_LIST} handles such as \"acme\" or \"ceo@social.example\", none empty"),
                );
            }
            p.vip.entry(named).or_default().extend(
                handles
                    .iter()
                    .map(|h| plain_handle(h))
                    .filter(|h| !h.is_empty()),
            );
        }
        for (language, words) in &raw.urgent_words {
            if !is_language_key(language) {
                self.priority_problem(
                    "urgent_words",
                    Some(language),
                    format!("{language:?} is not a language: use a lowercase language code such as \"en\", or \"all\""),
                );
                continue;
            }
            let terms: Vec<Option<Term>> = words
                .iter()
                .map(|w| Term::new(w).filter(|_| w.chars().count() <= 100))
                .collect();
            if words.len() > MAX_LIST || terms.iter().any(Option::is_none) {
                self.priority_problem(
                    "urgent_words",
                    Some(language),
                    format!("expected up to {MAX_LIST} words or short phrases, each with a letter or digit in it"),
                );
            }
            p.urgent_words
                .insert(language.clone(), terms.into_iter().flatten().collect());
        }
        if let Some(name) = &raw.page_from {
            match Level::parse(name) {
                Some(level) => p.page_from = Some(level),
                None => self.priority_problem(
                    "page_from",
                    None,
                    format!("{name:?} is not a priority level (low, normal, high, urgent)"),
                ),
            }
        }
        for (name, minutes) in &raw.first_response_minutes {
            let Some(level) = Level::parse(name) else {
                self.priority_problem(
                    "first_response_minutes",
                    Some(name),
                    format!("{name:?} is not a priority level (low, normal, high, urgent)"),
                );
                continue;
            };
            // As for `[sla]`: past a year is a typo.
            if *minutes == 0 || *minutes > 366 * 24 * 60 {
                self.priority_problem(
                    "first_response_minutes",
                    Some(name),
                    "expected a number of minutes, at least 1 and at most 527040 (a year)",
                );
                continue;
            }
            p.first_response
                .insert(level, chrono::Duration::minutes(*minutes as i64));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused_at, env_all, line_of, parse, GOOD};
    use crate::domain::priority::Level;
    use crate::domain::Platform;

    const PRIORITY: &str = r#"
[priority]
vip = { x = ["@Acme"], mastodon = ["ceo@social.example"] }
reach = [{ followers = 5000, points = 10 }, { followers = 50000, points = 35 }]
urgent_words = { en = ["outage", "class action"], de = ["Ausfall"], all = ["GDPR"] }
repeat_window_days = 3
page_from = "urgent"
first_response_minutes = { urgent = 10, high = 20 }
high_from = 25

[[route]]
name = "vip-desk"
min_priority = "high"
"#;

    #[test]
    fn a_priority_section_sets_every_input_and_a_route_may_ask_for_a_level() {
        let c = parse(&format!("{GOOD}{PRIORITY}"), &env_all).unwrap();
        let p = &c.routes.triage.priority;
        assert_eq!(p.vip[&Platform::X], vec!["acme".to_string()]);
        assert_eq!(
            p.vip[&Platform::Mastodon],
            vec!["ceo@social.example".to_string()]
        );
        assert_eq!(p.reach.len(), 2);
        assert_eq!(p.reach[1].points, 35);
        assert_eq!(p.urgent_words["en"].len(), 2);
        assert_eq!(p.urgent_words["all"][0].shown, "GDPR");
        assert_eq!(p.repeat_window, chrono::Duration::days(3));
        assert_eq!(p.page_from, Some(Level::Urgent));
        assert_eq!(
            p.first_response[&Level::Urgent],
            chrono::Duration::minutes(10)
        );
        assert_eq!(p.high_from, 25);
        assert_eq!(c.routes.routes[0].min_priority, Some(Level::High));
        // Without the section: the defaults, nobody a VIP.
        let plain = parse(GOOD, &env_all).unwrap();
        assert!(plain.routes.triage.priority.vip.is_empty());
        assert!(plain.routes.triage.rules.is_empty());
    }

    #[test]
    fn priority_mistakes_name_their_line_and_key() {
        let cases = [
            (
                r#"vip = { myspace = ["tom"] }"#,
                "priority.vip.myspace",
                "is not a platform",
            ),
            (
                r#"urgent_words = { English = ["outage"] }"#,
                "priority.urgent_words.English",
                "is not a language",
            ),
            (
                r#"urgent_words = { en = ["!!!"] }"#,
                "priority.urgent_words.en",
                "with a letter or digit",
            ),
            (
                r#"page_from = "asap""#,
                "priority.page_from",
                "is not a priority level",
            ),
            (
                "high_from = 90",
                "priority.high_from",
                "the levels must start at rising scores",
            ),
            (
                "repeat_window_days = 0",
                "priority.repeat_window_days",
                "expected a number of days",
            ),
            (
                "vip_points = 100000",
                "priority.vip_points",
                "expected points from",
            ),
            (
                "reach = [{ followers = 100, points = 5 }, { followers = 10, points = 9 }]",
                "priority.reach",
                "rising followers",
            ),
            (
                "first_response_minutes = { soon = 5 }",
                "priority.first_response_minutes.soon",
                "is not a priority level",
            ),
        ];
        for (line, key, message) in cases {
            assert_refused_at(&format!("{GOOD}\n[priority]\n{line}\n"), line, key, message);
        }
        // A table of its own is located at its own key.
        let text = format!("{GOOD}\n[priority.vip]\nx = [\"acme\"]\nfriendster = [\"tom\"]\n");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "/etc/mb/bot-config.toml:{}: `priority.vip.friendster`",
                line_of(&text, "friendster = [\"tom\"]")
            )),
            "{err}"
        );
        let text = format!("{GOOD}\n[[route]]\nname = \"r\"\nmin_priority = \"top\"\n");
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(err.contains("`route[0].min_priority`"), "{err}");
    }
}
