//! The language detector the desk carries: lingua (statistical n-gram models of one to
//! five characters and a rule engine for scripts and unique letters), in its high-accuracy
//! mode, behind the `LanguageDetector` port. Its models are compiled in, one cargo feature
//! per language, so the binary holds only these 28 (about 4 MB each, read in place, never
//! downloaded): English, German, French, Spanish, Portuguese, Italian, Dutch, Danish,
//! Norwegian Bokmål and Nynorsk, Swedish, Finnish, Polish, Turkish, Russian, Ukrainian,
//! Arabic, Urdu, Hindi, Tamil, Bengali, Japanese, Korean, Chinese, Malay, Indonesian,
//! Vietnamese and Thai. A post in any other language is guessed as the closest of these,
//! usually with a confidence too low to trust, so the platform's tag stands. Adding one
//! means its feature in `Cargo.toml`, an entry in [`COVERED`] and posts in
//! `tests/corpus/languages.tsv`.

use crate::domain::language::Guess;
use crate::ports::LanguageDetector;
use lingua::Language;

/// The languages the detector tells apart.
pub const COVERED: [Language; 28] = [
    Language::English,
    Language::German,
    Language::French,
    Language::Spanish,
    Language::Portuguese,
    Language::Italian,
    Language::Dutch,
    Language::Danish,
    Language::Bokmal,
    Language::Nynorsk,
    Language::Swedish,
    Language::Finnish,
    Language::Polish,
    Language::Turkish,
    Language::Russian,
    Language::Ukrainian,
    Language::Arabic,
    Language::Urdu,
    Language::Hindi,
    Language::Tamil,
    Language::Bengali,
    Language::Japanese,
    Language::Korean,
    Language::Chinese,
    Language::Malay,
    Language::Indonesian,
    Language::Vietnamese,
    Language::Thai,
];

/// lingua, limited to [`COVERED`].
pub struct Lingua {
    detector: lingua::LanguageDetector,
}

impl Lingua {
    /// Cheap: the models are read in place when first needed (see
    /// `runtime::language::Languages::warm_up`).
    pub fn new() -> Lingua {
        Lingua {
            detector: lingua::LanguageDetectorBuilder::from_languages(&COVERED).build(),
        }
    }

    /// The ISO 639-1 codes of [`COVERED`].
    pub fn codes() -> Vec<String> {
        COVERED
            .iter()
            .map(|l| l.iso_code_639_1().to_string())
            .collect()
    }
}

impl Default for Lingua {
    fn default() -> Self {
        Lingua::new()
    }
}

impl LanguageDetector for Lingua {
    fn detect(&self, text: &str) -> Option<Guess> {
        let values = self.detector.compute_language_confidence_values(text);
        let (language, confidence) = values.first()?;
        (*confidence > 0.0).then(|| Guess {
            language: language.iso_code_639_1().to_string(),
            confidence: *confidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_in_iso_639_1_codes_for_every_language_it_covers() {
        let codes = Lingua::codes();
        assert_eq!(codes.len(), COVERED.len());
        for code in &codes {
            assert_eq!(code.len(), 2, "{code}");
            assert!(
                crate::domain::language::name(code).is_some(),
                "the card names {code}"
            );
        }
        let lingua = Lingua::new();
        let guess = lingua
            .detect("Hvorfor kan jeg ikke logge ind i jeres app i dag")
            .expect("a guess");
        assert_eq!(guess.language, "da");
        assert!(guess.confidence > 0.0 && guess.confidence <= 1.0);
        assert_eq!(lingua.detect(""), None);
    }
}
