//! Triage on arrival: the team's rules (`[[rules]]`) and the ticket's priority. A rule
//! matches mentions by author, words, regular expressions, linked domains, platform and
//! language (every condition it gives must hold; any entry of a list will do), and then
//! ignores the mention (spam), tags it, or sends it to a named route. Nothing is ever
//! deleted by a rule: an ignored mention is still a ticket, stored, counted and findable,
//! only without a card; what each rule did is kept on the ticket and in its audit line.

pub use super::model::RuleHit;
use super::priority::{plain_handle, Contact, Priority, PriorityPolicy};
use super::words::{first_match, Term, Words, MATCHED_BYTES};
use super::{Mention, Platform};
use chrono::{DateTime, Utc};

/// The most a rule's regular expression may cost once compiled (bytes): far above any
/// sensible pattern, far below what would slow intake.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// The longest pattern accepted as written.
pub const PATTERN_MAX_LEN: usize = 1000;

/// A rule's regular expression, compiled once when the configuration is read.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    /// The pattern compiled within the size limits, or why it cannot be.
    pub fn new(source: &str) -> Result<Pattern, String> {
        if source.len() > PATTERN_MAX_LEN {
            return Err(format!(
                "a pattern of {} characters is too long (at most {PATTERN_MAX_LEN})",
                source.len()
            ));
        }
        regex::RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(Pattern)
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => {
                    "the pattern compiles too big (make it simpler)".to_string()
                }
                other => other.to_string(),
            })
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// What a rule does to the mentions it matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actions {
    /// Spam: stored as an ignored ticket, no card.
    pub ignore: bool,
    pub tags: Vec<String>,
    /// Send the ticket to this route (its SLA, paging, rotations).
    pub route: Option<String>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    pub name: String,
    /// Handles as lists compare them (see [`plain_handle`]); empty: anyone.
    pub authors: Vec<String>,
    pub words: Vec<Term>,
    pub patterns: Vec<Pattern>,
    /// Domains (lowercase): a link to one of them or to a subdomain matches.
    pub links: Vec<String>,
    pub platforms: Vec<Platform>,
    /// Primary language tags (`en`); empty: any language.
    pub languages: Vec<String>,
    pub actions: Actions,
}

/// What the mention holds that rules look at, worked out once.
struct Seen<'a> {
    mention: &'a Mention,
    words: &'a Words,
    text: &'a str,
    hosts: Vec<String>,
    language: Option<String>,
}

fn primary(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The hosts of the links in `text`: `https://…` URLs as a browser reads them (so
/// `https://good.example@evil.example/` is evil.example), and bare `bit.ly/x` forms.
pub fn linked_hosts(text: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    for token in text.split_whitespace() {
        let token = token.trim_matches(|c: char| "()[]{}<>\"'.,;:!?".contains(c));
        let host = if token.contains("://") {
            url::Url::parse(token)
                .ok()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        } else {
            let host = token.split(['/', '?', '#']).next().unwrap_or("");
            (host.contains('.') && !host.contains('@') && !host.starts_with('.'))
                .then(|| host.to_ascii_lowercase())
        };
        if let Some(h) = host {
            let h = h
                .trim_start_matches("www.")
                .trim_end_matches('.')
                .to_string();
            if !h.is_empty() && !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    hosts
}

fn bounded(text: &str) -> &str {
    let mut end = text.len().min(MATCHED_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Rule {
    /// What matched, if every condition the rule gives holds.
    fn matches(&self, seen: &Seen<'_>) -> Option<String> {
        let m = seen.mention;
        let mut why = Vec::new();
        if !self.platforms.is_empty() {
            if !self.platforms.contains(&m.platform) {
                return None;
            }
            why.push(format!("platform {}", m.platform.label()));
        }
        if !self.languages.is_empty() {
            let lang = seen.language.as_deref()?;
            if !self.languages.iter().any(|l| l == lang) {
                return None;
            }
            why.push(format!("language {lang}"));
        }
        if !self.authors.is_empty() {
            let handle = plain_handle(&m.author.handle);
            if !self.authors.contains(&handle) {
                return None;
            }
            why.push(format!("author @{handle}"));
        }
        if !self.words.is_empty() {
            let term = first_match(seen.words, &self.words)?;
            why.push(format!("word {:?}", term.shown));
        }
        if !self.patterns.is_empty() {
            let p = self.patterns.iter().find(|p| p.0.is_match(seen.text))?;
            why.push(format!("pattern `{}`", p.as_str()));
        }
        if !self.links.is_empty() {
            let domain = self.links.iter().find(|d| {
                seen.hosts
                    .iter()
                    .any(|h| h == *d || h.ends_with(&format!(".{d}")))
            })?;
            why.push(format!("link {domain}"));
        }
        Some(why.join(", "))
    }

    fn did(&self) -> String {
        let mut did = Vec::new();
        if self.actions.ignore {
            did.push("ignored".to_string());
        }
        if !self.actions.tags.is_empty() {
            did.push(format!("tagged {}", self.actions.tags.join(", ")));
        }
        if let Some(route) = &self.actions.route {
            did.push(format!("routed to {route}"));
        }
        did.join("; ")
    }
}

/// The rules and the priority policy, as intake applies them to every new ticket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Triage {
    pub priority: PriorityPolicy,
    pub rules: Vec<Rule>,
}

/// What triage decided about one new mention.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    pub priority: Priority,
    /// Every rule that matched, in the order configured.
    pub hits: Vec<RuleHit>,
    pub tags: Vec<String>,
    /// The route the first routing rule named.
    pub route: Option<String>,
    pub ignored: bool,
}

impl Judgement {
    /// The ticket's first audit line: what arrived and what the rules did with it.
    pub fn audit_line(&self) -> String {
        if self.hits.is_empty() {
            return "mention received".into();
        }
        let rules: Vec<String> = self.hits.iter().map(RuleHit::sentence).collect();
        let head = if self.ignored {
            "mention received and ignored by a rule"
        } else {
            "mention received"
        };
        format!("{head}; {}", rules.join("; "))
    }
}

impl Triage {
    /// Judge a new mention whose author's earlier tickets are `contacts`, received at
    /// `now`. The language judged in is the one the desk goes by (the detected one when
    /// the detector was sure, else the platform's tag).
    pub fn judge(&self, m: &Mention, contacts: &[Contact], now: DateTime<Utc>) -> Judgement {
        let words = Words::of(&m.text);
        let language = m.language_in_use().map(|(l, _)| l);
        let needs_hosts = self.rules.iter().any(|r| !r.links.is_empty());
        let seen = Seen {
            mention: m,
            words: &words,
            text: bounded(&m.text),
            hosts: if needs_hosts {
                linked_hosts(bounded(&m.text))
            } else {
                Vec::new()
            },
            language: language.map(primary),
        };
        let mut judged = Judgement {
            priority: self.priority.assess(m, &words, language, contacts, now),
            ..Judgement::default()
        };
        for rule in &self.rules {
            let Some(matched) = rule.matches(&seen) else {
                continue;
            };
            judged.ignored |= rule.actions.ignore;
            for tag in &rule.actions.tags {
                if !judged.tags.contains(tag) {
                    judged.tags.push(tag.clone());
                }
            }
            if judged.route.is_none() {
                judged.route = rule.actions.route.clone();
            }
            judged.hits.push(RuleHit {
                rule: rule.name.clone(),
                matched,
                did: rule.did(),
                ignored: rule.actions.ignore,
            });
        }
        judged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::priority::tests::now;

    /// A post on X by `handle`.
    fn mention(handle: &str, text: &str) -> Mention {
        Mention {
            platform: Platform::X,
            ..crate::domain::priority::tests::mention(handle, text, None)
        }
    }

    fn rule(name: &str) -> Rule {
        Rule {
            name: name.into(),
            ..Rule::default()
        }
    }

    fn triage(rules: Vec<Rule>) -> Triage {
        Triage {
            rules,
            ..Triage::default()
        }
    }

    fn spam_words() -> Rule {
        Rule {
            words: vec![
                Term::new("airdrop").unwrap(),
                Term::new("giveaway").unwrap(),
            ],
            actions: Actions {
                ignore: true,
                ..Actions::default()
            },
            ..rule("crypto spam")
        }
    }

    #[test]
    fn a_spam_word_ignores_the_mention_and_says_which_rule() {
        let j = triage(vec![spam_words()]).judge(&mention("kim", "Free AIRDROP here"), &[], now());
        assert!(j.ignored);
        assert_eq!(j.hits.len(), 1);
        assert_eq!(
            j.hits[0].sentence(),
            "rule \"crypto spam\": ignored (word \"airdrop\")"
        );
        assert_eq!(
            j.audit_line(),
            "mention received and ignored by a rule; rule \"crypto spam\": ignored (word \"airdrop\")"
        );
        let j = triage(vec![spam_words()]).judge(&mention("kim", "my airdropped file"), &[], now());
        assert!(!j.ignored, "whole words only");
        assert_eq!(j.audit_line(), "mention received");
    }

    #[test]
    fn authors_patterns_and_links_each_match_and_all_conditions_must_hold() {
        let by_author = Rule {
            authors: vec!["spambot".into()],
            ..rule("known bot")
        };
        let t = triage(vec![by_author]);
        assert_eq!(
            t.judge(&mention("@SpamBot", "hi"), &[], now()).hits.len(),
            1
        );
        assert!(t.judge(&mention("kim", "hi"), &[], now()).hits.is_empty());

        let pattern = Rule {
            patterns: vec![Pattern::new(r"(?i)free\s+crypto").unwrap()],
            ..rule("pattern")
        };
        let j = triage(vec![pattern]).judge(&mention("kim", "get FREE   crypto"), &[], now());
        assert_eq!(j.hits[0].matched, "pattern `(?i)free\\s+crypto`");

        let links = Rule {
            links: vec!["scam.example".into()],
            ..rule("links")
        };
        let t = triage(vec![links]);
        for text in [
            "see https://scam.example/win",
            "see https://www.login.scam.example/x",
            "see (scam.example/abc).",
            "https://good.example@scam.example/",
        ] {
            assert_eq!(
                t.judge(&mention("kim", text), &[], now()).hits.len(),
                1,
                "{text}"
            );
        }
        for text in [
            "notscam.example",
            "https://scam.example.org/",
            "mail me@scam.example",
        ] {
            assert!(
                t.judge(&mention("kim", text), &[], now()).hits.is_empty(),
                "{text}"
            );
        }

        let both = Rule {
            platforms: vec![Platform::Mastodon],
            words: vec![Term::new("airdrop").unwrap()],
            ..rule("both")
        };
        let t = triage(vec![both]);
        assert!(
            t.judge(&mention("kim", "airdrop"), &[], now())
                .hits
                .is_empty(),
            "on X, not Mastodon"
        );
        let mut on_mastodon = mention("kim", "airdrop");
        on_mastodon.platform = Platform::Mastodon;
        assert_eq!(
            t.judge(&on_mastodon, &[], now()).hits[0].matched,
            "platform Mastodon, word \"airdrop\""
        );
    }

    #[test]
    fn a_language_condition_needs_a_language() {
        let german = Rule {
            languages: vec!["de".into()],
            actions: Actions {
                tags: vec!["dach".into()],
                ..Actions::default()
            },
            ..rule("german")
        };
        let t = triage(vec![german]);
        let mut m = mention("kim", "Hallo");
        m.language = Some("de-CH".into());
        assert_eq!(t.judge(&m, &[], now()).tags, vec!["dach".to_string()]);
        m.language = None;
        assert!(t.judge(&m, &[], now()).tags.is_empty());
        // The language the desk goes by: the detector's, when it was sure.
        m.language = Some("en".into());
        m.detected_language = Some(crate::domain::DetectedLanguage {
            language: Some("de".into()),
            confidence: 97,
            sure: true,
        });
        assert_eq!(t.judge(&m, &[], now()).tags, vec!["dach".to_string()]);
    }

    #[test]
    fn tags_gather_and_the_first_routing_rule_names_the_route() {
        let billing = Rule {
            words: vec![Term::new("invoice").unwrap()],
            actions: Actions {
                tags: vec!["billing".into()],
                route: Some("billing".into()),
                ..Actions::default()
            },
            ..rule("billing")
        };
        let urgent = Rule {
            words: vec![Term::new("invoice").unwrap()],
            actions: Actions {
                tags: vec!["billing".into(), "money".into()],
                route: Some("later".into()),
                ..Actions::default()
            },
            ..rule("money")
        };
        let j = triage(vec![billing, urgent]).judge(&mention("kim", "my invoice"), &[], now());
        assert_eq!(j.tags, vec!["billing".to_string(), "money".to_string()]);
        assert_eq!(j.route.as_deref(), Some("billing"));
        assert!(!j.ignored);
        assert_eq!(j.hits[0].did, "tagged billing; routed to billing");
        assert!(j
            .audit_line()
            .starts_with("mention received; rule \"billing\""));
    }

    #[test]
    fn patterns_are_bounded_and_hostile_text_never_panics() {
        assert!(Pattern::new("(").is_err());
        assert!(Pattern::new(&"a".repeat(PATTERN_MAX_LEN + 1)).is_err());
        let huge = Pattern::new(r"\w{1000}\w{1000}\w{1000}");
        assert!(huge.is_err(), "too big once compiled");
        let t = triage(vec![Rule {
            patterns: vec![Pattern::new(r"x$").unwrap()],
            links: vec!["a.example".into()],
            ..rule("r")
        }]);
        let long = format!("{} a.example x", "é".repeat(MATCHED_BYTES));
        let _ = t.judge(&mention("kim", &long), &[], now());
        for text in ["https://[::1", "http://", "://", "..", "\u{0}.\u{0}/"] {
            let _ = linked_hosts(text);
        }
    }
}
