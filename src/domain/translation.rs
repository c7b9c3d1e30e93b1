//! Machine translation as the desk decides it: which mentions are worth translating into
//! the team's language, when a stored translation is worth showing on the card, how one is
//! recorded on its ticket (once: a restart never asks again), and an agent's translated
//! draft, which nobody sends until the agent picks what goes out. Language tags are
//! compared by their primary subtag (`de-AT` is German), because that is what decides
//! whether the team can read a post.

use super::{AuditEntry, Effect, MentionTranslation, Ticket, TicketId, Transition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// How much of a mention is sent to be translated: well beyond every platform's post
/// length, and a bound on what one hostile webhook delivery can cost.
pub const MAX_TRANSLATED_GRAPHEMES: usize = 5000;

/// Whether `tag` looks like a BCP 47 language tag (`de`, `pt-BR`, `zh-Hant`): letters
/// first, then subtags of letters and digits. Anything else is not sent to a service.
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split(['-', '_']);
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_alphabetic())
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The primary subtag, lower case: `pt-BR` → `pt`.
pub fn primary(tag: &str) -> String {
    tag.trim()
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether two tags name the same language (regional variants aside).
pub fn same_language(a: &str, b: &str) -> bool {
    primary(a) == primary(b)
}

/// The language the customer wrote in, as far as the desk knows it.
pub fn customer_language(ticket: &Ticket) -> Option<String> {
    // The detected language when the detector was sure, else the platform's tag.
    ticket
        .mention
        .language_in_use()
        .map(|(l, _)| l.trim())
        .filter(|l| is_language_tag(l))
        .map(str::to_string)
}

/// Whether the mention should be translated for a team working in `team_language`: it
/// has words, no translation is stored yet, and it is not known to be in the team's
/// language already (a mention without a language is sent, and the service says which
/// it was).
pub fn wants_translation(ticket: &Ticket, team_language: &str) -> bool {
    ticket.translation.is_none()
        && !ticket.mention.text.trim().is_empty()
        && customer_language(ticket).is_none_or(|l| !same_language(&l, team_language))
}

/// The stored translation, when the card should show it: not when the service found the
/// post was in the team's language after all.
pub fn shown_translation(ticket: &Ticket) -> Option<&MentionTranslation> {
    ticket
        .translation
        .as_ref()
        .filter(|t| t.from.as_deref().is_none_or(|f| !same_language(f, &t.to)))
        .filter(|t| !t.text.trim().is_empty())
}

/// The part of `text` sent to be translated, and whether it was cut.
pub fn text_to_translate(text: &str) -> (String, bool) {
    match text.grapheme_indices(true).nth(MAX_TRANSLATED_GRAPHEMES) {
        Some((end, _)) => (text[..end].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Keep a translation on its ticket and refresh the card if it is worth showing. `None`:
/// the ticket already has one (a retried job), so nothing changes.
pub fn record_translation(
    ticket: &Ticket,
    translation: MentionTranslation,
    now: DateTime<Utc>,
) -> Option<Transition> {
    if ticket.translation.is_some() {
        return None;
    }
    let mut next = ticket.clone();
    let detail = format!(
        "{} → {} by {}",
        translation.from.as_deref().unwrap_or("unknown"),
        translation.to,
        translation.by
    );
    next.translation = Some(translation);
    let effects = if shown_translation(&next).is_some() {
        next.updated_at = now;
        vec![Effect::UpdateCards]
    } else {
        Vec::new()
    };
    Some(Transition {
        audit: AuditEntry {
            ticket: ticket.id,
            at: now,
            actor: None,
            what: "mention translated".into(),
            detail: Some(detail),
        },
        ticket: next,
        effects,
    })
}

/// An agent's draft and its machine translation into the customer's language, waiting
/// for the agent to choose what is sent. Nothing in it has reached the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslatedDraft {
    pub ticket: TicketId,
    /// A private reply (with an optional public acknowledgement).
    pub private: bool,
    /// The language the draft was translated into.
    pub to: String,
    /// The draft's language, as given or as the service detected it.
    pub from: Option<String>,
    pub original: String,
    pub translated: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translated_ack: Option<String>,
    /// The service that translated it ("DeepL").
    pub by: String,
}

/// Which of a translated draft's versions the agent chose to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftChoice {
    Translation,
    Original,
}

impl TranslatedDraft {
    /// The text (and acknowledgement) to send for `choice`, exactly as shown.
    pub fn chosen(&self, choice: DraftChoice) -> (String, Option<String>) {
        match choice {
            DraftChoice::Translation => (self.translated.clone(), self.translated_ack.clone()),
            DraftChoice::Original => (self.original.clone(), self.original_ack.clone()),
        }
    }
}

/// English names of the languages support desks meet most, for labels ("German (de)").
const NAMES: &[(&str, &str)] = &[
    ("ar", "Arabic"),
    ("bg", "Bulgarian"),
    ("bn", "Bengali"),
    ("ca", "Catalan"),
    ("cs", "Czech"),
    ("da", "Danish"),
    ("de", "German"),
    ("el", "Greek"),
    ("en", "English"),
    ("es", "Spanish"),
    ("et", "Estonian"),
    ("fa", "Persian"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("ga", "Irish"),
    ("he", "Hebrew"),
    ("hi", "Hindi"),
    ("hr", "Croatian"),
    ("hu", "Hungarian"),
    ("id", "Indonesian"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("lt", "Lithuanian"),
    ("lv", "Latvian"),
    ("ms", "Malay"),
    ("nb", "Norwegian Bokmål"),
    ("nl", "Dutch"),
    ("nn", "Norwegian Nynorsk"),
    ("no", "Norwegian"),
    ("pl", "Polish"),
    ("pt", "Portuguese"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("sk", "Slovak"),
    ("sl", "Slovenian"),
    ("sr", "Serbian"),
    ("sv", "Swedish"),
    ("ta", "Tamil"),
    ("th", "Thai"),
    ("tr", "Turkish"),
    ("uk", "Ukrainian"),
    ("ur", "Urdu"),
    ("vi", "Vietnamese"),
    ("zh", "Chinese"),
];

/// The English name of a language, when the desk knows it.
pub fn language_name(tag: &str) -> Option<&'static str> {
    let p = primary(tag);
    NAMES.iter().find(|(code, _)| *code == p).map(|(_, n)| *n)
}

/// A language as agents read it: `German (de)`, or the tag itself.
pub fn language_label(tag: &str) -> String {
    match language_name(tag) {
        Some(name) => format!("{name} ({tag})"),
        None => tag.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(language: Option<&str>, text: &str) -> Ticket {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        Ticket::open(
            TicketId(7),
            crate::domain::language::sofies_mention(text, language),
            at,
        )
    }

    fn translated(from: Option<&str>, to: &str) -> MentionTranslation {
        MentionTranslation {
            text: "My order has not arrived".into(),
            from: from.map(str::to_string),
            to: to.into(),
            by: "DeepL".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn only_mentions_not_known_to_be_in_the_teams_language_are_translated() {
        assert!(wants_translation(&ticket(Some("de"), "Hallo"), "en"));
        assert!(wants_translation(&ticket(Some("de-AT"), "Servus"), "en-GB"));
        assert!(!wants_translation(&ticket(Some("en-US"), "Hi"), "en"));
        assert!(!wants_translation(&ticket(Some("EN"), "Hi"), "en-GB"));
        // The platform did not say: the service will.
        assert!(wants_translation(&ticket(None, "Hallo"), "en"));
        // A tag that is no language is not trusted either way.
        assert!(wants_translation(&ticket(Some("<b>"), "Hallo"), "en"));
        assert!(!wants_translation(&ticket(Some("de"), "  \n"), "en"));
        let mut done = ticket(Some("de"), "Hallo");
        done.translation = Some(translated(Some("de"), "en"));
        assert!(!wants_translation(&done, "en"), "translated once only");
    }

    #[test]
    fn a_translation_is_recorded_once_and_shown_only_when_the_languages_differ() {
        let now = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(3);
        let t = ticket(None, "Hallo");
        let tr = record_translation(&t, translated(Some("DE"), "en"), now).unwrap();
        assert_eq!(tr.effects, vec![Effect::UpdateCards]);
        assert!(shown_translation(&tr.ticket).is_some());
        assert_eq!(tr.audit.what, "mention translated");
        assert_eq!(tr.audit.detail.as_deref(), Some("DE → en by DeepL"));
        assert!(record_translation(&tr.ticket, translated(Some("de"), "en"), now).is_none());
        // The service found it was English after all: kept, so it is not asked again,
        // and not shown.
        let tr = record_translation(&t, translated(Some("en"), "en-GB"), now).unwrap();
        assert!(tr.effects.is_empty());
        assert!(shown_translation(&tr.ticket).is_none());
        assert!(!wants_translation(&tr.ticket, "en"));
    }

    #[test]
    fn tags_are_checked_and_compared_by_their_language() {
        for good in ["de", "pt-BR", "zh-Hant", "en_GB", "gsw"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["", "d", "deutsch", "de-", "1e", "de-<b>", "de DE"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
        assert!(same_language("pt-BR", "PT"));
        assert!(!same_language("nb", "nn"));
        assert_eq!(language_label("de"), "German (de)");
        assert_eq!(language_label("pt-BR"), "Portuguese (pt-BR)");
        assert_eq!(language_label("xx"), "xx");
    }

    #[test]
    fn long_posts_are_cut_on_a_grapheme_before_they_are_sent() {
        let family = "👨‍👩‍👧";
        let long = family.repeat(MAX_TRANSLATED_GRAPHEMES + 3);
        let (cut, was) = text_to_translate(&long);
        assert!(was);
        assert_eq!(cut, family.repeat(MAX_TRANSLATED_GRAPHEMES));
        assert_eq!(text_to_translate("kurz"), ("kurz".into(), false));
    }

    #[test]
    fn the_chosen_version_is_exactly_what_was_shown() {
        let d = TranslatedDraft {
            ticket: TicketId(7),
            private: true,
            to: "de".into(),
            from: Some("en".into()),
            original: "Thanks!".into(),
            translated: "Danke!".into(),
            original_ack: Some("We sent you a DM".into()),
            translated_ack: Some("Wir haben dir geschrieben".into()),
            by: "DeepL".into(),
        };
        assert_eq!(
            d.chosen(DraftChoice::Translation),
            ("Danke!".into(), Some("Wir haben dir geschrieben".into()))
        );
        assert_eq!(d.chosen(DraftChoice::Original).0, "Thanks!");
    }
}
