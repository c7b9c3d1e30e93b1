//! OAuth 1.0a user context (RFC 5849, HMAC-SHA1): the signed `Authorization` header.

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The four secrets a request is signed with.
pub(super) struct Oauth1Credentials<'a> {
    pub(super) consumer_key: &'a str,
    pub(super) consumer_secret: &'a str,
    pub(super) token: &'a str,
    pub(super) token_secret: &'a str,
}

/// RFC 3986 percent-encoding as RFC 5849 §3.6 wants it: everything but unreserved.
pub(super) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The signature base string (RFC 5849 §3.4.1): method, base URI (no query) and the
/// normalised parameters (query, form and oauth_*, sorted by encoded name then value).
fn base_string(method: &str, url: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base_uri = url.split(['?', '#']).next().unwrap_or(url);
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        pct(base_uri),
        pct(&normalized)
    )
}

fn hmac_sha1_base64(key: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(text.as_bytes());
    base64(&mac.finalize().into_bytes())
}

fn signature(
    creds: &Oauth1Credentials<'_>,
    method: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    let key = format!("{}&{}", pct(creds.consumer_secret), pct(creds.token_secret));
    hmac_sha1_base64(&key, &base_string(method, url, params))
}

/// The `Authorization: OAuth ...` header for a request whose query (or form) parameters
/// are `params`; JSON bodies are not signed (as X expects).
pub(super) fn oauth1_header(
    creds: &Oauth1Credentials<'_>,
    method: &str,
    url: &str,
    params: &[(String, String)],
    nonce: &str,
    timestamp: i64,
) -> String {
    let mut oauth: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), creds.consumer_key.into()),
        ("oauth_nonce".into(), nonce.into()),
        ("oauth_signature_method".into(), "HMAC-SHA1".into()),
        ("oauth_timestamp".into(), timestamp.to_string()),
        ("oauth_token".into(), creds.token.into()),
        ("oauth_version".into(), "1.0".into()),
    ];
    let mut all = params.to_vec();
    all.extend(oauth.iter().cloned());
    let sig = signature(creds, method, url, &all);
    oauth.push(("oauth_signature".into(), sig));
    oauth.sort();
    let fields: Vec<String> = oauth
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", pct(k), pct(v)))
        .collect();
    format!("OAuth {}", fields.join(", "))
}

/// 32 hex characters, unique per request (no randomness crate needed: a hash of the
/// clock, the process and a counter).
pub(super) fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(
        Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of X's "Creating a signature" page (OAuth 1.0a).
    fn example() -> (Oauth1Credentials<'static>, Vec<(String, String)>) {
        let creds = Oauth1Credentials {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog",
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        };
        let params = [
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("include_entities", "true"),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        (creds, params)
    }

    #[test]
    fn oauth1_signature_matches_the_worked_example_of_x_docs() {
        let (creds, params) = example();
        let url = "https://api.twitter.com/1/statuses/update.json?include_entities=true";
        assert_eq!(
            base_string("POST", url, &params),
            "POST&https%3A%2F%2Fapi.twitter.com%2F1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"
        );
        assert_eq!(
            signature(&creds, "POST", url, &params),
            "tnnArxj06cWHq44gCs1OSKk/jLY="
        );
        // The same example on the page's later revision (API 1.1 URL).
        assert_eq!(
            signature(
                &creds,
                "POST",
                "https://api.twitter.com/1.1/statuses/update.json",
                &params
            ),
            "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
        );
    }

    #[test]
    fn oauth1_header_carries_every_oauth_field_encoded() {
        let (creds, _) = example();
        let params = vec![
            ("include_entities".to_string(), "true".to_string()),
            (
                "status".to_string(),
                "Hello Ladies + Gentlemen, a signed OAuth request!".to_string(),
            ),
        ];
        let header = oauth1_header(
            &creds,
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            1_318_622_958,
        );
        assert_eq!(
            header,
            "OAuth oauth_consumer_key=\"xvz1evFS4wEEPTGEFPHBog\", oauth_nonce=\"kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg\", oauth_signature=\"hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D\", oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"1318622958\", oauth_token=\"370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb\", oauth_version=\"1.0\""
        );
        assert_eq!(pct("a b+c/~é"), "a%20b%2Bc%2F~%C3%A9");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }
}
