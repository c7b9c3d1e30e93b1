//! Charts of the work: the numbers behind them (pure, here) and their PNG rendering
//! ([`render`]). Every figure is about the same cohort as `/mentions stats` for the same
//! window: tickets *received* in it (`from <= opened_at < to`), read in a chosen time zone.
//!
//! - **Week** (7×24, Monday 00:00 first, local wall-clock hours): mentions received in each
//!   hour of the week, and the on-call cover of that hour: the mean number of primary
//!   agents on shift at the middle of each of the window's hours that fall on it, from the
//!   configured rotations only (overrides are left out: they are one-offs, not the cover the
//!   desk plans). An hour of the week is *uncovered* when nobody was on shift at any of its
//!   hours in the window. Runs of uncovered hours wrap across midnight and the week's end.
//! - **First response by hour of day**: nearest-rank median and p90 in minutes of the
//!   tickets received in that local hour and answered (ignored tickets excluded).
//! - **Daily**: per local day, the share of answered tickets answered within their route's
//!   first-response target (answered within / answered), and CSAT when given.

pub mod render;

use super::numbers::{Spread, Targets, Window};
use crate::domain::oncall::Schedule;
use crate::domain::Stage;
use crate::ports::tally::TicketFacts;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

pub const HOURS_OF_WEEK: usize = 7 * 24;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Hour of the week of an instant in `tz`: Monday 00:00–00:59 is 0, Sunday 23:00 is 167.
pub fn hour_of_week(t: DateTime<Utc>, tz: Tz) -> usize {
    let local = t.with_timezone(&tz);
    local.weekday().num_days_from_monday() as usize * 24 + local.hour() as usize
}

/// `Sat 19:00` for an hour of the week.
pub fn hour_label(how: usize) -> String {
    let how = how % HOURS_OF_WEEK;
    format!("{} {:02}:00", DAY_NAMES[how / 24], how % 24)
}

/// A run of consecutive uncovered hours of the week (it may wrap past Sunday 23:00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// First hour of the week of the run.
    pub start: usize,
    /// Length in hours (168: nobody is ever on shift).
    pub hours: usize,
    /// Mentions received in the run's hours.
    pub mentions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekChart {
    /// Mentions per hour of the week.
    pub mentions: Vec<usize>,
    /// Mean primary agents on shift per hour of the week (`None`: the window has none of
    /// that hour of the week).
    pub coverage: Vec<Option<f64>>,
    /// Hours of the week nobody was on shift, in order.
    pub uncovered: Vec<usize>,
    pub total: usize,
    /// The uncovered run where the most mentions arrive (ties: the longer, then earlier).
    pub largest_gap: Option<Gap>,
}

impl WeekChart {
    /// "23 % of mentions arrive Sat 19:00–03:00 with nobody on shift".
    pub fn gap_sentence(&self) -> String {
        match &self.largest_gap {
            None if self.total == 0 => "No mentions in this window.".to_string(),
            None => "Someone is on shift in every hour mentions arrive.".to_string(),
            Some(_) if self.total == 0 => "No mentions in this window.".to_string(),
            Some(g) if g.hours >= HOURS_OF_WEEK => {
                "100 % of mentions arrive with nobody on shift (no shifts cover this window)."
                    .to_string()
            }
            Some(g) => {
                let share = (g.mentions * 100 + self.total / 2) / self.total;
                let end = (g.start + g.hours) % HOURS_OF_WEEK;
                let to = format!("{:02}:00", end % 24);
                format!(
                    "{share} % of mentions arrive {}–{to} with nobody on shift",
                    hour_label(g.start)
                )
            }
        }
    }
}

/// The week chart of `facts` (tickets received in `window`; others are skipped).
pub fn week_chart(
    facts: &[TicketFacts],
    window: &Window,
    tz: Tz,
    schedule: &Schedule,
) -> WeekChart {
    let mut mentions = vec![0usize; HOURS_OF_WEEK];
    let mut total = 0;
    for t in facts.iter().filter(|t| window.contains(t.received_at())) {
        mentions[hour_of_week(t.received_at(), tz)] += 1;
        total += 1;
    }
    let coverage = coverage(window, tz, schedule);
    let uncovered: Vec<usize> = (0..HOURS_OF_WEEK)
        .filter(|h| coverage[*h] == Some(0.0))
        .collect();
    let largest_gap = largest_gap(&coverage, &mentions);
    WeekChart {
        mentions,
        coverage,
        uncovered,
        total,
        largest_gap,
    }
}

/// Mean primary agents on shift per hour of the week, sampled at the middle of each whole
/// UTC hour of the window (zones with half-hour offsets sample at :00 local then).
fn coverage(window: &Window, tz: Tz, schedule: &Schedule) -> Vec<Option<f64>> {
    let rotations = Schedule {
        rotations: schedule.rotations.clone(),
        overrides: Vec::new(),
        agents: schedule.agents.clone(),
    };
    let mut sum = vec![0usize; HOURS_OF_WEEK];
    let mut seen = vec![0usize; HOURS_OF_WEEK];
    let first = window.from.with_minute(0).and_then(|t| t.with_second(0));
    let mut hour = first
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(window.from);
    // At most a year of hours: the window is bounded by `Window::parse`.
    let mut steps = 0;
    while hour < window.to && steps < 366 * 24 + 1 {
        let probe = hour + Duration::minutes(30);
        if window.contains(probe) {
            let h = hour_of_week(probe, tz);
            sum[h] += rotations.on_call(probe).primary.len();
            seen[h] += 1;
        }
        hour += Duration::hours(1);
        steps += 1;
    }
    (0..HOURS_OF_WEEK)
        .map(|h| (seen[h] > 0).then(|| sum[h] as f64 / seen[h] as f64))
        .collect()
}

/// Runs of uncovered hours (wrapping), the one with the most mentions.
fn largest_gap(coverage: &[Option<f64>], mentions: &[usize]) -> Option<Gap> {
    let bare = |h: usize| coverage[h % HOURS_OF_WEEK] == Some(0.0);
    if (0..HOURS_OF_WEEK).all(bare) {
        return Some(Gap {
            start: 0,
            hours: HOURS_OF_WEEK,
            mentions: mentions.iter().sum(),
        });
    }
    let mut best: Option<Gap> = None;
    for start in 0..HOURS_OF_WEEK {
        // A run starts where the hour before it is covered.
        if !bare(start) || bare(start + HOURS_OF_WEEK - 1) {
            continue;
        }
        let mut hours = 0;
        let mut count = 0;
        while bare(start + hours) {
            count += mentions[(start + hours) % HOURS_OF_WEEK];
            hours += 1;
        }
        let gap = Gap {
            start,
            hours,
            mentions: count,
        };
        let better = match &best {
            None => true,
            Some(b) => (gap.mentions, gap.hours) > (b.mentions, b.hours),
        };
        if better {
            best = Some(gap);
        }
    }
    best
}

/// First response of the tickets received in one local hour of the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourResponse {
    pub hour: u32,
    pub answered: usize,
    pub median_minutes: Option<f64>,
    pub p90_minutes: Option<f64>,
}

pub fn first_response_by_hour(facts: &[TicketFacts], window: &Window, tz: Tz) -> Vec<HourResponse> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); 24];
    for t in facts
        .iter()
        .filter(|t| window.contains(t.received_at()) && t.stage != Stage::Ignored)
    {
        if let Some((waited, _)) = t.first_response() {
            samples[t.received_at().with_timezone(&tz).hour() as usize].push(waited);
        }
    }
    let minutes = |d: Option<Duration>| d.map(|d| d.num_seconds() as f64 / 60.0);
    samples
        .into_iter()
        .enumerate()
        .map(|(hour, s)| {
            let spread = Spread::of(s);
            HourResponse {
                hour: hour as u32,
                answered: spread.count,
                median_minutes: minutes(spread.p50),
                p90_minutes: minutes(spread.p90),
            }
        })
        .collect()
}

/// One local day of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub received: usize,
    pub answered: usize,
    /// Answered within their route's first-response target.
    pub within_target: usize,
    /// `within_target / answered` in percent; `None` when nothing was answered.
    pub sla_percent: Option<f64>,
    /// Mean survey score of the day, when surveys are wired in.
    pub csat: Option<f64>,
}

/// Every local day the window touches, oldest first, with CSAT from `csat` (dates not in
/// it: none).
pub fn daily(
    facts: &[TicketFacts],
    window: &Window,
    tz: Tz,
    targets: &Targets,
    csat: &[(NaiveDate, Option<f64>)],
) -> Vec<Day> {
    let first = window.from.with_timezone(&tz).date_naive();
    let last = (window.to - Duration::nanoseconds(1))
        .with_timezone(&tz)
        .date_naive();
    let mut days = Vec::new();
    let mut d = first;
    while d <= last && days.len() <= 400 {
        days.push(Day {
            date: d,
            received: 0,
            answered: 0,
            within_target: 0,
            sla_percent: None,
            csat: csat.iter().find(|(c, _)| *c == d).and_then(|(_, v)| *v),
        });
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    for t in facts.iter().filter(|t| window.contains(t.received_at())) {
        let date = t.received_at().with_timezone(&tz).date_naive();
        let Some(day) = days.iter_mut().find(|x| x.date == date) else {
            continue;
        };
        day.received += 1;
        if t.stage == Stage::Ignored {
            continue;
        }
        if let Some((waited, _)) = t.first_response() {
            day.answered += 1;
            if waited <= (targets.sla_of)(&t.route) {
                day.within_target += 1;
            }
        }
    }
    for day in &mut days {
        day.sla_percent =
            (day.answered > 0).then(|| day.within_target as f64 * 100.0 / day.answered as f64);
    }
    days
}

/// Everything the three charts are drawn from, for one window and zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartData {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub time_zone: String,
    pub generated_at: DateTime<Utc>,
    pub week: WeekChart,
    pub gap_sentence: String,
    pub first_response: Vec<HourResponse>,
    pub daily: Vec<Day>,
}

impl ChartData {
    pub fn of(
        facts: &[TicketFacts],
        window: &Window,
        tz: Tz,
        schedule: &Schedule,
        targets: &Targets,
        csat: &[(NaiveDate, Option<f64>)],
        generated_at: DateTime<Utc>,
    ) -> ChartData {
        let week = week_chart(facts, window, tz, schedule);
        ChartData {
            from: window.from,
            to: window.to,
            time_zone: tz.name().to_string(),
            generated_at,
            gap_sentence: week.gap_sentence(),
            week,
            first_response: first_response_by_hour(facts, window, tz),
            daily: daily(facts, window, tz, targets, csat),
        }
    }

    /// "2026-11-18 – 2026-11-25 (Europe/Berlin), generated 2026-11-25 09:00 UTC".
    pub fn caption(&self) -> String {
        let tz: Tz = self.time_zone.parse().unwrap_or(Tz::UTC);
        let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
        format!(
            "{} – {} ({}), generated {}",
            fmt(self.from),
            fmt(self.to),
            self.time_zone,
            self.generated_at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

#[cfg(test)]
mod tests;
