//! How an incident reads, the same on every surface: its title, how many members came
//! how fast, a few of their posts, their languages and most-followed authors, where its
//! bulk answer stands, and the card's buttons. Everything from outside goes through the
//! surface's `Markup`; each surface lays these parts out in its own blocks or embed.

use super::Markup;
use crate::domain::incident::{BulkState, Incident, Sample};
use crate::domain::storms::Topic;
use crate::domain::IncidentId;
use crate::ports::IncidentPage;

/// An incident card's buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentButton {
    /// Opens the bulk answer form (also: answer the members that came after one
    /// finished).
    Answer,
    /// Another agent approves a bulk answer that waits.
    Approve,
    Pause,
    Resume,
    Cancel,
}

impl IncidentButton {
    const ALL: [IncidentButton; 5] = [
        IncidentButton::Answer,
        IncidentButton::Approve,
        IncidentButton::Pause,
        IncidentButton::Resume,
        IncidentButton::Cancel,
    ];

    pub fn verb(self) -> &'static str {
        match self {
            IncidentButton::Answer => "answer",
            IncidentButton::Approve => "approve",
            IncidentButton::Pause => "pause",
            IncidentButton::Resume => "resume",
            IncidentButton::Cancel => "cancel",
        }
    }

    pub fn from_verb(verb: &str) -> Option<IncidentButton> {
        IncidentButton::ALL.into_iter().find(|b| b.verb() == verb)
    }

    /// The buttons the card shows as the bulk answer stands.
    pub fn for_incident(incident: &Incident) -> Vec<(IncidentButton, String)> {
        use IncidentButton::*;
        let waiting = incident.unanswered_by_bulk();
        match incident.bulk.as_ref().map(|b| b.state) {
            None | Some(BulkState::Cancelled) => vec![(Answer, "Answer all…".into())],
            Some(BulkState::AwaitingApproval) => vec![
                (Approve, "Approve bulk answer".into()),
                (Cancel, "Cancel".into()),
            ],
            Some(BulkState::Running) => vec![(Pause, "Pause".into()), (Cancel, "Cancel".into())],
            Some(BulkState::Paused) => vec![(Resume, "Resume".into()), (Cancel, "Cancel".into())],
            Some(BulkState::Done) if waiting > 0 => {
                vec![(Resume, format!("Answer the {waiting} new the same way"))]
            }
            Some(BulkState::Done) => Vec::new(),
        }
    }
}

/// The parts of an incident's card, rendered with the surface's markup.
pub struct IncidentText {
    pub title: String,
    /// Count, rate, when.
    pub summary: String,
    pub languages: String,
    /// `@handle: text` each, with the link to the post.
    pub samples: Vec<String>,
    pub authors: String,
    /// Where the bulk answer stands (empty: none yet).
    pub bulk: String,
    /// How to list and open members.
    pub hint: String,
}

/// A count as people read it: `2,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn language_label(code: &str) -> &str {
    if code.is_empty() {
        "unknown"
    } else {
        code
    }
}

pub fn title(incident: &Incident, m: &dyn Markup) -> String {
    let about = match &incident.topic {
        Topic::SimilarText { .. } => "near-identical posts".to_string(),
        Topic::Link { url } => format!("posts sharing {}", m.fit(url, 120).0),
        Topic::Hashtag { tag } => format!("posts with #{}", m.fit(tag, 60).0),
        Topic::Surge => "a surge of mentions".to_string(),
    };
    format!("🌩️ Incident #{}: {about}", incident.id)
}

fn sample_line(s: &Sample, m: &dyn Markup, max: usize) -> String {
    format!(
        "{} {}\n{}",
        m.bold(&format!("@{}", m.fit(&s.handle, 60).0)),
        m.link(&s.url, "view post"),
        m.fit_quote(&s.text.replace('\n', " "), max).0
    )
}

pub fn text(incident: &Incident, m: &dyn Markup, sample_max: usize) -> IncidentText {
    let i = incident;
    let mut summary = format!(
        "{} mention{} · {} in the last minute (peak {}/min) · since {} UTC, latest {} UTC",
        m.bold(&thousands(i.members)),
        if i.members == 1 { "" } else { "s" },
        thousands(i.last_minute()),
        thousands(i.peak_per_minute),
        i.opened_at.format("%H:%M"),
        i.last_member_at.format("%H:%M"),
    );
    if i.split_off > 0 {
        summary.push_str(&format!(" · {} split off", thousands(i.split_off)));
    }
    if let Some(wait) = i.time_to_first_answer() {
        summary.push_str(&format!(" · first answer after {} min", wait.num_minutes()));
    }
    let mut langs: Vec<(&String, &u64)> = i.languages.iter().collect();
    langs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let languages = format!(
        "Languages: {}",
        langs
            .iter()
            .take(8)
            .map(|(l, n)| format!("{} {}", m.fit(language_label(l), 20).0, thousands(**n)))
            .collect::<Vec<_>>()
            .join(" · ")
    );
    let known = i.notable.iter().any(|s| s.followers.is_some());
    let authors = format!(
        "{}: {}",
        if known {
            "Most-followed authors"
        } else {
            "Authors"
        },
        i.notable
            .iter()
            .map(|s| match s.followers {
                Some(f) => format!("@{} ({} followers)", m.fit(&s.handle, 60).0, thousands(f)),
                None => format!("@{}", m.fit(&s.handle, 60).0),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bulk = match &i.bulk {
        None => String::new(),
        Some(b) => {
            let state = match b.state {
                BulkState::AwaitingApproval => "waits for another agent's approval",
                BulkState::Running => "going out",
                BulkState::Paused => "paused",
                BulkState::Cancelled => "cancelled",
                BulkState::Done => "done",
            };
            format!(
                "📨 Bulk answer by {} ({state}): {} of {} answered · {} queued · {} skipped · {} failed",
                m.name(&b.by),
                thousands(i.answered),
                thousands(i.members),
                thousands(b.queued),
                thousands(b.skipped),
                thousands(i.failed),
            )
        }
    };
    IncidentText {
        title: title(i, m),
        summary,
        languages,
        samples: i.samples.iter().map(|s| sample_line(s, m, sample_max)).collect(),
        authors,
        bulk,
        hint: format!(
            "Members: `/mentions incident {}` lists them · `/mentions split <ticket>` gives one its own card · each can still be answered on its own.",
            i.id
        ),
    }
}

/// `/mentions incident <n> [page]`: one page of members, at most `max_len` characters.
pub fn members_list(page: &IncidentPage, m: &dyn Markup, max_len: usize) -> String {
    let i = &page.incident;
    let mut out = format!(
        "{} · {} members · page {} of {}\n",
        m.bold(&title(i, m)),
        thousands(i.members),
        page.page,
        page.pages.max(1)
    );
    let budget = max_len.saturating_sub(80);
    for t in &page.tickets {
        let line = format!(
            "• {} {} · @{}: {} ({})\n",
            m.bold(&format!("#{}", t.id)),
            t.state_label(),
            m.fit(&t.mention.author.handle, 60).0,
            m.fit(&t.mention.text.replace('\n', " "), 80).0,
            m.link(&t.mention.url, "original")
        );
        if super::markup::surface_len(&out) + super::markup::surface_len(&line) > budget {
            break;
        }
        out.push_str(&line);
    }
    if page.page < page.pages {
        out.push_str(&format!(
            "More: `/mentions incident {} {}`. ",
            i.id,
            page.page + 1
        ));
    }
    out.push_str("Open one with `/mentions split <ticket>`.");
    out
}

/// The languages a bulk answer form asks a text for: the incident's most common (at
/// most `max`), then every other language.
pub fn form_languages(incident: &Incident, max: usize) -> Vec<String> {
    let mut langs: Vec<(&String, &u64)> = incident
        .languages
        .iter()
        .filter(|(l, _)| !l.is_empty())
        .collect();
    langs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = langs
        .into_iter()
        .take(max)
        .map(|(l, _)| l.clone())
        .collect();
    out.push(String::new());
    out
}

/// What a bulk answer form's field for `language` is labelled.
pub fn form_label(language: &str, incident: &Incident) -> String {
    if language.is_empty() {
        "Every other language".to_string()
    } else {
        format!(
            "In {language} ({} members)",
            thousands(incident.languages.get(language).copied().unwrap_or(0))
        )
    }
}

/// A line for an incident number in an agent's answer.
pub fn done_sentence(id: IncidentId, what: &str) -> String {
    format!("Done: {what} for incident #{id}.")
}
