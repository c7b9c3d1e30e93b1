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

// ---- charts (issue 14, part 4) ----

/// What the chart routes read: the desk (its store, schedule, targets and clock) and the
/// bearer token they answer to.
#[derive(Clone)]
struct Charts {
    desk: Arc<crate::runtime::desk::DeskService>,
    token: Option<Secret>,
}

/// Facts are read in pages of this many tickets.
const CHART_PAGE: usize = 5000;

/// `/charts/week.png`, `/charts/first-response.png`, `/charts/daily.png` and the data
/// behind them, `/charts/week.json`, each with `?days=1..366` (default 7) and `?tz=`
/// (an IANA zone, default UTC), behind `Authorization: Bearer <[http] charts_token>`.
/// Without a configured token they answer 404: off unless asked for.
pub fn charts_routes(
    desk: Arc<crate::runtime::desk::DeskService>,
    token: Option<Secret>,
    limits: &HttpLimits,
) -> Router {
    body::bodiless(
        Router::new()
            .route("/charts/week.png", get(chart_week))
            .route("/charts/first-response.png", get(chart_first_response))
            .route("/charts/daily.png", get(chart_daily))
            .route("/charts/week.json", get(chart_json)),
        limits,
    )
    .with_state(Charts { desk, token })
}

#[derive(serde::Deserialize)]
struct ChartQuery {
    days: Option<String>,
    tz: Option<String>,
}

/// Equal tokens, compared in time that does not depend on where they differ (digests of
/// both, so the length is not told either).
fn same_token(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn refuse(status: StatusCode, sentence: &str) -> Response {
    (status, format!("{sentence}\n")).into_response()
}

/// The chart data the request asks for, or the answer that refuses it.
async fn chart_data(
    charts: &Charts,
    headers: &axum::http::HeaderMap,
    query: &ChartQuery,
) -> Result<crate::reports::ChartData, Response> {
    let Some(expected) = charts.token.as_ref() else {
        return Err(refuse(StatusCode::NOT_FOUND, "Not found."));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !same_token(given, expected.expose()) {
        let mut refused = refuse(
            StatusCode::UNAUTHORIZED,
            "The charts need `Authorization: Bearer <charts_token>`.",
        );
        refused.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return Err(refused);
    }
    let tz: chrono_tz::Tz = match query.tz.as_deref().map(str::trim) {
        None | Some("") => chrono_tz::Tz::UTC,
        Some(name) => name.parse().map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                "`tz` is not a time zone: give an IANA name such as Europe/Berlin or America/New_York.",
            )
        })?,
    };
    let days = query.days.as_deref().map(str::trim).unwrap_or("7");
    let days_ok = !days.is_empty() && days.len() <= 3 && days.bytes().all(|b| b.is_ascii_digit());
    let now = charts.desk.now();
    let window = crate::reports::Window::parse(&format!("{days}d"), now)
        .ok()
        .filter(|_| days_ok)
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "`days` is not a window: give a whole number of days from 1 to 366.",
            )
        })?;
    let store = charts.desk.store();
    let mut facts = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .received_facts(window.from, window.to, after, CHART_PAGE)
            .await
            .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
        let full = page.len() == CHART_PAGE;
        after = page.last().map(|l| (l.opened_at, l.id));
        facts.extend(page);
        if !full {
            break;
        }
    }
    let schedule = charts.desk.schedule().await;
    let targets = charts.desk.targets();
    let csat = crate::reports::csat_by_day(&facts, &window, tz);
    Ok(crate::reports::ChartData::of(
        &facts, &window, tz, &schedule, &targets, &csat, now,
    ))
}

fn png_answer(drawn: Result<Vec<u8>, crate::reports::ChartError>) -> Response {
    match drawn {
        Ok(bytes) => (
            [
                (axum::http::header::CONTENT_TYPE, "image/png"),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "a chart could not be drawn");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The chart could not be drawn.",
            )
        }
    }
}

async fn chart_week(
    State(charts): State<Charts>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<ChartQuery>,
) -> Response {
    match chart_data(&charts, &headers, &query).await {
        Ok(data) => png_answer(crate::reports::week_png(&data)),
        Err(refused) => refused,
    }
}

async fn chart_first_response(
    State(charts): State<Charts>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<ChartQuery>,
) -> Response {
    match chart_data(&charts, &headers, &query).await {
        Ok(data) => png_answer(crate::reports::first_response_png(&data)),
        Err(refused) => refused,
    }
}

async fn chart_daily(
    State(charts): State<Charts>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<ChartQuery>,
) -> Response {
    match chart_data(&charts, &headers, &query).await {
        Ok(data) => png_answer(crate::reports::daily_png(&data)),
        Err(refused) => refused,
    }
}

async fn chart_json(
    State(charts): State<Charts>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<ChartQuery>,
) -> Response {
    match chart_data(&charts, &headers, &query).await {
        Ok(data) => (
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(data),
        )
            .into_response(),
        Err(refused) => refused,
    }
}
