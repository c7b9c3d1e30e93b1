//! Bluesky's Jetstream as a push channel: every public post on the network as JSON over
//! one websocket (`/subscribe?wantedCollections=app.bsky.feed.post`), matched on the desk
//! (`recognise`), its authors looked up (`profiles`), and each post of ours handed over
//! as the very mention the notifications poll or the keyword search would have made of
//! it, so the store's dedupe keys absorb whichever comes second.
//!
//! Position: Jetstream's `time_us`. Every batch carries the `time_us` of the last event
//! read, and while only other people's posts flow a checkpoint (no mentions) goes out at
//! most every 2 s, so a reconnect replays little; it reconnects from the stored position
//! minus 5 s (Jetstream's advice: positions are roughly portable between instances), and
//! what comes again is absorbed by the dedupe keys. No credential goes to Jetstream: it
//! needs none, and it is a third party's service.
//!
//! Liveness: with every post on the network flowing, Jetstream is never silent for long;
//! no frame for `stream_quiet_secs` means the connection is dead.

use super::poll::record_mention;
use super::profiles::{ProfileCache, CACHE_ENTRIES, PER_CALL};
use super::recognise::{read_frame, NewPost, Recogniser, Seen};
use super::Bluesky;
use crate::config::JetstreamConfig;
use crate::ports::{MentionStream, StreamError, StreamEvent};
use crate::wire::hints::{header_wait, HintForm};
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt};
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest, protocol::WebSocketConfig, Message,
};

/// How far back a reconnect starts before the stored position.
pub const REWIND: Duration = Duration::from_secs(5);
/// The most often a checkpoint (a position without mentions) is handed over.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// The largest message asked for and accepted (a post is a few KB at most).
pub const MAX_MESSAGE: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Positions further ahead of our clock than this are not believed.
const FUTURE_SLACK: Duration = Duration::from_secs(10 * 60);
/// How long the last batch of a connection that ended may wait for the desk to take it.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a post of ours waits for others already arrived to join its batch: under a
/// flood the socket always has more, and a mention must not wait for 25.
const GATHER_FOR: Duration = Duration::from_millis(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The Bluesky source's Jetstream subscription (see [`Bluesky`]'s `stream()`).
pub struct Jetstream {
    source: Weak<Bluesky>,
    config: JetstreamConfig,
    keywords: Vec<String>,
    cursor_key: String,
    profiles: Mutex<ProfileCache>,
}

impl Jetstream {
    pub(super) fn new(
        source: Weak<Bluesky>,
        config: JetstreamConfig,
        keywords: Vec<String>,
        source_cursor_key: &str,
    ) -> Jetstream {
        Jetstream {
            source,
            config,
            keywords,
            cursor_key: format!("{source_cursor_key}:jetstream"),
            profiles: Mutex::new(ProfileCache::new(CACHE_ENTRIES)),
        }
    }

    /// The subscription URL from `from` (a `time_us`), or live.
    fn subscribe_url(&self, from: Option<u64>) -> Result<String, StreamError> {
        let mut url = url::Url::parse(&self.config.url).map_err(|e| StreamError::Refused {
            reason: format!(
                "{} is not a URL we can subscribe at: {e} (check bluesky.jetstream_url)",
                self.config.url
            ),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("wantedCollections", "app.bsky.feed.post");
            q.append_pair("maxMessageSizeBytes", &MAX_MESSAGE.to_string());
            if let Some(from) = from {
                q.append_pair("cursor", &from.to_string());
            }
        }
        Ok(url.into())
    }

    async fn connect(&self, from: Option<u64>) -> Result<Socket, StreamError> {
        let url = self.subscribe_url(from)?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| StreamError::Refused {
                reason: format!(
                    "{} is not a URL we can subscribe at: {e} (check bluesky.jetstream_url)",
                    self.config.url
                ),
            })?;
        request.headers_mut().insert(
            "user-agent",
            reqwest::header::HeaderValue::from_static(concat!(
                "mentionbridge/",
                env!("CARGO_PKG_VERSION")
            )),
        );
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        match timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true),
        )
        .await
        {
            Err(_) => Err(StreamError::Dropped {
                after: None,
                reason: format!(
                    "Jetstream at {} did not answer within {} s",
                    self.config.url,
                    CONNECT_TIMEOUT.as_secs()
                ),
            }),
            Ok(Err(e)) => Err(self.refusal(e)),
            Ok(Ok((socket, _))) => Ok(socket),
        }
    }

    /// Why a connection could not be made, in the port's terms.
    fn refusal(&self, e: tungstenite::Error) -> StreamError {
        let url = &self.config.url;
        let tungstenite::Error::Http(answer) = e else {
            return StreamError::Dropped {
                after: None,
                reason: format!("Jetstream at {url} could not be reached: {}", words(&e)),
            };
        };
        let status = answer.status();
        let said = answer
            .body()
            .as_deref()
            .map(|b| crate::sources::http::body_excerpt(b).trim().to_string())
            .filter(|s| !s.is_empty())
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        let code = status.as_u16();
        if code == 404 {
            return StreamError::Unsupported {
                reason: format!("Jetstream at {url} answered 404{said}: there is no subscription there (check bluesky.jetstream_url)"),
            };
        }
        if code == 429 || code == 408 || status.is_server_error() {
            return StreamError::Dropped {
                after: header_wait(
                    answer.headers(),
                    "retry-after",
                    HintForm::RetryAfter,
                    Utc::now(),
                ),
                reason: format!("Jetstream at {url} answered {code}{said}"),
            };
        }
        StreamError::Refused {
            reason: format!(
                "Jetstream at {url} refused the subscription ({code}{said}); check bluesky.jetstream_url"
            ),
        }
    }
}

/// A websocket failure in a few words (tungstenite's own are fine; none carries a URL).
fn words(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Capacity(_) => format!(
            "a message was larger than the {} MiB we accept",
            MAX_MESSAGE >> 20
        ),
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => "the connection was cut".into(),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl MentionStream for Jetstream {
    fn describe(&self) -> String {
        format!("bluesky jetstream {}", self.config.url)
    }

    fn cursor_key(&self) -> Option<String> {
        Some(self.cursor_key.clone())
    }

    fn reconcile_every(&self) -> Duration {
        self.config.reconcile_every
    }

    async fn run(&self, cursor: Option<String>, events: mpsc::Sender<StreamEvent>) -> StreamError {
        let Some(source) = self.source.upgrade() else {
            return StreamError::Dropped {
                after: None,
                reason: "the Bluesky source has shut down".into(),
            };
        };
        let brand = source.did();
        if !super::recognise::is_did(&brand) {
            return StreamError::Refused {
                reason: "the Bluesky session names no DID for the brand: nothing on Jetstream can be recognised as ours".into(),
            };
        }
        let stored = cursor.as_deref().and_then(|c| c.trim().parse::<u64>().ok());
        if cursor.is_some() && stored.is_none() {
            tracing::warn!("unreadable Jetstream position in the store; reading from now on");
        }
        let from = stored.map(|c| c.saturating_sub(REWIND.as_micros() as u64));
        let mut socket = match self.connect(from).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        tracing::info!(url = %self.config.url, cursor = ?from, "Jetstream subscribed");
        if events.send(StreamEvent::Connected).await.is_err() {
            return desk_gone();
        }
        let mut reading = Reading {
            stream: self,
            source: &source,
            recogniser: Recogniser::new(&brand, &self.keywords),
            account: source.handle(),
            events: &events,
            position: stored,
            handed_over: stored,
            handed_over_at: Instant::now(),
            pending: Vec::new(),
        };
        let why = reading.read(&mut socket).await;
        reading.hand_over_last().await;
        why
    }
}

fn desk_gone() -> StreamError {
    StreamError::Dropped {
        after: None,
        reason: "the desk stopped taking Jetstream's events".into(),
    }
}

/// One connection's reading: what was read, what was handed over.
struct Reading<'a> {
    stream: &'a Jetstream,
    source: &'a Bluesky,
    recogniser: Recogniser,
    /// The brand's handle, the mentions' account.
    account: String,
    events: &'a mpsc::Sender<StreamEvent>,
    /// The `time_us` of the last event read (never below the stored position).
    position: Option<u64>,
    /// The position last handed to the desk, and when.
    handed_over: Option<u64>,
    handed_over_at: Instant,
    /// Posts of ours read and not handed over yet, with their `time_us`.
    pending: Vec<(u64, NewPost)>,
}

impl Reading<'_> {
    /// Reads until the connection ends, and says why.
    async fn read(&mut self, socket: &mut Socket) -> StreamError {
        let quiet = self.stream.config.quiet;
        loop {
            let next = match timeout(quiet, socket.next()).await {
                Err(_) => {
                    return StreamError::Dropped {
                        after: None,
                        reason: format!(
                            "Jetstream at {} went quiet: no event for {} s",
                            self.stream.config.url,
                            quiet.as_secs_f64()
                        ),
                    }
                }
                Ok(next) => next,
            };
            if let Err(why) = self.take(next) {
                return why;
            }
            // What has already arrived joins the batch, so a burst costs one lookup of
            // its authors rather than one each.
            let gather_until = Instant::now() + GATHER_FOR;
            while !self.pending.is_empty()
                && self.pending.len() < PER_CALL
                && Instant::now() < gather_until
            {
                let Some(next) = socket.next().now_or_never() else {
                    break;
                };
                if let Err(why) = self.take(next) {
                    return why;
                }
            }
            if let Err(why) = self.hand_over(false).await {
                return why;
            }
        }
    }

    /// One message of the socket (None: it closed).
    fn take(
        &mut self,
        next: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), StreamError> {
        let url = &self.stream.config.url;
        match next {
            None => Err(StreamError::Dropped {
                after: None,
                reason: format!("Jetstream at {url} closed the connection"),
            }),
            Some(Err(e)) => Err(StreamError::Dropped {
                after: None,
                reason: format!("Jetstream at {url}: {}", words(&e)),
            }),
            Some(Ok(Message::Close(frame))) => Err(StreamError::Dropped {
                after: None,
                reason: match frame {
                    Some(f) => format!(
                        "Jetstream at {url} closed the connection ({} {})",
                        u16::from(f.code),
                        f.reason.chars().take(120).collect::<String>()
                    ),
                    None => format!("Jetstream at {url} closed the connection"),
                },
            }),
            Some(Ok(Message::Text(text))) => {
                self.frame(text.as_str());
                Ok(())
            }
            Some(Ok(Message::Binary(bytes))) => {
                tracing::debug!(
                    bytes = bytes.len(),
                    "skipping a binary Jetstream frame (no compression was asked for)"
                );
                Ok(())
            }
            Some(Ok(_)) => Ok(()), // pings are answered by the websocket layer
        }
    }

    fn frame(&mut self, text: &str) {
        let Some((time_us, seen)) = read_frame(text, &self.recogniser) else {
            tracing::debug!(
                bytes = text.len(),
                "skipping a Jetstream frame we cannot read"
            );
            return;
        };
        let now_us = Utc::now().timestamp_micros().max(0) as u64;
        if time_us <= now_us + FUTURE_SLACK.as_micros() as u64 {
            self.position = Some(self.position.map_or(time_us, |p| p.max(time_us)));
        } else {
            tracing::debug!(
                time_us,
                "a Jetstream event from the future; its position is not kept"
            );
        }
        match seen {
            Seen::Post(post) => self.pending.push((time_us, post)),
            Seen::Identity { did, handle } => self
                .stream
                .profiles
                .lock()
                .expect("profile cache lock")
                .identity(&did, handle.as_deref()),
            Seen::Other => {}
        }
    }

    /// Hand the pending posts over as mentions with the position; with none, a
    /// checkpoint when the position moved and the last one is old enough (or `now`).
    async fn hand_over(&mut self, now: bool) -> Result<(), StreamError> {
        let moved = self.position > self.handed_over;
        if self.pending.is_empty()
            && !(moved && (now || self.handed_over_at.elapsed() >= CHECKPOINT_EVERY))
        {
            return Ok(());
        }
        let mentions = self.mentions().await;
        let event = StreamEvent::Mentions {
            mentions,
            cursor: self.position.map(|p| p.to_string()),
        };
        self.events.send(event).await.map_err(|_| desk_gone())?;
        self.handed_over = self.position;
        self.handed_over_at = Instant::now();
        Ok(())
    }

    /// The connection ended: what was read still reaches the desk, if it takes it soon.
    async fn hand_over_last(&mut self) {
        if timeout(HANDOVER_TIMEOUT, self.hand_over(true))
            .await
            .is_err()
        {
            tracing::debug!(
                "the desk did not take Jetstream's last batch; it comes again on reconnect"
            );
        }
    }

    async fn mentions(&mut self) -> Vec<crate::domain::Mention> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let authors: Vec<String> = self.pending.iter().map(|(_, p)| p.author.clone()).collect();
        let profiles = self.source.profiles(&self.stream.profiles, &authors).await;
        let mut mentions = Vec::new();
        for (time_us, post) in self.pending.drain(..) {
            let Some(author) = profiles.get(&post.author) else {
                continue; // every author has a profile, if only its DID
            };
            let seen_at = i64::try_from(time_us)
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .unwrap_or_else(Utc::now);
            match record_mention(
                &self.account,
                &post.uri,
                &post.cid,
                author,
                &post.record,
                seen_at,
            ) {
                Some(m) => mentions.push(m),
                None => {
                    tracing::debug!(uri = %post.uri, "a post of ours on Jetstream is not a post record we can read")
                }
            }
        }
        mentions
    }
}
