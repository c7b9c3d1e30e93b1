//! Discord: cards as embeds with buttons, a thread per card for the audit lines, the
//! reply modal and `/mentions` guild commands. serenity runs the gateway and supplies the
//! models and builders; REST calls go through one small reqwest client of ours so that the
//! base URL is configurable and a 429's `retry_after` reaches the outbox's backoff (with
//! its rate limiter disabled, serenity neither retries a 429 nor reports its wait).

pub mod card;
mod gateway;
pub mod http;
mod inbound;
pub mod signature;
pub mod translation;

use crate::chat::markup::cut_to;
use crate::config::{DiscordConfig, Secret};
use crate::domain::incident::Incident;
use crate::domain::CardRef;
use crate::domain::{Note, SurfaceKind, Ticket};
use crate::ports::DeliveryError;
use crate::ports::{AgentDesk, Surface};
use crate::wire::hints::{header_wait, hinted_secs, HintForm};
use crate::wire::request_path::{self, IdShape};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use serenity::all::{CreateAllowedMentions, CreateMessage, EditMessage};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;

pub use gateway::run_gateway;

#[derive(Debug, Error)]
pub enum DiscordError {
    #[error("Discord at {url}: {reason}")]
    Unavailable { url: String, reason: String },
    #[error("Discord refused {what}: {reason}{hint}")]
    Refused {
        what: &'static str,
        reason: String,
        hint: &'static str,
    },
}

pub struct Discord {
    http: reqwest::Client,
    token: Secret,
    config: DiscordConfig,
    desk: Arc<dyn AgentDesk>,
    application_id: RwLock<Option<String>>,
    bot_user_id: RwLock<Option<String>>,
    /// One gate per route and channel (Discord's per-route buckets), shared by every
    /// outbox worker.
    pacing: crate::chat::pacing::Pacing,
}

/// A 429 without a wait: Discord's buckets reset within seconds.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// The gate a REST path goes through, as Discord buckets it: the method and the route
/// with every id but the top-level channel or guild (its major parameter) left out.
fn route_key(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut previous = "";
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let major = matches!(previous, "channels" | "guilds");
            previous = segment;
            if !major && !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                segment
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// Discord's JSON error codes for a message or channel that does not exist.
const UNKNOWN_MESSAGE: i64 = 10008;
const UNKNOWN_CHANNEL: i64 = 10003;

/// Where a channel's messages are (a thread is a channel too).
fn messages_path(channel: &str) -> Result<String, request_path::BadId> {
    request_path::path(
        "/channels/{}/messages",
        &[("Discord channel id", IdShape::Snowflake, channel)],
    )
}

/// Discord's error body: `{"message": "...", "code": 10008}`; a 429 adds `retry_after`.
/// Keys whose values serenity reads as image hashes.
const IMAGE_HASH_KEYS: &[&str] = &[
    "asset",
    "avatar",
    "badge",
    "banner",
    "cover_image",
    "discovery_splash",
    "icon",
    "icon_hash",
    "image",
    "splash",
];

/// An interaction as the HTTP endpoint receives it. serenity 0.12 panics on an image
/// hash of 32 bytes that are not ASCII (it slices the string two bytes at a time); Discord
/// only sends hex, so such a value is read as no image at all.
pub fn interaction_from_json(body: &[u8]) -> Result<serenity::all::Interaction, serde_json::Error> {
    fn drop_odd_hashes(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if IMAGE_HASH_KEYS.contains(&key.as_str())
                        && child.as_str().is_some_and(|h| !h.is_ascii())
                    {
                        *child = Value::Null;
                    } else {
                        drop_odd_hashes(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(drop_odd_hashes),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(body)?;
    drop_odd_hashes(&mut value);
    serde_json::from_value(value)
}

/// The path as errors and logs show it: an interaction's token travels in the path
/// (`/interactions/{id}/{token}/callback`, `/webhooks/{app}/{token}/…`) and is a
/// credential for that interaction's answers.
fn shown_path(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    if matches!(parts.get(1), Some(&"interactions" | &"webhooks")) && parts.len() > 3 {
        parts[3] = "<token>";
    }
    parts.join("/")
}

fn discord_reason(body: &Value, status: StatusCode) -> String {
    let message = body["message"].as_str().unwrap_or("").to_string();
    match body["code"].as_i64() {
        Some(code) if code != 0 => format!("{message} ({code})"),
        _ if !message.is_empty() => message,
        _ => format!("HTTP {}", status.as_u16()),
    }
}

impl Discord {
    pub fn new(config: &DiscordConfig, desk: Arc<dyn AgentDesk>) -> Result<Discord, DiscordError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "DiscordBot (https://github.com/mentionbridge/mentionbridge, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| DiscordError::Unavailable {
                url: config.api_url.clone(),
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Discord {
            http,
            token: config.bot_token.clone(),
            config: config.clone(),
            desk,
            application_id: RwLock::new(None),
            bot_user_id: RwLock::new(None),
            pacing: Default::default(),
        })
    }

    pub fn config(&self) -> &DiscordConfig {
        &self.config
    }

    pub fn desk(&self) -> &Arc<dyn AgentDesk> {
        &self.desk
    }

    fn application_id(&self) -> Option<String> {
        self.application_id.read().expect("app id lock").clone()
    }

    fn bot_user_id(&self) -> Option<String> {
        self.bot_user_id.read().expect("bot id lock").clone()
    }

    /// One REST call. Non-2xx answers become the outbox's two kinds of failure, with
    /// Discord's own words and, for a 429, its `retry_after`. Calls go through the gate of
    /// their route: after a 429, or when the bucket's headers say it is empty, every
    /// worker's call on that route waits its turn. Interaction callbacks and webhooks
    /// carry a token in their path and answer to a deadline: they are not held.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, DeliveryError> {
        if path.starts_with("/interactions/") || path.starts_with("/webhooks/") {
            return self.call_once(&method, path, body).await.map(|(v, _)| v);
        }
        let key = route_key(&method, path);
        self.pacing
            .send(
                &key,
                || self.call_once(&method, path, body),
                |r| match r {
                    Err(DeliveryError::Retry {
                        after: Some(wait), ..
                    }) => crate::chat::pacing::Answer::RateLimited(*wait),
                    Ok((_, Some(empty_for))) => {
                        crate::chat::pacing::Answer::BucketEmpty(*empty_for)
                    }
                    _ => crate::chat::pacing::Answer::Other,
                },
                |wait| DeliveryError::Retry {
                    after: Some(wait),
                    reason: format!("Discord rate-limited {key}; held back"),
                },
            )
            .await
            .map(|(v, _)| v)
    }

    /// One request; with the answer, how long the route's bucket stays empty, if its
    /// headers say it is.
    async fn call_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Value, Option<Duration>), DeliveryError> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.answer_of(method, path, req).await
    }

    /// A message with files: Discord's multipart form, the message as `payload_json` and
    /// each file as `files[n]` (its `attachments[n]` entry names and describes it).
    async fn call_with_files(
        &self,
        method: Method,
        path: &str,
        message: &Value,
        files: &[crate::ports::ChartFile],
    ) -> Result<Value, DeliveryError> {
        let mut form = reqwest::multipart::Form::new().part(
            "payload_json",
            reqwest::multipart::Part::text(message.to_string())
                .mime_str("application/json")
                .expect("a valid MIME type"),
        );
        for (n, file) in files.iter().enumerate() {
            form = form.part(
                format!("files[{n}]"),
                reqwest::multipart::Part::bytes(file.png.clone())
                    .file_name(file.filename.clone())
                    .mime_str("image/png")
                    .expect("a valid MIME type"),
            );
        }
        let req = self.request(&method, path).multipart(form);
        self.answer_of(&method, path, req).await.map(|(v, _)| v)
    }

    fn request(&self, method: &Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.config.api_url, path);
        self.http
            .request(method.clone(), &url)
            .header("Authorization", format!("Bot {}", self.token.expose()))
    }

    /// Send `req` and read Discord's answer: the JSON, and how long the route's bucket
    /// stays empty when its headers say so; a refusal as the outbox understands it.
    async fn answer_of(
        &self,
        method: &Method,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(Value, Option<Duration>), DeliveryError> {
        let path = &shown_path(path);
        let resp = req.send().await.map_err(|e| {
            DeliveryError::retry(format!(
                "Discord {method} {path} could not be sent: {}",
                if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    "connection failed".to_string()
                }
            ))
        })?;
        let status = resp.status();
        let now = chrono::Utc::now();
        let header_hint = header_wait(resp.headers(), "retry-after", HintForm::RetryAfter, now);
        let remaining = resp
            .headers()
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let bucket_empty_for = match remaining {
            Some("0") => header_wait(
                resp.headers(),
                "x-ratelimit-reset-after",
                HintForm::RetryAfter,
                now,
            ),
            _ => None,
        };
        let bytes = resp.bytes().await.unwrap_or_default();
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok((json, bucket_empty_for));
        }
        let reason = format!(
            "Discord answered {} for {method} {path}: {}",
            status.as_u16(),
            discord_reason(&json, status)
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            let body_wait = json["retry_after"].as_f64().and_then(hinted_secs);
            return Err(DeliveryError::Retry {
                after: Some(body_wait.or(header_hint).unwrap_or(RATE_LIMIT_WAIT)),
                reason,
            });
        }
        if status.is_server_error() {
            return Err(DeliveryError::retry(reason));
        }
        // Only Discord's own codes for a missing message or channel mean the card is gone.
        if matches!(
            json["code"].as_i64(),
            Some(UNKNOWN_MESSAGE | UNKNOWN_CHANNEL)
        ) {
            return Err(DeliveryError::Gone { reason });
        }
        Err(DeliveryError::Permanent { reason })
    }

    /// Check the bot token (`GET /users/@me`) and learn the application id.
    pub async fn verify(&self) -> Result<(), DiscordError> {
        let refused = |what: &'static str| {
            move |e: DeliveryError| match e {
                DeliveryError::Permanent { reason } | DeliveryError::Gone { reason } => {
                    DiscordError::Refused {
                        what,
                        hint: if reason.contains(" 401 ") {
                            " (check DISCORD_BOT_TOKEN in discord.bot_token: the bot token from the Bot page)"
                        } else {
                            ""
                        },
                        reason,
                    }
                }
                DeliveryError::Retry { reason, .. } => DiscordError::Unavailable {
                    url: self.config.api_url.clone(),
                    reason,
                },
            }
        };
        let me = self
            .call(Method::GET, "/users/@me", None)
            .await
            .map_err(refused("the bot token"))?;
        let app = self
            .call(Method::GET, "/applications/@me", None)
            .await
            .map_err(refused("the application lookup"))?;
        *self.bot_user_id.write().expect("bot id lock") = me["id"].as_str().map(String::from);
        *self.application_id.write().expect("app id lock") = app["id"].as_str().map(String::from);
        tracing::info!(bot = %me["username"].as_str().unwrap_or("?"), application = %app["id"].as_str().unwrap_or("?"), "Discord bot token verified");
        Ok(())
    }

    /// Register `/mentions` in the guild. A bulk overwrite, so a restart replaces the
    /// command instead of adding a second one.
    pub async fn register_commands(&self) -> Result<(), DeliveryError> {
        let app = self
            .application_id()
            .ok_or_else(|| DeliveryError::retry("application id unknown (verify first)"))?;
        let body = serde_json::to_value(vec![card::command()]).expect("commands serialize");
        self.call(
            Method::PUT,
            &request_path::path(
                "/applications/{}/guilds/{}/commands",
                &[
                    ("Discord application id", IdShape::Snowflake, &app),
                    (
                        "Discord guild id",
                        IdShape::Snowflake,
                        &self.config.guild_id,
                    ),
                ],
            )?,
            Some(&body),
        )
        .await?;
        tracing::info!(guild = %self.config.guild_id, "Discord /mentions command registered");
        Ok(())
    }

    /// A nonce Discord uses to drop a duplicate create (`enforce_nonce`): stable for the
    /// ticket, distinct across installs because it folds in the mention's remote id.
    fn card_nonce(ticket: &Ticket) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in ticket.mention.remote_id.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        format!("mb{}x{:x}", ticket.id, h % 0xffff_ffff)
    }

    /// After a crash the card may exist already: look among the channel's recent
    /// messages for ours (same title and link to the original).
    async fn find_card(&self, ticket: &Ticket) -> Result<Option<String>, DeliveryError> {
        let title = card::card_title(ticket);
        self.find_ours(|embed| {
            embed["title"] == title.as_str() && embed["url"] == ticket.mention.url.as_str()
        })
        .await
    }

    /// Among the channel's latest messages, ours whose first embed `is_it` recognises.
    async fn find_ours(
        &self,
        is_it: impl Fn(&Value) -> bool,
    ) -> Result<Option<String>, DeliveryError> {
        let recent = self
            .call(
                Method::GET,
                &(messages_path(&self.config.channel_id)? + "?limit=100"),
                None,
            )
            .await?;
        let ours = self.bot_user_id();
        Ok(recent.as_array().into_iter().flatten().find_map(|m| {
            let by_us = ours.is_none() || m["author"]["id"].as_str() == ours.as_deref();
            (by_us && is_it(&m["embeds"][0]))
                .then(|| m["id"].as_str().map(String::from))
                .flatten()
        }))
    }

    async fn open_thread(
        &self,
        ticket: &Ticket,
        message_id: &str,
    ) -> Result<Option<String>, DeliveryError> {
        self.open_thread_named(&card::thread_name(ticket), message_id)
            .await
    }

    /// A thread started from the card `message_id`, for its notes.
    async fn open_thread_named(
        &self,
        name: &str,
        message_id: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let body = json!({"name": name, "auto_archive_duration": 10080});
        let path = request_path::path(
            "/channels/{}/messages/{}/threads",
            &[
                (
                    "Discord channel id",
                    IdShape::Snowflake,
                    &self.config.channel_id,
                ),
                ("Discord message id", IdShape::Snowflake, message_id),
            ],
        )?;
        match self.call(Method::POST, &path, Some(&body)).await {
            Ok(thread) => Ok(thread["id"].as_str().map(String::from)),
            // Already there (a retry): a thread started from a message shares its id.
            Err(DeliveryError::Permanent { reason }) if reason.contains("(160004)") => {
                Ok(Some(message_id.to_string()))
            }
            Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                tracing::warn!(thread = %name, %reason, "could not open a thread for the card; notes will be replies to it");
                Ok(None)
            }
            Err(retry) => Err(retry),
        }
    }

    async fn post_card_inner(
        &self,
        ticket: &Ticket,
        customer: &[String],
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        let existing = if maybe_posted {
            self.find_card(ticket).await?
        } else {
            None
        };
        let message_id = match existing {
            Some(id) => {
                tracing::info!(ticket = %ticket.id, message = %id, "Discord card was already posted before the restart; adopting it");
                id
            }
            None => {
                let msg = CreateMessage::new()
                    .embed(card::card_embed(ticket, customer))
                    .components(card::card_buttons(
                        ticket,
                        self.desk.text_rules(ticket.mention.platform).is_some(),
                        &self.desk.canned_for(ticket),
                    ))
                    .nonce(serenity::all::Nonce::String(Self::card_nonce(ticket)));
                self.create_card(msg).await?
            }
        };
        let thread_id = self.open_thread(ticket, &message_id).await?;
        Ok(CardRef {
            surface: SurfaceKind::Discord,
            channel: self.config.channel_id.clone(),
            message_id,
            thread_id,
        })
    }

    /// Post a card in the cards channel, de-duplicated by its nonce, calling nobody
    /// whatever the customer wrote; its message id.
    async fn create_card(&self, msg: CreateMessage) -> Result<String, DeliveryError> {
        let msg = msg
            .enforce_nonce(true)
            .allowed_mentions(CreateAllowedMentions::new());
        let body = serde_json::to_value(msg).expect("message serializes");
        let posted = self
            .call(
                Method::POST,
                &messages_path(&self.config.channel_id)?,
                Some(&body),
            )
            .await?;
        posted["id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| DeliveryError::retry("Discord accepted the card but sent no message id"))
    }

    /// A nonce for an incident's card, stable across retries (see [`Self::card_nonce`]).
    fn incident_nonce(incident: &Incident) -> String {
        format!(
            "mbi{}x{:x}",
            incident.id,
            incident.opened_at.timestamp_millis() % 0xffff_ffff
        )
    }

    async fn post_incident_card_inner(
        &self,
        incident: &Incident,
        maybe_posted: bool,
    ) -> Result<CardRef, DeliveryError> {
        let title = card::incident_title(incident);
        let existing = if maybe_posted {
            self.find_ours(|embed| embed["title"] == title.as_str())
                .await?
        } else {
            None
        };
        let message_id = match existing {
            Some(id) => {
                tracing::info!(incident = %incident.id, message = %id, "Discord incident card was already posted before the restart; adopting it");
                id
            }
            None => {
                let msg = CreateMessage::new()
                    .embed(card::incident_embed(incident))
                    .components(card::incident_buttons(incident))
                    .nonce(serenity::all::Nonce::String(Self::incident_nonce(incident)));
                self.create_card(msg).await?
            }
        };
        let name = cut_to(
            &format!("Incident #{}", incident.id),
            card::limits::THREAD_NAME,
        );
        let thread_id = self.open_thread_named(&name, &message_id).await?;
        Ok(CardRef {
            surface: SurfaceKind::Discord,
            channel: self.config.channel_id.clone(),
            message_id,
            thread_id,
        })
    }

    async fn update_incident_card_inner(
        &self,
        card: &CardRef,
        incident: &Incident,
    ) -> Result<(), DeliveryError> {
        let edit = EditMessage::new()
            .allowed_mentions(CreateAllowedMentions::new())
            .embed(card::incident_embed(incident))
            .components(card::incident_buttons(incident));
        self.edit(card, edit).await
    }

    async fn update_card_inner(
        &self,
        card: &CardRef,
        ticket: &Ticket,
        customer: &[String],
    ) -> Result<(), DeliveryError> {
        let edit = EditMessage::new()
            .allowed_mentions(CreateAllowedMentions::new())
            .embed(card::card_embed(ticket, customer))
            .components(card::card_buttons(
                ticket,
                self.desk.text_rules(ticket.mention.platform).is_some(),
                &self.desk.canned_for(ticket),
            ));
        self.edit(card, edit).await
    }

    /// Edit a card (a ticket's or an incident's) in place.
    async fn edit(&self, card: &CardRef, edit: EditMessage) -> Result<(), DeliveryError> {
        let body = serde_json::to_value(edit).expect("edit serializes");
        self.call(
            Method::PATCH,
            &request_path::path(
                "/channels/{}/messages/{}",
                &[
                    ("Discord channel id", IdShape::Snowflake, &card.channel),
                    ("Discord message id", IdShape::Snowflake, &card.message_id),
                ],
            )?,
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn post_note_inner(
        &self,
        card: &CardRef,
        note: &Note,
        maybe_posted: bool,
    ) -> Result<(), DeliveryError> {
        let text = cut_to(
            &crate::chat::note_sentence(note, &card::DiscordMarkup),
            card::limits::CONTENT,
        );
        let channel = card
            .thread_id
            .clone()
            .unwrap_or_else(|| card.channel.clone());
        if maybe_posted && self.recently_posted(&channel, &text).await? {
            return Ok(());
        }
        // Lines name agents without pinging them, except the people a page, a warning
        // or an escalation calls: that is its point.
        let pinged: Vec<serenity::all::UserId> = note
            .pings()
            .iter()
            .filter_map(|k| crate::chat::member_id(k, SurfaceKind::Discord))
            .filter_map(|id| id.parse::<u64>().ok())
            .map(serenity::all::UserId::new)
            .collect();
        let mut msg = CreateMessage::new().content(text).allowed_mentions(
            CreateAllowedMentions::new()
                .users(pinged)
                .everyone(note.pings_channel()),
        );
        if card.thread_id.is_none() {
            msg = msg.reference_message((
                serenity::all::ChannelId::new(card.channel.parse().unwrap_or(1)),
                serenity::all::MessageId::new(card.message_id.parse().unwrap_or(1)),
            ));
        }
        self.send(&channel, msg).await
    }
}

impl Discord {
    /// Where one of our cards lives in the guild
    /// (`https://discord.com/channels/{guild}/{channel}/{message}`); `None` for another
    /// surface's card.
    pub fn card_link(&self, card: &CardRef) -> Option<String> {
        if card.surface != SurfaceKind::Discord {
            return None;
        }
        card::message_link(&self.config.guild_id, &card.channel, &card.message_id)
    }

    /// The lines about who the customer is, as this guild links its cards.
    fn customer_lines(&self, customer: &crate::domain::customer::Customer) -> Vec<String> {
        crate::chat::customer::card_lines(customer, &card::DiscordMarkup, &|c| self.card_link(c))
    }

    /// Post a message in a channel or thread.
    async fn send(&self, channel: &str, msg: CreateMessage) -> Result<(), DeliveryError> {
        let body = serde_json::to_value(msg).expect("message serializes");
        self.call(Method::POST, &messages_path(channel)?, Some(&body))
            .await?;
        Ok(())
    }

    /// Whether the bot's own message with exactly `text` is among the channel's latest
    /// (a retry after a send whose answer was lost).
    async fn recently_posted(&self, channel: &str, text: &str) -> Result<bool, DeliveryError> {
        let recent = self
            .call(Method::GET, &(messages_path(channel)? + "?limit=50"), None)
            .await?;
        let ours = self.bot_user_id();
        Ok(recent.as_array().into_iter().flatten().any(|m| {
            m["content"] == text
                && (ours.is_none() || m["author"]["id"].as_str() == ours.as_deref())
        }))
    }

    async fn post_digest_inner(
        &self,
        digest: &crate::domain::handoff::Digest,
        maybe_posted: bool,
    ) -> Result<(), DeliveryError> {
        let text = cut_to(
            &crate::chat::digest_text(digest, &card::DiscordMarkup),
            card::limits::CONTENT,
        );
        let channel = &self.config.channel_id;
        if maybe_posted && self.recently_posted(channel, &text).await? {
            return Ok(());
        }
        // A summary: it names people without pinging them.
        let msg = CreateMessage::new()
            .content(text)
            .allowed_mentions(CreateAllowedMentions::new());
        self.send(channel, msg).await
    }
}

#[async_trait::async_trait]
impl Surface for Discord {
    fn kind(&self) -> SurfaceKind {
        SurfaceKind::Discord
    }

    fn waiting_calls(&self) -> u64 {
        self.pacing.waiting()
    }

    fn rate_limited_calls(&self) -> u64 {
        self.pacing.refusals()
    }

    async fn announce(&self, text: &str) -> Result<(), DeliveryError> {
        let msg = CreateMessage::new()
            .content(format!("⚠️ {}", card::escape(text)))
            .allowed_mentions(CreateAllowedMentions::new());
        let body = serde_json::to_value(msg).expect("message serializes");
        self.call(
            Method::POST,
            &messages_path(&self.config.channel_id)?,
            Some(&body),
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
        _queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        self.post_note_inner(card, note, maybe_posted).await
    }

    async fn post_digest(
        &self,
        digest: &crate::domain::handoff::Digest,
        maybe_posted: bool,
        _queued_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        self.post_digest_inner(digest, maybe_posted).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_gated_like_discord_buckets_them() {
        assert_eq!(
            route_key(&Method::POST, "/channels/1100000000000000010/messages"),
            "POST /channels/1100000000000000010/messages"
        );
        assert_eq!(
            route_key(
                &Method::PATCH,
                "/channels/1100000000000000010/messages/1300000000000000001"
            ),
            "PATCH /channels/1100000000000000010/messages/{id}"
        );
        assert_eq!(
            route_key(&Method::GET, "/channels/7/messages?limit=50"),
            "GET /channels/7/messages"
        );
    }
}
