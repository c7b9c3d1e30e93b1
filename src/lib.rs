//! mentionbridge: social mentions become support tickets in team chat, and agents'
//! answers go back to the social platform exactly once.

pub mod app;
pub mod chat;
pub mod config;
pub mod domain;
pub mod language;
pub mod ports;
pub mod reports;
pub mod runtime;
pub mod sources;
pub mod store;
pub mod translators;
pub mod wire;
