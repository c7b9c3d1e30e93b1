//! One integration test binary (each extra binary re-links slack-morphism).
#[path = "../fakes/mod.rs"]
mod fakes;

mod fakes_selftest;
