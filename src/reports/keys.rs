//! What a platform, a stage, an agent and a route are called in every report: breakdown
//! keys, metric labels and export cells use the same words, so a dashboard, a
//! spreadsheet and the chat report agree.

use crate::domain::routes::DEFAULT_ROUTE;
use crate::domain::{AgentRef, Platform, Stage, Ticket};

pub(super) fn route_key(t: &Ticket) -> String {
    if t.route.is_empty() {
        DEFAULT_ROUTE.to_string()
    } else {
        t.route.clone()
    }
}

pub(super) fn platform_key(p: Platform) -> &'static str {
    match p {
        Platform::Mastodon => "mastodon",
        Platform::Bluesky => "bluesky",
        Platform::X => "x",
        Platform::Other => "other",
    }
}

pub(super) fn stage_key(s: Stage) -> &'static str {
    match s {
        Stage::New => "new",
        Stage::Posted => "posted",
        Stage::Replied => "replied",
        Stage::Resolved => "resolved",
        Stage::Ignored => "ignored",
    }
}

pub(super) const PLATFORMS: [Platform; 4] = [
    Platform::Mastodon,
    Platform::Bluesky,
    Platform::X,
    Platform::Other,
];

pub(super) const STAGES: [Stage; 5] = [
    Stage::New,
    Stage::Posted,
    Stage::Replied,
    Stage::Resolved,
    Stage::Ignored,
];

/// `slack:U024BE7LH`: unique across surfaces.
pub(super) fn agent_key(agent: &AgentRef) -> String {
    format!(
        "{}:{}",
        agent.surface.label().to_ascii_lowercase(),
        agent.user_id
    )
}

pub(super) fn agent_label(agent: &AgentRef) -> String {
    format!("{} ({})", agent.name, agent.surface.label())
}
