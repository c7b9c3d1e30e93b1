//! What the social-platform adapters share about HTTP: the client they build, one
//! exchange (a request sent and its whole answer read, failures worded for a person and
//! never carrying a URL), the windows a platform's rate-limit headers close, and which
//! answers are worth another try. What a platform says in an error body stays with it.

use crate::ports::DeliveryError;
use crate::wire::hints::{header_wait, HintForm};
use chrono::{DateTime, Utc};
use reqwest::{header::HeaderMap, StatusCode};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A status, the headers and the whole body of one answer.
pub type Answer = (StatusCode, HeaderMap, Vec<u8>);

/// The HTTP client of a source: our user agent, and no request hangs longer than 30 s.
/// The error is the sentence the adapter reports.
pub fn client() -> Result<reqwest::Client, String> {
    built(ours().timeout(Duration::from_secs(30)))
}

/// The HTTP client of a long-lived streamed answer: our user agent, 10 s to connect,
/// and no bound on the whole exchange (the reader watches for silence itself).
pub fn streaming_client() -> Result<reqwest::Client, String> {
    built(ours().connect_timeout(Duration::from_secs(10)))
}

fn ours() -> reqwest::ClientBuilder {
    reqwest::Client::builder().user_agent(concat!("mentionbridge/", env!("CARGO_PKG_VERSION")))
}

fn built(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Send `request` and read its whole answer. `unreachable` and `cut_off` start the
/// sentence of a failure before and after the answer began; `note_limits` sees the
/// headers as soon as they arrive, so a window is noted even if the body is then lost.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    unreachable: impl FnOnce() -> String,
    cut_off: impl FnOnce() -> String,
    note_limits: impl FnOnce(&HeaderMap),
) -> Result<Answer, DeliveryError> {
    let resp = request
        .send()
        .await
        .map_err(|e| DeliveryError::retry(format!("{}: {}", unreachable(), without_url(&e))))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    note_limits(&headers);
    let body = resp
        .bytes()
        .await
        .map_err(|e| DeliveryError::retry(format!("{}: {}", cut_off(), without_url(&e))))?;
    Ok((status, headers, body.to_vec()))
}

/// reqwest errors print the URL, which may carry a query we signed; keep messages short
/// and stable.
pub fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "connection failed".into();
    }
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    s
}

/// The start of a body that is not the platform's error shape: what a person reads when
/// nothing better was said.
pub fn body_excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// 429, 408 and 5xx: the platform may answer differently later.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// A failure at start-up, when nothing retries it: `unavailable` if it is worth trying
/// again later, `refused` if the config needs fixing.
pub fn failure_at_start<E>(
    e: DeliveryError,
    unavailable: impl FnOnce(String) -> E,
    refused: impl FnOnce(String) -> E,
) -> E {
    match e {
        DeliveryError::Retry { reason, .. } => unavailable(reason),
        DeliveryError::Permanent { reason } | DeliveryError::Gone { reason } => refused(reason),
    }
}

/// The headers in which a platform says how much of its window is left and when it
/// resets.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitHeaders {
    pub remaining: &'static str,
    pub reset: &'static str,
    pub reset_form: HintForm,
}

impl RateLimitHeaders {
    /// How long until the window resets, if the headers say.
    pub fn reset_wait(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
        header_wait(headers, self.reset, self.reset_form, now)
    }

    /// The wait until the reset when `last` or fewer requests are left in the window.
    pub fn spent(&self, headers: &HeaderMap, last: i64, now: DateTime<Utc>) -> Option<Duration> {
        let remaining = header_num(headers, self.remaining)?;
        let wait = self.reset_wait(headers, now)?;
        (remaining <= last).then_some(wait)
    }

    /// The wait a refused answer hints at: its `Retry-After`, else (on a 429) the reset.
    pub fn retry_wait(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        header_wait(headers, "retry-after", HintForm::RetryAfter, now).or_else(|| {
            self.reset_wait(headers, now)
                .filter(|_| status == StatusCode::TOO_MANY_REQUESTS)
        })
    }
}

fn header_num(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Windows the platform said are spent, one per kind of call `K`: no call of that kind
/// before the instant kept here.
pub struct Gates<K>(Mutex<HashMap<K, Instant>>);

impl<K> Default for Gates<K> {
    fn default() -> Self {
        Gates(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash> Gates<K> {
    /// No call of kind `key` for `wait` from now.
    pub fn shut(&self, key: K, wait: Duration) {
        self.0
            .lock()
            .expect("gates lock")
            .insert(key, Instant::now() + wait);
    }

    /// When the gate of `key` opens, if it is shut now.
    pub fn opens_at(&self, key: &K) -> Option<Instant> {
        let gates = self.0.lock().expect("gates lock");
        gates.get(key).copied().filter(|t| *t > Instant::now())
    }
}

/// Hold the store-wide lock `name` (a short lease) while `f` runs, so of several
/// replicas sharing one store only one at a time does it: refreshing a session whose
/// refresh token rotates, which a second refresh with the old token would revoke.
/// Waits up to `for_at_most` for the lock; a lock whose holder died passes on when its
/// lease runs out.
pub async fn exclusively<T, F>(
    store: &dyn crate::ports::Store,
    name: &str,
    for_at_most: Duration,
    f: F,
) -> Result<T, DeliveryError>
where
    F: std::future::Future<Output = Result<T, DeliveryError>>,
{
    let holder = crate::wire::instance::name();
    let hold = Duration::from_secs(30);
    let give_up_at = Instant::now() + for_at_most;
    let lease = loop {
        match store.acquire_lease(name, holder, hold).await {
            Ok(Some(lease)) => break lease,
            Ok(None) if Instant::now() < give_up_at => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(None) => {
                return Err(DeliveryError::retry(format!(
                    "another replica is still busy with {name}"
                )))
            }
            Err(e) => return Err(DeliveryError::retry(format!("cannot take {name}: {e}"))),
        }
    };
    let out = f.await;
    if let Err(e) = store.release_lease(&lease).await {
        tracing::warn!(lock = name, error = %e, "could not release a lock; it passes on when it runs out");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const LIMITS: RateLimitHeaders = RateLimitHeaders {
        remaining: "x-rate-limit-remaining",
        reset: "x-rate-limit-reset",
        reset_form: HintForm::EpochSeconds,
    };

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_window_is_spent_only_when_the_count_is_low_and_the_reset_readable() {
        let now = Utc::now();
        let in_60 = (now.timestamp() + 60).to_string();
        let spent = headers(&[
            ("x-rate-limit-remaining", " 0".into()),
            ("x-rate-limit-reset", in_60.clone()),
        ]);
        let wait = LIMITS.spent(&spent, 0, now).expect("spent");
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        let one_left = headers(&[
            ("x-rate-limit-remaining", "1".into()),
            ("x-rate-limit-reset", in_60),
        ]);
        assert_eq!(LIMITS.spent(&one_left, 0, now), None);
        assert!(LIMITS.spent(&one_left, 1, now).is_some());
        let no_reset = headers(&[("x-rate-limit-remaining", "0".into())]);
        assert_eq!(LIMITS.spent(&no_reset, 0, now), None);
    }

    #[test]
    fn a_refusal_waits_for_retry_after_and_the_reset_only_counts_on_a_429() {
        let now = Utc::now();
        let reset_only = headers(&[("x-rate-limit-reset", (now.timestamp() + 90).to_string())]);
        assert!(LIMITS
            .retry_wait(StatusCode::TOO_MANY_REQUESTS, &reset_only, now)
            .is_some());
        assert_eq!(
            LIMITS.retry_wait(StatusCode::SERVICE_UNAVAILABLE, &reset_only, now),
            None
        );
        let both = headers(&[
            ("retry-after", "7".into()),
            ("x-rate-limit-reset", (now.timestamp() + 90).to_string()),
        ]);
        assert_eq!(
            LIMITS.retry_wait(StatusCode::TOO_MANY_REQUESTS, &both, now),
            Some(Duration::from_secs(7))
        );
        assert!(is_transient(StatusCode::REQUEST_TIMEOUT));
        assert!(is_transient(StatusCode::BAD_GATEWAY));
        assert!(!is_transient(StatusCode::FORBIDDEN));
    }

    #[tokio::test]
    async fn an_unreachable_platform_is_a_retry_whose_reason_names_no_url() {
        let request = client()
            .unwrap()
            .get("http://127.0.0.1:9/secret-path?token=abc");
        let err = exchange(
            request,
            || "P could not be reached".into(),
            String::new,
            |_| {},
        )
        .await
        .unwrap_err();
        match err {
            DeliveryError::Retry { after, reason } => {
                assert_eq!(after, None);
                assert_eq!(reason, "P could not be reached: connection failed");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gates_stay_shut_for_the_wait_and_per_kind() {
        let gates = Gates::default();
        assert_eq!(gates.opens_at(&"read"), None);
        gates.shut("read", Duration::from_secs(30));
        assert!(gates.opens_at(&"read").is_some());
        assert_eq!(gates.opens_at(&"write"), None);
        gates.shut("write", Duration::ZERO);
        assert_eq!(gates.opens_at(&"write"), None);
    }
}
