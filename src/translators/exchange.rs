//! What both translation adapters share about HTTP: the client (our user agent, the
//! configured timeout, no redirects: a redirect would carry the key, in a header or in
//! the body, to wherever it points), one exchange with a bounded answer, and the reading
//! of an answer's status as the port's errors. Nothing here puts the key, a URL with a
//! query, or the text sent into an error.

use crate::ports::TranslateError;
use crate::wire::hints::{header_wait, HintForm};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::Duration;

/// The most of an answer that is read: a translation of a request of at most 128 KiB is
/// far smaller; anything larger is not a translation.
pub const MAX_ANSWER_BYTES: usize = 2 << 20;

/// The HTTP client of a translation service.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("mentionbridge/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build an HTTP client for translation: {e}"))
}

/// A status, the headers and the whole (bounded) body of one answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Send `request` and read its answer, within `timeout` for the whole exchange.
pub async fn exchange(
    service: &'static str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Answer, TranslateError> {
    let unavailable = |reason: String| TranslateError::Unavailable {
        service: service.to_string(),
        reason,
    };
    let work = async {
        let mut resp = request
            .send()
            .await
            .map_err(|e| unavailable(without_url(&e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large(service));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| unavailable(format!("the answer was cut off: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large(service));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(answer) => answer,
        Err(_) => Err(unavailable(format!(
            "no answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

fn too_large(service: &'static str) -> TranslateError {
    TranslateError::Malformed {
        service: service.to_string(),
        reason: format!("the answer is larger than {} MiB", MAX_ANSWER_BYTES >> 20),
    }
}

/// reqwest's errors print the URL; ours say what happened in a few words.
fn without_url(e: &reqwest::Error) -> String {
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
    s.chars().take(200).collect()
}

/// The service's own words in an error body (`{"error": …}` from LibreTranslate,
/// `{"message": …}` from DeepL), short, on one line, with `secret` (the key) blanked in
/// case a service echoes it.
pub fn said(body: &[u8], secret: Option<&str>) -> String {
    let words = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["error", "message", "detail"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
        })
        .unwrap_or_default();
    let mut words: String = words
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        words = words.replace(secret, "***");
    }
    words.trim().to_string()
}

/// An answer that is not a success, as the port's error: refusals of the key, slowing
/// down, quota, requests the service will not take, and its own failures.
pub fn refusal(service: &'static str, answer: &Answer, secret: Option<&str>) -> TranslateError {
    let code = answer.status.as_u16();
    let words = said(&answer.body, secret);
    let reason = if words.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {words}")
    };
    let service_name = service.to_string();
    match code {
        401 | 403 => TranslateError::Refused {
            service: service_name,
            reason,
        },
        429 => TranslateError::RateLimited {
            service: service_name,
            after: header_wait(
                &answer.headers,
                "retry-after",
                HintForm::RetryAfter,
                chrono::Utc::now(),
            ),
        },
        456 => TranslateError::QuotaExceeded {
            service: service_name,
        },
        408 | 500..=599 => TranslateError::Unavailable {
            service: service_name,
            reason,
        },
        300..=399 => TranslateError::Unsupported {
            service: service_name,
            reason: format!("{reason} (a redirect, which is not followed: check translation.url)"),
        },
        _ => TranslateError::Unsupported {
            service: service_name,
            reason,
        },
    }
}

/// An answer that should have been a translation and is not.
pub fn malformed(service: &'static str, reason: impl Into<String>) -> TranslateError {
    TranslateError::Malformed {
        service: service.to_string(),
        reason: reason.into(),
    }
}

/// Texts grouped into requests: at most `max_texts` each, and at most `max_bytes` of
/// text each (JSON adds little beyond it), in order. A text alone over `max_bytes` is
/// refused, since no request can carry it.
pub fn batches(
    service: &'static str,
    texts: &[String],
    max_texts: usize,
    max_bytes: usize,
) -> Result<Vec<std::ops::Range<usize>>, TranslateError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, text) in texts.iter().enumerate() {
        // A JSON string may grow with escaping: count it as the serializer writes it.
        let size = serde_json::to_string(text)
            .map(|s| s.len())
            .unwrap_or(text.len());
        if size > max_bytes {
            return Err(TranslateError::Unsupported {
                service: service.to_string(),
                reason: format!(
                    "a text of {size} bytes is over the {max_bytes}-byte limit of one request"
                ),
            });
        }
        if i > start && (i - start == max_texts || bytes + size > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size + 1;
    }
    if start < texts.len() {
        out.push(start..texts.len());
    }
    Ok(out)
}

/// A language code a service answered with, if it is one (never a whole hostile string).
pub fn detected_language(value: Option<&serde_json::Value>) -> Option<String> {
    value
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|l| crate::domain::translation::is_language_tag(l))
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_grouped_by_count_and_by_size_in_order() {
        let texts: Vec<String> = (0..7).map(|i| "x".repeat(10 * (i + 1))).collect();
        assert_eq!(
            batches("T", &texts, 3, 1000).unwrap(),
            vec![0..3, 3..6, 6..7]
        );
        // 12 + 22 fit in 45, 32 does not join them, and so on.
        assert_eq!(
            batches("T", &texts[..4], 50, 45).unwrap(),
            vec![0..2, 2..3, 3..4]
        );
        assert!(matches!(
            batches("T", &["y".repeat(100)], 50, 40),
            Err(TranslateError::Unsupported { .. })
        ));
        assert!(batches("T", &[], 50, 40).unwrap().is_empty());
    }

    #[test]
    fn the_services_words_are_short_and_never_show_the_key() {
        let body = br#"{"error": "Invalid API key sk-123\nfor you"}"#;
        assert_eq!(said(body, Some("sk-123")), "Invalid API key *** for you");
        assert_eq!(said(br#"{"message":"Quota"}"#, None), "Quota");
        assert_eq!(said(b"<html>", None), "");
        let long = format!(r#"{{"message":"{}"}}"#, "a".repeat(500));
        assert_eq!(said(long.as_bytes(), None).len(), 200);
    }

    #[test]
    fn a_detected_language_must_be_a_tag() {
        use serde_json::json;
        assert_eq!(detected_language(Some(&json!("DE"))), Some("de".into()));
        assert_eq!(detected_language(Some(&json!("<script>"))), None);
        assert_eq!(detected_language(Some(&json!(3))), None);
        assert_eq!(detected_language(None), None);
    }
}
