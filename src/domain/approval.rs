//! A second pair of eyes: which drafts wait for another agent before they go out. A draft
//! is held when the customer reaches many people, when the draft or the mention carries a
//! risky word (refund, legal), when its author is still in training, or when it answers a
//! whole incident at once. The rule only names the reasons; `rules` holds the draft, and
//! approving it is never open to the person who wrote it.

use super::Ticket;
use chrono::Duration;

/// What makes a draft wait for approval; the default holds nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApprovalPolicy {
    /// Hold replies whose text, or whose mention, contains one of these words
    /// (lower case; matched as whole words, ignoring case).
    pub words: Vec<String>,
    /// Agents in training (member keys such as `slack:U0ANA` or `discord:123`): every
    /// draft of theirs waits, and they approve nobody's.
    pub trainees: Vec<String>,
    /// Bulk answers to an incident wait for approval.
    pub bulk_answers: bool,
    /// Remind the on-call agents when a draft has waited this long (None: never).
    pub remind_after: Option<Duration>,
}

impl ApprovalPolicy {
    /// Whether anything is ever held.
    pub fn holds_anything(&self) -> bool {
        !self.words.is_empty() || !self.trainees.is_empty() || self.bulk_answers
    }

    /// Why a draft of `texts` on `ticket` must wait for approval, whoever wrote it (the
    /// author's training is the desk's to know: see `Desk::is_trainee`); empty when it
    /// may go out at once.
    pub fn reasons(&self, ticket: &Ticket, texts: &[&str]) -> Vec<String> {
        let mut reasons = Vec::new();
        let mut risky: Vec<&str> = Vec::new();
        for word in &self.words {
            let found = texts.iter().any(|t| contains_word(t, word))
                || contains_word(&ticket.mention.text, word);
            if found && !risky.contains(&word.as_str()) {
                risky.push(word);
            }
        }
        if !risky.is_empty() {
            reasons.push(format!("mentions {}", risky.join(", ")));
        }
        reasons
    }
}

/// Whether `word` (lower case, possibly several words) appears in `text` as a whole word,
/// ignoring case: "refund" matches "Refund?" but not "refunded".
pub fn contains_word(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let part_of_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(part_of_word) && !after.is_some_and(part_of_word)
    })
}

/// 1,234,567 → "1.2M"; 48,200 → "48.2k"; 950 → "950".
pub fn human_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => trim(format!("{:.1}", n as f64 / 1_000.0)) + "k",
        _ => trim(format!("{:.1}", n as f64 / 1_000_000.0)) + "M",
    }
}

fn trim(s: String) -> String {
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whole_words_in_any_case() {
        assert!(contains_word("Can I get a Refund?", "refund"));
        assert!(!contains_word("I was refunded", "refund"));
        assert!(contains_word("talk to LEGAL now", "legal"));
        assert!(!contains_word("illegal", "legal"));
        assert!(contains_word(
            "see you in court, my lawyer says",
            "my lawyer"
        ));
        assert!(!contains_word("anything", ""));
    }

    #[test]
    fn counts_read_as_people_say_them() {
        assert_eq!(human_count(950), "950");
        assert_eq!(human_count(48_200), "48.2k");
        assert_eq!(human_count(12_000), "12k");
        assert_eq!(human_count(1_250_000), "1.2M");
    }

    #[test]
    fn the_default_holds_nothing() {
        assert!(!ApprovalPolicy::default().holds_anything());
    }
}
