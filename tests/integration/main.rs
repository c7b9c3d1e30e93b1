//! One integration test binary (each extra binary re-links slack-morphism).
#[path = "../fakes/mod.rs"]
mod fakes;

mod bluesky_flows;
mod cli;
mod conversations;
mod discord_flows;
mod drivers;
mod fakes_discord_selftest;
mod fakes_selftest;
mod follow_the_sun;
mod harness;
mod http_hardening;
mod http_mode;
mod mixed_team;
mod restarts;
mod robustness;
mod scenarios;
mod slack_flows;
mod webhook_flows;
mod x_flows;
