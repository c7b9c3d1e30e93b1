//! mentionbridge: social mentions become support tickets in team chat, and agents'
//! answers go back to the social platform exactly once.

pub mod config;
pub mod delivery;
pub mod domain;
pub mod sources;
pub mod store;
