//! The one door through which text from outside reaches chat. Customers, platforms,
//! listening tools and agents' own typed words are all untrusted: whatever they write is
//! shown as the words they wrote and never becomes a mention, a channel ping, a link with
//! a label of their choosing, or formatting that passes for ours. Each surface implements
//! `Markup` once; every renderer (cards, thread lines, digests, lists, forms) goes through
//! it, and cuts text to the surface's limits at a grapheme boundary with a visible mark.

use crate::domain::{AgentRef, SurfaceKind};
use unicode_segmentation::UnicodeSegmentation;

/// The mark a cut text ends with.
pub const CUT_MARK: &str = "…";

/// How a surface writes agents, customer text, quotes, emphasis and links in its own
/// markup.
pub trait Markup {
    fn surface(&self) -> SurfaceKind;

    /// Text from outside for a field the surface formats (mrkdwn, Discord markdown):
    /// shown literally, never a mention, link or formatting.
    fn escape(&self, text: &str) -> String;

    /// Text from outside for a field the surface shows as typed (labels, titles,
    /// placeholders, embed author names): only the words that would call people are
    /// defused.
    fn plain(&self, text: &str) -> String {
        defuse_mass_mentions(text)
    }

    /// Text from outside as a block quote, escaped line by line.
    fn quote(&self, text: &str) -> String;

    /// Emphasis around text that is already escaped (or is our own).
    fn bold(&self, escaped: &str) -> String;

    /// A link with our own label to a URL that passed `safe_url`.
    fn raw_link(&self, url: &str, label: &str) -> String;

    /// A link with our own label. A URL that is not a plain absolute http(s) URL, or that
    /// carries characters that end or split a link in this markup, is shown as text.
    fn link(&self, url: &str, label: &str) -> String {
        match safe_url(url) {
            Some(url) => self.raw_link(&url, &self.escape(label)),
            None => format!("{} ({})", self.escape(label), self.escape(url)),
        }
    }

    /// Calls everyone active in the channel (`<!here>` on Slack, `@here` on Discord).
    fn channel_ping(&self) -> &'static str;

    /// Calls one person on this surface by id (`<@U…>`).
    fn ping(&self, user_id: &str) -> String {
        format!("<@{user_id}>")
    }

    /// An agent where a live mention is wanted (a card's holder): a mention on their
    /// own surface, their name and surface elsewhere.
    fn who(&self, agent: &AgentRef) -> String {
        if agent.surface == self.surface() && is_chat_id(&agent.user_id) {
            self.ping(&agent.user_id)
        } else {
            self.name(agent)
        }
    }

    /// An agent named without calling them (a thread line about their own click).
    fn name(&self, agent: &AgentRef) -> String {
        let name = self.bold(&self.escape(&cut_graphemes(&agent.name, 80).0));
        if agent.surface == self.surface() {
            name
        } else {
            format!("{name} ({})", agent.surface.label())
        }
    }

    /// An on-call member key (`slack:U…`, `discord:…`): a live mention on its own
    /// surface, the key as text elsewhere.
    fn member(&self, key: &str) -> String {
        match member_id(key, self.surface()).filter(|id| is_chat_id(id)) {
            Some(id) => self.ping(id),
            None => self.escape(key),
        }
    }

    /// Text from outside, escaped and cut to at most `max` characters (as the surface
    /// counts them) at a grapheme boundary; a cut text ends with `CUT_MARK`. Returns
    /// whether it was cut, so the caller can add the link to the whole original.
    fn fit(&self, text: &str, max: usize) -> (String, bool) {
        fit_with(text, max, |t| self.escape(t))
    }

    /// Like `fit`, as a block quote.
    fn fit_quote(&self, text: &str, max: usize) -> (String, bool) {
        fit_with(text, max, |t| self.quote(t))
    }

    /// Like `fit`, for a plain-text field.
    fn fit_plain(&self, text: &str, max: usize) -> String {
        fit_with(text, max, |t| self.plain(t)).0
    }
}

/// A block quote (`> ` before every line, both surfaces' syntax), each line escaped by
/// the surface; an empty text is an empty quote, not nothing.
pub fn quote_lines(text: &str, escape: impl Fn(&str) -> String) -> String {
    let quoted: Vec<String> = text.lines().map(|l| format!("> {}", escape(l))).collect();
    if quoted.is_empty() {
        "> ".to_string()
    } else {
        quoted.join("\n")
    }
}

/// The member key's id when it belongs to `surface`.
pub fn member_id(key: &str, surface: SurfaceKind) -> Option<&str> {
    key.split_once(':')
        .filter(|(s, _)| s.eq_ignore_ascii_case(surface.label()))
        .map(|(_, id)| id)
}

/// A chat user id as Slack (`U…`, `W…`) or Discord (digits) issue them: anything else
/// inside `<@…>` could close the mention early and smuggle markup in.
fn is_chat_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Length as the surfaces count their limits. UTF-16 code units are never fewer than the
/// characters Slack or Discord count, so a text that fits here fits there.
pub fn surface_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// At most `max` grapheme clusters of `text`, counting the `CUT_MARK` that ends it if any
/// were dropped.
pub fn cut_graphemes(text: &str, max: usize) -> (String, bool) {
    match text.grapheme_indices(true).nth(max.saturating_sub(1)) {
        Some((i, _)) if text.graphemes(true).nth(max).is_some() => {
            (format!("{}{CUT_MARK}", &text[..i]), true)
        }
        _ => (text.to_string(), false),
    }
}

/// Our own composed text (already escaped where it quotes others) cut to `max`.
pub fn cut_to(text: &str, max: usize) -> String {
    fit_with(text, max, str::to_string).0
}

/// `render(text)` if it fits in `max`; else `render` of the longest grapheme prefix that
/// fits together with the mark. `render` never makes a text shorter (escaping and quoting only add), so a text longer
/// than `max` is not rendered whole first.
pub fn fit_with(text: &str, max: usize, render: impl Fn(&str) -> String) -> (String, bool) {
    if text.len() <= max.saturating_mul(4) && surface_len(text) <= max {
        let whole = render(text);
        if surface_len(&whole) <= max {
            return (whole, false);
        }
    }
    let budget = max.saturating_sub(surface_len(CUT_MARK));
    // Each grapheme renders to at least one unit: more than `budget` of them never fit.
    let ends: Vec<usize> = text
        .grapheme_indices(true)
        .map(|(i, g)| i + g.len())
        .take(budget)
        .collect();
    let fits = |n: usize| n == 0 || surface_len(&render(&text[..ends[n - 1]])) <= budget;
    // The largest n with fits(n): rendering is monotone in the prefix length.
    let (mut lo, mut hi) = (0, ends.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let kept = if lo == 0 {
        String::new()
    } else {
        render(text[..ends[lo - 1]].trim_end())
    };
    (format!("{kept}{CUT_MARK}"), true)
}

/// Words that call a whole channel or server when typed (`@everyone`, `@here`,
/// `@channel`) get a zero-width space after the `@`: they read the same and call nobody.
pub fn defuse_mass_mentions(text: &str) -> String {
    const WORDS: [&str; 3] = ["everyone", "here", "channel"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let calls = WORDS.iter().any(|w| {
            rest.get(..w.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(w))
        });
        if calls {
            out.push('\u{200B}');
        }
    }
    out.push_str(rest);
    out
}

/// The URL as it may appear inside a link, or None: only absolute http(s) URLs with a
/// host and no credentials, at most 2,000 characters, and none of the characters that
/// end or split a link in Slack (`<url|label>`) or Discord (`[label](<url>)`) once the
/// URL is normalised: `<`, `>`, `|`, backticks, whitespace. Anything else is shown as text by `Markup::link`.
pub fn safe_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let splits =
        |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '|' | '`' | '"');
    // Judged as given, not only as normalised: a URL that arrives with a character that
    // would end a link was made to do so.
    if raw.is_empty() || raw.len() > 2000 || raw.chars().any(splits) {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let s = url.as_str();
    (!s.chars().any(splits) && s.len() <= 2000).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_web_urls_become_links() {
        assert_eq!(
            safe_url("https://social.example/@ana/1"),
            Some("https://social.example/@ana/1".into())
        );
        // Normalised: a non-ASCII host and path are encoded as Slack and Discord expect.
        assert_eq!(
            safe_url("https://bücher.example/ø"),
            Some("https://xn--bcher-kva.example/%C3%B8".into())
        );
        for bad in [
            "",
            "javascript:alert(1)",
            "slack://open",
            "/relative/path",
            "https://",
            "https://evil.example|<!channel>",
            "https://evil.example/>x",
            "https://user:pw@evil.example/",
            "https://a.example/\u{0}",
            "https://x.example/a b",
            "https://x.example/\"onmouseover",
            "https://x.example/`code`",
            "data:text/html,hi",
        ] {
            assert_eq!(safe_url(bad), None, "{bad:?}");
        }
        assert_eq!(
            safe_url("https://en.example/wiki/A_(b)"),
            Some("https://en.example/wiki/A_(b)".into())
        );
        let long = format!("https://a.example/{}", "a".repeat(2000));
        assert_eq!(safe_url(&long), None);
    }

    #[test]
    fn mass_mentions_read_the_same_and_call_nobody() {
        assert_eq!(
            defuse_mass_mentions("hi @everyone and @Here, @channel! ana@example.com @ana"),
            "hi @\u{200B}everyone and @\u{200B}Here, @\u{200B}channel! ana@example.com @ana"
        );
    }

    #[test]
    fn cutting_keeps_whole_graphemes_and_marks_the_cut() {
        let family = "👨‍👩‍👧";
        let (cut, was) = cut_graphemes(&format!("ab{family}cd"), 3);
        assert!(was);
        assert_eq!(cut, "ab…");
        assert_eq!(
            cut_graphemes(&format!("a{family}cd"), 3).0,
            format!("a{family}…")
        );
        assert_eq!(cut_graphemes("abc", 3), ("abc".into(), false));
        assert_eq!(cut_graphemes("", 3), ("".into(), false));

        // fit counts what the surface sees: the escaped text plus the mark.
        let escape = |t: &str| t.replace('<', "&lt;");
        let (fitted, was) = fit_with(&"<".repeat(10), 13, escape);
        assert!(was);
        assert_eq!(fitted, format!("{}…", "&lt;".repeat(3)));
        assert!(surface_len(&fitted) <= 13);
        let (fitted, was) = fit_with(&format!("{family}{family}"), 12, |t| t.to_string());
        assert!(was);
        assert_eq!(fitted, format!("{family}…"), "never half a family");
        assert_eq!(
            fit_with("short", 10, |t| t.to_string()),
            ("short".into(), false)
        );
    }
}
