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
