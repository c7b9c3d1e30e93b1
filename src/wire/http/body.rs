//! Request bodies under a per-route limit and a deadline, before any handler sees them.
//! A `Content-Length` over the limit is refused at once, unread; a chunked body is cut
//! off at the limit; a body that trickles in is dropped at the deadline. Handlers then
//! get the bytes whole, check the signature over them, and only then parse; a payload
//! that does not parse is refused without quoting it.

use super::HttpLimits;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;

/// What one group of routes accepts.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub limit: usize,
    pub timeout: Duration,
}

/// `router`'s routes take a posted body: at most `max_body_bytes`, read within
/// `body_read_timeout`.
pub fn posted<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: &HttpLimits,
) -> Router<S> {
    let rules = BodyRules {
        limit: limits.max_body_bytes,
        timeout: limits.body_read_timeout,
    };
    router
        .route_layer(axum::middleware::from_fn_with_state(rules, bounded))
        .layer(DefaultBodyLimit::max(rules.limit))
}

/// `router`'s routes (GET) read no body at all.
pub fn bodiless<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: &HttpLimits,
) -> Router<S> {
    let rules = BodyRules {
        limit: 0,
        timeout: limits.body_read_timeout,
    };
    router.route_layer(axum::middleware::from_fn_with_state(rules, bounded))
}

/// A refusal after which the connection is closed: what is left of the body is never read.
fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, [(header::CONNECTION, "close")], why).into_response()
}

pub async fn bounded(State(rules): State<BodyRules>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > rules.limit as u64) {
        tracing::warn!(
            path = req.uri().path(),
            declared,
            limit = rules.limit,
            "refused a request body over the limit without reading it"
        );
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(rules.timeout, Limited::new(body, rules.limit).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            tracing::warn!(
                path = parts.uri.path(),
                limit = rules.limit,
                "cut off a request body at the limit"
            );
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(e)) => {
            tracing::debug!(path = parts.uri.path(), error = %e, "a request body could not be read");
            return refuse(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            );
        }
        Err(_) => {
            tracing::warn!(
                path = parts.uri.path(),
                timeout_ms = rules.timeout.as_millis() as u64,
                "dropped a request whose body did not arrive in time"
            );
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A payload that does not make sense: 400, and what was wrong in the log.
pub fn bad_request(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "malformed {what}");
    (StatusCode::BAD_REQUEST, format!("malformed {what}: {e}")).into_response()
}

/// Where a payload stopped making sense, never what it said there: serde's own message
/// quotes the offending value, which may be a token or a `response_url`.
pub fn unreadable(what: &str, e: &serde_json::Error) -> Response {
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
