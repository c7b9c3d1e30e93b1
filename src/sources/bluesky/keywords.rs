//! Keyword watches read the way Bluesky's post search reads a query, so a post the stream
//! matches is one `app.bsky.feed.searchPosts` would have found. The reference search
//! service (bluesky-social/indigo `search/`: `parse_query.go`, `query.go`,
//! `post_schema.json`) splits the query on spaces outside double quotes, takes `#tag` as
//! a tag filter, passes quoted phrases through, and hands the rest to OpenSearch's
//! `simple_query_string` with `default_operator: and` over the post's text and image alt
//! texts, analysed by the ICU tokenizer (Unicode word boundaries, UAX #29) and folded
//! case-insensitively. Here: every term must be present as whole words, in order within
//! a term; `"a phrase"` is one term; a `-term` must be absent; `#tag` must be one of the
//! post's tags (its `#tag` facets and `tags`). Not interpreted: `from:`, `lang:` and the
//! other operators (their words are matched as words), `|` and parentheses, and accent
//! folding (`café` does not match `cafe`).

use serde_json::Value;
use unicode_segmentation::UnicodeSegmentation;

/// One configured keyword, parsed once.
#[derive(Debug, Clone)]
pub(super) struct KeywordWatch {
    terms: Vec<Term>,
}

#[derive(Debug, Clone)]
enum Term {
    /// These lowercased words, consecutive.
    Words { words: Vec<String>, absent: bool },
    /// A tag of the post, lowercased, without its `#`.
    Tag { tag: String, absent: bool },
}

impl KeywordWatch {
    pub(super) fn new(keyword: &str) -> KeywordWatch {
        let mut quoted = false;
        let parts = keyword.split(|c: char| {
            if c == '"' {
                quoted = !quoted;
            }
            c.is_whitespace() && !quoted
        });
        let mut terms = Vec::new();
        for part in parts.filter(|p| !p.is_empty()) {
            let (absent, part) = match part.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest),
                _ => (false, part),
            };
            if let Some(tag) = part.strip_prefix('#').filter(|t| !t.is_empty()) {
                terms.push(Term::Tag {
                    tag: tag.to_lowercase(),
                    absent,
                });
                continue;
            }
            let words = words_of(&part.to_lowercase());
            if !words.is_empty() {
                terms.push(Term::Words { words, absent });
            }
        }
        KeywordWatch { terms }
    }

    /// Whether the post matches. A keyword with nothing to look for (only punctuation, or
    /// only exclusions) matches nothing: the search service would answer every post on
    /// the network.
    pub(super) fn matches(&self, post: &PostText) -> bool {
        if !self.terms.iter().any(|t| !t.absent()) {
            return false;
        }
        self.terms.iter().all(|t| t.present_in(post) != t.absent())
    }
}

impl Term {
    fn absent(&self) -> bool {
        match self {
            Term::Words { absent, .. } | Term::Tag { absent, .. } => *absent,
        }
    }

    fn present_in(&self, post: &PostText) -> bool {
        match self {
            Term::Tag { tag, .. } => post.tags.iter().any(|t| t == tag),
            Term::Words { words, .. } => {
                // A cheap look first: most posts on the network contain none of our words.
                words.iter().all(|w| post.lower.contains(w.as_str()))
                    && post
                        .words()
                        .windows(words.len())
                        .any(|window| window.iter().zip(words).all(|(a, b)| a == b))
            }
        }
    }
}

fn words_of(lower: &str) -> Vec<String> {
    lower.unicode_words().map(str::to_string).collect()
}

/// What of a post the search index reads, lowercased once for every watch.
pub(super) struct PostText {
    lower: String,
    tags: Vec<String>,
    words: std::cell::OnceCell<Vec<String>>,
}

impl PostText {
    /// The text, image alt texts and tags of an `app.bsky.feed.post` record; anything
    /// of the wrong shape is left out.
    pub(super) fn of(record: &Value) -> PostText {
        let mut text = record["text"].as_str().unwrap_or_default().to_string();
        let embed = &record["embed"];
        for images in [&embed["images"], &embed["media"]["images"]] {
            for image in images.as_array().into_iter().flatten() {
                if let Some(alt) = image["alt"].as_str() {
                    text.push('\n');
                    text.push_str(alt);
                }
            }
        }
        let mut tags: Vec<String> = record["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect();
        for facet in record["facets"].as_array().into_iter().flatten() {
            for feature in facet["features"].as_array().into_iter().flatten() {
                if feature["$type"] == "app.bsky.richtext.facet#tag" {
                    if let Some(tag) = feature["tag"].as_str() {
                        tags.push(tag.to_lowercase());
                    }
                }
            }
        }
        PostText {
            lower: text.to_lowercase(),
            tags,
            words: std::cell::OnceCell::new(),
        }
    }

    /// The words, split only when some watch's words all occur in the text.
    fn words(&self) -> &[String] {
        self.words.get_or_init(|| words_of(&self.lower))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(keyword: &str, text: &str) -> bool {
        KeywordWatch::new(keyword).matches(&PostText::of(&json!({ "text": text })))
    }

    #[test]
    fn a_keyword_is_a_whole_word_in_any_case() {
        assert!(hit("acme", "My ACME router died"));
        assert!(hit("acme", "acme, again!"));
        assert!(hit("Acme", "(acme)"));
        assert!(!hit("acme", "acmebank is down"));
        assert!(!hit("acme", "the macme app"));
        assert!(!hit("acme", "nothing to see"));
        // Apostrophes inside a word keep it one word, as UAX #29 says.
        assert!(!hit("acme", "acme's support"));
        assert!(hit("acme's", "ACME'S support"));
    }

    #[test]
    fn several_words_must_all_be_there_and_a_phrase_in_order() {
        assert!(hit("acme support", "support from acme is slow"));
        assert!(!hit("acme support", "acme is slow"));
        assert!(hit("\"acme support\"", "is acme support awake?"));
        assert!(!hit("\"acme support\"", "support acme"));
        // Punctuation between words makes them a phrase, like `acme-bank`.
        assert!(hit("acme-bank", "ACME BANK app"));
        assert!(!hit("acme-bank", "bank of acme"));
    }

    #[test]
    fn exclusions_tags_and_alt_texts() {
        assert!(hit("acme -hiring", "acme is down"));
        assert!(!hit("acme -hiring", "acme is hiring"));
        assert!(!hit("-hiring", "anything at all"), "nothing to look for");
        assert!(!hit("!!!", "!!! wow"), "nothing to look for");
        let tagged = json!({"text": "down again #AcmeOutage", "facets": [{
            "index": {"byteStart": 11, "byteEnd": 22},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "AcmeOutage"}]}]});
        assert!(KeywordWatch::new("#acmeoutage").matches(&PostText::of(&tagged)));
        assert!(!KeywordWatch::new("#acme").matches(&PostText::of(&tagged)));
        let alt = json!({"text": "look", "embed": {"$type": "app.bsky.embed.images",
            "images": [{"alt": "an Acme receipt", "image": {}}]}});
        assert!(KeywordWatch::new("acme").matches(&PostText::of(&alt)));
    }

    #[test]
    fn records_of_the_wrong_shape_are_read_as_far_as_they_go() {
        for record in [
            json!(null),
            json!({"text": 5}),
            json!({"text": "acme", "facets": "x", "tags": {"a": 1}, "embed": []}),
            json!({"text": "acme", "facets": [{"features": 3}], "embed": {"images": "x"}}),
        ] {
            let post = PostText::of(&record);
            let _ = KeywordWatch::new("acme").matches(&post);
        }
        assert!(KeywordWatch::new("acme").matches(&PostText::of(
            &json!({"text": "acme", "facets": "x", "tags": 7})
        )));
    }
}
