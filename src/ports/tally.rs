//! What a store maintains beside its tickets so the desk's steady costs do not grow with
//! history: counters for `/metrics`, and the facts its indexes are keyed by (when a
//! ticket was received and first answered, whether it is open and unanswered, how long
//! its first response took). All of it is a pure function of one ticket
//! ([`TicketCounts::of`]); a backend writes the difference between a ticket's old and
//! new counts ([`counter_changes`]) in the transaction that writes the ticket, so the
//! sums always match the tickets. [`desk_counts`] reads them back for `/metrics`, each
//! route's breaches judged against its target at read time.

use super::{Store, StoreError};
use crate::domain::routes::DEFAULT_ROUTE;
use crate::domain::{AgentRef, Level, Platform, Scale, Stage, Ticket, TicketId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every platform, in the order reports list them.
pub const PLATFORMS: [Platform; 4] = [
    Platform::Mastodon,
    Platform::Bluesky,
    Platform::X,
    Platform::Other,
];

/// Every stage, in the order reports list them.
pub const STAGES: [Stage; 5] = [
    Stage::New,
    Stage::Posted,
    Stage::Replied,
    Stage::Resolved,
    Stage::Ignored,
];

/// First-response histogram bucket bounds, in seconds (`/metrics`).
pub const FIRST_RESPONSE_BUCKETS: [i64; 8] = [60, 300, 900, 1800, 3600, 7200, 14_400, 86_400];

/// A platform as reports and counters name it.
pub fn platform_key(p: Platform) -> &'static str {
    match p {
        Platform::Mastodon => "mastodon",
        Platform::Bluesky => "bluesky",
        Platform::X => "x",
        Platform::Other => "other",
    }
}

/// A stage as reports and counters name it.
pub fn stage_key(s: Stage) -> &'static str {
    match s {
        Stage::New => "new",
        Stage::Posted => "posted",
        Stage::Replied => "replied",
        Stage::Resolved => "resolved",
        Stage::Ignored => "ignored",
    }
}

/// A route as reports name it: the name stamped on the ticket, or `default`.
pub fn route_label(route: &str) -> &str {
    if route.is_empty() {
        DEFAULT_ROUTE
    } else {
        route
    }
}

/// An instant as an index key: nanoseconds since the epoch, so comparisons are as exact
/// as the desk's own (instants beyond 1677–2262 are clamped to the ends).
pub fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// A wait in whole seconds, rounded up: within a target of whole seconds exactly when
/// the wait itself is (targets are whole minutes in the configuration).
pub fn seconds_up(d: Duration) -> i64 {
    let whole = d.num_seconds();
    if d > Duration::seconds(whole) {
        whole + 1
    } else {
        whole
    }
}

/// What the numbers of a window (`/mentions stats`) need to know about one ticket: a
/// projection small enough for a store to keep as the value of its index of tickets by
/// the instant received, so a window's numbers read these and never the tickets
/// (a ticket is kilobytes; this is about a hundred bytes). A pure function of the
/// ticket ([`TicketFacts::of`]), rewritten with every write of it. Short field names:
/// a million of them are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFacts {
    #[serde(rename = "i")]
    pub id: TicketId,
    #[serde(rename = "p")]
    pub platform: Platform,
    #[serde(rename = "s")]
    pub stage: Stage,
    /// The route as stamped on the ticket (empty: the default route).
    #[serde(rename = "r", default, skip_serializing_if = "String::is_empty")]
    pub route: String,
    #[serde(rename = "o")]
    pub opened_at: DateTime<Utc>,
    #[serde(rename = "u")]
    pub updated_at: DateTime<Utc>,
    /// The earliest published answer by an agent (public or private; the desk's own
    /// acknowledgement is none): when it went out, and who sent it.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub first_response: Option<(DateTime<Utc>, AgentRef)>,
    /// The priority judged on arrival (facts kept before priorities existed: normal).
    #[serde(rename = "v", default, skip_serializing_if = "is_normal")]
    pub level: Level,
    /// The language the desk went by (detected when sure, else the platform's tag), as
    /// its primary subtag in lower case (`pt`, not `pt-BR`).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The satisfaction survey's answer (issue 14), if the customer gave one.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyFact>,
}

/// A survey answer as the numbers count it: the scale asked, the score, when answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyFact {
    #[serde(rename = "k")]
    pub scale: Scale,
    #[serde(rename = "n")]
    pub score: u8,
    #[serde(rename = "a")]
    pub at: DateTime<Utc>,
}

impl SurveyFact {
    pub fn of(t: &Ticket) -> Option<SurveyFact> {
        let survey = t.survey.as_ref()?;
        let answer = survey.answer.as_ref()?;
        Some(SurveyFact {
            scale: survey.scale,
            score: answer.score,
            at: answer.at,
        })
    }
}

fn is_normal(level: &Level) -> bool {
    *level == Level::Normal
}

/// `pt-BR` → `pt`; anything that is not a language tag's letters → none (a platform's
/// tag is customer-controlled text).
pub fn primary_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    ((2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase()))
        .then_some(primary)
}

impl TicketFacts {
    pub fn of(t: &Ticket) -> TicketFacts {
        TicketFacts {
            id: t.id,
            platform: t.mention.platform,
            stage: t.stage,
            route: t.route.clone(),
            opened_at: t.opened_at,
            updated_at: t.updated_at,
            first_response: t.first_response().map(|(waited, by)| {
                let by = AgentRef {
                    roles: Vec::new(),
                    ..by.clone()
                };
                (t.received_at() + waited, by)
            }),
            level: t.priority.level,
            language: t
                .mention
                .language_in_use()
                .and_then(|(l, _)| primary_language(l)),
            survey: SurveyFact::of(t),
        }
    }

    pub fn received_at(&self) -> DateTime<Utc> {
        self.opened_at
    }

    /// How long the customer waited for the first answer, and who sent it (as
    /// [`Ticket::first_response`]).
    pub fn first_response(&self) -> Option<(Duration, &AgentRef)> {
        self.first_response
            .as_ref()
            .map(|(at, by)| ((*at - self.received_at()).max(Duration::zero()), by))
    }

    /// When a resolved ticket was resolved: its last update.
    pub fn resolved_at(&self) -> Option<DateTime<Utc>> {
        (self.stage == Stage::Resolved).then_some(self.updated_at)
    }
}

/// What one ticket counts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketCounts {
    pub stage: Stage,
    pub platform: Platform,
    /// The route as stamped on the ticket (empty: the default route).
    pub route: String,
    pub open: bool,
    /// Open, and nobody holds it.
    pub unclaimed: bool,
    pub received: DateTime<Utc>,
    /// When an agent's first answer went out (whatever the stage since).
    pub first_answer: Option<DateTime<Utc>>,
    /// How long the customer waited for it; ignored tickets have none.
    pub waited: Option<Duration>,
    /// Not ignored and not answered: the first-response target applies and may pass.
    pub unanswered: bool,
    /// The survey answer, as `/metrics` counts it.
    pub survey: Option<SurveyKey>,
}

/// One survey answer's place among `/metrics`' counters: its scale, the ticket's
/// platform and route, the agent who answered the customer first (`slack:U1`; empty:
/// none), and the score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyKey {
    pub scale: Scale,
    pub platform: Platform,
    /// As [`route_label`] names it.
    pub route: String,
    pub agent: String,
    pub score: u8,
}

impl Ord for SurveyKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |k: &SurveyKey| {
            (
                k.scale.label(),
                k.platform,
                k.route.clone(),
                k.agent.clone(),
                k.score,
            )
        };
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for SurveyKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl SurveyKey {
    pub fn of(t: &Ticket) -> Option<SurveyKey> {
        let fact = SurveyFact::of(t)?;
        Some(SurveyKey {
            scale: fact.scale,
            platform: t.mention.platform,
            route: route_label(&t.route).to_string(),
            agent: t
                .first_response()
                .map(|(_, by)| by.member_key())
                .unwrap_or_default(),
            score: fact.score,
        })
    }

    /// The counter's name: the key as JSON after a prefix, so a route or agent name
    /// with any character in it still reads back whole.
    fn counter(&self) -> String {
        format!(
            "{SURVEY}{}",
            serde_json::to_string(self).expect("a survey key serialises")
        )
    }
}

impl TicketCounts {
    pub fn of(t: &Ticket) -> TicketCounts {
        let ignored = t.stage == Stage::Ignored;
        let waited = t.first_response().map(|(d, _)| d).filter(|_| !ignored);
        TicketCounts {
            stage: t.stage,
            platform: t.mention.platform,
            route: t.route.clone(),
            open: !t.is_closed(),
            unclaimed: !t.is_closed() && t.holder.is_none(),
            received: t.received_at(),
            first_answer: t.first_answer(),
            waited,
            unanswered: !ignored && waited.is_none(),
            survey: SurveyKey::of(t),
        }
    }

    /// The counters this ticket adds to, by name, and by how much.
    pub fn counters(&self) -> Vec<(String, i64)> {
        let mut out = vec![
            (TICKETS.to_string(), 1),
            (stage_counter(self.stage, self.platform), 1),
            (route_counter(&self.route, OPENED), 1),
        ];
        if self.open {
            out.push((OPEN.to_string(), 1));
        }
        if self.unclaimed {
            out.push((OPEN_UNCLAIMED.to_string(), 1));
        }
        if let Some(waited) = self.waited {
            let secs = waited.num_seconds();
            let bucket = FIRST_RESPONSE_BUCKETS
                .iter()
                .find(|bound| secs <= **bound)
                .map_or_else(|| "inf".to_string(), i64::to_string);
            out.push((format!("{FIRST_RESPONSE}le:{bucket}"), 1));
            out.push((format!("{FIRST_RESPONSE}count"), 1));
            out.push((format!("{FIRST_RESPONSE}sum_seconds"), secs));
            out.push((route_counter(&self.route, ANSWERED), 1));
        }
        if self.unanswered {
            out.push((route_counter(&self.route, UNANSWERED), 1));
        }
        if let Some(survey) = &self.survey {
            out.push((survey.counter(), 1));
        }
        out
    }

    /// The route and first response (seconds, rounded up) the histogram of answered
    /// tickets keeps this ticket under, if it was answered.
    pub fn wait_key(&self) -> Option<(&str, i64)> {
        self.waited.map(|w| (self.route.as_str(), seconds_up(w)))
    }

    /// The route and instant the index of unanswered tickets keeps this ticket under.
    pub fn unanswered_key(&self) -> Option<(&str, DateTime<Utc>)> {
        self.unanswered
            .then_some((self.route.as_str(), self.received))
    }
}

/// Counter names (see [`TicketCounts::counters`]).
pub const TICKETS: &str = "tickets";
pub const OPEN: &str = "open";
pub const OPEN_UNCLAIMED: &str = "open_unclaimed";
const FIRST_RESPONSE: &str = "first_response:";
const ROUTE: &str = "route:";
const OPENED: &str = ":opened";
const ANSWERED: &str = ":answered";
const UNANSWERED: &str = ":unanswered";
const SURVEY: &str = "survey:";

fn stage_counter(stage: Stage, platform: Platform) -> String {
    format!("stage:{}:{}", stage_key(stage), platform_key(platform))
}

fn route_counter(route: &str, what: &str) -> String {
    format!("{ROUTE}{route}{what}")
}

/// What writing `new` over `old` (`None`: a new ticket) changes in the counters: only
/// the counters that move, each by how much.
pub fn counter_changes(old: Option<&TicketCounts>, new: &TicketCounts) -> BTreeMap<String, i64> {
    let mut changes: BTreeMap<String, i64> = BTreeMap::new();
    for (name, by) in new.counters() {
        *changes.entry(name).or_default() += by;
    }
    for (name, by) in old.map(TicketCounts::counters).unwrap_or_default() {
        *changes.entry(name).or_default() -= by;
    }
    changes.retain(|_, by| *by != 0);
    changes
}

/// The half-open ranges of ticket numbers whose decimal form starts with `prefix`, in
/// ascending order (`12`: 12, 120–129, 1200–1299, …): the whole range for an empty
/// prefix, none for anything that is no number's start (letters, a leading zero).
pub fn number_ranges(prefix: &str) -> Vec<(u64, u64)> {
    if prefix.is_empty() {
        return vec![(0, u64::MAX)];
    }
    if !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.starts_with('0') {
        return Vec::new();
    }
    let Ok(p) = prefix.parse::<u64>() else {
        return Vec::new();
    };
    let mut ranges = Vec::new();
    let mut scale: u64 = 1;
    while let Some(lo) = p.checked_mul(scale) {
        match p.checked_add(1).and_then(|next| next.checked_mul(scale)) {
            Some(hi) => ranges.push((lo, hi)),
            None => {
                ranges.push((lo, u64::MAX));
                break;
            }
        }
        match scale.checked_mul(10) {
            Some(s) => scale = s,
            None => break,
        }
    }
    ranges
}

/// The first-response histogram of `/metrics`: per bucket (not cumulative), beyond the
/// last bound, how many answered, and their waits summed in whole seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; FIRST_RESPONSE_BUCKETS.len()],
    pub beyond: u64,
    pub count: u64,
    pub sum_seconds: i64,
}

impl Histogram {
    /// Count one wait of `secs` seconds (truncated).
    pub fn add(&mut self, secs: i64) {
        match FIRST_RESPONSE_BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.buckets[i] += 1,
            None => self.beyond += 1,
        }
        self.count += 1;
        self.sum_seconds += secs;
    }
}

/// One route's figures in `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCounts {
    pub opened: u64,
    /// Answered after the route's target, or unanswered past it.
    pub breached: u64,
}

/// The desk-wide figures behind `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeskCounts {
    /// Tickets by stage and platform.
    pub tickets: BTreeMap<(Stage, Platform), u64>,
    pub first_response: Histogram,
    /// By route label (see [`route_label`]).
    pub routes: BTreeMap<String, RouteCounts>,
    pub open_unclaimed: u64,
    /// Survey answers by scale, platform, route, agent and score.
    pub surveys: BTreeMap<SurveyKey, u64>,
}

/// The desk-wide figures as `store`'s counters hold them, each route's tickets judged at
/// `now` against `target(route)` (the route's name as stamped; empty: the default):
/// answered late are those not answered within the target (by the store's histogram of
/// answered tickets, read up to the target), breached unanswered those received before
/// `now - target` (all of the route's unanswered minus those still inside it). Reads no
/// ticket, so the cost follows the targets and the recent arrivals, not the history.
pub async fn desk_counts(
    store: &dyn Store,
    now: DateTime<Utc>,
    target: &(dyn Fn(&str) -> Duration + Send + Sync),
) -> Result<DeskCounts, StoreError> {
    let counters = store.counters().await?;
    let get = |name: &str| u64::try_from(counters.get(name).copied().unwrap_or(0)).unwrap_or(0);
    let mut counts = DeskCounts::default();
    for stage in STAGES {
        for platform in PLATFORMS {
            counts
                .tickets
                .insert((stage, platform), get(&stage_counter(stage, platform)));
        }
    }
    let h = &mut counts.first_response;
    for (i, bound) in FIRST_RESPONSE_BUCKETS.iter().enumerate() {
        h.buckets[i] = get(&format!("{FIRST_RESPONSE}le:{bound}"));
    }
    h.beyond = get(&format!("{FIRST_RESPONSE}le:inf"));
    h.count = get(&format!("{FIRST_RESPONSE}count"));
    h.sum_seconds = counters
        .get(&format!("{FIRST_RESPONSE}sum_seconds"))
        .copied()
        .unwrap_or(0);
    counts.open_unclaimed = get(OPEN_UNCLAIMED);
    for (name, n) in &counters {
        let Some(key) = name.strip_prefix(SURVEY) else {
            continue;
        };
        if let (Ok(key), Ok(n @ 1..)) = (serde_json::from_str::<SurveyKey>(key), u64::try_from(*n))
        {
            *counts.surveys.entry(key).or_default() += n;
        }
    }
    let routes: Vec<&str> = counters
        .keys()
        .filter_map(|k| k.strip_prefix(ROUTE)?.strip_suffix(OPENED))
        .collect();
    for route in routes {
        let sla = target(route);
        let answered = get(&route_counter(route, ANSWERED));
        let unanswered = get(&route_counter(route, UNANSWERED));
        let within = store.answered_within(route, sla.num_seconds()).await?;
        let pending = store.unanswered_since(route, now - sla).await?;
        let entry = counts
            .routes
            .entry(route_label(route).to_string())
            .or_default();
        entry.opened += get(&route_counter(route, OPENED));
        entry.breached += answered.saturating_sub(within) + unanswered.saturating_sub(pending);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_ranges_cover_exactly_the_numbers_that_start_with_the_prefix() {
        let ranges = number_ranges("12");
        assert_eq!(&ranges[..3], &[(12, 13), (120, 130), (1200, 1300)]);
        let starts = |n: u64| ranges.iter().any(|(lo, hi)| (*lo..*hi).contains(&n));
        for n in 0..20_000u64 {
            assert_eq!(starts(n), n.to_string().starts_with("12"), "{n}");
        }
        assert!(starts(12_345_678_901_234_567_890));
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "ascending");
        assert_eq!(number_ranges(""), vec![(0, u64::MAX)]);
        for none in ["0", "01", "x", "1x", "99999999999999999999999"] {
            assert!(number_ranges(none).is_empty(), "{none}");
        }
        assert_eq!(
            number_ranges("18446744073709551615"),
            vec![(u64::MAX, u64::MAX)]
        );
    }

    #[test]
    fn a_wait_rounds_up_to_whole_seconds() {
        assert_eq!(seconds_up(Duration::seconds(60)), 60);
        assert_eq!(seconds_up(Duration::milliseconds(60_001)), 61);
        assert_eq!(seconds_up(Duration::zero()), 0);
    }

    #[test]
    fn changes_hold_only_what_moves() {
        use crate::domain::{Author, Mention, TicketId, Visibility};
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let t = Ticket::open(
            TicketId(1),
            Mention {
                platform: Platform::X,
                network: None,
                account: "brand".into(),
                remote_id: "1".into(),
                url: String::new(),
                author: Author {
                    handle: "a".into(),
                    name: "A".into(),
                    profile_url: String::new(),
                    id: None,
                    followers: None,
                },
                text: "hi".into(),
                language: None,
                created_at: at,
                in_reply_to: None,
                visibility: Visibility::Public,
                reply_context: None,
                external_id: None,
                detected_language: None,
            },
            at,
        );
        let new = TicketCounts::of(&t);
        let opened = counter_changes(None, &new);
        assert_eq!(opened.get(TICKETS), Some(&1));
        assert_eq!(opened.get("stage:new:x"), Some(&1));
        assert_eq!(opened.get("route::unanswered"), Some(&1));
        assert!(counter_changes(Some(&new), &new).is_empty());
        let mut ignored = t;
        ignored.stage = Stage::Ignored;
        let changes = counter_changes(Some(&new), &TicketCounts::of(&ignored));
        let expected: BTreeMap<String, i64> = [
            ("open", -1),
            ("open_unclaimed", -1),
            ("route::unanswered", -1),
            ("stage:ignored:x", 1),
            ("stage:new:x", -1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(changes, expected);
    }
}
