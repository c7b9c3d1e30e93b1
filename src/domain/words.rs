//! How customer text is held against the team's word lists (urgent words, rule words,
//! the sentiment lexicon): folded once (lowercase, accents and compatibility forms
//! removed, so "Réfund", "REFUND" and "ｒｅｆｕｎｄ" are one word) and cut into words at
//! Unicode word boundaries, so "refund" matches "refund!" and "#refund" but not
//! "refunded". A term of several words ("class action") matches those words in a row.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Customer text is matched on its first this-many bytes: more than any platform's post
/// (X 280 characters, Bluesky 300 graphemes, Mastodon 500 by default), so only a
/// listening tool's oversized delivery is cut, and folding it stays cheap.
pub const MATCHED_BYTES: usize = 20_000;

/// `text` folded: compatibility-decomposed, combining marks dropped, lowercased.
pub fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A text's words, folded, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Words(Vec<String>);

impl Words {
    pub fn of(text: &str) -> Words {
        let mut end = text.len().min(MATCHED_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Words(
            fold(&text[..end])
                .unicode_words()
                .map(str::to_string)
                .collect(),
        )
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether `term` (already a [`Term`]) occurs as whole words.
    pub fn contains(&self, term: &Term) -> bool {
        let want = term.words.as_slice();
        !want.is_empty() && self.0.windows(want.len()).any(|w| w == want)
    }
}

/// A word or phrase from the configuration, folded like the text it is matched with;
/// `shown` is how the team wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub shown: String,
    words: Vec<String>,
}

impl Term {
    /// `None` when the term has no word in it at all (only punctuation or spaces).
    pub fn new(shown: &str) -> Option<Term> {
        let words = Words::of(shown).0;
        (!words.is_empty()).then(|| Term {
            shown: shown.trim().to_string(),
            words,
        })
    }
}

/// The first of `terms` the text holds, if any.
pub fn first_match<'a>(words: &Words, terms: &'a [Term]) -> Option<&'a Term> {
    terms.iter().find(|t| words.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(text: &str, term: &str) -> bool {
        Words::of(text).contains(&Term::new(term).unwrap())
    }

    #[test]
    fn words_match_whole_words_whatever_their_case_accents_or_width() {
        assert!(has("I want a REFUND!", "refund"));
        assert!(has("#refund now", "refund"));
        assert!(has("Réfund please", "refund"));
        assert!(has("ｒｅｆｕｎｄ", "refund"));
        assert!(has("Ich rufe meinen Anwalt an", "anwält"));
        assert!(!has("refunded already", "refund"));
        assert!(!has("prefund", "refund"));
        assert!(has("a class action suit", "Class Action"));
        assert!(!has("class of action", "class action"));
        assert!(has("déjà vu", "deja"));
    }

    #[test]
    fn a_term_without_words_is_no_term_and_hostile_text_never_panics() {
        assert_eq!(Term::new("  !!! "), None);
        assert_eq!(Term::new(""), None);
        let long = "é".repeat(MATCHED_BYTES);
        assert!(Words::of(&long).as_slice().len() <= 1);
        for text in ["\u{0}\u{202e}", "🙂🙂", "a\u{301}\u{301}\u{301}", ""] {
            let _ = Words::of(text);
        }
    }
}
