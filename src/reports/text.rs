//! The report an agent reads in chat after `/mentions stats`. Plain text with no markup of
//! either surface: each surface escapes it on the way out as it does every private answer,
//! so one wording serves Slack and Discord and nothing here knows a chat wire format.

use super::numbers::{Figures, Satisfaction, Spread, Summary, Window};
use crate::domain::routes::DEFAULT_ROUTE;
use chrono::Duration;
use std::fmt::Write as _;

impl Window {
    /// The window's length as people type it: `7d`, `24h`, or `90 min`.
    pub fn span(&self) -> String {
        let length = self.to - self.from;
        let hours = length.num_hours();
        if length != Duration::hours(hours) || hours == 0 {
            human(length)
        } else if hours % 24 == 0 && hours > 24 {
            // "24h" reads as people ask for it; longer spans in days.
            format!("{}d", hours / 24)
        } else {
            format!("{hours}h")
        }
    }
}

/// A duration as an agent reads it: `45 s`, `12 min`, `2 h 5 min`, `3 d 4 h`.
pub(super) fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match s {
        0..=59 => format!("{s} s"),
        60..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 if minutes == 0 => format!("{} h", s / 3600),
        7_200..=172_799 => format!("{} h {minutes} min", s / 3600),
        _ if hours == 0 => format!("{days} d"),
        _ => format!("{days} d {hours} h"),
    }
}

fn spread_text(s: &Spread) -> String {
    match (s.p50, s.p90) {
        (Some(p50), Some(p90)) => format!("median {}, 90% within {}", human(p50), human(p90)),
        _ => "none yet".into(),
    }
}

/// `5 of 9{within} (55%)`.
fn sla_text(f: &Figures, within: &str) -> String {
    match f.sla_percent() {
        Some(pct) => format!("{} of {}{within} ({pct}%)", f.within_sla, f.sla_due),
        None => "none due yet".into(),
    }
}

/// `CSAT 75% (3 of 4 answers 4-5, mean 4.2)` and `NPS +20 (5 answers)`, or nothing
/// without answers.
fn satisfaction_text(s: &Satisfaction) -> Option<String> {
    let mut parts = Vec::new();
    if let (Some(pct), Some(mean)) = (s.csat_percent(), s.csat_mean()) {
        parts.push(format!(
            "CSAT {pct:.0}% ({} of {} answers 4-5, mean {mean:.1})",
            s.csat_satisfied, s.csat_answers
        ));
    }
    if let Some(nps) = s.nps() {
        parts.push(format!(
            "NPS {nps:+.0} ({} answers: {} promoters, {} detractors)",
            s.nps_answers, s.nps_promoters, s.nps_detractors
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A short report for chat. Plain text with `•` bullets and no emphasis markers, so
/// Slack and Discord show it the same way.
pub fn render_text(summary: &Summary) -> String {
    let w = &summary.window;
    let f = &summary.overall;
    let mut out = format!(
        "Mentions in the last {} ({} to {} UTC)\n",
        w.span(),
        w.from.format("%Y-%m-%d %H:%M"),
        w.to.format("%Y-%m-%d %H:%M"),
    );
    if f.tickets == 0 {
        out.push_str("• No new tickets.\n");
        return out;
    }
    let s = &f.stages;
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "• {} opened; now {} open, {} replied, {} resolved, {} ignored",
        f.tickets, s.open, s.replied, s.resolved, s.ignored
    );
    let _ = writeln!(
        out,
        "• First response: {} ({} answered, {} unanswered)",
        spread_text(&f.first_response),
        f.answered,
        f.unanswered
    );
    let _ = writeln!(
        out,
        "• Within the {} target: {}",
        human(summary.sla),
        sla_text(f, "")
    );
    if f.resolution.count > 0 {
        let _ = writeln!(
            out,
            "• Resolution: {} ({} resolved)",
            spread_text(&f.resolution),
            f.resolution.count
        );
    }
    if let Some(satisfaction) = satisfaction_text(&f.satisfaction) {
        let _ = writeln!(out, "• Satisfaction: {satisfaction}");
    }
    let sections = [
        ("By platform", &summary.by_platform, "opened"),
        ("By agent (first reply)", &summary.by_agent, "answered"),
        ("By route", &summary.by_route, "opened"),
        ("By shift", &summary.by_shift, "opened"),
        ("By priority", &summary.by_priority, "opened"),
        ("By language", &summary.by_language, "opened"),
    ];
    for (title, groups, counted) in sections {
        // One default route is no breakdown, nor is one priority or one language.
        let only_default = groups.len() == 1 && groups[0].key == DEFAULT_ROUTE;
        let one_of_a_kind = groups.len() == 1 && matches!(title, "By priority" | "By language");
        if groups.is_empty() || only_default || one_of_a_kind {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for g in groups {
            let gf = &g.figures;
            let median = gf.first_response.p50.map_or_else(
                || "no replies".to_string(),
                |d| format!("median {}", human(d)),
            );
            let satisfaction = satisfaction_text(&gf.satisfaction)
                .map(|s| format!(", {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "• {}: {} {counted}, {median}, {}{satisfaction}",
                g.label,
                gf.tickets,
                sla_text(gf, " within target")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::summarize;
    use crate::reports::testkit::*;

    #[test]
    fn the_chat_report_reads_plainly() {
        let text = render_text(&week_summary());
        assert_eq!(
            text,
            "Mentions in the last 7d (2026-11-18 09:00 to 2026-11-25 09:00 UTC)\n\
             • 11 opened; now 3 open, 6 replied, 1 resolved, 1 ignored\n\
             • First response: median 45 min, 90% within 90 min (7 answered, 3 unanswered)\n\
             • Within the 60 min target: 5 of 9 (55%)\n\
             • Resolution: median 2 h, 90% within 2 h (1 resolved)\n\
             By platform:\n\
             • Mastodon: 5 opened, median 30 min, 2 of 4 within target (50%)\n\
             • Bluesky: 4 opened, median 60 min, 2 of 3 within target (66%)\n\
             • X: 2 opened, median 45 min, 1 of 2 within target (50%)\n\
             By agent (first reply):\n\
             • Bo (Discord): 3 answered, median 60 min, 2 of 3 within target (66%)\n\
             • Ana (Slack): 3 answered, median 30 min, 2 of 3 within target (66%)\n\
             • Cy (Slack): 1 answered, median 45 min, 1 of 1 within target (100%)\n"
        );
        assert!(
            !text.contains('*') && !text.contains('_'),
            "no emphasis markers"
        );
        let quiet = summarize(&[], &Window::parse("24h", now()).unwrap(), mins(60));
        assert!(render_text(&quiet).ends_with("• No new tickets.\n"));
    }

    #[test]
    fn durations_read_like_people_say_them() {
        let cases = [
            (Duration::seconds(45), "45 s"),
            (mins(1), "1 min"),
            (mins(119), "119 min"),
            (mins(120), "2 h"),
            (mins(125), "2 h 5 min"),
            (Duration::hours(48), "2 d"),
            (Duration::hours(76), "3 d 4 h"),
            (Duration::seconds(-5), "0 s"),
        ];
        for (d, want) in cases {
            assert_eq!(human(d), want);
        }
    }
}
