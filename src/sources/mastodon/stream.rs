//! Mentions pushed by the server as they happen: Mastodon's streaming API over a
//! websocket (`user:notification`, plus one hashtag stream per keyword watch where the
//! server publishes them), read into the same mentions the poll makes, so the two
//! dedupe against each other in the store.
//!
//! Each `run` asks the instance where it streams, opens the websocket with the token in
//! `Authorization: Bearer` (Mastodon prefers it; GoToSocial takes it when no
//! `access_token` query or `Sec-WebSocket-Protocol` token is given), subscribes, says
//! `Connected` and forwards mentions until the connection ends. The stream has no
//! position to resume from: the desk's catch-up poll after `Connected` covers what was
//! said while it was down. Frames are outside data: anything that is not an event we
//! read (binary frames, broken JSON, a payload that is not a string, unknown events) is
//! skipped, never a panic; a frame larger than [`LARGEST_FRAME`] ends the connection.
//! Server-sent events (`/api/v1/streaming/user/notification`) are not used: every
//! server we read streams over websockets and GoToSocial only does that.

use super::endpoint::{self, Endpoint, Flavour};
use super::{Account, FeedItem, Mastodon, Notification, Status, LIMITS};
use crate::config::{MastodonConfig, Secret};
use crate::domain::Mention;
use crate::ports::{MentionStream, StreamError, StreamEvent};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// No Mastodon event comes near this (a status with its account is a few kilobytes);
/// a larger frame or message is refused by the websocket layer and ends the connection.
pub const LARGEST_FRAME: usize = 1 << 20;
/// TCP, TLS and the upgrade together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a server's own words (`X-Error-Message`, a close reason, an error frame)
/// that reaches a log line or a reason.
const SERVER_WORDS: usize = 200;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The Mastodon source's push channel; built by [`Mastodon::connect`] when
/// `mastodon.streaming` is on and returned by `Source::stream`.
pub struct MastodonStream {
    http: reqwest::Client,
    instance: String,
    token: Secret,
    me: Account,
    hashtags: Vec<String>,
    quiet: Duration,
    reconcile: Duration,
    /// The websocket URL last discovered (before the first: the instance's own host).
    shown: Mutex<String>,
}

impl MastodonStream {
    pub(super) fn new(http: reqwest::Client, config: &MastodonConfig, me: Account) -> Self {
        let guess = url::Url::parse(&config.instance_url)
            .ok()
            .and_then(|u| endpoint::endpoint_from(&u, &serde_json::Value::Null).ok())
            .map(|e| e.url.to_string())
            .unwrap_or_else(|| format!("{}/api/v1/streaming", config.instance_url));
        MastodonStream {
            http,
            instance: config.instance_url.clone(),
            token: config.access_token.clone(),
            me,
            hashtags: config.hashtags.clone(),
            quiet: config.stream_quiet,
            reconcile: config.reconcile_every,
            shown: Mutex::new(guess),
        }
    }

    /// Open the websocket, subscribed to the notifications at connect.
    async fn open(&self, endpoint: &Endpoint) -> Result<Socket, StreamError> {
        let mut url = endpoint.url.clone();
        url.query_pairs_mut()
            .append_pair("stream", "user:notification");
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| StreamError::Refused {
                reason: format!("cannot open a websocket to {}: {e}", endpoint.url),
            })?;
        let bearer = format!("Bearer {}", self.token.expose());
        let Ok(mut bearer) = reqwest::header::HeaderValue::from_str(&bearer) else {
            return Err(StreamError::Refused {
                reason: "the token in mastodon.access_token cannot be sent in a header".into(),
            });
        };
        bearer.set_sensitive(true);
        request.headers_mut().insert("authorization", bearer);
        let limits = WebSocketConfig::default()
            .max_message_size(Some(LARGEST_FRAME))
            .max_frame_size(Some(LARGEST_FRAME));
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(limits), true);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => Err(StreamError::Dropped {
                after: None,
                reason: format!("the websocket upgrade at {} timed out", endpoint.url),
            }),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(answer))) => Err(self.refusal(endpoint, &answer)),
            Ok(Err(e)) => Err(StreamError::Dropped {
                after: None,
                reason: format!("the websocket at {} could not be opened: {e}", endpoint.url),
            }),
        }
    }

    /// What an answer other than `101 Switching Protocols` to the upgrade means.
    fn refusal(
        &self,
        endpoint: &Endpoint,
        answer: &tungstenite::http::Response<Option<Vec<u8>>>,
    ) -> StreamError {
        let status = answer.status();
        let said = answer
            .headers()
            .get("x-error-message")
            .map(|v| self.server_words(&String::from_utf8_lossy(v.as_bytes())))
            .filter(|s| !s.is_empty())
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        let what = format!(
            "Mastodon answered {} to the websocket upgrade at {}{said}",
            status.as_u16(),
            endpoint.url
        );
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StreamError::Refused {
                reason: format!("{what} (check the token in mastodon.access_token and its read:notifications scope)"),
            },
            StatusCode::NOT_FOUND => StreamError::Unsupported {
                reason: format!("{what}: this server has no streaming API"),
            },
            s if crate::sources::http::is_transient(s) => StreamError::Dropped {
                after: LIMITS.retry_wait(s, answer.headers(), chrono::Utc::now()),
                reason: what,
            },
            s if s.is_redirection() => StreamError::Unsupported {
                reason: format!("{what}: the server redirects its streaming API, which we do not follow"),
            },
            _ => StreamError::Refused { reason: what },
        }
    }

    /// Subscribe to each keyword watch's hashtag, where the server publishes them.
    async fn subscribe(&self, socket: &mut Socket, endpoint: &Endpoint) -> Result<(), StreamError> {
        if endpoint.flavour == Flavour::GoToSocial {
            if !self.hashtags.is_empty() {
                tracing::info!(
                    hashtags = self.hashtags.len(),
                    "GoToSocial streams no hashtags: keyword watches stay polled"
                );
            }
            return Ok(());
        }
        for tag in &self.hashtags {
            let frame = serde_json::json!({"type": "subscribe", "stream": "hashtag", "tag": tag});
            socket
                .send(Message::text(frame.to_string()))
                .await
                .map_err(|e| StreamError::Dropped {
                    after: None,
                    reason: format!(
                        "the websocket at {} dropped while subscribing: {e}",
                        endpoint.url
                    ),
                })?;
        }
        Ok(())
    }

    /// Forward mentions until the connection ends; return why it did.
    async fn listen(
        &self,
        mut socket: Socket,
        endpoint: &Endpoint,
        events: &mpsc::Sender<StreamEvent>,
    ) -> StreamError {
        let dropped = |reason: String| StreamError::Dropped {
            after: None,
            reason: format!("the websocket at {} {reason}", endpoint.url),
        };
        let mut server_complained = false;
        loop {
            // Any frame is life, the server's pings included (answered by the websocket
            // layer as it reads).
            let message = match tokio::time::timeout(self.quiet, socket.next()).await {
                Err(_) => {
                    return dropped(format!(
                        "went quiet: nothing for {} s",
                        self.quiet.as_secs_f64()
                    ))
                }
                Ok(None) => return dropped("ended without a close frame".into()),
                Ok(Some(Err(e))) => return dropped(format!("failed: {e}")),
                Ok(Some(Ok(message))) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    let said = frame
                        .map(|f| {
                            format!(" ({} {})", u16::from(f.code), self.server_words(&f.reason))
                        })
                        .unwrap_or_default();
                    return dropped(format!("was closed by the server{said}"));
                }
                Message::Binary(bytes) => {
                    tracing::debug!(bytes = bytes.len(), "Mastodon sent a binary frame; skipped");
                    continue;
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            match read_frame(&self.me, &text) {
                Frame::Mention(mention) => {
                    let event = StreamEvent::Mentions {
                        mentions: vec![*mention],
                        cursor: None,
                    };
                    if events.send(event).await.is_err() {
                        return dropped("was left: the desk stopped listening".into());
                    }
                }
                Frame::ServerError(said) => {
                    if !server_complained {
                        server_complained = true;
                        tracing::warn!(said = %self.server_words(&said), "Mastodon's stream sent an error");
                    }
                }
                Frame::Skipped(why) => tracing::debug!(why, "Mastodon stream frame skipped"),
            }
        }
    }

    /// A server's words made fit for a log line or a reason: one line, printable, short,
    /// and never the token.
    fn server_words(&self, said: &str) -> String {
        let flat: String = said
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(SERVER_WORDS)
            .collect();
        let token = self.token.expose();
        if token.is_empty() {
            flat
        } else {
            flat.replace(token, "***")
        }
    }
}

#[async_trait]
impl MentionStream for MastodonStream {
    fn describe(&self) -> String {
        let url = self.shown.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!("mastodon websocket {url}")
    }

    fn reconcile_every(&self) -> Duration {
        self.reconcile
    }

    async fn run(&self, _cursor: Option<String>, events: mpsc::Sender<StreamEvent>) -> StreamError {
        let endpoint = match endpoint::discover(&self.http, &self.instance, &self.token).await {
            Ok(e) => e,
            Err(e) => return e,
        };
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = endpoint.url.to_string();
        let mut socket = match self.open(&endpoint).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        if let Err(e) = self.subscribe(&mut socket, &endpoint).await {
            return e;
        }
        tracing::info!(stream = %self.describe(), hashtags = self.hashtags.len(), "Mastodon stream connected");
        if events.send(StreamEvent::Connected).await.is_err() {
            return StreamError::Dropped {
                after: None,
                reason: "the desk stopped listening".into(),
            };
        }
        self.listen(socket, &endpoint, &events).await
    }
}

/// What one text frame of the stream is to the desk.
#[derive(Debug)]
enum Frame {
    /// A mention exactly as the poll reads it.
    Mention(Box<Mention>),
    /// `{"error": …}`: the server refused something (a subscription, mostly).
    ServerError(String),
    /// Not a mention (another event, another kind of notification, our own status) or
    /// not readable; the reason names which, never the content.
    Skipped(&'static str),
}

/// The envelope every event comes in: `payload` is JSON again, as a string.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Read one text frame for the account `me`: a `notification` of type `mention`, or an
/// `update` on a hashtag stream, becomes the mention the poll makes of it.
fn read_frame(me: &Account, text: &str) -> Frame {
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else {
        return Frame::Skipped("not an event envelope");
    };
    if let Some(error) = envelope.error {
        return Frame::ServerError(match error {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
    }
    let on_hashtag = envelope
        .stream
        .as_ref()
        .and_then(|s| s.get(0))
        .and_then(|s| s.as_str())
        .is_some_and(|s| s == "hashtag" || s == "hashtag:local");
    match envelope.event.as_deref() {
        Some("notification") => mention_in::<Notification>(me, envelope.payload.as_ref()),
        Some("update") if on_hashtag => mention_in::<Status>(me, envelope.payload.as_ref()),
        Some("update") => Frame::Skipped("an update outside the hashtag streams"),
        Some(_) => Frame::Skipped("an event the desk does not read"),
        None => Frame::Skipped("no event"),
    }
}

/// The mention in an event's payload (JSON in a string) of feed items `T`, read as the
/// poll reads that feed.
fn mention_in<T: FeedItem>(me: &Account, payload: Option<&serde_json::Value>) -> Frame {
    let Some(serde_json::Value::String(payload)) = payload else {
        return Frame::Skipped("payload is not a JSON string");
    };
    match serde_json::from_str::<T>(payload) {
        Ok(item) => item
            .hit()
            .and_then(|s| Mastodon::mention_of(me, s))
            .map_or(Frame::Skipped("not a mention for this account"), |m| {
                Frame::Mention(Box::new(m))
            }),
        Err(_) => Frame::Skipped("payload is not what its event says"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ME: &str = "109000000000000001";

    fn status(id: &str, author_id: &str, visibility: &str, content: &str) -> serde_json::Value {
        json!({
            "id": id,
            "created_at": "2026-01-02T03:04:05.000Z",
            "url": format!("https://social.example/@alice/{id}"),
            "uri": format!("https://social.example/users/alice/statuses/{id}"),
            "visibility": visibility,
            "content": content,
            "account": {"id": author_id, "acct": "alice", "username": "alice", "display_name": "Alice"}
        })
    }

    fn envelope(stream: serde_json::Value, event: &str, payload: &serde_json::Value) -> String {
        json!({"stream": stream, "event": event, "payload": payload.to_string()}).to_string()
    }

    fn read(text: &str) -> Frame {
        let me = Account {
            id: ME.into(),
            acct: "brand".into(),
            username: String::new(),
            display_name: String::new(),
            url: None,
            followers_count: None,
        };
        read_frame(&me, text)
    }

    #[test]
    fn a_mention_notification_reads_as_the_poll_reads_it() {
        let n = json!({"id": "77", "type": "mention", "status": status("5", "42", "public", "<p>&lt;!channel&gt; help</p>")});
        let Frame::Mention(m) = read(&envelope(json!(["user:notification"]), "notification", &n))
        else {
            panic!("no mention");
        };
        let page = serde_json::to_vec(&json!([n])).unwrap();
        let polled = super::super::mentions_in_notifications("brand", &page).unwrap();
        assert_eq!(polled, vec![(*m).clone()]);
        assert_eq!(m.text, "<!channel> help");
        assert_eq!(m.dedupe_keys(), polled[0].dedupe_keys());
    }

    #[test]
    fn frames_that_are_no_mention_of_ours_are_skipped() {
        let own = json!({"id": "1", "type": "mention", "status": status("5", ME, "public", "x")});
        let fav =
            json!({"id": "2", "type": "favourite", "status": status("5", "42", "public", "x")});
        let direct_tag = status("6", "42", "direct", "x");
        for text in [
            envelope(json!(["user:notification"]), "notification", &own),
            envelope(json!(["user"]), "notification", &fav),
            envelope(json!(["hashtag", "brand"]), "update", &direct_tag),
            envelope(json!(["user"]), "update", &status("7", "42", "public", "x")),
            envelope(json!(["user"]), "delete", &json!("5")),
            json!({"stream": ["user"], "event": "filters_changed"}).to_string(),
            json!({"stream": ["user"], "event": "notification", "payload": {"id": "1"}})
                .to_string(),
            json!({"stream": ["user"], "event": "notification", "payload": "{not json"})
                .to_string(),
            json!({"stream": 5, "event": "update", "payload": "[]"}).to_string(),
            json!({"event": 5}).to_string(),
            "[]".into(),
            "garbage".into(),
            String::new(),
        ] {
            assert!(matches!(read(&text), Frame::Skipped(_)), "{text}");
        }
        assert!(matches!(
            read(r#"{"error":"Unknown stream type"}"#),
            Frame::ServerError(e) if e == "Unknown stream type"
        ));
    }

    #[test]
    fn a_hashtag_update_is_the_public_status_as_the_hashtag_poll_reads_it() {
        let s = status("9", "42", "public", "<p>#brand is down</p>");
        let Frame::Mention(m) = read(&envelope(json!(["hashtag", "brand"]), "update", &s)) else {
            panic!("no mention");
        };
        assert_eq!(m.remote_id, "9");
        assert_eq!(m.text, "#brand is down");
        assert_eq!(m.account, "brand");
    }
}
