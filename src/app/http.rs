//! The bot's own HTTP server, composed: each inbound adapter brings its routes with their
//! body limits (Slack's HTTP mode, Discord's interactions endpoint, the mentions webhook)
//! and this adds `/healthz` and `/metrics`; `wire::http::server` serves the result.

use crate::chat::discord::Discord;
use crate::chat::slack::Slack;
use crate::config::{HttpLimits, Secret};
use crate::domain::{Mention, SurfaceKind};
use crate::ports::{Intake, Received, StoreFailure};
use crate::ports::{SharedStore, Store};
use crate::runtime::language::Languages;
use crate::runtime::supervisor::Health;
use crate::sources::webhook;
use crate::wire::http::body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::sync::Notify;

/// What the inbound webhook needs: where to store mentions, the signing key, and whom
/// to wake once they are stored.
#[derive(Clone)]
pub struct Ingest {
    pub store: SharedStore,
    pub secret: Secret,
    pub wake: Arc<Notify>,
    /// The desk's clock: a webhook mention is received at its instant.
    pub clock: Arc<dyn crate::ports::Clock>,
    /// Each mention's language is detected before it is stored.
    pub languages: Languages,
}

/// The webhook's mentions into the store: on disk before the sender hears "accepted",
/// then the outbox is woken for their cards.
struct StoreIntake {
    store: SharedStore,
    wake: Arc<Notify>,
    clock: Arc<dyn crate::ports::Clock>,
    languages: Languages,
}

#[async_trait::async_trait]
impl Intake for StoreIntake {
    async fn take_in(&self, source: &str, mentions: &[Mention]) -> Result<Received, StoreFailure> {
        let failed = |e| StoreFailure(Box::new(e));
        let mentions = self.languages.stamp(mentions).await;
        let done = self
            .store
            .ingest(source, &mentions, None, self.clock.now())
            .await
            .map_err(failed)?;
        self.store.flush().await.map_err(failed)?;
        self.wake.notify_one();
        Ok(Received {
            new_tickets: done.new_tickets,
            followups: done.followups,
            duplicates: done.duplicates,
        })
    }
}

/// What `/metrics` and `/healthz` read.
#[derive(Clone)]
pub struct Metrics {
    pub desk: std::sync::Arc<crate::runtime::desk::DeskService>,
    pub health: Health,
    /// This replica's name and the duties it holds.
    pub replica: crate::runtime::duties::Replica,
    /// How each source this replica watches is read: streamed or polled, and why.
    pub sources: crate::runtime::watcher::Modes,
    /// The chat surfaces, for their pacing figures.
    pub surfaces: Vec<Arc<dyn crate::ports::Surface>>,
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
    let mut app = body::bodiless(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(prometheus)),
        limits,
    )
    .with_state(metrics);
    if let Some(Ingest {
        store,
        secret,
        wake,
        clock,
        languages,
    }) = ingest
    {
        let intake = Arc::new(StoreIntake {
            store,
            wake,
            clock,
            languages,
        });
        app = app.merge(webhook::routes(secret, intake, limits));
    }
    if let Some(slack) = slack {
        app = app.merge(crate::chat::slack::http::routes(slack, limits));
    }
    if let Some(discord) = discord {
        app = app.merge(crate::chat::discord::http::routes(discord, limits));
    }
    app
}

/// Each supervised component and its state, this replica's duties (which it holds,
/// how long since each lease was renewed) and the outbox's depth: 200 when all
/// components run, 503 when one does not.
async fn healthz(State(metrics): State<Metrics>) -> Response {
    let components = metrics.health.snapshot();
    let up = metrics.health.all_up();
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let store = metrics.desk.store();
    let depth = store.pending_job_count().await;
    let body = serde_json::json!({
        "status": if up { "ok" } else { "degraded" },
        "components": components,
        "replica": metrics.replica.name(),
        "duties": metrics.replica.duties(),
        "sources": metrics.sources.snapshot(),
        "outbox_depth": depth.as_ref().ok(),
        "store": match &depth {
            Ok(_) => "reachable".to_string(),
            Err(e) => format!("unreachable: {e}"),
        },
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

/// Each surface's calls waiting for its pace, and the 429s it answered.
fn chat_pacing_exposition(surfaces: &[Arc<dyn crate::ports::Surface>]) -> String {
    let mut out = String::from(
        "# HELP mentionbridge_chat_calls_waiting Calls to a chat surface waiting for its pace (one channel's message rate, one route's bucket) or under way.\n# TYPE mentionbridge_chat_calls_waiting gauge\n",
    );
    for s in surfaces {
        out.push_str(&format!(
            "mentionbridge_chat_calls_waiting{{surface=\"{}\"}} {}\n",
            s.kind().label().to_ascii_lowercase(),
            s.waiting_calls()
        ));
    }
    out.push_str("# HELP mentionbridge_chat_rate_limited_total Calls a chat surface refused with 429 since the start.\n# TYPE mentionbridge_chat_rate_limited_total counter\n");
    for s in surfaces {
        out.push_str(&format!(
            "mentionbridge_chat_rate_limited_total{{surface=\"{}\"}} {}\n",
            s.kind().label().to_ascii_lowercase(),
            s.rate_limited_calls()
        ));
    }
    out
}

async fn prometheus(State(metrics): State<Metrics>) -> Response {
    let store = metrics.desk.store();
    let read = match metrics.desk.ticket_metrics().await {
        Ok(text) => store.failed_jobs().await.map(|failed| (text, failed)),
        Err(e) => Err(e),
    };
    match read {
        Ok((mut text, failed)) => {
            text.push_str(&crate::runtime::outbox::exposition(
                &failed,
                &metrics.health.snapshot(),
            ));
            text.push_str(&cards_lost_exposition(store.as_ref()).await);
            text.push_str(&crate::runtime::duties::exposition(&metrics.replica));
            text.push_str(&metrics.sources.exposition());
            text.push_str(&chat_pacing_exposition(&metrics.surfaces));
            if let Ok(incidents) = metrics.desk.incidents().await {
                text.push_str(&crate::reports::incidents_exposition(&incidents));
            }
            if let Ok(depth) = store.pending_job_count().await {
                text.push_str(&format!(
                    "# HELP mentionbridge_outbox_depth Jobs waiting in the outbox (shared by every replica).\n# TYPE mentionbridge_outbox_depth gauge\nmentionbridge_outbox_depth {depth}\n"
                ));
            }
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
