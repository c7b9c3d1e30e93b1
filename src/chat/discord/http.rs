//! Discord's interactions endpoint (HTTP mode): every request's Ed25519 signature and
//! age are checked over the raw body before any of it is parsed.

use super::signature::InteractionVerifier;
use super::{interaction_from_json, Discord};
use crate::config::HttpLimits;
use crate::wire::http::body::{self, bad_request, unreadable};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use std::sync::Arc;

/// `/discord/interactions`, with the posted-body limits. The config refuses a missing or
/// bad public key; should one get here anyway, the route is not served at all rather
/// than served unverified.
pub fn routes(discord: Arc<Discord>, limits: &HttpLimits) -> Router {
    match InteractionVerifier::new(discord.config().public_key.as_deref().unwrap_or_default()) {
        Ok(verifier) => body::posted(
            Router::new().route("/discord/interactions", post(interaction)),
            limits,
        )
        .with_state((discord, Arc::new(verifier))),
        Err(e) => {
            tracing::error!(error = %e, "Discord interactions endpoint disabled");
            Router::new()
        }
    }
}

async fn interaction(
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
    let interaction = match interaction_from_json(&body) {
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
