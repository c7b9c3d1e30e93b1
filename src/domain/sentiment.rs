//! A sentiment hint: does the post read angry or pleased? A small lexicon per language
//! (English, German, French, Spanish, Dutch, Portuguese), each word with a weight from
//! -3 to +3, a word after a negation ("not good", "nicht gut") counting the other way.
//! It is a hint and labelled so on the card: irony, slang and context escape it. A
//! language without a lexicon gets no hint rather than a wrong one.

use super::words::Words;

/// How the post reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mood {
    Negative,
    Positive,
}

/// The summed weights from which a post reads negative (or, positive, the opposite).
const FROM: i32 = 2;
/// A negation turns the next this-many words around.
const NEGATION_REACH: usize = 3;

struct Lexicon {
    language: &'static str,
    words: &'static [(&'static str, i8)],
    negations: &'static [&'static str],
}

/// Folded words (see `words::fold`): lowercase, no accents.
const LEXICONS: &[Lexicon] = &[
    Lexicon {
        language: "en",
        words: &[
            ("angry", -3),
            ("furious", -3),
            ("worst", -3),
            ("terrible", -3),
            ("awful", -3),
            ("horrible", -3),
            ("disgusting", -3),
            ("scam", -3),
            ("useless", -3),
            ("hate", -3),
            ("pathetic", -3),
            ("unacceptable", -3),
            ("ridiculous", -2),
            ("disappointed", -2),
            ("disappointing", -2),
            ("annoyed", -2),
            ("annoying", -2),
            ("frustrated", -2),
            ("frustrating", -2),
            ("broken", -2),
            ("bad", -2),
            ("poor", -2),
            ("fail", -2),
            ("failed", -2),
            ("fails", -2),
            ("rude", -2),
            ("slow", -1),
            ("still", -1),
            ("again", -1),
            ("waiting", -1),
            ("problem", -1),
            ("issue", -1),
            ("wrong", -2),
            ("never", -1),
            ("cancel", -1),
            ("ignored", -2),
            ("wtf", -3),
            ("thanks", 2),
            ("thank", 2),
            ("great", 3),
            ("awesome", 3),
            ("love", 3),
            ("excellent", 3),
            ("amazing", 3),
            ("fantastic", 3),
            ("helpful", 2),
            ("good", 2),
            ("nice", 2),
            ("happy", 2),
            ("glad", 2),
            ("perfect", 3),
            ("fixed", 1),
            ("works", 1),
            ("appreciate", 2),
        ],
        negations: &[
            "not", "no", "never", "isn't", "isnt", "don't", "dont", "doesn't", "doesnt", "wasn't",
            "wasnt", "can't", "cant", "won't", "wont", "nothing",
        ],
    },
    Lexicon {
        language: "de",
        words: &[
            ("wutend", -3),
            ("schlimmste", -3),
            ("schrecklich", -3),
            ("furchtbar", -3),
            ("katastrophe", -3),
            ("betrug", -3),
            ("nutzlos", -3),
            ("unverschamt", -3),
            ("inakzeptabel", -3),
            ("enttauscht", -2),
            ("enttauschend", -2),
            ("argerlich", -2),
            ("verargert", -2),
            ("kaputt", -2),
            ("schlecht", -2),
            ("falsch", -2),
            ("langsam", -1),
            ("immer", -1),
            ("wieder", -1),
            ("problem", -1),
            ("danke", 2),
            ("super", 3),
            ("toll", 3),
            ("klasse", 3),
            ("prima", 2),
            ("gut", 2),
            ("hilfreich", 2),
            ("zufrieden", 2),
            ("perfekt", 3),
        ],
        negations: &[
            "nicht", "kein", "keine", "keinen", "nie", "niemals", "nichts",
        ],
    },
    Lexicon {
        language: "fr",
        words: &[
            ("furieux", -3),
            ("furieuse", -3),
            ("pire", -3),
            ("horrible", -3),
            ("nul", -3),
            ("nulle", -3),
            ("arnaque", -3),
            ("inadmissible", -3),
            ("inacceptable", -3),
            ("decu", -2),
            ("decue", -2),
            ("decevant", -2),
            ("enerve", -2),
            ("casse", -2),
            ("mauvais", -2),
            ("probleme", -1),
            ("lent", -1),
            ("encore", -1),
            ("merci", 2),
            ("super", 3),
            ("genial", 3),
            ("excellent", 3),
            ("parfait", 3),
            ("bien", 2),
            ("bon", 2),
            ("content", 2),
            ("contente", 2),
        ],
        negations: &["ne", "pas", "jamais", "rien", "aucun", "aucune"],
    },
    Lexicon {
        language: "es",
        words: &[
            ("furioso", -3),
            ("furiosa", -3),
            ("peor", -3),
            ("horrible", -3),
            ("terrible", -3),
            ("estafa", -3),
            ("inaceptable", -3),
            ("verguenza", -3),
            ("decepcionado", -2),
            ("decepcionada", -2),
            ("enfadado", -2),
            ("enfadada", -2),
            ("roto", -2),
            ("malo", -2),
            ("mal", -2),
            ("problema", -1),
            ("lento", -1),
            ("otra", -1),
            ("gracias", 2),
            ("genial", 3),
            ("excelente", 3),
            ("perfecto", 3),
            ("bueno", 2),
            ("bien", 2),
            ("contento", 2),
            ("contenta", 2),
        ],
        negations: &["no", "nunca", "nada", "ningun", "ninguna", "jamas"],
    },
    Lexicon {
        language: "nl",
        words: &[
            ("woedend", -3),
            ("slechtste", -3),
            ("verschrikkelijk", -3),
            ("waardeloos", -3),
            ("oplichting", -3),
            ("onacceptabel", -3),
            ("teleurgesteld", -2),
            ("boos", -2),
            ("kapot", -2),
            ("slecht", -2),
            ("probleem", -1),
            ("traag", -1),
            ("weer", -1),
            ("bedankt", 2),
            ("dank", 2),
            ("geweldig", 3),
            ("top", 3),
            ("perfect", 3),
            ("goed", 2),
            ("blij", 2),
        ],
        negations: &["niet", "geen", "nooit", "niets"],
    },
    Lexicon {
        language: "pt",
        words: &[
            ("furioso", -3),
            ("furiosa", -3),
            ("pior", -3),
            ("horrivel", -3),
            ("pessimo", -3),
            ("golpe", -3),
            ("inaceitavel", -3),
            ("decepcionado", -2),
            ("decepcionada", -2),
            ("irritado", -2),
            ("quebrado", -2),
            ("ruim", -2),
            ("problema", -1),
            ("lento", -1),
            ("obrigado", 2),
            ("obrigada", 2),
            ("otimo", 3),
            ("excelente", 3),
            ("perfeito", 3),
            ("bom", 2),
            ("feliz", 2),
        ],
        negations: &["nao", "nunca", "nada", "nenhum", "nenhuma", "jamais"],
    },
];

/// The languages a hint can be given in.
pub fn languages() -> impl Iterator<Item = &'static str> {
    LEXICONS.iter().map(|l| l.language)
}

/// How `words` read in `language` (a tag like `en` or `pt-BR`), if its lexicon is
/// sure enough; `None` for a neutral post, or a language without a lexicon (or none
/// known).
pub fn hint(words: &Words, language: Option<&str>) -> Option<Mood> {
    let primary = language?
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let lexicon = LEXICONS.iter().find(|l| l.language == primary)?;
    let mut sum: i32 = 0;
    let mut negated_for = 0usize;
    for word in words.as_slice() {
        if lexicon.negations.contains(&word.as_str()) {
            negated_for = NEGATION_REACH;
            continue;
        }
        if let Some((_, weight)) = lexicon.words.iter().find(|(w, _)| *w == word.as_str()) {
            let weight = i32::from(*weight);
            // "not good" reads as bad; "not bad" only as not bad.
            sum += if negated_for > 0 {
                if weight > 0 {
                    -weight
                } else {
                    weight.abs() / 2
                }
            } else {
                weight
            };
        }
        negated_for = negated_for.saturating_sub(1);
    }
    if sum <= -FROM {
        Some(Mood::Negative)
    } else if sum >= FROM {
        Some(Mood::Positive)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mood(text: &str, lang: &str) -> Option<Mood> {
        hint(&Words::of(text), Some(lang))
    }

    #[test]
    fn angry_and_pleased_posts_read_so_in_each_language_with_a_lexicon() {
        assert_eq!(
            mood("Worst service ever, still broken!!", "en"),
            Some(Mood::Negative)
        );
        assert_eq!(
            mood("Thanks, that was really helpful", "en-GB"),
            Some(Mood::Positive)
        );
        assert_eq!(
            mood("Schrecklich, schon wieder kaputt", "de"),
            Some(Mood::Negative)
        );
        assert_eq!(mood("Très déçu, c'est nul", "fr"), Some(Mood::Negative));
        assert_eq!(mood("¡Gracias, genial!", "es"), Some(Mood::Positive));
        assert_eq!(mood("Waardeloos en traag", "nl"), Some(Mood::Negative));
        assert_eq!(mood("Péssimo atendimento", "pt-BR"), Some(Mood::Negative));
    }

    #[test]
    fn negation_turns_praise_around_and_neutral_posts_get_no_hint() {
        assert_eq!(mood("This is not good at all", "en"), Some(Mood::Negative));
        assert_eq!(mood("Das ist nicht gut", "de"), Some(Mood::Negative));
        assert_eq!(mood("not bad", "en"), None);
        assert_eq!(mood("How do I change my address?", "en"), None);
    }

    #[test]
    fn a_language_without_a_lexicon_or_no_language_gets_no_hint() {
        assert_eq!(mood("Worst service ever", "ta"), None);
        assert_eq!(hint(&Words::of("Worst service ever"), None), None);
        assert!(languages().any(|l| l == "en"));
    }
}
