//! Where a Mastodon server streams, and which server it is: `GET /api/v2/instance` names
//! the streaming host in `configuration.urls.streaming` (Mastodon 4.0+, GoToSocial),
//! which may be another host; without it the instance's own host serves
//! `/api/v1/streaming`. The instance's answer is outside data: only an http(s) or ws(s)
//! URL with a host is taken, and never one that would carry the token in clear text
//! (`ws://`) off this machine when the instance itself is reached over https.

use super::LIMITS;
use crate::config::Secret;
use crate::ports::StreamError;
use crate::sources::http;
use reqwest::StatusCode;
use std::time::Duration;
use url::{Host, Url};

/// How long the instance may take to say where it streams.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// An instance document is a few kilobytes; a larger answer is not read to its end.
const LARGEST_INSTANCE: usize = 1 << 20;
/// The websocket route below the streaming base.
const ROUTE: &str = "/api/v1/streaming";

/// The server software behind the Mastodon API, where it changes what we subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Mastodon,
    /// Publishes nothing to hashtag streams and takes no in-socket hashtag
    /// subscription (superseriousbusiness/gotosocial internal/stream): hashtags stay
    /// polled.
    GoToSocial,
}

/// Where to open the websocket, and what answers there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws(s)://host[:port]/…/api/v1/streaming`, without query, fragment or user info.
    pub url: Url,
    pub flavour: Flavour,
}

/// Ask the instance where it streams. A 404 (no v2 instance API: Mastodon before 4.0)
/// or an answer we cannot read leaves the instance's own host; 401/403 is `Refused`,
/// 429, 5xx and network trouble are `Dropped` (with the server's wait).
pub async fn discover(
    client: &reqwest::Client,
    instance: &str,
    token: &Secret,
) -> Result<Endpoint, StreamError> {
    let base = Url::parse(instance).map_err(|_| StreamError::Refused {
        reason: format!("the instance URL {instance:?} is not a URL"),
    })?;
    let at = format!("{instance}/api/v2/instance");
    let answer = client
        .get(&at)
        .bearer_auth(token.expose())
        .timeout(DISCOVERY_TIMEOUT)
        .send()
        .await
        .map_err(|e| StreamError::Dropped {
            after: None,
            reason: format!(
                "Mastodon at {instance} could not be reached: {}",
                http::without_url(&e)
            ),
        })?;
    let status = answer.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(StreamError::Refused {
            reason: format!(
                "Mastodon answered {} for {at}: check the token in mastodon.access_token",
                status.as_u16()
            ),
        });
    }
    if http::is_transient(status) {
        return Err(StreamError::Dropped {
            after: LIMITS.retry_wait(status, answer.headers(), chrono::Utc::now()),
            reason: format!("Mastodon answered {} for {at}", status.as_u16()),
        });
    }
    let document = if status.is_success() {
        read_capped(answer)
            .await
            .map_err(|reason| StreamError::Dropped {
                after: None,
                reason: format!("Mastodon's answer from {at} {reason}"),
            })?
    } else {
        tracing::debug!(
            status = status.as_u16(),
            "no v2 instance API; streaming is looked for on the instance's own host"
        );
        serde_json::Value::Null
    };
    endpoint_from(&base, &document)
}

/// Read a body of at most [`LARGEST_INSTANCE`] bytes as JSON (`Null` when it is not JSON).
async fn read_capped(mut answer: reqwest::Response) -> Result<serde_json::Value, String> {
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| format!("was cut off: {}", http::without_url(&e)))?
    {
        if body.len() + chunk.len() > LARGEST_INSTANCE {
            return Err(format!("is larger than {LARGEST_INSTANCE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// The endpoint an instance document names (pure: the rules in one place). `document`
/// is what `/api/v2/instance` answered, `Null` when it said nothing usable.
pub fn endpoint_from(
    instance: &Url,
    document: &serde_json::Value,
) -> Result<Endpoint, StreamError> {
    let text = |pointer: &str| document.pointer(pointer).and_then(|v| v.as_str());
    let flavour = if [text("/source_url"), text("/version")]
        .into_iter()
        .flatten()
        .any(|s| s.to_ascii_lowercase().contains("gotosocial"))
    {
        Flavour::GoToSocial
    } else {
        Flavour::Mastodon
    };
    let own = || {
        websocket_url(instance).ok_or_else(|| StreamError::Refused {
            reason: format!("the instance URL {instance} is not an http(s) URL with a host"),
        })
    };
    let url = match text("/configuration/urls/streaming") {
        None => own()?,
        Some(advertised) => match Url::parse(advertised).ok().and_then(|u| websocket_url(&u)) {
            Some(url) => url,
            None => {
                tracing::warn!(
                    instance = %instance,
                    "the instance names a streaming URL that is not an http(s) or ws(s) URL with a host; using the instance's own host"
                );
                own()?
            }
        },
    };
    if instance.scheme() == "https" && url.scheme() == "ws" && !is_loopback(&url) {
        return Err(StreamError::Refused {
            reason: format!(
                "the instance {instance} is reached over https but names {url} for streaming, which would send the token unencrypted: refusing the downgrade"
            ),
        });
    }
    Ok(Endpoint { url, flavour })
}

/// `http(s)`/`ws(s)` with a host and no user info, turned into the `ws(s)` URL of the
/// streaming route below its path.
fn websocket_url(base: &Url) -> Option<Url> {
    let scheme = match base.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    if base.host().is_none() || !base.username().is_empty() || base.password().is_some() {
        return None;
    }
    let mut url = base.clone();
    url.set_scheme(scheme).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_string();
    if path.ends_with(ROUTE) {
        url.set_path(&path);
    } else {
        url.set_path(&format!("{path}{ROUTE}"));
    }
    Some(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(instance: &str, document: serde_json::Value) -> Result<Endpoint, StreamError> {
        endpoint_from(&Url::parse(instance).unwrap(), &document)
    }

    #[test]
    fn the_advertised_host_is_used_with_the_streaming_route_and_ws_schemes() {
        let e = at(
            "https://mastodon.social",
            json!({"configuration": {"urls": {"streaming": "wss://streaming.mastodon.social"}}}),
        )
        .unwrap();
        assert_eq!(
            e.url.as_str(),
            "wss://streaming.mastodon.social/api/v1/streaming"
        );
        assert_eq!(e.flavour, Flavour::Mastodon);
        // http(s) becomes ws(s); a path already naming the route is kept; query and
        // fragment are dropped.
        let e = at(
            "https://a.example",
            json!({"configuration": {"urls": {"streaming": "https://b.example:4000/api/v1/streaming/?x=1#f"}}}),
        )
        .unwrap();
        assert_eq!(e.url.as_str(), "wss://b.example:4000/api/v1/streaming");
        let e = at("http://127.0.0.1:9", json!({})).unwrap();
        assert_eq!(e.url.as_str(), "ws://127.0.0.1:9/api/v1/streaming");
        // Mastodon before 4.0 (404 on v2): the instance's own host.
        let e = at("https://old.example/", serde_json::Value::Null).unwrap();
        assert_eq!(e.url.as_str(), "wss://old.example/api/v1/streaming");
    }

    #[test]
    fn a_streaming_url_that_is_not_one_falls_back_to_the_instance_host() {
        for bad in [
            json!("file:///etc/passwd"),
            json!("ftp://evil.example"),
            json!("wss://user:pw@evil.example"),
            json!("not a url"),
            json!("wss://"),
        ] {
            let e = at(
                "https://social.example",
                json!({"configuration": {"urls": {"streaming": bad.clone()}}}),
            )
            .unwrap();
            assert_eq!(
                e.url.as_str(),
                "wss://social.example/api/v1/streaming",
                "{bad}"
            );
        }
        // A value that is not a string is no streaming URL either.
        let e = at(
            "https://social.example",
            json!({"configuration": {"urls": {"streaming": 7}}}),
        )
        .unwrap();
        assert_eq!(e.url.host_str(), Some("social.example"));
    }

    #[test]
    fn an_https_instance_never_sends_the_token_over_plain_ws_off_this_machine() {
        for downgrade in [
            "ws://evil.example",
            "http://social.example",
            "ws://10.0.0.1:4000",
        ] {
            let err = at(
                "https://social.example",
                json!({"configuration": {"urls": {"streaming": downgrade}}}),
            )
            .unwrap_err();
            assert!(
                matches!(&err, StreamError::Refused { reason } if reason.contains("downgrade")),
                "{downgrade}: {err:?}"
            );
        }
        // Loopback stays allowed (a local proxy), and an http instance is plain already.
        for (instance, streaming) in [
            ("https://social.example", "ws://127.0.0.1:4000"),
            ("https://social.example", "ws://localhost:4000"),
            ("https://social.example", "ws://[::1]:4000"),
            ("http://social.example", "ws://other.example"),
        ] {
            at(
                instance,
                json!({"configuration": {"urls": {"streaming": streaming}}}),
            )
            .unwrap_or_else(|e| panic!("{instance} → {streaming}: {e:?}"));
        }
    }

    #[test]
    fn gotosocial_is_known_by_its_source_url_or_version() {
        // As GoToSocial's own test of its v2 instance answer shows it.
        let gts = json!({
            "version": "0.0.0-testrig",
            "source_url": "https://github.com/superseriousbusiness/gotosocial",
            "configuration": {"urls": {"streaming": "wss://localhost:8080"}}
        });
        let e = at("http://localhost:8080", gts).unwrap();
        assert_eq!(e.flavour, Flavour::GoToSocial);
        assert_eq!(e.url.as_str(), "wss://localhost:8080/api/v1/streaming");
        let e = at("https://g.example", json!({"version": "0.19.1+GoToSocial"})).unwrap();
        assert_eq!(e.flavour, Flavour::GoToSocial);
        let e = at(
            "https://m.example",
            json!({"version": "4.3.0", "source_url": "https://github.com/mastodon/mastodon"}),
        )
        .unwrap();
        assert_eq!(e.flavour, Flavour::Mastodon);
    }
}
