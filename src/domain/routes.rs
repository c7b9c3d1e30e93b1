//! Routes: which promise a mention gets. A route matches mentions by platform, language
//! and keywords, and carries its SLA policy, whether new tickets page the on-call agents,
//! which rotations serve it, and an optional off-hours acknowledgement. The first
//! matching route wins; anything else takes the default route. A route may ask for a
//! priority (`min_priority`), and a rule may name a route outright; the triage (rules
//! and priority policy) travels with the routes, so whoever stamps a new ticket's route
//! judges it by the same rules.

use super::oncall::{OnCall, Schedule};
use super::priority::Level;
use super::sla::{self, SlaPolicy};
use super::text::{compose_reply, TextRules};
use super::{Effect, Mention, Note, Platform, Ticket};
use chrono::{DateTime, Duration, Utc};

/// The name of the route every unmatched mention takes.
pub const DEFAULT_ROUTE: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    /// Empty: any platform.
    pub platforms: Vec<Platform>,
    /// Language codes (`de`, `pt`), matched against the language the desk goes by (the
    /// detected one when the detector was sure, else the platform's tag); empty: any.
    pub languages: Vec<String>,
    /// Any of these words in the text (case-insensitive); empty: any text.
    pub keywords: Vec<String>,
    pub sla: SlaPolicy,
    /// Mention the on-call agents in a new ticket's thread.
    pub page: bool,
    /// The rotations that serve this route (by name); empty: all of them.
    pub rotations: Vec<String>,
    /// Answer the customer publicly when nobody is on shift (`{author}`, `{brand}`,
    /// `{expected}`); `None`: stay silent.
    pub off_hours_ack: Option<String>,
    /// Only mentions of at least this priority (as judged on arrival) take this route.
    pub min_priority: Option<Level>,
}

impl Route {
    /// What a new ticket's card asks of the people on call once it is up: the primary
    /// on call are paged in its thread, if this route pages and anyone is on.
    pub fn paging(&self, on_call: &OnCall) -> Vec<Effect> {
        if !self.page {
            return Vec::new();
        }
        page_primary(on_call)
    }

    pub fn default_route(sla: SlaPolicy, page: bool) -> Route {
        Route {
            name: DEFAULT_ROUTE.into(),
            platforms: Vec::new(),
            languages: Vec::new(),
            keywords: Vec::new(),
            sla,
            page,
            rotations: Vec::new(),
            off_hours_ack: None,
            min_priority: None,
        }
    }

    pub fn matches(&self, m: &Mention) -> bool {
        let platform = self.platforms.is_empty() || self.platforms.contains(&m.platform);
        let language = self.languages.is_empty()
            || m.language_in_use().is_some_and(|(l, _)| {
                self.languages
                    .iter()
                    .any(|want| l.eq_ignore_ascii_case(want) || primary_tag(l) == want.as_str())
            });
        let text = m.text.to_lowercase();
        let keyword =
            self.keywords.is_empty() || self.keywords.iter().any(|k| text.contains(k.as_str()));
        platform && language && keyword
    }

    /// The schedule as this route sees it: only its rotations, every override.
    pub fn schedule(&self, all: &Schedule) -> Schedule {
        if self.rotations.is_empty() {
            return all.clone();
        }
        Schedule {
            rotations: all
                .rotations
                .iter()
                .filter(|r| self.rotations.contains(&r.name))
                .cloned()
                .collect(),
            overrides: all.overrides.clone(),
            agents: all.agents.clone(),
        }
    }
}

fn page_primary(on_call: &OnCall) -> Vec<Effect> {
    if on_call.primary.is_empty() {
        return Vec::new();
    }
    vec![Effect::ThreadNote(Note::Paged {
        members: on_call.primary.clone(),
    })]
}

fn primary_tag(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Routes {
    pub routes: Vec<Route>,
    pub default: Route,
    /// How long a new ticket's card waits before it is posted (`[storms]`), so a storm
    /// is recognised before its cards flood the channel.
    pub card_hold: CardHold,
    /// The rules and priority policy every new ticket is judged by (`[[rules]]`,
    /// `[priority]`).
    pub triage: super::triage::Triage,
}

/// How long a new ticket's card waits before it is posted (`[storms] hold_seconds`): the
/// ticket is stored at once, only its card waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CardHold {
    /// Zero: posted at once.
    pub wait: Duration,
    /// Tickets of this priority and above never wait: they keep their own card even in
    /// a storm (`[storms] own_card_from`).
    pub own_card_from: Option<super::Level>,
}

impl Default for CardHold {
    fn default() -> Self {
        CardHold {
            wait: Duration::zero(),
            own_card_from: None,
        }
    }
}

impl CardHold {
    /// Whether a ticket keeps a card of its own whatever storm it is part of.
    pub fn own_card(&self, ticket: &Ticket) -> bool {
        self.own_card_from
            .is_some_and(|from| ticket.priority.level >= from)
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            routes: Vec::new(),
            default: Route::default_route(SlaPolicy::default(), true),
            card_hold: CardHold::default(),
            triage: Default::default(),
        }
    }
}

impl Routes {
    /// Every route reminds the approvers of a waiting draft after `after` (`[approvals]`
    /// is one policy for the whole desk).
    pub fn set_approval_reminder(&mut self, after: Option<chrono::Duration>) {
        for r in self
            .routes
            .iter_mut()
            .chain(std::iter::once(&mut self.default))
        {
            r.sla.approval_reminder = after;
        }
    }

    /// The instant the scheduler must next look at `ticket` under its route (see
    /// [`sla::next_due`]), or `None` when nothing about it will ever be due.
    pub fn next_due(&self, ticket: &Ticket) -> Option<DateTime<Utc>> {
        let route = self.of(ticket);
        sla::next_due(ticket, &route.sla, route.off_hours_ack.is_some())
    }

    /// What the next-due instants depend on in these routes, as text: each route's name,
    /// SLA targets and whether it acknowledges off hours. A store keeps the fingerprint its
    /// next-due index was computed under; when it differs (the configuration changed
    /// between runs), every open ticket's instant is computed again.
    pub fn policy_fingerprint(&self) -> String {
        self.all()
            .map(|r| {
                let policy = sla::policy_fingerprint(&r.sla, r.off_hours_ack.is_some());
                format!("{}|{policy}", r.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The route of a mention of normal priority.
    pub fn route_for(&self, m: &Mention) -> &Route {
        self.route_for_priority(m, Level::Normal)
    }

    /// The first route that matches `m` and takes its priority `level`.
    pub fn route_for_priority(&self, m: &Mention, level: Level) -> &Route {
        self.routes
            .iter()
            .find(|r| r.matches(m) && r.min_priority.is_none_or(|min| level >= min))
            .unwrap_or(&self.default)
    }

    /// What a new ticket's card asks of the people on call once it is up: the primary on
    /// call are paged where its route pages, or where its priority reaches the level
    /// from which every ticket pages (`[priority] page_from`).
    pub fn paging(&self, ticket: &Ticket, on_call: &OnCall) -> Vec<Effect> {
        let route = self.of(ticket);
        let by_priority = self
            .triage
            .priority
            .page_from
            .is_some_and(|from| ticket.priority.level >= from);
        if by_priority {
            return page_primary(on_call);
        }
        route.paging(on_call)
    }

    /// A ticket's route by the name stamped on it; a route since removed from the
    /// configuration falls back to the default.
    pub fn of(&self, ticket: &Ticket) -> &Route {
        self.named(&ticket.route)
    }

    /// The route of that name (as stamped on tickets; empty, or a name since removed
    /// from the configuration: the default).
    pub fn named(&self, name: &str) -> &Route {
        self.routes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or(&self.default)
    }

    pub fn all(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().chain(std::iter::once(&self.default))
    }
}

/// Off-hours acknowledgements go only to mentions this fresh (not to a backlog found
/// after the feature is switched on or after a long outage).
pub const OFF_HOURS_ACK_WITHIN: Duration = Duration::hours(1);

/// What the desk says to a customer who wrote while nobody on the route was on shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffHoursAck {
    /// This text (before the platform's reply prefix), once.
    Send(String),
    /// The route's template filled in is longer than the platform takes: nothing is sent.
    TooLong,
}

impl Route {
    /// Whether a ticket is owed an off-hours acknowledgement now, and what it says: the
    /// route acknowledges, the ticket is fresh, unanswered and not yet acknowledged,
    /// nobody on the route's rotations was on call when it arrived, and the platform's
    /// rules (`None`: the platform is not connected) take the text. `schedule` is the
    /// desk's whole schedule, overrides included.
    pub fn off_hours_ack(
        &self,
        ticket: &Ticket,
        schedule: &Schedule,
        rules: Option<TextRules>,
        brand: &str,
        now: DateTime<Utc>,
    ) -> Option<OffHoursAck> {
        let template = self.off_hours_ack.as_deref()?;
        if ticket.off_hours_acked
            || !ticket.replies.is_empty()
            || now - ticket.opened_at > OFF_HOURS_ACK_WITHIN
        {
            return None;
        }
        let schedule = self.schedule(schedule);
        if schedule.rotations.is_empty() || !schedule.on_call(ticket.opened_at).primary.is_empty() {
            return None;
        }
        let rules = rules?;
        let wait = schedule
            .next_change(now)
            .map(|t| t - now)
            .unwrap_or(self.sla.first_response);
        let text = off_hours_text(template, ticket, brand, wait);
        let full = compose_reply(&ticket.mention, &text);
        if rules.count(&full) > rules.max_chars || !rules.fits(&full) {
            return Some(OffHoursAck::TooLong);
        }
        Some(OffHoursAck::Send(text))
    }
}

/// The off-hours acknowledgement for a ticket: the route's text with `{author}` (the
/// @handle), `{author_name}`, `{brand}` and `{expected}` ("within about 3 hours") filled in.
pub fn off_hours_text(template: &str, ticket: &Ticket, brand: &str, wait: Duration) -> String {
    super::canned::fill_author(template, &ticket.mention.author)
        .replace("{brand}", brand)
        .replace("{expected}", &expected_wait(wait))
}

/// A wait as a customer reads it, rounded up: "within about 40 minutes", "within about
/// 6 hours".
pub fn expected_wait(wait: Duration) -> String {
    let minutes = wait.num_minutes().max(1);
    if minutes < 60 {
        let m = (minutes + 9) / 10 * 10;
        format!("within about {m} minutes")
    } else {
        let h = (minutes + 59) / 60;
        format!("within about {h} hour{}", if h == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Author, Mention, TicketId, Visibility};
    use chrono::{TimeZone, Utc};

    fn mention(platform: Platform, lang: Option<&str>, text: &str) -> Mention {
        Mention {
            platform,
            network: None,
            account: "brand".into(),
            remote_id: "1".into(),
            url: "https://m.example/1".into(),
            author: Author {
                handle: "kim".into(),
                name: "Kim".into(),
                profile_url: String::new(),
                id: None,
                followers: None,
            },
            text: text.into(),
            language: lang.map(str::to_string),
            created_at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        }
    }

    fn route(name: &str) -> Route {
        Route {
            name: name.into(),
            ..Route::default_route(SlaPolicy::default(), true)
        }
    }

    #[test]
    fn the_first_matching_route_wins_and_the_rest_take_the_default() {
        let routes = Routes {
            routes: vec![
                Route {
                    keywords: vec!["outage".into()],
                    ..route("incidents")
                },
                Route {
                    languages: vec!["de".into()],
                    ..route("dach")
                },
                Route {
                    platforms: vec![Platform::X],
                    ..route("x")
                },
            ],
            default: Route::default_route(SlaPolicy::default(), true),
            card_hold: CardHold::default(),
            triage: Default::default(),
        };
        let pick = |m: &Mention| routes.route_for(m).name.clone();
        assert_eq!(
            pick(&mention(Platform::X, Some("de"), "Total OUTAGE here")),
            "incidents"
        );
        assert_eq!(pick(&mention(Platform::X, Some("de-AT"), "Hallo")), "dach");
        assert_eq!(pick(&mention(Platform::X, Some("en"), "hi")), "x");
        assert_eq!(pick(&mention(Platform::Mastodon, None, "hi")), "default");
    }

    #[test]
    fn a_route_by_language_goes_by_the_detected_language_when_the_detector_was_sure() {
        let routes = Routes {
            routes: vec![Route {
                languages: vec!["da".into()],
                ..route("danish")
            }],
            ..Routes::default()
        };
        let detected = |language: &str, sure: bool| {
            Some(crate::domain::DetectedLanguage {
                language: Some(language.into()),
                confidence: if sure { 90 } else { 30 },
                sure,
            })
        };
        let pick = |tag: Option<&str>, call| {
            let mut m = mention(Platform::Mastodon, tag, "Hvor er min pakke?");
            m.detected_language = call;
            routes.route_for(&m).name.clone()
        };
        assert_eq!(pick(None, detected("da", true)), "danish", "untagged");
        assert_eq!(
            pick(Some("en"), detected("da", true)),
            "danish",
            "mistagged"
        );
        assert_eq!(
            pick(Some("da"), detected("nb", false)),
            "danish",
            "the tag stands"
        );
        assert_eq!(pick(Some("en"), detected("da", false)), DEFAULT_ROUTE);
        assert_eq!(pick(Some("da"), detected("nb", true)), DEFAULT_ROUTE);
    }

    #[test]
    fn a_ticket_keeps_its_route_by_name_and_a_removed_route_falls_back() {
        let routes = Routes {
            routes: vec![route("vip")],
            ..Routes::default()
        };
        let mut t = crate::domain::Ticket::open(
            TicketId(1),
            mention(Platform::Mastodon, None, "hi"),
            Utc::now(),
        );
        t.route = "vip".into();
        assert_eq!(routes.of(&t).name, "vip");
        t.route = "gone".into();
        assert_eq!(routes.of(&t).name, DEFAULT_ROUTE);
    }

    #[test]
    fn the_acknowledgement_promises_a_rounded_up_wait() {
        let t = crate::domain::Ticket::open(
            TicketId(1),
            mention(Platform::Mastodon, None, "hi"),
            Utc::now(),
        );
        let text = off_hours_text(
            "Thanks {author}! {brand} is offline; we'll answer {expected}.",
            &t,
            "BrandCo",
            Duration::minutes(5 * 60 + 1),
        );
        assert_eq!(
            text,
            "Thanks @kim! BrandCo is offline; we'll answer within about 6 hours."
        );
        // The same variables mean the same as in canned replies.
        assert_eq!(
            off_hours_text("Hi {author_name} ({author})", &t, "", Duration::minutes(5)),
            "Hi Kim (@kim)"
        );
        assert_eq!(
            expected_wait(Duration::minutes(31)),
            "within about 40 minutes"
        );
        assert_eq!(expected_wait(Duration::minutes(60)), "within about 1 hour");
        assert_eq!(
            expected_wait(Duration::seconds(10)),
            "within about 10 minutes"
        );
    }

    #[test]
    fn a_new_ticket_pages_the_primary_on_call_only_where_its_route_pages() {
        let on = OnCall {
            primary: vec!["slack:U1".into()],
            secondary: vec!["slack:U2".into()],
        };
        assert_eq!(
            route("vip").paging(&on),
            vec![Effect::ThreadNote(Note::Paged {
                members: vec!["slack:U1".into()]
            })]
        );
        let quiet = Route {
            page: false,
            ..route("quiet")
        };
        assert!(quiet.paging(&on).is_empty());
        assert!(route("vip").paging(&OnCall::default()).is_empty());
    }

    #[test]
    fn off_hours_a_fresh_unanswered_ticket_is_acknowledged_once_and_only_if_it_fits() {
        let day_shift: crate::domain::oncall::Rotation = toml::from_str(
            r#"
            name = "day"
            time_zone = "UTC"
            members = ["slack:U1"]
            shifts = [{ days = ["mon-fri"], start = "09:00", end = "17:00" }]
            "#,
        )
        .expect("test rotation");
        let schedule = Schedule {
            rotations: vec![day_shift],
            ..Schedule::default()
        };
        let acking = Route {
            off_hours_ack: Some("Thanks! We are back {expected}.".into()),
            ..route("night")
        };
        let monday = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
        let opened_at = |at| {
            crate::domain::Ticket::open(TicketId(1), mention(Platform::Mastodon, None, "hi"), at)
        };
        let rules = Some(TextRules::mastodon(500, 23));
        let night = opened_at(monday(20, 0));
        let ack = acking.off_hours_ack(&night, &schedule, rules, "BrandCo", monday(20, 1));
        assert!(
            matches!(&ack, Some(OffHoursAck::Send(text)) if text.starts_with("Thanks! We are back")),
            "{ack:?}"
        );
        // Someone was on shift when it arrived, the route does not acknowledge, the ticket
        // is stale or already answered, or the platform is not connected: nothing.
        let day = opened_at(monday(10, 0));
        assert_eq!(
            acking.off_hours_ack(&day, &schedule, rules, "", monday(10, 1)),
            None
        );
        assert_eq!(
            route("quiet").off_hours_ack(&night, &schedule, rules, "", monday(20, 1)),
            None
        );
        assert_eq!(
            acking.off_hours_ack(&night, &schedule, rules, "", monday(21, 1)),
            None
        );
        let mut acked = night.clone();
        acked.off_hours_acked = true;
        assert_eq!(
            acking.off_hours_ack(&acked, &schedule, rules, "", monday(20, 1)),
            None
        );
        assert_eq!(
            acking.off_hours_ack(&night, &schedule, None, "", monday(20, 1)),
            None
        );
        assert_eq!(
            acking.off_hours_ack(&night, &Schedule::default(), rules, "", monday(20, 1)),
            None,
            "a desk without rotations has no off hours"
        );
        let tight = Some(TextRules::mastodon(10, 23));
        assert_eq!(
            acking.off_hours_ack(&night, &schedule, tight, "", monday(20, 1)),
            Some(OffHoursAck::TooLong)
        );
    }
}
