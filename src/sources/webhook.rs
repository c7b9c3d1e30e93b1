//! The inbound webhook for listening tools (Brandwatch, Talkwalker, Mention, Zapier or n8n
//! flows): `POST /ingest/mentions`, signed with HMAC-SHA256 over `timestamp + "." + body`
//! (five-minute window), answered 202 only once the mentions are durably stored, and
//! deduplicated on (source, id). The schema is in `docs/webhook.md`. The route is served
//! here (`routes`); the mentions go to the desk through the `Intake` port.

use crate::config::{HttpLimits, Secret};
use crate::domain::{Author, Mention, Platform, Visibility};
use crate::ports::Intake;
use crate::wire::freshness::{check_request_age, Staleness};
use crate::wire::http::body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;
use thiserror::Error;

pub const PATH: &str = "/ingest/mentions";
pub const SIGNATURE_HEADER: &str = "x-mentionbridge-signature";
pub const TIMESTAMP_HEADER: &str = "x-mentionbridge-timestamp";
/// At most this many mentions per request.
pub const MAX_BATCH: usize = 100;

/// Why a delivery was refused, as the sender will read it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IngestError {
    #[error("no webhook secret is configured: every delivery is refused")]
    NoKey,
    #[error("missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")]
    Unsigned,
    #[error("{TIMESTAMP_HEADER} is not a Unix time in seconds")]
    BadTimestamp,
    #[error("request is {0} s away from now (more than 5 minutes): refused as a possible replay")]
    Stale(i64),
    #[error("signature does not match (expected sha256=<hex of HMAC-SHA256(secret, timestamp + \".\" + body)>)")]
    BadSignature,
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("mention {index}: {message}")]
    Invalid { index: usize, message: String },
    #[error("at most {MAX_BATCH} mentions per request, got {0}")]
    TooMany(usize),
}

impl From<Staleness> for IngestError {
    fn from(s: Staleness) -> Self {
        match s {
            Staleness::NotATime => IngestError::BadTimestamp,
            Staleness::TooOld(skew) => IngestError::Stale(skew),
        }
    }
}

pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), IngestError> {
    // Never verify against an empty key: anyone can compute that signature.
    if secret.trim().len() < crate::config::WEBHOOK_SECRET_MIN_LEN {
        return Err(IngestError::NoKey);
    }
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(IngestError::Unsigned);
    };
    check_request_age(ts, now_unix)?;
    let expected = sig
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(IngestError::BadSignature)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(ts.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| IngestError::BadSignature)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAuthor {
    handle: String,
    name: Option<String>,
    profile_url: Option<String>,
    id: Option<String>,
    /// The author's follower count, if the tool knows it (anything but a whole number
    /// is ignored).
    #[serde(default, deserialize_with = "crate::sources::follower_count")]
    followers: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMention {
    source: String,
    id: String,
    platform: String,
    url: String,
    text: String,
    created_at: DateTime<Utc>,
    author: WireAuthor,
    language: Option<String>,
    remote_id: Option<String>,
    in_reply_to: Option<String>,
    #[serde(default = "public")]
    visibility: String,
}

fn public() -> String {
    "public".into()
}

/// Parse and validate a delivery into mentions, naming the first problem precisely.
pub fn parse(body: &[u8]) -> Result<Vec<Mention>, IngestError> {
    // Parse as generic JSON first, so a syntax error names its line and column, and a
    // schema error names the mention and the field.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| IngestError::NotJson(e.to_string()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    if items.len() > MAX_BATCH {
        return Err(IngestError::TooMany(items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let invalid = |message: String| IngestError::Invalid { index, message };
            let wire: WireMention =
                serde_json::from_value(item).map_err(|e| invalid(e.to_string()))?;
            to_mention(wire).map_err(invalid)
        })
        .collect()
}

fn to_mention(w: WireMention) -> Result<Mention, String> {
    let required = [
        ("source", &w.source),
        ("id", &w.id),
        ("url", &w.url),
        ("author.handle", &w.author.handle),
    ];
    for (field, value) in required {
        if value.trim().is_empty() {
            return Err(format!("`{field}` must not be empty"));
        }
    }
    if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
        return Err(format!("`url` must be an http(s) URL, got {:?}", w.url));
    }
    let visibility = match w.visibility.as_str() {
        "public" => Visibility::Public,
        "unlisted" => Visibility::Unlisted,
        "private" => Visibility::Private,
        "direct" => Visibility::Direct,
        other => {
            return Err(format!(
                "`visibility` must be public, unlisted, private or direct, got {other:?}"
            ))
        }
    };
    // We can only answer natively when the sender gives the platform's own post id.
    let named = Platform::from_name(&w.platform);
    let (platform, network) = match (named, &w.remote_id) {
        (Platform::Other, _) | (_, None) => (Platform::Other, Some(pretty(&w.platform))),
        (p, Some(_)) => (p, None),
    };
    let handle = w.author.handle.trim_start_matches('@').to_string();
    Ok(Mention {
        platform,
        network,
        // The account names the tool; with `external_id` (the tool's own id) it is the
        // delivery's key, so a retry changes nothing whatever else its body says. The
        // remote id is the post's native id when known, so a poller's mention of the
        // same post meets this one (`Mention::dedupe_keys`).
        account: format!("webhook:{}", w.source.trim()),
        remote_id: w
            .remote_id
            .clone()
            .unwrap_or_else(|| w.id.trim().to_string()),
        url: w.url,
        author: Author {
            name: w.author.name.unwrap_or_else(|| handle.clone()),
            profile_url: w.author.profile_url.unwrap_or_default(),
            id: w.author.id,
            handle,
            followers: w.author.followers,
        },
        text: w.text,
        language: w.language,
        created_at: w.created_at,
        in_reply_to: w.in_reply_to,
        visibility,
        reply_context: None,
        external_id: Some(w.id.trim().to_string()),
        detected_language: None,
    })
}

fn pretty(name: &str) -> String {
    let name = name.trim();
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_else(|| "Unknown".into())
}

/// What the webhook route needs: the signing key and where the mentions go.
#[derive(Clone)]
struct Webhook {
    secret: Secret,
    intake: Arc<dyn Intake>,
}

/// `POST /ingest/mentions`, with the posted-body limits.
pub fn routes(secret: Secret, intake: Arc<dyn Intake>, limits: &HttpLimits) -> Router {
    body::posted(Router::new().route(PATH, post(ingest_mentions)), limits)
        .with_state(Webhook { secret, intake })
}

async fn ingest_mentions(
    State(webhook): State<Webhook>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refuse = |status: StatusCode, e: IngestError| {
        tracing::warn!(reason = %e, "refused a webhook delivery");
        (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
    };
    if let Err(e) = verify(
        webhook.secret.expose(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        return refuse(StatusCode::UNAUTHORIZED, e);
    }
    let mentions = match parse(&body) {
        Ok(m) => m,
        Err(e @ IngestError::NotJson(_)) => return refuse(StatusCode::BAD_REQUEST, e),
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    match webhook.intake.take_in("webhook", &mentions).await {
        // Accepted only now: the mentions are on disk and their cards are queued.
        Ok(done) => {
            tracing::info!(
                received = mentions.len(),
                new_tickets = done.new_tickets.len(),
                followups = done.followups.len(),
                "webhook mentions stored"
            );
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "received": mentions.len(),
                    "new_tickets": done.new_tickets.iter().map(|t| t.0).collect::<Vec<_>>(),
                    "followups": done.followups.iter().map(|t| t.0).collect::<Vec<_>>(),
                    "duplicates": done.duplicates,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook mentions could not be stored");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": "could not store the mentions; retry later" })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "webhook-secret-0123456789";

    fn sign(ts: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    const ONE: &str = r#"{"source":"brandwatch","id":"bw-1","platform":"instagram","url":"https://instagram.com/p/abc","text":"love it","created_at":"2026-11-25T10:00:00Z","author":{"handle":"@ana_ig","name":"Ana"}}"#;

    #[test]
    fn signatures_are_checked_with_a_five_minute_window() {
        let ts = "1800000000";
        assert_eq!(
            verify(
                SECRET,
                Some(ts),
                Some(&sign(ts, ONE)),
                ONE.as_bytes(),
                1800000100
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                SECRET,
                Some(ts),
                Some(&sign(ts, ONE)),
                ONE.replace("love", "hate").as_bytes(),
                1800000100
            ),
            Err(IngestError::BadSignature)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(ts),
                Some(&sign(ts, ONE)),
                ONE.as_bytes(),
                1800000301
            ),
            Err(IngestError::Stale(301))
        );
        assert_eq!(
            verify(SECRET, None, None, ONE.as_bytes(), 0),
            Err(IngestError::Unsigned)
        );
    }

    #[test]
    fn an_empty_or_short_key_verifies_nothing_not_even_its_own_signature() {
        let ts = "1800000000";
        for key in ["", "   ", "short-key"] {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(format!("{ts}.{ONE}").as_bytes());
            let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(
                verify(key, Some(ts), Some(&sig), ONE.as_bytes(), 1800000000),
                Err(IngestError::NoKey)
            );
        }
    }

    #[test]
    fn a_mention_from_a_network_we_cannot_answer_on_is_kept_as_other() {
        let m = parse(ONE.as_bytes()).unwrap().remove(0);
        assert_eq!(m.platform, Platform::Other);
        assert_eq!(m.network_label(), "Instagram");
        assert_eq!(m.author.handle, "ana_ig");
        assert_eq!(m.account, "webhook:brandwatch");
        assert_eq!(m.remote_id, "bw-1");
    }

    #[test]
    fn a_native_post_id_makes_a_mention_answerable_on_its_platform() {
        let body = ONE
            .replace("\"instagram\"", "\"mastodon\"")
            .replace("\"text\"", "\"remote_id\":\"1099\",\"text\"");
        let m = parse(body.as_bytes()).unwrap().remove(0);
        assert_eq!(
            (m.platform, m.remote_id.as_str()),
            (Platform::Mastodon, "1099")
        );
        // Without the native id it cannot be answered there.
        let m = parse(ONE.replace("\"instagram\"", "\"mastodon\"").as_bytes())
            .unwrap()
            .remove(0);
        assert_eq!(m.platform, Platform::Other);
    }

    #[test]
    fn malformed_deliveries_say_exactly_what_is_wrong() {
        let err = parse(b"{\"source\": ").unwrap_err().to_string();
        assert!(
            err.starts_with("body is not valid JSON: EOF while parsing"),
            "{err}"
        );
        let err = parse(ONE.replace("\"id\":\"bw-1\",", "").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mention 0") && err.contains("missing field `id`"),
            "{err}"
        );
        let err = parse(
            ONE.replace("https://instagram.com/p/abc", "instagram.com")
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`url` must be an http(s) URL"), "{err}");
        let err = parse(ONE.replace("2026-11-25T10:00:00Z", "yesterday").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mention 0: input contains invalid characters"),
            "{err}"
        );
        let batch = format!("[{}]", vec![ONE; 101].join(","));
        assert_eq!(
            parse(batch.as_bytes()).unwrap_err(),
            IngestError::TooMany(101)
        );
        let two = format!("[{ONE},{}]", ONE.replace("bw-1", "bw-2"));
        assert_eq!(parse(two.as_bytes()).unwrap().len(), 2);
    }
}
