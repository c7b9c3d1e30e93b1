//! What a platform, a stage, an agent and a route are called in every report: breakdown
//! keys, metric labels and export cells use the same words, so a dashboard, a
//! spreadsheet and the chat report agree.

use crate::domain::{AgentRef, Ticket};

pub(super) use crate::ports::tally::{platform_key, stage_key, PLATFORMS, STAGES};

pub(super) fn route_key(t: &Ticket) -> String {
    crate::ports::tally::route_label(&t.route).to_string()
}

/// `slack:U024BE7LH`: unique across surfaces.
pub(super) fn agent_key(agent: &AgentRef) -> String {
    agent.member_key()
}

pub(super) fn agent_label(agent: &AgentRef) -> String {
    format!("{} ({})", agent.name, agent.surface.label())
}
