//! Slack through slack-morphism: cards as Block Kit messages, actions from buttons, the
//! reply modal, `/mentions`, and thread messages (internal notes, never relayed).
//! Socket Mode by default; HTTP mode (signed requests) has its routes in `http`.

pub mod card;
pub mod http;
mod inbound;
pub mod signature;
mod socket;
pub mod translation;
mod upload;

use crate::config::SlackConfig;
use crate::domain::incident::Incident;
use crate::domain::CardRef;
use crate::domain::{Note, SurfaceKind, Ticket};
use crate::ports::DeliveryError;
use crate::ports::{AgentDesk, Surface};
use chrono::{DateTime, Utc};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;

pub use socket::run_socket_mode;

#[derive(Debug, Error)]
pub enum SlackError {
    #[error("Slack at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Slack refused {method}: {code}{hint}")]
    Refused {
        method: &'static str,
        code: String,
        hint: &'static str,
    },
}

pub struct Slack {
    client: Arc<SlackHyperClient>,
    token: SlackApiToken,
    config: SlackConfig,
    desk: Arc<dyn AgentDesk>,
    bot_user_id: RwLock<Option<String>>,
    /// The workspace's address `auth.test` answered (`https://team.slack.com/`), for
    /// links to our own cards.
    workspace_url: RwLock<Option<String>>,
    /// One gate per (method, channel), shared by every outbox worker.
    pacing: crate::chat::pacing::Pacing,
}

/// When Slack says "ratelimited" without a `Retry-After`, wait a second: its pace for
/// messages in one channel.
const RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn slack_client(api_url: &str) -> Result<SlackHyperClient, SlackError> {
    // A request's head and body leave at once, not held back for an ACK (Nagle).
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| SlackError::Unreachable {
            url: api_url.into(),
            reason: format!("no TLS root certificates on this machine: {e}"),
        })?
        // https for slack.com; plain http only for a loopback or self-hosted proxy URL
        // the operator configured explicitly.
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(api_url);
    Ok(SlackClient::new(connector))
}

/// Which failures are worth another try, and with what hint.
fn delivery_error(method: &str, e: SlackClientError) -> DeliveryError {
    match e {
        SlackClientError::RateLimitError(r) => DeliveryError::Retry {
            after: Some(
                r.retry_after
                    .map(crate::wire::hints::clamp_hint)
                    .unwrap_or(RATE_LIMIT_WAIT),
            ),
            reason: format!("Slack rate-limited {method}"),
        },
        SlackClientError::ApiError(api) if api.code == "ratelimited" => DeliveryError::Retry {
            after: Some(RATE_LIMIT_WAIT),
            reason: format!("Slack rate-limited {method}"),
        },
        SlackClientError::ApiError(api) => {
            let transient = matches!(
                api.code.as_str(),
                "ratelimited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            );
            let reason = format!("Slack refused {method}: {}", api.code);
            // Only Slack's own words for a missing message or channel mean the card is gone.
            let gone = matches!(
                api.code.as_str(),
                "message_not_found" | "channel_not_found" | "thread_not_found"
            );
            if transient {
                DeliveryError::retry(reason)
            } else if gone {
                DeliveryError::Gone { reason }
            } else {
                DeliveryError::Permanent { reason }
            }
        }
        SlackClientError::HttpError(h)
            if h.status_code.is_client_error() && h.status_code.as_u16() != 429 =>
        {
            DeliveryError::Permanent {
                reason: format!("Slack answered {} for {method}", h.status_code.as_u16()),
            }
        }
        other => DeliveryError::retry(format!("Slack call {method} failed: {other}")),
    }
}

fn hint_for(code: &str) -> &'static str {
    match code {
        "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => {
            " (check SLACK_BOT_TOKEN in slack.bot_token: a bot token, xoxb-…)"
        }
        "missing_scope" => " (reinstall the app with the scopes in slack-app-manifest.yml)",
        _ => "",
    }
}

/// Slack's documented paces, kept ahead of: new messages per channel as configured
/// (about one a second, short bursts allowed); `chat.update` is Tier 3 (about 50 a
/// minute), here per channel.
fn pacing(config: &SlackConfig) -> crate::chat::pacing::Pacing {
    use crate::chat::pacing::{Limit, Pacing};
    Pacing::default()
        .with_limit(
            "chat.postMessage",
            Limit {
                every: Duration::from_secs_f64(1.0 / config.messages_per_second),
                burst: config.message_burst,
            },
        )
        .with_limit(
            "chat.update",
            Limit {
                every: Duration::from_millis(1200),
                burst: 20,
            },
        )
}

impl Slack {
    pub fn new(config: &SlackConfig, desk: Arc<dyn AgentDesk>) -> Result<Slack, SlackError> {
        Ok(Slack {
            client: Arc::new(slack_client(&config.api_url)?),
            token: SlackApiToken::new(config.bot_token.expose().into()),
            config: config.clone(),
            desk,
            bot_user_id: RwLock::new(None),
            workspace_url: RwLock::new(None),
            pacing: pacing(config),
        })
    }

    /// A Web API call through the gate of its method and channel: after a 429 every
    /// worker's call of that kind to that channel waits its turn (see `chat::pacing`).
    async fn paced<T, F, Fut>(
        &self,
        method: &'static str,
        channel: &str,
        call: F,
    ) -> Result<T, DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SlackClientError>>,
    {
        let mut call = call;
        self.pacing
            .send(
                &format!("{method} {channel}"),
                || {
                    let sent = call();
                    async move { sent.await.map_err(|e| delivery_error(method, e)) }
                },
                |r| match r {
                    Err(DeliveryError::Retry {
                        after: Some(wait), ..
                    }) => crate::chat::pacing::Answer::RateLimited(*wait),
                    _ => crate::chat::pacing::Answer::Other,
                },
                |wait| DeliveryError::Retry {
                    after: Some(wait),
                    reason: format!("Slack rate-limited {method} in {channel}; held back"),
                },
            )
            .await
    }

    fn session(&self) -> SlackClientSession<'_, SlackClientHyperHttpsConnector> {
        self.client.open_session(&self.token)
    }

    /// `auth.test`: the token works and we learn our own user id.
    pub async fn verify(&self) -> Result<(), SlackError> {
        let resp = self.session().auth_test().await.map_err(|e| match e {
            SlackClientError::ApiError(api) => SlackError::Refused {
                method: "auth.test",
                hint: hint_for(&api.code),
                code: api.code,
            },
            other => SlackError::Unreachable {
                url: self.config.api_url.clone(),
                reason: other.to_string(),
            },
        })?;
        tracing::info!(team = ?resp.team, user = %resp.user_id, "Slack bot token verified");
        *self.bot_user_id.write().expect("bot id lock") = Some(resp.user_id.to_string());
        *self.workspace_url.write().expect("workspace url lock") =
            crate::chat::markup::safe_url(resp.url.0.as_str());
        Ok(())
    }

    /// Where one of our cards lives in the workspace (`{url}archives/{channel}/p{ts}`),
    /// once `auth.test` said where the workspace is; `None` for another surface's card.
    pub fn card_link(&self, card: &CardRef) -> Option<String> {
        if card.surface != SurfaceKind::Slack {
            return None;
        }
        let url = self
            .workspace_url
            .read()
            .expect("workspace url lock")
            .clone()?;
        card::permalink(&url, &card.channel, &card.message_id)
    }

    /// The lines about who the customer is, as this workspace links its cards.
    fn customer_lines(&self, customer: &crate::domain::customer::Customer) -> Vec<String> {
        crate::chat::customer::card_lines(customer, &card::SlackMarkup, &|c| self.card_link(c))
    }

    pub fn bot_user_id(&self) -> Option<String> {
        self.bot_user_id.read().expect("bot id lock").clone()
    }

    pub fn desk(&self) -> &Arc<dyn AgentDesk> {
        &self.desk
    }

    pub fn config(&self) -> &SlackConfig {
        &self.config
    }

    /// Resolve the agent user group's members (`usergroups.users.list`).
    pub async fn refresh_agent_group(&self) -> Result<(), DeliveryError> {
        let Some(group) = &self.config.agent_usergroup else {
            return Ok(());
        };
        let resp = self
            .session()
            .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new(
                group.clone().into(),
            ))
            .await
            .map_err(|e| delivery_error("usergroups.users.list", e))?;
        let members = resp.users.into_iter().map(|u| u.to_string()).collect();
        self.desk.set_group_members(SurfaceKind::Slack, members);
        Ok(())
    }

    async fn find_card(&self, ticket: &Ticket) -> Result<Option<CardRef>, DeliveryError> {
        self.find_posted(ticket.opened_at, |metadata| {
            card::ticket_of_metadata(metadata)
                == Some((ticket.id, ticket.mention.remote_id.clone()))
        })
        .await
    }

    /// Our message in the cards channel since `since` whose metadata `ours` recognises
    /// (a card posted by a try whose answer was lost).
    async fn find_posted(
        &self,
        since: DateTime<Utc>,
        ours: impl Fn(Option<&SlackMessageMetadata>) -> bool,
    ) -> Result<Option<CardRef>, DeliveryError> {
        let oldest = (since - chrono::Duration::minutes(1)).max(DateTime::<Utc>::UNIX_EPOCH);
        let mut cursor: Option<SlackCursorId> = None;
        for _page in 0..10 {
            let mut req = SlackApiConversationsHistoryRequest::new()
                .with_channel(self.config.channel.clone().into())
                .with_oldest(SlackTs::new(format!("{}.000000", oldest.timestamp())))
                .with_limit(200)
                .with_include_all_metadata(true);
            if let Some(c) = cursor.take() {
                req = req.with_cursor(c);
            }
            let req = &req;
            let resp = self
                .paced(
                    "conversations.history",
                    &self.config.channel,
                    move || async move { self.session().conversations_history(req).await },
                )
                .await?;
            let found = resp
                .messages
                .iter()
                .find(|m| ours(m.content.metadata.as_ref()));
            if let Some(m) = found {
                return Ok(Some(CardRef {
                    surface: SurfaceKind::Slack,
                    channel: self.config.channel.clone(),
                    message_id: m.origin.ts.to_string(),
                    thread_id: None,
                }));
            }
            match resp
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.to_string().is_empty())
            {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(None)
    }

    async fn post_card_inner(
        &self,
        ticket: &Ticket,
        customer: &[String],
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        if maybe_posted {
            if let Some(found) = self.find_card(ticket).await? {
                tracing::info!(ticket = %ticket.id, ts = %found.message_id, "card was already posted before the restart; adopting it");
                return Ok(found);
            }
        }
        self.post_content(card::card_content(
            ticket,
            self.desk.text_rules(ticket.mention.platform).is_some(),
            &self.desk.canned_for(ticket),
            customer,
        ))
        .await
    }

    /// Post a card (a ticket's or an incident's) in the cards channel.
    async fn post_content(&self, content: SlackMessageContent) -> Result<CardRef, DeliveryError> {
        let req = SlackApiChatPostMessageRequest::new(self.config.channel.clone().into(), content)
            .with_unfurl_links(false)
            .with_unfurl_media(false);
        let req = &req;
        let resp = self
            .paced(
                "chat.postMessage",
                &self.config.channel,
                move || async move { self.session().chat_post_message(req).await },
            )
            .await?;
        Ok(CardRef {
            surface: SurfaceKind::Slack,
            channel: resp.channel.to_string(),
            message_id: resp.ts.to_string(),
            thread_id: None,
        })
    }

    /// Render a card again in place.
    async fn update_content(
        &self,
        card: &CardRef,
        content: SlackMessageContent,
    ) -> Result<(), DeliveryError> {
        let req = SlackApiChatUpdateRequest::new(
            card.channel.clone().into(),
            content,
            card.message_id.clone().into(),
        );
        let req = &req;
        self.paced("chat.update", &card.channel, move || async move {
            self.session().chat_update(req).await
        })
        .await?;
        Ok(())
    }

    async fn post_incident_card_inner(
        &self,
        incident: &Incident,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        if maybe_posted {
            let found = self
                .find_posted(incident.opened_at, |metadata| {
                    card::incident_of_metadata(metadata) == Some(incident.id)
                })
                .await?;
            if let Some(found) = found {
                tracing::info!(incident = %incident.id, ts = %found.message_id, "incident card was already posted before the restart; adopting it");
                return Ok(found);
            }
        }
        self.post_content(card::incident_content(incident)).await
    }

    async fn update_incident_card_inner(
        &self,
        card: &CardRef,
        incident: &Incident,
    ) -> Result<(), DeliveryError> {
        self.update_content(card, card::incident_content(incident))
            .await
    }

    async fn update_card_inner(
        &self,
        card: &CardRef,
        ticket: &Ticket,
        customer: &[String],
    ) -> Result<(), DeliveryError> {
        let content = card::card_content(
            ticket,
            self.desk.text_rules(ticket.mention.platform).is_some(),
            &self.desk.canned_for(ticket),
            customer,
        );
        self.update_content(card, content).await
    }

    async fn post_note_inner(
        &self,
        card: &CardRef,
        note: &Note,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        self.post_text_once(
            &card.channel,
            Some(&card.message_id),
            card::note_text(note),
            maybe_posted,
            queued_at,
        )
        .await
    }

    async fn post_digest_inner(
        &self,
        digest: &crate::domain::handoff::Digest,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        let text = crate::chat::markup::cut_to(
            &crate::chat::digest_text(digest, &card::SlackMarkup),
            card::limits::FALLBACK,
        );
        self.post_text_once(&self.config.channel, None, text, maybe_posted, queued_at)
            .await
    }

    /// Post `text` in the channel (or in a thread), unless `maybe_posted` and the bot's
    /// own identical message since `queued_at` is already there.
    async fn post_text_once(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: String,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        if maybe_posted {
            let oldest = SlackTs::new(format!(
                "{}.000000",
                (queued_at - chrono::Duration::minutes(1)).timestamp()
            ));
            let messages = match thread_ts {
                Some(ts) => {
                    let req = SlackApiConversationsRepliesRequest::new(
                        channel.to_string().into(),
                        ts.to_string().into(),
                    )
                    .with_oldest(oldest)
                    .with_limit(200);
                    let req = &req;
                    self.paced("conversations.replies", channel, move || async move {
                        self.session().conversations_replies(req).await
                    })
                    .await?
                    .messages
                }
                None => {
                    let req = SlackApiConversationsHistoryRequest::new()
                        .with_channel(channel.to_string().into())
                        .with_oldest(oldest)
                        .with_limit(200);
                    let req = &req;
                    self.paced("conversations.history", channel, move || async move {
                        self.session().conversations_history(req).await
                    })
                    .await?
                    .messages
                }
            };
            let ours = self.bot_user_id();
            let already = messages.iter().any(|m| {
                m.content.text.as_deref() == Some(text.as_str())
                    && (m.sender.bot_id.is_some()
                        || m.sender.user.as_ref().map(|u| u.to_string()) == ours)
            });
            if already {
                return Ok(());
            }
        }
        let mut req = SlackApiChatPostMessageRequest::new(
            channel.to_string().into(),
            SlackMessageContent::new().with_text(text),
        )
        .with_unfurl_links(false);
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(ts.to_string().into());
        }
        let req = &req;
        self.paced("chat.postMessage", channel, move || async move {
            self.session().chat_post_message(req).await
        })
        .await?;
        Ok(())
    }

    /// Tell one person something only they see, in the channel they acted in.
    /// Tell one agent something privately, in words: what it quotes is escaped.
    pub(crate) async fn ephemeral(&self, channel: &str, user: &str, text: &str) {
        let req = SlackApiChatPostEphemeralRequest::new(
            channel.to_string().into(),
            user.to_string().into(),
            SlackMessageContent::new().with_text(card::escape(text)),
        );
        if let Err(e) = self.session().chat_post_ephemeral(&req).await {
            tracing::warn!(error = %delivery_error("chat.postEphemeral", e), "could not tell the agent");
        }
    }
}

#[async_trait::async_trait]
impl Surface for Slack {
    fn kind(&self) -> SurfaceKind {
        SurfaceKind::Slack
    }

    fn waiting_calls(&self) -> u64 {
        self.pacing.waiting()
    }

    fn rate_limited_calls(&self) -> u64 {
        self.pacing.refusals()
    }

    async fn announce(&self, text: &str) -> Result<(), DeliveryError> {
        let req = SlackApiChatPostMessageRequest::new(
            self.config.channel.clone().into(),
            SlackMessageContent::new().with_text(format!(":warning: {}", card::escape(text))),
        );
        let req = &req;
        self.paced(
            "chat.postMessage",
            &self.config.channel,
            move || async move { self.session().chat_post_message(req).await },
        )
        .await?;
        Ok(())
    }

    async fn post_card(
        &self,
        ticket: &Ticket,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        self.post_card_inner(ticket, &[], maybe_posted).await
    }

    async fn update_card(&self, card: &CardRef, ticket: &Ticket) -> Result<(), DeliveryError> {
        self.update_card_inner(card, ticket, &[]).await
    }

    async fn post_card_for(
        &self,
        ticket: &Ticket,
        customer: &crate::domain::customer::Customer,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        self.post_card_inner(ticket, &self.customer_lines(customer), maybe_posted)
            .await
    }

    async fn update_card_for(
        &self,
        card: &CardRef,
        ticket: &Ticket,
        customer: &crate::domain::customer::Customer,
    ) -> Result<(), DeliveryError> {
        self.update_card_inner(card, ticket, &self.customer_lines(customer))
            .await
    }

    async fn post_incident_card(
        &self,
        incident: &Incident,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        self.post_incident_card_inner(incident, maybe_posted).await
    }

    async fn update_incident_card(
        &self,
        card: &CardRef,
        incident: &Incident,
    ) -> Result<(), DeliveryError> {
        self.update_incident_card_inner(card, incident).await
    }

    async fn post_note(
        &self,
        card: &CardRef,
        note: &Note,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        self.post_note_inner(card, note, maybe_posted, queued_at)
            .await
    }

    async fn post_digest(
        &self,
        digest: &crate::domain::handoff::Digest,
        maybe_posted: bool,
        queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        self.post_digest_inner(digest, maybe_posted, queued_at)
            .await
    }
}
