//! The desk's state as the Prometheus text exposition (version 0.0.4) behind `/metrics`.

// Hand-written, not prometheus-client: that crate speaks OpenMetrics (no `_total` in
// `# TYPE` lines, a final `# EOF`), which would rename the families tests and dashboards read.

use super::keys::{platform_key, route_key, stage_key, PLATFORMS, STAGES};
use super::numbers::{Facts, Satisfaction, Targets, Verdict};
use crate::domain::Ticket;
use crate::ports::tally::{DeskCounts, SurveyKey, TicketFacts, FIRST_RESPONSE_BUCKETS};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A label value as the text format wants it: backslash, double quote and line feed
/// escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        let _ = write!(out, "{{{}}}", labels.join(","));
    }
    let _ = writeln!(out, " {value}");
}

/// The desk's state in the Prometheus text exposition format (version 0.0.4), over
/// every ticket in the store, judged at `now` against the first-response target `sla`.
/// Every stage and platform is always present (zeros included) so series never vanish.
/// `sla_breaches_total` can only fall if a breached ticket is later ignored as spam.
pub fn prometheus(tickets: &[Ticket], now: DateTime<Utc>, sla: Duration) -> String {
    prometheus_with(tickets, now, &Targets::flat(sla))
}

/// The Prometheus text exposition, each ticket judged against its route's target.
pub fn prometheus_with(tickets: &[Ticket], now: DateTime<Utc>, targets: &Targets) -> String {
    prometheus_from(&desk_counts_of(tickets, now, targets))
}

/// The desk-wide figures of `tickets`, each judged at `now` against its route's target:
/// what a store's maintained counters add up to (`ports::tally::desk_counts`).
pub fn desk_counts_of(tickets: &[Ticket], now: DateTime<Utc>, targets: &Targets) -> DeskCounts {
    let mut counts = DeskCounts::default();
    for stage in STAGES {
        for platform in PLATFORMS {
            counts.tickets.insert((stage, platform), 0);
        }
    }
    for t in tickets {
        let facts = TicketFacts::of(t);
        let f = Facts::of(&facts, now, (targets.sla_of)(&t.route));
        *counts
            .tickets
            .entry((t.stage, t.mention.platform))
            .or_default() += 1;
        if let Some((waited, _)) = f.first_response {
            counts.first_response.add(waited.num_seconds());
        }
        let route = counts.routes.entry(route_key(t)).or_default();
        route.opened += 1;
        route.breached += u64::from(f.verdict == Verdict::Breached);
        counts.open_unclaimed += u64::from(!t.is_closed() && t.holder.is_none());
        if let Some(key) = SurveyKey::of(t) {
            *counts.surveys.entry(key).or_default() += 1;
        }
    }
    counts
}

/// One figure of a set of survey answers (CSAT %, NPS), if there are any to tell.
type Figure = fn(&Satisfaction) -> Option<f64>;

/// The survey families: every answer counted by scale, platform, route, first responder
/// and score, and CSAT (% of 4–5) and NPS per platform, route and agent as gauges.
fn survey_families(out: &mut String, surveys: &BTreeMap<SurveyKey, u64>) {
    family(
        out,
        "mentionbridge_survey_answers_total",
        "counter",
        "Satisfaction survey answers, by scale, platform, route, the agent who answered first (empty: none) and score.",
    );
    for (k, n) in surveys {
        let score = k.score.to_string();
        sample(
            out,
            "mentionbridge_survey_answers_total",
            &[
                ("scale", k.scale.label()),
                ("platform", platform_key(k.platform)),
                ("route", &k.route),
                ("agent", &k.agent),
                ("score", &score),
            ],
            n,
        );
    }
    let mut groups: BTreeMap<(&str, String), Satisfaction> = BTreeMap::new();
    for (k, n) in surveys {
        for group in [
            ("platform", platform_key(k.platform).to_string()),
            ("route", k.route.clone()),
            ("agent", k.agent.clone()),
        ] {
            groups
                .entry(group)
                .or_default()
                .add_n(k.scale, k.score, *n as usize);
        }
    }
    let gauges: [(&str, &str, Figure); 2] = [
        (
            "mentionbridge_csat_percent",
            "Share of CSAT answers of 4 or 5, in percent, by platform, route or agent (first responder).",
            Satisfaction::csat_percent,
        ),
        (
            "mentionbridge_nps",
            "Net promoter score (% 9-10 minus % 0-6) of NPS answers, by platform, route or agent (first responder).",
            Satisfaction::nps,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for ((label, v), s) in &groups {
            if let Some(x) = value(s) {
                sample(out, name, &[(label, v.as_str())], x);
            }
        }
    }
}

/// The Prometheus text exposition of the desk-wide figures `counts`.
pub fn prometheus_from(counts: &DeskCounts) -> String {
    let mut out = String::new();

    family(
        &mut out,
        "mentionbridge_tickets",
        "gauge",
        "Tickets by current stage and platform.",
    );
    let of = |stage, platform| counts.tickets.get(&(stage, platform)).copied().unwrap_or(0);
    for stage in STAGES {
        for platform in PLATFORMS {
            let labels = [
                ("stage", stage_key(stage)),
                ("platform", platform_key(platform)),
            ];
            sample(
                &mut out,
                "mentionbridge_tickets",
                &labels,
                of(stage, platform),
            );
        }
    }

    family(
        &mut out,
        "mentionbridge_tickets_opened_total",
        "counter",
        "Tickets opened since the store began, by platform.",
    );
    for platform in PLATFORMS {
        let n: u64 = STAGES.iter().map(|stage| of(*stage, platform)).sum();
        let labels = [("platform", platform_key(platform))];
        sample(&mut out, "mentionbridge_tickets_opened_total", &labels, n);
    }

    let name = "mentionbridge_first_response_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Time from the customer's post to the first published reply (ignored tickets excluded).",
    );
    let h = &counts.first_response;
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (bound, n) in FIRST_RESPONSE_BUCKETS.iter().zip(h.buckets) {
        cumulative += n;
        sample(&mut out, &bucket, &[("le", &bound.to_string())], cumulative);
    }
    sample(&mut out, &bucket, &[("le", "+Inf")], h.count);
    sample(&mut out, &format!("{name}_sum"), &[], h.sum_seconds);
    sample(&mut out, &format!("{name}_count"), &[], h.count);

    family(
        &mut out,
        "mentionbridge_sla_breaches_total",
        "counter",
        "Tickets answered after the first-response target, or still unanswered past it.",
    );
    let breaches: u64 = counts.routes.values().map(|r| r.breached).sum();
    sample(&mut out, "mentionbridge_sla_breaches_total", &[], breaches);

    family(
        &mut out,
        "mentionbridge_route_tickets_opened_total",
        "counter",
        "Tickets opened since the store began, by route.",
    );
    for (route, r) in &counts.routes {
        sample(
            &mut out,
            "mentionbridge_route_tickets_opened_total",
            &[("route", route)],
            r.opened,
        );
    }
    family(
        &mut out,
        "mentionbridge_route_sla_breaches_total",
        "counter",
        "First-response breaches by route, each against its route's target.",
    );
    for (route, r) in &counts.routes {
        sample(
            &mut out,
            "mentionbridge_route_sla_breaches_total",
            &[("route", route)],
            r.breached,
        );
    }

    family(
        &mut out,
        "mentionbridge_open_unclaimed",
        "gauge",
        "Open tickets nobody has claimed.",
    );
    sample(
        &mut out,
        "mentionbridge_open_unclaimed",
        &[],
        counts.open_unclaimed,
    );
    survey_families(&mut out, &counts.surveys);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::testkit::*;

    /// One sample line of the text format: name, labels, value.
    fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
        let (series, value) = line.rsplit_once(' ').expect("a value after a space");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, ""),
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("labels close")),
        };
        assert!(
            name.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name}"
        );
        let mut parsed = Vec::new();
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "label value quoted in {line}");
            let mut val = String::new();
            loop {
                match chars.next().expect("label value closes") {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => val.push('\n'),
                        Some(c @ ('\\' | '"')) => val.push(c),
                        other => panic!("bad escape {other:?} in {line}"),
                    },
                    c => val.push(c),
                }
            }
            parsed.push((key, val));
            if chars.peek() == Some(&',') {
                chars.next();
            }
        }
        (name.to_string(), parsed, value)
    }

    #[test]
    fn prometheus_exposition_parses_and_adds_up() {
        let text = prometheus(&week(), now(), mins(60));
        assert!(text.ends_with('\n'));
        let mut typed = std::collections::HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                typed.insert(name.to_string(), kind.to_string());
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                let (name, labels, value) = parse_sample(line);
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
                    .unwrap_or(&name)
                    .to_string();
                assert!(typed.contains_key(&family), "# TYPE before {line}");
                samples.push((name, labels, value));
            }
        }
        let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
            let found: Vec<f64> = samples
                .iter()
                .filter(|(n, l, _)| {
                    n == name
                        && l.len() == labels.len()
                        && labels
                            .iter()
                            .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
                })
                .map(|(_, _, v)| *v)
                .collect();
            assert_eq!(found.len(), 1, "{name} {labels:?}");
            found[0]
        };
        // All 12 tickets (the window does not apply): Mastodon 1, 2, 7, 8, 10, 12.
        let tickets = |stage, platform| {
            value(
                "mentionbridge_tickets",
                &[("stage", stage), ("platform", platform)],
            )
        };
        assert_eq!(tickets("new", "mastodon"), 1.0); // 8
        assert_eq!(tickets("posted", "mastodon"), 1.0); // 7
        assert_eq!(tickets("replied", "mastodon"), 3.0); // 1, 10, 12
        assert_eq!(tickets("resolved", "mastodon"), 1.0); // 2
        assert_eq!(tickets("replied", "bluesky"), 3.0); // 3, 4, 11
        assert_eq!(tickets("ignored", "bluesky"), 1.0); // 9
        assert_eq!(tickets("posted", "x"), 1.0); // 6
        assert_eq!(tickets("replied", "other"), 0.0, "zero series stay present");
        let gauge_rows = samples
            .iter()
            .filter(|s| s.0 == "mentionbridge_tickets")
            .count();
        assert_eq!(gauge_rows, 20, "5 stages × 4 platforms");
        let opened = |p| value("mentionbridge_tickets_opened_total", &[("platform", p)]);
        assert_eq!(
            [
                opened("mastodon"),
                opened("bluesky"),
                opened("x"),
                opened("other")
            ],
            [6.0, 4.0, 2.0, 0.0]
        );

        // Answered: 60 (12), 600, 1800, 1800, 2700, 3600, 3900, 5400.
        let name = "mentionbridge_first_response_seconds";
        let buckets: Vec<(String, f64)> = samples
            .iter()
            .filter(|s| s.0 == format!("{name}_bucket"))
            .map(|s| (s.1[0].1.clone(), s.2))
            .collect();
        let expected = [
            ("60", 1.0),
            ("300", 1.0),
            ("900", 2.0),
            ("1800", 4.0),
            ("3600", 6.0),
            ("7200", 8.0),
            ("14400", 8.0),
            ("86400", 8.0),
            ("+Inf", 8.0),
        ];
        let expected: Vec<(String, f64)> =
            expected.iter().map(|(l, v)| (l.to_string(), *v)).collect();
        assert_eq!(buckets, expected);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
        assert_eq!(
            buckets.last().unwrap().1,
            value(&format!("{name}_count"), &[])
        );
        assert_eq!(value(&format!("{name}_sum"), &[]), 19_860.0);
        assert_eq!(value("mentionbridge_sla_breaches_total", &[]), 4.0); // 3, 6, 7, 10
        assert_eq!(value("mentionbridge_open_unclaimed", &[]), 2.0); // 7, 8
        assert_eq!(typed["mentionbridge_first_response_seconds"], "histogram");
        assert_eq!(typed["mentionbridge_tickets_opened_total"], "counter");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let mut out = String::new();
        sample(&mut out, "m", &[("k", "x\"y\nz\\")], 1);
        let (_, labels, _) = parse_sample(out.trim_end());
        assert_eq!(labels, [("k".to_string(), "x\"y\nz\\".to_string())]);
    }

    #[test]
    fn survey_answers_and_csat_nps_gauges_carry_escaped_labels() {
        let text = prometheus(&surveyed_week(), now(), mins(60));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            parse_sample(line);
        }
        for want in [
            "mentionbridge_survey_answers_total{scale=\"csat\",platform=\"mastodon\",route=\"default\",agent=\"slack:U1\",score=\"5\"} 1",
            "mentionbridge_survey_answers_total{scale=\"csat\",platform=\"bluesky\",route=\"vip \\\"gold\\\"\",agent=\"discord:42\",score=\"2\"} 1",
            "mentionbridge_csat_percent{agent=\"slack:U1\"} 100",
            "mentionbridge_csat_percent{platform=\"bluesky\"} 0",
            "mentionbridge_csat_percent{route=\"default\"} 100",
            "mentionbridge_nps{platform=\"x\"} 0",
            "mentionbridge_nps{agent=\"slack:U3\"} 0",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} in\n{text}");
        }
        assert!(!text.contains("mentionbridge_nps{platform=\"mastodon\"}"));
    }
}
