//! The bot's own HTTP server: Slack's HTTP mode (Events API, interactivity and slash
//! commands) and Discord's interactions endpoint, every request's signature and age
//! checked before anything is read; and `/healthz`. Each route group reads its body
//! under its own limit and deadline (`body`); connections are served by `server`.

pub mod body;
pub mod server;

use crate::chat::discord::signature::InteractionVerifier;
use crate::chat::discord::Discord;
use crate::chat::slack::{signature, Slack};
use crate::config::{HttpLimits, Secret};
use crate::domain::SurfaceKind;
use crate::ports::{SharedStore, Store};
use crate::runtime::supervisor::{Background, Health};
use crate::sources::webhook;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use slack_morphism::prelude::*;
use std::sync::Arc;
use tokio::sync::Notify;

/// What the inbound webhook needs: where to store mentions, the signing key, and whom
/// to wake once they are stored.
#[derive(Clone)]
pub struct Ingest {
    pub store: SharedStore,
    pub secret: Secret,
    pub wake: Arc<Notify>,
}

/// What `/metrics` and `/healthz` read.
#[derive(Clone)]
pub struct Metrics {
    pub desk: std::sync::Arc<crate::runtime::desk::DeskService>,
    pub health: Health,
}

/// Routes for the surfaces that run in HTTP mode, the inbound webhook, `/healthz` and
/// `/metrics` (Prometheus text format).
pub fn router(
    slack: Option<Arc<Slack>>,
    discord: Option<Arc<Discord>>,
    ingest: Option<Ingest>,
    metrics: Metrics,
    limits: &HttpLimits,
) -> Router {
    let background = metrics.desk.background().clone();
    // Every route group reads its body under a limit and a deadline; GET routes read none.
    let bodies = |limit: usize| {
        let rules = body::BodyRules {
            limit,
            timeout: limits.body_read_timeout,
        };
        (
            axum::middleware::from_fn_with_state(rules, body::bounded),
            axum::extract::DefaultBodyLimit::max(limit),
        )
    };
    let (no_body, _) = bodies(0);
    let (posted, posted_limit) = bodies(limits.max_body_bytes);
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .route_layer(no_body)
        .with_state(metrics);
    if let Some(ingest) = ingest {
        app = app.merge(
            Router::new()
                .route(webhook::PATH, post(ingest_mentions))
                .route_layer(posted.clone())
                .layer(posted_limit)
                .with_state(ingest),
        );
    }
    if let Some(slack) = slack {
        app = app.merge(
            Router::new()
                .route("/slack/events", post(events))
                .route("/slack/interactivity", post(interactivity))
                .route("/slack/commands", post(commands))
                .route_layer(posted.clone())
                .layer(posted_limit)
                .with_state((slack, background)),
        );
    }
    if let Some(discord) = discord {
        // The config refuses a missing or bad key; should one get here anyway, the route
        // is not served at all rather than served unverified.
        match InteractionVerifier::new(discord.config().public_key.as_deref().unwrap_or_default()) {
            Ok(verifier) => {
                app = app.merge(
                    Router::new()
                        .route("/discord/interactions", post(discord_interaction))
                        .route_layer(posted)
                        .layer(posted_limit)
                        .with_state((discord, Arc::new(verifier))),
                );
            }
            Err(e) => tracing::error!(error = %e, "Discord interactions endpoint disabled"),
        }
    }
    app
}

/// Each supervised component and its state: 200 when all run, 503 when one does not.
async fn healthz(State(metrics): State<Metrics>) -> Response {
    let components = metrics.health.snapshot();
    let up = metrics.health.all_up();
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if up { "ok" } else { "degraded" },
        "components": components,
    });
    (status, Json(body)).into_response()
}

/// Cards a surface refused for good or that disappeared, per surface.
async fn cards_lost_exposition(store: &dyn Store) -> String {
    let mut out = String::from(
        "# HELP mentionbridge_cards_lost_total Cards a surface refused for good or deleted; the ticket stays on the desk.\n# TYPE mentionbridge_cards_lost_total counter\n",
    );
    for surface in [SurfaceKind::Slack, SurfaceKind::Discord] {
        let n = store.cards_lost(surface).await.unwrap_or(0);
        out.push_str(&format!(
            "mentionbridge_cards_lost_total{{surface=\"{}\"}} {n}\n",
            surface.label().to_ascii_lowercase()
        ));
    }
    out
}

async fn prometheus(State(metrics): State<Metrics>) -> Response {
    let store = metrics.desk.store();
    let read = match store.all_tickets().await {
        Ok(tickets) => store.failed_jobs().await.map(|failed| (tickets, failed)),
        Err(e) => Err(e),
    };
    match read {
        Ok((tickets, failed)) => {
            let mut text = crate::stats::prometheus_with(
                &tickets,
                crate::clock::now(),
                &metrics.desk.targets(),
            );
            text.push_str(&crate::runtime::outbox::exposition(
                &failed,
                &metrics.health.snapshot(),
            ));
            text.push_str(&cards_lost_exposition(store.as_ref()).await);
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn ingest_mentions(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let refuse = |status: StatusCode, e: webhook::IngestError| {
        tracing::warn!(reason = %e, "refused a webhook delivery");
        (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
    };
    if let Err(e) = webhook::verify(
        ingest.secret.expose(),
        header(webhook::TIMESTAMP_HEADER),
        header(webhook::SIGNATURE_HEADER),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        return refuse(StatusCode::UNAUTHORIZED, e);
    }
    let mentions = match webhook::parse(&body) {
        Ok(m) => m,
        Err(e @ webhook::IngestError::NotJson(_)) => return refuse(StatusCode::BAD_REQUEST, e),
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let stored = ingest
        .store
        .ingest("webhook", &mentions, None, crate::clock::now())
        .await
        .map_err(|e| e.to_string());
    let flushed = match stored {
        Ok(created) => ingest
            .store
            .flush()
            .await
            .map(|_| created)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match flushed {
        // Accepted only now: the mentions are on disk and their cards are queued.
        Ok(done) => {
            ingest.wake.notify_one();
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

async fn discord_interaction(
    State((discord, verifier)): State<(Arc<Discord>, Arc<InteractionVerifier>)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = verifier.verify(
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        tracing::warn!(reason = %e, "refused an unsigned or badly signed Discord interaction");
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let interaction = match crate::chat::discord::interaction_from_json(&body) {
        Ok(i) => i,
        Err(e) => return unreadable("Discord interaction", &e),
    };
    // Discord's documented PONG is exactly `{"type": 1}`.
    if matches!(interaction, serenity::all::Interaction::Ping(_)) {
        return Json(serde_json::json!({ "type": 1 })).into_response();
    }
    match discord.answer(interaction).await {
        Some(answer) => Json(answer).into_response(),
        None => bad_request("Discord interaction", "unsupported interaction type"),
    }
}

fn checked(slack: &Slack, headers: &HeaderMap, body: &[u8]) -> Result<(), Box<Response>> {
    let secret = slack
        .config()
        .signing_secret
        .as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        &secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "refused an unsigned or badly signed Slack request");
        Box::new((StatusCode::UNAUTHORIZED, e.to_string()).into_response())
    })
}

fn bad_request(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "malformed {what}");
    (StatusCode::BAD_REQUEST, format!("malformed {what}: {e}")).into_response()
}

/// Where a payload stopped making sense, never what it said there: serde's own message
/// quotes the offending value, which may be a token or a `response_url`.
fn unreadable(what: &str, e: &serde_json::Error) -> Response {
    bad_request(
        what,
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    )
}

type SlackState = (Arc<Slack>, Background);

async fn events(
    State((slack, background)): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = checked(&slack, &headers, &body) {
        return *r;
    }
    match serde_json::from_slice::<SlackPushEvent>(&body) {
        Ok(SlackPushEvent::UrlVerification(v)) => {
            Json(serde_json::json!({ "challenge": v.challenge })).into_response()
        }
        Ok(SlackPushEvent::EventCallback(ev)) => {
            // Slack wants its 200 within 3 s; the event is handled after it.
            background.spawn("a Slack event", async move { slack.on_push(ev).await });
            StatusCode::OK.into_response()
        }
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => unreadable("Slack event", &e),
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn interactivity(
    State((slack, _)): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = checked(&slack, &headers, &body) {
        return *r;
    }
    let Some(payload) = form_field(&body, "payload") else {
        return bad_request("Slack interaction", "no `payload` form field");
    };
    let event: SlackInteractionEvent = match serde_json::from_str(&payload) {
        Ok(e) => e,
        Err(e) => return unreadable("Slack interaction", &e),
    };
    match slack.on_interaction(event).await {
        SlackInteractionResponse::Empty => StatusCode::OK.into_response(),
        other => Json(other).into_response(),
    }
}

async fn commands(
    State((slack, _)): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = checked(&slack, &headers, &body) {
        return *r;
    }
    let fields: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    let event: SlackCommandEvent = match serde_json::from_value(serde_json::Value::Object(fields)) {
        Ok(e) => e,
        Err(e) => return unreadable("Slack slash command", &e),
    };
    Json(slack.on_command(event).await).into_response()
}
