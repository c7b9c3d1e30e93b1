//! Incidents in the numbers: how many storms a window saw, how big they were, and how
//! long the first answer took (from the incident's opening to the first member's
//! published answer). An incident belongs to the window it was opened in. The same
//! figures go to `/mentions stats`, `/metrics` and the export.

use super::numbers::{Spread, Window};
use super::text::human;
use crate::domain::incident::{BulkState, Incident};
use serde_json::Value;
use std::fmt::Write as _;

/// The incidents opened in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFigures {
    pub incidents: usize,
    /// Members of them all (split-off ones not counted).
    pub members: u64,
    pub largest: u64,
    /// Incidents whose first member got an answer, and how long it took.
    pub first_answer: Spread,
    pub unanswered: usize,
}

/// The figures of the incidents opened in `window`.
pub fn incident_figures(incidents: &[Incident], window: &Window) -> IncidentFigures {
    let cohort: Vec<&Incident> = incidents
        .iter()
        .filter(|i| window.contains(i.opened_at))
        .collect();
    let waits = cohort
        .iter()
        .filter_map(|i| i.time_to_first_answer())
        .collect();
    IncidentFigures {
        incidents: cohort.len(),
        members: cohort.iter().map(|i| i.members).sum(),
        largest: cohort.iter().map(|i| i.members).max().unwrap_or(0),
        first_answer: Spread::of(waits),
        unanswered: cohort
            .iter()
            .filter(|i| i.first_answer_at.is_none())
            .count(),
    }
}

/// The line `/mentions stats` adds about incidents (none: nothing).
pub fn incidents_text(f: &IncidentFigures) -> String {
    if f.incidents == 0 {
        return String::new();
    }
    let mut out = format!(
        "• Incidents: {} ({} mentions, the largest {}); first answer ",
        f.incidents, f.members, f.largest
    );
    match (f.first_answer.p50, f.first_answer.p90) {
        (Some(p50), Some(p90)) => {
            let _ = write!(out, "median {}, 90% within {}", human(p50), human(p90));
        }
        _ => out.push_str("none yet"),
    }
    if f.unanswered > 0 {
        let _ = write!(out, "; {} without an answer yet", f.unanswered);
    }
    out.push('\n');
    out
}

/// The incident lines of `/metrics`: every incident since the store began.
pub fn incidents_exposition(incidents: &[Incident]) -> String {
    let answered: Vec<i64> = incidents
        .iter()
        .filter_map(|i| i.time_to_first_answer())
        .map(|d| d.num_seconds())
        .collect();
    let bulk = |state: BulkState| {
        incidents
            .iter()
            .filter(|i| i.bulk.as_ref().is_some_and(|b| b.state == state))
            .count()
    };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP mentionbridge_{name} {help}");
        let _ = writeln!(out, "# TYPE mentionbridge_{name} {kind}");
        out.push_str(&value);
    };
    metric(
        "incidents_total",
        "counter",
        "Storms that became incidents.",
        format!("mentionbridge_incidents_total {}\n", incidents.len()),
    );
    metric(
        "incident_members_total",
        "counter",
        "Mentions that joined an incident (split-off ones not counted).",
        format!(
            "mentionbridge_incident_members_total {}\n",
            incidents.iter().map(|i| i.members).sum::<u64>()
        ),
    );
    metric(
        "incident_members_max",
        "gauge",
        "Members of the largest incident.",
        format!(
            "mentionbridge_incident_members_max {}\n",
            incidents.iter().map(|i| i.members).max().unwrap_or(0)
        ),
    );
    metric(
        "incident_first_answer_seconds",
        "summary",
        "From an incident's opening to its first member's published answer.",
        format!(
            "mentionbridge_incident_first_answer_seconds_sum {}\nmentionbridge_incident_first_answer_seconds_count {}\n",
            answered.iter().sum::<i64>(),
            answered.len()
        ),
    );
    metric(
        "incident_bulk_answers",
        "gauge",
        "Incidents' bulk answers, by where they stand.",
        [
            ("awaiting_approval", BulkState::AwaitingApproval),
            ("running", BulkState::Running),
            ("paused", BulkState::Paused),
            ("done", BulkState::Done),
            ("cancelled", BulkState::Cancelled),
        ]
        .iter()
        .map(|(label, s)| {
            format!(
                "mentionbridge_incident_bulk_answers{{state=\"{label}\"}} {}\n",
                bulk(*s)
            )
        })
        .collect(),
    );
    out
}

/// Export columns of an incident, in order (JSON lines `"kind":"incident"`).
pub const INCIDENT_COLUMNS: [&str; 14] = [
    "id",
    "topic",
    "about",
    "opened_at",
    "last_member_at",
    "members",
    "split_off",
    "peak_per_minute",
    "answered",
    "failed",
    "first_answer_at",
    "first_answer_seconds",
    "bulk_state",
    "bulk_by_id",
];

pub fn incident_cells(i: &Incident) -> [Value; INCIDENT_COLUMNS.len()] {
    use crate::domain::storms::Topic;
    let time = |t: chrono::DateTime<chrono::Utc>| {
        Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let about = match &i.topic {
        Topic::SimilarText { sample } => sample.clone(),
        Topic::Link { url } => url.clone(),
        Topic::Hashtag { tag } => tag.clone(),
        Topic::Surge => String::new(),
    };
    [
        Value::from(i.id.0),
        Value::from(i.topic.kind()),
        Value::from(about),
        time(i.opened_at),
        time(i.last_member_at),
        Value::from(i.members),
        Value::from(i.split_off),
        Value::from(i.peak_per_minute),
        Value::from(i.answered),
        Value::from(i.failed),
        i.first_answer_at.map_or(Value::Null, time),
        Value::from(i.time_to_first_answer().map(|d| d.num_seconds())),
        Value::from(i.bulk.as_ref().map(|b| match b.state {
            BulkState::AwaitingApproval => "awaiting_approval",
            BulkState::Running => "running",
            BulkState::Paused => "paused",
            BulkState::Cancelled => "cancelled",
            BulkState::Done => "done",
        })),
        Value::from(i.bulk.as_ref().map(|b| super::keys::agent_key(&b.by))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::storms::Topic;
    use crate::domain::IncidentId;
    use chrono::{Duration, TimeZone, Utc};

    fn incident(id: u64, opened_min: i64, members: u64, answered_after: Option<i64>) -> Incident {
        let opened =
            Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap() + Duration::minutes(opened_min);
        let mut i = Incident::new(IncidentId(id), Topic::Surge, opened);
        i.members = members;
        i.first_answer_at = answered_after.map(|m| opened + Duration::minutes(m));
        i
    }

    #[test]
    fn a_windows_incidents_are_counted_by_when_they_opened() {
        let all = [
            incident(1, 0, 2000, Some(4)),
            incident(2, 30, 12, Some(20)),
            incident(3, 50, 7, None),
            incident(4, 200, 99, Some(1)),
        ];
        let from = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let window = Window::new(from, from + Duration::hours(1));
        let f = incident_figures(&all, &window);
        assert_eq!(
            (f.incidents, f.members, f.largest, f.unanswered),
            (3, 2019, 2000, 1)
        );
        assert_eq!(f.first_answer.count, 2);
        assert_eq!(f.first_answer.p50, Some(Duration::minutes(4)));
        let text = incidents_text(&f);
        assert_eq!(
            text,
            "• Incidents: 3 (2019 mentions, the largest 2000); first answer median 4 min, 90% within 20 min; 1 without an answer yet\n"
        );
        assert_eq!(incidents_text(&IncidentFigures::default()), "");
        let metrics = incidents_exposition(&all);
        assert!(metrics.contains("mentionbridge_incidents_total 4\n"));
        assert!(metrics.contains("mentionbridge_incident_members_max 2000\n"));
        assert!(metrics.contains("mentionbridge_incident_first_answer_seconds_count 3\n"));
        assert!(metrics.contains("mentionbridge_incident_first_answer_seconds_sum 1500\n"));
        let cells = incident_cells(&all[0]);
        assert_eq!(cells[11], Value::from(240));
    }
}
