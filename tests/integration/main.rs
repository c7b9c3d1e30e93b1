//! One integration test binary (each extra binary re-links slack-morphism).
#[path = "../fakes/mod.rs"]
mod fakes;

mod approvals;
mod bluesky_flows;
mod cli;
mod conversations;
mod discord_flows;
mod drivers;
mod fakes_discord_selftest;
mod fakes_jetstream_selftest;
mod fakes_mastodon_stream_selftest;
mod fakes_scaffold_selftest;
mod fakes_selftest;
mod fakes_translation_selftest;
mod fakes_x_stream_selftest;
mod follow_the_sun;
mod fuzz;
mod harness;
mod hostile_content;
mod http_hardening;
mod http_mode;
mod inbound_once;
mod jetstream;
mod languages;
mod layers;
mod mastodon_stream;
mod mixed_team;
mod postgres;
mod replicas;
mod restarts;
mod robustness;
#[macro_use]
mod scenarios;
mod secret_leaks;
mod slack_flows;
mod store_contract;
mod storms;
mod stream_watcher;
mod streaming;
mod team_defects;
mod translation_adapters;
mod translation_flows;
mod triage;
mod webhook_flows;
mod x_flows;
mod x_stream;
