//! Storms: many mentions about the same thing arriving faster than a team can read them.
//! Each new ticket is observed once, in ticket order; what it is about is read from its
//! text (a MinHash sketch over the words and word pairs of the normalised text, so
//! near-duplicates find each other whatever their punctuation, case or @handles), its
//! links and its hashtags, and its arrival counts toward the desk's rate. A group of
//! similar posts, of posts sharing a link or a hashtag, or an arrival rate far above the
//! baseline becomes an incident; later posts about the same thing join it until it has
//! been quiet for a while. The watch is pure state: it decides, the runtime persists what
//! it decided and tells the watch the incident's number.

use super::{IncidentId, Ticket, TicketId};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// How many hash functions a sketch holds: similarity is estimated in steps of 1/64.
pub const SKETCH_SIZE: usize = 64;

/// Bands of the sketch used to find candidates without comparing every pair: two posts
/// sharing any band of 4 hashes are compared (a similarity of 0.6 is found with a chance
/// above 0.9).
const BANDS: usize = 16;
const ROWS: usize = SKETCH_SIZE / BANDS;

/// The thresholds (`[storms]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct StormRules {
    /// How far back posts are compared with each other, and how long a group may take
    /// to reach its size.
    pub window: Duration,
    /// Near-duplicate posts it takes to make an incident.
    pub min_members: usize,
    /// Posts with fewer words never cluster by their text ("hi", "help").
    pub min_words: usize,
    /// Estimated Jaccard similarity (0–1) of two posts' words and word pairs above which
    /// they are about the same thing.
    pub similarity: f64,
    /// Posts sharing one link it takes to make an incident.
    pub link_members: usize,
    /// Posts sharing one hashtag it takes to make an incident.
    pub hashtag_members: usize,
    /// A surge: the last minute's arrivals at least this many times the baseline's
    /// per-minute rate …
    pub surge_factor: f64,
    /// … and at least this many in that minute.
    pub surge_per_minute: usize,
    /// The baseline rate is measured over this long before the last minute.
    pub baseline: Duration,
    /// An incident takes no new members after this long without one.
    pub quiet: Duration,
    /// Words that never make a shared topic: the brand's own name and handles, the
    /// keywords the desk watches (every mention has them). Stored normalised.
    pub ignore_terms: Vec<String>,
}

impl Default for StormRules {
    fn default() -> Self {
        StormRules {
            window: Duration::minutes(10),
            min_members: 5,
            min_words: 4,
            similarity: 0.6,
            link_members: 10,
            hashtag_members: 15,
            surge_factor: 5.0,
            surge_per_minute: 30,
            baseline: Duration::minutes(60),
            quiet: Duration::minutes(30),
            ignore_terms: Vec::new(),
        }
    }
}

impl StormRules {
    /// `terms` as the text is read: lower case, without `@` and `#`.
    pub fn with_ignore_terms<S: AsRef<str>>(mut self, terms: &[S]) -> StormRules {
        self.ignore_terms = terms
            .iter()
            .flat_map(|t| words_of(t.as_ref()))
            .collect::<Vec<_>>();
        self.ignore_terms.sort();
        self.ignore_terms.dedup();
        self
    }

    fn ignored(&self, word: &str) -> bool {
        self.ignore_terms
            .binary_search_by(|t| t.as_str().cmp(word))
            .is_ok()
    }
}

/// What a storm is about, as an incident keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Topic {
    /// Near-identical posts; `sample` is the first one's text (its sketch is the
    /// incident's), cut to a few hundred characters.
    SimilarText { sample: String },
    /// Posts sharing a link (host and path, lower-cased host, no query).
    Link { url: String },
    /// Posts sharing a hashtag (lower case, without `#`).
    Hashtag { tag: String },
    /// Far more posts than usual, about nothing in common.
    Surge,
}

impl Topic {
    /// What kind of topic it is, for logs and exports (never the customers' words).
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::SimilarText { .. } => "similar_text",
            Topic::Link { .. } => "link",
            Topic::Hashtag { .. } => "hashtag",
            Topic::Surge => "surge",
        }
    }
}

/// The text's words as storms read them: lower case, links and @handles left out,
/// hashtags as their word, split at everything that is not a letter or a digit.
pub fn words_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let lower = token.to_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("www.")
            || lower.starts_with('@')
        {
            continue;
        }
        out.extend(
            lower
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string),
        );
    }
    out
}

/// The links a text carries, each as host and path (the host lower-cased, `www.` and
/// the query, fragment and trailing slash left out), so tracking parameters do not
/// split one link into many.
pub fn links_of(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split_whitespace()
        .filter_map(|t| {
            let t = t.trim_matches(|c: char| "()[]<>\"'.,;!?".contains(c));
            let u = url::Url::parse(t).ok()?;
            if !matches!(u.scheme(), "http" | "https") {
                return None;
            }
            let host = u.host_str()?.to_ascii_lowercase();
            let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
            Some(format!("{host}{}", u.path().trim_end_matches('/')))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The hashtags a text carries, lower case without `#`.
pub fn hashtags_of(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split_whitespace()
        .filter_map(|t| t.strip_prefix('#'))
        .map(|t| {
            t.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A MinHash sketch of a text's words and word pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch(pub [u64; SKETCH_SIZE]);

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Sketch {
    /// The sketch of `words` (each word and each pair of neighbours is one element);
    /// `None` without any word.
    pub fn of(words: &[String]) -> Option<Sketch> {
        if words.is_empty() {
            return None;
        }
        let mut elements: Vec<u64> = words.iter().map(|w| fnv(w.as_bytes())).collect();
        elements.extend(
            words
                .windows(2)
                .map(|pair| fnv(format!("{} {}", pair[0], pair[1]).as_bytes())),
        );
        let mut mins = [u64::MAX; SKETCH_SIZE];
        for e in elements {
            for (i, min) in mins.iter_mut().enumerate() {
                let h = splitmix(e ^ splitmix(i as u64 + 1));
                if h < *min {
                    *min = h;
                }
            }
        }
        Some(Sketch(mins))
    }

    /// The estimated Jaccard similarity of the two texts' elements (0–1).
    pub fn similarity(&self, other: &Sketch) -> f64 {
        let same = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count();
        same as f64 / SKETCH_SIZE as f64
    }

    fn bands(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.0
            .chunks(ROWS)
            .enumerate()
            .map(|(band, rows)| (band, rows.iter().fold(band as u64, |h, r| splitmix(h ^ r))))
    }
}

/// The sketch of a text as storms compare it, if it has enough words that are not the
/// brand's own (`None`: the text never clusters).
pub fn sketch_text(text: &str, rules: &StormRules) -> Option<Sketch> {
    let words: Vec<String> = words_of(text)
        .into_iter()
        .filter(|w| !rules.ignored(w))
        .collect();
    if words.len() < rules.min_words.max(1) {
        return None;
    }
    Sketch::of(&words)
}

/// A new ticket as the watch reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub ticket: TicketId,
    /// When the desk received it (storms run on the desk's clock).
    pub received_at: DateTime<Utc>,
    /// When the post says it was written: a post older than the window when it arrived
    /// (a backfill) never counts toward a surge.
    pub created_at: DateTime<Utc>,
    pub text: String,
    /// The incident the ticket is already in (a watch rebuilt after a restart).
    pub incident: Option<IncidentId>,
    /// The ticket keeps its own card whatever storm it belongs to (an urgent mention).
    pub own_card: bool,
}

impl Observed {
    pub fn of(ticket: &Ticket, own_card: bool) -> Observed {
        Observed {
            ticket: ticket.id,
            received_at: ticket.received_at(),
            created_at: ticket.mention.created_at,
            text: ticket.mention.text.clone(),
            incident: ticket.incident,
            own_card,
        }
    }
}

/// Which group of posts an incident grew from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// A cluster of near-identical posts (the watch's own number for it).
    Text(u64),
    Link(String),
    Hashtag(String),
    Surge,
}

/// What the watch decided about one post.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A storm is recognised: a new incident about `topic` with `members` (oldest
    /// first, this post last). Once stored, tell the watch its number ([`StormWatch::bind`]).
    Open {
        group: GroupKey,
        topic: Topic,
        members: Vec<TicketId>,
    },
    /// The post joins an incident that is already open.
    Join {
        incident: IncidentId,
        ticket: TicketId,
    },
}

#[derive(Debug, Clone)]
struct Group {
    /// Members within the window, oldest first, and when each arrived.
    members: VecDeque<(TicketId, DateTime<Utc>)>,
    incident: Option<IncidentId>,
}

impl Group {
    fn new() -> Group {
        Group {
            members: VecDeque::new(),
            incident: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Cluster {
    sketch: Sketch,
    sample: String,
    group: Group,
}

#[derive(Debug, Clone)]
struct OpenIncident {
    last_member_at: DateTime<Utc>,
}

/// The desk's recent posts, as far as storms are concerned.
#[derive(Debug, Clone)]
pub struct StormWatch {
    rules: StormRules,
    /// Tickets observed within the window, and the incident each is in.
    seen: HashMap<TicketId, Option<IncidentId>>,
    order: VecDeque<(TicketId, DateTime<Utc>)>,
    clusters: BTreeMap<u64, Cluster>,
    next_cluster: u64,
    bands: HashMap<(usize, u64), Vec<u64>>,
    links: HashMap<String, Group>,
    hashtags: HashMap<String, Group>,
    /// Arrivals that count toward the rate (no backfills), within the baseline and the
    /// last minute.
    arrivals: VecDeque<(TicketId, DateTime<Utc>)>,
    surge: Option<IncidentId>,
    open: BTreeMap<IncidentId, OpenIncident>,
}

impl StormWatch {
    pub fn new(rules: StormRules) -> StormWatch {
        StormWatch {
            rules,
            seen: HashMap::new(),
            order: VecDeque::new(),
            clusters: BTreeMap::new(),
            next_cluster: 1,
            bands: HashMap::new(),
            links: HashMap::new(),
            hashtags: HashMap::new(),
            arrivals: VecDeque::new(),
            surge: None,
            open: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &StormRules {
        &self.rules
    }

    /// The incidents still taking members at `now`.
    pub fn open_incidents(&self, now: DateTime<Utc>) -> Vec<IncidentId> {
        self.open
            .iter()
            .filter(|(_, o)| o.last_member_at + self.rules.quiet > now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// An incident stored earlier, still open (a watch rebuilt after a restart): later
    /// posts about its topic join it.
    pub fn reopen(&mut self, id: IncidentId, topic: &Topic, last_member_at: DateTime<Utc>) {
        let group = match topic {
            Topic::SimilarText { sample } => {
                let Some(sketch) = sketch_text(sample, &self.rules) else {
                    return;
                };
                let key = self.new_cluster(sketch, sample.clone());
                GroupKey::Text(key)
            }
            Topic::Link { url } => GroupKey::Link(url.clone()),
            Topic::Hashtag { tag } => GroupKey::Hashtag(tag.clone()),
            Topic::Surge => GroupKey::Surge,
        };
        self.bind(&group, id, &[], last_member_at);
    }

    /// The incident of `group` was stored with number `id`, with `members`.
    pub fn bind(
        &mut self,
        group: &GroupKey,
        id: IncidentId,
        members: &[TicketId],
        now: DateTime<Utc>,
    ) {
        match group {
            GroupKey::Text(key) => {
                if let Some(c) = self.clusters.get_mut(key) {
                    c.group.incident = Some(id);
                }
            }
            GroupKey::Link(url) => {
                self.links
                    .entry(url.clone())
                    .or_insert_with(Group::new)
                    .incident = Some(id)
            }
            GroupKey::Hashtag(tag) => {
                self.hashtags
                    .entry(tag.clone())
                    .or_insert_with(Group::new)
                    .incident = Some(id)
            }
            GroupKey::Surge => self.surge = Some(id),
        }
        for m in members {
            if let Some(slot) = self.seen.get_mut(m) {
                *slot = Some(id);
            }
        }
        let open = self.open.entry(id).or_insert(OpenIncident {
            last_member_at: now,
        });
        open.last_member_at = open.last_member_at.max(now);
    }

    /// A member left its incident (split off by an agent): it counts as alone from now.
    pub fn left(&mut self, ticket: TicketId) {
        if let Some(slot) = self.seen.get_mut(&ticket) {
            *slot = None;
        }
    }

    /// Take in a post the desk already decided about (a watch rebuilt after a restart):
    /// it counts toward groups and the rate, but nothing is decided about it again.
    pub fn remember(&mut self, post: &Observed) {
        let _ = self.take(post, false);
    }

    /// Take in a new post and decide whether it is part of a storm (`None`: it is not,
    /// or not yet). A post seen before decides nothing again.
    pub fn observe(&mut self, post: &Observed) -> Option<Verdict> {
        self.take(post, true)
    }

    fn take(&mut self, post: &Observed, decide: bool) -> Option<Verdict> {
        let now = post.received_at;
        self.expire(now);
        if self.seen.contains_key(&post.ticket) {
            return None;
        }
        self.seen.insert(post.ticket, post.incident);
        self.order.push_back((post.ticket, now));
        let backfill = now - post.created_at > self.rules.window;
        if !backfill && !post.own_card {
            self.arrivals.push_back((post.ticket, now));
        }
        if post.own_card {
            return None;
        }
        let sketch = sketch_text(&post.text, &self.rules);
        let links: Vec<String> = links_of(&post.text);
        let tags: Vec<String> = hashtags_of(&post.text)
            .into_iter()
            .filter(|t| !self.rules.ignored(t))
            .collect();

        // The cluster of near-identical posts it belongs to (a new one if none).
        let cluster = sketch.map(|s| match self.similar_cluster(&s) {
            Some(key) => key,
            None => self.new_cluster(s, cut_sample(&post.text)),
        });
        let entry = (post.ticket, now);
        if let Some(key) = cluster {
            if let Some(c) = self.clusters.get_mut(&key) {
                c.group.members.push_back(entry);
            }
        }
        for url in &links {
            self.links
                .entry(url.clone())
                .or_insert_with(Group::new)
                .members
                .push_back(entry);
        }
        for tag in &tags {
            self.hashtags
                .entry(tag.clone())
                .or_insert_with(Group::new)
                .members
                .push_back(entry);
        }
        if !decide || post.incident.is_some() {
            return None;
        }

        // An open incident about the same thing takes it.
        let mut candidates: Vec<GroupKey> = cluster.map(GroupKey::Text).into_iter().collect();
        candidates.extend(links.iter().cloned().map(GroupKey::Link));
        candidates.extend(tags.iter().cloned().map(GroupKey::Hashtag));
        for key in &candidates {
            if let Some(id) = self.group_incident(key).filter(|id| self.is_open(*id, now)) {
                return Some(self.joined(id, post.ticket, now));
            }
        }
        // A group that just reached its size becomes one.
        for key in &candidates {
            let (needed, topic) = match key {
                GroupKey::Text(k) => (
                    self.rules.min_members,
                    Topic::SimilarText {
                        sample: self
                            .clusters
                            .get(k)
                            .map(|c| c.sample.clone())
                            .unwrap_or_default(),
                    },
                ),
                GroupKey::Link(url) => (self.rules.link_members, Topic::Link { url: url.clone() }),
                GroupKey::Hashtag(tag) => (
                    self.rules.hashtag_members,
                    Topic::Hashtag { tag: tag.clone() },
                ),
                GroupKey::Surge => continue,
            };
            let members = self.unassigned(self.group_members(key));
            if members.len() >= needed.max(2) {
                return Some(Verdict::Open {
                    group: key.clone(),
                    topic,
                    members,
                });
            }
        }
        // Far more posts than usual, whatever they are about.
        if self.surging(now) {
            if let Some(id) = self.surge.filter(|id| self.is_open(*id, now)) {
                return Some(self.joined(id, post.ticket, now));
            }
            let minute_ago = now - Duration::minutes(1);
            let recent: Vec<TicketId> = self
                .arrivals
                .iter()
                .filter(|(_, at)| *at > minute_ago)
                .map(|(t, _)| *t)
                .collect();
            return Some(Verdict::Open {
                group: GroupKey::Surge,
                topic: Topic::Surge,
                members: self.unassigned(recent),
            });
        }
        None
    }

    fn joined(&mut self, id: IncidentId, ticket: TicketId, now: DateTime<Utc>) -> Verdict {
        self.seen.insert(ticket, Some(id));
        if let Some(o) = self.open.get_mut(&id) {
            o.last_member_at = o.last_member_at.max(now);
        }
        Verdict::Join {
            incident: id,
            ticket,
        }
    }

    fn is_open(&self, id: IncidentId, now: DateTime<Utc>) -> bool {
        self.open
            .get(&id)
            .is_some_and(|o| o.last_member_at + self.rules.quiet > now)
    }

    fn group_incident(&self, key: &GroupKey) -> Option<IncidentId> {
        match key {
            GroupKey::Text(k) => self.clusters.get(k)?.group.incident,
            GroupKey::Link(url) => self.links.get(url)?.incident,
            GroupKey::Hashtag(tag) => self.hashtags.get(tag)?.incident,
            GroupKey::Surge => self.surge,
        }
    }

    fn group_members(&self, key: &GroupKey) -> Vec<TicketId> {
        let group = match key {
            GroupKey::Text(k) => self.clusters.get(k).map(|c| &c.group),
            GroupKey::Link(url) => self.links.get(url),
            GroupKey::Hashtag(tag) => self.hashtags.get(tag),
            GroupKey::Surge => None,
        };
        group
            .map(|g| g.members.iter().map(|(t, _)| *t).collect())
            .unwrap_or_default()
    }

    /// Of `tickets`, those in no incident yet.
    fn unassigned(&self, tickets: Vec<TicketId>) -> Vec<TicketId> {
        let mut seen = HashSet::new();
        tickets
            .into_iter()
            .filter(|t| matches!(self.seen.get(t), Some(None)) && seen.insert(*t))
            .collect()
    }

    /// The last minute's arrivals are far above the baseline's rate.
    fn surging(&self, now: DateTime<Utc>) -> bool {
        let minute_ago = now - Duration::minutes(1);
        let last_minute = self
            .arrivals
            .iter()
            .filter(|(_, at)| *at > minute_ago)
            .count();
        if last_minute < self.rules.surge_per_minute.max(1) {
            return false;
        }
        let before = self.arrivals.len() - last_minute;
        let minutes = (self.rules.baseline.num_seconds() as f64 / 60.0).max(1.0);
        let baseline = before as f64 / minutes;
        last_minute as f64 >= self.rules.surge_factor * baseline.max(1.0)
    }

    fn similar_cluster(&self, sketch: &Sketch) -> Option<u64> {
        let mut best: Option<(f64, u64)> = None;
        let mut looked = HashSet::new();
        for band in sketch.bands() {
            for key in self.bands.get(&band).into_iter().flatten() {
                if !looked.insert(*key) {
                    continue;
                }
                let Some(c) = self.clusters.get(key) else {
                    continue;
                };
                let sim = c.sketch.similarity(sketch);
                if sim >= self.rules.similarity && best.is_none_or(|(b, _)| sim > b) {
                    best = Some((sim, *key));
                }
            }
        }
        best.map(|(_, key)| key)
    }

    fn new_cluster(&mut self, sketch: Sketch, sample: String) -> u64 {
        let key = self.next_cluster;
        self.next_cluster += 1;
        for band in sketch.bands() {
            self.bands.entry(band).or_default().push(key);
        }
        self.clusters.insert(
            key,
            Cluster {
                sketch,
                sample,
                group: Group::new(),
            },
        );
        key
    }

    /// Forget what is older than the window (and, for the rate, the baseline), and
    /// groups left empty that no open incident needs.
    fn expire(&mut self, now: DateTime<Utc>) {
        let window_start = now - self.rules.window;
        while let Some((t, at)) = self.order.front().copied() {
            if at > window_start {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&t);
        }
        let rate_start = now - self.rules.baseline - Duration::minutes(1);
        while self
            .arrivals
            .front()
            .is_some_and(|(_, at)| *at <= rate_start)
        {
            self.arrivals.pop_front();
        }
        let quiet = self.rules.quiet;
        self.open.retain(|_, o| o.last_member_at + quiet > now);
        let open = &self.open;
        let live = |g: &mut Group| {
            while g.members.front().is_some_and(|(_, at)| *at <= window_start) {
                g.members.pop_front();
            }
            g.incident = g.incident.filter(|id| open.contains_key(id));
            !g.members.is_empty() || g.incident.is_some()
        };
        self.links.retain(|_, g| live(g));
        self.hashtags.retain(|_, g| live(g));
        let mut dead = Vec::new();
        for (key, c) in self.clusters.iter_mut() {
            if !live(&mut c.group) {
                dead.push(*key);
            }
        }
        for key in dead {
            if let Some(c) = self.clusters.remove(&key) {
                for band in c.sketch.bands() {
                    if let Some(keys) = self.bands.get_mut(&band) {
                        keys.retain(|k| *k != key);
                        if keys.is_empty() {
                            self.bands.remove(&band);
                        }
                    }
                }
            }
        }
        if self.surge.is_some_and(|id| !self.open.contains_key(&id)) {
            self.surge = None;
        }
    }
}

/// A post's text as an incident keeps it for its topic: a few hundred characters.
fn cut_sample(text: &str) -> String {
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap() + Duration::seconds(seconds)
    }

    fn post(id: u64, seconds: i64, text: &str) -> Observed {
        Observed {
            ticket: TicketId(id),
            received_at: at(seconds),
            created_at: at(seconds),
            text: text.into(),
            incident: None,
            own_card: false,
        }
    }

    fn rules() -> StormRules {
        StormRules {
            min_members: 3,
            ..StormRules::default()
        }
        .with_ignore_terms(&["BrandCo", "@brandco"])
    }

    #[test]
    fn near_identical_texts_are_similar_and_different_ones_are_not() {
        let r = rules();
        let a = sketch_text("@brandco your app has been down for an hour, fix it!!!", &r).unwrap();
        let b = sketch_text("@BrandCo Your app has been DOWN for an hour. Fix it", &r).unwrap();
        let c = sketch_text("@brandco your app has been down for two hours, fix it", &r).unwrap();
        let other = sketch_text("@brandco where can I find the invoice for my order?", &r).unwrap();
        assert_eq!(
            a.similarity(&b),
            1.0,
            "case, punctuation and handles do not matter"
        );
        assert!(a.similarity(&c) >= 0.6, "{}", a.similarity(&c));
        assert!(a.similarity(&other) < 0.2, "{}", a.similarity(&other));
    }

    #[test]
    fn short_posts_and_the_brands_own_name_never_make_a_text_topic() {
        let r = rules();
        assert_eq!(sketch_text("hi", &r), None);
        assert_eq!(sketch_text("@brandco help me", &r), None, "two words");
        assert_eq!(
            sketch_text("BrandCo brandco #BrandCo https://brand.example", &r),
            None,
            "only the brand's own name and a link"
        );
        assert_eq!(
            words_of("Ça va? L'app #Panne"),
            vec!["ça", "va", "l", "app", "panne"]
        );
        assert_eq!(
            links_of("see https://www.Status.example/incident/42/?utm=x, and http://a.example"),
            vec![
                "a.example".to_string(),
                "status.example/incident/42".to_string()
            ]
        );
        assert_eq!(
            hashtags_of("#Outage! #outage #app_down"),
            vec!["app_down", "outage"]
        );
    }

    #[test]
    fn a_few_near_duplicates_become_one_incident_and_later_ones_join_it() {
        let mut w = StormWatch::new(rules());
        let text = |n: u64| format!("@brandco the app crashes every time I open it ({n})");
        assert_eq!(w.observe(&post(1, 0, &text(1))), None);
        assert_eq!(w.observe(&post(2, 5, "hi")), None);
        assert_eq!(w.observe(&post(3, 10, &text(3))), None);
        let Some(Verdict::Open {
            group,
            topic,
            members,
        }) = w.observe(&post(4, 20, &text(4)))
        else {
            panic!("the third near-duplicate opens an incident");
        };
        assert_eq!(members, vec![TicketId(1), TicketId(3), TicketId(4)]);
        assert!(matches!(topic, Topic::SimilarText { ref sample } if sample.contains("crashes")));
        w.bind(&group, IncidentId(7), &members, at(20));
        assert_eq!(
            w.observe(&post(5, 30, &text(5))),
            Some(Verdict::Join {
                incident: IncidentId(7),
                ticket: TicketId(5)
            })
        );
        assert_eq!(
            w.observe(&post(5, 31, &text(5))),
            None,
            "seen before: nothing again"
        );
        assert_eq!(
            w.observe(&post(6, 40, "@brandco where is my invoice for last month")),
            None
        );
    }

    #[test]
    fn a_quiet_incident_takes_no_new_members_and_old_posts_are_forgotten() {
        let r = StormRules {
            quiet: Duration::minutes(5),
            ..rules()
        };
        let mut w = StormWatch::new(r);
        let text = "@brandco my card payment was declined twice today";
        w.observe(&post(1, 0, text));
        w.observe(&post(2, 1, text));
        let Some(Verdict::Open { group, members, .. }) = w.observe(&post(3, 2, text)) else {
            panic!("an incident")
        };
        w.bind(&group, IncidentId(1), &members, at(2));
        assert_eq!(w.open_incidents(at(60)), vec![IncidentId(1)]);
        // Twenty minutes later: the incident is closed and the window is empty.
        assert_eq!(w.observe(&post(4, 1200, text)), None);
        assert!(w.open_incidents(at(1200)).is_empty());
        assert_eq!(w.observe(&post(5, 1201, text)), None);
        assert!(matches!(
            w.observe(&post(6, 1202, text)),
            Some(Verdict::Open { .. })
        ));
    }

    #[test]
    fn shared_links_and_hashtags_make_incidents_of_their_own_size() {
        let r = StormRules {
            link_members: 3,
            hashtag_members: 4,
            ..rules()
        };
        let mut w = StormWatch::new(r);
        let texts = ["wow", "look at this", "is this true?", "oh no"];
        for (i, t) in texts.iter().take(2).enumerate() {
            assert_eq!(
                w.observe(&post(
                    i as u64 + 1,
                    i as i64,
                    &format!("{t} https://news.example/brand-leak?s=1")
                )),
                None
            );
        }
        let v = w.observe(&post(3, 3, "hmm https://NEWS.example/brand-leak/"));
        assert!(
            matches!(&v, Some(Verdict::Open { topic: Topic::Link { url }, members, .. }) if url == "news.example/brand-leak" && members.len() == 3),
            "{v:?}"
        );
        for (i, t) in texts.iter().enumerate().take(3) {
            assert_eq!(
                w.observe(&post(10 + i as u64, 10, &format!("{t} #BrandFail"))),
                None
            );
        }
        assert!(matches!(
            w.observe(&post(20, 11, "#brandfail")),
            Some(Verdict::Open { topic: Topic::Hashtag { ref tag }, .. }) if tag == "brandfail"
        ));
        // The brand's own name is never a shared topic.
        for i in 0..10 {
            assert_eq!(w.observe(&post(30 + i, 12, &format!("#BrandCo {i}"))), None);
        }
    }

    #[test]
    fn a_rate_far_above_the_baseline_is_a_surge_but_a_backfill_is_not() {
        let r = StormRules {
            surge_per_minute: 10,
            surge_factor: 5.0,
            ..rules()
        };
        // Ten unrelated old posts fetched at once (a backfill): no surge.
        let words = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliet", "kilo", "lima",
        ];
        let unrelated = |i: usize| {
            format!(
                "{} {} {} {}",
                words[i % 12],
                words[(i + 3) % 12],
                words[(i + 7) % 12],
                i
            )
        };
        let mut w = StormWatch::new(r.clone());
        for i in 0..12 {
            let mut p = post(i as u64 + 1, 3600, &unrelated(i));
            p.created_at = at(0);
            assert_eq!(w.observe(&p), None);
        }
        // Ten unrelated new posts in a minute after a quiet hour: a surge.
        let mut w = StormWatch::new(r);
        w.observe(&post(1, 0, "a lone question about the weather"));
        let mut verdicts = Vec::new();
        for i in 0..12 {
            verdicts.push(w.observe(&post(10 + i as u64, 3600 + i as i64, &unrelated(i))));
        }
        let opened = verdicts.iter().flatten().find_map(|v| match v {
            Verdict::Open {
                group: GroupKey::Surge,
                members,
                ..
            } => Some(members.len()),
            _ => None,
        });
        assert_eq!(opened, Some(10), "{verdicts:?}");
    }

    #[test]
    fn an_urgent_post_keeps_its_own_card_and_a_rebuilt_watch_decides_nothing_twice() {
        let mut w = StormWatch::new(rules());
        let text = "@brandco the checkout page shows an error again";
        w.observe(&post(1, 0, text));
        w.observe(&post(2, 1, text));
        let mut urgent = post(3, 2, text);
        urgent.own_card = true;
        assert_eq!(w.observe(&urgent), None);
        // Rebuilt: posts already in incident 9, and the incident itself.
        let mut rebuilt = StormWatch::new(rules());
        rebuilt.reopen(
            IncidentId(9),
            &Topic::SimilarText {
                sample: text.into(),
            },
            at(2),
        );
        for id in 1..=3 {
            let mut p = post(id, id as i64, text);
            p.incident = Some(IncidentId(9));
            rebuilt.remember(&p);
        }
        assert_eq!(
            rebuilt.observe(&post(4, 10, text)),
            Some(Verdict::Join {
                incident: IncidentId(9),
                ticket: TicketId(4)
            })
        );
    }

    #[test]
    fn two_thousand_near_duplicates_are_one_incident() {
        let mut w = StormWatch::new(StormRules::default().with_ignore_terms(&["brandco"]));
        let mut opened = 0;
        let mut joined = 0;
        for i in 0..2000u64 {
            let text = format!(
                "@brandco is the app down? it will not load for me ({})",
                i % 37
            );
            match w.observe(&post(i + 1, (i / 40) as i64, &text)) {
                Some(Verdict::Open { group, members, .. }) => {
                    opened += 1;
                    w.bind(&group, IncidentId(1), &members, at(0));
                    joined += members.len();
                }
                Some(Verdict::Join { .. }) => joined += 1,
                None => {}
            }
        }
        assert_eq!((opened, joined), (1, 2000));
    }
}
