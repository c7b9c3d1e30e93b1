//! Discord interactions turned into desk actions: buttons, the reply modal's submission,
//! `/mentions` and its autocomplete. Every interaction gets its first answer within
//! Discord's 3 s: when the work is slow, a deferral goes first and the real answer follows.

use super::card;
use super::translation;
use super::Discord;
use crate::chat::command::{done_sentence, Command, CommandError, OptionValue};
use crate::chat::incident::IncidentButton;
use crate::chat::markup::cut_to;
use crate::chat::CardButton;
use crate::domain::incident::BulkControl;
use crate::domain::{AgentAction, AgentRef, IncidentId, Rejection, SurfaceKind, TicketId};
use crate::ports::{ActError, DraftToTranslate};
use crate::wire::request_path::{self, IdShape};
use reqwest::Method;
use serenity::all::{
    ActionRowComponent, CommandInteraction, ComponentInteraction, ComponentInteractionDataKind,
    CreateAllowedMentions, CreateAutocompleteResponse, CreateInteractionResponse,
    CreateInteractionResponseMessage, Interaction, Member, ModalInteraction, ResolvedValue, User,
};
use std::sync::Arc;
use std::time::Duration;

/// Answer with a deferral when the real answer takes longer than this (Discord allows 3 s).
const DEFER_AFTER: Duration = Duration::from_millis(2000);

/// Tries to put the charts into a deferred answer (see `send_charts`).
const CHART_TRIES: u32 = 5;

fn actor(member: Option<&Member>, user: &User) -> AgentRef {
    let name = member
        .and_then(|m| m.nick.clone())
        .or_else(|| user.global_name.clone())
        .unwrap_or_else(|| user.name.clone());
    AgentRef {
        surface: SurfaceKind::Discord,
        user_id: user.id.to_string(),
        name,
        roles: member
            .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// A private answer in words: whatever it quotes (what the agent typed, a nickname, a
/// title from the config) cannot mention, call or link; our own `code` and **bold** stay.
fn ephemeral(text: impl Into<String>) -> CreateInteractionResponse {
    ephemeral_markup(card::defang(&text.into()))
}

/// A private answer already rendered through `DiscordMarkup` (lists, timestamps).
fn ephemeral_markup(text: impl Into<String>) -> CreateInteractionResponse {
    CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(cut_to(&text.into(), card::limits::CONTENT))
            .allowed_mentions(CreateAllowedMentions::new())
            .ephemeral(true),
    )
}

/// The desk's answer in words, or why not.
fn ephemeral_words(answer: Result<String, ActError>) -> CreateInteractionResponse {
    ephemeral(answer.unwrap_or_else(|e| e.to_string()))
}

/// The desk's answer already rendered through `DiscordMarkup`, or why not in words.
fn ephemeral_rendered(answer: Result<String, ActError>) -> CreateInteractionResponse {
    ephemeral_markup(answer.unwrap_or_else(|e| card::defang(&e.to_string())))
}

/// What kind of deferral fits an interaction whose answer is late.
#[derive(Clone, Copy)]
enum Late {
    /// A button: acknowledge now, tell the agent with a follow-up message.
    Component,
    /// A command or modal: "thinking…" now, then edit that original answer.
    Thinking,
    /// Autocomplete cannot wait: answer with no choices.
    Choices,
}

/// What a repeated interaction is told (HTTP endpoint): Discord takes one response per
/// interaction, so if the first answer got through this one is refused, harmlessly.
const ALREADY_RECEIVED: &str =
    "mentionbridge already received this (the same click or form arrived twice); nothing changed.";

const COULD_NOT_CHECK: &str = "The desk could not check this action; nothing changed. Try again.";

/// Whether an interaction is new to the desk.
enum Delivery {
    First,
    Repeat,
    /// The store could not say; nothing is done.
    Unknown,
}

impl Discord {
    /// Interactions that change something are acted on once per interaction id, across
    /// the HTTP endpoint and the gateway and across restarts (the store remembers the
    /// ids). Autocomplete and pings change nothing and are always answered.
    async fn delivery(&self, interaction: &Interaction) -> Delivery {
        let id = match interaction {
            Interaction::Component(c) => c.id.to_string(),
            Interaction::Command(c) => c.id.to_string(),
            Interaction::Modal(m) => m.id.to_string(),
            _ => return Delivery::First,
        };
        match self.desk.first_delivery("discord-interaction", &id).await {
            Ok(true) => Delivery::First,
            Ok(false) => {
                tracing::info!(interaction = %id, "Discord delivered an interaction again; it was already handled, nothing changes");
                Delivery::Repeat
            }
            Err(e) => {
                tracing::warn!(interaction = %id, error = %e, "could not check whether a Discord interaction is new; not acting on it");
                Delivery::Unknown
            }
        }
    }

    /// The answer to an interaction posted to the HTTP endpoint (None: nothing to say).
    /// A repeat of one already handled is told so and changes nothing.
    pub async fn answer(
        self: &Arc<Self>,
        interaction: Interaction,
    ) -> Option<CreateInteractionResponse> {
        self.answer_once(interaction, Some(ephemeral(ALREADY_RECEIVED)))
            .await
    }

    /// The answer to an interaction from the gateway. A repeat gets none: the first
    /// delivery answered it, and Discord refuses a second response (code 40060).
    pub async fn answer_from_gateway(
        self: &Arc<Self>,
        interaction: Interaction,
    ) -> Option<CreateInteractionResponse> {
        self.answer_once(interaction, None).await
    }

    async fn answer_once(
        self: &Arc<Self>,
        interaction: Interaction,
        on_repeat: Option<CreateInteractionResponse>,
    ) -> Option<CreateInteractionResponse> {
        match self.delivery(&interaction).await {
            Delivery::First => self.answer_new(interaction).await,
            Delivery::Repeat => on_repeat,
            Delivery::Unknown => Some(ephemeral(COULD_NOT_CHECK)),
        }
    }

    /// The first answer to a new interaction (None: nothing to say, e.g. a ping we do not
    /// recognise). A late answer is sent as a follow-up by a background task.
    async fn answer_new(
        self: &Arc<Self>,
        interaction: Interaction,
    ) -> Option<CreateInteractionResponse> {
        let (token, late) = match &interaction {
            Interaction::Component(c) => (c.token.clone(), Late::Component),
            Interaction::Command(c) => (c.token.clone(), Late::Thinking),
            Interaction::Modal(m) => (m.token.clone(), Late::Thinking),
            Interaction::Autocomplete(a) => (a.token.clone(), Late::Choices),
            Interaction::Ping(_) => return Some(CreateInteractionResponse::Pong),
            _ => return None,
        };
        let me = self.clone();
        let (answered, mut work) = tokio::sync::oneshot::channel();
        self.desk.spawn_later(
            "a Discord interaction",
            Box::pin(async move {
                let _ = answered.send(me.handle(interaction).await);
            }),
        );
        tokio::select! {
            // A panic in the work drops `answered`: no answer, as for an unknown interaction.
            done = &mut work => done.ok().flatten(),
            _ = tokio::time::sleep(DEFER_AFTER) => {
                let me = self.clone();
                self.desk.spawn_later("a late Discord answer", Box::pin(async move {
                    if let Ok(Some(answer)) = work.await {
                        me.answer_late(&token, late, answer).await;
                    }
                }));
                Some(match late {
                    Late::Component => CreateInteractionResponse::Acknowledge,
                    Late::Thinking => CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true)),
                    Late::Choices => CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new()),
                })
            }
        }
    }

    /// Deliver an answer that missed the 3 s window through the interaction's webhook.
    async fn answer_late(&self, token: &str, late: Late, answer: CreateInteractionResponse) {
        let CreateInteractionResponse::Message(message) = answer else {
            return;
        };
        let Some(app) = self.application_id() else {
            return;
        };
        let body = serde_json::to_value(message).expect("message serializes");
        let ids = [
            ("Discord application id", IdShape::Snowflake, app.as_str()),
            ("Discord interaction token", IdShape::Token, token),
        ];
        let (method, path) = match late {
            Late::Thinking => (
                Method::PATCH,
                request_path::path("/webhooks/{}/{}/messages/@original", &ids),
            ),
            _ => (Method::POST, request_path::path("/webhooks/{}/{}", &ids)),
        };
        let path = match path {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not deliver a late interaction answer");
                return;
            }
        };
        if let Err(e) = self.call(method, &path, Some(&body)).await {
            tracing::warn!(error = %e, "could not deliver a late interaction answer");
        }
    }

    /// Draw the charts an agent asked for and put them into the deferred answer ("thinking…"
    /// until then): an ephemeral message with the PNGs attached. The deferral may still be
    /// on its way when the drawing is done: Discord then knows no original message yet, and
    /// the edit is tried again a few times.
    async fn send_charts(&self, token: &str, ask: crate::ports::ChartAsk) {
        let (message, files) = match self.desk.draw_charts(&ask).await {
            Ok(drawn) => {
                let attachments: Vec<serde_json::Value> = drawn
                    .files
                    .iter()
                    .enumerate()
                    .map(|(n, f)| {
                        serde_json::json!({
                            "id": n,
                            "filename": f.filename,
                            "description": cut_to(&f.alt, 1024),
                        })
                    })
                    .collect();
                let message = serde_json::json!({
                    "content": cut_to(&card::defang(&drawn.summary), card::limits::CONTENT),
                    "attachments": attachments,
                    "allowed_mentions": {"parse": []},
                });
                (message, drawn.files)
            }
            Err(e) => (
                serde_json::json!({
                    "content": cut_to(&card::defang(&e.to_string()), card::limits::CONTENT),
                    "allowed_mentions": {"parse": []},
                }),
                Vec::new(),
            ),
        };
        let Some(app) = self.application_id() else {
            tracing::warn!(
                "could not deliver the charts: the Discord application id is not known yet"
            );
            return;
        };
        let path = match request_path::path(
            "/webhooks/{}/{}/messages/@original",
            &[
                ("Discord application id", IdShape::Snowflake, app.as_str()),
                ("Discord interaction token", IdShape::Token, token),
            ],
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not deliver the charts");
                return;
            }
        };
        for attempt in 1..=CHART_TRIES {
            match self
                .call_with_files(Method::PATCH, &path, &message, &files)
                .await
            {
                Ok(_) => return,
                // Before the deferral lands Discord knows no original message (a 404).
                Err(_) if attempt < CHART_TRIES => {
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not deliver the charts");
                    return;
                }
            }
        }
    }

    /// Gateway interactions are answered by a callback request.
    pub(super) async fn respond(&self, id: &str, token: &str, answer: &CreateInteractionResponse) {
        let body = serde_json::to_value(answer).expect("interaction response serializes");
        let path = request_path::path(
            "/interactions/{}/{}/callback",
            &[
                ("Discord interaction id", IdShape::Snowflake, id),
                ("Discord interaction token", IdShape::Token, token),
            ],
        );
        let sent = match path {
            Ok(path) => self.call(Method::POST, &path, Some(&body)).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not answer a Discord interaction");
        }
    }

    async fn handle(
        self: Arc<Self>,
        interaction: Interaction,
    ) -> Option<CreateInteractionResponse> {
        match interaction {
            Interaction::Component(c) => Some(self.on_button(&c).await),
            Interaction::Modal(m) => Some(self.on_modal(&m).await),
            Interaction::Command(c) => Some(self.on_command(&c).await),
            Interaction::Autocomplete(a) => Some(self.on_autocomplete(&a).await),
            _ => None,
        }
    }

    async fn on_button(&self, c: &ComponentInteraction) -> CreateInteractionResponse {
        let who = actor(c.member.as_ref(), &c.user);
        if let Some(ticket) = c
            .data
            .custom_id
            .strip_prefix(card::CANNED_MENU)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|t| t.parse::<TicketId>().ok())
        {
            let chosen = match &c.data.kind {
                ComponentInteractionDataKind::StringSelect { values } => {
                    values.first().cloned().unwrap_or_default()
                }
                _ => String::new(),
            };
            return match self.desk.canned_text(ticket, &chosen, &who).await {
                Ok((t, text)) => CreateInteractionResponse::Modal(card::reply_form(
                    &t,
                    self.desk.text_rules(t.mention.platform).unwrap_or_default(),
                    false,
                    Some(&text),
                    self.desk.draft_language(&t).as_deref(),
                )),
                Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
            };
        }
        if let Some((button, incident)) = card::parse_incident_custom_id(&c.data.custom_id) {
            let control = match button {
                IncidentButton::Answer => {
                    return match self.desk.bulk_form(&who, incident).await {
                        Ok((incident, drafts)) => {
                            CreateInteractionResponse::Modal(card::bulk_modal(&incident, &drafts))
                        }
                        Err(e) => ephemeral(format!("Incident #{incident}: {e}")),
                    }
                }
                IncidentButton::Approve => BulkControl::Approve,
                IncidentButton::Pause => BulkControl::Pause,
                IncidentButton::Resume => BulkControl::Resume,
                IncidentButton::Cancel => BulkControl::Cancel,
            };
            return match self.desk.bulk_control(&who, incident, control).await {
                // The card itself is updated by the outbox.
                Ok(_) => CreateInteractionResponse::Acknowledge,
                Err(e) => ephemeral(format!("Incident #{incident}: {e}")),
            };
        }
        if let Some((button, ticket, number)) =
            translation::parse_draft_custom_id(&c.data.custom_id)
        {
            return self.on_draft_button(&who, button, ticket, number).await;
        }
        let Some((button, ticket)) = card::parse_custom_id(&c.data.custom_id) else {
            tracing::warn!(custom_id = %c.data.custom_id, user = %who.user_id, "unknown button pressed; nothing changed");
            return ephemeral(
                "That button is not one mentionbridge knows (an old card?). Nothing changed.",
            );
        };
        if button == CardButton::EditDraft {
            return match self
                .desk
                .preview(ticket, AgentAction::EditDraft { text: ".".into() }, &who)
                .await
            {
                Ok(t) => match t.draft_awaiting_approval() {
                    Some(draft) => CreateInteractionResponse::Modal(card::edit_draft_modal(
                        &t,
                        self.desk.text_rules(t.mention.platform).unwrap_or_default(),
                        &draft.text,
                    )),
                    None => ephemeral(format!(
                        "Ticket #{ticket}: {}",
                        crate::domain::Rejection::NoDraftWaiting
                    )),
                },
                Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
            };
        }
        match button.action() {
            None => match self
                .desk
                .preview(ticket, AgentAction::Reply { text: ".".into() }, &who)
                .await
            {
                Ok(t) => CreateInteractionResponse::Modal(card::reply_form(
                    &t,
                    self.desk.text_rules(t.mention.platform).unwrap_or_default(),
                    button == CardButton::ReplyPrivately,
                    None,
                    self.desk.draft_language(&t).as_deref(),
                )),
                Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
            },
            Some(action) => match self.desk.act(ticket, action, &who).await {
                // The card itself is updated by the outbox, on every surface at once.
                Ok(_) => CreateInteractionResponse::Acknowledge,
                Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
            },
        }
    }

    async fn on_modal(&self, m: &ModalInteraction) -> CreateInteractionResponse {
        let who = actor(m.member.as_ref(), &m.user);
        if let Some(rest) = m
            .data
            .custom_id
            .strip_prefix(card::BULK_MODAL)
            .and_then(|r| r.strip_prefix(':'))
        {
            let Ok(incident) = rest.parse::<IncidentId>() else {
                return ephemeral("This form is not one mentionbridge knows. Nothing was sent.");
            };
            let texts: std::collections::BTreeMap<String, String> = m
                .data
                .components
                .iter()
                .flat_map(|row| row.components.iter())
                .filter_map(|c| match c {
                    ActionRowComponent::InputText(t) => Some((
                        t.custom_id.strip_prefix(card::BULK_FIELD)?.to_string(),
                        t.value.clone()?,
                    )),
                    _ => None,
                })
                .collect();
            return match self.desk.bulk_answer(&who, incident, texts).await {
                Ok(i) => ephemeral(format!(
                    "Bulk answer for incident #{} started: one reply per member, at each platform's pace; its progress shows on the card.",
                    i.id
                )),
                Err(e) => ephemeral(format!("Incident #{incident}: {e} Nothing was sent.")),
            };
        }
        let parsed = [
            (card::REPLY_MODAL, Form::Reply),
            (card::PRIVATE_MODAL, Form::Private),
            (card::EDIT_MODAL, Form::EditDraft),
        ]
        .into_iter()
        .find_map(|(prefix, form)| {
            let rest = m.data.custom_id.strip_prefix(prefix)?.strip_prefix(':')?;
            Some((rest.parse::<TicketId>().ok()?, form))
        });
        let Some((ticket, form)) = parsed else {
            return ephemeral("This form is not one mentionbridge knows. Nothing was sent.");
        };
        let field = |id: &str| {
            m.data
                .components
                .iter()
                .flat_map(|row| row.components.iter())
                .find_map(|c| match c {
                    ActionRowComponent::InputText(t) if t.custom_id == id => t.value.clone(),
                    _ => None,
                })
        };
        let text = field(card::REPLY_INPUT).unwrap_or_default();
        let translate_to = field(translation::TRANSLATE_INPUT)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        if let (Some(to), Form::Reply | Form::Private) = (translate_to, &form) {
            let draft = DraftToTranslate {
                text,
                ack: field(card::ACK_INPUT),
                private: matches!(form, Form::Private),
                to,
            };
            return self.translate_draft(ticket, draft, &who).await;
        }
        let action = match form {
            Form::Private => AgentAction::ReplyPrivately {
                text,
                public_ack: field(card::ACK_INPUT),
            },
            Form::Reply => AgentAction::Reply { text },
            Form::EditDraft => AgentAction::EditDraft { text },
        };
        match self.desk.act(ticket, action, &who).await {
            Ok(t) if t.draft_awaiting_approval().is_some() => ephemeral(format!(
                "Your draft for ticket #{ticket} waits for another agent's approval; nothing is sent until then."
            )),
            Ok(_) => ephemeral(format!(
                "Reply to ticket #{ticket} queued; its link appears in the card's thread once published."
            )),
            // Discord modals cannot show an inline error: say exactly why, nothing was sent.
            Err(e) => ephemeral(format!("Ticket #{ticket}: {e} Nothing was sent.")),
        }
    }

    /// A reply form submitted with a language to translate into: the draft and its
    /// translation come back privately, with buttons; nothing is sent.
    async fn translate_draft(
        &self,
        ticket: TicketId,
        draft: DraftToTranslate,
        who: &AgentRef,
    ) -> CreateInteractionResponse {
        let translated = match self.desk.translate_draft(ticket, draft, who).await {
            Ok(t) => t,
            Err(e) => return ephemeral(format!("Ticket #{ticket}: {e}")),
        };
        match self.desk.hold_draft(who, &translated).await {
            Ok(number) => {
                CreateInteractionResponse::Message(translation::draft_message(&translated, number))
            }
            Err(e) => ephemeral(format!("Ticket #{ticket}: {e} Nothing was sent.")),
        }
    }

    /// A press on a held draft's message: send the version pressed, or open it in a
    /// form to edit. The message then loses its buttons, so nothing is sent twice.
    async fn on_draft_button(
        &self,
        who: &AgentRef,
        button: translation::DraftButton,
        ticket: TicketId,
        number: u64,
    ) -> CreateInteractionResponse {
        match button {
            translation::DraftButton::Send(choice) => {
                match self.desk.send_draft(who, number, choice).await {
                    Ok(t) => CreateInteractionResponse::UpdateMessage(translation::sent_message(
                        &t, choice,
                    )),
                    Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
                }
            }
            translation::DraftButton::Edit => {
                let draft = match self.desk.take_draft(who, number).await {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        return ephemeral(format!(
                            "Ticket #{ticket}: this translation was already sent, edited or replaced by a newer one; nothing was sent."
                        ))
                    }
                    Err(e) => return ephemeral(format!("Ticket #{ticket}: {e}")),
                };
                match self
                    .desk
                    .preview(draft.ticket, AgentAction::Reply { text: ".".into() }, who)
                    .await
                {
                    Ok(t) => CreateInteractionResponse::Modal(translation::edit_form(
                        &t,
                        self.desk.text_rules(t.mention.platform).unwrap_or_default(),
                        &draft,
                    )),
                    Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
                }
            }
        }
    }

    async fn on_command(self: &Arc<Self>, c: &CommandInteraction) -> CreateInteractionResponse {
        let who = actor(c.member.as_deref(), &c.user);
        let options = c.data.options();
        let (subcommand, args) = match options.first().map(|o| (o.name, &o.value)) {
            Some((name, ResolvedValue::SubCommand(args))) => (Some(name), args.as_slice()),
            _ => (None, &[][..]),
        };
        let args: Vec<(&str, OptionValue)> = args
            .iter()
            .map(|a| {
                let value = match &a.value {
                    ResolvedValue::String(s) => OptionValue::Text(s.to_string()),
                    ResolvedValue::Integer(n) => OptionValue::Integer(*n),
                    ResolvedValue::Boolean(b) => OptionValue::Boolean(*b),
                    _ => OptionValue::Other,
                };
                (a.name, value)
            })
            .collect();
        let command = match Command::from_options(subcommand, &args) {
            Ok(command) => command,
            // Our own sentence, with our own `code`.
            Err(e @ CommandError::NoSubcommand) => return ephemeral_markup(e.to_string()),
            Err(e @ CommandError::NoTicket) => {
                return ephemeral(format!("{e} Pick one from the list."))
            }
            Err(e) => return ephemeral(e.to_string()),
        };
        let desk = &self.desk;
        match command {
            Command::List => {
                if !desk.is_agent(&who) {
                    return ephemeral(Rejection::NotAnAgent.to_string());
                }
                match desk.open_tickets(card::LISTED).await {
                    Ok(t) => ephemeral_markup(card::open_list(&t)),
                    Err(e) => ephemeral(e.to_string()),
                }
            }
            Command::OnCall => ephemeral_rendered(
                desk.on_call_now(&who)
                    .await
                    .map(|(on, next)| crate::chat::on_call_text(&on, next, &card::DiscordMarkup)),
            ),
            Command::OverrideOnCall { member, length } => ephemeral_rendered(
                desk.override_on_call(&who, &member, &length)
                    .await
                    .map(|o| {
                        format!(
                            "{} is on call until <t:{}:t>.",
                            card::escape(&o.member),
                            o.until.timestamp()
                        )
                    }),
            ),
            Command::Canned => ephemeral_words(desk.canned_list(&who).await),
            Command::Incident { incident, page } => {
                ephemeral_rendered(desk.incident_members(&who, incident, page).await.map(|p| {
                    crate::chat::incident::members_list(
                        &p,
                        &card::DiscordMarkup,
                        card::limits::CONTENT,
                    )
                }))
            }
            Command::Split { ticket } => ephemeral_words(desk.split(&who, ticket).await.map(|i| {
                format!(
                    "Done: ticket #{ticket} left incident #{}; its own card is on its way.",
                    i.id
                )
            })),
            Command::Why { ticket } => ephemeral_rendered(
                desk.explain(&who, ticket)
                    .await
                    .map(|t| crate::chat::why_text(&t, &card::DiscordMarkup)),
            ),
            Command::Stats { window } => ephemeral_words(desk.stats(&who, &window).await),
            Command::Charts { window, tz } => match desk.ask_charts(&who, &window, &tz) {
                Ok(ask) => {
                    let me = self.clone();
                    let token = c.token.clone();
                    desk.spawn_later(
                        "Discord charts",
                        Box::pin(async move { me.send_charts(&token, ask).await }),
                    );
                    CreateInteractionResponse::Defer(
                        CreateInteractionResponseMessage::new().ephemeral(true),
                    )
                }
                Err(e) => ephemeral(e.to_string()),
            },
            Command::Note {
                network,
                handle,
                text,
            } => ephemeral_words(
                desk.note_person(&who, network.as_deref(), &handle, &text)
                    .await
                    .map(|person| crate::chat::command::noted_sentence(&person)),
            ),
            Command::Who { network, handle } => {
                ephemeral_rendered(desk.person(&who, network.as_deref(), &handle).await.map(
                    |(person, customer)| {
                        crate::chat::customer::who_text(
                            &person,
                            &customer,
                            &card::DiscordMarkup,
                            &|c| self.card_link(c),
                            500,
                        )
                    },
                ))
            }
            // Discord registers no `help`; the grammar never yields it from options.
            Command::Help => ephemeral("Which ticket? Pick one from the list."),
            Command::Act { ticket, action } => {
                let done = done_sentence(ticket, &action);
                match desk.act(ticket, action, &who).await {
                    Ok(_) => ephemeral(done),
                    Err(e) => ephemeral(format!("Ticket #{ticket}: {e}")),
                }
            }
        }
    }

    async fn on_autocomplete(&self, a: &CommandInteraction) -> CreateInteractionResponse {
        let who = actor(a.member.as_deref(), &a.user);
        let typed = a
            .data
            .autocomplete()
            .map(|o| o.value.to_string())
            .unwrap_or_default();
        let choices = if self.desk.is_agent(&who) {
            self.desk
                .open_tickets_matching(&typed, card::CHOICES)
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut response = CreateAutocompleteResponse::new();
        for (name, value) in card::ticket_choices(&choices, &typed) {
            response = response.add_int_choice(name, value as i64);
        }
        CreateInteractionResponse::Autocomplete(response)
    }
}

/// Which of the card's forms was submitted.
#[derive(Debug, Clone, Copy)]
enum Form {
    Reply,
    Private,
    EditDraft,
}
