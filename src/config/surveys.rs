//! `[surveys]` (issue 14, part 2): the satisfaction survey asked after a resolve — its
//! scale, its question per language, how often one person may be asked, how it reaches
//! the customer on each platform — and which routes opted in (`survey = true` on a
//! `[[route]]`, `default_route = true` here for mentions that take no route). Absent:
//! nobody is ever asked.

use super::{locate_entry_key, platform_named, RawRoute, Validator};
use crate::domain::routes::DEFAULT_ROUTE;
use crate::domain::survey::{Delivery, Scale, SurveyPolicy};
use crate::domain::Platform;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSurveys {
    #[serde(default = "default_scale")]
    scale: String,
    #[serde(default)]
    questions: BTreeMap<String, String>,
    #[serde(default = "default_language")]
    default_language: String,
    #[serde(default = "default_period")]
    once_per_person: String,
    #[serde(default)]
    delivery: BTreeMap<String, String>,
    /// Mentions that take no `[[route]]` are surveyed too.
    #[serde(default)]
    default_route: bool,
}

fn default_scale() -> String {
    "csat".into()
}

fn default_language() -> String {
    "en".into()
}

fn default_period() -> String {
    "30d".into()
}

const S: &str = "surveys";

/// `30d`, `12h`, `2w`: a whole number of hours, days or weeks, at most about ten years.
fn period(spec: &str) -> Option<chrono::Duration> {
    let spec = spec.trim().to_ascii_lowercase();
    let unit_hours = match spec.chars().last()? {
        'h' => 1,
        'd' => 24,
        'w' => 24 * 7,
        _ => return None,
    };
    let number = &spec[..spec.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours = number.parse::<i64>().ok()?.checked_mul(unit_hours)?;
    (0..=24 * 3660)
        .contains(&hours)
        .then(|| chrono::Duration::hours(hours))
}

impl Validator<'_> {
    pub(super) fn surveys(
        &mut self,
        raw: Option<&RawSurveys>,
        routes: &[RawRoute],
    ) -> Option<SurveyPolicy> {
        let opted_in: Vec<usize> = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.survey)
            .map(|(i, _)| i)
            .collect();
        let Some(raw) = raw else {
            for i in opted_in {
                self.problem_at(
                    locate_entry_key(self.text, "route", i, "survey"),
                    format!("route[{i}].survey"),
                    "asks for a satisfaction survey, but there is no [surveys] section (its scale and questions)",
                );
            }
            return None;
        };
        let scale = Scale::parse(&raw.scale).unwrap_or_else(|| {
            self.problem(
                S,
                "scale",
                format!(
                    "expected \"csat\" (1-5) or \"nps\" (0-10), found {:?}",
                    raw.scale
                ),
            );
            Scale::Csat
        });
        let default_language = raw.default_language.trim().to_ascii_lowercase();
        let mut questions = BTreeMap::new();
        for (language, text) in &raw.questions {
            if text.trim().is_empty() {
                self.problem_at(
                    super::locate_key(self.text, "surveys.questions", language),
                    format!("surveys.questions.{language}"),
                    "is empty: write the question the customer reads, such as \"How did we do? Reply 1-5\"",
                );
                continue;
            }
            questions.insert(language.trim().to_ascii_lowercase(), text.clone());
        }
        if !raw
            .questions
            .keys()
            .any(|l| l.trim().eq_ignore_ascii_case(&default_language))
        {
            self.problem(
                S,
                "default_language",
                format!(
                    "is {default_language:?}, but [surveys.questions] has no question in it (add `{default_language} = \"How did we do? Reply {}-{}\"`)",
                    scale.min(),
                    scale.max()
                ),
            );
        }
        let once_per_person = period(&raw.once_per_person).unwrap_or_else(|| {
            self.problem(
                S,
                "once_per_person",
                format!(
                    "expected a period such as \"30d\", \"12h\" or \"2w\", found {:?}",
                    raw.once_per_person
                ),
            );
            chrono::Duration::days(30)
        });
        let mut delivery = HashMap::new();
        for (name, how) in &raw.delivery {
            let line = super::locate_key(self.text, "surveys.delivery", name);
            let key = format!("surveys.delivery.{name}");
            let Some(platform) = platform_named(name) else {
                self.problem_at(
                    line,
                    key,
                    format!("{name:?} is not a platform (mastodon, bluesky, x, other)"),
                );
                continue;
            };
            let how = match how.trim().to_ascii_lowercase().as_str() {
                "reply" => Delivery::Reply,
                "private" => Delivery::Private,
                _ => {
                    self.problem_at(
                        line,
                        key,
                        format!("expected \"reply\" or \"private\", found {how:?}"),
                    );
                    continue;
                }
            };
            if how == Delivery::Private && platform == Platform::Bluesky {
                self.problem_at(
                    line,
                    key,
                    "Bluesky has no private messages the desk can send: use \"reply\" (a private conversation there is never surveyed)",
                );
                continue;
            }
            delivery.insert(platform, how);
        }
        let mut surveyed: HashSet<String> = opted_in
            .into_iter()
            .map(|i| routes[i].name.clone())
            .collect();
        if raw.default_route {
            surveyed.insert(DEFAULT_ROUTE.to_string());
        }
        Some(SurveyPolicy {
            scale,
            questions,
            default_language,
            once_per_person,
            delivery,
            routes: surveyed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused_at, env_all, parse, GOOD};
    use super::*;

    fn with(section: &str) -> String {
        format!("{GOOD}\n{section}\n")
    }

    const SURVEYS: &str = r#"[surveys]
scale = "csat"
once_per_person = "30d"
default_route = true

[surveys.questions]
en = "How did we do? Reply 1-5"
de = "Wie war es? Antworte 1-5"

[surveys.delivery]
mastodon = "private"
"#;

    #[test]
    fn the_shipped_files_example_parses_once_uncommented() {
        let shipped = include_str!("../../bot-config.toml");
        let example: String = shipped
            .lines()
            .skip_while(|l| *l != "# [surveys]")
            .take_while(|l| !l.is_empty())
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        assert!(example.starts_with("[surveys]\n"), "{example}");
        let p = parse(&with(&example), &env_all)
            .unwrap()
            .surveys
            .expect("the example");
        assert_eq!(p.questions.len(), 3);
        assert_eq!(p.delivery[&Platform::X], Delivery::Private);
        assert!(p.routes.contains(DEFAULT_ROUTE));
    }

    #[test]
    fn absent_means_nobody_is_asked() {
        assert!(parse(GOOD, &env_all).unwrap().surveys.is_none());
    }

    #[test]
    fn the_section_is_read_with_its_questions_period_delivery_and_routes() {
        let text = format!(
            "{}\n[[route]]\nname = \"vip\"\nplatforms = [\"x\"]\nsurvey = true\n\n[[route]]\nname = \"press\"\nkeywords = [\"press\"]\n",
            with(SURVEYS)
        );
        let p = parse(&text, &env_all).unwrap().surveys.unwrap();
        assert_eq!(p.scale, Scale::Csat);
        assert_eq!(p.questions["de"], "Wie war es? Antworte 1-5");
        assert_eq!(p.default_language, "en");
        assert_eq!(p.once_per_person, chrono::Duration::days(30));
        assert_eq!(p.delivery[&Platform::Mastodon], Delivery::Private);
        assert_eq!(
            p.routes,
            HashSet::from(["vip".to_string(), "default".to_string()])
        );
        let nps = parse(
            &with(&SURVEYS.replace("\"csat\"", "\"nps\"").replace("30d", "2w")),
            &env_all,
        )
        .unwrap()
        .surveys
        .unwrap();
        assert_eq!(nps.scale, Scale::Nps);
        assert_eq!(nps.once_per_person, chrono::Duration::days(14));
    }

    #[test]
    fn mistakes_are_refused_at_their_line() {
        // (what is replaced, by what, the line refused, its key, what it says)
        let mistakes = [
            (
                "mastodon = \"private\"",
                "bluesky = \"private\"",
                "surveys.delivery.bluesky",
                "Bluesky has no private messages",
            ),
            (
                "mastodon = \"private\"",
                "mastodon = \"dm\"",
                "surveys.delivery.mastodon",
                "expected \"reply\" or \"private\"",
            ),
            (
                "scale = \"csat\"",
                "scale = \"stars\"",
                "surveys.scale",
                "expected \"csat\"",
            ),
            (
                "once_per_person = \"30d\"",
                "once_per_person = \"a month\"",
                "surveys.once_per_person",
                "expected a period",
            ),
            (
                "de = \"Wie war es? Antworte 1-5\"",
                "de = \" \"",
                "surveys.questions.de",
                "is empty",
            ),
            (
                "default_route = true",
                "default_route = true\ndefault_language = \"fr\"",
                "surveys.default_language",
                "has no question in it",
            ),
        ];
        for (was, now, key, says) in mistakes {
            let line = now.lines().last().unwrap();
            assert_refused_at(&with(&SURVEYS.replace(was, now)), line, key, says);
        }
        let orphan = format!("{GOOD}\n[[route]]\nname = \"vip\"\nsurvey = true\n");
        assert_refused_at(
            &orphan,
            "survey = true",
            "route[0].survey",
            "there is no [surveys] section",
        );
    }
}
