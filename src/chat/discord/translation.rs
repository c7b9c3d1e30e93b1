//! Machine translation as Discord shows it: the card's mention in the team's language
//! (labelled as a machine translation), the reply form's field to translate the draft,
//! and the private message that shows the draft beside its translation with the buttons
//! "Send translation", "Send original" and "Edit translation". Only what is pressed is
//! published, and a version shown cut cannot be sent unseen: its button is off and Edit
//! opens the whole text in a form. Every text from outside is rendered through
//! `DiscordMarkup`, inert.

use super::card::{limits, DiscordMarkup, ACK_INPUT, PRIVATE_MODAL, REPLY_INPUT, REPLY_MODAL};
use crate::chat::markup::cut_to;
use crate::chat::Markup;
use crate::domain::text::TextRules;
use crate::domain::translation::{language_label, shown_translation, DraftChoice, TranslatedDraft};
use crate::domain::{Ticket, TicketId};
use serenity::all::{
    ButtonStyle, CreateActionRow, CreateAllowedMentions, CreateButton, CreateEmbed,
    CreateInputText, CreateInteractionResponseMessage, CreateModal, InputTextStyle,
};

/// The reply form's field naming the language to translate into first.
pub const TRANSLATE_INPUT: &str = "translate";

/// What a held draft's buttons do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftButton {
    Send(DraftChoice),
    Edit,
}

impl DraftButton {
    fn verb(self) -> &'static str {
        match self {
            DraftButton::Send(DraftChoice::Translation) => "send",
            DraftButton::Send(DraftChoice::Original) => "original",
            DraftButton::Edit => "edit",
        }
    }
}

/// `mb:tr:<verb>:<ticket>:<draft>`.
pub fn draft_custom_id(button: DraftButton, ticket: TicketId, number: u64) -> String {
    format!("mb:tr:{}:{ticket}:{number}", button.verb())
}

/// A held draft's button, its ticket and the draft's number; None for anything else.
pub fn parse_draft_custom_id(custom_id: &str) -> Option<(DraftButton, TicketId, u64)> {
    let mut parts = custom_id.strip_prefix("mb:tr:")?.splitn(3, ':');
    let button = match parts.next()? {
        "send" => DraftButton::Send(DraftChoice::Translation),
        "original" => DraftButton::Send(DraftChoice::Original),
        "edit" => DraftButton::Edit,
        _ => return None,
    };
    let ticket = parts.next()?.parse().ok()?;
    let number = parts.next()?.parse().ok()?;
    Some((button, ticket, number))
}

/// The card's field with the mention in the team's language: (name, value).
pub fn card_field(ticket: &Ticket) -> Option<(String, String)> {
    let tr = shown_translation(ticket)?;
    let d = &DiscordMarkup;
    let from = tr
        .from
        .as_deref()
        .map(language_label)
        .unwrap_or_else(|| "its language".into());
    let name = d.fit_plain(
        &format!(
            "🌐 Machine translation, {from} → {} ({})",
            language_label(&tr.to),
            tr.by
        ),
        limits::FIELD_NAME,
    );
    Some((name, d.fit_quote(&tr.text, limits::FIELD_VALUE).0))
}

/// The reply form's field: blank sends the draft as written.
pub fn translate_input(to: &str) -> CreateActionRow {
    CreateActionRow::InputText(
        CreateInputText::new(
            InputTextStyle::Short,
            "Translate first into (blank: send as is)",
            TRANSLATE_INPUT,
        )
        .placeholder(DiscordMarkup.fit_plain(
            &format!("{to}: see it in {} before it is sent", language_label(to)),
            limits::PLACEHOLDER,
        ))
        .required(false)
        .max_length(35),
    )
}

/// How much of each version the message shows: the two descriptions and the two
/// acknowledgement fields stay inside Discord's 6,000 characters for all embeds.
const SHOWN: usize = 2400;
const SHOWN_ACK: usize = 400;

/// The private message with the draft, its translation and the buttons.
pub fn draft_message(draft: &TranslatedDraft, number: u64) -> CreateInteractionResponseMessage {
    let d = &DiscordMarkup;
    let from = draft
        .from
        .as_deref()
        .map(language_label)
        .unwrap_or_else(|| "as written".into());
    let version = |title: String, text: &str, ack: Option<&String>| {
        let (shown, cut) = d.fit(text, SHOWN);
        let mut embed = CreateEmbed::new()
            .title(d.fit_plain(&title, limits::TITLE))
            .description(shown);
        let mut ack_cut = false;
        if let Some(ack) = ack {
            let (shown, cut) = d.fit(ack, SHOWN_ACK);
            ack_cut = cut;
            embed = embed.field("Public acknowledgement", shown, false);
        }
        (embed, cut || ack_cut)
    };
    let (original, original_cut) = version(
        format!("Your draft ({from})"),
        &draft.original,
        draft.original_ack.as_ref(),
    );
    let (translated, translated_cut) = version(
        format!(
            "Machine translation into {} ({})",
            language_label(&draft.to),
            draft.by
        ),
        &draft.translated,
        draft.translated_ack.as_ref(),
    );
    let buttons = vec![
        CreateButton::new(draft_custom_id(
            DraftButton::Send(DraftChoice::Translation),
            draft.ticket,
            number,
        ))
        .label("Send translation")
        .style(ButtonStyle::Primary)
        .disabled(translated_cut),
        CreateButton::new(draft_custom_id(
            DraftButton::Send(DraftChoice::Original),
            draft.ticket,
            number,
        ))
        .label("Send original")
        .style(ButtonStyle::Secondary)
        .disabled(original_cut),
        CreateButton::new(draft_custom_id(DraftButton::Edit, draft.ticket, number))
            .label("Edit translation")
            .style(ButtonStyle::Secondary),
    ];
    let mut content = format!(
        "**Check the translation** of your {} to ticket #{}. Nothing has been sent yet: only what you press is published.",
        if draft.private { "private message" } else { "reply" },
        draft.ticket
    );
    if translated_cut || original_cut {
        content.push_str(" A version too long to show whole can only be sent after Edit.");
    }
    CreateInteractionResponseMessage::new()
        .content(content)
        .embeds(vec![original, translated])
        .components(vec![CreateActionRow::Buttons(buttons)])
        .allowed_mentions(CreateAllowedMentions::new())
        .ephemeral(true)
}

/// What replaces the message once a version was sent (or waits for approval): no
/// buttons left to press again.
pub fn sent_message(ticket: &Ticket, choice: DraftChoice) -> CreateInteractionResponseMessage {
    let what = match choice {
        DraftChoice::Translation => "The translation",
        DraftChoice::Original => "Your original",
    };
    let content = if ticket.draft_awaiting_approval().is_some() {
        format!(
            "{what} for ticket #{} waits for another agent's approval; nothing is sent until then.",
            ticket.id
        )
    } else {
        format!(
            "{what} to ticket #{} queued; its link appears in the card's thread once published.",
            ticket.id
        )
    };
    CreateInteractionResponseMessage::new()
        .content(content)
        .embeds(Vec::new())
        .components(Vec::new())
        .allowed_mentions(CreateAllowedMentions::new())
}

/// The reply form filled in with the translation (and acknowledgement), to edit and
/// send: what it holds on submit is what is published.
pub fn edit_form(ticket: &Ticket, rules: TextRules, draft: &TranslatedDraft) -> CreateModal {
    let d = &DiscordMarkup;
    let to = language_label(&draft.to);
    let text = CreateInputText::new(
        InputTextStyle::Paragraph,
        d.fit_plain(
            &format!("In {to} ({} chars max)", rules.max_chars),
            limits::INPUT_LABEL,
        ),
        REPLY_INPUT,
    )
    .value(cut_to(&draft.translated, limits::INPUT_VALUE))
    .required(true)
    .max_length(limits::INPUT_VALUE as u16);
    let mut rows = vec![CreateActionRow::InputText(text)];
    if draft.private {
        let mut ack = CreateInputText::new(
            InputTextStyle::Short,
            "Public acknowledgement (optional)",
            ACK_INPUT,
        )
        .required(false)
        .max_length(280);
        if let Some(text) = &draft.translated_ack {
            ack = ack.value(cut_to(text, 280));
        }
        rows.push(CreateActionRow::InputText(ack));
    }
    let prefix = if draft.private {
        PRIVATE_MODAL
    } else {
        REPLY_MODAL
    };
    CreateModal::new(
        format!("{prefix}:{}", ticket.id),
        d.fit_plain(
            &format!("Edit the translation for #{}", ticket.id),
            limits::MODAL_TITLE,
        ),
    )
    .components(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_buttons_round_trip_and_strangers_are_refused() {
        for button in [
            DraftButton::Send(DraftChoice::Translation),
            DraftButton::Send(DraftChoice::Original),
            DraftButton::Edit,
        ] {
            let id = draft_custom_id(button, TicketId(42), 7);
            assert!(id.len() <= 100, "{id}");
            assert_eq!(parse_draft_custom_id(&id), Some((button, TicketId(42), 7)));
        }
        assert_eq!(parse_draft_custom_id("mb:tr:teleport:42:7"), None);
        assert_eq!(parse_draft_custom_id("mb:tr:send:42"), None);
        assert_eq!(parse_draft_custom_id("mb:send:42:7"), None);
    }
}

#[cfg(test)]
mod rendering {
    use super::*;
    use crate::domain::MentionTranslation;
    use chrono::{DateTime, Utc};

    fn draft(translated: &str) -> TranslatedDraft {
        TranslatedDraft {
            ticket: TicketId(3),
            private: false,
            to: "de".into(),
            from: Some("en".into()),
            original: "Thanks @everyone".into(),
            translated: translated.into(),
            original_ack: None,
            translated_ack: None,
            by: "DeepL".into(),
        }
    }

    #[test]
    fn the_card_field_is_labelled_and_inert() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let mut t = Ticket::open(
            TicketId(3),
            crate::domain::language::sofies_mention("Hallo", None),
            at,
        );
        assert!(card_field(&t).is_none());
        t.translation = Some(MentionTranslation {
            text: "@everyone <@123> [click](https://evil.example)".into(),
            from: None,
            to: "en".into(),
            by: "DeepL".into(),
            at,
        });
        let (name, value) = card_field(&t).unwrap();
        assert!(name.starts_with("🌐 Machine translation"), "{name}");
        assert_eq!(
            value,
            "> \\@\u{200B}everyone \\<\\@123\\> \\[click\\](https://evil.example)"
        );
    }

    #[test]
    fn a_version_shown_cut_cannot_be_sent_unseen() {
        let message = serde_json::to_string(&draft_message(&draft("Danke"), 9)).unwrap();
        assert!(!message.contains("\"disabled\":true"), "{message}");
        assert!(message.contains("mb:tr:send:3:9"), "{message}");
        assert!(
            message.contains("\\\\@\u{200B}everyone"),
            "inert: {message}"
        );
        let long = "Danke ".repeat(1000);
        let message = serde_json::to_value(draft_message(&draft(&long), 9)).unwrap();
        let buttons = &message["components"][0]["components"];
        assert_eq!(buttons[0]["disabled"], true, "send translation: {buttons}");
        assert_ne!(buttons[1]["disabled"], true, "send original");
        assert_ne!(buttons[2]["disabled"], true, "edit");
    }
}
