//! One call to X: authorised, counted, held back while its endpoint's window is spent, and
//! its failure worded in X's own terms.

use super::oauth1::{nonce, oauth1_header, pct, Oauth1Credentials};
use super::wire::{x_said, Page};
use super::{Auth, XError, X};
use crate::ports::DeliveryError;
use crate::sources::http::{self, RateLimitHeaders};
use crate::wire::hints::{later, HintForm};
use chrono::Utc;
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Where X says how much of an endpoint's window is left.
pub(super) const LIMITS: RateLimitHeaders = RateLimitHeaders {
    remaining: "x-rate-limit-remaining",
    reset: "x-rate-limit-reset",
    reset_form: HintForm::EpochSeconds,
};

/// Which rate limit an endpoint belongs to (X limits each endpoint on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Endpoint {
    Me,
    Mentions,
    Search,
    Timeline,
    CreateTweet,
    SendDm,
    DmEvents,
    Token,
}

/// A prepared request: the query is already encoded the way it is signed.
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) endpoint: Endpoint,
    pub(super) path: String,
    pub(super) query: Vec<(&'a str, String)>,
    pub(super) json: Option<Value>,
}

impl X {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The endpoint's window is spent: how long until it resets.
    fn gate(&self, endpoint: Endpoint) -> Option<Duration> {
        self.gates
            .opens_at(&endpoint)
            .map(|until| until - Instant::now())
    }

    fn note_limits(&self, endpoint: Endpoint, headers: &HeaderMap) {
        let now = Utc::now();
        if let Some(wait) = LIMITS.spent(headers, 0, now) {
            tracing::info!(
                ?endpoint,
                reset = %later(now, wait).to_rfc3339(),
                "X rate limit window spent for this endpoint"
            );
            self.gates.shut(endpoint, wait);
        }
    }

    /// The `Authorization` header for this request (OAuth 1.0a signature or bearer).
    async fn authorization(&self, call: &Call<'_>, url: &str) -> Result<String, DeliveryError> {
        match &self.auth {
            Auth::Oauth1 {
                consumer_key,
                consumer_secret,
                token,
                token_secret,
            } => {
                let creds = Oauth1Credentials {
                    consumer_key: consumer_key.expose(),
                    consumer_secret: consumer_secret.expose(),
                    token: token.expose(),
                    token_secret: token_secret.expose(),
                };
                let params: Vec<(String, String)> = call
                    .query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                Ok(oauth1_header(
                    &creds,
                    call.method.as_str(),
                    url,
                    &params,
                    &nonce(),
                    Utc::now().timestamp(),
                ))
            }
            Auth::Oauth2 { session, .. } => self.bearer(session).await,
        }
    }

    /// Send one request (refreshing an OAuth 2.0 token once on 401); counts it against
    /// the day's budget and reads the rate-limit headers.
    pub(super) async fn send(&self, call: &Call<'_>) -> Result<http::Answer, DeliveryError> {
        if let Some(wait) = self.gate(call.endpoint) {
            return Err(DeliveryError::Retry {
                after: Some(wait),
                reason: format!(
                    "X rate limit for {} is spent; next window in {} s",
                    call.path,
                    wait.as_secs()
                ),
            });
        }
        let url = self.url(&call.path);
        let full = if call.query.is_empty() {
            url.clone()
        } else {
            let q: Vec<String> = call
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
                .collect();
            format!("{url}?{}", q.join("&"))
        };
        let mut refreshed = false;
        loop {
            let auth = self.authorization(call, &url).await?;
            let mut req = self
                .http
                .request(call.method.clone(), &full)
                .header(reqwest::header::AUTHORIZATION, auth.clone());
            if let Some(body) = &call.json {
                req = req.json(body);
            }
            self.budget.count_call().await;
            let (status, headers, body) = http::exchange(
                req,
                || format!("X at {} could not be reached", self.base),
                || format!("X's answer from {url} was cut off"),
                |headers| self.note_limits(call.endpoint, headers),
            )
            .await?;
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && self.renew_after_401(&auth).await?
            {
                refreshed = true;
                continue;
            }
            return Ok((status, headers, body));
        }
    }

    /// Turn a non-success answer into the right kind of failure, with X's own words.
    pub(super) fn failure(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> DeliveryError {
        let said = x_said(body);
        let what = format!("X answered {} for {:?}", status.as_u16(), endpoint);
        if http::is_transient(status) {
            let after = LIMITS.retry_wait(status, headers, Utc::now());
            if status == StatusCode::TOO_MANY_REQUESTS {
                if let Some(a) = after {
                    self.gates.shut(endpoint, a);
                }
            }
            return DeliveryError::Retry {
                after,
                reason: format!("{what}: {said}"),
            };
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                "{said} (check x.consumer_key, x.consumer_secret, x.access_token and \
                 x.access_token_secret, or the OAuth 2.0 refresh token)"
            ),
            _ => said,
        };
        DeliveryError::Permanent {
            reason: format!("{what}: {hint}"),
        }
    }

    pub(super) async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: Endpoint,
        path: String,
        query: Vec<(&str, String)>,
    ) -> Result<T, XError> {
        let call = Call {
            method: Method::GET,
            endpoint,
            path,
            query,
            json: None,
        };
        let body = self.fetch(&call).await?;
        serde_json::from_slice(&body).map_err(|e| XError::Unexpected {
            url: self.url(&call.path),
            reason: e.to_string(),
        })
    }

    async fn fetch(&self, call: &Call<'_>) -> Result<Vec<u8>, DeliveryError> {
        let (status, headers, body) = self.send(call).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(self.failure(call.endpoint, status, &headers, &body))
        }
    }

    pub(super) async fn fetch_page<T: for<'de> Deserialize<'de>>(
        &self,
        call: &Call<'_>,
    ) -> Result<Page<T>, DeliveryError> {
        let body = self.fetch(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            DeliveryError::retry(format!(
                "X sent a page we cannot read from {}: {e}",
                self.url(&call.path)
            ))
        })
    }
}
