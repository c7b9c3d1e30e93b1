//! A week of a support team across three time zones, walked on the desk's clock (the
//! `MENTIONBRIDGE_CLOCK_FILE` test hook) instead of slept through: every mention finds
//! the agents on call, breaches escalate, idle claims are reminded and released, nobody
//! on shift means a customer is told when to expect an answer, every hand-off posts its
//! digest (across the US spring-forward night), a restart mid-week repeats nothing, and
//! the week's numbers match a count by hand.

use crate::fakes::slack::SlackMessage;
use crate::harness::*;
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

const LEAD: &str = "U0LEAD";

/// APAC (Kolkata 09:00–17:00 = 03:30–11:30 UTC), EMEA (London 08:00–16:00 = 08:00–16:00
/// UTC in March), Americas (New York 08:00–16:00 = 13:00–21:00 UTC, 12:00–20:00 from
/// Monday 9 March, after the clocks went forward on Sunday), and a team lead as the
/// secondary on-call around the clock.
fn oncall() -> String {
    format!(
        r#"[oncall]
page_new_tickets = true
release_claims_at_handoff = true
off_hours_ack = "Thanks {{author}}! {{brand}} support is offline right now; we'll answer {{expected}}."

[[oncall.rotation]]
name = "apac"
time_zone = "Asia/Kolkata"
members = ["slack:{GIA}"]
shifts = [{{ days = ["mon-fri"], start = "09:00", end = "17:00" }}]

[[oncall.rotation]]
name = "emea"
time_zone = "Europe/London"
members = ["slack:{ANA}"]
shifts = [{{ days = ["mon-fri"], start = "08:00", end = "16:00" }}]

[[oncall.rotation]]
name = "americas"
time_zone = "America/New_York"
members = ["slack:{BEN}"]
shifts = [{{ days = ["mon-fri"], start = "08:00", end = "16:00" }}]

[[oncall.rotation]]
name = "leads"
time_zone = "UTC"
layer = "secondary"
members = ["slack:{LEAD}"]
shifts = [
    {{ days = ["mon-sun"], start = "00:00", end = "12:00" }},
    {{ days = ["mon-sun"], start = "12:00", end = "00:00" }},
]
"#
    )
}

const ROUTES: &str = r#"
[[route]]
name = "incidents"
keywords = ["outage"]

[route.sla]
first_response_minutes = 30
"#;

/// Every change of the people on call in the week, by hand: Thursday and Friday before
/// the US change, Monday to Wednesday after it (Americas an hour earlier in UTC).
fn handoffs() -> Vec<DateTime<Utc>> {
    let before = ["03:30", "08:00", "11:30", "13:00", "16:00", "21:00"];
    let after = ["03:30", "08:00", "11:30", "12:00", "16:00", "20:00"];
    let mut all = Vec::new();
    for (day, times) in [
        (5, before),
        (6, before),
        (9, after),
        (10, after),
        (11, after),
    ] {
        for hm in times {
            all.push(t(day, hm));
        }
    }
    all
}

/// March 2026, UTC.
fn t(day: u32, hm: &str) -> DateTime<Utc> {
    let (h, m) = hm.split_once(':').unwrap();
    Utc.with_ymd_and_hms(2026, 3, day, h.parse().unwrap(), m.parse().unwrap(), 0)
        .unwrap()
}

struct Week {
    world: World,
    now: DateTime<Utc>,
    handoffs: Vec<DateTime<Utc>>,
    digests_seen: usize,
    mentions: usize,
}

fn digests(world: &World) -> Vec<SlackMessage> {
    world
        .slack
        .messages(CHANNEL)
        .into_iter()
        .filter(|m| m.text.starts_with("🔁"))
        .collect()
}

impl Week {
    /// Walk the clock to `to`, stopping at every hand-off on the way and waiting for its
    /// digest.
    async fn advance(&mut self, to: DateTime<Utc>) {
        assert!(to >= self.now, "time only moves forward");
        while let Some(edge) = self.handoffs.first().copied().filter(|e| *e <= to) {
            self.handoffs.remove(0);
            self.world.set_clock(edge);
            self.digests_seen += 1;
            let n = self.digests_seen;
            let header = edge.format("at %a %Y-%m-%d %H:%M UTC").to_string();
            self.world
                .slack
                .wait_until(WAIT, &format!("digest {n} ({header})"), |_| {
                    digests(&self.world).len() >= n
                })
                .await;
            let d = digests(&self.world);
            assert_eq!(d.len(), n, "one digest per hand-off: {d:#?}");
            assert!(d[n - 1].text.contains(&header), "{}", d[n - 1].text);
        }
        self.world.set_clock(to);
        self.now = to;
    }

    /// A customer writes at `at`; returns the ticket's card once it is posted.
    async fn mention(&mut self, at: DateTime<Utc>, author: &str, text: &str) -> SlackMessage {
        self.advance(at).await;
        self.world.mastodon.set_clock(Some(at));
        self.world.mastodon.add_mention(author, text);
        self.mentions += 1;
        self.world.card(self.mentions).await
    }

    async fn thread_says(&self, card: &SlackMessage, needle: &str) -> String {
        let ts = card.ts.clone();
        self.world
            .slack
            .wait_until(WAIT, &format!("ticket thread to say {needle:?}"), |s| {
                s.thread(CHANNEL, &ts)
                    .iter()
                    .any(|m| m.text.contains(needle))
            })
            .await;
        self.world
            .slack
            .thread(CHANNEL, &ts)
            .into_iter()
            .filter(|m| m.text.contains(needle))
            .map(|m| m.text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn thread_count(&self, card: &SlackMessage, needle: &str) -> usize {
        self.world
            .slack
            .thread(CHANNEL, &card.ts)
            .iter()
            .filter(|m| m.text.contains(needle))
            .count()
    }

    /// An agent answers; waits until the reply is on Mastodon.
    async fn reply(&self, card: &SlackMessage, user: &str, text: &str) {
        let before = self.world.mastodon.posted_statuses().len();
        self.world.reply_via_modal(card, user, text).await;
        self.world
            .slack
            .wait_until(WAIT, "the reply to be published", |_| {
                self.world.mastodon.posted_statuses().len() > before
            })
            .await;
        self.world.wait_card_text(card, "published").await;
    }

    async fn press(&self, card: &SlackMessage, user: &str, action: &str, shows: &str) {
        self.world.press(card, user, action).await;
        self.world.wait_card_text(card, shows).await;
    }

    /// The off-hours acknowledgement the customer got, if any.
    async fn acknowledged(&self, text: &str) -> String {
        self.world
            .slack
            .wait_until(WAIT, &format!("an acknowledgement {text:?}"), |_| {
                self.world
                    .mastodon
                    .posted_statuses()
                    .iter()
                    .any(|p| p.status.contains(text))
            })
            .await;
        text.to_string()
    }
}

#[tokio::test]
async fn a_week_of_follow_the_sun_support_finds_people_escalates_hands_off_and_counts_right() {
    let world = World::new().await;
    *world.oncall_config.lock().unwrap() = Some(oncall());
    world.extra_config.lock().unwrap().push_str(ROUTES);
    let start = t(5, "00:00");
    world.set_clock(start);
    let clock = world.clock_file().display().to_string();
    let env = [("MENTIONBRIDGE_CLOCK_FILE", clock.as_str())];
    let mut bot = world.start_bot_with(&env).await;
    let mut week = Week {
        world,
        now: start,
        handoffs: handoffs(),
        digests_seen: 0,
        mentions: 0,
    };

    // #1 Thu 09:00, APAC and EMEA on: both are paged; Ana answers in 20 min (met).
    let c1 = week
        .mention(t(5, "09:00"), "kim", "where is my order?")
        .await;
    let paged = week.thread_says(&c1, "on call").await;
    assert!(
        paged.contains(&format!("<@{GIA}>")) && paged.contains(&format!("<@{ANA}>")),
        "{paged}"
    );
    assert!(!paged.contains(BEN), "Americas is not on yet: {paged}");
    week.advance(t(5, "09:05")).await;
    week.press(&c1, ANA, "mb_claim", "Claimed").await;
    week.advance(t(5, "09:20")).await;
    week.reply(&c1, ANA, "it ships today").await;

    // #2 Thu 14:00, an outage (30 min route): nobody claims it; at 14:30 it breaches and
    // climbs to the lead, then the channel. Ben answers at 14:40 (breached).
    let c2 = week
        .mention(t(5, "14:00"), "lee", "total outage, site down")
        .await;
    assert!(
        blocks_text(&week.world.card_now(&c2)).contains("route incidents"),
        "{}",
        blocks_text(&c2)
    );
    week.advance(t(5, "14:15")).await;
    let level1 = week.thread_says(&c2, "Escalated (level 1)").await;
    assert!(level1.contains(&format!("<@{LEAD}>")), "{level1}");
    week.advance(t(5, "14:30")).await;
    week.thread_says(&c2, "first-response target passed").await;
    let level2 = week.thread_says(&c2, "Escalated (level 2)").await;
    assert!(level2.contains("<!here>"), "{level2}");
    week.world.wait_card_text(&c2, "reply overdue").await;
    week.advance(t(5, "14:40")).await;
    week.reply(&c2, BEN, "we are on it").await;

    // #3 Thu 22:00, nobody on shift: the customer is told when to expect us (APAC comes
    // on at 03:30, in 5.5 h); the lead is called at 22:15. Gia answers Fri 03:40.
    let c3 = week.mention(t(5, "22:00"), "sam", "app crashes").await;
    week.acknowledged("we'll answer within about 6 hours").await;
    week.thread_says(&c3, "Nobody is on shift").await;
    assert_eq!(
        week.thread_count(&c3, "New ticket for"),
        0,
        "nobody to page"
    );
    week.advance(t(5, "22:15")).await;
    week.thread_says(&c3, "Escalated (level 1)").await;
    week.advance(t(6, "03:40")).await;
    week.reply(&c3, GIA, "sorry about that, fixed in 2.1").await;

    // #4 Fri 10:00: Gia claims and goes quiet: reminded at 10:21, released at 10:41 for
    // the people on call; Ana answers at 10:50 (met).
    let c4 = week.mention(t(6, "10:00"), "ali", "refund?").await;
    week.advance(t(6, "10:01")).await;
    week.press(&c4, GIA, "mb_claim", "Claimed").await;
    week.advance(t(6, "10:21")).await;
    let reminder = week.thread_says(&c4, "you claimed this").await;
    assert!(reminder.contains(&format!("<@{GIA}>")), "{reminder}");
    week.advance(t(6, "10:41")).await;
    let released = week.thread_says(&c4, "claim was released").await;
    assert!(released.contains(&format!("<@{ANA}>")), "{released}");
    let ts = c4.ts.clone();
    week.world
        .slack
        .wait_until(WAIT, "the card to show nobody holds it", |s| {
            s.message(CHANNEL, &ts)
                .is_some_and(|m| !blocks_text(&m).contains("held by"))
        })
        .await;
    week.advance(t(6, "10:50")).await;
    week.reply(&c4, ANA, "refund sent").await;

    // #5 Fri 15:00: Ana claims at 15:30; her shift ends at 16:00 with no answer sent: the
    // digest lists it and releases it for Ben. Ben answers at 16:05 (breached).
    let c5 = week.mention(t(6, "15:00"), "jo", "wrong size").await;
    week.advance(t(6, "15:30")).await;
    week.press(&c5, ANA, "mb_claim", "Claimed").await;
    week.advance(t(6, "16:00")).await;
    let digest = digests(&week.world).last().unwrap().text.clone();
    assert!(digest.contains(&format!("<@{ANA}> going off")), "{digest}");
    assert!(
        digest.contains(&format!("Held by people going off shift: #5 (<@{ANA}>)")),
        "{digest}"
    );
    assert!(digest.contains("Breaching: 1 (#5)"), "{digest}");
    assert!(
        digest.contains("Released for the incoming shift: #5"),
        "{digest}"
    );
    week.thread_says(&c5, "their shift ended").await;
    week.advance(t(6, "16:05")).await;
    week.reply(&c5, BEN, "exchange on its way").await;

    // #6 Sat 11:00, the weekend: told we are back Monday 03:30 UTC (40.5 h).
    let c6 = week.mention(t(7, "11:00"), "max", "hello?").await;
    week.acknowledged("we'll answer within about 41 hours")
        .await;
    week.thread_says(&c6, "Nobody is on shift").await;
    week.thread_says(&c6, "Reply published").await;

    // A crash over the weekend: nothing repeats, and nothing is skipped after it.
    bot.kill().await;
    let digests_before = digests(&week.world).len();
    let threads_before = week.world.slack.all_messages(CHANNEL).len();
    bot = week.world.start_bot_with(&env).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(digests(&week.world).len(), digests_before);
    assert_eq!(week.world.slack.all_messages(CHANNEL).len(), threads_before);

    week.advance(t(9, "03:35")).await;
    week.reply(&c6, GIA, "happy to help").await;

    // #7 Mon 12:30: after the US change, Americas is already on (12:00 UTC): both paged.
    let c7 = week.mention(t(9, "12:30"), "ray", "promo code?").await;
    let paged = week.thread_says(&c7, "on call").await;
    assert!(
        paged.contains(&format!("<@{ANA}>")) && paged.contains(&format!("<@{BEN}>")),
        "{paged}"
    );
    week.advance(t(9, "12:45")).await;
    week.reply(&c7, BEN, "SPRING10").await;

    // #8 Tue 08:30: spam, ignored.
    let c8 = week
        .mention(t(10, "08:30"), "bot123", "buy followers")
        .await;
    week.advance(t(10, "08:40")).await;
    week.press(&c8, ANA, "mb_ignore", "Ignored").await;

    // #9 Wed 19:00: Ben answers in 10 min and resolves.
    let c9 = week.mention(t(11, "19:00"), "pat", "invoice copy").await;
    week.advance(t(11, "19:10")).await;
    week.reply(&c9, BEN, "sent by email").await;
    week.advance(t(11, "19:20")).await;
    week.press(&c9, BEN, "mb_resolve", "Resolved").await;

    // #10 Wed 20:30, Americas went off at 20:00: acknowledged once, never answered.
    let c10 = week.mention(t(11, "20:30"), "lou", "anyone there?").await;
    week.acknowledged("we'll answer within about 7 hours").await;
    week.advance(t(11, "21:30")).await;
    week.thread_says(&c10, "first-response target passed").await;

    week.advance(t(12, "00:00")).await;
    assert_eq!(week.digests_seen, 30);
    assert_eq!(digests(&week.world).len(), 30, "no digest twice");
    // Each step happened once, however often the scheduler looked.
    assert_eq!(week.thread_count(&c2, "Escalated (level 1)"), 1);
    assert_eq!(week.thread_count(&c4, "claim was released"), 1);
    let acks = week
        .world
        .mastodon
        .posted_statuses()
        .iter()
        .filter(|p| p.status.contains("support is offline"))
        .count();
    assert_eq!(acks, 3, "one acknowledgement per off-hours conversation");

    // The week's numbers, by hand:
    // | # | route     | shift          | first answer       | target |
    // | 1 | default   | apac+emea      | Ana 20 min         | met    |
    // | 2 | incidents | emea+americas  | Ben 40 min (30)    | late   |
    // | 3 | default   | off shift      | Gia 5 h 40         | late   |
    // | 4 | default   | apac+emea      | Ana 50 min         | met    |
    // | 5 | default   | emea+americas  | Ben 65 min         | late   |
    // | 6 | default   | off shift      | Gia 40 h 35        | late   |
    // | 7 | default   | emea+americas  | Ben 15 min         | met    |
    // | 8 | default   | apac+emea      | ignored            | exempt |
    // | 9 | default   | americas       | Ben 10 min, resolved | met  |
    // |10 | default   | off shift      | none (acknowledged only) | late |
    let stats = week.world.slack_driver();
    let text = crate::drivers::Driver::command(&stats, crate::drivers::Who::Ana, "stats 7d").await;
    for line in [
        "10 opened; now 1 open, 7 replied, 1 resolved, 1 ignored",
        "(8 answered, 1 unanswered)",
        ": 4 of 9 (44%)",
        "• default: 9 opened",
        "• incidents: 1 opened, median 40 min, 0 of 1 within target (0%)",
        "• apac+emea: 3 opened, median 20 min, 2 of 2 within target (100%)",
        "• emea+americas: 3 opened, median 40 min, 1 of 3 within target (33%)",
        "• off shift: 3 opened",
        "0 of 3 within target (0%)",
        "• americas: 1 opened, median 10 min, 1 of 1 within target (100%)",
        ": 4 answered, median",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    bot.kill().await;
}
