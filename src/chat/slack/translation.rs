//! Machine translation as Slack shows it: the card's mention in the team's language
//! (labelled as a machine translation), the reply form's offer to translate the draft,
//! and the form that shows the draft beside its translation before anything is sent.
//! What that form's box holds when the agent presses Send is exactly what is published.
//! Every text from outside (the customer's, the service's, the agent's) is rendered
//! through `SlackMarkup`, inert.

use super::card::{limits, md, SlackMarkup, ACK_BLOCK, REPLY_BLOCK, REPLY_INPUT};
use crate::chat::markup::{cut_to, surface_len};
use crate::chat::Markup;
use crate::domain::text::TextRules;
use crate::domain::translation::{language_label, shown_translation, TranslatedDraft};
use crate::domain::{Ticket, TicketId};
use slack_morphism::prelude::*;

/// The reply form's checkbox: translate the draft into the customer's language first.
pub const TRANSLATE_BLOCK: &str = "translate";
pub const TRANSLATE_ACTION: &str = "translate";
/// The form that shows a draft and its translation (public reply, private reply).
pub const CHECKED_CALLBACK: &str = "mb_reply_translated";
pub const CHECKED_PRIVATE_CALLBACK: &str = "mb_reply_private_translated";

/// The card's section with the mention in the team's language, if there is one to show.
pub fn card_block(ticket: &Ticket) -> Option<SlackBlock> {
    let tr = shown_translation(ticket)?;
    let t = &SlackMarkup;
    let from = tr
        .from
        .as_deref()
        .map(language_label)
        .unwrap_or_else(|| "its language".into());
    let head = format!(
        ":globe_with_meridians: *Machine translation* from {} into {} ({}):\n",
        t.escape(&from),
        t.escape(&language_label(&tr.to)),
        t.fit(&tr.by, 40).0
    );
    let (quoted, _) = t.fit_quote(&tr.text, limits::TEXT - surface_len(&head));
    Some(
        SlackSectionBlock::new()
            .with_text(md(head + &quoted))
            .into(),
    )
}

/// The reply form's offer: one checkbox, unticked, whose value is the language.
pub fn translate_option(to: &str) -> SlackBlock {
    let t = &SlackMarkup;
    let option = SlackBlockChoiceItem::new(
        SlackBlockText::from(SlackBlockPlainText::new(t.fit_plain(
            &format!("Translate into {} first", language_label(to)),
            limits::OPTION_TEXT,
        ))),
        to.to_string(),
    );
    SlackInputBlock::new(
        "Translation".into(),
        SlackBlockCheckboxesElement::new(vec![option])
            .with_action_id(TRANSLATE_ACTION.into())
            .into(),
    )
    .with_block_id(TRANSLATE_BLOCK.into())
    .with_optional(true)
    .with_hint("A machine translation; you see it beside your draft, and nothing is sent until you confirm.".into())
    .into()
}

fn modal(title: &str, blocks: Vec<SlackBlock>, ticket: TicketId) -> SlackModalView {
    SlackModalView::new(title.into(), blocks)
        .with_close("Cancel".into())
        .with_private_metadata(ticket.to_string())
}

/// The draft beside its translation. The boxes hold the translation, editable; Send
/// publishes exactly what they hold.
pub fn checked_view(draft: &TranslatedDraft) -> SlackView {
    let t = &SlackMarkup;
    let to = language_label(&draft.to);
    let from = draft
        .from
        .as_deref()
        .map(language_label)
        .unwrap_or_else(|| "as written".into());
    let head = format!("*Your draft* ({}):\n", t.escape(&from));
    let (quoted, _) = t.fit_quote(&draft.original, limits::TEXT - surface_len(&head));
    let mut blocks: Vec<SlackBlock> = vec![SlackSectionBlock::new()
        .with_text(md(head + &quoted))
        .into()];
    if let Some(ack) = &draft.original_ack {
        let head = "*Your public acknowledgement*:\n".to_string();
        let (quoted, _) = t.fit_quote(ack, limits::TEXT - surface_len(&head));
        blocks.push(
            SlackSectionBlock::new()
                .with_text(md(head + &quoted))
                .into(),
        );
    }
    let input = SlackBlockPlainTextInputElement::new()
        .with_action_id(REPLY_INPUT.into())
        .with_multiline(true)
        .with_initial_value(cut_to(&draft.translated, limits::TEXT));
    blocks.push(
        SlackInputBlock::new(
            t.fit_plain(
                &format!(
                    "{} in {to}: sent exactly as shown",
                    if draft.private {
                        "Private message"
                    } else {
                        "Reply"
                    }
                ),
                150,
            )
            .into(),
            input.into(),
        )
        .with_block_id(REPLY_BLOCK.into())
        .with_hint(
            t.fit_plain(
                &format!(
                    "Machine translation by {}. Edit it if you like: what this box holds is what the customer receives.",
                    draft.by
                ),
                limits::LABEL,
            )
            .into(),
        )
        .into(),
    );
    if draft.private {
        let mut ack = SlackBlockPlainTextInputElement::new().with_action_id(REPLY_INPUT.into());
        if let Some(text) = &draft.translated_ack {
            ack = ack.with_initial_value(cut_to(text, limits::TEXT));
        }
        blocks.push(
            SlackInputBlock::new(
                t.fit_plain(&format!("Public acknowledgement in {to} (optional)"), 150)
                    .into(),
                ack.into(),
            )
            .with_block_id(ACK_BLOCK.into())
            .with_optional(true)
            .into(),
        );
    }
    blocks.push(
        SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
            SlackBlockMarkDownText::new("Nothing has been sent yet. Cancel sends nothing.".into()),
        )])
        .into(),
    );
    SlackView::Modal(
        modal("Check the translation", blocks, draft.ticket)
            .with_submit("Send translation".into())
            .with_callback_id(
                if draft.private {
                    CHECKED_PRIVATE_CALLBACK
                } else {
                    CHECKED_CALLBACK
                }
                .into(),
            ),
    )
}

/// Shown while a slow service translates; replaced by the result.
pub fn translating_view(ticket: TicketId, to: &str) -> SlackView {
    let text = format!(
        ":hourglass_flowing_sand: Translating your reply into {}… Nothing has been sent.",
        SlackMarkup.escape(&language_label(to))
    );
    SlackView::Modal(modal(
        "Translating",
        vec![SlackSectionBlock::new().with_text(md(text)).into()],
        ticket,
    ))
}

/// The reply form again, with the draft as written and why the translation failed.
pub fn failed_view(
    ticket: &Ticket,
    rules: TextRules,
    private: bool,
    draft: &str,
    to: &str,
    why: &str,
) -> SlackView {
    let warning = format!(":warning: {}", SlackMarkup.fit(why, 1000).0);
    match super::card::reply_form(ticket, rules, private, Some(draft), Some(to)) {
        SlackView::Modal(mut form) => {
            form.blocks
                .insert(0, SlackSectionBlock::new().with_text(md(warning)).into());
            SlackView::Modal(form)
        }
        other => other,
    }
}

/// Why a late translation failed, when even the ticket cannot be read back.
pub fn failed_view_alone(ticket: TicketId, why: &str) -> SlackView {
    let warning = format!(":warning: {}", SlackMarkup.fit(why, 1000).0);
    SlackView::Modal(modal(
        "Translation failed",
        vec![SlackSectionBlock::new().with_text(md(warning)).into()],
        ticket,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MentionTranslation;
    use chrono::{DateTime, Utc};

    const HOSTILE: &str = "<!channel> @everyone <https://evil.example|click> *bold* & more";

    fn ticket() -> Ticket {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let mut t = Ticket::open(
            TicketId(3),
            crate::domain::language::sofies_mention("Hallo", Some("de")),
            at,
        );
        t.translation = Some(MentionTranslation {
            text: HOSTILE.into(),
            from: Some("de".into()),
            to: "en".into(),
            by: "<@U0BOSS>".into(),
            at,
        });
        t
    }

    fn json(v: &impl serde::Serialize) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn a_translation_on_the_card_is_labelled_and_inert() {
        let shown = json(&card_block(&ticket()).unwrap());
        assert!(shown.contains("Machine translation"), "{shown}");
        assert!(shown.contains("German (de)") && shown.contains("English (en)"));
        for raw in ["<!channel>", "<https://evil", "<@U0BOSS>", "@everyone"] {
            assert!(!shown.contains(raw), "{raw} in {shown}");
        }
        assert!(shown.contains("&lt;!channel&gt;"), "{shown}");
        // Nothing to show when the service found the post was in English after all.
        let mut english = ticket();
        english.translation.as_mut().unwrap().from = Some("en-US".into());
        assert!(card_block(&english).is_none());
    }

    #[test]
    fn the_checked_form_quotes_the_draft_inert_and_holds_the_translation_as_is() {
        let draft = TranslatedDraft {
            ticket: TicketId(3),
            private: true,
            to: "de".into(),
            from: Some("en".into()),
            original: HOSTILE.into(),
            translated: "Danke <@U0KAI>".into(),
            original_ack: Some("We DMed you".into()),
            translated_ack: Some("Wir haben dir geschrieben".into()),
            by: "DeepL".into(),
        };
        let view = json(&checked_view(&draft));
        assert!(!view.contains("<!channel>"), "{view}");
        // The boxes hold the text to send, as the service wrote it: Slack shows an
        // input's value literally.
        assert!(
            view.contains(r#""initial_value":"Danke <@U0KAI>""#),
            "{view}"
        );
        assert!(view.contains("Wir haben dir geschrieben"), "{view}");
        assert!(view.contains(CHECKED_PRIVATE_CALLBACK), "{view}");
        assert!(view.contains(r#""private_metadata":"3""#), "{view}");
    }
}
