//! `[approvals]`: which drafts wait for a second pair of eyes before they are sent.

use super::Validator;
use crate::domain::approval::ApprovalPolicy;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprovals {
    /// Replies to authors with at least this many followers wait.
    min_reach: Option<u64>,
    /// Replies on tickets of this priority or higher wait (`high`, `urgent`).
    min_priority: Option<String>,
    /// Replies whose text, or whose mention, contains one of these words wait.
    #[serde(default)]
    words: Vec<String>,
    /// Agents in training (`slack:U…`, `discord:…`): their drafts wait, they approve none.
    #[serde(default)]
    trainees: Vec<String>,
    /// Bulk answers to an incident wait for approval.
    #[serde(default)]
    bulk_answers: bool,
    /// Remind the on-call agents after a draft has waited this long (0: never).
    #[serde(default = "default_remind_after")]
    remind_after_minutes: u32,
}

fn default_remind_after() -> u32 {
    15
}

impl Validator<'_> {
    pub(super) fn approvals(&mut self, raw: Option<&RawApprovals>) -> ApprovalPolicy {
        let Some(raw) = raw else {
            return ApprovalPolicy::default();
        };
        let mut words = Vec::new();
        for w in &raw.words {
            let w = w.trim().to_lowercase();
            if w.is_empty() || w.chars().count() > 100 {
                self.problem("approvals", "words", "each word: 1 to 100 characters");
            } else if !words.contains(&w) {
                words.push(w);
            }
        }
        let mut trainees = Vec::new();
        for t in &raw.trainees {
            let ok = match t.split_once(':') {
                Some(("slack", id)) => {
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())
                }
                Some(("discord", id)) => !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
                _ => false,
            };
            if ok {
                trainees.push(t.clone());
            } else {
                self.problem(
                    "approvals",
                    "trainees",
                    "each trainee is `slack:<user id>` (U…) or `discord:<user id>` (digits)",
                );
            }
        }
        let min_priority = raw.min_priority.as_deref().and_then(|name| {
            let level = crate::domain::Level::parse(name);
            if level.is_none() {
                self.problem(
                    "approvals",
                    "min_priority",
                    "expected one of low, normal, high, urgent",
                );
            }
            level
        });
        if raw.remind_after_minutes > 24 * 60 {
            self.problem("approvals", "remind_after_minutes", "expected 0 to 1440");
        }
        ApprovalPolicy {
            min_reach: raw.min_reach,
            min_priority,
            words,
            trainees,
            bulk_answers: raw.bulk_answers,
            remind_after: (raw.remind_after_minutes > 0)
                .then(|| chrono::Duration::minutes(raw.remind_after_minutes.min(1440).into())),
        }
    }
}
