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

use crate::domain::{AgentRef, AuditEntry, Platform, ReplyState, Stage, Ticket};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use thiserror::Error;

/// The longest window a report covers.
const MAX_WINDOW_HOURS: i64 = 366 * 24;

/// A stretch of time the numbers are about: `from <= t < to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{input}` is not a stats window: give a number of hours or days from 1h to 366d, e.g. 24h, 7d or 30d")]
pub struct BadWindow {
    pub input: String,
}

impl Window {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Window {
        Window { from, to }
    }

    /// The last `24h`, `7d`, `30d` (any whole number of hours or days) before `now`.
    pub fn parse(s: &str, now: DateTime<Utc>) -> Result<Window, BadWindow> {
        let bad = || BadWindow {
            input: s.to_string(),
        };
        let spec = s.trim().to_ascii_lowercase();
        let (number, hours_per_unit) = if let Some(n) = spec.strip_suffix('h') {
            (n, 1)
        } else if let Some(n) = spec.strip_suffix('d') {
            (n, 24)
        } else {
            return Err(bad());
        };
        // Digits only: `+7d`, `-1d` and `1.5d` are mistakes, not windows.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let hours = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(hours_per_unit))
            .filter(|h| (1..=MAX_WINDOW_HOURS).contains(h))
            .ok_or_else(bad)?;
        Ok(Window {
            from: now - Duration::hours(hours),
            to: now,
        })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }

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

/// How spread out a set of times is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub p50: Option<Duration>,
    pub p90: Option<Duration>,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Spread {
        samples.sort();
        Spread {
            count: samples.len(),
            p50: percentile(&samples, 50),
            p90: percentile(&samples, 90),
        }
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `p`% of
/// the samples at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounts {
    /// `New` or `Posted`, claimed or not.
    pub open: usize,
    pub replied: usize,
    pub resolved: usize,
    pub ignored: usize,
}

/// The numbers for one set of tickets (the whole window, a platform, an agent…).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Tickets in the set (volume).
    pub tickets: usize,
    pub stages: StageCounts,
    pub answered: usize,
    pub unanswered: usize,
    /// Answered within the target.
    pub within_sla: usize,
    /// Tickets the target applies to so far: met plus breached.
    pub sla_due: usize,
    pub first_response: Spread,
    pub resolution: Spread,
}

impl Figures {
    /// Share of due tickets answered within the target, rounded down; none when nothing
    /// was due yet.
    pub fn sla_percent(&self) -> Option<usize> {
        (self.sla_due > 0).then(|| self.within_sla * 100 / self.sla_due)
    }
}

/// One slice of a breakdown, e.g. key `mastodon` label `Mastodon`, or key `slack:U1`
/// label `Ana (Slack)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: String,
    pub label: String,
    pub figures: Figures,
}

/// The numbers of a window. Each breakdown is a list of [`Group`]s filled by the same
/// tally as `overall`; per-route and per-shift breakdowns join as further lists once
/// routes and shifts exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub window: Window,
    /// The first-response target.
    pub sla: Duration,
    pub overall: Figures,
    /// Busiest first.
    pub by_platform: Vec<Group>,
    /// Agents who answered first, busiest first.
    pub by_agent: Vec<Group>,
    pub by_route: Vec<Group>,
    pub by_shift: Vec<Group>,
}

/// How each ticket is judged: its route's first-response target, and the shift it
/// arrived in.
pub struct Targets<'a> {
    /// The default route's target (what the text calls "the target").
    pub default_sla: Duration,
    pub sla_of: Box<dyn Fn(&Ticket) -> Duration + 'a>,
    pub shift_of: ShiftOf<'a>,
}

/// The shift a ticket arrived in, if shifts are configured.
pub type ShiftOf<'a> = Box<dyn Fn(&Ticket) -> Option<String> + 'a>;

impl Targets<'_> {
    /// One target for every ticket, no shifts.
    pub fn flat(sla: Duration) -> Targets<'static> {
        Targets {
            default_sla: sla,
            sla_of: Box::new(move |_| sla),
            shift_of: Box::new(|_| None),
        }
    }
}

/// The earliest published reply: how long the customer waited for it, and who sent it.
/// Public and private replies count; pending and failed ones do not.
pub fn first_response(ticket: &Ticket) -> Option<(Duration, &AgentRef)> {
    ticket
        .replies
        .iter()
        .filter(|r| !r.auto && matches!(r.state, ReplyState::Published { .. }))
        .min_by_key(|r| (r.at, r.seq))
        .map(|r| {
            let waited = (r.at - ticket.received_at()).max(Duration::zero());
            (waited, &r.by)
        })
}

/// When a resolved ticket was resolved: its last update (see the module notes).
pub fn resolved_at(ticket: &Ticket) -> Option<DateTime<Utc>> {
    (ticket.stage == Stage::Resolved).then_some(ticket.updated_at)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    Breached,
    /// Unanswered, and the target has not passed yet.
    Pending,
    /// Ignored: the target does not apply.
    Exempt,
}

/// What the numbers need to know about one ticket, worked out once for every output.
struct Facts<'a> {
    ticket: &'a Ticket,
    first_response: Option<(Duration, &'a AgentRef)>,
    resolution: Option<Duration>,
    verdict: Verdict,
}

impl<'a> Facts<'a> {
    fn of(ticket: &'a Ticket, now: DateTime<Utc>, sla: Duration) -> Facts<'a> {
        let ignored = ticket.stage == Stage::Ignored;
        let first_response = first_response(ticket).filter(|_| !ignored);
        let verdict = match first_response {
            _ if ignored => Verdict::Exempt,
            Some((waited, _)) if waited <= sla => Verdict::Met,
            Some(_) => Verdict::Breached,
            None if now > ticket.received_at() + sla => Verdict::Breached,
            None => Verdict::Pending,
        };
        Facts {
            ticket,
            first_response,
            resolution: resolved_at(ticket)
                .map(|at| (at - ticket.received_at()).max(Duration::zero())),
            verdict,
        }
    }
}

/// Figures being counted up, with the raw times kept until the percentiles are taken.
#[derive(Default)]
struct Tally {
    figures: Figures,
    first_response: Vec<Duration>,
    resolution: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, facts: &Facts) {
        let f = &mut self.figures;
        f.tickets += 1;
        match facts.ticket.stage {
            Stage::New | Stage::Posted => f.stages.open += 1,
            Stage::Replied => f.stages.replied += 1,
            Stage::Resolved => f.stages.resolved += 1,
            Stage::Ignored => f.stages.ignored += 1,
        }
        match (facts.first_response, facts.verdict) {
            (_, Verdict::Exempt) => {}
            (Some((waited, _)), _) => {
                f.answered += 1;
                self.first_response.push(waited);
            }
            (None, _) => f.unanswered += 1,
        }
        match facts.verdict {
            Verdict::Met => {
                f.within_sla += 1;
                f.sla_due += 1;
            }
            Verdict::Breached => f.sla_due += 1,
            Verdict::Pending | Verdict::Exempt => {}
        }
        self.resolution.extend(facts.resolution);
    }

    fn finish(self) -> Figures {
        Figures {
            first_response: Spread::of(self.first_response),
            resolution: Spread::of(self.resolution),
            ..self.figures
        }
    }
}

/// One breakdown: the tickets grouped by `group_of` (key and label; `None` leaves a
/// ticket out), busiest group first, then by key.
fn breakdown<'a>(
    facts: &[Facts<'a>],
    group_of: impl Fn(&Facts<'a>) -> Option<(String, String)>,
) -> Vec<Group> {
    let mut groups: BTreeMap<String, (String, Tally)> = BTreeMap::new();
    for f in facts {
        if let Some((key, label)) = group_of(f) {
            let entry = groups.entry(key).or_default();
            // Tickets come oldest first: the newest name an agent used wins.
            entry.0 = label;
            entry.1.add(f);
        }
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|(key, (label, tally))| Group {
            key,
            label,
            figures: tally.finish(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.figures
            .tickets
            .cmp(&a.figures.tickets)
            .then_with(|| a.key.cmp(&b.key))
    });
    out
}

/// The numbers of the tickets opened in `window`, judged against a first-response
/// target of `sla` as of the window's end.
pub fn summarize(tickets: &[Ticket], window: &Window, sla: Duration) -> Summary {
    summarize_with(tickets, window, &Targets::flat(sla))
}

/// The numbers of the tickets opened in `window`, each judged against its route's
/// target as of the window's end, broken down by platform, agent, route and shift.
pub fn summarize_with(tickets: &[Ticket], window: &Window, targets: &Targets) -> Summary {
    let sla = targets.default_sla;
    let facts: Vec<Facts> = tickets
        .iter()
        .filter(|t| window.contains(t.opened_at))
        .map(|t| Facts::of(t, window.to, (targets.sla_of)(t)))
        .collect();
    let mut overall = Tally::default();
    for f in &facts {
        overall.add(f);
    }
    let by_platform = breakdown(&facts, |f| {
        let p = f.ticket.mention.platform;
        Some((platform_key(p).to_string(), p.label().to_string()))
    });
    let by_agent = breakdown(&facts, |f| {
        f.first_response
            .map(|(_, agent)| (agent_key(agent), agent_label(agent)))
    });
    let by_route = breakdown(&facts, |f| {
        let r = route_key(f.ticket);
        Some((r.clone(), r))
    });
    let by_shift = breakdown(&facts, |f| {
        (targets.shift_of)(f.ticket).map(|s| (s.clone(), s))
    });
    Summary {
        window: window.clone(),
        sla,
        overall: overall.finish(),
        by_platform,
        by_agent,
        by_route,
        by_shift,
    }
}

fn route_key(t: &Ticket) -> String {
    if t.route.is_empty() {
        crate::domain::routes::DEFAULT_ROUTE.to_string()
    } else {
        t.route.clone()
    }
}

fn platform_key(p: Platform) -> &'static str {
    match p {
        Platform::Mastodon => "mastodon",
        Platform::Bluesky => "bluesky",
        Platform::X => "x",
        Platform::Other => "other",
    }
}

fn stage_key(s: Stage) -> &'static str {
    match s {
        Stage::New => "new",
        Stage::Posted => "posted",
        Stage::Replied => "replied",
        Stage::Resolved => "resolved",
        Stage::Ignored => "ignored",
    }
}

const PLATFORMS: [Platform; 4] = [
    Platform::Mastodon,
    Platform::Bluesky,
    Platform::X,
    Platform::Other,
];

const STAGES: [Stage; 5] = [
    Stage::New,
    Stage::Posted,
    Stage::Replied,
    Stage::Resolved,
    Stage::Ignored,
];

/// `slack:U024BE7LH`: unique across surfaces.
fn agent_key(agent: &AgentRef) -> String {
    format!(
        "{}:{}",
        agent.surface.label().to_ascii_lowercase(),
        agent.user_id
    )
}

fn agent_label(agent: &AgentRef) -> String {
    format!("{} ({})", agent.name, agent.surface.label())
}

/// A duration as an agent reads it: `45 s`, `12 min`, `2 h 5 min`, `3 d 4 h`.
fn human(d: Duration) -> String {
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
    let sections = [
        ("By platform", &summary.by_platform, "opened"),
        ("By agent (first reply)", &summary.by_agent, "answered"),
        ("By route", &summary.by_route, "opened"),
        ("By shift", &summary.by_shift, "opened"),
    ];
    for (title, groups, counted) in sections {
        // One default route is no breakdown.
        let only_default =
            groups.len() == 1 && groups[0].key == crate::domain::routes::DEFAULT_ROUTE;
        if groups.is_empty() || only_default {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for g in groups {
            let gf = &g.figures;
            let median = gf.first_response.p50.map_or_else(
                || "no replies".to_string(),
                |d| format!("median {}", human(d)),
            );
            let _ = writeln!(
                out,
                "• {}: {} {counted}, {median}, {}",
                g.label,
                gf.tickets,
                sla_text(gf, " within target")
            );
        }
    }
    out
}

/// First-response histogram bucket bounds, in seconds.
const BUCKETS: [i64; 8] = [60, 300, 900, 1800, 3600, 7200, 14_400, 86_400];

/// A label value as the text format wants it: backslash, double quote and line feed
/// escaped.
fn escape_label(value: &str) -> String {
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
    let facts: Vec<Facts> = tickets
        .iter()
        .map(|t| Facts::of(t, now, (targets.sla_of)(t)))
        .collect();
    let mut out = String::new();

    family(
        &mut out,
        "mentionbridge_tickets",
        "gauge",
        "Tickets by current stage and platform.",
    );
    for stage in STAGES {
        for platform in PLATFORMS {
            let n = tickets
                .iter()
                .filter(|t| t.stage == stage && t.mention.platform == platform)
                .count();
            let labels = [
                ("stage", stage_key(stage)),
                ("platform", platform_key(platform)),
            ];
            sample(&mut out, "mentionbridge_tickets", &labels, n);
        }
    }

    family(
        &mut out,
        "mentionbridge_tickets_opened_total",
        "counter",
        "Tickets opened since the store began, by platform.",
    );
    for platform in PLATFORMS {
        let n = tickets
            .iter()
            .filter(|t| t.mention.platform == platform)
            .count();
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
    let waits: Vec<i64> = facts
        .iter()
        .filter_map(|f| f.first_response.map(|(d, _)| d.num_seconds()))
        .collect();
    let bucket = format!("{name}_bucket");
    for bound in BUCKETS {
        let n = waits.iter().filter(|w| **w <= bound).count();
        sample(&mut out, &bucket, &[("le", &bound.to_string())], n);
    }
    sample(&mut out, &bucket, &[("le", "+Inf")], waits.len());
    sample(
        &mut out,
        &format!("{name}_sum"),
        &[],
        waits.iter().sum::<i64>(),
    );
    sample(&mut out, &format!("{name}_count"), &[], waits.len());

    family(
        &mut out,
        "mentionbridge_sla_breaches_total",
        "counter",
        "Tickets answered after the first-response target, or still unanswered past it.",
    );
    let breaches = facts
        .iter()
        .filter(|f| f.verdict == Verdict::Breached)
        .count();
    sample(&mut out, "mentionbridge_sla_breaches_total", &[], breaches);

    let mut per_route: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in &facts {
        let entry = per_route.entry(route_key(f.ticket)).or_default();
        entry.0 += 1;
        entry.1 += usize::from(f.verdict == Verdict::Breached);
    }
    family(
        &mut out,
        "mentionbridge_route_tickets_opened_total",
        "counter",
        "Tickets opened since the store began, by route.",
    );
    for (route, (opened, _)) in &per_route {
        sample(
            &mut out,
            "mentionbridge_route_tickets_opened_total",
            &[("route", route)],
            opened,
        );
    }
    family(
        &mut out,
        "mentionbridge_route_sla_breaches_total",
        "counter",
        "First-response breaches by route, each against its route's target.",
    );
    for (route, (_, breached)) in &per_route {
        sample(
            &mut out,
            "mentionbridge_route_sla_breaches_total",
            &[("route", route)],
            breached,
        );
    }

    family(
        &mut out,
        "mentionbridge_open_unclaimed",
        "gauge",
        "Open tickets nobody has claimed.",
    );
    let unclaimed = tickets
        .iter()
        .filter(|t| !t.is_closed() && t.holder.is_none())
        .count();
    sample(&mut out, "mentionbridge_open_unclaimed", &[], unclaimed);
    out
}

/// Export columns of a ticket, in order; [`ticket_cells`] gives the values in the same
/// order, so the CSV header and the JSON keys are one list.
const TICKET_COLUMNS: [&str; 24] = [
    "id",
    "platform",
    "network",
    "account",
    "author",
    "author_name",
    "url",
    "text",
    "language",
    "created_at",
    "opened_at",
    "updated_at",
    "stage",
    "state",
    "holder_id",
    "holder_name",
    "replies_published",
    "replies_failed",
    "followups",
    "first_response_seconds",
    "first_responder_id",
    "first_responder_name",
    "resolved_at",
    "closed_by_id",
];

const AUDIT_COLUMNS: [&str; 6] = ["ticket", "at", "actor_id", "actor_name", "what", "detail"];

fn time(t: DateTime<Utc>) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn ticket_cells(t: &Ticket) -> [Value; TICKET_COLUMNS.len()] {
    let m = &t.mention;
    let holder = t.holder.as_ref().map(|c| &c.agent);
    let first = first_response(t);
    let count = |f: fn(&ReplyState) -> bool| t.replies.iter().filter(|r| f(&r.state)).count();
    [
        Value::from(t.id.0),
        Value::from(platform_key(m.platform)),
        Value::from(m.network_label()),
        Value::from(m.account.as_str()),
        Value::from(m.author.handle.as_str()),
        Value::from(m.author.name.as_str()),
        Value::from(m.url.as_str()),
        Value::from(m.text.as_str()),
        Value::from(m.language.clone()),
        time(m.created_at),
        time(t.opened_at),
        time(t.updated_at),
        Value::from(stage_key(t.stage)),
        Value::from(t.state_label()),
        Value::from(holder.map(agent_key)),
        Value::from(holder.map(|a| a.name.clone())),
        Value::from(count(|s| matches!(s, ReplyState::Published { .. }))),
        Value::from(count(|s| matches!(s, ReplyState::Failed { .. }))),
        Value::from(t.followups.len()),
        Value::from(first.map(|(d, _)| d.num_seconds())),
        Value::from(first.map(|(_, a)| agent_key(a))),
        Value::from(first.map(|(_, a)| a.name.clone())),
        resolved_at(t).map_or(Value::Null, time),
        Value::from(t.closed_by.as_ref().map(agent_key)),
    ]
}

fn audit_cells(e: &AuditEntry) -> [Value; AUDIT_COLUMNS.len()] {
    [
        Value::from(e.ticket.0),
        time(e.at),
        Value::from(e.actor.as_ref().map(agent_key)),
        Value::from(e.actor.as_ref().map(|a| a.name.clone())),
        Value::from(e.what.as_str()),
        Value::from(e.detail.clone()),
    ]
}

/// One JSON object on one line, `kind` first, then the columns in order.
fn write_json_line(
    out: &mut impl Write,
    kind: &str,
    columns: &[&str],
    cells: &[Value],
) -> io::Result<()> {
    let mut line = format!("{{\"kind\":{}", Value::from(kind));
    for (column, cell) in columns.iter().zip(cells) {
        let _ = write!(line, ",{}:{cell}", Value::from(*column));
    }
    line.push_str("}\n");
    out.write_all(line.as_bytes())
}

/// Tickets then audit entries, one JSON object per line (`"kind":"ticket"` or
/// `"kind":"audit"`), times in RFC 3339 UTC, absent values as `null`.
pub fn export_jsonl(
    tickets: &[Ticket],
    audit: &[AuditEntry],
    out: &mut impl Write,
) -> io::Result<()> {
    for t in tickets {
        write_json_line(out, "ticket", &TICKET_COLUMNS, &ticket_cells(t))?;
    }
    for e in audit {
        write_json_line(out, "audit", &AUDIT_COLUMNS, &audit_cells(e))?;
    }
    out.flush()
}

/// A CSV field per RFC 4180: quoted, with quotes doubled, when it holds a comma, a
/// quote, CR or LF. Text a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, tab or CR: customers' posts often start with `@brand`) gets a leading `'`,
/// which spreadsheets show as plain text (OWASP's CSV-injection advice).
fn csv_field(cell: &Value) -> String {
    let text = match cell {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn write_csv_row(out: &mut impl Write, cells: &[Value]) -> io::Result<()> {
    let row: Vec<String> = cells.iter().map(csv_field).collect();
    out.write_all(row.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

/// The tickets as RFC 4180 CSV (UTF-8, CRLF line ends, a header row), for a spreadsheet;
/// text that a spreadsheet would run as a formula is neutralised (see `csv_field`).
pub fn export_csv_tickets(tickets: &[Ticket], out: &mut impl Write) -> io::Result<()> {
    let header: Vec<Value> = TICKET_COLUMNS.iter().map(|c| Value::from(*c)).collect();
    write_csv_row(out, &header)?;
    for t in tickets {
        write_csv_row(out, &ticket_cells(t))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Author, Claim, Mention, Reply, SurfaceKind, TicketId, Visibility};
    use chrono::TimeZone;

    /// The instant the report is asked for.
    fn now() -> DateTime<Utc> {
        at(25, 9, 0)
    }

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
    }

    fn mins(n: i64) -> Duration {
        Duration::minutes(n)
    }

    fn agent(surface: SurfaceKind, id: &str, name: &str) -> AgentRef {
        AgentRef {
            surface,
            user_id: id.into(),
            name: name.into(),
            roles: vec![],
        }
    }

    fn ana() -> AgentRef {
        agent(SurfaceKind::Slack, "U1", "Ana")
    }
    fn bo() -> AgentRef {
        agent(SurfaceKind::Discord, "42", "Bo")
    }
    fn cy() -> AgentRef {
        agent(SurfaceKind::Slack, "U3", "Cy")
    }

    fn published() -> ReplyState {
        ReplyState::Published {
            remote_id: "r".into(),
            url: "https://social.example/r".into(),
        }
    }

    fn failed() -> ReplyState {
        ReplyState::Failed {
            reason: "422 rejected".into(),
        }
    }

    /// A ticket for a customer post written at `created`, opened by the desk at the same
    /// time and posted as a card.
    fn ticket(id: u64, platform: Platform, created: DateTime<Utc>) -> Ticket {
        let mention = Mention {
            platform,
            network: None,
            account: "brand".into(),
            remote_id: format!("m{id}"),
            url: format!("https://social.example/m{id}"),
            author: Author {
                handle: format!("customer{id}"),
                name: format!("Customer {id}"),
                profile_url: format!("https://social.example/@customer{id}"),
                id: None,
            },
            text: "my order never arrived".into(),
            language: Some("en".into()),
            created_at: created,
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
        };
        let mut t = Ticket::open(TicketId(id), mention, created);
        t.stage = Stage::Posted;
        t
    }

    /// The agent replies `after` the customer wrote; a reply claims the ticket and a
    /// published one moves it to Replied, as in the domain rules.
    fn reply(
        mut t: Ticket,
        by: AgentRef,
        after: Duration,
        state: ReplyState,
        private: bool,
    ) -> Ticket {
        let when = t.received_at() + after;
        if matches!(state, ReplyState::Published { .. }) && !t.is_closed() {
            t.stage = Stage::Replied;
        }
        if t.holder.is_none() {
            t.holder = Some(Claim {
                agent: by.clone(),
                since: when,
            });
        }
        t.replies.push(Reply {
            seq: t.replies.len() as u32 + 1,
            text: "@customer sorry, looking now".into(),
            visibility: if private {
                Visibility::Direct
            } else {
                Visibility::Public
            },
            private,
            by,
            at: when,
            state,
            auto: false,
        });
        t.updated_at = t.updated_at.max(when);
        t
    }

    fn close(mut t: Ticket, stage: Stage, by: AgentRef, when: DateTime<Utc>) -> Ticket {
        t.stage = stage;
        t.closed_by = Some(by);
        t.updated_at = when;
        t
    }

    /// The desk's week. Target 60 min; report at 2026-11-25 09:00 over 7d, so the window
    /// is [11-18 09:00, 11-25 09:00).
    ///
    /// | # | platform | wrote  | first published reply        | stage    | SLA      |
    /// |---|----------|--------|------------------------------|----------|----------|
    /// | 1 | Mastodon | 20 10:00 | Ana +10 min (600 s)        | Replied  | met      |
    /// | 2 | Mastodon | 20 11:00 | Ana +30 min (1800 s)       | Resolved 13:00 (7200 s) | met |
    /// | 3 | Bluesky  | 21 08:00 | Bo +90 min (5400 s)        | Replied  | breached |
    /// | 4 | Bluesky  | 21 09:00 | Bo private +60 min (3600 s, exactly the target) | Replied | met |
    /// | 5 | X        | 22 10:00 | Cy failed +5, Cy +45 min (2700 s) | Replied | met  |
    /// | 6 | X        | 22 12:00 | Cy failed +5 only: unanswered | Posted (Cy holds) | breached |
    /// | 7 | Mastodon | 24 07:00 | none: unanswered           | Posted   | breached |
    /// | 8 | Mastodon | 25 08:30 | none: unanswered, due 09:30 | New     | pending  |
    /// | 9 | Bluesky  | 23 10:00 | none                       | Ignored  | exempt   |
    /// |10 | Mastodon | 23 14:00, opened 14:10 | Ana +65 min (3900 s) then one pending | Replied | breached |
    /// |11 | Bluesky  | 18 08:50, opened 09:00 = `from` | Bo +30 min (1800 s) | Replied | met |
    /// |12 | Mastodon | 18 08:59 (before `from`) | Ana +1 min (60 s) | Replied | met, outside the window |
    fn week() -> Vec<Ticket> {
        let p = |id, platform, created| ticket(id, platform, created);
        use Platform::*;
        let mut t10 = p(10, Mastodon, at(23, 14, 0));
        t10.opened_at = at(23, 14, 10);
        let t10 = reply(t10, ana(), mins(65), published(), false);
        let t10 = reply(t10, ana(), mins(90), ReplyState::Pending, false);
        let mut t11 = p(11, Bluesky, at(18, 8, 50));
        t11.opened_at = at(18, 9, 0);
        let mut t8 = p(8, Mastodon, at(25, 8, 30));
        t8.stage = Stage::New;
        let mut t12 = p(12, Mastodon, at(18, 8, 59));
        t12.opened_at = at(18, 8, 59);
        vec![
            reply(
                p(1, Mastodon, at(20, 10, 0)),
                ana(),
                mins(10),
                published(),
                false,
            ),
            close(
                reply(
                    p(2, Mastodon, at(20, 11, 0)),
                    ana(),
                    mins(30),
                    published(),
                    false,
                ),
                Stage::Resolved,
                ana(),
                at(20, 13, 0),
            ),
            reply(
                p(3, Bluesky, at(21, 8, 0)),
                bo(),
                mins(90),
                published(),
                false,
            ),
            reply(
                p(4, Bluesky, at(21, 9, 0)),
                bo(),
                mins(60),
                published(),
                true,
            ),
            reply(
                reply(p(5, X, at(22, 10, 0)), cy(), mins(5), failed(), false),
                cy(),
                mins(45),
                published(),
                false,
            ),
            reply(p(6, X, at(22, 12, 0)), cy(), mins(5), failed(), false),
            p(7, Mastodon, at(24, 7, 0)),
            t8,
            close(
                p(9, Bluesky, at(23, 10, 0)),
                Stage::Ignored,
                bo(),
                at(23, 10, 5),
            ),
            t10,
            reply(t11, bo(), mins(30), published(), false),
            reply(t12, ana(), mins(1), published(), false),
        ]
    }

    #[test]
    fn each_route_is_judged_by_its_own_target_and_each_shift_counts_its_arrivals() {
        // X mentions take the "vip" route (30 min); the rest the default (60 min).
        // Tickets opened before noon arrived on the "emea" shift, the rest on "americas".
        let tickets: Vec<Ticket> = week()
            .into_iter()
            .map(|mut t| {
                if t.mention.platform == Platform::X {
                    t.route = "vip".into();
                }
                t
            })
            .collect();
        let targets = Targets {
            default_sla: mins(60),
            sla_of: Box::new(|t| if t.route == "vip" { mins(30) } else { mins(60) }),
            shift_of: Box::new(|t| {
                Some(if t.opened_at.format("%H").to_string().as_str() < "12" {
                    "emea".into()
                } else {
                    "americas".into()
                })
            }),
        };
        let s = summarize_with(&tickets, &Window::parse("7d", now()).unwrap(), &targets);
        let figures = |groups: &[Group], key: &str| {
            let f = &groups.iter().find(|g| g.key == key).unwrap().figures;
            (f.tickets, f.within_sla, f.sla_due)
        };
        // By hand (see `week`): vip = #5 (+45 min, late for 30) and #6 (unanswered).
        assert_eq!(figures(&s.by_route, "vip"), (2, 0, 2));
        // default: #1 #2 #4 #11 met; #3 #7 #10 breached; #8 pending; #9 ignored.
        assert_eq!(figures(&s.by_route, "default"), (9, 4, 7));
        // americas: #6 (12:00) and #10 (14:10), both breached.
        assert_eq!(figures(&s.by_shift, "americas"), (2, 0, 2));
        // emea: the other nine; #5 now breaches its 30 min target.
        assert_eq!(figures(&s.by_shift, "emea"), (9, 4, 7));
        // Overall: 4 of 9 due within their own route's target.
        assert_eq!((s.overall.within_sla, s.overall.sla_due), (4, 9));
        let text = render_text(&s);
        assert!(text.contains("By route:\n• default: 9 opened"), "{text}");
        assert!(text.contains("• emea: 9 opened"), "{text}");

        let metrics = prometheus_with(&tickets, now(), &targets);
        assert!(metrics.contains("mentionbridge_route_tickets_opened_total{route=\"vip\"} 2"));
        assert!(metrics.contains("mentionbridge_route_sla_breaches_total{route=\"vip\"} 2"));
    }

    fn week_summary() -> Summary {
        let window = Window::parse("7d", now()).unwrap();
        summarize(&week(), &window, mins(60))
    }

    fn spread(count: usize, p50: i64, p90: i64) -> Spread {
        Spread {
            count,
            p50: Some(Duration::seconds(p50)),
            p90: Some(Duration::seconds(p90)),
        }
    }

    #[test]
    fn the_weeks_numbers_match_the_hand_count() {
        let s = week_summary();
        assert_eq!(s.window, Window::new(at(18, 9, 0), now()));
        // Tickets 1–11 (12 opened before the window). First responses, sorted:
        // 600, 1800, 1800, 2700, 3600, 3900, 5400 → p50 = 4th = 2700, p90 = 7th = 5400.
        // Met 1, 2, 4, 5, 11; breached 3, 10 (late), 6, 7 (unanswered); 8 pending, 9 exempt.
        assert_eq!(
            s.overall,
            Figures {
                tickets: 11,
                stages: StageCounts {
                    open: 3,     // 6, 7, 8
                    replied: 6,  // 1, 3, 4, 5, 10, 11
                    resolved: 1, // 2
                    ignored: 1,  // 9
                },
                answered: 7,   // 1, 2, 3, 4, 5, 10, 11
                unanswered: 3, // 6 (its only reply failed), 7, 8
                within_sla: 5,
                sla_due: 9,
                first_response: spread(7, 2700, 5400),
                resolution: spread(1, 7200, 7200), // 2: 11:00 → 13:00
            }
        );
        assert_eq!(s.overall.sla_percent(), Some(55)); // 5/9 = 55.6, rounded down
    }

    #[test]
    fn platforms_split_the_week() {
        let s = week_summary();
        let keys: Vec<_> = s.by_platform.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(
            keys,
            ["mastodon", "bluesky", "x"],
            "busiest first; no Other row"
        );
        // Mastodon 1, 2, 7, 8, 10: answered 1, 2, 10 (600, 1800, 3900); met 1, 2 of due 1, 2, 7, 10.
        let mastodon = &s.by_platform[0].figures;
        assert_eq!(
            (mastodon.tickets, mastodon.answered, mastodon.unanswered),
            (5, 3, 2)
        );
        assert_eq!((mastodon.within_sla, mastodon.sla_due), (2, 4));
        assert_eq!(mastodon.first_response, spread(3, 1800, 3900));
        assert_eq!(
            mastodon.stages,
            StageCounts {
                open: 2,
                replied: 2,
                resolved: 1,
                ignored: 0
            }
        );
        // Bluesky 3, 4, 9, 11: answered 3, 4, 11 (5400, 3600, 1800); met 4, 11 of 3, 4, 11.
        let bluesky = &s.by_platform[1].figures;
        assert_eq!(
            (bluesky.tickets, bluesky.answered, bluesky.unanswered),
            (4, 3, 0)
        );
        assert_eq!((bluesky.within_sla, bluesky.sla_due), (2, 3));
        assert_eq!(bluesky.first_response, spread(3, 3600, 5400));
        assert_eq!(bluesky.stages.ignored, 1);
        // X 5, 6: answered 5 (2700), met; 6 breached.
        let x = &s.by_platform[2].figures;
        assert_eq!((x.tickets, x.answered, x.unanswered), (2, 1, 1));
        assert_eq!((x.within_sla, x.sla_due), (1, 2));
        assert_eq!(x.first_response, spread(1, 2700, 2700));
    }

    #[test]
    fn agents_are_credited_with_the_tickets_they_answered_first() {
        let s = week_summary();
        let rows: Vec<_> = s
            .by_agent
            .iter()
            .map(|g| {
                (
                    g.key.as_str(),
                    g.label.as_str(),
                    g.figures.tickets,
                    g.figures.within_sla,
                    g.figures.sla_due,
                )
            })
            .collect();
        // Bo 3, 4, 11 (met 4, 11); Ana 1, 2, 10 (met 1, 2); Cy 5 (her failed reply on 6
        // credits her nothing). Ties go by key.
        assert_eq!(
            rows,
            [
                ("discord:42", "Bo (Discord)", 3, 2, 3),
                ("slack:U1", "Ana (Slack)", 3, 2, 3),
                ("slack:U3", "Cy (Slack)", 1, 1, 1),
            ]
        );
        assert_eq!(s.by_agent[0].figures.first_response, spread(3, 3600, 5400));
        assert_eq!(s.by_agent[1].figures.first_response, spread(3, 1800, 3900));
        assert_eq!(s.by_agent[1].figures.resolution, spread(1, 7200, 7200));
    }

    #[test]
    fn a_failed_reply_is_no_response_and_a_private_one_is() {
        let week = week();
        assert_eq!(
            first_response(&week[5]),
            None,
            "ticket 6: only a failed reply"
        );
        let (waited, by) = first_response(&week[4]).unwrap();
        assert_eq!(
            (waited, by.name.as_str()),
            (mins(45), "Cy"),
            "ticket 5 skips the failure"
        );
        let (waited, _) = first_response(&week[3]).unwrap();
        assert_eq!(waited, mins(60), "ticket 4's private reply counts");
        // Ticket 10: measured from when the customer wrote, not when the desk saw it.
        assert_eq!(first_response(&week[9]).unwrap().0, mins(65));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let secs = |v: &[i64]| v.iter().map(|s| Duration::seconds(*s)).collect::<Vec<_>>();
        let one_to_ten = secs(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(percentile(&one_to_ten, 50), Some(Duration::seconds(5)));
        assert_eq!(percentile(&one_to_ten, 90), Some(Duration::seconds(9)));
        assert_eq!(percentile(&one_to_ten, 100), Some(Duration::seconds(10)));
        assert_eq!(percentile(&secs(&[1, 2]), 50), Some(Duration::seconds(1)));
        assert_eq!(percentile(&secs(&[1, 2]), 90), Some(Duration::seconds(2)));
        assert_eq!(percentile(&secs(&[7]), 90), Some(Duration::seconds(7)));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(
            Spread::of(secs(&[30, 10, 20])),
            spread(3, 20, 30),
            "sorted first"
        );
    }

    #[test]
    fn the_window_includes_its_start_and_excludes_its_end() {
        let w = Window::parse("24h", now()).unwrap();
        let from = w.from;
        let second = Duration::seconds(1);
        let opened = [from - second, from, now() - second, now()];
        let tickets: Vec<Ticket> = opened
            .iter()
            .zip(1..)
            .map(|(t, id)| ticket(id, Platform::Mastodon, *t))
            .collect();
        let s = summarize(&tickets, &w, mins(60));
        assert_eq!(
            s.overall.tickets, 2,
            "exactly at from, and one second before to"
        );
        assert!(w.contains(from) && !w.contains(now()));
        // The one opened at `from` (24 h ago) is past its target; the newest is not yet.
        assert_eq!((s.overall.sla_due, s.overall.unanswered), (1, 2));
    }

    #[test]
    fn windows_are_hours_or_days() {
        for (spec, hours) in [
            ("24h", 24),
            ("7d", 168),
            ("30d", 720),
            (" 7D ", 168),
            ("1h", 1),
        ] {
            let w = Window::parse(spec, now()).unwrap();
            assert_eq!(
                (w.to, w.to - w.from),
                (now(), Duration::hours(hours)),
                "{spec}"
            );
        }
        assert_eq!(Window::parse("7d", now()).unwrap().span(), "7d");
        assert_eq!(Window::parse("36h", now()).unwrap().span(), "36h");
        for bad in [
            "",
            "7",
            "d",
            "0d",
            "7w",
            "-1d",
            "+7d",
            "1.5d",
            "400d",
            "99999999999999999999d",
            "７d",
        ] {
            let err = Window::parse(bad, now()).unwrap_err();
            assert!(
                err.to_string().contains("e.g. 24h, 7d or 30d"),
                "{bad}: {err}"
            );
        }
    }

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

    /// Split RFC 4180 text into rows of fields.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CRLF"),
                (false, '\n') => panic!("bare LF outside quotes"),
                (false, c) => field.push(c),
            }
            if !quoted && c == '\r' {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
        }
        assert!(
            field.is_empty() && row.is_empty(),
            "last row ends with CRLF"
        );
        rows
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_keeps_every_script() {
        let mut t = week().remove(1);
        t.mention.text = "Hi, my \"order\"\nவணக்கம் 🙏🏽".into();
        t.mention.author.name = "Ana, María".into();
        let mut out = Vec::new();
        export_csv_tickets(&[t.clone(), week().remove(6)], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(",\"Hi, my \"\"order\"\"\nவணக்கம் 🙏🏽\","),
            "{text}"
        );
        let rows = parse_csv(&text);
        assert_eq!(rows.len(), 3, "header and two tickets");
        assert_eq!(rows[0], TICKET_COLUMNS);
        assert!(rows.iter().all(|r| r.len() == TICKET_COLUMNS.len()));
        let col = |name: &str| TICKET_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows[1][col("text")], t.mention.text);
        assert_eq!(rows[1][col("author_name")], "Ana, María");
        assert_eq!(rows[1][col("first_response_seconds")], "1800");
        assert_eq!(rows[1][col("resolved_at")], "2026-11-20T13:00:00Z");
        assert_eq!(rows[1][col("first_responder_name")], "Ana");
        assert_eq!(
            rows[2][col("first_response_seconds")],
            "",
            "ticket 7 unanswered"
        );
        assert_eq!(rows[2][col("holder_id")], "");
    }

    #[tokio::test]
    async fn the_store_hands_over_every_ticket_and_the_whole_audit_log() {
        use crate::domain::{apply, AgentAction, Desk};
        use crate::ports::Store;
        let store = crate::store::SledStore::temporary().unwrap();
        let mentions = [
            ticket(1, Platform::X, at(24, 8, 0)).mention,
            ticket(2, Platform::X, at(24, 8, 1)).mention,
        ];
        store
            .ingest("x", &mentions, None, at(24, 8, 2))
            .await
            .unwrap();
        let mut desk = Desk::new();
        desk.roster_mut(SurfaceKind::Slack).user_ids = ["U1".to_string()].into();
        store
            .act(TicketId(1), &|t| {
                apply(t, AgentAction::Ignore, &ana(), &desk, at(24, 9, 0))
            })
            .await
            .unwrap()
            .unwrap();
        let all = store.all_tickets().await.unwrap();
        let ids: Vec<u64> = all.iter().map(|t| t.id.0).collect();
        assert_eq!(ids, [1, 2], "the ignored one too, in number order");
        let log: Vec<(u64, String)> = store
            .audit_all()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.ticket.0, e.what))
            .collect();
        let what = |id, w: &str| (id, w.to_string());
        assert_eq!(
            log,
            [
                what(1, "mention received"),
                what(1, "ignored"),
                what(2, "mention received")
            ]
        );
        let mut out = Vec::new();
        export_jsonl(&all, &store.audit_all().await.unwrap(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 5);
    }

    #[test]
    fn jsonl_is_tickets_then_audit_one_object_per_line() {
        let week = week();
        let audit = vec![
            AuditEntry {
                ticket: TicketId(2),
                at: at(20, 13, 0),
                actor: Some(ana()),
                what: "resolved".into(),
                detail: None,
            },
            AuditEntry {
                ticket: TicketId(7),
                at: at(24, 7, 0),
                actor: None,
                what: "mention received".into(),
                detail: Some("https://social.example/m7 \"quoted\"\nவணக்கம்".into()),
            },
        ];
        let mut out = Vec::new();
        export_jsonl(&week, &audit, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 14);
        let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[..12], ["ticket"; 12]);
        assert_eq!(kinds[12..], ["audit"; 2]);
        let waits: Vec<Option<i64>> = lines[..12]
            .iter()
            .map(|l| l["first_response_seconds"].as_i64())
            .collect();
        assert_eq!(
            waits,
            [
                Some(600),
                Some(1800),
                Some(5400),
                Some(3600),
                Some(2700),
                None,
                None,
                None,
                None,
                Some(3900),
                Some(1800),
                Some(60)
            ]
        );
        let t2 = &lines[1];
        assert_eq!(t2["id"], 2);
        assert_eq!(t2["stage"], "resolved");
        assert_eq!(t2["resolved_at"], "2026-11-20T13:00:00Z");
        assert_eq!(t2["holder_id"], "slack:U1");
        assert_eq!(t2["closed_by_id"], "slack:U1");
        assert_eq!(lines[5]["replies_failed"], 1);
        assert_eq!(lines[12]["actor_name"], "Ana");
        assert_eq!(lines[13]["actor_id"], Value::Null);
        assert_eq!(
            lines[13]["detail"],
            audit[1].detail.clone().unwrap().as_str()
        );
        assert!(
            text.starts_with("{\"kind\":\"ticket\",\"id\":1,"),
            "kind first"
        );
    }

    #[test]
    fn csv_text_that_a_spreadsheet_would_run_is_neutralised() {
        assert_eq!(
            csv_field(&Value::from("=HYPERLINK(\"x\")")),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(csv_field(&Value::from("@brand hi")), "'@brand hi");
        assert_eq!(csv_field(&Value::from("-1")), "'-1");
        assert_eq!(csv_field(&Value::from(-1)), "-1", "numbers are numbers");
        assert_eq!(csv_field(&Value::from("plain")), "plain");
    }
}
