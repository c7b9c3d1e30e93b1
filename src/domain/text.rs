//! Counting a reply's length the way the platform will, before anything is sent. Our
//! users' customers write in every script, so each platform's own rule is followed:
//!
//! - Mastodon counts grapheme clusters (what a reader sees as one character), every
//!   http(s) URL as a fixed number whatever its length, and a mention of a remote account
//!   by its local part only (`@alice@other.social` costs `@alice`).
//! - Bluesky allows 300 grapheme clusters and 3000 UTF-8 bytes; links count in full.
//! - X counts weighted code points (twitter-text v3): code points up to U+10FF (Latin,
//!   Greek, Cyrillic, Arabic and Urdu, the Indic scripts such as Tamil, Thai…) and a few
//!   punctuation ranges weigh 1, everything else 2 (Chinese, Japanese, Korean…), an emoji
//!   sequence (ZWJ families, flags, skin tones) 2 as a whole, and every URL 23; the limit
//!   is 280.

use super::{Mention, Platform};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// How a platform measures a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counting {
    Mastodon { url_weight: usize },
    Bluesky,
    X,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRules {
    pub max_chars: usize,
    pub counting: Counting,
}

/// Bluesky's second limit, on the encoded size.
pub const BLUESKY_MAX_BYTES: usize = 3000;
const X_URL_WEIGHT: usize = 23;

impl Default for TextRules {
    /// Mastodon's defaults, used until the instance says otherwise.
    fn default() -> Self {
        TextRules::mastodon(500, 23)
    }
}

impl TextRules {
    pub fn mastodon(max_chars: usize, url_weight: usize) -> TextRules {
        TextRules {
            max_chars,
            counting: Counting::Mastodon { url_weight },
        }
    }

    pub fn bluesky() -> TextRules {
        TextRules {
            max_chars: 300,
            counting: Counting::Bluesky,
        }
    }

    pub fn x() -> TextRules {
        TextRules {
            max_chars: 280,
            counting: Counting::X,
        }
    }

    /// The length as the platform counts it (for Bluesky, graphemes; see `fits`).
    pub fn count(&self, text: &str) -> usize {
        match self.counting {
            Counting::Mastodon { url_weight } => split_keep_whitespace(text)
                .into_iter()
                .map(|piece| mastodon_piece(piece, url_weight))
                .sum(),
            Counting::Bluesky => text.graphemes(true).count(),
            Counting::X => split_keep_whitespace(text).into_iter().map(x_piece).sum(),
        }
    }

    /// Whether the text is within every limit the platform has.
    pub fn fits(&self, text: &str) -> bool {
        self.count(text) <= self.max_chars
            && (self.counting != Counting::Bluesky || text.len() <= BLUESKY_MAX_BYTES)
    }

    /// One sentence for the reply form, e.g. "links count as 23".
    pub fn describe(&self) -> String {
        match self.counting {
            Counting::Mastodon { url_weight } => format!(
                "{} characters; each link counts as {url_weight}",
                self.max_chars
            ),
            Counting::Bluesky => format!("{} characters and {BLUESKY_MAX_BYTES} bytes", self.max_chars),
            Counting::X => format!(
                "{} weighted characters; most non-Latin letters and emoji count 2, each link {X_URL_WEIGHT}",
                self.max_chars
            ),
        }
    }
}

fn mastodon_piece(piece: &str, url_weight: usize) -> usize {
    if piece.chars().all(char::is_whitespace) {
        return piece.graphemes(true).count();
    }
    if let Some(url_len) = url_prefix_len(piece) {
        return url_weight + piece[url_len..].graphemes(true).count();
    }
    if let Some((local, end)) = remote_mention(piece) {
        return local.graphemes(true).count() + piece[end..].graphemes(true).count();
    }
    piece.graphemes(true).count()
}

fn x_piece(piece: &str) -> usize {
    if let Some(url_len) = url_prefix_len(piece) {
        return X_URL_WEIGHT + x_weight(&piece[url_len..]);
    }
    x_weight(piece)
}

/// twitter-text v3 weights: an emoji sequence counts 2; other code points 1 in the light
/// ranges, 2 elsewhere.
fn x_weight(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| {
            if is_emoji_sequence(g) {
                2
            } else {
                g.chars().map(|c| if x_light(c) { 1 } else { 2 }).sum()
            }
        })
        .sum()
}

fn x_light(c: char) -> bool {
    matches!(c as u32, 0x0000..=0x10FF | 0x2000..=0x200D | 0x2010..=0x201F | 0x2032..=0x2037)
}

fn is_emoji_sequence(g: &str) -> bool {
    g.chars().any(|c| {
        matches!(c as u32,
            0x1F000..=0x1FAFF // pictographs, emoticons, transport, flags' regional indicators
            | 0x2600..=0x27BF  // misc symbols and dingbats
            | 0x2B00..=0x2BFF
            | 0xFE0F) // emoji presentation selector
    })
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

/// The text that goes out, written the way each platform threads and notifies a reply:
///
/// - Mastodon: a status reaches the customer only through a mention in its text, so their
///   `@acct` goes first unless the agent already mentions them (a canned reply's
///   `{author}` does), and it counts towards the limit as Mastodon counts mentions.
/// - X: nothing is added. X fills in a reply's leading mention of the post's author itself
///   by itself (X API v2) and does not count it; what the agent typed counts,
///   mentions included.
/// - Bluesky: nothing is added. The reply reference threads the post and notifies its
///   author (a reply needs no mention); a mention the agent types gets its facet and counts.
pub fn compose_reply(mention: &Mention, text: &str) -> String {
    let text = text.trim();
    if mention.platform != Platform::Mastodon || mentions(text, &mention.author.handle) {
        return text.to_string();
    }
    format!("@{} {text}", mention.author.handle)
}

/// Whether `text` mentions `@handle` as a whole (not `@alice` inside `@alice@other.social`
/// or `@alice_b`).
fn mentions(text: &str, handle: &str) -> bool {
    let tag = format!("@{handle}");
    let part_of_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '@');
    text.match_indices(&tag).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = &text[at + tag.len()..];
        let mut rest = after.chars();
        let ends = match rest.next() {
            None => true,
            // A dot ends a sentence, unless a domain goes on after it.
            Some('.' | '-') => !rest.next().is_some_and(char::is_alphanumeric),
            Some(c) => !part_of_name(c),
        };
        !before.is_some_and(|c| part_of_name(c) || c == '.') && ends
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mastodon() -> TextRules {
        TextRules::default()
    }

    #[test]
    fn mastodon_counts_graphemes_not_bytes() {
        assert_eq!(mastodon().count("hello"), 5);
        // Danish and Tamil: one grapheme per visible letter, many bytes each.
        assert_eq!(mastodon().count("blåbærgrød"), 10);
        assert_eq!(mastodon().count("நன்றி"), 3);
        // Urdu (right to left) is counted the same way.
        assert_eq!(mastodon().count("شکریہ"), 5);
        // A family emoji (ZWJ sequence) and a flag are one character each.
        assert_eq!(mastodon().count("👨‍👩‍👧 🇩🇰"), 3);
    }

    #[test]
    fn mastodon_urls_cost_the_reserved_weight_whatever_their_length() {
        let long = format!("see https://example.com/{}", "a".repeat(200));
        assert_eq!(mastodon().count(&long), 4 + 23);
        assert_eq!(mastodon().count("see https://x.io."), 4 + 23 + 1);
        assert_eq!(mastodon().count("http:// alone"), 13);
        assert_eq!(TextRules::mastodon(500, 30).count("https://x.io"), 30);
    }

    #[test]
    fn mastodon_remote_mentions_count_by_local_part() {
        assert_eq!(
            mastodon().count("@alice@other.social hi"),
            "@alice hi".len()
        );
        assert_eq!(mastodon().count("@alice hi"), 9);
        assert_eq!(
            mastodon().count("@alice@other.social, hi"),
            "@alice, hi".len()
        );
    }

    #[test]
    fn whitespace_and_newlines_count() {
        assert_eq!(mastodon().count("a\n\nb"), 4);
        assert_eq!(mastodon().count("  "), 2);
    }

    #[test]
    fn bluesky_counts_graphemes_and_bytes_and_links_in_full() {
        let b = TextRules::bluesky();
        assert_eq!(b.count("Terima kasih!"), 13); // Malay
        assert_eq!(b.count("நன்றி"), 3);
        assert_eq!(b.count("👨‍👩‍👧🇲🇾"), 2);
        assert_eq!(
            b.count("https://example.com/abc"),
            23,
            "links are not shortened"
        );
        assert!(b.fits(&"ø".repeat(300)));
        assert!(!b.fits(&"ø".repeat(301)));
        // 300 graphemes, but each family emoji is 18 bytes: over the 3000-byte limit.
        let families = "👨‍👩‍👧".repeat(200);
        assert_eq!(b.count(&families), 200);
        assert!(!b.fits(&families), "{} bytes", families.len());
    }

    #[test]
    fn x_weighs_scripts_emoji_and_links_like_twitter_text() {
        let x = TextRules::x();
        assert_eq!(x.count("Terima kasih!"), 13, "Latin weighs 1");
        assert_eq!(
            x.count("blåbærgrød"),
            10,
            "Danish letters are in the light range"
        );
        assert_eq!(
            x.count("நன்றி"),
            5,
            "Tamil: 5 code points (not 3 graphemes) of weight 1"
        );
        assert_eq!(x.count("شکریہ"), 5, "Urdu: 5 code points of weight 1");
        assert_eq!(x.count("こんにちは"), 10);
        assert_eq!(x.count("👨‍👩‍👧"), 2, "a ZWJ family is one emoji of weight 2");
        assert_eq!(x.count("🇩🇰"), 2, "a flag too");
        assert_eq!(x.count("👍🏽"), 2, "and a skin tone");
        assert_eq!(x.count("“quoted”"), 8, "typographic quotes are light");
        let long = format!("see https://example.com/{}", "a".repeat(200));
        assert_eq!(x.count(&long), 4 + 23);
        assert!(x.fits(&"a".repeat(280)));
        assert!(x.fits(&"こんにちは".repeat(28)), "28 × 10 = 280");
        assert!(!x.fits(&"こんにちは".repeat(29)), "29 × 10 = 290 > 280");
    }
}
