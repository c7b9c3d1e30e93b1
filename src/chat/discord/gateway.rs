//! The gateway connection, run by serenity: we only need interactions, which Discord
//! sends whatever the intents, so the bot asks for no privileged intent. serenity resumes
//! or re-identifies by itself after a drop.

use super::{Discord, DiscordError};
use serenity::all::{
    ClientBuilder, Context, EventHandler, GatewayIntents, HttpBuilder, Interaction, Ready,
    ResumedEvent,
};
use std::sync::Arc;

struct Handler {
    discord: Arc<Discord>,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, session = %ready.session_id, "Discord gateway ready");
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {
        tracing::info!("Discord gateway session resumed");
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        let (id, token) = match &interaction {
            Interaction::Component(c) => (c.id.to_string(), c.token.clone()),
            Interaction::Command(c) | Interaction::Autocomplete(c) => {
                (c.id.to_string(), c.token.clone())
            }
            Interaction::Modal(m) => (m.id.to_string(), m.token.clone()),
            _ => return,
        };
        let discord = self.discord.clone();
        let work = discord.clone();
        discord.desk.spawn_later(
            "a Discord interaction",
            Box::pin(async move {
                if let Some(answer) = work.answer_from_gateway(interaction).await {
                    work.respond(&id, &token, &answer).await;
                }
            }),
        );
    }
}

/// Connect to the gateway and keep the connection until `shutdown` resolves.
pub async fn run_gateway(
    discord: Arc<Discord>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DiscordError> {
    let config = discord.config().clone();
    let mut http = HttpBuilder::new(config.bot_token.expose());
    // A self-hosted proxy or a test fake stands in for discord.com. serenity's own rate
    // limiter ignores a proxy, so it is off there; our REST calls have their own backoff.
    let origin = config
        .api_url
        .trim_end_matches("/api/v10")
        .trim_end_matches('/');
    if origin != "https://discord.com" {
        http = http.proxy(origin).ratelimiter_disabled(true);
    }
    let mut client = ClientBuilder::new_with_http(http.build(), GatewayIntents::GUILDS)
        .event_handler(Handler {
            discord: discord.clone(),
        })
        .await
        .map_err(|e| DiscordError::Unavailable {
            url: config.api_url.clone(),
            reason: format!("the gateway client could not start: {e}"),
        })?;
    let shards = client.shard_manager.clone();
    let running = client.start();
    tokio::pin!(running);
    // A session that ends by itself is a failure: the supervisor starts a new one.
    tokio::select! {
        ended = &mut running => {
            return Err(DiscordError::Unavailable {
                url: config.api_url.clone(),
                reason: match ended {
                    Ok(()) => "the gateway connection ended".into(),
                    Err(e) => format!("the gateway connection ended: {e}"),
                },
            });
        }
        _ = shutdown => {}
    }
    shards.shutdown_all().await;
    if let Err(e) = running.await {
        tracing::warn!(error = %e, "Discord gateway stopped with an error");
    }
    Ok(())
}
