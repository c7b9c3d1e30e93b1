//! Slack's HTTP mode: the Events API, interactivity and slash commands, each a signed
//! POST. Every request's signature and age are checked over the raw body before any of
//! it is parsed (the [`Signed`] extractor); Slack wants its answer within 3 s.

use super::{signature, Slack};
use crate::config::HttpLimits;
use crate::wire::http::body::{self, bad_request, unreadable};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use slack_morphism::prelude::*;
use std::sync::Arc;

/// Slack's three endpoints, with the posted-body limits.
pub fn routes(slack: Arc<Slack>, limits: &HttpLimits) -> Router {
    body::posted(
        Router::new()
            .route("/slack/events", post(events))
            .route("/slack/interactivity", post(interactivity))
            .route("/slack/commands", post(commands)),
        limits,
    )
    .with_state(slack)
}

/// A request body whose Slack signature and timestamp checked out.
struct Signed(Bytes);

impl FromRequest<Arc<Slack>> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, slack: &Arc<Slack>) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, slack)
            .await
            .map_err(IntoResponse::into_response)?;
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
            &body,
            chrono::Utc::now().timestamp(),
        )
        .map_err(|e| {
            tracing::warn!(reason = %e, "refused an unsigned or badly signed Slack request");
            (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
        })?;
        Ok(Signed(body))
    }
}

async fn events(State(slack): State<Arc<Slack>>, Signed(body): Signed) -> Response {
    match serde_json::from_slice::<SlackPushEvent>(&body) {
        Ok(SlackPushEvent::UrlVerification(v)) => {
            Json(serde_json::json!({ "challenge": v.challenge })).into_response()
        }
        Ok(SlackPushEvent::EventCallback(ev)) => {
            // Slack wants its 200 within 3 s; the event is handled after it.
            let work = slack.clone();
            slack.desk.spawn_later(
                "a Slack event",
                Box::pin(async move { work.on_push(ev).await }),
            );
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

async fn interactivity(State(slack): State<Arc<Slack>>, Signed(body): Signed) -> Response {
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

async fn commands(State(slack): State<Arc<Slack>>, Signed(body): Signed) -> Response {
    let fields: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    let event: SlackCommandEvent = match serde_json::from_value(serde_json::Value::Object(fields)) {
        Ok(e) => e,
        Err(e) => return unreadable("Slack slash command", &e),
    };
    Json(slack.on_command(event).await).into_response()
}
