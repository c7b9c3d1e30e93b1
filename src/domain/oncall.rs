//! The on-call schedule: who is primary and who is secondary at a given instant for a
//! follow-the-sun team whose shifts are written in local wall-clock time ("08:00–16:00 in
//! Berlin, Monday to Friday, these three agents in turn, a new one every week"), plus short
//! overrides taken from chat ("/mentions oncall override @agent 4h"). Every answer is a
//! function of the rotations, the overrides and the instant passed in: turn-taking is
//! counted from a fixed anchor date, so nothing is stored between calls and no clock is read.
//!
//! **Local times and daylight saving.** A wall-clock time `t` in a rotation's zone means
//! *the first instant at which that zone's clock reads `t` or later*. So a time that does not
//! exist (America/New_York 02:30 on spring-forward night) means the first instant after the
//! gap (03:00 EDT), and a time that happens twice (01:30 on fall-back night) means its first
//! occurrence (01:30 EDT). The same rule is used for shift starts and ends, and it never
//! reorders two times, so shifts that meet in local time still meet exactly across a change
//! (no gap, no overlap), and a shift swallowed whole by a gap simply does not happen that
//! night. Elapsed length is what the clock really ran: 22:00–06:00 is 7 hours on
//! spring-forward night and 9 hours on fall-back night.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

use super::agents::Agents;
use serde::{Deserialize, Serialize};

/// How far `next_change` looks for a rotation hand-off before it answers "never": a year
/// covers every turn-taking cycle a real team writes down and both DST changes.
const LOOKAHEAD_WEEKS: u32 = 53;

/// The escalation layer a rotation or override covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    #[default]
    Primary,
    Secondary,
}

/// How often the turn passes to the next member of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handoff {
    #[serde(alias = "daily")]
    Day,
    #[serde(alias = "weekly")]
    Week,
}

impl Handoff {
    fn days(self) -> i64 {
        match self {
            Handoff::Day => 1,
            Handoff::Week => 7,
        }
    }
}

/// One recurring shift in the rotation's local time: on each listed day it starts at
/// `start`; when `end` is not after `start` it ends on the following day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Days the shift *starts* on: `"mon"`..`"sun"` (full names work too) or a range such
    /// as `"mon-fri"`.
    #[serde(with = "day_names")]
    pub days: Vec<Weekday>,
    /// `"HH:MM"` (24-hour) local time.
    #[serde(with = "clock_time")]
    pub start: NaiveTime,
    #[serde(with = "clock_time")]
    pub end: NaiveTime,
}

impl Shift {
    /// Whether the shift ends on the day after it starts (`22:00–06:00`).
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Length on an ordinary day (no DST change); zero for `start == end`.
    fn nominal_seconds(&self) -> i64 {
        let span = i64::from(self.end.num_seconds_from_midnight())
            - i64::from(self.start.num_seconds_from_midnight());
        if span < 0 {
            span + 86_400
        } else {
            span
        }
    }

    /// The shift that starts on local date `day`, in UTC; `None` when it has no length
    /// that night (a zero-length shift, or one that falls wholly inside a DST gap).
    fn occurrence(&self, zone: Tz, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if self.start == self.end {
            return None;
        }
        let end_day = if self.crosses_midnight() {
            day.succ_opt()?
        } else {
            day
        };
        let start = first_instant_at_or_after(zone, day.and_time(self.start));
        let end = first_instant_at_or_after(zone, end_day.and_time(self.end));
        (start < end).then_some((start, end))
    }
}

impl fmt::Display for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = self.days.iter().map(|d| day_names::short(*d)).collect();
        if !days.is_empty() {
            write!(f, "{} ", days.join(","))?;
        }
        write!(
            f,
            "{}–{}",
            clock_time::format(self.start),
            clock_time::format(self.end)
        )
    }
}

/// A team's recurring cover in one time zone (one `[[oncall.rotation]]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub name: String,
    /// IANA zone name, e.g. `"America/New_York"`; the shifts are read in this zone.
    #[serde(with = "zone_name")]
    pub time_zone: Tz,
    #[serde(default)]
    pub layer: Layer,
    pub shifts: Vec<Shift>,
    /// Agent keys: `"slack:U0ANA"` or `"discord:120045678901234567"`.
    pub members: Vec<String>,
    /// `None`: every member is on for every shift. `day`/`week`: one member at a time,
    /// taking turns in list order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_every: Option<Handoff>,
    /// Local date the first turn (member 0) begins; weekly turns change on its weekday.
    #[serde(default = "default_anchor")]
    pub anchor: NaiveDate,
}

fn default_anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("2024-01-01 is a date")
}

impl Rotation {
    /// Who holds the shifts that start on local date `day`. A shift belongs to the day it
    /// starts on, so nobody changes hands at midnight in the middle of a night shift.
    pub fn members_for(&self, day: NaiveDate) -> &[String] {
        match self.handoff_every {
            None => &self.members,
            Some(_) if self.members.is_empty() => &[],
            Some(every) => {
                let turn = (day - self.anchor).num_days().div_euclid(every.days());
                let index = turn.rem_euclid(self.members.len() as i64) as usize;
                std::slice::from_ref(&self.members[index])
            }
        }
    }

    /// The start and end (UTC) of this rotation's shift that is running at `at`.
    pub fn shift_at(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.occurrences(at, at)
            .filter(|o| o.start <= at && at < o.end)
            .min_by_key(|o| o.start)
            .map(|o| (o.start, o.end))
    }

    /// Every shift starting on a local date that could touch `[from, to]`; a shift lasts
    /// under a day, so it starts at most one local date before `from`'s.
    fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = Occurrence> + '_ {
        let first = from.with_timezone(&self.time_zone).date_naive();
        let first = first.pred_opt().unwrap_or(first);
        let last = to.with_timezone(&self.time_zone).date_naive();
        first
            .iter_days()
            .take_while(move |day| *day <= last)
            .flat_map(move |day| {
                self.shifts
                    .iter()
                    .filter(move |shift| shift.days.contains(&day.weekday()))
                    .filter_map(move |shift| shift.occurrence(self.time_zone, day))
                    .map(move |(start, end)| Occurrence { day, start, end })
            })
    }
}

#[derive(Debug, Clone, Copy)]
struct Occurrence {
    /// Local date the shift started on: decides whose turn it is.
    day: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Someone put on call by hand for a while, replacing the rotations of that layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub member: String,
    pub layer: Layer,
    pub from: DateTime<Utc>,
    /// Exclusive: at `until` the rotations take over again.
    pub until: DateTime<Utc>,
}

impl Override {
    /// "/mentions oncall override @agent 4h", issued at `from`.
    pub fn lasting(
        member: impl Into<String>,
        layer: Layer,
        from: DateTime<Utc>,
        length: Duration,
    ) -> Self {
        Override {
            member: member.into(),
            layer,
            from,
            until: from + length,
        }
    }

    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.until
    }
}

/// Who is on call at one instant, layer by layer: overrides first, then rotations in
/// configuration order, each agent once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OnCall {
    pub primary: Vec<String>,
    pub secondary: Vec<String>,
}

impl OnCall {
    pub fn layer(&self, layer: Layer) -> &[String] {
        match layer {
            Layer::Primary => &self.primary,
            Layer::Secondary => &self.secondary,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.primary.is_empty() && self.secondary.is_empty()
    }

    /// Same people on each layer, whatever the order they are listed in.
    pub fn same_people(&self, other: &OnCall) -> bool {
        fn set(people: &[String]) -> BTreeSet<&str> {
            people.iter().map(String::as_str).collect()
        }
        set(&self.primary) == set(&other.primary) && set(&self.secondary) == set(&other.secondary)
    }
}

/// All rotations and the overrides currently known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    pub rotations: Vec<Rotation>,
    pub overrides: Vec<Override>,
    /// People with several accounts (`[[agents]]`): whoever is on call is on call with
    /// each of them.
    #[serde(skip)]
    pub agents: Agents,
}

impl Schedule {
    /// Who is on call at `at`. An override active for a layer replaces every rotation of
    /// that layer for its window; several rotations may be on at once.
    pub fn on_call(&self, at: DateTime<Utc>) -> OnCall {
        OnCall {
            primary: self.layer_at(Layer::Primary, at),
            secondary: self.layer_at(Layer::Secondary, at),
        }
    }

    fn layer_at(&self, layer: Layer, at: DateTime<Utc>) -> Vec<String> {
        let mut people: Vec<String> = Vec::new();
        let mut add = |member: &String| {
            if !people.contains(member) {
                people.push(member.clone());
            }
        };
        let overrides: Vec<&Override> = self
            .overrides
            .iter()
            .filter(|o| o.layer == layer && o.covers(at))
            .collect();
        if overrides.is_empty() {
            for rotation in self.rotations.iter().filter(|r| r.layer == layer) {
                for shift in rotation.occurrences(at, at) {
                    if shift.start <= at && at < shift.end {
                        rotation.members_for(shift.day).iter().for_each(&mut add);
                    }
                }
            }
        } else {
            overrides.iter().for_each(|o| add(&o.member));
        }
        self.agents.expand(people)
    }

    /// The first instant after `after` at which someone comes on or goes off call (a shift
    /// hand-off, an override starting or ending). Edges where the people stay the same
    /// (one agent's back-to-back shifts, a hand-off hidden under an override) are skipped.
    /// `None` when nothing changes within a year and no later override starts or ends.
    pub fn next_change(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now = self.on_call(after);
        let changed = |edge: &DateTime<Utc>| !self.on_call(*edge).same_people(&now);
        let mut from = after;
        for _ in 0..LOOKAHEAD_WEEKS {
            let to = from + Duration::weeks(1);
            if let Some(edge) = self.edges(from, to).into_iter().find(changed) {
                return Some(edge);
            }
            from = to;
        }
        let mut later: Vec<DateTime<Utc>> = self
            .overrides
            .iter()
            .flat_map(|o| [o.from, o.until])
            .filter(|edge| *edge > from)
            .collect();
        later.sort();
        later.into_iter().find(changed)
    }

    /// Every shift and override edge in `(from, to]`, in order, each once.
    fn edges(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let shifts = self
            .rotations
            .iter()
            .flat_map(|r| r.occurrences(from, to))
            .flat_map(|o| [o.start, o.end]);
        let overrides = self.overrides.iter().flat_map(|o| [o.from, o.until]);
        let edges: BTreeSet<DateTime<Utc>> = shifts
            .chain(overrides)
            .filter(|edge| from < *edge && *edge <= to)
            .collect();
        edges.into_iter().collect()
    }

    /// The shift a moment belongs to, for the numbers: the primary rotations on at `at`
    /// joined by `+` (`emea`, `americas+apac` in an overlap), or `off shift`.
    pub fn shift_label(&self, at: DateTime<Utc>) -> String {
        let on: Vec<&str> = self
            .rotations
            .iter()
            .filter(|r| r.layer == Layer::Primary && r.shift_at(at).is_some())
            .map(|r| r.name.as_str())
            .collect();
        if on.is_empty() {
            "off shift".into()
        } else {
            on.join("+")
        }
    }

    /// Start and end (UTC) of the named rotation's shift running at `at`, for "answered
    /// this shift" counts; `None` between shifts or for an unknown rotation.
    pub fn shift_window(
        &self,
        rotation: &str,
        at: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.rotations
            .iter()
            .find(|r| r.name == rotation)?
            .shift_at(at)
    }

    /// Mistakes in the schedule, one sentence each; empty when it is sound.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        for (index, rotation) in self.rotations.iter().enumerate() {
            let name = &rotation.name;
            if name.trim().is_empty() {
                problems.push(format!(
                    "rotation #{} has no name: give it one, such as \"new-york\".",
                    index + 1
                ));
            } else if !names.insert(name.as_str()) {
                problems.push(format!(
                    "two rotations are named \"{name}\": names must be unique so a shift can be found by its rotation's name."
                ));
            }
            if rotation.members.is_empty() {
                problems.push(format!(
                    "rotation \"{name}\" has no members: list agent keys such as \"slack:U0ANA\" or \"discord:120045678901234567\"."
                ));
            }
            for member in &rotation.members {
                if let Some(problem) = member_key_problem(member) {
                    problems.push(format!("rotation \"{name}\": {problem}"));
                }
            }
            if rotation.shifts.is_empty() {
                problems.push(format!(
                    "rotation \"{name}\" has no shifts, so nobody from it is ever on call: add one such as {{ days = [\"mon-fri\"], start = \"08:00\", end = \"16:00\" }}."
                ));
            }
            problems.extend(shift_problems(rotation));
        }
        for o in &self.overrides {
            if let Some(problem) = member_key_problem(&o.member) {
                problems.push(format!("override: {problem}"));
            }
            if o.until <= o.from {
                problems.push(format!(
                    "the override for {} ends ({}) before it starts ({}): give it a positive length such as 4h.",
                    o.member,
                    o.until.format("%Y-%m-%d %H:%M UTC"),
                    o.from.format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
        problems
    }
}

fn member_key_problem(member: &str) -> Option<String> {
    let well_formed = match member.split_once(':') {
        Some(("slack", id)) => !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()),
        Some(("discord", id)) => !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        _ => false,
    };
    (!well_formed).then(|| {
        format!(
            "member \"{member}\" is not an agent key: write slack:<user id> (e.g. slack:U0ANA) or discord:<user id> (e.g. discord:120045678901234567)."
        )
    })
}

/// Who `/mentions oncall override <who> <for>` names, as a member key: `me` (the agent who
/// typed it, whose key is `own_key`), a member key (`slack:U0123ABCD`,
/// `discord:112233445566778899`), or the mention a surface sends when an agent types
/// `@kim`: Slack's `<@U0123ABCD>` or `<@U0123ABCD|kim>`, Discord's `<@112233445566778899>`
/// or `<@!112233445566778899>`, each read as an account of the surface it came from.
/// Anything else is refused with a sentence that does not repeat what was typed.
pub fn override_member(
    typed: &str,
    own_key: &str,
    surface: crate::domain::SurfaceKind,
) -> Result<String, String> {
    let typed = typed.trim();
    let refused = || {
        "That is not an agent: name them with a mention (type @ and pick them), `me`, or a member key such as `slack:U0123ABCD` or `discord:112233445566778899`.".to_string()
    };
    if typed.eq_ignore_ascii_case("me") {
        return Ok(own_key.to_string());
    }
    let key = match typed
        .strip_prefix("<@")
        .and_then(|rest| rest.strip_suffix('>'))
    {
        Some(inner) => {
            let id = match surface {
                // `<@U0123ABCD|kim>`: the part after `|` is only the name Slack showed.
                crate::domain::SurfaceKind::Slack => inner.split('|').next().unwrap_or(""),
                crate::domain::SurfaceKind::Discord => inner.strip_prefix('!').unwrap_or(inner),
            };
            format!("{}:{id}", surface.label().to_ascii_lowercase())
        }
        None => typed.to_string(),
    };
    let well_formed = match key.split_once(':') {
        Some(("slack", id)) => {
            id.len() >= 5
                && id.starts_with(['U', 'W'])
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        Some(("discord", id)) => {
            (17..=20).contains(&id.len()) && id.chars().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    if well_formed {
        Ok(key)
    } else {
        Err(refused())
    }
}

/// How long an override lasts, as typed in chat: `4h`, `for 4h`, `30m`, `30 min`, `2d`;
/// from one minute to a week. Huge, negative, fractional or non-ASCII numbers are refused
/// with a sentence, never a panic.
pub fn override_length(typed: &str) -> Result<Duration, String> {
    let refused = || {
        "Say for how long with a number and a unit, e.g. 30m, 4h or 2d (one minute up to 7 days)."
            .to_string()
    };
    let text = typed.trim().to_ascii_lowercase();
    let text = text
        .strip_prefix("for")
        .map(|rest| rest.trim_start_matches(':').trim())
        .unwrap_or(text.trim());
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let minutes_per_unit: i64 = match unit.trim() {
        "m" | "min" | "mins" | "minute" | "minutes" => 1,
        "h" | "hr" | "hrs" | "hour" | "hours" => 60,
        "d" | "day" | "days" => 24 * 60,
        _ => return Err(refused()),
    };
    // At most a week is 10,080 minutes: five digits are plenty, and more cannot overflow.
    if number.is_empty() || number.len() > 5 {
        return Err(refused());
    }
    let minutes = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(minutes_per_unit))
        .filter(|m| (1..=7 * 24 * 60).contains(m))
        .ok_or_else(refused)?;
    Ok(Duration::minutes(minutes))
}

/// Zero-length shifts, shifts without days, a day listed twice, and shifts of one
/// rotation that overlap somewhere in the week (midnight and Sunday→Monday included).
fn shift_problems(rotation: &Rotation) -> Vec<String> {
    const WEEK: i64 = 7 * 86_400;
    let name = &rotation.name;
    let mut problems = Vec::new();
    // (shift index, start day, start and end in seconds since Monday 00:00)
    let mut spans: Vec<(usize, Weekday, i64, i64)> = Vec::new();
    for (i, shift) in rotation.shifts.iter().enumerate() {
        let label = format!("rotation \"{name}\", shift {} ({shift})", i + 1);
        if shift.days.is_empty() {
            problems.push(format!(
                "{label} has no days: list the days it starts on, such as [\"mon-fri\"]."
            ));
        }
        let mut seen = BTreeSet::new();
        for day in &shift.days {
            if !seen.insert(day.num_days_from_monday()) {
                problems.push(format!("{label} lists {} twice.", day_names::short(*day)));
            }
        }
        if shift.start == shift.end {
            problems.push(format!(
                "{label} has zero length: start and end are both {}; for cover around the clock use two shifts such as 00:00–12:00 and 12:00–00:00.",
                clock_time::format(shift.start)
            ));
            continue;
        }
        for day in seen {
            let start = day as i64 * 86_400 + i64::from(shift.start.num_seconds_from_midnight());
            let weekday = Weekday::try_from(day as u8).unwrap_or(Weekday::Mon);
            spans.push((i, weekday, start, start + shift.nominal_seconds()));
        }
    }
    let mut reported = BTreeSet::new();
    for (n, a) in spans.iter().enumerate() {
        for b in &spans[n + 1..] {
            if a.0 == b.0 || reported.contains(&(a.0, b.0)) {
                continue;
            }
            let overlap = [-WEEK, 0, WEEK]
                .iter()
                .any(|wrap| a.2 < b.3 + wrap && b.2 + wrap < a.3);
            if overlap {
                reported.insert((a.0, b.0));
                let (sa, sb) = (&rotation.shifts[a.0], &rotation.shifts[b.0]);
                problems.push(format!(
                    "rotation \"{name}\": shift {} ({sa}) overlaps shift {} ({sb}) — the one starting {} {} runs into the one starting {} {}; shifts of one rotation must not overlap, so move a start or end, or put the extra cover in a second rotation.",
                    a.0 + 1,
                    b.0 + 1,
                    day_names::short(a.1),
                    clock_time::format(sa.start),
                    day_names::short(b.1),
                    clock_time::format(sb.start),
                ));
            }
        }
    }
    problems
}

/// The first instant at which `zone`'s wall clock reads `local` or later (see the module
/// comment): the time itself when it exists once, its first occurrence when the clock
/// goes back over it, the end of the gap when the clock jumps over it.
fn first_instant_at_or_after(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        MappedLocalTime::Single(t) => t.with_timezone(&Utc),
        MappedLocalTime::Ambiguous(first, _) => first.with_timezone(&Utc),
        MappedLocalTime::None => {
            // Inside a gap: search the UTC instants around it for the moment the clock
            // jumps past `local`. Offsets lie within −12h..+14h, so the clock reads earlier
            // than `local` at `lo` and at least `local` at `hi`; the clock only moves
            // forward across a gap, so halving keeps that true. Transitions fall on whole
            // seconds.
            let wall = |utc: NaiveDateTime| zone.from_utc_datetime(&utc).naive_local();
            let mut lo = local - Duration::hours(15);
            let mut hi = local + Duration::hours(13);
            while (hi - lo).num_seconds() > 1 {
                let mid = lo + Duration::seconds((hi - lo).num_seconds() / 2);
                if wall(mid) >= local {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            Utc.from_utc_datetime(&hi)
        }
    }
}

mod zone_name {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(zone: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(zone.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        Tz::from_str(name.trim()).map_err(|_| {
            let hint = chrono_tz::TZ_VARIANTS
                .iter()
                .find(|z| z.name().eq_ignore_ascii_case(name.trim()))
                .map(|z| format!(" (did you mean \"{}\"?)", z.name()))
                .unwrap_or_default();
            D::Error::custom(format!(
                "unknown time zone \"{name}\"{hint}: use an IANA name such as \"America/New_York\", \"Europe/Berlin\" or \"Asia/Kolkata\""
            ))
        })
    }
}

mod day_names {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub fn short(day: Weekday) -> &'static str {
        match day {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    fn one(name: &str) -> Option<Weekday> {
        let name = name.trim().to_ascii_lowercase();
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .find(|day| name == short(*day) || name == long(*day))
    }

    fn long(day: Weekday) -> &'static str {
        match day {
            Weekday::Mon => "monday",
            Weekday::Tue => "tuesday",
            Weekday::Wed => "wednesday",
            Weekday::Thu => "thursday",
            Weekday::Fri => "friday",
            Weekday::Sat => "saturday",
            Weekday::Sun => "sunday",
        }
    }

    /// `"tue"` or a range `"mon-fri"` (which may wrap: `"fri-mon"`).
    pub(super) fn parse(entry: &str) -> Result<Vec<Weekday>, String> {
        let bad = || {
            format!(
                "\"{entry}\" is not a day of the week: use mon, tue, wed, thu, fri, sat, sun or a range such as \"mon-fri\""
            )
        };
        match entry.split_once('-') {
            None => one(entry).map(|d| vec![d]).ok_or_else(bad),
            Some((first, last)) => {
                let (first, last) = (one(first).ok_or_else(bad)?, one(last).ok_or_else(bad)?);
                let mut days = vec![first];
                let mut day = first;
                while day != last {
                    day = day.succ();
                    days.push(day);
                }
                Ok(days)
            }
        }
    }

    pub fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(days.iter().map(|d| short(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        let mut days = Vec::new();
        for entry in Vec::<String>::deserialize(d)? {
            days.extend(parse(&entry).map_err(D::Error::custom)?);
        }
        Ok(days)
    }
}

mod clock_time {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub fn format(time: NaiveTime) -> String {
        if time.second() == 0 {
            time.format("%H:%M").to_string()
        } else {
            time.format("%H:%M:%S").to_string()
        }
    }

    pub fn serialize<S: Serializer>(time: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M:%S"))
            .map_err(|_| {
                D::Error::custom(format!(
                    "\"{text}\" is not a time of day: write 24-hour HH:MM such as \"08:00\" or \"22:30\""
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Australia, Europe};
    use Weekday::*;

    const WEEKDAYS: [Weekday; 5] = [Mon, Tue, Wed, Thu, Fri];
    const EVERY_DAY: [Weekday; 7] = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn shift(days: &[Weekday], start: &str, end: &str) -> Shift {
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").expect("test time");
        Shift {
            days: days.to_vec(),
            start: time(start),
            end: time(end),
        }
    }

    fn rotation(name: &str, zone: Tz, shifts: Vec<Shift>, members: &[&str]) -> Rotation {
        Rotation {
            name: name.to_string(),
            time_zone: zone,
            layer: Layer::Primary,
            shifts,
            members: people(members),
            handoff_every: None,
            anchor: default_anchor(),
        }
    }

    fn taking_turns(mut r: Rotation, every: Handoff) -> Rotation {
        r.handoff_every = Some(every);
        r
    }

    fn schedule(rotations: Vec<Rotation>) -> Schedule {
        Schedule {
            rotations,
            overrides: Vec::new(),
            agents: Agents::default(),
        }
    }

    fn people(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    fn primary(s: &Schedule, instant: &str) -> Vec<String> {
        s.on_call(at(instant)).primary
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date")
    }

    /// Every `next_change` from `from` up to and including `until`.
    fn changes(s: &Schedule, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut found = Vec::new();
        let mut cursor = from;
        while let Some(next) = s.next_change(cursor) {
            if next > until {
                break;
            }
            found.push(next);
            cursor = next;
        }
        found
    }

    // ---- the local-time rule itself -------------------------------------------------

    #[test]
    fn every_quarter_hour_of_every_transition_day_maps_to_the_first_instant_the_clock_reaches_it() {
        let days = [
            (America::New_York, date(2026, 3, 8)),
            (America::New_York, date(2026, 11, 1)),
            (Europe::Berlin, date(2026, 3, 29)),
            (Europe::Berlin, date(2026, 10, 25)),
            (Australia::Lord_Howe, date(2026, 10, 4)),
            (Australia::Lord_Howe, date(2026, 4, 5)),
            (Asia::Kolkata, date(2026, 3, 8)),
        ];
        for (zone, day) in days {
            let mut previous: Option<DateTime<Utc>> = None;
            for quarter in 0..96 {
                let local = day.and_hms_opt(0, 0, 0).unwrap() + Duration::minutes(15 * quarter);
                let instant = first_instant_at_or_after(zone, local);
                let clock = |t: DateTime<Utc>| t.with_timezone(&zone).naive_local();
                assert!(
                    clock(instant) >= local,
                    "{zone} {local}: clock reads {}",
                    clock(instant)
                );
                assert!(
                    clock(instant - Duration::seconds(1)) < local,
                    "{zone} {local}: {instant} is not the first instant"
                );
                if let Some(previous) = previous {
                    assert!(previous <= instant, "{zone} {local}: order changed");
                }
                previous = Some(instant);
            }
        }
    }

    // ---- New York --------------------------------------------------------------------

    #[test]
    fn new_york_night_shift_across_spring_forward_lasts_seven_hours() {
        let s = schedule(vec![rotation(
            "ny-nights",
            America::New_York,
            vec![shift(&[Sat], "22:00", "06:00")],
            &["slack:UNIGHT"],
        )]);
        // Sat 2026-03-07 22:00 EST = 03:00Z; Sun 06:00 EDT = 10:00Z.
        let (start, end) = s
            .shift_window("ny-nights", at("2026-03-08T05:00:00Z"))
            .unwrap();
        assert_eq!(
            (start, end),
            (at("2026-03-08T03:00:00Z"), at("2026-03-08T10:00:00Z"))
        );
        assert_eq!(end - start, Duration::hours(7));
        assert!(primary(&s, "2026-03-08T02:59:59Z").is_empty());
        assert_eq!(
            primary(&s, "2026-03-08T03:00:00Z"),
            people(&["slack:UNIGHT"])
        );
        // 01:59:59 EST and, one second later, 03:00 EDT: the same shift throughout.
        assert_eq!(
            primary(&s, "2026-03-08T06:59:59Z"),
            people(&["slack:UNIGHT"])
        );
        assert_eq!(
            primary(&s, "2026-03-08T07:00:00Z"),
            people(&["slack:UNIGHT"])
        );
        assert_eq!(
            primary(&s, "2026-03-08T09:59:59Z"),
            people(&["slack:UNIGHT"])
        );
        assert!(primary(&s, "2026-03-08T10:00:00Z").is_empty());
        // A week earlier, with no change, the same shift is 8 hours.
        let (start, end) = s
            .shift_window("ny-nights", at("2026-03-01T05:00:00Z"))
            .unwrap();
        assert_eq!(end - start, Duration::hours(8));
    }

    #[test]
    fn new_york_shift_starting_in_the_spring_gap_starts_at_three_local() {
        let s = schedule(vec![rotation(
            "ny-early",
            America::New_York,
            vec![shift(&[Sun], "02:30", "04:00")],
            &["slack:UEARLY"],
        )]);
        // 02:30 does not exist on 2026-03-08; the clock jumps from 01:59:59 EST (06:59:59Z)
        // to 03:00 EDT (07:00Z), and the shift starts then, ending 04:00 EDT (08:00Z).
        assert_eq!(
            s.shift_window("ny-early", at("2026-03-08T07:30:00Z")),
            Some((at("2026-03-08T07:00:00Z"), at("2026-03-08T08:00:00Z")))
        );
        assert!(primary(&s, "2026-03-08T06:59:59Z").is_empty());
        assert_eq!(
            primary(&s, "2026-03-08T07:00:00Z"),
            people(&["slack:UEARLY"])
        );
        assert_eq!(
            s.next_change(at("2026-03-08T00:00:00Z")),
            Some(at("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn new_york_shift_wholly_inside_the_spring_gap_does_not_happen_that_night() {
        let s = schedule(vec![rotation(
            "ny-gap",
            America::New_York,
            vec![shift(&[Sun], "02:00", "02:45")],
            &["slack:UGAP"],
        )]);
        assert_eq!(s.shift_window("ny-gap", at("2026-03-08T07:00:00Z")), None);
        assert!(primary(&s, "2026-03-08T07:00:00Z").is_empty());
        // The next real one is the following Sunday, 02:00 EDT = 06:00Z.
        assert_eq!(
            s.next_change(at("2026-03-08T00:00:00Z")),
            Some(at("2026-03-15T06:00:00Z"))
        );
        assert!(
            s.validate().is_empty(),
            "the shift itself is fine on other nights"
        );
    }

    #[test]
    fn new_york_back_to_back_shifts_meet_exactly_across_the_spring_gap() {
        let s = schedule(vec![taking_turns(
            rotation(
                "ny",
                America::New_York,
                vec![
                    shift(&[Sat], "20:00", "02:30"),
                    shift(&[Sun], "02:30", "10:00"),
                ],
                &["slack:UA", "slack:UB", "slack:UC"],
            ),
            Handoff::Day,
        )]);
        // Saturday 2026-03-07 is day 796 after 2024-01-01 (796 % 3 = 1), Sunday day 797.
        assert_eq!(primary(&s, "2026-03-08T06:59:59Z"), people(&["slack:UB"]));
        assert_eq!(primary(&s, "2026-03-08T07:00:00Z"), people(&["slack:UC"]));
        assert_eq!(
            s.next_change(at("2026-03-08T01:00:00Z")),
            Some(at("2026-03-08T07:00:00Z"))
        );
        assert!(s.validate().is_empty());
    }

    #[test]
    fn new_york_night_shift_across_fall_back_lasts_nine_hours() {
        let s = schedule(vec![rotation(
            "ny-nights",
            America::New_York,
            vec![shift(&[Sat], "22:00", "06:00")],
            &["slack:UNIGHT"],
        )]);
        // Sat 2026-10-31 22:00 EDT = 02:00Z; Sun 06:00 EST = 11:00Z.
        let (start, end) = s
            .shift_window("ny-nights", at("2026-11-01T06:30:00Z"))
            .unwrap();
        assert_eq!(
            (start, end),
            (at("2026-11-01T02:00:00Z"), at("2026-11-01T11:00:00Z"))
        );
        assert_eq!(end - start, Duration::hours(9));
        assert_eq!(
            primary(&s, "2026-11-01T10:59:59Z"),
            people(&["slack:UNIGHT"])
        );
        assert!(primary(&s, "2026-11-01T11:00:00Z").is_empty());
    }

    #[test]
    fn new_york_shift_at_a_repeated_time_starts_at_its_first_occurrence() {
        let s = schedule(vec![rotation(
            "ny",
            America::New_York,
            vec![
                shift(&[Sun], "00:00", "01:30"),
                shift(&[Sun], "01:30", "03:00"),
            ],
            &["slack:UREP"],
        )]);
        // 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST); both shifts use 05:30Z.
        let first = s.rotations[0].shifts[0].occurrence(America::New_York, date(2026, 11, 1));
        assert_eq!(
            first,
            Some((at("2026-11-01T04:00:00Z"), at("2026-11-01T05:30:00Z")))
        );
        let (start, end) = s.shift_window("ny", at("2026-11-01T06:30:00Z")).unwrap();
        assert_eq!(
            (start, end),
            (at("2026-11-01T05:30:00Z"), at("2026-11-01T08:00:00Z"))
        );
        assert_eq!(end - start, Duration::minutes(150));
        // At 06:15Z the clock reads 01:15 for the second time: the 00:00–01:30 shift is
        // over (it ended at the first 01:30) and the 01:30–03:00 one is running.
        assert_eq!(
            s.shift_window("ny", at("2026-11-01T06:15:00Z")),
            Some((at("2026-11-01T05:30:00Z"), at("2026-11-01T08:00:00Z")))
        );
    }

    // ---- half-hour zones ---------------------------------------------------------------

    #[test]
    fn kolkata_nine_to_five_is_half_past_three_to_half_past_eleven_utc_all_year() {
        let s = schedule(vec![rotation(
            "kolkata",
            Asia::Kolkata,
            vec![shift(&WEEKDAYS, "09:00", "17:00")],
            &["slack:UKOL"],
        )]);
        for monday in ["2026-01-05", "2026-07-06"] {
            let window = s.shift_window("kolkata", at(&format!("{monday}T06:00:00Z")));
            assert_eq!(
                window,
                Some((
                    at(&format!("{monday}T03:30:00Z")),
                    at(&format!("{monday}T11:30:00Z"))
                ))
            );
            assert!(primary(&s, &format!("{monday}T03:29:59Z")).is_empty());
            assert_eq!(
                primary(&s, &format!("{monday}T03:30:00Z")),
                people(&["slack:UKOL"])
            );
            assert_eq!(
                primary(&s, &format!("{monday}T11:29:59Z")),
                people(&["slack:UKOL"])
            );
            assert!(primary(&s, &format!("{monday}T11:30:00Z")).is_empty());
        }
    }

    #[test]
    fn lord_howe_dst_start_skips_half_an_hour() {
        let s = schedule(vec![rotation(
            "lord-howe",
            Australia::Lord_Howe,
            vec![
                shift(&[Sat], "22:00", "06:00"),
                shift(&[Sun], "06:00", "07:00"),
            ],
            &["slack:ULHI"],
        )]);
        let early = schedule(vec![rotation(
            "lord-howe-early",
            Australia::Lord_Howe,
            vec![shift(&[Sun], "02:15", "04:00")],
            &["slack:ULHI"],
        )]);
        // First Sunday of October 2026 is the 4th: 02:00 +10:30 (15:30Z on the 3rd) becomes
        // 02:30 +11:00. Sat 22:00 +10:30 = 11:30Z; Sun 06:00 +11:00 = 19:00Z.
        let (start, end) = s
            .shift_window("lord-howe", at("2026-10-03T15:00:00Z"))
            .unwrap();
        assert_eq!(
            (start, end),
            (at("2026-10-03T11:30:00Z"), at("2026-10-03T19:00:00Z"))
        );
        assert_eq!(end - start, Duration::minutes(7 * 60 + 30));
        // 02:15 does not exist: the shift starts at 02:30 +11:00 = 15:30Z.
        assert_eq!(
            early.shift_window("lord-howe-early", at("2026-10-03T16:00:00Z")),
            Some((at("2026-10-03T15:30:00Z"), at("2026-10-03T17:00:00Z")))
        );
        assert!(early.on_call(at("2026-10-03T15:29:59Z")).is_empty());
        // July is winter there: standard +10:30, Sun 06:00 = Sat 19:30Z.
        assert_eq!(
            s.shift_window("lord-howe", at("2026-07-04T19:45:00Z")),
            Some((at("2026-07-04T19:30:00Z"), at("2026-07-04T20:30:00Z")))
        );
    }

    #[test]
    fn lord_howe_dst_end_repeats_half_an_hour() {
        let s = schedule(vec![rotation(
            "lord-howe",
            Australia::Lord_Howe,
            vec![shift(&[Sat], "22:00", "06:00")],
            &["slack:ULHI"],
        )]);
        let late = schedule(vec![rotation(
            "lord-howe-late",
            Australia::Lord_Howe,
            vec![shift(&[Sun], "01:45", "03:00")],
            &["slack:ULHI"],
        )]);
        // First Sunday of April 2026 is the 5th: 02:00 +11:00 (15:00Z on the 4th) becomes
        // 01:30 +10:30. Sat 22:00 +11:00 = 11:00Z; Sun 06:00 +10:30 = 19:30Z.
        let (start, end) = s
            .shift_window("lord-howe", at("2026-04-04T15:10:00Z"))
            .unwrap();
        assert_eq!(
            (start, end),
            (at("2026-04-04T11:00:00Z"), at("2026-04-04T19:30:00Z"))
        );
        assert_eq!(end - start, Duration::minutes(8 * 60 + 30));
        // 01:45 happens at 14:45Z and again at 15:15Z; the shift starts at the first.
        assert_eq!(
            late.shift_window("lord-howe-late", at("2026-04-04T15:15:00Z")),
            Some((at("2026-04-04T14:45:00Z"), at("2026-04-04T16:30:00Z")))
        );
    }

    // ---- three regions -------------------------------------------------------------------

    /// New York 08–16, Berlin 08–16, Kolkata 09–17, Monday to Friday: the hours the brief
    /// names, which leave a gap every night.
    fn office_hours() -> Schedule {
        schedule(vec![
            rotation(
                "new-york",
                America::New_York,
                vec![shift(&WEEKDAYS, "08:00", "16:00")],
                &["slack:UNY"],
            ),
            rotation(
                "berlin",
                Europe::Berlin,
                vec![shift(&WEEKDAYS, "08:00", "16:00")],
                &["slack:UBER"],
            ),
            rotation(
                "kolkata",
                Asia::Kolkata,
                vec![shift(&WEEKDAYS, "09:00", "17:00")],
                &["slack:UKOL"],
            ),
        ])
    }

    #[test]
    fn office_hours_in_three_regions_match_fixed_winter_offsets_every_half_hour_of_a_week() {
        let s = office_hours();
        // In January the offsets are fixed: New York −5, Berlin +1, Kolkata +5:30, so in
        // UTC the shifts are 13:00–21:00, 07:00–15:00 and 03:30–11:30 on the same weekday.
        let expected = |t: DateTime<Utc>| {
            let minute = t.hour() * 60 + t.minute();
            let mut on = Vec::new();
            if WEEKDAYS.contains(&t.weekday()) {
                if (780..1260).contains(&minute) {
                    on.push("slack:UNY");
                }
                if (420..900).contains(&minute) {
                    on.push("slack:UBER");
                }
                if (210..690).contains(&minute) {
                    on.push("slack:UKOL");
                }
            }
            people(&on)
        };
        let start = at("2026-01-04T00:00:00Z");
        let mut covered = 0;
        let mut hand_offs = Vec::new();
        for step in 0..(8 * 48) {
            let t = start + Duration::minutes(30 * step);
            let want = expected(t);
            assert_eq!(s.on_call(t).primary, want, "at {t}");
            covered += usize::from(!want.is_empty());
            if step > 0 && want != expected(t - Duration::minutes(30)) {
                hand_offs.push(t);
            }
        }
        // Weekdays 03:30–21:00 UTC are covered: 35 half-hours a day, nights and weekends not.
        assert_eq!(covered, 5 * 35);
        assert_eq!(hand_offs.len(), 5 * 6);
        assert_eq!(changes(&s, start, at("2026-01-11T23:59:59Z")), hand_offs);
    }

    /// New York 08–16, Berlin 06–14, Singapore 05–13, Monday to Friday: around the clock
    /// from Sunday 21:00 UTC to Friday 21:00 UTC in winter.
    fn follow_the_sun() -> Schedule {
        schedule(vec![
            rotation(
                "new-york",
                America::New_York,
                vec![shift(&WEEKDAYS, "08:00", "16:00")],
                &["slack:UNY"],
            ),
            rotation(
                "berlin",
                Europe::Berlin,
                vec![shift(&WEEKDAYS, "06:00", "14:00")],
                &["slack:UBER"],
            ),
            rotation(
                "singapore",
                Asia::Singapore,
                vec![shift(&WEEKDAYS, "05:00", "13:00")],
                &["slack:USIN"],
            ),
        ])
    }

    #[test]
    fn follow_the_sun_covers_every_hour_from_sunday_night_to_friday_night_in_winter() {
        let s = follow_the_sun();
        let coverage_starts = at("2026-01-04T21:00:00Z");
        let coverage_ends = at("2026-01-09T21:00:00Z");
        let start = at("2026-01-04T00:00:00Z");
        // Up to the hour before next Sunday's 21:00, when the next week's cover begins.
        for hour in 0..(7 * 24 + 21) {
            let t = start + Duration::hours(hour);
            let on = s.on_call(t).primary;
            if coverage_starts <= t && t < coverage_ends {
                assert_eq!(on.len(), 1, "exactly one primary at {t}: {on:?}");
            } else {
                assert!(on.is_empty(), "nobody should be on at {t}: {on:?}");
            }
        }
        assert_eq!(primary(&s, "2026-01-06T02:00:00Z"), people(&["slack:USIN"]));
        assert_eq!(primary(&s, "2026-01-06T09:00:00Z"), people(&["slack:UBER"]));
        assert_eq!(primary(&s, "2026-01-06T17:00:00Z"), people(&["slack:UNY"]));
    }

    #[test]
    fn next_change_walks_the_follow_the_sun_hand_offs_of_a_week() {
        let s = follow_the_sun();
        let mut expected = vec![at("2026-01-04T21:00:00Z")];
        for day in 5..=9 {
            for hour in [5, 13, 21] {
                expected.push(at(&format!("2026-01-{day:02}T{hour:02}:00:00Z")));
            }
        }
        assert_eq!(
            changes(&s, at("2026-01-04T00:00:00Z"), at("2026-01-10T00:00:00Z")),
            expected
        );
        // After Friday's last hand-off nobody is on until Sunday night.
        assert_eq!(
            s.next_change(at("2026-01-09T21:00:00Z")),
            Some(at("2026-01-11T21:00:00Z"))
        );
    }

    #[test]
    fn follow_the_sun_in_summer_and_in_the_weeks_only_america_has_moved_its_clocks() {
        let s = follow_the_sun();
        // July: New York 12–20Z, Berlin 04–12Z, Singapore 21–05Z.
        assert_eq!(
            primary(&s, "2026-07-07T04:30:00Z"),
            people(&["slack:UBER", "slack:USIN"])
        );
        assert_eq!(primary(&s, "2026-07-07T12:00:00Z"), people(&["slack:UNY"]));
        assert!(primary(&s, "2026-07-07T20:30:00Z").is_empty());
        assert_eq!(primary(&s, "2026-07-07T21:00:00Z"), people(&["slack:USIN"]));
        // 2026-03-10: New York on EDT (12–20Z), Berlin still on CET (05–13Z).
        assert_eq!(
            primary(&s, "2026-03-10T12:30:00Z"),
            people(&["slack:UNY", "slack:UBER"])
        );
        assert!(primary(&s, "2026-03-10T20:30:00Z").is_empty());
        assert_eq!(primary(&s, "2026-03-10T04:30:00Z"), people(&["slack:USIN"]));
    }

    // ---- overrides -----------------------------------------------------------------------

    fn with_backup(mut s: Schedule) -> Schedule {
        let mut backup = rotation(
            "backup",
            chrono_tz::UTC,
            vec![
                shift(&EVERY_DAY, "00:00", "12:00"),
                shift(&EVERY_DAY, "12:00", "00:00"),
            ],
            &["slack:UBACK"],
        );
        backup.layer = Layer::Secondary;
        s.rotations.push(backup);
        s
    }

    #[test]
    fn override_for_four_hours_covers_exactly_four_hours_then_falls_back() {
        let mut s = with_backup(follow_the_sun());
        let issued = at("2026-01-05T10:00:00Z");
        let o = Override::lasting("slack:UOVER", Layer::Primary, issued, Duration::hours(4));
        assert_eq!(o.until - o.from, Duration::hours(4));
        s.overrides.push(o);

        assert_eq!(primary(&s, "2026-01-05T09:59:59Z"), people(&["slack:UBER"]));
        assert_eq!(
            primary(&s, "2026-01-05T10:00:00Z"),
            people(&["slack:UOVER"])
        );
        // Berlin hands to New York at 13:00, but the override still holds the layer.
        assert_eq!(
            primary(&s, "2026-01-05T13:30:00Z"),
            people(&["slack:UOVER"])
        );
        assert_eq!(
            primary(&s, "2026-01-05T13:59:59Z"),
            people(&["slack:UOVER"])
        );
        assert_eq!(primary(&s, "2026-01-05T14:00:00Z"), people(&["slack:UNY"]));
        // The other layer is untouched.
        assert_eq!(s.on_call(issued).secondary, people(&["slack:UBACK"]));

        assert_eq!(s.next_change(at("2026-01-05T09:00:00Z")), Some(issued));
        assert_eq!(s.next_change(issued), Some(at("2026-01-05T14:00:00Z")));
        assert_eq!(
            s.next_change(at("2026-01-05T14:00:00Z")),
            Some(at("2026-01-05T21:00:00Z"))
        );
    }

    #[test]
    fn overrides_stack_within_their_own_layer() {
        let mut s = with_backup(follow_the_sun());
        let t = at("2026-01-05T10:00:00Z");
        s.overrides.push(Override::lasting(
            "slack:UONE",
            Layer::Primary,
            t,
            Duration::hours(2),
        ));
        s.overrides.push(Override::lasting(
            "discord:42",
            Layer::Primary,
            t,
            Duration::hours(1),
        ));
        s.overrides.push(Override::lasting(
            "slack:UTWO",
            Layer::Secondary,
            t,
            Duration::hours(1),
        ));
        let now = s.on_call(t + Duration::minutes(30));
        assert_eq!(now.primary, people(&["slack:UONE", "discord:42"]));
        assert_eq!(now.secondary, people(&["slack:UTWO"]));
        let later = s.on_call(t + Duration::minutes(90));
        assert_eq!(later.primary, people(&["slack:UONE"]));
        assert_eq!(later.secondary, people(&["slack:UBACK"]));
        assert_eq!(s.next_change(t), Some(t + Duration::hours(1)));
    }

    // ---- turn-taking ----------------------------------------------------------------------

    fn berlin_weekdays(every: Handoff) -> Rotation {
        taking_turns(
            rotation(
                "berlin",
                Europe::Berlin,
                vec![shift(&WEEKDAYS, "08:00", "16:00")],
                &["slack:UA", "slack:UB", "slack:UC"],
            ),
            every,
        )
    }

    #[test]
    fn weekly_turns_pass_to_the_next_member_every_monday() {
        let s = schedule(vec![berlin_weekdays(Handoff::Week)]);
        // 2026-01-05 is 735 days (105 whole weeks) after 2024-01-01; 105 % 3 = 0.
        for (instant, member) in [
            ("2026-01-05T09:00:00Z", "slack:UA"),
            ("2026-01-09T14:00:00Z", "slack:UA"),
            ("2026-01-12T09:00:00Z", "slack:UB"),
            ("2026-01-19T09:00:00Z", "slack:UC"),
            ("2026-01-26T09:00:00Z", "slack:UA"),
        ] {
            assert_eq!(primary(&s, instant), people(&[member]), "at {instant}");
        }
        assert_eq!(
            s.rotations[0].members_for(date(2026, 1, 4)),
            people(&["slack:UC"])
        );
    }

    #[test]
    fn daily_turns_pass_to_the_next_member_every_day() {
        let s = schedule(vec![berlin_weekdays(Handoff::Day)]);
        for (instant, member) in [
            ("2026-01-05T09:00:00Z", "slack:UA"),
            ("2026-01-06T09:00:00Z", "slack:UB"),
            ("2026-01-07T09:00:00Z", "slack:UC"),
            ("2026-01-08T09:00:00Z", "slack:UA"),
        ] {
            assert_eq!(primary(&s, instant), people(&[member]), "at {instant}");
        }
    }

    #[test]
    fn a_night_shift_belongs_to_the_day_it_started_on() {
        let s = schedule(vec![taking_turns(
            rotation(
                "nights",
                chrono_tz::UTC,
                vec![shift(&EVERY_DAY, "22:00", "06:00")],
                &["slack:UA", "slack:UB", "slack:UC"],
            ),
            Handoff::Day,
        )]);
        assert_eq!(primary(&s, "2026-01-05T23:00:00Z"), people(&["slack:UA"]));
        assert_eq!(primary(&s, "2026-01-06T05:59:59Z"), people(&["slack:UA"]));
        assert!(primary(&s, "2026-01-06T06:00:00Z").is_empty());
        assert_eq!(primary(&s, "2026-01-06T22:00:00Z"), people(&["slack:UB"]));
        assert_eq!(
            changes(&s, at("2026-01-05T23:00:00Z"), at("2026-01-07T12:00:00Z")),
            vec![
                at("2026-01-06T06:00:00Z"),
                at("2026-01-06T22:00:00Z"),
                at("2026-01-07T06:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_midweek_anchor_moves_the_weekly_hand_off_to_its_weekday() {
        let mut r = berlin_weekdays(Handoff::Week);
        r.anchor = date(2026, 1, 7); // a Wednesday
        assert_eq!(
            r.members_for(date(2026, 1, 6)),
            people(&["slack:UC"]),
            "before the anchor"
        );
        assert_eq!(r.members_for(date(2026, 1, 7)), people(&["slack:UA"]));
        assert_eq!(r.members_for(date(2026, 1, 13)), people(&["slack:UA"]));
        assert_eq!(r.members_for(date(2026, 1, 14)), people(&["slack:UB"]));
    }

    #[test]
    fn without_turns_every_member_is_on_together() {
        let mut r = berlin_weekdays(Handoff::Week);
        r.handoff_every = None;
        let s = schedule(vec![r]);
        assert_eq!(
            primary(&s, "2026-01-05T09:00:00Z"),
            people(&["slack:UA", "slack:UB", "slack:UC"])
        );
    }

    // ---- midnight and the week's wrap ---------------------------------------------------------

    #[test]
    fn a_sunday_night_shift_runs_into_monday() {
        let s = schedule(vec![rotation(
            "sunday-nights",
            chrono_tz::UTC,
            vec![shift(&[Sun], "22:00", "06:00")],
            &["slack:USUN"],
        )]);
        assert!(s.rotations[0].shifts[0].crosses_midnight());
        assert_eq!(
            s.shift_window("sunday-nights", at("2026-01-05T05:59:00Z")),
            Some((at("2026-01-04T22:00:00Z"), at("2026-01-05T06:00:00Z")))
        );
        assert!(primary(&s, "2026-01-05T06:00:00Z").is_empty());
        assert_eq!(
            s.shift_window("sunday-nights", at("2026-01-05T06:00:00Z")),
            None
        );
        assert_eq!(
            s.shift_window("no-such-rotation", at("2026-01-05T05:00:00Z")),
            None
        );
    }

    #[test]
    fn next_change_is_none_when_one_agent_holds_the_clock_and_finds_a_far_override() {
        let mut s = schedule(vec![rotation(
            "always",
            chrono_tz::UTC,
            vec![
                shift(&EVERY_DAY, "00:00", "12:00"),
                shift(&EVERY_DAY, "12:00", "00:00"),
            ],
            &["slack:UALL"],
        )]);
        let now = at("2026-01-05T10:00:00Z");
        assert_eq!(s.next_change(now), None);
        let far = at("2028-06-01T00:00:00Z");
        s.overrides.push(Override::lasting(
            "slack:UOTHER",
            Layer::Primary,
            far,
            Duration::hours(4),
        ));
        assert_eq!(s.next_change(now), Some(far));
        assert_eq!(s.next_change(far), Some(far + Duration::hours(4)));
        assert_eq!(Schedule::default().next_change(now), None);
    }

    // ---- validation -----------------------------------------------------------------------------

    #[test]
    fn a_sound_schedule_has_no_problems() {
        assert!(follow_the_sun().validate().is_empty());
        assert!(office_hours().validate().is_empty());
        assert!(with_backup(follow_the_sun()).validate().is_empty());
        let back_to_back = schedule(vec![rotation(
            "split",
            Europe::Berlin,
            vec![
                shift(&WEEKDAYS, "08:00", "16:00"),
                shift(&WEEKDAYS, "16:00", "08:00"),
            ],
            &["slack:UA"],
        )]);
        assert!(back_to_back.validate().is_empty());
    }

    #[test]
    fn validation_names_each_mistake_in_a_sentence() {
        let mut s = schedule(vec![
            rotation(
                "empty",
                Europe::Berlin,
                vec![shift(&WEEKDAYS, "08:00", "16:00")],
                &[],
            ),
            rotation(
                "bad-keys",
                Europe::Berlin,
                vec![shift(&WEEKDAYS, "08:00", "16:00")],
                &["ana", "discord:abc", "slack:"],
            ),
            rotation(
                "shapes",
                Europe::Berlin,
                vec![
                    shift(&[Mon], "09:00", "09:00"),
                    shift(&[], "10:00", "11:00"),
                    shift(&[Tue, Tue], "12:00", "13:00"),
                ],
                &["slack:UA"],
            ),
            rotation(
                "overlaps",
                Europe::Berlin,
                vec![
                    shift(&[Mon], "20:00", "02:00"),
                    shift(&[Tue], "01:00", "09:00"),
                ],
                &["slack:UA"],
            ),
            rotation(
                "wraps",
                Europe::Berlin,
                vec![
                    shift(&[Sun], "22:00", "06:00"),
                    shift(&[Mon], "05:00", "09:00"),
                ],
                &["slack:UA"],
            ),
            rotation("empty", Europe::Berlin, vec![], &["slack:UA"]),
        ]);
        let t = at("2026-01-05T10:00:00Z");
        s.overrides.push(Override::lasting(
            "slack:UA",
            Layer::Primary,
            t,
            Duration::hours(-1),
        ));
        s.overrides.push(Override::lasting(
            "@ana",
            Layer::Primary,
            t,
            Duration::hours(1),
        ));
        let problems = s.validate();
        let expected = [
            "rotation \"empty\" has no members: list agent keys such as \"slack:U0ANA\" or \"discord:120045678901234567\".",
            "rotation \"bad-keys\": member \"ana\" is not an agent key: write slack:<user id> (e.g. slack:U0ANA) or discord:<user id> (e.g. discord:120045678901234567).",
            "rotation \"bad-keys\": member \"discord:abc\" is not an agent key: write slack:<user id> (e.g. slack:U0ANA) or discord:<user id> (e.g. discord:120045678901234567).",
            "rotation \"bad-keys\": member \"slack:\" is not an agent key: write slack:<user id> (e.g. slack:U0ANA) or discord:<user id> (e.g. discord:120045678901234567).",
            "rotation \"shapes\", shift 1 (mon 09:00–09:00) has zero length: start and end are both 09:00; for cover around the clock use two shifts such as 00:00–12:00 and 12:00–00:00.",
            "rotation \"shapes\", shift 2 (10:00–11:00) has no days: list the days it starts on, such as [\"mon-fri\"].",
            "rotation \"shapes\", shift 3 (tue,tue 12:00–13:00) lists tue twice.",
            "rotation \"overlaps\": shift 1 (mon 20:00–02:00) overlaps shift 2 (tue 01:00–09:00) — the one starting mon 20:00 runs into the one starting tue 01:00; shifts of one rotation must not overlap, so move a start or end, or put the extra cover in a second rotation.",
            "rotation \"wraps\": shift 1 (sun 22:00–06:00) overlaps shift 2 (mon 05:00–09:00) — the one starting sun 22:00 runs into the one starting mon 05:00; shifts of one rotation must not overlap, so move a start or end, or put the extra cover in a second rotation.",
            "two rotations are named \"empty\": names must be unique so a shift can be found by its rotation's name.",
            "rotation \"empty\" has no shifts, so nobody from it is ever on call: add one such as { days = [\"mon-fri\"], start = \"08:00\", end = \"16:00\" }.",
            "the override for slack:UA ends (2026-01-05 09:00 UTC) before it starts (2026-01-05 10:00 UTC): give it a positive length such as 4h.",
            "override: member \"@ana\" is not an agent key: write slack:<user id> (e.g. slack:U0ANA) or discord:<user id> (e.g. discord:120045678901234567).",
        ];
        assert_eq!(problems, expected);
    }

    // ---- configuration shape ---------------------------------------------------------------------

    #[derive(Debug, Deserialize)]
    struct Config {
        oncall: OncallSection,
    }

    #[derive(Debug, Deserialize)]
    struct OncallSection {
        rotation: Vec<Rotation>,
    }

    fn parse(text: &str) -> Result<Vec<Rotation>, String> {
        toml::from_str::<Config>(text)
            .map(|c| c.oncall.rotation)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rotations_read_from_the_oncall_config_section() {
        let rotations = parse(
            r#"
            [[oncall.rotation]]
            name = "new-york"
            time_zone = "America/New_York"
            members = ["slack:U0ANA", "slack:U0BEN", "discord:120045678901234567"]
            handoff_every = "week"
            shifts = [{ days = ["mon-fri"], start = "08:00", end = "16:00" }]

            [[oncall.rotation]]
            name = "kolkata-weekend"
            time_zone = "Asia/Kolkata"
            layer = "secondary"
            anchor = "2026-01-07"
            handoff_every = "daily"
            members = ["slack:U0CAT"]
            shifts = [{ days = ["Saturday", "sun"], start = "22:00", end = "06:00" }]
            "#,
        )
        .unwrap();
        assert_eq!(rotations.len(), 2);
        let ny = &rotations[0];
        assert_eq!(ny.time_zone, America::New_York);
        assert_eq!(ny.layer, Layer::Primary);
        assert_eq!(ny.anchor, date(2024, 1, 1));
        assert_eq!(ny.handoff_every, Some(Handoff::Week));
        assert_eq!(ny.shifts, vec![shift(&WEEKDAYS, "08:00", "16:00")]);
        let kolkata = &rotations[1];
        assert_eq!(kolkata.layer, Layer::Secondary);
        assert_eq!(kolkata.anchor, date(2026, 1, 7));
        assert_eq!(kolkata.handoff_every, Some(Handoff::Day));
        assert_eq!(kolkata.shifts, vec![shift(&[Sat, Sun], "22:00", "06:00")]);
        let s = Schedule {
            rotations,
            overrides: Vec::new(),
            agents: Agents::default(),
        };
        assert!(s.validate().is_empty());

        let json = serde_json::to_value(&s.rotations[0]).unwrap();
        assert_eq!(json["time_zone"], "America/New_York");
        assert_eq!(
            json["shifts"][0]["days"],
            serde_json::json!(["mon", "tue", "wed", "thu", "fri"])
        );
        assert_eq!(json["shifts"][0]["start"], "08:00");
        let back: Rotation = serde_json::from_value(json).unwrap();
        assert_eq!(back, s.rotations[0]);
    }

    #[test]
    fn config_mistakes_are_explained() {
        let with = |zone: &str, days: &str, start: &str| {
            parse(&format!(
                "[[oncall.rotation]]\nname = \"x\"\ntime_zone = \"{zone}\"\nmembers = [\"slack:UA\"]\n\
                 shifts = [{{ days = [{days}], start = \"{start}\", end = \"16:00\" }}]\n"
            ))
            .unwrap_err()
        };
        let e = with("America/New_Yrok", "\"mon\"", "08:00");
        assert!(e.contains("unknown time zone \"America/New_Yrok\": use an IANA name such as \"America/New_York\""), "{e}");
        let e = with("america/new_york", "\"mon\"", "08:00");
        assert!(e.contains("(did you mean \"America/New_York\"?)"), "{e}");
        let e = with("Europe/Berlin", "\"funday\"", "08:00");
        assert!(e.contains("\"funday\" is not a day of the week: use mon, tue, wed, thu, fri, sat, sun or a range such as \"mon-fri\""), "{e}");
        let e = with("Europe/Berlin", "\"mon\"", "8am");
        assert!(
            e.contains("\"8am\" is not a time of day: write 24-hour HH:MM such as \"08:00\""),
            "{e}"
        );
    }

    #[test]
    fn day_ranges_may_wrap_past_sunday() {
        assert_eq!(
            day_names::parse("fri-mon").unwrap(),
            vec![Fri, Sat, Sun, Mon]
        );
        assert_eq!(day_names::parse("mon-sun").unwrap(), EVERY_DAY.to_vec());
        assert_eq!(day_names::parse("Wednesday").unwrap(), vec![Wed]);
        assert!(day_names::parse("mon-").is_err());
    }
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use crate::domain::SurfaceKind::{Discord, Slack};

    #[test]
    fn an_override_names_people_the_way_each_surface_sends_a_mention() {
        let me = "slack:U0ANA";
        let accepted = [
            ("me", Slack, me),
            ("<@U0KIM>", Slack, "slack:U0KIM"),
            ("<@U0KIM|kim>", Slack, "slack:U0KIM"),
            (
                "<@1200000000000000009>",
                Discord,
                "discord:1200000000000000009",
            ),
            (
                "<@!1200000000000000009>",
                Discord,
                "discord:1200000000000000009",
            ),
            (
                "discord:1200000000000000009",
                Slack,
                "discord:1200000000000000009",
            ),
        ];
        for (typed, surface, key) in accepted {
            assert_eq!(override_member(typed, me, surface).as_deref(), Ok(key));
        }
        for bad in [
            "@kim",
            "<!channel>",
            "<#C0SUPPORT|support>",
            "<@U0KIM",
            "<@>",
            "<@&1300000000000000001>",
            "slack:",
            "slack:u0kim",
            "discord:12ab",
            "kim",
            "",
        ] {
            let err = override_member(bad, me, Slack).unwrap_err();
            assert!(err.contains("not an agent"), "{bad:?}: {err}");
            // One fixed sentence: nothing typed is echoed back.
            assert_eq!(err, override_member("x", me, Slack).unwrap_err());
        }
        // A Slack id typed on Discord is not a Discord mention.
        assert!(override_member("<@U0KIM>", me, Discord).is_err());
    }

    #[test]
    fn whoever_is_on_call_is_on_call_with_each_of_their_accounts() {
        let mut schedule = Schedule {
            overrides: vec![Override::lasting(
                "discord:1200000000000000009",
                Layer::Primary,
                chrono::Utc::now() - Duration::hours(1),
                Duration::hours(4),
            )],
            ..Schedule::default()
        };
        assert_eq!(
            schedule.on_call(chrono::Utc::now()).primary,
            ["discord:1200000000000000009"]
        );
        schedule.agents = Agents::new(vec![crate::domain::agents::Agent {
            name: "Kim".into(),
            slack: Some("U0KIM".into()),
            discord: Some("1200000000000000009".into()),
        }]);
        assert_eq!(
            schedule.on_call(chrono::Utc::now()).primary,
            ["discord:1200000000000000009", "slack:U0KIM"]
        );
    }

    #[test]
    fn override_lengths_read_like_people_write_them_and_never_panic() {
        assert_eq!(override_length("4h"), Ok(Duration::hours(4)));
        assert_eq!(override_length("for 4h"), Ok(Duration::hours(4)));
        assert_eq!(override_length("for: 30 min"), Ok(Duration::minutes(30)));
        assert_eq!(override_length("2d"), Ok(Duration::days(2)));
        assert_eq!(override_length("7 days"), Ok(Duration::days(7)));
        for bad in [
            "8d",
            "0h",
            "-4h",
            "+4h",
            "1.5h",
            "99999999999999999999h",
            "9999999999999999h",
            "10081m",
            "４h",
            "٤h",
            "four hours",
            "h",
            "",
            "for",
        ] {
            assert!(override_length(bad).is_err(), "{bad:?}");
        }
    }
}
