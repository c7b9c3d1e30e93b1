//! The wiring: from a checked config, build the store, the platforms and the surfaces,
//! start the runtime's tasks under supervision, and stop them together.

pub mod clock;
pub mod http;
pub mod privacy;

use crate::chat::discord::{run_gateway, Discord, DiscordError};
use crate::chat::slack::{run_socket_mode, Slack, SlackError};
use crate::config::{Config, DiscordMode, SlackMode};
use crate::domain::{Desk, SurfaceKind};
use crate::ports::Surface;

use crate::ports::StoreError;
use crate::runtime::desk::DeskService;
use crate::runtime::duties::Replica;
use crate::runtime::failpoints::Failpoints;
use crate::runtime::language::Languages;
use crate::runtime::outbox::OutboxSender;
use crate::runtime::supervisor::Supervisor;
use crate::runtime::{scheduler, watcher};
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
    #[error("translation: {0}")]
    Translation(String),
    #[error("the HTTP server could not listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Start everything, run until `shutdown` resolves, then stop in order: no new work is
/// taken, in-flight sends finish (or stay queued), and the store is flushed.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let store = crate::store::open(&config.store, config.routes.clone()).await?;
    let platforms = crate::sources::connect_all(&config, &store).await?;
    // Duties run on one replica at a time, under leases in the store.
    let replica = Replica::new(crate::wire::instance::name(), store.clone(), config.lease);
    tracing::info!(replica = %replica.name(), store = %config.store.describe(), "starting");

    // Each mention's language is detected before it is stored; the detector reads its
    // models once now, so the first mention does not wait for it.
    let languages = if config.language.enabled {
        Languages::new(
            Arc::new(crate::language::Lingua::new()),
            config.language.policy,
        )
    } else {
        Languages::off()
    };
    if let Some(took) = languages.warm_up().await {
        tracing::info!(
            took_ms = took.as_millis() as u64,
            min_confidence = config.language.policy.min_confidence,
            "language detection on"
        );
    }

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
    roster.approvals = config.approvals.clone();
    let clock = clock::from_env();
    let failpoints = Failpoints::from_env();
    // Without a [translation] section no translator exists, so nothing is ever sent.
    let translation = match &config.translation {
        Some(t) => {
            let translator = crate::translators::connect(t).map_err(RunError::Translation)?;
            tracing::info!(service = translator.service(), url = %t.url, team_language = %t.team_language, "machine translation on");
            Some(Arc::new(crate::runtime::translation::Translation::new(
                translator,
                t.team_language.clone(),
            )))
        }
        None => None,
    };
    let desk = Arc::new(
        DeskService::new(store.clone(), roster, wake.clone())
            .with_clock(clock.clone())
            .with_failpoints(&failpoints)
            .with_canned(config.canned.clone(), config.brand.clone())
            .with_oncall(config.oncall.clone(), config.routes.clone())
            .with_translation(translation.clone())
            .with_surveys(config.surveys.clone())
            .with_networks(
                platforms
                    .publishers
                    .iter()
                    .map(|p| p.platform())
                    .filter(|p| *p != crate::domain::Platform::Other)
                    .map(|p| crate::domain::priority::network_key(p, None))
                    .collect(),
            ),
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
    let mut tasks = Supervisor::new(stop_rx.clone(), failpoints.clone());

    let work = desk.background_work();
    tasks.spawn("background", move |stop| {
        let work = work.clone();
        async move { work.run(stop).await }
    });

    if let Some(slack) = slack
        .clone()
        .filter(|s| s.config().agent_usergroup.is_some())
    {
        tasks.spawn("slack-agent-group", move |mut stop| {
            let slack = slack.clone();
            async move {
                loop {
                    if let Err(e) = slack.refresh_agent_group().await {
                        tracing::warn!(error = %e, "could not resolve the agent user group; keeping the last known members");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                        _ = stop.changed() => return,
                    }
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
    let chat_surfaces = surfaces.clone();
    // How each source is read on this replica (streamed or polled), for `/healthz`.
    let modes = watcher::Modes::default();
    for source in platforms.sources.clone() {
        let key = source.cursor_key();
        let platform = key.split(':').next().unwrap_or("source").to_string();
        // One watcher per source among all replicas: its cursor moves under its lease.
        let duty = format!("watcher:{key}");
        let (fence, fenced) = replica.fence(&duty);
        let (replica, wake, surfaces, clock, modes, languages) = (
            replica.clone(),
            wake.clone(),
            surfaces.clone(),
            clock.clone(),
            modes.clone(),
            languages.clone(),
        );
        let max_backoff = config.outbox.max_backoff;
        tasks.spawn(format!("watcher:{platform}"), move |stop| {
            let (replica, duty, fence) = (replica.clone(), duty.clone(), fence.clone());
            let (source, store, wake, surfaces, clock, modes, languages) = (
                source.clone(),
                fenced.clone(),
                wake.clone(),
                surfaces.clone(),
                clock.clone(),
                modes.clone(),
                languages.clone(),
            );
            async move {
                replica
                    .hold(
                        &duty,
                        fence,
                        |stop| {
                            watcher::Watcher {
                                source: source.clone(),
                                store: store.clone(),
                                wake_outbox: wake.clone(),
                                max_backoff,
                                announcers: surfaces.clone(),
                                clock: clock.clone(),
                                modes: modes.clone(),
                                languages: languages.clone(),
                            }
                            .run(stop)
                        },
                        stop,
                    )
                    .await
            }
        });
    }
    let sender = Arc::new(
        OutboxSender::new(
            store.clone(),
            surfaces,
            publishers,
            wake.clone(),
            config.outbox.clone(),
        )
        .with_pager(desk.clone())
        .with_translation(translation)
        .with_clock(clock.clone())
        .with_claimant(replica.name())
        .with_failpoints(failpoints),
    );
    tasks.spawn("outbox", move |stop| sender.clone().run(stop));
    // The SLA clocks, off-hours acknowledgements and hand-off digests: one replica.
    let (fence, fenced) = replica.fence("scheduler");
    let scheduler = Arc::new(scheduler::Scheduler {
        store: fenced,
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
        clock: clock.clone(),
    });
    {
        let replica = replica.clone();
        tasks.spawn("scheduler", move |stop| {
            let (replica, fence, scheduler) = (replica.clone(), fence.clone(), scheduler.clone());
            async move {
                replica
                    .hold("scheduler", fence, |stop| scheduler.clone().run(stop), stop)
                    .await
            }
        });
    }

    // What [retention] keeps no longer is anonymised: one replica looks.
    if !config.retention.policy.is_empty() {
        let (fence, fenced) = replica.fence("retention");
        let retention = Arc::new(crate::runtime::retention::RetentionDuty {
            store: fenced,
            policy: config.retention.policy.clone(),
            every: config.retention.check_every,
            clock: clock.clone(),
            wake_outbox: wake.clone(),
        });
        let replica = replica.clone();
        tasks.spawn("retention", move |stop| {
            let (replica, fence, retention) = (replica.clone(), fence.clone(), retention.clone());
            async move {
                replica
                    .hold("retention", fence, |stop| retention.clone().run(stop), stop)
                    .await
            }
        });
    }

    // Storms become incidents: one replica follows the new tickets.
    if config.storms.enabled {
        let (fence, fenced) = replica.fence("storms");
        let storms = Arc::new(crate::runtime::storms::StormDesk {
            store: fenced,
            desk: desk.clone(),
            config: config.storms.clone(),
            clock: clock.clone(),
            wake_outbox: wake.clone(),
            x_budget: config.x.as_ref().map(|x| x.daily_request_budget),
        });
        let replica = replica.clone();
        tasks.spawn("storms", move |stop| {
            let (replica, fence, storms) = (replica.clone(), fence.clone(), storms.clone());
            async move {
                replica
                    .hold("storms", fence, |stop| storms.clone().run(stop), stop)
                    .await
            }
        });
    }

    let slack_http = slack.clone().filter(|s| s.config().mode == SlackMode::Http);
    let discord_http = discord
        .clone()
        .filter(|d| d.config().mode == DiscordMode::Http);
    let ingest = config.webhook.as_ref().map(|w| http::Ingest {
        store: store.clone(),
        secret: w.secret.clone(),
        wake: wake.clone(),
        clock: clock.clone(),
        languages: languages.clone(),
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
        let listener = Arc::new(listener);
        let metrics = http::Metrics {
            desk: desk.clone(),
            health: tasks.health(),
            replica: replica.clone(),
            sources: modes.clone(),
            surfaces: chat_surfaces.clone(),
        };
        let limits = config.http.clone();
        let app = http::router(slack_http, discord_http, ingest, metrics, &limits)
            // ---- charts (issue 14, part 4) ----
            .merge(http::charts_routes(
                desk.clone(),
                config.charts_token.clone(),
                &limits,
            ));
        tasks.spawn("http", move |stop| {
            let (listener, app, limits) = (listener.clone(), app.clone(), limits.clone());
            async move { crate::wire::http::server::serve(&listener, app, &limits, stop).await }
        });
    }

    if let Some(slack) = slack.filter(|s| s.config().mode == SlackMode::Socket) {
        let app_token = slack
            .config()
            .app_token
            .clone()
            .expect("validated: socket mode has an app token");
        tasks.spawn("slack-socket-mode", move |stop| {
            run_socket_mode(slack.clone(), app_token.clone(), 1, stopped(stop))
        });
    }

    if let Some(discord) = discord {
        if let Err(e) = discord.register_commands().await {
            tracing::error!(error = %e, "could not register the /mentions command in the Discord guild");
        }
        if discord.config().mode == DiscordMode::Gateway {
            // One gateway session among the replicas (HTTP-mode interactions, by
            // contrast, are answered by whichever replica they reach).
            let (fence, _) = replica.fence("discord-gateway");
            let replica = replica.clone();
            tasks.spawn("discord-gateway", move |stop| {
                let (replica, fence, discord) = (replica.clone(), fence.clone(), discord.clone());
                async move {
                    replica
                        .hold(
                            "discord-gateway",
                            fence,
                            |stop| run_gateway(discord.clone(), stopped(stop)),
                            stop,
                        )
                        .await
                }
            });
        }
    }

    tracing::info!(store = %config.store.describe(), replica = %replica.name(), "mentionbridge running");
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight work");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(20), tasks.stopped())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop in 20 s; their work stays queued in the outbox");
    }
    store.flush().await?;
    tracing::info!("store flushed; bye");
    Ok(())
}
