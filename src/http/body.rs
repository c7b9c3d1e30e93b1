//! Request bodies under a per-route limit and a deadline, before any handler sees them.
//! A `Content-Length` over the limit is refused at once, unread; a chunked body is cut
//! off at the limit; a body that trickles in is dropped at the deadline. Handlers then
//! get the bytes whole, check the signature over them, and only then parse.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;

/// What one group of routes accepts.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub limit: usize,
    pub timeout: Duration,
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
