//! One XRPC call to the PDS: authorised with the session, renewed once when the token is
//! stale, held back while the rate-limit window is spent, and its failure worded.

use super::wire::XrpcError;
use super::{Bluesky, BlueskyError};
use crate::ports::DeliveryError;
use crate::sources::http::{self, RateLimitHeaders};
use crate::wire::hints::HintForm;
use chrono::Utc;
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Where the PDS says how much of its request budget is left.
pub(super) const LIMITS: RateLimitHeaders = RateLimitHeaders {
    remaining: "ratelimit-remaining",
    reset: "ratelimit-reset",
    reset_form: HintForm::EpochSeconds,
};

/// The service id chat calls are proxied to through the PDS.
const CHAT_PROXY: &str = "did:web:api.bsky.chat#bsky_chat";
/// Waits shorter than this are slept through; longer ones are handed to the caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(3);

/// One XRPC call.
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) nsid: &'a str,
    pub(super) query: Vec<(&'a str, String)>,
    pub(super) body: Option<Value>,
    /// Proxied by the PDS to the Bluesky chat service.
    pub(super) chat: bool,
}

impl<'a> Call<'a> {
    pub(super) fn get(nsid: &'a str, query: Vec<(&'a str, String)>) -> Self {
        Call {
            method: Method::GET,
            nsid,
            query,
            body: None,
            chat: false,
        }
    }

    pub(super) fn post(nsid: &'a str, body: Value) -> Self {
        Call {
            method: Method::POST,
            nsid,
            query: Vec::new(),
            body: Some(body),
            chat: false,
        }
    }

    pub(super) fn chat(mut self) -> Self {
        self.chat = true;
        self
    }
}

/// A raw answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn xrpc_error(&self) -> Option<XrpcError> {
        serde_json::from_slice::<XrpcError>(&self.body)
            .ok()
            .filter(|e| !e.error.is_empty())
    }

    /// The access token is stale: renew the session and try again.
    fn token_expired(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED
            || (self.status == StatusCode::BAD_REQUEST
                && self.xrpc_error().is_some_and(|e| {
                    e.error == "ExpiredToken"
                        || (e.error == "InvalidToken"
                            && !e.message.as_deref().unwrap_or_default().contains("scope"))
                }))
    }

    /// What the server said, as `Error: message`.
    pub(super) fn said(&self) -> String {
        match self.xrpc_error() {
            Some(XrpcError {
                error,
                message: Some(m),
            }) if !m.is_empty() && m != error => format!("{error}: {m}"),
            Some(e) => e.error,
            None => http::body_excerpt(&self.body),
        }
    }
}

impl Bluesky {
    pub(super) fn url(&self, nsid: &str) -> String {
        format!("{}/xrpc/{nsid}", self.config.service_url)
    }

    /// Wait for the rate-limit gate of this kind of call, or give the wait back.
    async fn wait_for_budget(&self, write: bool) -> Result<(), DeliveryError> {
        let Some(t) = self.gates.opens_at(&write) else {
            return Ok(());
        };
        let wait = t - Instant::now();
        if wait > MAX_INLINE_WAIT {
            return Err(DeliveryError::Retry {
                after: Some(wait),
                reason: format!(
                    "Bluesky rate limit reached; it resets in {} s",
                    wait.as_secs().max(1)
                ),
            });
        }
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "Bluesky rate limit reached, waiting for reset"
        );
        tokio::time::sleep_until(t).await;
        Ok(())
    }

    /// Remember when the server's request budget is spent.
    fn note_limits(&self, write: bool, headers: &HeaderMap) {
        if let Some(wait) = LIMITS.spent(headers, 0, Utc::now()) {
            self.gates.shut(write, wait);
        }
    }

    /// Send one call with this bearer token (None: no Authorization header).
    pub(super) async fn send(
        &self,
        call: &Call<'_>,
        bearer: Option<&str>,
    ) -> Result<Answer, DeliveryError> {
        let write = call.method == Method::POST;
        self.wait_for_budget(write).await?;
        let mut url = self.url(call.nsid);
        if !call.query.is_empty() {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &call.query {
                q.append_pair(k, v);
            }
            url = format!("{url}?{}", q.finish());
        }
        let mut req = self.http.request(call.method.clone(), &url);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if call.chat {
            req = req.header("atproto-proxy", CHAT_PROXY);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let (status, headers, body) = http::exchange(
            req,
            || {
                format!(
                    "Bluesky at {} could not be reached ({})",
                    self.config.service_url, call.nsid
                )
            },
            || format!("Bluesky answer for {} was cut off", call.nsid),
            |headers| {
                // Session calls have their own, separate budgets (logins: 30 per 5 minutes).
                if !call.nsid.starts_with("com.atproto.server.") {
                    self.note_limits(write, headers);
                }
            },
        )
        .await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn access_token(&self) -> String {
        self.session
            .lock()
            .expect("session lock")
            .access_jwt
            .clone()
    }

    /// An authenticated call: renews the session once if the token is stale, and turns
    /// a refusal into the right kind of failure.
    pub(super) async fn call(&self, call: Call<'_>) -> Result<Vec<u8>, DeliveryError> {
        let token = self.access_token();
        let mut answer = self.send(&call, Some(&token)).await?;
        if answer.token_expired() {
            tracing::info!(nsid = call.nsid, said = %answer.said(), "Bluesky access token refused; renewing the session");
            self.renew(&token)
                .await
                .map_err(BlueskyError::into_delivery)?;
            let token = self.access_token();
            answer = self.send(&call, Some(&token)).await?;
        }
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(self.failure(call.nsid, &answer))
        }
    }

    pub(super) async fn call_json<T: for<'de> Deserialize<'de>>(
        &self,
        call: Call<'_>,
    ) -> Result<T, DeliveryError> {
        let nsid = call.nsid.to_string();
        let body = self.call(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "Bluesky sent an answer we cannot read for {nsid}: {e}"
            ))
        })
    }

    /// Turn a non-success answer into the right kind of failure, with the server's words.
    fn failure(&self, nsid: &str, answer: &Answer) -> DeliveryError {
        let said = answer.said();
        let status = answer.status;
        if http::is_transient(status) && status != StatusCode::NOT_IMPLEMENTED {
            let after = LIMITS.retry_wait(status, &answer.headers, Utc::now());
            return DeliveryError::Retry {
                after,
                reason: format!("Bluesky answered {} for {nsid}: {said}", status.as_u16()),
            };
        }
        let error = answer.xrpc_error();
        let scope = error
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .is_some_and(|m| m.contains("scope"));
        let hint = match error.map(|e| e.error).as_deref() {
            Some("InvalidToken") if scope => {
                " (the app password in bluesky.app_password needs access to direct messages)"
            }
            Some("ExpiredToken" | "InvalidToken" | "AuthenticationRequired") => {
                " (check the app password in bluesky.app_password)"
            }
            _ if status == StatusCode::UNAUTHORIZED => {
                " (check the app password in bluesky.app_password)"
            }
            _ if matches!(status.as_u16(), 404 | 501) && nsid.starts_with("chat.") => {
                " (the PDS did not forward the chat call; check bluesky.service_url)"
            }
            _ => "",
        };
        DeliveryError::Permanent {
            reason: format!("Bluesky refused {nsid} ({}): {said}{hint}", status.as_u16()),
        }
    }
}
