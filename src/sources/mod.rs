//! The social-platform adapters: one module per platform implements the `Source` and
//! `Publisher` ports (`crate::ports`) and owns that platform's wire format, auth, rate
//! limits and polling; nothing else in the program knows them. `http` is what they share.

pub mod bluesky;
mod http;
pub mod mastodon;
pub mod webhook;
pub mod x;

use crate::ports::{Publisher, Source};
use std::sync::Arc;
use thiserror::Error;

/// More followers than this is no real count (more than there are people): ignored.
const MAX_FOLLOWERS: u64 = 20_000_000_000;

/// A follower count as a platform's JSON carries it (`followers_count`, `followersCount`),
/// read leniently: anything but a whole number from 0 to [`MAX_FOLLOWERS`] (a negative,
/// a fraction, a string, an absurd number, null) is no count, never a failed post.
pub(crate) fn follower_count<'de, D>(d: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(value.as_u64().filter(|n| *n <= MAX_FOLLOWERS))
}

/// The social platforms the config names, connected and checked.
#[derive(Default)]
pub struct Platforms {
    pub sources: Vec<Arc<dyn Source>>,
    pub publishers: Vec<Arc<dyn Publisher>>,
}

#[derive(Debug, Error)]
#[error("{platform} credentials check failed: {message}")]
pub struct ConnectError {
    pub platform: &'static str,
    pub message: String,
}

/// Connect to every configured platform once (checking its credentials), in a fixed
/// order so a failure names the first platform that is wrong.
pub async fn connect_all(
    config: &crate::config::Config,
    store: &crate::ports::SharedStore,
) -> Result<Platforms, ConnectError> {
    let mut platforms = Platforms::default();
    if let Some(c) = &config.mastodon {
        let m = Arc::new(
            mastodon::Mastodon::connect(c)
                .await
                .map_err(|e| ConnectError {
                    platform: "Mastodon",
                    message: e.to_string(),
                })?,
        );
        platforms.sources.push(m.clone());
        platforms.publishers.push(m);
    }
    if let Some(c) = &config.bluesky {
        let b = bluesky::Bluesky::connect(c, store.clone())
            .await
            .map_err(|e| ConnectError {
                platform: "Bluesky",
                message: e.to_string(),
            })?;
        platforms.sources.push(b.clone());
        platforms.publishers.push(b);
    }
    if let Some(c) = &config.x {
        let x = Arc::new(
            x::X::connect(c, store.clone())
                .await
                .map_err(|e| ConnectError {
                    platform: "X",
                    message: e.to_string(),
                })?,
        );
        platforms.sources.push(x.clone());
        platforms.publishers.push(x);
    }
    Ok(platforms)
}

#[cfg(test)]
mod reach_tests {
    #[derive(serde::Deserialize)]
    struct Author {
        #[serde(default, deserialize_with = "super::follower_count")]
        followers_count: Option<u64>,
    }

    fn read(json: &str) -> Option<u64> {
        serde_json::from_str::<Author>(json)
            .expect("any value is read")
            .followers_count
    }

    #[test]
    fn only_a_whole_plausible_number_is_a_follower_count() {
        assert_eq!(read(r#"{"followers_count": 48000}"#), Some(48_000));
        assert_eq!(read(r#"{"followers_count": 0}"#), Some(0));
        assert_eq!(read(r#"{}"#), None);
        for hostile in [
            "-5",
            "12.5",
            "1e30",
            "\"12000\"",
            "null",
            "[1]",
            "{\"n\": 1}",
            "18446744073709551615",
            "99999999999999999999999999",
        ] {
            assert_eq!(
                read(&format!(r#"{{"followers_count": {hostile}}}"#)),
                None,
                "{hostile}"
            );
        }
    }
}
