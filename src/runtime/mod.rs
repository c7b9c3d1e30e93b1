//! The tokio side: the source watcher, the outbox sender, the chat listener, and how they
//! start, supervise and shut down together.

pub mod desk;
pub mod outbox;
pub mod scheduler;
pub mod watcher;

use crate::chat::discord::{run_gateway, Discord, DiscordError};
use crate::chat::slack::{run_socket_mode, Slack, SlackError};
use crate::chat::Surface;
use crate::config::{Config, DiscordMode, SlackMode};
use crate::domain::{Desk, SurfaceKind};

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
    #[error(transparent)]
    Platform(#[from] crate::sources::ConnectError),
    #[error("Slack credentials check failed: {0}")]
    Slack(SlackError),
    #[error("Discord credentials check failed: {0}")]
    Discord(DiscordError),
    #[error("the HTTP server could not listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Start everything, run until `shutdown` resolves, then stop in order: no new work is
/// taken, in-flight sends finish (or stay queued), and the store is flushed.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let routes = config.routes.clone();
    let store = Store::open(&config.store_path)?.with_router(Arc::new(move |m| {
        let route = routes.route_for(m);
        let name = if route.name == crate::domain::routes::DEFAULT_ROUTE {
            String::new()
        } else {
            route.name.clone()
        };
        (name, route.sla.first_response)
    }));
    let platforms = crate::sources::connect_all(&config, &store).await?;

    let wake = Arc::new(Notify::new());
    let mut roster = Desk::new();
    for p in &platforms.publishers {
        roster = roster.with_rules(p.platform(), p.text_rules());
    }
    if let Some(s) = &config.slack {
        roster.roster_mut(SurfaceKind::Slack).user_ids = s.agent_user_ids.iter().cloned().collect();
    }
    if let Some(d) = &config.discord {
        let r = roster.roster_mut(SurfaceKind::Discord);
        r.user_ids = d.agent_user_ids.iter().cloned().collect();
        r.role_ids = d.agent_role_ids.iter().cloned().collect();
    }
    roster.agents = config.agents.clone();
    let desk = Arc::new(
        DeskService::new(store.clone(), roster, wake.clone())
            .with_canned(config.canned.clone(), config.brand.clone())
            .with_oncall(config.oncall.clone(), config.routes.clone()),
    );

    let slack = match &config.slack {
        Some(c) => {
            let slack = Arc::new(Slack::new(c, desk.clone()).map_err(RunError::Slack)?);
            slack.verify().await.map_err(RunError::Slack)?;
            Some(slack)
        }
        None => None,
    };
    let discord = match &config.discord {
        Some(c) => {
            let discord = Arc::new(Discord::new(c, desk.clone()).map_err(RunError::Discord)?);
            discord.verify().await.map_err(RunError::Discord)?;
            Some(discord)
        }
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let mut tasks = tokio::task::JoinSet::new();

    if let Some(slack) = slack
        .clone()
        .filter(|s| s.config().agent_usergroup.is_some())
    {
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

    let publishers = platforms.publishers.clone();
    let mut surfaces: Vec<Arc<dyn Surface>> = Vec::new();
    if let Some(s) = &slack {
        surfaces.push(s.clone());
    }
    if let Some(d) = &discord {
        surfaces.push(d.clone());
    }
    for source in platforms.sources.iter().cloned() {
        tasks.spawn(watcher::watch_source(
            source,
            store.clone(),
            wake.clone(),
            config.outbox.max_backoff,
            surfaces.clone(),
            stop_rx.clone(),
        ));
    }
    let sender = Arc::new(
        OutboxSender::new(
            store.clone(),
            surfaces,
            publishers,
            wake.clone(),
            config.outbox.clone(),
        )
        .with_pager(desk.clone()),
    );
    tasks.spawn(sender.run(stop_rx.clone()));
    let scheduler = scheduler::Scheduler {
        store: store.clone(),
        desk: desk.clone(),
        wake_outbox: wake.clone(),
        brand: config.brand.clone(),
        handoff_digest: config.handoff_digest,
        release_claims_at_handoff: config.release_claims_at_handoff,
        surface: if config.slack.is_some() {
            SurfaceKind::Slack
        } else {
            SurfaceKind::Discord
        },
    };
    tasks.spawn(scheduler.run(stop_rx.clone()));

    let slack_http = slack.clone().filter(|s| s.config().mode == SlackMode::Http);
    let discord_http = discord
        .clone()
        .filter(|d| d.config().mode == DiscordMode::Http);
    let ingest = config.webhook.as_ref().map(|w| crate::http::Ingest {
        store: store.clone(),
        secret: w.secret.clone(),
        wake: wake.clone(),
    });
    if slack_http.is_some() || discord_http.is_some() || ingest.is_some() || config.http_configured
    {
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| RunError::Listen {
                addr: config.http_listen.to_string(),
                source,
            })?;
        tracing::info!(addr = %config.http_listen, "HTTP server listening (chat interactions and/or the mentions webhook)");
        let metrics = crate::http::Metrics { desk: desk.clone() };
        let app = crate::http::router(slack_http, discord_http, ingest, metrics);
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
    }

    if let Some(slack) = slack.filter(|s| s.config().mode == SlackMode::Socket) {
        let app_token = slack
            .config()
            .app_token
            .clone()
            .expect("validated: socket mode has an app token");
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = run_socket_mode(slack, app_token, 1, stop).await {
                tracing::error!(error = %e, "Slack Socket Mode stopped");
            }
        });
    }

    if let Some(discord) = discord {
        if let Err(e) = discord.register_commands().await {
            tracing::error!(error = %e, "could not register the /mentions command in the Discord guild");
        }
        if discord.config().mode == DiscordMode::Gateway {
            let stop = stopped(stop_rx.clone());
            tasks.spawn(async move {
                if let Err(e) = run_gateway(discord, stop).await {
                    tracing::error!(error = %e, "Discord gateway stopped");
                }
            });
        }
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
