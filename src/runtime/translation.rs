//! The desk's use of the translation service (`[translation]`): a mention into the
//! team's language for its card (carried out by the outbox, after the card is up), and an
//! agent's draft into the customer's language for the reply form (nothing is sent until
//! the agent picks a version). Both the outbox and the desk hold the same one.

use crate::domain::translation::{customer_language, text_to_translate, TranslatedDraft};
use crate::domain::{MentionTranslation, Ticket};
use crate::ports::{DeliveryError, DraftToTranslate, TranslateError, Translated, Translator};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub struct Translation {
    translator: Arc<dyn Translator>,
    team_language: String,
}

impl Translation {
    pub fn new(translator: Arc<dyn Translator>, team_language: impl Into<String>) -> Self {
        Translation {
            translator,
            team_language: team_language.into(),
        }
    }

    /// What the team reads and writes (`en`, `en-GB`).
    pub fn team_language(&self) -> &str {
        &self.team_language
    }

    pub fn service(&self) -> &'static str {
        self.translator.service()
    }

    async fn translate(
        &self,
        texts: Vec<String>,
        from: Option<&str>,
        to: &str,
    ) -> Result<Vec<Translated>, TranslateError> {
        let expected = texts.len();
        let out = self.translator.translate(&texts, from, to).await?;
        // The port promises one per text; a broken adapter is an error, not a panic.
        if out.len() != expected {
            return Err(TranslateError::Malformed {
                service: self.service().to_string(),
                reason: format!("{} translations for {expected} texts", out.len()),
            });
        }
        Ok(out)
    }

    /// The mention in the team's language. The language it came from is what the
    /// service found, when it says, else what the platform said: a platform's tag is
    /// often only the author's default setting.
    pub async fn of_mention(
        &self,
        ticket: &Ticket,
        now: DateTime<Utc>,
    ) -> Result<MentionTranslation, TranslateError> {
        let (text, _cut) = text_to_translate(&ticket.mention.text);
        let given = customer_language(ticket);
        let asked = self
            .translate(vec![text.clone()], given.as_deref(), &self.team_language)
            .await;
        let mut out = match asked {
            // A language the service does not take as a source (or a platform's wrong
            // tag): let it find the language itself.
            Err(TranslateError::Unsupported { .. }) if given.is_some() => {
                self.translate(vec![text], None, &self.team_language)
                    .await?
            }
            other => other?,
        };
        let first = out.remove(0);
        Ok(MentionTranslation {
            text: first.text,
            from: first.detected.or(given),
            to: self.team_language.clone(),
            by: self.service().to_string(),
            at: now,
        })
    }

    /// An agent's draft (and acknowledgement) in the language asked for. Agents write in
    /// the team's language, so that is the source.
    pub async fn of_draft(
        &self,
        ticket: &Ticket,
        draft: &DraftToTranslate,
    ) -> Result<TranslatedDraft, TranslateError> {
        let ack = draft
            .ack
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        let mut texts = vec![draft.text.clone()];
        texts.extend(ack.clone());
        let mut out = self
            .translate(texts, Some(&self.team_language), &draft.to)
            .await?
            .into_iter();
        let translated = out.next().map(|t| t.text).unwrap_or_default();
        let translated_ack = out.next().map(|t| t.text);
        Ok(TranslatedDraft {
            ticket: ticket.id,
            private: draft.private,
            to: draft.to.clone(),
            from: Some(self.team_language.clone()),
            original: draft.text.clone(),
            translated,
            original_ack: ack,
            translated_ack,
            by: self.service().to_string(),
        })
    }
}

/// A translation that did not come back, as the outbox acts on it: tried again later
/// when the service is away or busy, given up on when it refuses.
pub fn delivery_error(e: TranslateError) -> DeliveryError {
    match e {
        TranslateError::RateLimited { after, .. } => DeliveryError::Retry {
            after,
            reason: e.to_string(),
        },
        e if e.is_transient() => DeliveryError::retry(e.to_string()),
        e => DeliveryError::Permanent {
            reason: e.to_string(),
        },
    }
}
