//! Language: which language a mention is in. Platforms tag a post with the language the
//! author's app assumed (often its default, often nothing), so the desk also asks a
//! detector (the `LanguageDetector` port) about the text and goes by its answer when it
//! is sure; otherwise the platform's tag stands (see [`Mention::language_in_use`]). This is
//! the desk's side of it: what of a post the detector reads (no @handles, links, `#` or
//! emoji; in a post written in another script, not its Latin words, which are product
//! names and loanwords), when a text is too short to tell, when a guess is sure enough,
//! and how the language reads on a card.

use super::{DetectedLanguage, LanguageSource, Mention};

/// A detector's best guess for a text: an ISO 639-1 code and its confidence, 0 to 1 (its
/// share of the likelihood among the languages it knows).
#[derive(Debug, Clone, PartialEq)]
pub struct Guess {
    pub language: String,
    pub confidence: f64,
}

/// The confidence below which a guess is not trusted: the platform's tag stands. Measured
/// on `tests/corpus/languages.tsv`: real sentences score 0.4 or more even between close
/// pairs (Danish and Bokmål, Malay and Indonesian share the likelihood), while a product
/// name or a word of another language inside a sentence pulls the top guess below it.
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.4;

/// Letters a text needs before its language is guessed at all (a word or two is guessed
/// wrong as often as right); an ideograph, kana or hangul syllable counts as three.
pub const ENOUGH_LETTERS: usize = 12;

/// When the desk goes by the detector (`[language]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanguagePolicy {
    /// 0 to 1; see [`DEFAULT_MIN_CONFIDENCE`].
    pub min_confidence: f64,
}

impl Default for LanguagePolicy {
    fn default() -> Self {
        LanguagePolicy {
            min_confidence: DEFAULT_MIN_CONFIDENCE,
        }
    }
}

/// The verdict on a text too short to tell: no guess, and the platform's tag stands.
pub fn too_short() -> DetectedLanguage {
    DetectedLanguage {
        language: None,
        confidence: 0,
        sure: false,
    }
}

/// The verdict on a detector's guess under `policy`.
pub fn judge(guess: Option<Guess>, policy: &LanguagePolicy) -> DetectedLanguage {
    let Some(guess) = guess.filter(|g| !g.language.trim().is_empty()) else {
        return too_short();
    };
    let confidence = if guess.confidence.is_finite() {
        guess.confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    DetectedLanguage {
        language: Some(guess.language.trim().to_ascii_lowercase()),
        confidence: (confidence * 100.0).round() as u8,
        sure: confidence >= policy.min_confidence,
    }
}

/// What of a post the detector reads: its words without @handles, links, the `#` of
/// hashtags (the word stays) and emoji. In a post mostly written in another script, Latin
/// words are left out too: there they are product names and loanwords ("Aero Buds Pro",
/// "please check") that would outvote the language the post is written in.
pub fn text_to_detect(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for token in text.split_whitespace() {
        let lower = token.to_lowercase();
        if token.starts_with('@') || lower.contains("://") || lower.starts_with("www.") {
            continue;
        }
        let word: String = token
            .trim_start_matches('#')
            .chars()
            .filter(|c| !is_emoji(*c))
            .map(|c| if c == '_' { ' ' } else { c })
            .collect();
        words.extend(word.split_whitespace().map(str::to_string));
    }
    let letters = |w: &String| w.chars().filter(|c| c.is_alphabetic()).count();
    let all: usize = words.iter().map(letters).sum();
    let other: usize = words
        .iter()
        .flat_map(|w| w.chars())
        .filter(|c| c.is_alphabetic() && !is_latin(*c))
        .count();
    if other > 0 && other * 4 >= all {
        words.retain(|w| !w.chars().filter(|c| c.is_alphabetic()).all(is_latin));
    }
    words.join(" ")
}

/// Enough of `text` (as [`text_to_detect`] leaves it) to guess its language.
pub fn enough_text(text: &str) -> bool {
    let weight: usize = text
        .chars()
        .filter(|c| c.is_alphabetic())
        .map(|c| if is_wide_letter(c) { 3 } else { 1 })
        .sum();
    weight >= ENOUGH_LETTERS
}

fn is_latin(c: char) -> bool {
    matches!(c as u32, 0..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF)
}

/// Ideographs, kana and hangul: a character is about a word.
fn is_wide_letter(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// Emoji, pictographs and what joins or varies them (flags, skin tones, keycaps).
fn is_emoji(c: char) -> bool {
    matches!(
        c as u32,
        0x1F000..=0x1FAFF
            | 0x2600..=0x27BF
            | 0x2300..=0x23FF
            | 0x2B00..=0x2BFF
            | 0xFE00..=0xFE0F
            | 0x200D
            | 0x20E3
            | 0xE0000..=0xE007F
    )
}

/// The language's name in English, by its primary tag (`pt-BR` is Portuguese), for the
/// languages the detector knows and a few tags platforms use besides.
pub fn name(tag: &str) -> Option<&'static str> {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    Some(match primary.as_str() {
        "ar" => "Arabic",
        "bn" => "Bengali",
        "da" => "Danish",
        "de" => "German",
        "en" => "English",
        "es" => "Spanish",
        "fi" => "Finnish",
        "fr" => "French",
        "hi" => "Hindi",
        "id" => "Indonesian",
        "it" => "Italian",
        "ja" => "Japanese",
        "ko" => "Korean",
        "ms" => "Malay",
        "nb" => "Norwegian Bokmål",
        "nl" => "Dutch",
        "nn" => "Norwegian Nynorsk",
        "no" => "Norwegian",
        "pl" => "Polish",
        "pt" => "Portuguese",
        "ru" => "Russian",
        "sv" => "Swedish",
        "ta" => "Tamil",
        "th" => "Thai",
        "tr" => "Turkish",
        "uk" => "Ukrainian",
        "ur" => "Urdu",
        "vi" => "Vietnamese",
        "zh" => "Chinese",
        _ => return None,
    })
}

/// How the mention's language reads on its card: "Danish (detected, 93%)", "Danish
/// (platform tag)", "language unknown" when the detector could not tell and the platform
/// gave no tag; `None` when nobody asked (detection off, no tag). A tag the desk does not
/// know is shown as given (the renderers escape it).
pub fn card_label(m: &Mention) -> Option<String> {
    match m.language_in_use() {
        Some((code, LanguageSource::Detected)) => {
            let confidence = m.detected_language.as_ref().map_or(0, |d| d.confidence);
            Some(format!(
                "{} (detected, {confidence}%)",
                name(code).unwrap_or(code)
            ))
        }
        Some((tag, LanguageSource::Platform)) => {
            let shown: String = match name(tag) {
                Some(n) => n.to_string(),
                None => tag.chars().take(35).collect(),
            };
            Some(format!("{shown} (platform tag)"))
        }
        None => m
            .detected_language
            .as_ref()
            .map(|_| "language unknown".to_string()),
    }
}

/// Sofie's Mastodon mention saying `text`, tagged `tag` by her app and not judged yet
/// (for the tests here and of the runtime's detection).
#[cfg(test)]
pub(crate) fn sofies_mention(text: &str, tag: Option<&str>) -> Mention {
    use crate::domain::{Author, Platform, Visibility};
    Mention {
        platform: Platform::Mastodon,
        network: None,
        account: "brand".into(),
        remote_id: "1".into(),
        url: "https://m.example/@sofie/1".into(),
        author: Author {
            handle: "sofie".into(),
            name: "Sofie".into(),
            profile_url: String::new(),
            id: None,
            followers: None,
        },
        text: text.into(),
        language: tag.map(String::from),
        created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        in_reply_to: None,
        visibility: Visibility::Public,
        reply_context: None,
        external_id: None,
        detected_language: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention(tag: Option<&str>, detected: Option<DetectedLanguage>) -> Mention {
        Mention {
            detected_language: detected,
            ..sofies_mention("Hvornår kommer min pakke?", tag)
        }
    }

    fn guess(language: &str, confidence: f64) -> Option<Guess> {
        Some(Guess {
            language: language.into(),
            confidence,
        })
    }

    #[test]
    fn the_detector_reads_words_not_handles_links_hashtag_marks_or_emoji() {
        assert_eq!(
            text_to_detect(
                "@brandco@social.example min pakke 📦 er ikke kommet 😡😡 https://track.example/1 #kundeservice #dårlig_service www.brand.example"
            ),
            "min pakke er ikke kommet kundeservice dårlig service"
        );
        assert_eq!(text_to_detect("😍😍🔥 @brandco 👍🏽 🇩🇰"), "");
        assert_eq!(text_to_detect("❤️ tak"), "tak");
    }

    #[test]
    fn latin_words_in_a_post_in_another_script_are_left_out() {
        // Tamil with an English product name and loanwords: the Tamil carries the post.
        assert_eq!(
            text_to_detect("என் Aero Buds Pro order இன்னும் deliver ஆகவில்லை, please check"),
            "என் இன்னும் ஆகவில்லை,"
        );
        // An English post naming one Tamil word keeps every word.
        let english = "Loving the new store in Chennai, they even greet you with நன்றி at the door";
        assert_eq!(text_to_detect(english), english);
    }

    #[test]
    fn a_word_or_two_is_too_little_to_tell() {
        assert!(!enough_text(&text_to_detect("ok")));
        assert!(!enough_text(&text_to_detect("😍😍😍🔥🔥 @brandco")));
        assert!(!enough_text(&text_to_detect("hej hej @brandco!")));
        assert!(enough_text(&text_to_detect("tak for hjælpen i går")));
        // An ideograph or kana is about a word.
        assert!(enough_text("退货以后多久"));
        assert!(!enough_text("谢谢"));
    }

    #[test]
    fn a_guess_is_trusted_from_the_minimum_confidence_on() {
        let policy = LanguagePolicy::default();
        let sure = judge(guess("DA", 0.93), &policy);
        assert_eq!(
            sure,
            DetectedLanguage {
                language: Some("da".into()),
                confidence: 93,
                sure: true
            }
        );
        assert!(judge(guess("da", DEFAULT_MIN_CONFIDENCE), &policy).sure);
        let unsure = judge(guess("nb", 0.39), &policy);
        assert_eq!(unsure.language.as_deref(), Some("nb"), "the guess is kept");
        assert_eq!(unsure.confidence, 39);
        assert!(!unsure.sure);
        assert_eq!(judge(None, &policy), too_short());
        assert_eq!(judge(guess(" ", 1.0), &policy), too_short());
        // A detector's odd numbers never make a guess sure by accident.
        assert!(!judge(guess("da", f64::NAN), &policy).sure);
        assert_eq!(judge(guess("da", 7.0), &policy).confidence, 100);
        let strict = LanguagePolicy {
            min_confidence: 0.95,
        };
        assert!(!judge(guess("da", 0.93), &strict).sure);
    }

    #[test]
    fn when_the_detector_is_unsure_the_platforms_tag_stands() {
        let sure = judge(guess("da", 0.9), &LanguagePolicy::default());
        let unsure = judge(guess("nb", 0.3), &LanguagePolicy::default());
        assert_eq!(
            mention(Some("en"), Some(sure.clone())).language_in_use(),
            Some(("da", LanguageSource::Detected))
        );
        assert_eq!(
            mention(None, Some(sure)).language_in_use(),
            Some(("da", LanguageSource::Detected))
        );
        assert_eq!(
            mention(Some("en"), Some(unsure.clone())).language_in_use(),
            Some(("en", LanguageSource::Platform))
        );
        assert_eq!(mention(None, Some(unsure)).language_in_use(), None);
        assert_eq!(
            mention(Some("en"), Some(too_short())).language_in_use(),
            Some(("en", LanguageSource::Platform))
        );
        // Stored before detection, or with detection off: the tag, as before.
        assert_eq!(
            mention(Some("de-AT"), None).language_in_use(),
            Some(("de-AT", LanguageSource::Platform))
        );
        assert_eq!(mention(Some(" "), None).language_in_use(), None);
    }

    #[test]
    fn a_mention_stored_before_detection_reads_and_a_verdict_is_kept() {
        let old = mention(Some("da"), None);
        let json = serde_json::to_value(&old).unwrap();
        assert!(
            json.get("detected_language").is_none(),
            "nothing new is written"
        );
        let read: Mention = serde_json::from_value(json).unwrap();
        assert_eq!(read, old);
        let judged = mention(
            None,
            Some(judge(guess("da", 0.8), &LanguagePolicy::default())),
        );
        let again: Mention =
            serde_json::from_str(&serde_json::to_string(&judged).unwrap()).unwrap();
        assert_eq!(again, judged);
    }

    #[test]
    fn the_card_says_which_language_and_whose_call_it_was() {
        let sure = judge(guess("da", 0.93), &LanguagePolicy::default());
        assert_eq!(
            card_label(&mention(None, Some(sure))).as_deref(),
            Some("Danish (detected, 93%)")
        );
        assert_eq!(
            card_label(&mention(Some("pt-BR"), Some(too_short()))).as_deref(),
            Some("Portuguese (platform tag)")
        );
        assert_eq!(
            card_label(&mention(Some("x-klingon"), None)).as_deref(),
            Some("x-klingon (platform tag)")
        );
        assert_eq!(
            card_label(&mention(None, Some(too_short()))).as_deref(),
            Some("language unknown")
        );
        assert_eq!(card_label(&mention(None, None)), None);
        let long = "a".repeat(500);
        assert!(card_label(&mention(Some(&long), None)).unwrap().len() < 60);
    }
}
