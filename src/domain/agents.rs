//! Agents who work on more than one surface. Slack and Discord each identify a person by
//! their own user id, so without help the same person is two agents: a claim taken on
//! Discord could not be resolved by its holder on Slack. The config's `[[agents]]` entries
//! say which accounts are one person; the core then treats them as one for authorisation,
//! for "is this the holder?", and for on-call membership (a person on call is on call
//! with every account they have).

use serde::{Deserialize, Serialize};

/// One person and their chat accounts (`[[agents]]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    /// Slack user id (`U0123ABCD`).
    #[serde(default)]
    pub slack: Option<String>,
    /// Discord user id (a snowflake).
    #[serde(default)]
    pub discord: Option<String>,
}

impl Agent {
    /// The person's on-call member keys (`slack:U…`, `discord:…`), Slack first.
    pub fn keys(&self) -> Vec<String> {
        let slack = self.slack.iter().map(|id| format!("slack:{id}"));
        let discord = self.discord.iter().map(|id| format!("discord:{id}"));
        slack.chain(discord).collect()
    }

    fn has(&self, key: &str) -> bool {
        match key.split_once(':') {
            Some(("slack", id)) => self.slack.as_deref() == Some(id),
            Some(("discord", id)) => self.discord.as_deref() == Some(id),
            _ => false,
        }
    }
}

/// Every configured person, looked up by any of their member keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agents(Vec<Agent>);

/// A mistake in one `[[agents]]` entry: its position (0-based), the key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProblem {
    pub index: usize,
    pub key: &'static str,
    pub message: String,
}

impl Agents {
    pub fn new(list: Vec<Agent>) -> Agents {
        Agents(list)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The person a member key (`slack:U…`) belongs to.
    pub fn of(&self, key: &str) -> Option<&Agent> {
        self.0.iter().find(|a| a.has(key))
    }

    /// Whether two member keys are the same person.
    pub fn same(&self, a: &str, b: &str) -> bool {
        a == b || self.of(a).is_some_and(|p| p.has(b))
    }

    /// Each key followed by the other accounts of its person, without repeats: whoever
    /// is on call is on call on every surface they work in.
    pub fn expand(&self, keys: Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for key in keys {
            let linked = self.of(&key).map(Agent::keys).unwrap_or_default();
            for k in std::iter::once(key).chain(linked) {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Entries that cannot be right: no name, no account, an id of the wrong shape, or
    /// an account or name given to two people.
    pub fn problems(&self) -> Vec<AgentProblem> {
        let mut out = Vec::new();
        let mut problem = |index, key, message: String| {
            out.push(AgentProblem {
                index,
                key,
                message,
            })
        };
        for (i, a) in self.0.iter().enumerate() {
            if a.name.trim().is_empty() {
                problem(i, "name", "expected the person's name, e.g. \"Kim\"".into());
            }
            if a.slack.is_none() && a.discord.is_none() {
                problem(
                    i,
                    "slack",
                    "expected at least one account: slack = \"U0123ABCD\" and/or discord = \"112233445566778899\"".into(),
                );
            }
            if let Some(id) = &a.slack {
                let ok = id.len() >= 5
                    && id.starts_with(['U', 'W'])
                    && id
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                if !ok {
                    problem(
                        i,
                        "slack",
                        format!("expected a Slack user id such as \"U0123ABCD\", found {id:?}"),
                    );
                }
            }
            if let Some(id) = &a.discord {
                let ok = (17..=20).contains(&id.len()) && id.chars().all(|c| c.is_ascii_digit());
                if !ok {
                    problem(
                        i,
                        "discord",
                        format!("expected a Discord user id (17 to 20 digits), found {id:?}"),
                    );
                }
            }
            for earlier in &self.0[..i] {
                if !a.name.trim().is_empty() && earlier.name.trim() == a.name.trim() {
                    problem(
                        i,
                        "name",
                        format!("{:?} is listed twice: one entry per person", a.name),
                    );
                }
                for (key, mine, theirs) in [
                    ("slack", &a.slack, &earlier.slack),
                    ("discord", &a.discord, &earlier.discord),
                ] {
                    if mine.is_some() && mine == theirs {
                        problem(
                            i,
                            key,
                            format!(
                                "{} is already {:?}'s account: an account belongs to one person",
                                mine.as_deref().unwrap_or_default(),
                                earlier.name
                            ),
                        );
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kim() -> Agent {
        Agent {
            name: "Kim".into(),
            slack: Some("U0KIM".into()),
            discord: Some("1200000000000000009".into()),
        }
    }

    #[test]
    fn linked_accounts_are_one_person_and_others_are_not() {
        let agents = Agents::new(vec![kim()]);
        assert!(agents.same("slack:U0KIM", "discord:1200000000000000009"));
        assert!(agents.same("discord:1200000000000000009", "slack:U0KIM"));
        assert!(!agents.same("slack:U0KIM", "discord:1200000000000000001"));
        assert!(!agents.same("slack:U0ANA", "discord:1200000000000000009"));
        assert!(agents.same("slack:U0ANA", "slack:U0ANA"));
        assert_eq!(
            agents.expand(vec![
                "discord:1200000000000000009".into(),
                "slack:U0ANA".into()
            ]),
            ["discord:1200000000000000009", "slack:U0KIM", "slack:U0ANA"]
        );
    }

    #[test]
    fn wrong_entries_are_named_by_position_and_key() {
        let agents = Agents::new(vec![
            kim(),
            Agent {
                name: "Kim".into(),
                slack: Some("kim".into()),
                discord: Some("1200000000000000009".into()),
            },
            Agent {
                name: " ".into(),
                slack: None,
                discord: None,
            },
        ]);
        let found: Vec<(usize, &str)> =
            agents.problems().iter().map(|p| (p.index, p.key)).collect();
        assert_eq!(
            found,
            [
                (1, "slack"),
                (1, "name"),
                (1, "discord"),
                (2, "name"),
                (2, "slack")
            ]
        );
        assert!(Agents::new(vec![kim()]).problems().is_empty());
    }
}
