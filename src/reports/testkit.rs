//! The desk's week of tickets that every report test counts by hand, and the small
//! builders it is made of.

use super::numbers::{summarize, Spread, Summary, Window};
use crate::domain::{
    AgentRef, Author, Claim, Mention, Platform, Reply, ReplyState, Stage, SurfaceKind, Ticket,
    TicketId, Visibility,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// The instant the report is asked for.
pub(super) fn now() -> DateTime<Utc> {
    at(25, 9, 0)
}

pub(super) fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .unwrap()
}

pub(super) fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

pub(super) fn agent(surface: SurfaceKind, id: &str, name: &str) -> AgentRef {
    AgentRef {
        surface,
        user_id: id.into(),
        name: name.into(),
        roles: vec![],
    }
}

pub(super) fn ana() -> AgentRef {
    agent(SurfaceKind::Slack, "U1", "Ana")
}
pub(super) fn bo() -> AgentRef {
    agent(SurfaceKind::Discord, "42", "Bo")
}
pub(super) fn cy() -> AgentRef {
    agent(SurfaceKind::Slack, "U3", "Cy")
}

pub(super) fn published() -> ReplyState {
    ReplyState::Published {
        remote_id: "r".into(),
        url: "https://social.example/r".into(),
    }
}

pub(super) fn failed() -> ReplyState {
    ReplyState::Failed {
        reason: "422 rejected".into(),
    }
}

/// A ticket for a customer post written at `created`, opened by the desk at the same
/// time and posted as a card.
pub(super) fn ticket(id: u64, platform: Platform, created: DateTime<Utc>) -> Ticket {
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
            followers: None,
        },
        text: "my order never arrived".into(),
        language: Some("en".into()),
        created_at: created,
        in_reply_to: None,
        visibility: Visibility::Public,
        reply_context: None,
        external_id: None,
        detected_language: None,
    };
    let mut t = Ticket::open(TicketId(id), mention, created);
    t.stage = Stage::Posted;
    t
}

/// The agent replies `after` the customer wrote; a reply claims the ticket and a
/// published one moves it to Replied, as in the domain rules.
pub(super) fn reply(
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
        review: None,
    });
    t.updated_at = t.updated_at.max(when);
    t
}

pub(super) fn close(mut t: Ticket, stage: Stage, by: AgentRef, when: DateTime<Utc>) -> Ticket {
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
pub(super) fn week() -> Vec<Ticket> {
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

pub(super) fn week_summary() -> Summary {
    let window = Window::parse("7d", now()).unwrap();
    summarize(&week(), &window, mins(60))
}

pub(super) fn spread(count: usize, p50: i64, p90: i64) -> Spread {
    Spread {
        count,
        p50: Some(Duration::seconds(p50)),
        p90: Some(Duration::seconds(p90)),
    }
}

/// The customer answered the ticket's survey (asked at its last update) with `score`.
pub(super) fn surveyed(
    mut t: Ticket,
    scale: crate::domain::Scale,
    score: u8,
    when: DateTime<Utc>,
) -> Ticket {
    t.survey = Some(crate::domain::Survey {
        scale,
        asked_at: t.updated_at,
        seq: t.replies.len() as u32 + 1,
        answer: Some(crate::domain::SurveyAnswer {
            score,
            text: score.to_string(),
            at: when,
        }),
        passed: false,
    });
    t
}

/// Six answered surveys, counted by hand in the tests: CSAT 5 and 4 (Mastodon, Ana,
/// answered on the 20th), CSAT 2 (Bluesky, Bo, route `vip "gold"`, the 21st); NPS 9, 3
/// and 7 (X, Cy, the 22nd).
pub(super) fn surveyed_week() -> Vec<Ticket> {
    use crate::domain::Scale::{Csat, Nps};
    let answered = |id, platform, day, by: AgentRef, scale, score| {
        let t = ticket(id, platform, at(day, 10, 0));
        let t = reply(t, by.clone(), mins(10), published(), false);
        let t = close(t, Stage::Resolved, by, at(day, 11, 0));
        surveyed(t, scale, score, at(day, 12, 0))
    };
    let mut vip = answered(3, Platform::Bluesky, 21, bo(), Csat, 2);
    vip.route = "vip \"gold\"".into();
    vec![
        answered(1, Platform::Mastodon, 20, ana(), Csat, 5),
        answered(2, Platform::Mastodon, 20, ana(), Csat, 4),
        vip,
        answered(4, Platform::X, 22, cy(), Nps, 9),
        answered(5, Platform::X, 22, cy(), Nps, 3),
        answered(6, Platform::X, 22, cy(), Nps, 7),
    ]
}
