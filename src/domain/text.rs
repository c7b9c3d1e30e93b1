//! Counting a reply's length the way the platform will, before anything is sent.
//!
//! Mastodon counts grapheme clusters (what a reader sees as one character), counts every
//! http(s) URL as a fixed number of characters whatever its length, and counts a mention of
//! a remote account by its local part only (`@alice@other.social` costs `@alice`).

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRules {
    pub max_chars: usize,
    /// Characters one URL costs (`characters_reserved_per_url`).
    pub url_weight: usize,
}

impl Default for TextRules {
    /// Mastodon's defaults, used until the instance says otherwise.
    fn default() -> Self {
        TextRules {
            max_chars: 500,
            url_weight: 23,
        }
    }
}

impl TextRules {
    pub fn count(&self, text: &str) -> usize {
        split_keep_whitespace(text)
            .into_iter()
            .map(|piece| {
                if piece.chars().all(char::is_whitespace) {
                    piece.graphemes(true).count()
                } else {
                    self.count_word(piece)
                }
            })
            .sum()
    }

    fn count_word(&self, word: &str) -> usize {
        if let Some(url_len) = url_prefix_len(word) {
            return self.url_weight + word[url_len..].graphemes(true).count();
        }
        if let Some((local, end)) = remote_mention(word) {
            return local.graphemes(true).count() + word[end..].graphemes(true).count();
        }
        word.graphemes(true).count()
    }
}

fn split_keep_whitespace(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_ws: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if in_ws.is_some_and(|w| w != ws) {
            out.push(&text[start..i]);
            start = i;
        }
        in_ws = Some(ws);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Length in bytes of a leading http(s) URL, without trailing punctuation a sentence adds.
fn url_prefix_len(word: &str) -> Option<usize> {
    let lower = word.get(..8).unwrap_or(word).to_ascii_lowercase();
    let scheme = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return None;
    };
    let trimmed = word.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
    (trimmed.len() > scheme).then_some(trimmed.len())
}

/// For a leading `@alice@other.social` the counted part `@alice` and the byte index where
/// the mention ends; None for anything that is not a remote mention.
fn remote_mention(word: &str) -> Option<(&str, usize)> {
    let body = word.strip_prefix('@')?;
    let raw_end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '@' | '.' | '-')))
        .map(|(i, _)| i)
        .unwrap_or(body.len());
    let mention = body[..raw_end].trim_end_matches(['.', '-']);
    let (user, domain) = mention.split_once('@')?;
    let valid_user = !user.is_empty() && user.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !valid_user || !domain.contains('.') || domain.contains('@') {
        return None;
    }
    Some((&word[..1 + user.len()], 1 + mention.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> TextRules {
        TextRules::default()
    }

    #[test]
    fn plain_text_counts_graphemes_not_bytes() {
        assert_eq!(rules().count("hello"), 5);
        // Danish and Tamil: one grapheme per visible letter, many bytes each.
        assert_eq!(rules().count("blåbærgrød"), 10);
        assert_eq!(rules().count("நன்றி"), 3);
        // A family emoji (ZWJ sequence) and a flag are one character each.
        assert_eq!(rules().count("👨‍👩‍👧 🇩🇰"), 3);
    }

    #[test]
    fn urls_cost_the_reserved_weight_whatever_their_length() {
        let long = format!("see https://example.com/{}", "a".repeat(200));
        assert_eq!(rules().count(&long), 4 + 23);
        assert_eq!(rules().count("see https://x.io."), 4 + 23 + 1);
        assert_eq!(rules().count("http:// alone"), 13);
    }

    #[test]
    fn remote_mentions_count_by_local_part() {
        assert_eq!(rules().count("@alice@other.social hi"), "@alice hi".len());
        assert_eq!(rules().count("@alice hi"), 9);
        assert_eq!(rules().count("@alice@other.social, hi"), "@alice, hi".len());
    }

    #[test]
    fn whitespace_and_newlines_count() {
        assert_eq!(rules().count("a\n\nb"), 4);
        assert_eq!(rules().count("  "), 2);
    }
}
