//! Slack's inbound events turned into desk actions: button presses, the reply modal's
//! submission, `/mentions`, and messages in a card's thread (internal notes).

use super::card;
use super::translation;
use super::Slack;
use crate::chat::command::{done_sentence, Command, CommandError};
use crate::chat::incident::IncidentButton;
use crate::chat::CardButton;
use crate::domain::incident::BulkControl;
use crate::domain::{AgentAction, AgentRef, IncidentId, Rejection, SurfaceKind, TicketId};
use crate::ports::{ActError, DraftToTranslate};
use slack_morphism::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

fn agent(id: &SlackUserId, name: Option<&String>) -> AgentRef {
    AgentRef {
        surface: SurfaceKind::Slack,
        user_id: id.to_string(),
        name: name.cloned().unwrap_or_else(|| format!("<@{id}>")),
        roles: Vec::new(),
    }
}

/// A slash command's text as the agent typed it. With "Escape channels, users, and links"
/// on (the manifest turns it on, so `@kim` arrives as `<@U0KIM|kim>`), Slack rewrites a
/// typed `@kim` as `<@U0KIM|kim>`, a link as `<https://…>` or `<https://…|label>`, and
/// `&`, `<`, `>` as entities; the customer must get the words, not Slack's markup.
fn as_typed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let inner = &rest[start + 1..start + len];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        let shown = match (target.chars().next(), label) {
            (Some('@'), Some(l)) => format!("@{}", l.trim_start_matches('@')),
            (Some('#'), Some(l)) => format!("#{l}"),
            (Some('!'), Some(l)) => l.to_string(),
            (Some('!'), None) => format!("@{}", target[1..].split('^').next().unwrap_or("")),
            (_, Some(l)) => l.to_string(),
            (_, None) => target.to_string(),
        };
        out.push_str(&shown);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// How long a form's answer may wait for a translation before it shows "translating"
/// instead (Slack drops answers after 3 s).
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_millis(2000);

/// A form's answer with an error under one of its fields; the form stays open.
fn form_error(block: &str, message: String) -> SlackInteractionResponse {
    SlackViewSubmissionResponse::Errors(SlackViewSubmissionErrorsResponse::new(HashMap::from([(
        block.to_string(),
        message,
    )])))
    .into()
}

/// A form's answer that replaces it with `view` (`response_action: update`).
fn update_form(view: SlackView) -> SlackInteractionResponse {
    SlackViewSubmissionResponse::Update(SlackViewSubmissionUpdateResponse::new(view)).into()
}

/// A private answer in words: whatever it quotes (what the agent typed, an agent's name,
/// a title from the config) is escaped, so it can never become a mention or a link.
fn ephemeral_response(text: impl Into<String>) -> SlackCommandEventResponse {
    ephemeral_markup(card::escape(&text.into()))
}

/// A private answer already rendered through `SlackMarkup` (lists with links).
fn ephemeral_markup(text: String) -> SlackCommandEventResponse {
    SlackCommandEventResponse::new(SlackMessageContent::new().with_text(text))
        .with_response_type(SlackMessageResponseType::Ephemeral)
}

/// The desk's answer in words, or why not.
fn ephemeral_words(answer: Result<String, ActError>) -> SlackCommandEventResponse {
    ephemeral_response(answer.unwrap_or_else(|e| e.to_string()))
}

/// The desk's answer already rendered through `SlackMarkup`, or why not in words.
fn ephemeral_rendered(answer: Result<String, ActError>) -> SlackCommandEventResponse {
    ephemeral_markup(answer.unwrap_or_else(|e| card::escape(&e.to_string())))
}

impl Slack {
    /// Entry point for every interaction payload. Button presses are handled in the
    /// background so Slack gets its acknowledgement at once; a modal submission is judged
    /// before answering, because its answer can carry an inline error.
    pub async fn on_interaction(
        self: &Arc<Self>,
        event: SlackInteractionEvent,
    ) -> SlackInteractionResponse {
        match event {
            SlackInteractionEvent::BlockActions(ev) => {
                let me = self.clone();
                self.desk.spawn_later(
                    "a Slack button press",
                    Box::pin(async move { me.on_block_actions(ev).await }),
                );
                SlackInteractionResponse::Empty
            }
            SlackInteractionEvent::ViewSubmission(ev) => self.on_view_submission(ev).await,
            other => {
                tracing::debug!(kind = ?std::mem::discriminant(&other), "ignoring an interaction we do not use");
                SlackInteractionResponse::Empty
            }
        }
    }

    async fn on_block_actions(&self, ev: SlackInteractionBlockActionsEvent) {
        let Some(user) = ev.user.as_ref() else { return };
        let actor = agent(&user.id, user.username.as_ref().or(user.name.as_ref()));
        let channel = ev
            .channel
            .as_ref()
            .map(|c| c.id.to_string())
            .unwrap_or_else(|| self.config.channel.clone());
        for action in ev.actions.iter().flatten() {
            if action.action_id.as_ref() == card::CANNED_ACTION {
                let chosen = action
                    .selected_option
                    .as_ref()
                    .map(|o| o.value.clone())
                    .unwrap_or_default();
                let parsed = chosen
                    .split_once(':')
                    .and_then(|(t, c)| Some((t.parse::<TicketId>().ok()?, c.to_string())));
                let result = match parsed {
                    Some((ticket, canned)) => {
                        match self.desk.canned_text(ticket, &canned, &actor).await {
                            Ok((t, text)) => {
                                self.show_reply_modal(&t, &ev.trigger_id, false, Some(&text))
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => Err(ActError::Invalid(
                        "That canned reply is not one mentionbridge knows.".into(),
                    )),
                };
                if let Err(e) = result {
                    self.ephemeral(&channel, &actor.user_id, &e.to_string())
                        .await;
                }
                continue;
            }
            if let Some(button) = card::incident_button_of_action_id(action.action_id.as_ref()) {
                let result = match action.value.as_deref().and_then(|v| v.parse().ok()) {
                    Some(incident) => {
                        self.on_incident_button(button, incident, &actor, &ev.trigger_id)
                            .await
                    }
                    None => Err(ActError::Invalid(
                        "That button carries no incident number. Nothing changed.".into(),
                    )),
                };
                if let Err(e) = result {
                    self.ephemeral(&channel, &actor.user_id, &e.to_string())
                        .await;
                }
                continue;
            }
            let Some(button) = card::button_of_action_id(action.action_id.as_ref()) else {
                tracing::warn!(action_id = %action.action_id, user = %actor.user_id, "unknown button pressed; nothing changed");
                self.ephemeral(
                    &channel,
                    &actor.user_id,
                    "That button is not one mentionbridge knows (an old card?). Nothing changed.",
                )
                .await;
                continue;
            };
            let Some(ticket) = action
                .value
                .as_deref()
                .and_then(|v| v.parse::<TicketId>().ok())
            else {
                tracing::warn!(action_id = %action.action_id, "button without a ticket id; nothing changed");
                self.ephemeral(
                    &channel,
                    &actor.user_id,
                    "That button carries no ticket number. Nothing changed.",
                )
                .await;
                continue;
            };
            let result = match (button, button.action()) {
                (CardButton::Reply, _) => {
                    self.open_reply_modal(ticket, &actor, &ev.trigger_id, false)
                        .await
                }
                (CardButton::ReplyPrivately, _) => {
                    self.open_reply_modal(ticket, &actor, &ev.trigger_id, true)
                        .await
                }
                (CardButton::EditDraft, _) => {
                    self.open_edit_modal(ticket, &actor, &ev.trigger_id).await
                }
                (_, Some(action)) => self.desk.act(ticket, action, &actor).await.map(drop),
                // A link button: Slack opened the URL; nothing to do here.
                (_, None) => Ok(()),
            };
            if let Err(e) = result {
                self.ephemeral(&channel, &actor.user_id, &format!("Ticket #{ticket}: {e}"))
                    .await;
            }
        }
    }

    /// An incident card's button: the bulk answer form, or a step of the bulk answer.
    async fn on_incident_button(
        &self,
        button: IncidentButton,
        incident: IncidentId,
        actor: &AgentRef,
        trigger: &SlackTriggerId,
    ) -> Result<(), ActError> {
        let control = match button {
            IncidentButton::Answer => {
                let (incident, drafts) = self.desk.bulk_form(actor, incident).await?;
                let view = card::bulk_modal(&incident, &drafts);
                if let Err(e) = self
                    .session()
                    .views_open(&SlackApiViewsOpenRequest::new(trigger.clone(), view))
                    .await
                {
                    tracing::warn!(incident = %incident.id, error = %super::delivery_error("views.open", e), "could not open the bulk answer form");
                }
                return Ok(());
            }
            IncidentButton::Approve => BulkControl::Approve,
            IncidentButton::Pause => BulkControl::Pause,
            IncidentButton::Resume => BulkControl::Resume,
            IncidentButton::Cancel => BulkControl::Cancel,
        };
        self.desk
            .bulk_control(actor, incident, control)
            .await
            .map(drop)
    }

    /// The bulk answer form was sent: inline errors, or None when it was accepted.
    async fn on_bulk_submission(
        &self,
        ev: &SlackInteractionViewSubmissionEvent,
        metadata: Option<&str>,
    ) -> SlackInteractionResponse {
        let error = |msg: String| form_error("lang_any", msg);
        let Some(incident) = metadata.and_then(|m| m.parse::<IncidentId>().ok()) else {
            return error("This form lost its incident number; close it and press the button on the card again.".into());
        };
        let mut texts = std::collections::BTreeMap::new();
        if let Some(state) = ev.view.state_params.state.as_ref() {
            for (block, fields) in &state.values {
                let Some(language) = card::bulk_language_of_block(block.as_ref()) else {
                    continue;
                };
                if let Some(text) = fields
                    .get(&card::BULK_INPUT.into())
                    .and_then(|v| v.value.clone())
                {
                    texts.insert(language, text);
                }
            }
        }
        let actor = agent(
            &ev.user.id,
            ev.user.username.as_ref().or(ev.user.name.as_ref()),
        );
        match self.desk.bulk_answer(&actor, incident, texts).await {
            Ok(_) => SlackInteractionResponse::Empty,
            Err(e) => error(e.to_string()),
        }
    }

    async fn open_reply_modal(
        &self,
        ticket: TicketId,
        actor: &AgentRef,
        trigger: &SlackTriggerId,
        private: bool,
    ) -> Result<(), ActError> {
        // Judge first with a placeholder text: nobody should type an answer they cannot send.
        let t = self
            .desk
            .preview(ticket, AgentAction::Reply { text: ".".into() }, actor)
            .await?;
        self.show_reply_modal(&t, trigger, private, None).await
    }

    async fn open_edit_modal(
        &self,
        ticket: TicketId,
        actor: &AgentRef,
        trigger: &SlackTriggerId,
    ) -> Result<(), ActError> {
        let t = self
            .desk
            .preview(ticket, AgentAction::EditDraft { text: ".".into() }, actor)
            .await?;
        let Some(draft) = t.draft_awaiting_approval() else {
            return Err(ActError::Rejected(crate::domain::Rejection::NoDraftWaiting));
        };
        let view = card::edit_draft_modal(
            &t,
            self.desk.text_rules(t.mention.platform).unwrap_or_default(),
            &draft.text,
        );
        if let Err(e) = self
            .session()
            .views_open(&SlackApiViewsOpenRequest::new(trigger.clone(), view))
            .await
        {
            tracing::warn!(ticket = %t.id, error = %super::delivery_error("views.open", e), "could not open the edit form");
        }
        Ok(())
    }

    async fn show_reply_modal(
        &self,
        t: &crate::domain::Ticket,
        trigger: &SlackTriggerId,
        private: bool,
        initial: Option<&str>,
    ) -> Result<(), ActError> {
        let view = card::reply_form(
            t,
            self.desk.text_rules(t.mention.platform).unwrap_or_default(),
            private,
            initial,
            self.desk.draft_language(t).as_deref(),
        );
        if let Err(e) = self
            .session()
            .views_open(&SlackApiViewsOpenRequest::new(trigger.clone(), view))
            .await
        {
            tracing::warn!(ticket = %t.id, error = %super::delivery_error("views.open", e), "could not open the reply modal");
        }
        Ok(())
    }

    /// The answer to a reply form: inline errors, the form that shows a translation, or
    /// nothing (the reply was accepted and the form closes).
    async fn on_view_submission(
        self: &Arc<Self>,
        ev: SlackInteractionViewSubmissionEvent,
    ) -> SlackInteractionResponse {
        let SlackView::Modal(modal) = &ev.view.view else {
            return SlackInteractionResponse::Empty;
        };
        // Whether it is private, an edit of a draft waiting for approval, and whether it
        // is the form that shows a translation.
        let (private, edit, checked) = match modal.callback_id.as_ref().map(|c| c.as_ref()) {
            Some(card::REPLY_CALLBACK) => (false, false, false),
            Some(card::PRIVATE_CALLBACK) => (true, false, false),
            Some(card::EDIT_CALLBACK) => (false, true, false),
            Some(translation::CHECKED_CALLBACK) => (false, false, true),
            Some(translation::CHECKED_PRIVATE_CALLBACK) => (true, false, true),
            Some(card::BULK_CALLBACK) => {
                return self
                    .on_bulk_submission(&ev, modal.private_metadata.as_deref())
                    .await;
            }
            _ => return SlackInteractionResponse::Empty,
        };
        let Some(ticket) = modal
            .private_metadata
            .as_deref()
            .and_then(|m| m.parse::<TicketId>().ok())
        else {
            return form_error(
                card::REPLY_BLOCK,
                "This form lost its ticket number; close it and press Reply on the card again."
                    .into(),
            );
        };
        let values = ev.view.state_params.state.as_ref().map(|s| &s.values);
        let value = |block: &str, action: &str| {
            values
                .and_then(|v| v.get(&block.into()))
                .and_then(|b| b.get(&action.into()))
        };
        let field = |block: &str| value(block, card::REPLY_INPUT).and_then(|v| v.value.clone());
        let text = field(card::REPLY_BLOCK).unwrap_or_default();
        let ack = field(card::ACK_BLOCK);
        let actor = agent(
            &ev.user.id,
            ev.user.username.as_ref().or(ev.user.name.as_ref()),
        );
        let translate_to = value(translation::TRANSLATE_BLOCK, translation::TRANSLATE_ACTION)
            .and_then(|v| v.selected_options.as_ref())
            .and_then(|o| o.first())
            .map(|o| o.value.clone());
        if let (false, false, Some(to)) = (checked, edit, translate_to) {
            let draft = DraftToTranslate {
                text,
                ack,
                private,
                to,
            };
            return self
                .translate_in_form(ticket, ev.view.state_params.id.clone(), draft, actor)
                .await;
        }
        let action = if edit {
            AgentAction::EditDraft { text }
        } else if private {
            AgentAction::ReplyPrivately {
                text,
                public_ack: ack,
            }
        } else {
            AgentAction::Reply { text }
        };
        match self.desk.act(ticket, action, &actor).await {
            Ok(_) => SlackInteractionResponse::Empty,
            Err(e) => form_error(card::REPLY_BLOCK, e.to_string()),
        }
    }

    /// Translate a draft and show it beside the original in the same form; nothing is
    /// sent. Slack waits 3 s for the answer: a slower service gets a "translating" form
    /// first, replaced by the result when it comes.
    async fn translate_in_form(
        self: &Arc<Self>,
        ticket: TicketId,
        view: SlackViewId,
        draft: DraftToTranslate,
        actor: AgentRef,
    ) -> SlackInteractionResponse {
        let (done, mut translated) = tokio::sync::oneshot::channel();
        let (me, asked, who) = (self.clone(), draft.clone(), actor.clone());
        self.desk.spawn_later(
            "a Slack draft translation",
            Box::pin(async move {
                let _ = done.send(me.desk.translate_draft(ticket, asked, &who).await);
            }),
        );
        tokio::select! {
            result = &mut translated => match result {
                Ok(Ok(t)) => update_form(translation::checked_view(&t)),
                Ok(Err(e)) => form_error(translation::TRANSLATE_BLOCK, e.to_string()),
                Err(_) => form_error(
                    translation::TRANSLATE_BLOCK,
                    "The translation stopped unexpectedly; nothing was sent. Try again.".into(),
                ),
            },
            _ = tokio::time::sleep(ANSWER_WITHIN) => {
                let me = self.clone();
                let to = draft.to.clone();
                self.desk.spawn_later("a late Slack translation", Box::pin(async move {
                    let shown = match translated.await {
                        Ok(Ok(t)) => translation::checked_view(&t),
                        failed => {
                            let why = match failed {
                                Ok(Err(e)) => e.to_string(),
                                _ => "The translation stopped unexpectedly; nothing was sent.".into(),
                            };
                            match me.desk.preview(ticket, AgentAction::Reply { text: ".".into() }, &actor).await {
                                Ok(t) => translation::failed_view(
                                    &t,
                                    me.desk.text_rules(t.mention.platform).unwrap_or_default(),
                                    draft.private,
                                    &draft.text,
                                    &draft.to,
                                    &why,
                                ),
                                Err(e) => translation::failed_view_alone(ticket, &format!("{why} {e}")),
                            }
                        }
                    };
                    let req = SlackApiViewsUpdateRequest::new(shown).with_view_id(view);
                    if let Err(e) = me.session().views_update(&req).await {
                        tracing::warn!(ticket = %ticket, error = %super::delivery_error("views.update", e), "could not show the translation in the reply form");
                    }
                }));
                update_form(translation::translating_view(ticket, &to))
            }
        }
    }

    /// `/mentions …`: answered ephemerally, only to the person who typed it.
    pub async fn on_command(self: &Arc<Self>, ev: SlackCommandEvent) -> SlackCommandEventResponse {
        let actor = agent(&ev.user_id, None);
        let text = ev.text.clone().unwrap_or_default();
        // Slack's escaping of links and mentions is undone in a reply's text, so the
        // customer reads what the agent wrote.
        let command = match Command::from_words(&text, as_typed) {
            Ok(command) => command,
            Err(e @ (CommandError::Unknown(_) | CommandError::NoTicket)) => {
                return ephemeral_response(format!("{e} {}", card::USAGE))
            }
            Err(e) => return ephemeral_response(e.to_string()),
        };
        let desk = &self.desk;
        match command {
            Command::List => {
                if !desk.is_agent(&actor) {
                    return ephemeral_response(Rejection::NotAnAgent.to_string());
                }
                match desk.open_tickets(card::LISTED).await {
                    Ok(t) => ephemeral_markup(card::open_list(&t)),
                    Err(e) => ephemeral_response(e.to_string()),
                }
            }
            Command::Stats { window } => ephemeral_words(desk.stats(&actor, &window).await),
            Command::Charts { window, tz } => match desk.ask_charts(&actor, &window, &tz) {
                Ok(ask) => {
                    let me = self.clone();
                    let channel = ev.channel_id.to_string();
                    let user = ev.user_id.to_string();
                    let said = format!(
                        "Drawing the charts for the last {} ({}); they will appear in this channel.",
                        ask.window, ask.tz
                    );
                    desk.spawn_later(
                        "Slack charts",
                        Box::pin(async move { me.send_charts(&channel, &user, ask).await }),
                    );
                    ephemeral_response(said)
                }
                Err(e) => ephemeral_response(e.to_string()),
            },
            Command::OnCall => ephemeral_rendered(
                desk.on_call_now(&actor)
                    .await
                    .map(|(on, next)| crate::chat::on_call_text(&on, next, &card::SlackMarkup)),
            ),
            Command::OverrideOnCall { member, length } => ephemeral_rendered(
                desk.override_on_call(&actor, &member, &length)
                    .await
                    .map(|o| {
                        format!(
                            "{} is on call until {} UTC.",
                            card::escape(&o.member),
                            o.until.format("%a %H:%M")
                        )
                    }),
            ),
            Command::Canned => ephemeral_words(desk.canned_list(&actor).await),
            Command::Why { ticket } => ephemeral_rendered(
                desk.explain(&actor, ticket)
                    .await
                    .map(|t| crate::chat::why_text(&t, &card::SlackMarkup)),
            ),
            Command::Help => ephemeral_response(card::USAGE),
            Command::Note {
                network,
                handle,
                text,
            } => ephemeral_words(
                desk.note_person(&actor, network.as_deref(), &handle, &text)
                    .await
                    .map(|person| crate::chat::command::noted_sentence(&person)),
            ),
            Command::Who { network, handle } => {
                ephemeral_rendered(desk.person(&actor, network.as_deref(), &handle).await.map(
                    |(person, customer)| {
                        crate::chat::markup::cut_to(
                            &crate::chat::customer::who_text(
                                &person,
                                &customer,
                                &card::SlackMarkup,
                                &|c| self.card_link(c),
                                1000,
                            ),
                            card::limits::FALLBACK,
                        )
                    },
                ))
            }
            Command::Incident { incident, page } => ephemeral_rendered(
                desk.incident_members(&actor, incident, page)
                    .await
                    .map(|p| {
                        crate::chat::incident::members_list(
                            &p,
                            &card::SlackMarkup,
                            card::limits::FALLBACK,
                        )
                    }),
            ),
            Command::Split { ticket } => {
                ephemeral_words(desk.split(&actor, ticket).await.map(|i| {
                    format!(
                        "Done: ticket #{ticket} left incident #{}; its own card is on its way.",
                        i.id
                    )
                }))
            }
            Command::Act { ticket, action } => {
                let done = done_sentence(ticket, &action);
                match desk.act(ticket, action, &actor).await {
                    Ok(_) => ephemeral_response(done),
                    Err(e) => ephemeral_response(format!("Ticket #{ticket}: {e}")),
                }
            }
        }
    }

    /// Draw what `/mentions stats charts` asked for and upload it into the channel; what
    /// goes wrong is told to the agent who asked, privately.
    async fn send_charts(&self, channel: &str, user: &str, ask: crate::ports::ChartAsk) {
        let sent = match self.desk.draw_charts(&ask).await {
            Ok(drawn) => self.upload_charts(channel, &drawn).await.map_err(|e| {
                tracing::warn!(error = %e, "could not upload the charts");
                if e.to_string().contains("not_in_channel") {
                    "The charts could not be posted here: invite the bot to this channel, or ask in the cards channel.".to_string()
                } else {
                    format!("The charts could not be posted ({e}).")
                }
            }),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = sent {
            self.ephemeral(channel, user, &why).await;
        }
    }

    /// A message in a card's thread by an agent is an internal note: stored in the audit
    /// log, never sent to the customer. Anyone else's message (a bystander's, another
    /// bot's) is left alone and echoed nowhere. Slack redelivers an event it thinks we
    /// missed (same `event_id`, in the Events API with `X-Slack-Retry-Num`, in Socket
    /// Mode with `retry_attempt`): the store remembers every id, so a retry changes
    /// nothing, even after a restart.
    pub async fn on_push(&self, ev: SlackPushEventCallback) {
        let SlackEventCallbackBody::Message(msg) = &ev.event else {
            return;
        };
        let (Some(thread), Some(channel)) = (&msg.origin.thread_ts, &msg.origin.channel) else {
            return;
        };
        if msg.subtype.is_some() || msg.sender.bot_id.is_some() {
            return; // edits, joins, bots (our own notes among them)
        }
        let Some(user) = &msg.sender.user else { return };
        if Some(user.to_string()) == self.bot_user_id() {
            return;
        }
        match self
            .desk
            .first_delivery("slack-event", ev.event_id.as_ref())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(event = %ev.event_id, "Slack delivered an event again; it was already handled, nothing changes");
                return;
            }
            Err(e) => {
                tracing::warn!(event = %ev.event_id, error = %e, "could not check whether a Slack event is new; not acting on it");
                return;
            }
        }
        let text = msg
            .content
            .as_ref()
            .and_then(|c| c.text.clone())
            .unwrap_or_default();
        let author = agent(user, None);
        match self
            .desk
            .internal_note(
                SurfaceKind::Slack,
                channel.as_ref(),
                thread.as_ref(),
                &author,
                &text,
            )
            .await
        {
            Ok(Some(ticket)) => {
                tracing::info!(ticket = %ticket, user = %author.user_id, "internal note recorded (not relayed)")
            }
            Ok(None) => {}
            Err(ActError::Rejected(_)) => {
                tracing::info!(user = %author.user_id, "a thread message by someone who is not an agent; not recorded")
            }
            Err(e) => tracing::warn!(error = %e, "could not record an internal note"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::as_typed;

    #[test]
    fn escaped_command_text_reads_as_the_agent_typed_it() {
        assert_eq!(
            as_typed("thanks <@U0KIM|kim>, see <https://status.example/x> &amp; <https://brand.example|brand.example> &lt;3"),
            "thanks @kim, see https://status.example/x & brand.example <3"
        );
        assert_eq!(
            as_typed("ping <!here> in <#C0SUPPORT|support>"),
            "ping @here in #support"
        );
        assert_eq!(as_typed("a < b"), "a < b");
        assert_eq!(as_typed("plain text"), "plain text");
    }
}
