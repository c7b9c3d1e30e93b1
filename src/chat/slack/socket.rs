//! Socket Mode: Slack pushes events over a websocket we open, so no public URL is needed.
//! slack-morphism acknowledges after our callback returns, so callbacks hand slow work to
//! tasks and return quickly (Slack's limit is 3 s); it reconnects on drops by itself.

use super::Slack;
use crate::config::Secret;
use slack_morphism::errors::{SlackClientError, SlackClientProtocolError};
use slack_morphism::prelude::*;
use std::sync::Arc;

async fn state(states: &SlackClientEventsUserState) -> Option<Arc<Slack>> {
    states.read().await.get_user_state::<Arc<Slack>>().cloned()
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackInteractionResponse> {
    match state(&states).await {
        Some(slack) => Ok(slack.on_interaction(event).await),
        None => Ok(SlackInteractionResponse::Empty),
    }
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    match state(&states).await {
        Some(slack) => Ok(slack.on_command(event).await),
        None => Err("mentionbridge is starting".into()),
    }
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    if let Some(slack) = state(&states).await {
        let work = slack.clone();
        slack.desk.spawn_later(
            "a Slack event",
            Box::pin(async move { work.on_push(event).await }),
        );
    }
    Ok(())
}

fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    // slack-morphism's message for an envelope it cannot read carries the whole
    // envelope (verification token, response_url, trigger_id) and serde's words may
    // quote any of its values: say only where it went wrong.
    let unreadable = match err.downcast_ref::<SlackClientError>() {
        Some(SlackClientError::ProtocolError(p)) => Some(p),
        _ => err.downcast_ref::<SlackClientProtocolError>(),
    };
    match unreadable {
        Some(p) => tracing::warn!(
            line = p.json_error.line(),
            column = p.json_error.column(),
            kind = ?p.json_error.classify(),
            "Slack Socket Mode event could not be handled: its JSON does not fit the envelope we know"
        ),
        None => tracing::warn!(error = %err, "Slack Socket Mode event could not be handled"),
    }
    HttpStatusCode::OK
}

/// Listen over Socket Mode until `shutdown` resolves.
pub async fn run_socket_mode(
    slack: Arc<Slack>,
    app_token: Secret,
    reconnect_backoff_secs: u64,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), super::SlackError> {
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_interaction_events(on_interaction)
        .with_push_events(on_push);
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(slack.client.clone())
            .with_error_handler(on_error)
            .with_user_state(slack.clone()),
    );
    let config = SlackClientSocketModeConfig::new()
        .with_max_connections_count(1)
        .with_initial_backoff_in_seconds(reconnect_backoff_secs);
    let listener = SlackClientSocketModeListener::new(&config, env, callbacks);
    listener
        .listen_for(&SlackApiToken::new(app_token.expose().into()))
        .await
        .map_err(|e| super::SlackError::Unreachable {
            url: slack.config.api_url.clone(),
            reason: format!("Socket Mode could not start (check SLACK_APP_TOKEN, an xapp- token with connections:write): {e}"),
        })?;
    listener.start().await;
    tracing::info!("Slack Socket Mode listening");
    shutdown.await;
    listener.shutdown().await;
    Ok(())
}
