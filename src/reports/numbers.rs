//! The numbers over a window: volume, stages, first-response and resolution times, the
//! share answered within target, and the same figures per platform, agent, route and
//! shift (the definitions are in the module notes of `reports`).

use super::keys::{agent_key, agent_label, platform_key};
use crate::domain::{AgentRef, Scale, Stage, Ticket};
use crate::ports::tally::{route_label, SurveyFact, TicketFacts};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;
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
}

/// How spread out a set of times is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub p50: Option<Duration>,
    pub p90: Option<Duration>,
}

impl Spread {
    pub(super) fn of(mut samples: Vec<Duration>) -> Spread {
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
    /// The survey answers of the set's tickets.
    pub satisfaction: Satisfaction,
}

/// Survey answers counted up: CSAT (1–5) and NPS (0–10) answers apart, since a desk may
/// change its scale and a score means something else on each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Satisfaction {
    pub csat_answers: usize,
    /// CSAT answers of 4 or 5.
    pub csat_satisfied: usize,
    pub csat_sum: usize,
    pub nps_answers: usize,
    /// NPS answers of 9 or 10.
    pub nps_promoters: usize,
    /// NPS answers of 0 to 6.
    pub nps_detractors: usize,
}

impl Satisfaction {
    pub fn add(&mut self, scale: Scale, score: u8) {
        self.add_n(scale, score, 1);
    }

    /// Count `n` answers of `score` on `scale`.
    pub fn add_n(&mut self, scale: Scale, score: u8, n: usize) {
        match scale {
            Scale::Csat => {
                self.csat_answers += n;
                self.csat_sum += usize::from(score) * n;
                if score >= 4 {
                    self.csat_satisfied += n;
                }
            }
            Scale::Nps => {
                self.nps_answers += n;
                if score >= 9 {
                    self.nps_promoters += n;
                } else if score <= 6 {
                    self.nps_detractors += n;
                }
            }
        }
    }

    /// CSAT: the share of 4 and 5 among the CSAT answers, in percent.
    pub fn csat_percent(&self) -> Option<f64> {
        (self.csat_answers > 0)
            .then(|| self.csat_satisfied as f64 * 100.0 / self.csat_answers as f64)
    }

    /// The mean CSAT score (1–5).
    pub fn csat_mean(&self) -> Option<f64> {
        (self.csat_answers > 0).then(|| self.csat_sum as f64 / self.csat_answers as f64)
    }

    /// NPS: % promoters (9–10) minus % detractors (0–6), from −100 to 100.
    pub fn nps(&self) -> Option<f64> {
        (self.nps_answers > 0).then(|| {
            (self.nps_promoters as f64 - self.nps_detractors as f64) * 100.0
                / self.nps_answers as f64
        })
    }
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
    /// By the priority judged on arrival, most urgent first.
    pub by_priority: Vec<Group>,
    /// By the language the desk went by, busiest first (tickets of no known language
    /// under `?`).
    pub by_language: Vec<Group>,
}

/// How each ticket is judged: its route's first-response target, and the shift it
/// arrived in.
pub struct Targets<'a> {
    /// The default route's target (what the text calls "the target").
    pub default_sla: Duration,
    /// The first-response target of a route, by the name stamped on a ticket.
    pub sla_of: SlaOf<'a>,
    pub shift_of: ShiftOf<'a>,
}

/// A route's first-response target, by the name stamped on the ticket (empty: the
/// default route).
pub type SlaOf<'a> = Box<dyn Fn(&str) -> Duration + Send + Sync + 'a>;

/// The shift a ticket received at that instant arrived in, if shifts are configured.
pub type ShiftOf<'a> = Box<dyn Fn(DateTime<Utc>) -> Option<String> + Send + Sync + 'a>;

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
    ticket.first_response()
}

/// When a resolved ticket was resolved: its last update (see the module notes).
pub fn resolved_at(ticket: &Ticket) -> Option<DateTime<Utc>> {
    (ticket.stage == Stage::Resolved).then_some(ticket.updated_at)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Met,
    Breached,
    /// Unanswered, and the target has not passed yet.
    Pending,
    /// Ignored: the target does not apply.
    Exempt,
}

/// What the numbers need to know about one ticket, worked out once for every output.
pub(super) struct Facts<'a> {
    pub(super) stage: Stage,
    pub(super) first_response: Option<(Duration, &'a AgentRef)>,
    pub(super) resolution: Option<Duration>,
    pub(super) verdict: Verdict,
    pub(super) survey: Option<SurveyFact>,
}

impl<'a> Facts<'a> {
    pub(super) fn of(ticket: &'a TicketFacts, now: DateTime<Utc>, sla: Duration) -> Facts<'a> {
        let ignored = ticket.stage == Stage::Ignored;
        let first_response = ticket.first_response().filter(|_| !ignored);
        let verdict = match first_response {
            _ if ignored => Verdict::Exempt,
            Some((waited, _)) if waited <= sla => Verdict::Met,
            Some(_) => Verdict::Breached,
            None if now > ticket.received_at() + sla => Verdict::Breached,
            None => Verdict::Pending,
        };
        Facts {
            stage: ticket.stage,
            first_response,
            resolution: ticket
                .resolved_at()
                .map(|at| (at - ticket.received_at()).max(Duration::zero())),
            verdict,
            survey: ticket.survey,
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
        match facts.stage {
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
        if let Some(s) = facts.survey {
            f.satisfaction.add(s.scale, s.score);
        }
    }

    fn finish(self) -> Figures {
        Figures {
            first_response: Spread::of(self.first_response),
            resolution: Spread::of(self.resolution),
            ..self.figures
        }
    }
}

/// One breakdown being counted: groups by key (with the label last seen), each a tally.
#[derive(Default)]
struct Breakdown {
    groups: BTreeMap<String, (String, Tally)>,
}

impl Breakdown {
    /// Count `facts` in group `key` (`None`: it belongs to none).
    fn add(&mut self, group: Option<(String, String)>, facts: &Facts) {
        if let Some((key, label)) = group {
            let entry = self.groups.entry(key).or_default();
            // Tickets come oldest first: the newest name an agent used wins.
            entry.0 = label;
            entry.1.add(facts);
        }
    }

    /// The groups, busiest first, then by key.
    fn finish(self) -> Vec<Group> {
        let mut out: Vec<Group> = self
            .groups
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
}

/// The numbers of a window counted up one ticket at a time, so tickets can be read in
/// pages: what it keeps is a tally per group with the raw times, never the tickets.
pub struct Summarizer<'a> {
    window: Window,
    targets: &'a Targets<'a>,
    overall: Tally,
    by_platform: Breakdown,
    by_agent: Breakdown,
    by_route: Breakdown,
    by_shift: Breakdown,
    by_priority: Breakdown,
    by_language: Breakdown,
}

impl<'a> Summarizer<'a> {
    pub fn new(window: &Window, targets: &'a Targets<'a>) -> Summarizer<'a> {
        Summarizer {
            window: window.clone(),
            targets,
            overall: Tally::default(),
            by_platform: Breakdown::default(),
            by_agent: Breakdown::default(),
            by_route: Breakdown::default(),
            by_shift: Breakdown::default(),
            by_priority: Breakdown::default(),
            by_language: Breakdown::default(),
        }
    }

    /// Count `ticket` if it was opened in the window (oldest first, so the newest name
    /// an agent used is the one shown).
    pub fn add(&mut self, ticket: &TicketFacts) {
        if !self.window.contains(ticket.opened_at) {
            return;
        }
        let f = Facts::of(ticket, self.window.to, (self.targets.sla_of)(&ticket.route));
        self.overall.add(&f);
        let p = ticket.platform;
        self.by_platform.add(
            Some((platform_key(p).to_string(), p.label().to_string())),
            &f,
        );
        self.by_agent.add(
            f.first_response
                .map(|(_, agent)| (agent_key(agent), agent_label(agent))),
            &f,
        );
        let r = route_label(&ticket.route).to_string();
        self.by_route.add(Some((r.clone(), r)), &f);
        self.by_shift.add(
            (self.targets.shift_of)(ticket.opened_at).map(|s| (s.clone(), s)),
            &f,
        );
        let level = ticket.level.label().to_string();
        self.by_priority.add(Some((level.clone(), level)), &f);
        let language = match &ticket.language {
            Some(l) => (
                l.clone(),
                crate::domain::language::name(l).unwrap_or(l).to_string(),
            ),
            None => ("?".to_string(), "unknown".to_string()),
        };
        self.by_language.add(Some(language), &f);
    }

    pub fn finish(self) -> Summary {
        Summary {
            window: self.window,
            sla: self.targets.default_sla,
            overall: self.overall.finish(),
            by_platform: self.by_platform.finish(),
            by_agent: self.by_agent.finish(),
            by_route: self.by_route.finish(),
            by_shift: self.by_shift.finish(),
            by_priority: {
                // Most urgent first, whatever the volume.
                let mut groups = self.by_priority.finish();
                groups.sort_by_key(|g| std::cmp::Reverse(crate::domain::Level::parse(&g.key)));
                groups
            },
            by_language: self.by_language.finish(),
        }
    }
}

/// CSAT by local day in `tz`, for every day the window touches (oldest first): the mean
/// score (1–5) of the CSAT answers given that day by customers whose tickets are among
/// `facts`; `None` on a day without any. NPS answers are not on this scale and are left
/// out.
pub fn csat_by_day(
    facts: &[TicketFacts],
    window: &Window,
    tz: chrono_tz::Tz,
) -> Vec<(NaiveDate, Option<f64>)> {
    let mut by_day: BTreeMap<NaiveDate, Satisfaction> = BTreeMap::new();
    for s in facts.iter().filter_map(|f| f.survey) {
        if s.scale == Scale::Csat && window.contains(s.at) {
            by_day
                .entry(s.at.with_timezone(&tz).date_naive())
                .or_default()
                .add(s.scale, s.score);
        }
    }
    let first = window.from.with_timezone(&tz).date_naive();
    let last = (window.to - Duration::nanoseconds(1))
        .with_timezone(&tz)
        .date_naive();
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .take(400)
        .map(|d| (d, by_day.get(&d).and_then(Satisfaction::csat_mean)))
        .collect()
}

/// The numbers of the tickets opened in `window`, judged against a first-response
/// target of `sla` as of the window's end.
pub fn summarize(tickets: &[Ticket], window: &Window, sla: Duration) -> Summary {
    summarize_with(tickets, window, &Targets::flat(sla))
}

/// The numbers of the tickets opened in `window`, each judged against its route's
/// target as of the window's end, broken down by platform, agent, route and shift.
pub fn summarize_with(tickets: &[Ticket], window: &Window, targets: &Targets) -> Summary {
    let mut summary = Summarizer::new(window, targets);
    for t in tickets {
        summary.add(&TicketFacts::of(t));
    }
    summary.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;
    use crate::reports::testkit::*;
    use crate::reports::{prometheus_with, render_text};

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
            sla_of: Box::new(|route| if route == "vip" { mins(30) } else { mins(60) }),
            shift_of: Box::new(|at| {
                Some(if at.format("%H").to_string().as_str() < "12" {
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

    #[test]
    fn each_priority_and_language_is_counted_on_its_own() {
        // The week's X mentions were urgent and in Danish (detected); #1 is untagged.
        let tickets: Vec<Ticket> = week()
            .into_iter()
            .map(|mut t| {
                if t.mention.platform == Platform::X {
                    t.priority.level = crate::domain::Level::Urgent;
                    t.mention.detected_language = Some(crate::domain::DetectedLanguage {
                        language: Some("da".into()),
                        confidence: 90,
                        sure: true,
                    });
                }
                if t.id.0 == 1 {
                    t.mention.language = None;
                }
                t
            })
            .collect();
        let s = summarize(&tickets, &Window::parse("7d", now()).unwrap(), mins(60));
        let count = |groups: &[Group], key: &str| {
            groups
                .iter()
                .find(|g| g.key == key)
                .map_or(0, |g| g.figures.tickets)
        };
        // By hand (see `week`): #5 and #6 are the X mentions.
        assert_eq!(s.by_priority[0].key, "urgent", "most urgent first");
        assert_eq!(count(&s.by_priority, "urgent"), 2);
        assert_eq!(count(&s.by_priority, "normal"), 9);
        assert_eq!(count(&s.by_language, "da"), 2);
        assert_eq!(count(&s.by_language, "en"), 8);
        assert_eq!(count(&s.by_language, "?"), 1);
        let text = render_text(&s);
        assert!(text.contains("By priority:\n• urgent: 2 opened"), "{text}");
        assert!(text.contains("• Danish: 2 opened"), "{text}");
        assert!(text.contains("• unknown: 1 opened"), "{text}");
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
                satisfaction: Satisfaction::default(),
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
    fn csat_and_nps_match_the_hand_count_overall_and_per_agent_route_and_platform() {
        let s = summarize(
            &surveyed_week(),
            &Window::parse("7d", now()).unwrap(),
            mins(60),
        );
        let o = s.overall.satisfaction;
        // CSAT 5, 4, 2: two of three are 4-5; mean 11/3. NPS 9, 3, 7: one promoter, one
        // detractor, one passive: 0.
        assert_eq!((o.csat_answers, o.csat_satisfied, o.csat_sum), (3, 2, 11));
        assert!((o.csat_percent().unwrap() - 200.0 / 3.0).abs() < 1e-9);
        assert!((o.csat_mean().unwrap() - 11.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            (o.nps_answers, o.nps_promoters, o.nps_detractors),
            (3, 1, 1)
        );
        assert_eq!(o.nps(), Some(0.0));
        let of = |groups: &[Group], key: &str| {
            groups
                .iter()
                .find(|g| g.key == key)
                .unwrap_or_else(|| panic!("{key}"))
                .figures
                .satisfaction
        };
        assert_eq!(of(&s.by_agent, "slack:U1").csat_percent(), Some(100.0));
        assert_eq!(of(&s.by_agent, "discord:42").csat_percent(), Some(0.0));
        assert_eq!(of(&s.by_route, "vip \"gold\"").csat_mean(), Some(2.0));
        assert_eq!(of(&s.by_platform, "x").nps(), Some(0.0));
        assert_eq!(of(&s.by_platform, "x").csat_percent(), None);
        let text = crate::reports::render_text(&s);
        assert!(
            text.contains("• Satisfaction: CSAT 67% (2 of 3 answers 4-5, mean 3.7); NPS +0 (3 answers: 1 promoters, 1 detractors)\n"),
            "{text}"
        );
        assert!(
            text.contains("• Ana (Slack): 2 answered, median 10 min, 2 of 2 within target (100%), CSAT 100% (2 of 2 answers 4-5, mean 4.5)\n"),
            "{text}"
        );
    }

    #[test]
    fn csat_by_day_is_the_mean_of_each_local_days_csat_answers() {
        let facts: Vec<TicketFacts> = surveyed_week().iter().map(TicketFacts::of).collect();
        let window = Window::parse("7d", now()).unwrap();
        let days = csat_by_day(&facts, &window, chrono_tz::Tz::UTC);
        assert_eq!(days.len(), 8, "18th to 25th");
        let day = |d: u32| {
            days.iter()
                .find(|(date, _)| *date == NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
                .unwrap()
                .1
        };
        assert_eq!(day(20), Some(4.5));
        assert_eq!(day(21), Some(2.0));
        assert_eq!(day(22), None, "NPS answers are not on the CSAT scale");
        assert_eq!(day(19), None);
        // 12:00 UTC on the 21st is already the 22nd in Auckland (UTC+13).
        let auckland = csat_by_day(&facts, &window, chrono_tz::Pacific::Auckland);
        let nz = |d: u32| {
            auckland
                .iter()
                .find(|(date, _)| *date == NaiveDate::from_ymd_opt(2026, 11, d).unwrap())
                .unwrap()
                .1
        };
        assert_eq!((nz(21), nz(22)), (Some(4.5), Some(2.0)));
    }
}
