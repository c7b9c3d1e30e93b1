//! The desk's numbers: support metrics over a window (`/mentions stats 7d`), the
//! Prometheus exposition behind `/metrics`, and ticket exports for a spreadsheet or a
//! warehouse. Everything here is pure: tickets and a time come in, numbers and text come
//! out; no store, no clock.
//!
//! Definitions, in the support team's words:
//! - **Window**: `from` inclusive, `to` exclusive (`from <= t < to`), so adjacent windows
//!   never count a ticket twice. `Window::parse("7d", now)` ends at `now`.
//! - **Volume** (`tickets`): tickets whose `opened_at` (when the desk created the ticket)
//!   falls in the window. Every other figure of a [`Summary`] is about that same cohort,
//!   as the tickets stand now.
//! - **First response**: from when the desk received the mention (the ticket's
//!   `opened_at`; the post's own claimed `created_at` can be years off and is never
//!   trusted for a clock) to the `at` of the earliest reply whose state is
//!   `Published`. `at` is when the agent sent it, not when the platform confirmed it.
//!   Public and private replies both count; pending and failed replies do not. A ticket
//!   with no published reply is *unanswered*. Follow-ups do not restart the clock.
//! - **Resolution**: from when the desk received the mention to the ticket's `updated_at` while
//!   its stage is `Resolved` (the store keeps no separate resolution time; an update after
//!   resolving, such as a late publish confirmation, moves it).
//! - **Within target** (SLA): a ticket is *met* when its first response came within the
//!   target (exactly at the target counts as met), *breached* when it came later or when
//!   it is still unanswered after the target passed (`now > received + target`, where
//!   `now` is the window's `to`), and *pending* otherwise. The percentage is met over
//!   met + breached, rounded down, so 100% means every one.
//! - **Ignored** tickets (spam, noise) count in volume and stage counts only: they are
//!   never unanswered, never breach the target and add no response times.
//! - **Stages**: *open* is `New` or `Posted` (claimed or not), then `Replied`, `Resolved`,
//!   `Ignored`.
//! - **Percentiles** are nearest-rank: p50 and p90 are observed times such that at least
//!   50% (90%) of the tickets took no longer.
//! - **Per agent**: the agent who sent the first published reply, keyed `surface:user_id`
//!   (e.g. `slack:U024BE7LH`); their group holds the tickets they answered first.
//! - **Per route**: the route stamped on the ticket when it arrived, each judged against
//!   its own route's first-response target.
//! - **Per shift**: the rotation(s) whose primary shift was on when the ticket was opened
//!   (`emea`, `americas+apac` during an overlap, `off shift` when nobody was).
//! - The desk's own off-hours acknowledgement is not a response.
//! - **Incidents** belong to the window they were opened in; an incident's *first answer*
//!   runs from its opening to the first published answer to any of its members.

mod charts;
mod export;
mod incidents;
mod keys;
mod numbers;
mod prometheus;
#[cfg(test)]
mod testkit;
mod text;

pub use export::{
    export_csv_from, export_csv_tickets, export_jsonl, export_jsonl_from, export_person_jsonl,
    ExportError, EXPORT_PAGE,
};
pub use incidents::{
    incident_cells, incident_figures, incidents_exposition, incidents_text, IncidentFigures,
    INCIDENT_COLUMNS,
};
pub use numbers::{
    csat_by_day, first_response, resolved_at, summarize, summarize_with, BadWindow, Figures, Group,
    Satisfaction, ShiftOf, SlaOf, Spread, StageCounts, Summarizer, Summary, Targets, Window,
};
pub use prometheus::{desk_counts_of, escape_label, prometheus, prometheus_from, prometheus_with};
pub use text::render_text;
// ---- charts (issue 14, part 4) ----
pub use charts::render::{daily_png, first_response_png, week_png, ChartError};
pub use charts::{
    daily, first_response_by_hour, hour_of_week, week_chart, ChartData, Day, Gap, HourResponse,
    WeekChart,
};
