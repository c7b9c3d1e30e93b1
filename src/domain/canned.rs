//! Canned replies: a library of well-written standard answers, per language, with
//! variables (`{author}` the customer's @handle, `{author_name}` their display name,
//! `{agent}`, `{ticket}`, `{brand}`), the same variables as everywhere the desk writes to a
//! customer. An agent picks one on the card and the reply form opens with it filled in,
//! ready to edit before sending.

use super::{AgentRef, Ticket};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedReply {
    /// Short and stable: it travels in button values and commands.
    pub id: String,
    /// What agents see in the picker.
    pub title: String,
    /// BCP 47 language tag (`en`, `da`, `ta`); none means "any language".
    #[serde(default)]
    pub language: Option<String>,
    pub text: String,
}

pub const VARIABLES: [&str; 5] = [
    "{author}",
    "{author_name}",
    "{agent}",
    "{ticket}",
    "{brand}",
];

/// `{author}` (the customer's @handle, as the platform addresses them) and
/// `{author_name}` (their display name) filled in: one meaning in every text the desk
/// writes to a customer (canned replies, the off-hours acknowledgement).
pub fn fill_author(text: &str, author: &crate::domain::Author) -> String {
    text.replace("{author_name}", &author.name)
        .replace("{author}", &format!("@{}", author.handle))
}

impl CannedReply {
    /// The text with its variables filled in for this ticket and agent.
    pub fn render(&self, ticket: &Ticket, agent: &AgentRef, brand: &str) -> String {
        fill_author(&self.text, &ticket.mention.author)
            .replace("{agent}", &agent.name)
            .replace("{ticket}", &ticket.id.to_string())
            .replace("{brand}", brand)
    }

    /// Unknown `{…}` placeholders: a typo would reach the customer verbatim.
    pub fn unknown_variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let var = &rest[start..start + len + 1];
            if !VARIABLES.contains(&var) {
                out.push(var.to_string());
            }
            rest = &rest[start + len + 1..];
        }
        out
    }
}

/// The replies that fit a ticket: those in the mention's language (or for any language)
/// first; when the language is unknown, all of them.
pub fn choices_for<'a>(library: &'a [CannedReply], ticket: &Ticket) -> Vec<&'a CannedReply> {
    let lang = ticket
        .mention
        .language_in_use()
        .map(|(l, _)| l.split('-').next().unwrap_or(l).to_ascii_lowercase());
    let fits = |c: &CannedReply| match (&lang, &c.language) {
        (Some(l), Some(cl)) => cl.split('-').next().unwrap_or(cl).eq_ignore_ascii_case(l),
        _ => true,
    };
    library.iter().filter(|c| fits(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Mention, SurfaceKind, TicketId};
    use chrono::TimeZone;

    fn ticket(lang: Option<&str>) -> Ticket {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let mention = crate::domain::language::sofies_mention("hej", lang);
        Ticket::open(
            TicketId(42),
            Mention {
                created_at: at,
                ..mention
            },
            at,
        )
    }

    fn canned(id: &str, lang: Option<&str>, text: &str) -> CannedReply {
        CannedReply {
            id: id.into(),
            title: id.into(),
            language: lang.map(String::from),
            text: text.into(),
        }
    }

    #[test]
    fn variables_are_filled_in() {
        let agent = AgentRef {
            surface: SurfaceKind::Slack,
            user_id: "U1".into(),
            name: "Ana".into(),
            roles: vec![],
        };
        let c = canned(
            "thanks",
            None,
            "Hi {author_name} ({author}), {agent} from {brand} here (ticket {ticket}).",
        );
        assert_eq!(
            c.render(&ticket(None), &agent, "BrandCo"),
            "Hi Sofie (@sofie), Ana from BrandCo here (ticket 42)."
        );
        assert!(c.unknown_variables().is_empty());
        assert_eq!(
            canned("x", None, "Hi {autor} {agent}").unknown_variables(),
            ["{autor}"]
        );
    }

    #[test]
    fn replies_in_the_customers_language_are_offered() {
        let library = [
            canned("en", Some("en"), "Thanks"),
            canned("da", Some("da"), "Tak"),
            canned("any", None, "🙏"),
        ];
        let ids = |l: Option<&str>| {
            choices_for(&library, &ticket(l))
                .iter()
                .map(|c| c.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Some("da-DK")), ["da", "any"]);
        assert_eq!(ids(Some("en")), ["en", "any"]);
        assert_eq!(ids(None), ["en", "da", "any"]);
        // An untagged (or mistagged) post the detector is sure is Danish gets the Danish one.
        let mut t = ticket(Some("en"));
        t.mention.detected_language = Some(crate::domain::DetectedLanguage {
            language: Some("da".into()),
            confidence: 88,
            sure: true,
        });
        let offered: Vec<_> = choices_for(&library, &t)
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(offered, ["da", "any"]);
    }
}
