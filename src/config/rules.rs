//! `[[rules]]`: the team's rules for new mentions (see `domain::triage`). Each names
//! what it matches (`authors`, `words`, `patterns`, `links`, `platforms`, `languages`:
//! every one given must hold, any entry of a list will do) and what it does (`ignore`,
//! `tags`, `route`). Regular expressions are compiled here, within size limits, so a bad
//! one stops the bot at start with its line; a route must be one of the `[[route]]`s.

use super::priority::is_language_key;
use super::{locate_entry_key, platform_named, Validator};
use crate::domain::priority::plain_handle;
use crate::domain::routes::{Routes, DEFAULT_ROUTE};
use crate::domain::triage::{Pattern, Rule};
use crate::domain::words::Term;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Rules at most, and entries in any one list of a rule.
const MAX_RULES: usize = 500;
const MAX_LIST: usize = 1000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    name: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    links: Vec<String>,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    ignore: bool,
    #[serde(default)]
    tags: Vec<String>,
    route: Option<String>,
}

/// `domain` as links are compared: lowercase, no `www.`; `None` if it is not a bare
/// domain (a scheme, a path, spaces).
fn bare_domain(domain: &str) -> Option<String> {
    let d = domain.trim().to_ascii_lowercase();
    let d = d.strip_prefix("www.").unwrap_or(&d).to_string();
    let ok = d.contains('.')
        && !d.starts_with('.')
        && !d.ends_with('.')
        && d.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    ok.then_some(d)
}

fn is_tag(tag: &str) -> bool {
    let t = tag.trim();
    !t.is_empty() && t.chars().count() <= 40 && !t.chars().any(char::is_control)
}

impl Validator<'_> {
    /// The line of the entry of `key` holding `needle` (a list spread over lines), else
    /// of `key`, else of the rule's header.
    fn rule_line(&self, index: usize, key: &str, needle: Option<&str>) -> Option<usize> {
        let at = locate_entry_key(self.text, "rules", index, key)?;
        let Some(needle) = needle.filter(|n| !n.is_empty()) else {
            return Some(at);
        };
        let found = self
            .text
            .lines()
            .enumerate()
            .skip(at - 1)
            .take_while(|(n, l)| *n + 1 == at || !l.trim_start().starts_with('['))
            .find(|(_, l)| l.contains(needle))
            .map(|(n, _)| n + 1);
        Some(found.unwrap_or(at))
    }

    fn rule_problem(
        &mut self,
        index: usize,
        key: &str,
        needle: Option<&str>,
        message: impl Into<String>,
    ) {
        let line = self.rule_line(index, key, needle);
        self.problem_at(line, format!("rules[{index}].{key}"), message);
    }

    pub(super) fn rules(&mut self, raw: &[RawRule], routes: &Routes) -> Vec<Rule> {
        if raw.len() > MAX_RULES {
            self.problem_at(
                locate_entry_key(self.text, "rules", MAX_RULES, "name"),
                "rules".into(),
                format!("at most {MAX_RULES} rules"),
            );
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for (i, r) in raw.iter().enumerate().take(MAX_RULES) {
            let name = r.name.trim();
            if name.is_empty() || name.chars().count() > 100 || !names.insert(name.to_string()) {
                self.rule_problem(
                    i,
                    "name",
                    None,
                    format!(
                        "expected a unique name of up to 100 characters, found {:?}",
                        r.name
                    ),
                );
            }
            for (key, len) in [
                ("authors", r.authors.len()),
                ("words", r.words.len()),
                ("patterns", r.patterns.len()),
                ("links", r.links.len()),
                ("tags", r.tags.len()),
            ] {
                if len > MAX_LIST {
                    self.rule_problem(i, key, None, format!("at most {MAX_LIST} entries"));
                }
            }
            let mut rule = Rule {
                name: name.to_string(),
                ..Rule::default()
            };
            for a in &r.authors {
                match plain_handle(a) {
                    h if h.is_empty() => {
                        self.rule_problem(i, "authors", None, "an author's handle is empty")
                    }
                    h => rule.authors.push(h),
                }
            }
            for w in &r.words {
                match Term::new(w).filter(|_| w.chars().count() <= 100) {
                    Some(t) => rule.words.push(t),
                    None => self.rule_problem(
                        i,
                        "words",
                        Some(w),
                        format!("{w:?} is no word: expected a word or short phrase with a letter or digit in it"),
                    ),
                }
            }
            for p in &r.patterns {
                match Pattern::new(p) {
                    Ok(compiled) => rule.patterns.push(compiled),
                    Err(why) => self.rule_problem(
                        i,
                        "patterns",
                        Some(p),
                        format!("not a usable regular expression: {why}"),
                    ),
                }
            }
            for l in &r.links {
                match bare_domain(l) {
                    Some(d) => rule.links.push(d),
                    None => self.rule_problem(
                        i,
                        "links",
                        Some(l),
                        format!("{l:?} is not a domain: write it alone, e.g. \"bit.ly\""),
                    ),
                }
            }
            for p in &r.platforms {
                match platform_named(p) {
                    Some(platform) => rule.platforms.push(platform),
                    None => self.rule_problem(
                        i,
                        "platforms",
                        Some(p),
                        format!("{p:?} is not a platform (mastodon, bluesky, x, other)"),
                    ),
                }
            }
            for l in &r.languages {
                let l = l.trim().to_ascii_lowercase();
                if is_language_key(&l) && l != "all" {
                    rule.languages.push(l);
                } else {
                    self.rule_problem(
                        i,
                        "languages",
                        Some(&l),
                        format!("{l:?} is not a language: use a lowercase code such as \"en\""),
                    );
                }
            }
            for t in &r.tags {
                if is_tag(t) {
                    rule.actions.tags.push(t.trim().to_string());
                } else {
                    self.rule_problem(i, "tags", Some(t), "expected tags of 1 to 40 characters");
                }
            }
            if let Some(route) = &r.route {
                let known =
                    route == DEFAULT_ROUTE || routes.routes.iter().any(|x| &x.name == route);
                if known {
                    rule.actions.route = Some(route.clone());
                } else {
                    let names: Vec<&str> = routes.routes.iter().map(|x| x.name.as_str()).collect();
                    self.rule_problem(
                        i,
                        "route",
                        None,
                        format!(
                            "there is no [[route]] named {route:?} (routes: {})",
                            if names.is_empty() {
                                "none but \"default\"".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    );
                }
            }
            rule.actions.ignore = r.ignore;
            let conditions = r.authors.len()
                + r.words.len()
                + r.patterns.len()
                + r.links.len()
                + r.platforms.len()
                + r.languages.len();
            if conditions == 0 {
                self.rule_problem(
                    i,
                    "name",
                    None,
                    "matches every mention: give it authors, words, patterns, links, platforms or languages",
                );
            }
            if !r.ignore && r.tags.is_empty() && r.route.is_none() {
                self.rule_problem(
                    i,
                    "name",
                    None,
                    "does nothing: give it ignore = true, tags or a route",
                );
            }
            rules.push(rule);
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_written_alone() {
        assert_eq!(bare_domain("Bit.ly"), Some("bit.ly".into()));
        assert_eq!(bare_domain("www.scam.example"), Some("scam.example".into()));
        assert_eq!(bare_domain("https://bit.ly"), None);
        assert_eq!(bare_domain("bit.ly/x"), None);
        assert_eq!(bare_domain("localhost"), None);
        assert!(is_tag("billing"));
        assert!(!is_tag(" "));
    }
}

#[cfg(test)]
mod config_tests {
    use super::super::tests::{assert_refused_at, env_all, line_of, parse, GOOD};

    const RULES: &str = r#"
[[route]]
name = "billing"
keywords = ["invoice"]

[[rules]]
name = "crypto spam"
words = ["airdrop", "giveaway"]
patterns = ['(?i)free\s+crypto']
links = ["Scam.Example"]
ignore = true

[[rules]]
name = "refunds"
words = ["refund"]
languages = ["EN"]
platforms = ["x"]
tags = ["billing", "money"]
route = "billing"
"#;

    #[test]
    fn rules_are_read_with_their_patterns_compiled_and_routes_checked() {
        let c = parse(&format!("{GOOD}{RULES}"), &env_all).unwrap();
        let rules = &c.routes.triage.rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].name, "crypto spam");
        assert!(rules[0].actions.ignore);
        assert_eq!(rules[0].patterns[0].as_str(), r"(?i)free\s+crypto");
        assert_eq!(rules[0].links, vec!["scam.example".to_string()]);
        assert_eq!(rules[1].languages, vec!["en".to_string()]);
        assert_eq!(rules[1].actions.route.as_deref(), Some("billing"));
        assert_eq!(rules[1].actions.tags.len(), 2);
    }

    #[test]
    fn rule_mistakes_name_their_line_and_key_and_a_bad_pattern_its_own_line() {
        let cases = [
            (
                "patterns = ['(?i)free\\s+(crypto']",
                "rules[0].patterns",
                "not a usable regular expression",
            ),
            (
                "patterns = ['\\w{1000}\\w{1000}\\w{1000}']",
                "rules[0].patterns",
                "compiles too big",
            ),
            (
                r#"route = "nowhere""#,
                "rules[0].route",
                "there is no [[route]] named",
            ),
            (
                r#"links = ["https://bit.ly/x"]"#,
                "rules[0].links",
                "is not a domain",
            ),
            (
                r#"platforms = ["myspace"]"#,
                "rules[0].platforms",
                "is not a platform",
            ),
            (
                r#"languages = ["english"]"#,
                "rules[0].languages",
                "is not a language",
            ),
            (r#"tags = [""]"#, "rules[0].tags", "expected tags"),
        ];
        for (line, key, message) in cases {
            let text = format!(
                "{GOOD}\n[[rules]]\nname = \"r\"\nwords = [\"x\"]\nignore = true\n{line}\n"
            );
            assert_refused_at(&text, line, key, message);
        }
        // In a list over several lines, the pattern's own line.
        let text = format!(
            "{GOOD}\n[[rules]]\nname = \"r\"\nignore = true\npatterns = [\n  'fine',\n  '[unclosed',\n]\n"
        );
        let err = parse(&text, &env_all).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "/etc/mb/bot-config.toml:{}: `rules[0].patterns`",
                line_of(&text, "'[unclosed',")
            )),
            "{err}"
        );
        for (body, message) in [
            ("ignore = true", "matches every mention"),
            ("words = [\"x\"]", "does nothing"),
        ] {
            let text = format!("{GOOD}\n[[rules]]\nname = \"r\"\n{body}\n");
            let err = parse(&text, &env_all).unwrap_err().to_string();
            assert!(
                err.contains("`rules[0].name`") && err.contains(message),
                "{err}"
            );
        }
        let twice = format!(
            "{GOOD}\n[[rules]]\nname = \"r\"\nwords = [\"x\"]\nignore = true\n[[rules]]\nname = \"r\"\nwords = [\"y\"]\nignore = true\n"
        );
        let err = parse(&twice, &env_all).unwrap_err().to_string();
        assert!(
            err.contains("`rules[1].name`") && err.contains("unique"),
            "{err}"
        );
    }
}
