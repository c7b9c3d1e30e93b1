//! One integration test binary (each extra binary re-links slack-morphism).
#[path = "../fakes/mod.rs"]
mod fakes;

mod cli;
mod fakes_selftest;
mod harness;
mod http_mode;
mod restarts;
mod slack_flows;
