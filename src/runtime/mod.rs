//! The tokio side: the source watcher, the outbox sender, the chat listener, and how they
//! start, supervise and shut down together.

pub mod desk;
pub mod outbox;
pub mod watcher;

use crate::chat::slack::{run_socket_mode, Slack, SlackError};
use crate::chat::Surface;
use crate::config::{Config, SlackMode};
use crate::domain::Desk;
use crate::sources::mastodon::{Mastodon, MastodonError};
use crate::sources::{Publisher, Source};
use crate::store::{Store, StoreError};
use desk::DeskService;
use outbox::OutboxSender;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{watch, Notify};

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Mastodon credentials check failed: {0}")]
    Mastodon(MastodonError),
    #[error("Slack credentials check failed: {0}")]
    Slack(SlackError),
    #[error("the HTTP server could not listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Start everything, run until `shutdown` resolves, then stop in order: no new work is
/// taken, in-flight sends finish (or stay queued), and the store is flushed.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let store = Store::open(&config.store_path)?;
    let mastodon = Arc::new(
        Mastodon::connect(&config.mastodon)
            .await
            .map_err(RunError::Mastodon)?,
    );

    let wake = Arc::new(Notify::new());
    let desk = Arc::new(DeskService::new(
        store.clone(),
        Desk::new(
            config.slack.agent_user_ids.iter().cloned(),
            mastodon.text_rules(),
        ),
        wake.clone(),
    ));
    let slack = Arc::new(Slack::new(&config.slack, desk.clone()).map_err(RunError::Slack)?);
    slack.verify().await.map_err(RunError::Slack)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    if config.slack.agent_usergroup.is_some() {
        let slack = slack.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                if let Err(e) = slack.refresh_agent_group().await {
                    tracing::warn!(error = %e, "could not resolve the agent user group; keeping the last known members");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }

    let source: Arc<dyn Source> = mastodon.clone();
    tasks.spawn(watcher::watch_source(
        source,
        store.clone(),
        wake.clone(),
        config.outbox.max_backoff,
        stop_rx.clone(),
    ));

    let publisher: Arc<dyn Publisher> = mastodon.clone();
    let surfaces: Vec<Arc<dyn Surface>> = vec![slack.clone()];
    let sender = Arc::new(OutboxSender::new(
        store.clone(),
        surfaces,
        publisher,
        wake.clone(),
        config.outbox.clone(),
    ));
    tasks.spawn(sender.run(stop_rx.clone()));

    let http_wanted = config.slack.mode == SlackMode::Http;
    if http_wanted {
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| RunError::Listen {
                addr: config.http_listen.to_string(),
                source,
            })?;
        tracing::info!(addr = %config.http_listen, "HTTP server listening (Slack events, interactivity, commands)");
        let app = crate::http::router(slack.clone());
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
    }

    if config.slack.mode == SlackMode::Socket {
        let app_token = config
            .slack
            .app_token
            .clone()
            .expect("validated: socket mode has an app token");
        let mut stop = stop_rx.clone();
        let slack = slack.clone();
        tasks.spawn(async move {
            let stopped = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = run_socket_mode(slack, app_token, 1, stopped).await {
                tracing::error!(error = %e, "Slack Socket Mode stopped");
            }
        });
    }

    tracing::info!(store = %config.store_path.display(), "mentionbridge running");
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight work");
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop in 20 s; their work stays queued in the outbox");
    }
    store.flush().await?;
    tracing::info!("store flushed; bye");
    Ok(())
}
