//! Priority: which tickets an agent should look at first. A ticket gets points on arrival
//! for its author's reach (followers), being on the VIP list, an urgent word in its
//! language ("outage", "lawyer"), the same person having written before (open tickets,
//! or recent ones), and how the post reads (a sentiment hint); while it waits for an
//! answer it gains more. The points make a level (low, normal, high, urgent), and every
//! point has a reason an agent can read ("VIP", "48k followers", "urgent word: outage",
//! "3rd contact in 7 days", "negative (hint)", "waiting 3h").

pub use super::model::{Level, Priority, Reason};
use super::sentiment::{self, Mood};
use super::words::{first_match, Term, Words};
use super::{Mention, Platform, Ticket, TicketId};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// Points a follower count at least this high gives (the highest tier reached counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachTier {
    pub followers: u64,
    pub points: i32,
}

/// How priorities are judged (`[priority]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityPolicy {
    /// Rising follower counts and their points.
    pub reach: Vec<ReachTier>,
    /// Handles per platform (lowercase, no leading `@`).
    pub vip: BTreeMap<Platform, Vec<String>>,
    pub vip_points: i32,
    /// Urgent words by language (a primary tag like `en`; `all`: every language).
    pub urgent_words: BTreeMap<String, Vec<Term>>,
    pub urgent_points: i32,
    /// Earlier tickets by the same person count if still open or received this recently.
    pub repeat_window: Duration,
    /// Points per earlier contact, for at most `repeat_max` of them.
    pub repeat_points: i32,
    pub repeat_max: u32,
    /// Points for a post that reads negative; a positive one loses as many.
    pub sentiment_points: i32,
    /// Points per hour a ticket waits for its first answer, up to `wait_max_points`.
    pub wait_points_per_hour: i32,
    pub wait_max_points: i32,
    /// Scores from which a ticket is high, urgent; below `normal_from` it is low.
    pub normal_from: i32,
    pub high_from: i32,
    pub urgent_from: i32,
    /// First-response targets by level, where they are shorter than the route's.
    pub first_response: BTreeMap<Level, Duration>,
    /// New tickets at or above this level page the on-call agents even on a route that
    /// does not page.
    pub page_from: Option<Level>,
}

impl Default for PriorityPolicy {
    fn default() -> Self {
        PriorityPolicy {
            reach: vec![
                ReachTier {
                    followers: 1_000,
                    points: 5,
                },
                ReachTier {
                    followers: 10_000,
                    points: 20,
                },
                ReachTier {
                    followers: 100_000,
                    points: 40,
                },
            ],
            vip: BTreeMap::new(),
            vip_points: 40,
            urgent_words: BTreeMap::new(),
            urgent_points: 30,
            repeat_window: Duration::days(7),
            repeat_points: 10,
            repeat_max: 3,
            sentiment_points: 10,
            wait_points_per_hour: 5,
            wait_max_points: 30,
            normal_from: 0,
            high_from: 30,
            urgent_from: 60,
            first_response: BTreeMap::new(),
            page_from: None,
        }
    }
}

/// An earlier ticket of the same person, as the store finds it by author (see
/// [`author_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    pub ticket: TicketId,
    pub received: DateTime<Utc>,
    pub open: bool,
}

/// The earlier tickets of one author a store keeps at hand for intake: the most recent
/// this many.
pub const CONTACTS_KEPT: usize = 32;

/// Who a mention is from, as the stores index tickets by author: the network and the
/// handle, ASCII-lowercased without a leading `@` (`mastodon/alice@other.social`,
/// `other:instagram/kim`). Handles, not platform ids, since the VIP list and every
/// path that brings a mention know the handle.
pub fn author_key(m: &Mention) -> String {
    person_key(
        &network_key(m.platform, m.network.as_deref()),
        &m.author.handle,
    )
}

/// The network part of an author key: `mastodon`, `bluesky`, `x`, or `other:<name>` for
/// a network the webhook names.
pub fn network_key(platform: Platform, network: Option<&str>) -> String {
    match (platform, network) {
        (Platform::Other, Some(n)) => format!("other:{}", n.trim().to_ascii_lowercase()),
        (p, _) => p.label().to_ascii_lowercase(),
    }
}

/// The author key of `handle` on the network `network_key` names.
pub fn person_key(network_key: &str, handle: &str) -> String {
    format!("{network_key}/{}", plain_handle(handle))
}

/// The author key a ticket is filed under in the index of an author's tickets: the
/// mention's [`author_key`], or once its identity is removed, the keyed hash kept in its
/// place (`domain::privacy`).
pub fn ticket_author_key(t: &Ticket) -> String {
    match t.anonymised.as_ref().and_then(|a| a.author.as_ref()) {
        Some(hashed) => hashed.clone(),
        None => author_key(&t.mention),
    }
}

/// A handle as lists compare it: trimmed, no leading `@`, ASCII-lowercased.
pub fn plain_handle(handle: &str) -> String {
    handle.trim().trim_start_matches('@').to_ascii_lowercase()
}

/// A follower count as people say it: 950, 12.3k, 48k, 1.2M.
pub fn reach_label(followers: u64) -> String {
    let short = |n: f64, unit: &str| {
        let s = if n < 100.0 {
            format!("{:.1}", (n * 10.0).floor() / 10.0)
        } else {
            format!("{}", n.floor())
        };
        format!("{}{unit}", s.trim_end_matches(".0"))
    };
    let people = if followers == 1 {
        "follower"
    } else {
        "followers"
    };
    let n = followers as f64;
    let count = match followers {
        0..=999 => followers.to_string(),
        1_000..=999_999 => short(n / 1e3, "k"),
        1_000_000..=999_999_999 => short(n / 1e6, "M"),
        _ => short(n / 1e9, "B"),
    };
    format!("{count} {people}")
}

/// 1st, 2nd, 3rd, 4th, 11th, 21st…
pub fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn window_label(window: Duration) -> String {
    match window.num_days() {
        7 => "this week".to_string(),
        1 => "today".to_string(),
        d if d > 1 => format!("in {d} days"),
        _ => format!("in {} hours", window.num_hours().max(1)),
    }
}

impl PriorityPolicy {
    /// The level `score` makes.
    pub fn level_of(&self, score: i32) -> Level {
        if score >= self.urgent_from {
            Level::Urgent
        } else if score >= self.high_from {
            Level::High
        } else if score >= self.normal_from {
            Level::Normal
        } else {
            Level::Low
        }
    }

    fn is_vip(&self, m: &Mention) -> bool {
        let handle = plain_handle(&m.author.handle);
        !handle.is_empty()
            && self
                .vip
                .get(&m.platform)
                .is_some_and(|list| list.contains(&handle))
    }

    /// The urgent words that apply to a post in `language`: its own language's and
    /// those for every language; a post of unknown language is held against every list.
    fn urgent_terms(&self, language: Option<&str>) -> impl Iterator<Item = &Term> {
        let primary = language.map(|l| {
            l.split(['-', '_'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        });
        self.urgent_words
            .iter()
            .filter(move |(lang, _)| match &primary {
                None => true,
                Some(p) => lang.as_str() == "all" || lang.as_str() == p.as_str(),
            })
            .flat_map(|(_, terms)| terms)
    }

    /// The priority of a new ticket for `m`, whose author's earlier tickets are
    /// `contacts`, judged at `now` (when the desk received it). `words` are the
    /// mention's text's, `language` the language it is judged in.
    pub fn assess(
        &self,
        m: &Mention,
        words: &Words,
        language: Option<&str>,
        contacts: &[Contact],
        now: DateTime<Utc>,
    ) -> Priority {
        let mut reasons = Vec::new();
        let mut add = |why: String, points: i32| reasons.push(Reason { why, points });
        if self.is_vip(m) {
            add("VIP".into(), self.vip_points);
        }
        if let Some(followers) = m.author.followers {
            if let Some(tier) = self
                .reach
                .iter()
                .filter(|t| followers >= t.followers)
                .max_by_key(|t| t.followers)
            {
                add(reach_label(followers), tier.points);
            }
        }
        let terms: Vec<Term> = self.urgent_terms(language).cloned().collect();
        if let Some(term) = first_match(words, &terms) {
            add(format!("urgent word: {}", term.shown), self.urgent_points);
        }
        let earlier = contacts
            .iter()
            .filter(|c| c.open || now - c.received <= self.repeat_window)
            .count() as u64;
        if earlier > 0 {
            let counted = earlier.min(u64::from(self.repeat_max)) as i32;
            add(
                format!(
                    "{} contact {}",
                    ordinal(earlier + 1),
                    window_label(self.repeat_window)
                ),
                self.repeat_points.saturating_mul(counted),
            );
        }
        match sentiment::hint(words, language) {
            Some(Mood::Negative) => add("negative (hint)".into(), self.sentiment_points),
            Some(Mood::Positive) => add("positive (hint)".into(), -self.sentiment_points),
            None => {}
        }
        self.priority_of(reasons)
    }

    fn priority_of(&self, reasons: Vec<Reason>) -> Priority {
        let score = reasons
            .iter()
            .fold(0i32, |sum, r| sum.saturating_add(r.points));
        Priority {
            level: self.level_of(score),
            score,
            reasons,
        }
    }

    /// The points waiting gives a ticket received at `received` that still waits for an
    /// answer at `now`.
    pub fn wait_points(&self, received: DateTime<Utc>, now: DateTime<Utc>) -> i32 {
        let hours = (now - received).num_hours().max(0);
        let points = i64::from(self.wait_points_per_hour).saturating_mul(hours);
        points.clamp(0, i64::from(self.wait_max_points.max(0))) as i32
    }

    /// A ticket's priority at `now`: as judged on arrival, plus what waiting for its
    /// first answer added since.
    pub fn current(&self, ticket: &Ticket, now: DateTime<Utc>) -> Priority {
        let mut p = ticket.priority.clone();
        if waits_for_answer(ticket) {
            let points = self.wait_points(ticket.received_at(), now);
            if points > 0 {
                let hours = (now - ticket.received_at()).num_hours();
                p.reasons.push(Reason {
                    why: format!("waiting {}", waited_label(hours)),
                    points,
                });
                p.score = p.score.saturating_add(points);
            }
        }
        p.level = self.level_of(p.score);
        p
    }

    /// The level of an open ticket as the list sorts it, from what the store's index of
    /// open tickets keeps: its points on arrival, when it was received, and whether it
    /// still waits for a first answer.
    pub fn current_level(
        &self,
        score: i32,
        received: DateTime<Utc>,
        waiting: bool,
        now: DateTime<Utc>,
    ) -> Level {
        let wait = if waiting {
            self.wait_points(received, now)
        } else {
            0
        };
        self.level_of(score.saturating_add(wait))
    }

    /// The first-response target for a ticket of `level` on a route whose target is
    /// `route_target`: the level's own where it is shorter.
    pub fn first_response(&self, level: Level, route_target: Duration) -> Duration {
        self.first_response
            .get(&level)
            .map_or(route_target, |t| (*t).min(route_target))
    }
}

/// Open with no agent's first answer yet: waiting adds to its priority. (A reply on its
/// way does not stop it, so the stores can tell from what they index.)
pub fn waits_for_answer(ticket: &Ticket) -> bool {
    !ticket.is_closed() && ticket.first_answer().is_none()
}

fn waited_label(hours: i64) -> String {
    if hours >= 48 {
        format!("{}d", hours / 24)
    } else {
        format!("{hours}h")
    }
}

/// The order of the open list: highest level first, then whoever has waited longest,
/// then by number.
pub fn list_order(
    a: (Level, DateTime<Utc>, TicketId),
    b: (Level, DateTime<Utc>, TicketId),
) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::{Author, Visibility};
    use chrono::TimeZone;

    pub(in crate::domain) fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    /// A Mastodon mention in English by `handle`, received at [`now`].
    pub(in crate::domain) fn mention(handle: &str, text: &str, followers: Option<u64>) -> Mention {
        Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: "1".into(),
            url: "https://m.example/@a/1".into(),
            author: Author {
                handle: handle.into(),
                name: handle.into(),
                followers,
                ..Author::default()
            },
            text: text.into(),
            language: Some("en".into()),
            created_at: now(),
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    fn judge(policy: &PriorityPolicy, m: &Mention, contacts: &[Contact]) -> Priority {
        policy.assess(
            m,
            &Words::of(&m.text),
            m.language.as_deref(),
            contacts,
            now(),
        )
    }

    fn policy() -> PriorityPolicy {
        let mut p = PriorityPolicy::default();
        p.vip
            .insert(Platform::Mastodon, vec!["bigcorp@social.example".into()]);
        p.urgent_words.insert(
            "en".into(),
            vec![Term::new("outage").unwrap(), Term::new("lawyer").unwrap()],
        );
        p.urgent_words
            .insert("de".into(), vec![Term::new("Ausfall").unwrap()]);
        p
    }

    #[test]
    fn a_plain_question_is_normal_with_nothing_to_say() {
        let p = judge(&policy(), &mention("kim", "how do I log in?", None), &[]);
        assert_eq!(p.level, Level::Normal);
        assert_eq!(p.score, 0);
        assert!(p.reasons.is_empty());
    }

    #[test]
    fn a_vip_is_high_whatever_they_write_and_handles_compare_loosely() {
        let p = judge(
            &policy(),
            &mention("@BigCorp@social.example", "hello", None),
            &[],
        );
        assert_eq!(p.level, Level::High);
        assert_eq!(p.why(), "VIP");
        // The same handle on another platform is someone else.
        let mut m = mention("bigcorp@social.example", "hello", None);
        m.platform = Platform::X;
        assert_eq!(judge(&policy(), &m, &[]).level, Level::Normal);
    }

    #[test]
    fn reach_gives_the_points_of_the_highest_tier_reached() {
        let pol = policy();
        let p = judge(&pol, &mention("kim", "hi", Some(48_000)), &[]);
        assert_eq!(p.score, 20);
        assert_eq!(p.why(), "48k followers");
        assert_eq!(
            judge(&pol, &mention("kim", "hi", Some(2_000_000)), &[]).level,
            Level::High
        );
        assert!(judge(&pol, &mention("kim", "hi", Some(999)), &[])
            .reasons
            .is_empty());
        assert_eq!(reach_label(12_345), "12.3k followers");
        assert_eq!(reach_label(1), "1 follower");
        assert_eq!(reach_label(999), "999 followers");
        assert_eq!(reach_label(1_250_000), "1.2M followers");
        assert_eq!(reach_label(450_000), "450k followers");
        assert_eq!(reach_label(u64::MAX), "18446744073B followers");
    }

    #[test]
    fn urgent_words_count_in_the_posts_language_and_in_every_list_when_unknown() {
        let pol = policy();
        let p = judge(&pol, &mention("kim", "Total OUTAGE since 9am", None), &[]);
        assert_eq!(p.level, Level::High);
        assert_eq!(p.why(), "urgent word: outage");
        let mut german = mention("kim", "Seit heute früh ein Ausfall", None);
        german.language = Some("de-AT".into());
        assert_eq!(judge(&pol, &german, &[]).why(), "urgent word: Ausfall");
        // English words do not count in a German post...
        german.text = "outage".into();
        assert!(judge(&pol, &german, &[]).reasons.is_empty());
        // ...but a post of unknown language is held against every list.
        german.language = None;
        assert_eq!(judge(&pol, &german, &[]).why(), "urgent word: outage");
        assert!(judge(&pol, &mention("kim", "lawyered up", None), &[])
            .reasons
            .is_empty());
    }

    #[test]
    fn earlier_contacts_count_if_open_or_recent_up_to_a_cap() {
        let pol = policy();
        let contact = |id, days_ago, open| Contact {
            ticket: TicketId(id),
            received: now() - Duration::days(days_ago),
            open,
        };
        let p = judge(
            &pol,
            &mention("kim", "hi", None),
            &[contact(1, 1, false), contact(2, 3, false)],
        );
        assert_eq!(p.why(), "3rd contact this week");
        assert_eq!(p.score, 20);
        // An old closed ticket is forgotten; an old open one still counts.
        let p = judge(
            &pol,
            &mention("kim", "hi", None),
            &[contact(1, 30, false), contact(2, 30, true)],
        );
        assert_eq!(p.why(), "2nd contact this week");
        let many: Vec<Contact> = (0..10).map(|i| contact(i, 0, true)).collect();
        let p = judge(&pol, &mention("kim", "hi", None), &many);
        assert_eq!(p.score, 30, "capped at three contacts");
        assert_eq!(p.why(), "11th contact this week");
    }

    #[test]
    fn the_sentiment_hint_moves_the_score_and_says_it_is_a_hint() {
        let pol = policy();
        let p = judge(
            &pol,
            &mention("kim", "Worst app ever, so annoying", None),
            &[],
        );
        assert_eq!(p.why(), "negative (hint)");
        assert_eq!(p.score, 10);
        let p = judge(&pol, &mention("kim", "Thanks, love it!", None), &[]);
        assert_eq!(p.level, Level::Low);
        assert_eq!(p.why(), "positive (hint)");
    }

    #[test]
    fn reasons_add_up_to_urgent() {
        let p = judge(
            &policy(),
            &mention(
                "bigcorp@social.example",
                "Outage again, terrible",
                Some(48_000),
            ),
            &[],
        );
        assert_eq!(p.level, Level::Urgent);
        assert_eq!(
            p.why(),
            "VIP · 48k followers · urgent word: outage · negative (hint)"
        );
    }

    #[test]
    fn waiting_raises_a_ticket_until_its_first_answer() {
        let pol = policy();
        let mut t = Ticket::open(TicketId(1), mention("kim", "hi", None), now());
        t.priority = judge(&pol, &t.mention, &[]);
        assert_eq!(pol.current(&t, now()).level, Level::Normal);
        let later = now() + Duration::hours(6);
        let p = pol.current(&t, later);
        assert_eq!(p.score, 30);
        assert_eq!(p.level, Level::High);
        assert_eq!(p.why(), "waiting 6h");
        assert_eq!(pol.current_level(0, now(), true, later), Level::High);
        assert_eq!(pol.current_level(0, now(), false, later), Level::Normal);
        let days = pol.current(&t, now() + Duration::days(5));
        assert_eq!(days.score, 30, "capped");
        assert_eq!(days.why(), "waiting 5d");
        t.stage = crate::domain::Stage::Resolved;
        assert_eq!(pol.current(&t, later).score, 0);
    }

    #[test]
    fn the_list_puts_higher_levels_first_then_the_longest_waiting() {
        let at = |h| now() + Duration::hours(h);
        let mut rows = [
            (Level::Normal, at(0), TicketId(1)),
            (Level::High, at(2), TicketId(3)),
            (Level::Urgent, at(3), TicketId(4)),
            (Level::High, at(1), TicketId(2)),
            (Level::Low, at(-5), TicketId(5)),
        ];
        rows.sort_by(|a, b| list_order(*a, *b));
        let ids: Vec<u64> = rows.iter().map(|r| r.2 .0).collect();
        assert_eq!(ids, vec![4, 2, 3, 1, 5]);
    }

    #[test]
    fn a_levels_target_applies_only_where_it_is_shorter() {
        let mut pol = policy();
        pol.first_response
            .insert(Level::Urgent, Duration::minutes(15));
        assert_eq!(
            pol.first_response(Level::Urgent, Duration::minutes(60)),
            Duration::minutes(15)
        );
        assert_eq!(
            pol.first_response(Level::Urgent, Duration::minutes(10)),
            Duration::minutes(10)
        );
        assert_eq!(
            pol.first_response(Level::Normal, Duration::minutes(60)),
            Duration::minutes(60)
        );
    }

    #[test]
    fn the_author_key_is_the_network_and_the_loose_handle() {
        let m = mention("@Alice@Other.Social", "hi", None);
        assert_eq!(author_key(&m), "mastodon/alice@other.social");
        let mut w = m.clone();
        w.platform = Platform::Other;
        w.network = Some("Instagram".into());
        assert_eq!(author_key(&w), "other:instagram/alice@other.social");
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(22), "22nd");
        assert_eq!(ordinal(113), "113th");
    }
}
