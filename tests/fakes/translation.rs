//! The fake "translation" both translation fakes (`libretranslate.rs`, `deepl.rs`)
//! answer with, written once: deterministic, so a test can say exactly which text comes
//! back. A text is rendered word by word through a small dictionary (German, French and
//! English support phrases) and marked with its target language, `[de] Danke …`; a word
//! the dictionary lacks stays as it is, a translated word keeps the target's own case
//! (German nouns capitalised) and is capitalised where a sentence starts (handles, tags
//! and links do not count). Detection counts dictionary words per language.

/// (from, to, word, translation), lower case.
const DICTIONARY: &[(&str, &str, &str, &str)] = &[
    ("de", "en", "meine", "my"),
    ("de", "en", "mein", "my"),
    ("de", "en", "bestellung", "order"),
    ("de", "en", "ist", "is"),
    ("de", "en", "nicht", "not"),
    ("de", "en", "angekommen", "arrived"),
    ("de", "en", "hallo", "hello"),
    ("de", "en", "danke", "thanks"),
    ("de", "en", "wo", "where"),
    ("de", "en", "paket", "parcel"),
    ("de", "en", "bitte", "please"),
    ("de", "en", "hilfe", "help"),
    ("en", "de", "my", "meine"),
    ("en", "de", "order", "Bestellung"),
    ("en", "de", "is", "ist"),
    ("en", "de", "not", "nicht"),
    ("en", "de", "arrived", "angekommen"),
    ("en", "de", "hello", "hallo"),
    ("en", "de", "hi", "hallo"),
    ("en", "de", "thanks", "danke"),
    ("en", "de", "where", "wo"),
    ("en", "de", "parcel", "Paket"),
    ("en", "de", "please", "bitte"),
    ("en", "de", "help", "Hilfe"),
    ("en", "de", "your", "deine"),
    ("en", "de", "refund", "Rückerstattung"),
    ("en", "de", "sorry", "Entschuldigung"),
    ("en", "de", "we", "wir"),
    ("en", "de", "sent", "geschickt"),
    ("en", "de", "you", "dir"),
    ("en", "de", "a", "eine"),
    ("en", "de", "dm", "DM"),
    ("fr", "en", "ma", "my"),
    ("fr", "en", "commande", "order"),
    ("fr", "en", "est", "is"),
    ("fr", "en", "pas", "not"),
    ("fr", "en", "arrivée", "arrived"),
    ("fr", "en", "bonjour", "hello"),
    ("fr", "en", "merci", "thanks"),
];

/// The languages the fakes know words of.
pub const KNOWN: [&str; 3] = ["en", "de", "fr"];

fn primary(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The word's core (letters and digits) and what surrounds it (`"Hallo,"` → `Hallo`).
fn core(word: &str) -> (&str, &str, &str) {
    let start = word
        .find(|c: char| c.is_alphanumeric())
        .unwrap_or(word.len());
    let end = word
        .rfind(|c: char| c.is_alphanumeric())
        .map(|i| i + word[i..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(start);
    (
        &word[..start],
        &word[start..end.max(start)],
        &word[end.max(start)..],
    )
}

/// The language of `text`: the one with the most dictionary words, English on a tie.
pub fn detect(text: &str) -> &'static str {
    let mut best = ("en", 0usize);
    for lang in KNOWN {
        let hits = text
            .split_whitespace()
            .filter(|w| {
                let word = core(w).1.to_lowercase();
                DICTIONARY
                    .iter()
                    .any(|(from, _, source, _)| *from == lang && *source == word)
            })
            .count();
        if hits > best.1 {
            best = (lang, hits);
        }
    }
    best.0
}

/// `text` translated from `from` into `to` (language tags, any case): `[to] ` and each
/// word through the dictionary. The same language in and out is the text itself.
pub fn render(text: &str, from: &str, to: &str) -> String {
    let (from, to) = (primary(from), primary(to));
    if from == to {
        return text.to_string();
    }
    let mut sentence_starts = true;
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            if w.starts_with(['@', '#']) || w.starts_with("http") {
                return w.to_string();
            }
            let (before, word, after) = core(w);
            let lower = word.to_lowercase();
            let found = DICTIONARY
                .iter()
                .find(|(f, t, source, _)| *f == from && *t == to && *source == lower)
                .map(|(_, _, _, target)| *target);
            let translated = match found {
                Some(target) if sentence_starts => {
                    let mut c = target.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                }
                Some(target) => target.to_string(),
                None => word.to_string(),
            };
            sentence_starts = w.ends_with(['.', '!', '?']);
            format!("{before}{translated}{after}")
        })
        .collect();
    format!("[{to}] {}", words.join(" "))
}
