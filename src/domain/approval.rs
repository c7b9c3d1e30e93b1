//! A second pair of eyes: which drafts wait for another agent before they go out. A draft
//! is held when the customer reaches many people, when the draft or the mention carries a
//! risky word (refund, legal), when its author is still in training, or when it answers a
//! whole incident at once. The rule only names the reasons; `rules` holds the draft, and
//! approving it is never open to the person who wrote it.

use super::{Level, Ticket};
use chrono::Duration;

/// What makes a draft wait for approval; the default holds nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApprovalPolicy {
    /// Hold replies to authors with at least this many followers.
    pub min_reach: Option<u64>,
    /// Hold replies on tickets of this priority or higher.
    pub min_priority: Option<Level>,
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
        self.min_reach.is_some()
            || self.min_priority.is_some()
            || !self.words.is_empty()
            || !self.trainees.is_empty()
            || self.bulk_answers
    }

    /// Why a draft of `texts` on `ticket` must wait for approval, whoever wrote it (the
    /// author's training is the desk's to know: see `Desk::is_trainee`); empty when it
    /// may go out at once.
    pub fn reasons(&self, ticket: &Ticket, texts: &[&str]) -> Vec<String> {
        let mut reasons = Vec::new();
        if let (Some(min), Some(reach)) = (self.min_reach, ticket.mention.author.followers) {
            if reach >= min {
                reasons.push(format!(
                    "the author has {}",
                    super::priority::reach_label(reach)
                ));
            }
        }
        if let Some(min) = self.min_priority {
            if ticket.priority.level >= min {
                reasons.push(format!("{} priority", ticket.priority.level));
            }
        }
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
    fn reach_and_priority_hold_a_draft_from_their_threshold_up() {
        let policy = ApprovalPolicy {
            min_reach: Some(10_000),
            min_priority: Some(Level::High),
            ..ApprovalPolicy::default()
        };
        let mention = crate::domain::language::sofies_mention("Hej, hvor er min pakke?", None);
        let at = mention.created_at;
        let mut ticket = Ticket::open(crate::domain::TicketId(1), mention, at);
        assert!(policy.reasons(&ticket, &["hi"]).is_empty());
        ticket.mention.author.followers = Some(48_200);
        ticket.priority.level = Level::Urgent;
        assert_eq!(
            policy.reasons(&ticket, &["hi"]),
            ["the author has 48.2k followers", "urgent priority"]
        );
        ticket.mention.author.followers = Some(9_999);
        ticket.priority.level = Level::Normal;
        assert!(policy.reasons(&ticket, &["hi"]).is_empty());
    }

    #[test]
    fn the_default_holds_nothing() {
        assert!(!ApprovalPolicy::default().holds_anything());
    }
}
