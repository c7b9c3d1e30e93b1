//! The bot's own HTTP server: Slack's HTTP mode (Events API, interactivity and slash
//! commands, every request's signature checked before anything is read) and `/healthz`.

use crate::chat::slack::{signature, Slack};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use slack_morphism::prelude::*;
use std::sync::Arc;

pub fn router(slack: Arc<Slack>) -> Router {
    Router::new()
        .route("/slack/events", post(events))
        .route("/slack/interactivity", post(interactivity))
        .route("/slack/commands", post(commands))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(slack)
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
    tracing::warn!(error = %e, "malformed Slack {what}");
    (StatusCode::BAD_REQUEST, format!("malformed {what}: {e}")).into_response()
}

async fn events(State(slack): State<Arc<Slack>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = checked(&slack, &headers, &body) {
        return *r;
    }
    match serde_json::from_slice::<SlackPushEvent>(&body) {
        Ok(SlackPushEvent::UrlVerification(v)) => {
            Json(serde_json::json!({ "challenge": v.challenge })).into_response()
        }
        Ok(SlackPushEvent::EventCallback(ev)) => {
            tokio::spawn(async move { slack.on_push(ev).await });
            StatusCode::OK.into_response()
        }
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => bad_request("event", e),
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn interactivity(
    State(slack): State<Arc<Slack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = checked(&slack, &headers, &body) {
        return *r;
    }
    let Some(payload) = form_field(&body, "payload") else {
        return bad_request("interaction", "no `payload` form field");
    };
    let event: SlackInteractionEvent = match serde_json::from_str(&payload) {
        Ok(e) => e,
        Err(e) => return bad_request("interaction", e),
    };
    match slack.on_interaction(event).await {
        SlackInteractionResponse::Empty => StatusCode::OK.into_response(),
        other => Json(other).into_response(),
    }
}

async fn commands(State(slack): State<Arc<Slack>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = checked(&slack, &headers, &body) {
        return *r;
    }
    let fields: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    let event: SlackCommandEvent = match serde_json::from_value(serde_json::Value::Object(fields)) {
        Ok(e) => e,
        Err(e) => return bad_request("slash command", e),
    };
    Json(slack.on_command(event).await).into_response()
}
