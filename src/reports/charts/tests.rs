use super::render::{daily_png, first_response_png, week_png, HEIGHT, WIDTH};
use super::*;
use crate::domain::{AgentRef, Level, Platform, SurfaceKind, TicketId};
use chrono::TimeZone;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn ana() -> AgentRef {
    AgentRef {
        surface: SurfaceKind::Slack,
        user_id: "U1".into(),
        name: "Ana".into(),
        roles: vec![],
    }
}

fn fact(id: u64, opened: DateTime<Utc>, waited_min: Option<i64>) -> TicketFacts {
    TicketFacts {
        id: TicketId(id),
        platform: Platform::Mastodon,
        stage: if waited_min.is_some() {
            Stage::Replied
        } else {
            Stage::Posted
        },
        route: String::new(),
        opened_at: opened,
        updated_at: opened,
        first_response: waited_min.map(|m| (opened + Duration::minutes(m), ana())),
        level: Level::Normal,
        language: None,
        survey: None,
    }
}

fn schedule(toml_text: &str) -> Schedule {
    toml::from_str(toml_text).expect("test schedule")
}

fn no_shifts() -> Schedule {
    Schedule::default()
}

/// Mon 2026-11-16 00:00 UTC to the Monday after: one of each hour of the week.
fn week() -> Window {
    Window::new(utc(2026, 11, 16, 0, 0), utc(2026, 11, 23, 0, 0))
}

/// Two agents on Mon–Sat 08:00–19:00 and Sun 10:00–12:00, UTC.
fn cover() -> Schedule {
    schedule(
        r#"
        [[rotations]]
        name = "desk"
        time_zone = "UTC"
        members = ["slack:U1", "slack:U2"]
        shifts = [{ days = ["mon-sat"], start = "08:00", end = "19:00" },
                  { days = ["sun"], start = "10:00", end = "12:00" }]
        "#,
    )
}

#[test]
fn week_hours_are_local_wall_clock_hours_across_a_dst_change() {
    // Berlin leaves summer time on Sun 2026-10-25 at 03:00 CEST (01:00 UTC): 02:30 happens twice.
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let window = Window::new(utc(2026, 10, 24, 0, 0), utc(2026, 10, 27, 0, 0));
    let facts = vec![
        fact(1, utc(2026, 10, 25, 0, 30), None), // 02:30 CEST, Sun
        fact(2, utc(2026, 10, 25, 1, 30), None), // 02:30 CET, Sun
        fact(3, utc(2026, 10, 25, 2, 30), None), // 03:30 CET, Sun
        fact(4, utc(2026, 10, 26, 8, 15), None), // 09:15 CET, Mon
        fact(5, utc(2026, 10, 24, 22, 0), None), // 00:00 CEST, Sun
        fact(6, utc(2026, 10, 27, 0, 0), None),  // the window's end: not in it
    ];
    let chart = week_chart(&facts, &window, tz, &no_shifts());
    let sun = 6 * 24;
    assert_eq!(chart.mentions[sun], 1);
    assert_eq!(chart.mentions[sun + 2], 2);
    assert_eq!(chart.mentions[sun + 3], 1);
    assert_eq!(chart.mentions[9], 1);
    assert_eq!(chart.total, 5);
    assert_eq!(chart.mentions.iter().sum::<usize>(), 5);
    assert_eq!(hour_label(sun + 2), "Sun 02:00");
}

#[test]
fn the_largest_uncovered_run_wraps_across_the_weeks_end_and_is_a_sentence() {
    let facts = vec![
        fact(1, utc(2026, 11, 22, 13, 0), None), // Sun 13:00: uncovered
        fact(2, utc(2026, 11, 22, 13, 40), None),
        fact(3, utc(2026, 11, 22, 23, 59), None), // Sun 23:00
        fact(4, utc(2026, 11, 16, 3, 0), None),   // Mon 03:00: same run, past the week's end
        fact(5, utc(2026, 11, 16, 7, 59), None),  // Mon 07:00
        fact(6, utc(2026, 11, 17, 22, 0), None),  // Tue 22:00: another run
        fact(7, utc(2026, 11, 18, 10, 0), None),  // Wed 10:00: covered
        fact(8, utc(2026, 11, 18, 10, 5), None),
        fact(9, utc(2026, 11, 18, 11, 0), None),
        fact(10, utc(2026, 11, 18, 18, 59), None),
    ];
    let chart = week_chart(&facts, &week(), Tz::UTC, &cover());
    // Covered: six days of 11 hours and two on Sunday.
    assert_eq!(chart.uncovered.len(), 168 - 6 * 11 - 2);
    assert_eq!(chart.coverage[2 * 24 + 10], Some(2.0));
    assert_eq!(chart.coverage[2 * 24 + 19], Some(0.0));
    assert_eq!(
        chart.largest_gap,
        Some(Gap {
            start: 6 * 24 + 12,
            hours: 20,
            mentions: 5
        })
    );
    assert_eq!(
        chart.gap_sentence(),
        "50 % of mentions arrive Sun 12:00–08:00 with nobody on shift"
    );
}

#[test]
fn an_override_is_not_planned_cover() {
    let mut s = cover();
    s.overrides.push(crate::domain::oncall::Override::lasting(
        "slack:U3",
        crate::domain::oncall::Layer::Primary,
        utc(2026, 11, 22, 12, 0),
        Duration::hours(20),
    ));
    let chart = week_chart(&[], &week(), Tz::UTC, &s);
    assert_eq!(chart.coverage[6 * 24 + 13], Some(0.0));
}

#[test]
fn without_shifts_every_mention_arrives_with_nobody_on_shift() {
    let facts = vec![fact(1, utc(2026, 11, 18, 10, 0), None)];
    let chart = week_chart(&facts, &week(), Tz::UTC, &no_shifts());
    assert_eq!(chart.uncovered.len(), 168);
    assert_eq!(
        chart.gap_sentence(),
        "100 % of mentions arrive with nobody on shift (no shifts cover this window)."
    );
    let empty = week_chart(&[], &week(), Tz::UTC, &cover());
    assert_eq!(empty.gap_sentence(), "No mentions in this window.");
}

#[test]
fn first_response_median_and_p90_by_local_hour() {
    let tz: Tz = "America/New_York".parse().unwrap();
    // 14:xx UTC on 2026-11-18 is 09:xx EST; waits of 1..=10 minutes.
    let mut facts: Vec<TicketFacts> = (1..=10)
        .map(|m| fact(m as u64, utc(2026, 11, 18, 14, m as u32), Some(m)))
        .collect();
    let mut ignored = fact(11, utc(2026, 11, 18, 14, 30), Some(100));
    ignored.stage = Stage::Ignored;
    facts.push(ignored);
    facts.push(fact(12, utc(2026, 11, 18, 14, 40), None)); // unanswered: no time
    facts.push(fact(13, utc(2026, 11, 18, 3, 0), Some(90))); // 22:00 EST the day before
    let hours = first_response_by_hour(&facts, &week(), tz);
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[9].answered, 10);
    assert_eq!(hours[9].median_minutes, Some(5.0));
    assert_eq!(hours[9].p90_minutes, Some(9.0));
    assert_eq!(hours[22].median_minutes, Some(90.0));
    assert_eq!(hours[22].p90_minutes, Some(90.0));
    assert_eq!(hours[10].answered, 0);
    assert_eq!(hours[10].median_minutes, None);
}

fn vip_targets() -> Targets<'static> {
    Targets {
        default_sla: Duration::minutes(60),
        sla_of: Box::new(|route| {
            if route == "vip" {
                Duration::minutes(10)
            } else {
                Duration::minutes(60)
            }
        }),
        shift_of: Box::new(|_| None),
    }
}

#[test]
fn sla_share_per_day_is_answered_within_the_routes_target_over_answered() {
    let mut vip_met = fact(1, utc(2026, 11, 17, 9, 0), Some(10)); // exactly at target: met
    vip_met.route = "vip".into();
    let mut vip_late = fact(2, utc(2026, 11, 17, 10, 0), Some(20));
    vip_late.route = "vip".into();
    let facts = vec![
        vip_met,
        vip_late,
        fact(3, utc(2026, 11, 17, 11, 0), Some(30)),
        fact(4, utc(2026, 11, 17, 12, 0), None), // unanswered: not in the share
        fact(5, utc(2026, 11, 18, 12, 0), None),
    ];
    let csat = [(NaiveDate::from_ymd_opt(2026, 11, 17).unwrap(), Some(4.5))];
    let days = daily(&facts, &week(), Tz::UTC, &vip_targets(), &csat);
    assert_eq!(days.len(), 7);
    assert_eq!(days[1].date, NaiveDate::from_ymd_opt(2026, 11, 17).unwrap());
    assert_eq!(
        (days[1].received, days[1].answered, days[1].within_target),
        (4, 3, 2)
    );
    let share = days[1].sla_percent.unwrap();
    assert!((share - 200.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!(days[1].csat, Some(4.5));
    assert_eq!(days[2].received, 1);
    assert_eq!(days[2].sla_percent, None);
    assert_eq!(days[2].csat, None);
}

#[test]
fn a_window_in_a_zone_west_of_utc_touches_one_more_local_day() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let days = daily(&[], &week(), tz, &vip_targets(), &[]);
    assert_eq!(
        days.first().unwrap().date,
        NaiveDate::from_ymd_opt(2026, 11, 15).unwrap()
    );
    assert_eq!(
        days.last().unwrap().date,
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    );
}

/// Decode a PNG: its size and how many pixels are not white.
fn decode(bytes: &[u8]) -> (u32, u32, usize, bool) {
    let decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let inked = pixels.iter().filter(|p| p[..3] != [255, 255, 255]).count();
    // The bars' blue (Okabe–Ito) is there.
    let blue = pixels.iter().any(|p| p[..3] == [0, 114, 178]);
    (info.width, info.height, inked, blue)
}

pub(crate) fn sample() -> ChartData {
    let mut facts = vec![
        fact(1, utc(2026, 11, 22, 13, 0), Some(45)),
        fact(2, utc(2026, 11, 16, 3, 0), Some(300)),
        fact(3, utc(2026, 11, 17, 22, 0), None),
    ];
    for i in 0..40u32 {
        let at = utc(2026, 11, 16 + i % 6, 8 + i % 11, (i * 7) % 60);
        facts.push(fact(100 + u64::from(i), at, Some(i64::from(3 + i % 13))));
    }
    ChartData::of(
        &facts,
        &week(),
        Tz::UTC,
        &cover(),
        &vip_targets(),
        &[],
        utc(2026, 11, 23, 0, 5),
    )
}

#[test]
fn the_charts_are_pngs_with_something_drawn() {
    let data = sample();
    for (name, bytes) in [
        ("week", week_png(&data).unwrap()),
        ("first-response", first_response_png(&data).unwrap()),
        ("daily", daily_png(&data).unwrap()),
    ] {
        let (w, h, inked, _) = decode(&bytes);
        assert_eq!((w, h), (WIDTH, HEIGHT), "{name}");
        assert!(inked > 5_000, "{name}: only {inked} pixels drawn");
        if let Ok(dir) = std::env::var("CHART_SAMPLES") {
            std::fs::write(format!("{dir}/chart-{name}.png"), &bytes).unwrap();
        }
    }
    let (_, _, _, blue) = decode(&week_png(&data).unwrap());
    assert!(blue, "the week's bars are drawn");
}

#[test]
fn an_empty_window_still_draws() {
    let data = ChartData::of(
        &[],
        &week(),
        Tz::UTC,
        &no_shifts(),
        &vip_targets(),
        &[],
        utc(2026, 11, 23, 0, 5),
    );
    for bytes in [
        week_png(&data).unwrap(),
        first_response_png(&data).unwrap(),
        daily_png(&data).unwrap(),
    ] {
        assert_eq!(decode(&bytes).0, WIDTH);
    }
}

/// A week in Berlin, counted by hand: a day rotation (two agents, 07:00–19:00) and a
/// night one (one agent, 03:00–07:00), so 19:00–03:00 is bare every day. 30 mentions in
/// the day (three answered after 90 minutes, the rest within 5–24), 7 on Saturday night,
/// 2 on Tuesday night; survey answers on Monday (5, 4), Wednesday (2), Friday (5, 5, 3).
/// Run with `CHART_SAMPLES=<dir>` to keep the three PNGs for a look.
#[test]
fn a_staffing_week_is_drawn_from_the_numbers_counted_by_hand() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let at = |d: u32, h: u32, m: u32| {
        berlin
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let window = Window::new(at(16, 0, 0), at(23, 0, 0));
    let mut facts = Vec::new();
    for i in 0..30u32 {
        let waited = if i % 10 == 0 {
            90
        } else {
            5 + i64::from(i % 20)
        };
        let opened = at(16 + i % 7, 8 + i % 10, (i * 7) % 60);
        facts.push(fact(u64::from(i + 1), opened, Some(waited)));
    }
    let nights = [
        (21, 20, 0),
        (21, 21, 30),
        (21, 23, 15),
        (22, 0, 10),
        (22, 1, 0),
        (22, 2, 30),
        (22, 2, 55),
        (17, 22, 0),
        (17, 23, 0),
    ];
    for (n, (d, h, m)) in nights.into_iter().enumerate() {
        facts.push(fact(100 + n as u64, at(d, h, m), None));
    }
    // Ticket i+1 was opened on day 16 + i % 7: answers on tickets 1, 8 (Mon), 3 (Wed),
    // 5, 12, 19 (Fri), two hours after each was opened.
    for (id, score) in [(1, 5), (8, 4), (3, 2), (5, 5), (12, 5), (19, 3)] {
        let f = facts.iter_mut().find(|f| f.id == TicketId(id)).unwrap();
        f.survey = Some(crate::ports::tally::SurveyFact {
            scale: crate::domain::survey::Scale::Csat,
            score,
            at: f.opened_at + Duration::hours(2),
        });
    }
    let shifts = schedule(
        r#"
        [[rotations]]
        name = "day"
        time_zone = "Europe/Berlin"
        members = ["slack:U1", "slack:U2"]
        shifts = [{ days = ["mon-sun"], start = "07:00", end = "19:00" }]
        [[rotations]]
        name = "night"
        time_zone = "Europe/Berlin"
        members = ["slack:U3"]
        shifts = [{ days = ["mon-sun"], start = "03:00", end = "07:00" }]
        "#,
    );
    let csat = crate::reports::csat_by_day(&facts, &window, berlin);
    let data = ChartData::of(
        &facts,
        &window,
        berlin,
        &shifts,
        &vip_targets(),
        &csat,
        at(23, 0, 5),
    );

    let week = &data.week;
    assert_eq!(week.total, 39);
    assert_eq!(week.uncovered.len(), 7 * 8);
    assert_eq!(week.coverage[10], Some(2.0), "Mon 10:00");
    assert_eq!(week.coverage[4], Some(1.0), "Mon 04:00");
    assert_eq!(week.coverage[20], Some(0.0), "Mon 20:00");
    assert_eq!(
        week.largest_gap,
        Some(Gap {
            start: 5 * 24 + 19,
            hours: 8,
            mentions: 7
        })
    );
    // 7 of 39 is 17.9 %.
    assert_eq!(
        data.gap_sentence,
        "18 % of mentions arrive Sat 19:00–03:00 with nobody on shift"
    );
    let hour = |h: u32| data.first_response.iter().find(|r| r.hour == h).unwrap();
    assert_eq!((hour(8).answered, hour(8).median_minutes), (3, Some(90.0)));
    // Hour 9: tickets 2, 12, 22 waited 6, 16 and 6 minutes.
    assert_eq!((hour(9).answered, hour(9).median_minutes), (3, Some(6.0)));
    let day = |d: u32| data.daily.iter().find(|x| x.date.day() == d).unwrap();
    let sla = |d: u32| (day(d).received, day(d).answered, day(d).sla_percent);
    assert_eq!(
        sla(16),
        (5, 5, Some(80.0)),
        "Mon: ticket 1 waited 90 minutes"
    );
    assert_eq!(
        sla(17),
        (7, 5, Some(100.0)),
        "Tue: two at night, unanswered"
    );
    assert_eq!(
        sla(19),
        (4, 4, Some(75.0)),
        "Thu: ticket 11 waited 90 minutes"
    );
    assert_eq!(sla(21), (7, 4, Some(100.0)), "Sat: three at night");
    assert_eq!(
        sla(22),
        (8, 4, Some(75.0)),
        "Sun: four at night, ticket 21 late"
    );
    assert_eq!(day(16).csat, Some(4.5));
    assert_eq!(day(18).csat, Some(2.0));
    assert!((day(20).csat.unwrap() - 13.0 / 3.0).abs() < 1e-9);
    assert_eq!(day(17).csat, None);

    for (name, bytes) in [
        ("week", week_png(&data).unwrap()),
        ("first-response", first_response_png(&data).unwrap()),
        ("daily", daily_png(&data).unwrap()),
    ] {
        assert_eq!(decode(&bytes).0, WIDTH, "{name}");
        if let Ok(dir) = std::env::var("CHART_SAMPLES") {
            std::fs::write(format!("{dir}/staffing-{name}.png"), &bytes).unwrap();
        }
    }
}
