//! Pushes N mentions through fake Mastodon → the sled store → fake Slack, in one process,
//! with the real watcher and outbox sender, and prints:
//! - mentions/s ingested (visible on Mastodon → stored as tickets, flushed),
//! - p50/p99 latency from "visible on the fake Mastodon" to "card posted on the fake Slack"
//!   (the fake Slack's message ts is its receive time; no rate limiting in the fake),
//! - peak RSS of the bot alone: a second pass runs the real `mentionbridge` binary as its
//!   own process against the same kind of load and reads its VmHWM.
//!
//! On PostgreSQL (a throwaway cluster from the system's binaries, or
//! `MENTIONBRIDGE_TEST_DATABASE_URL`): the same burst, outbox jobs/s with one, two and
//! three senders sharing the queue, and the failover time of two replica processes
//! over repeated SIGKILLs of the one holding the watcher.
//!
//! `cargo bench --bench pipeline` (N=10000), or `BENCH_MENTIONS=2000 cargo bench ...`;
//! `BENCH_ONLY=postgres` runs the PostgreSQL passes alone, `BENCH_ONLY=sled` the two
//! in-process passes on sled, `BENCH_ONLY=memory` the bot in its own process,
//! `BENCH_ONLY=failover` the failover pass alone, `BENCH_ONLY=ingest` the group commit
//! passes alone (see `ingest_passes`), `BENCH_ONLY=pacing` a burst of 30 into one
//! channel with Slack's per-channel pace off and on, `BENCH_ONLY=streaming` mentions
//! pushed on Mastodon's stream against polled,
//! `BENCH_ONLY=languages` language detections per second on the labelled sample,
//! `BENCH_ONLY=million` the steady costs with a million tickets in the store
//! (`BENCH_TICKETS` to change the number), `BENCH_ONLY=million-postgres` the same on
//! PostgreSQL (100,000 tickets by default).
//! Poll interval 0.1 s and outbox concurrency 16 (see `bench_config`).

#[path = "../tests/fakes/mod.rs"]
mod fakes;
/// `BENCH_ONLY=million`: the steady costs with a million tickets in the store.
#[path = "million/mod.rs"]
mod million;
/// A real PostgreSQL for the `postgres` passes (a throwaway cluster, as in the tests).
#[path = "../tests/integration/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use fakes::mastodon::FakeMastodon;
use fakes::slack::FakeSlack;
use mentionbridge::chat::slack::Slack;
use mentionbridge::config::Config;
use mentionbridge::domain::{Desk, Platform};
use mentionbridge::ports::SharedStore;
use mentionbridge::ports::Surface;
use mentionbridge::ports::{Publisher, Source};
use mentionbridge::runtime::desk::DeskService;
use mentionbridge::runtime::outbox::OutboxSender;
use mentionbridge::runtime::watcher::watch_source;
use mentionbridge::sources::mastodon::Mastodon;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};

fn peak_rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Ok(spec) = std::env::var(million::PROBE) {
        return million::probe(spec).await;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: usize = std::env::var("BENCH_MENTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // `BENCH_ONLY=render` or `BENCH_ONLY=scheduler` runs only that pass (quick
    // before/after comparisons).
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("render") => return render_pass(),
        Ok("scheduler") => return scheduler_pass(n).await,
        Ok("postgres") => return postgres_passes(n).await,
        Ok("memory") => return bot_process_pass(n).await,
        Ok("pacing") => return pacing_pass(n.min(30)).await,
        Ok("streaming") => return streaming_pass().await,
        Ok("million") => return million::pass().await,
        Ok("million-postgres") => return million::pass_postgres().await,
        Ok("failover") => return failover_pass(&postgres::Postgres::start(), 10, 5).await,
        Ok("ingest") => return ingest_passes().await,
        Ok("languages") => return languages_pass(),
        Ok("sled") => {
            println!("-- burst: {n} mentions appear on Mastodon at once");
            in_process_pass(n, n, Duration::ZERO, SLED, "").await;
            println!("-- steady: 1000 mentions at 100/s (10 every 100 ms)");
            return in_process_pass(1000, 10, Duration::from_millis(100), SLED, "").await;
        }
        _ => {}
    }
    println!("-- burst: {n} mentions appear on Mastodon at once");
    in_process_pass(n, n, Duration::ZERO, SLED, "").await;
    println!("-- steady: 1000 mentions at 100/s (10 every 100 ms)");
    in_process_pass(1000, 10, Duration::from_millis(100), SLED, "").await;
    println!("-- memory: {n} mentions at once, the bot in its own process");
    bot_process_pass(n).await;
    println!("-- scheduler: SLA rounds over {n} open tickets");
    scheduler_pass(n).await;
    render_pass();
    languages_pass();
    streaming_pass().await;
    pacing_pass(n.min(30)).await;
    postgres_passes(n).await;
    ingest_passes().await;
}

/// `n` distinct mentions of the brand, all made at `at`.
fn bench_mentions(
    n: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<mentionbridge::domain::Mention> {
    use mentionbridge::domain::{Author, Mention, Visibility};
    (0..n)
        .map(|i| Mention {
            platform: Platform::Mastodon,
            network: None,
            account: "brand".into(),
            remote_id: i.to_string(),
            url: format!("https://m.example/{i}"),
            author: Author {
                handle: format!("c{i}"),
                name: format!("C {i}"),
                profile_url: String::new(),
                id: None,
                followers: None,
            },
            text: "where is my order".into(),
            language: Some("en".into()),
            created_at: at,
            in_reply_to: None,
            visibility: Visibility::Public,
            reply_context: None,
            external_id: None,
            detected_language: None,
        })
        .collect()
}

/// The `[store]` section of the embedded default.
const SLED: &str = "[store]\npath = \"bench.sled\"\n";

/// A `[store]` section for the PostgreSQL database in `${DBURL}`, with `lease_secs`.
fn pg_store(lease_secs: u64) -> String {
    format!(
        "[store]\nbackend = \"postgres\"\nurl = \"${{DBURL}}\"\ntls = \"disable\"\npool_size = 16\nlease_secs = {lease_secs}\n"
    )
}

async fn postgres_passes(n: usize) {
    let pg = postgres::Postgres::start();
    println!("-- postgres burst: {n} mentions appear on Mastodon at once");
    in_process_pass(n, n, Duration::ZERO, &pg_store(15), &pg.fresh_database()).await;
    println!("-- postgres steady: 1000 mentions at 100/s (10 every 100 ms)");
    in_process_pass(
        1000,
        10,
        Duration::from_millis(100),
        &pg_store(15),
        &pg.fresh_database(),
    )
    .await;
    for senders in 1..=3 {
        println!("-- postgres outbox: {n} card jobs, {senders} sender(s) sharing the queue");
        outbox_pass(&pg.fresh_database(), n, senders).await;
    }
    println!(
        "-- postgres failover: two replica processes, the watcher's holder SIGKILLed 10 times"
    );
    failover_pass(&pg, 10, 5).await;
}

/// `n` card jobs already queued in PostgreSQL, sent by `senders` outbox senders, each
/// with a pool of its own (as replicas would), to one fake Slack.
async fn outbox_pass(url: &str, n: usize, senders: usize) {
    use chrono::Utc;
    let slack = FakeSlack::start().await;
    let mastodon = FakeMastodon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = parsed_config(&slack, &mastodon, &pg_store(15), url, dir.path());
    let store = mentionbridge::store::open(&config.store, config.routes.clone())
        .await
        .unwrap();
    let now = Utc::now();
    let mentions = bench_mentions(n, now);
    for chunk in mentions.chunks(1000) {
        store.ingest("bench", chunk, None, now).await.unwrap();
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut running = Vec::new();
    let started = Instant::now();
    for k in 0..senders {
        let own = mentionbridge::store::open(&config.store, config.routes.clone())
            .await
            .unwrap();
        let wake = Arc::new(Notify::new());
        let desk = Arc::new(DeskService::new(own.clone(), Desk::new(), wake.clone()));
        let surface: Arc<dyn Surface> =
            Arc::new(Slack::new(config.slack.as_ref().unwrap(), desk).unwrap());
        let sender = Arc::new(
            OutboxSender::new(own, vec![surface], Vec::new(), wake, config.outbox.clone())
                .with_claimant(format!("sender-{k}")),
        );
        running.push(tokio::spawn(sender.run(stop_rx.clone())));
    }
    while slack.messages("C0SUPPORT").len() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for r in running {
        let _ = r.await;
    }
    let posted = slack.messages("C0SUPPORT").len();
    assert_eq!(posted, n, "every job sent exactly once");
    assert_eq!(store.pending_job_count().await.unwrap(), 0);
    println!(
        "outbox on postgres, {senders} sender(s): {:.0} jobs/s ({n} cards in {secs:.2} s)",
        n as f64 / secs
    );
}

/// Two replica processes of the real binary on one database; the one holding the
/// watcher is SIGKILLed `kills` times (a fresh replica takes its place each time), and
/// the time until the survivor holds the watcher, and until a mention made right after
/// the kill has its card, is measured.
async fn failover_pass(pg: &postgres::Postgres, kills: usize, lease_secs: u64) {
    let mastodon = FakeMastodon::start().await;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = pg.fresh_database();
    let config = dir.path().join("bot-config.toml");
    std::fs::write(
        &config,
        bench_config(&slack, &mastodon).replace(SLED, &pg_store(lease_secs)),
    )
    .unwrap();
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mentionbridge"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("B", slack.bot_token())
            .env("A", slack.app_token())
            .env("M", mastodon.token())
            .env("DBURL", &url)
            .env("MENTIONBRIDGE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let watcher_holder = || -> Option<u32> {
        pg.psql_in(
            &url,
            "SELECT holder FROM leases WHERE duty LIKE 'watcher:%' AND expires_at > clock_timestamp()",
        )
        .lines()
        .next()
        .and_then(|h| h.rsplit('-').nth(1)?.parse().ok())
    };
    let mut bots = vec![spawn(), spawn()];
    // The replicas make the schema as they start: the leases are looked at once it is there.
    while pg.psql_in(&url, "SELECT to_regclass('leases') IS NOT NULL") != "t" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut to_lease = Vec::new();
    let mut to_card = Vec::new();
    for kill in 0..kills {
        let holder = loop {
            if let Some(pid) = watcher_holder() {
                if bots.iter().any(|b| b.id() == Some(pid)) {
                    break pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Both replicas up and connected before the kill.
        while slack.open_connections() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // At a moment unrelated to the holder's renewals: somewhere within one lease.
        let jitter = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            % (lease_secs * 1000);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        let cards_before = slack.messages("C0SUPPORT").len();
        let at = bots.iter().position(|b| b.id() == Some(holder)).unwrap();
        let mut dead = bots.remove(at);
        let killed = Instant::now();
        dead.kill().await.unwrap();
        mastodon.add_mention(&format!("failover{kill}"), "is anyone there?");
        let mut leased = None;
        loop {
            if leased.is_none() && watcher_holder().is_some_and(|p| p != holder) {
                leased = Some(killed.elapsed());
            }
            if leased.is_some() && slack.messages("C0SUPPORT").len() > cards_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let carded = killed.elapsed();
        to_lease.push(leased.unwrap().as_secs_f64());
        to_card.push(carded.as_secs_f64());
        bots.push(spawn());
    }
    to_lease.sort_by(|a, b| a.partial_cmp(b).unwrap());
    to_card.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "failover (lease {lease_secs} s, {kills} kills): watcher taken over in min {:.2} s, median {:.2} s, max {:.2} s; the mention made at the kill carded in median {:.2} s, max {:.2} s",
        to_lease[0],
        percentile(&to_lease, 0.5),
        to_lease.last().unwrap(),
        percentile(&to_card, 0.5),
        to_card.last().unwrap()
    );
}

/// Rendering one ticket's cards (Slack blocks and fallback text, the Discord embed,
/// serialised as they are sent) for an ordinary post and for a hostile 10,000-character
/// one that must be escaped and cut to every limit.
fn render_pass() {
    use chrono::Utc;
    use mentionbridge::chat::discord::card as discord;
    use mentionbridge::chat::slack::card as slack;
    use mentionbridge::domain::{Author, Mention, Ticket, TicketId, Visibility};
    println!("-- render: one ticket's Slack and Discord cards");
    let ordinary = "Hi! My order #1234 never arrived, can you help? @brand".to_string();
    let hostile = "<!channel> @everyone [bank](https://evil.example) 👨‍👩‍👧 refund &amp; ".repeat(160);
    for (label, text) in [("ordinary post", ordinary), ("hostile 10k post", hostile)] {
        let ticket = Ticket::open(
            TicketId(1),
            Mention {
                platform: Platform::Mastodon,
                network: None,
                account: "brand".into(),
                remote_id: "1".into(),
                url: "https://m.example/@c/1".into(),
                author: Author {
                    handle: "customer@m.example".into(),
                    name: "A <!here> customer".into(),
                    profile_url: "https://m.example/@c".into(),
                    id: None,
                    followers: None,
                },
                text,
                language: None,
                created_at: Utc::now(),
                in_reply_to: None,
                visibility: Visibility::Public,
                reply_context: None,
                external_id: None,
                detected_language: None,
            },
            Utc::now(),
        );
        let rounds = 2000;
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            let blocks = slack::card_blocks(&ticket, true, &[], &[]);
            bytes += serde_json::to_string(&blocks).unwrap().len();
            bytes += slack::card_text(&ticket).len();
            bytes += serde_json::to_string(&discord::card_embed(&ticket, &[]))
                .unwrap()
                .len();
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        println!(
            "render {label}: {per:.1} µs per ticket (both surfaces), {} bytes sent",
            bytes / rounds
        );
    }
}

/// Language detection as the desk does it before storing a mention (cleaning, the
/// too-short rule, the detector): the labelled sample's posts per second on one thread,
/// and the time for one long post (a 10,000-character paste).
fn languages_pass() {
    use mentionbridge::domain::language::LanguagePolicy;
    use mentionbridge::runtime::language::Languages;
    println!("-- languages: detection on one thread");
    let languages = Languages::new(
        std::sync::Arc::new(mentionbridge::language::Lingua::new()),
        LanguagePolicy::default(),
    );
    let started = Instant::now();
    languages.judge("the first detection reads the models");
    println!(
        "languages: first detection {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let posts: Vec<&str> = include_str!("../tests/corpus/languages.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text))
        .collect();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        for text in &posts {
            std::hint::black_box(languages.judge(text));
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "languages: {:.0} short posts per second ({} posts x {rounds})",
        (posts.len() * rounds) as f64 / took,
        posts.len()
    );
    let long = "Mein Paket ist immer noch nicht angekommen, bitte helft mir. ".repeat(165);
    let started = Instant::now();
    std::hint::black_box(languages.judge(&long));
    println!(
        "languages: one {}-character post {:.1} ms",
        long.chars().count(),
        started.elapsed().as_secs_f64() * 1e3
    );
}

/// The SLA scheduler over `n` open tickets: a quiet round (nothing due), then the round
/// in which every one of them breaches (one transaction per ticket), then quiet again.
async fn scheduler_pass(n: usize) {
    use chrono::{Duration as Span, Utc};
    use mentionbridge::runtime::scheduler::Scheduler;
    let store: SharedStore = Arc::new(mentionbridge::store::SledStore::temporary().unwrap());
    let start = Utc::now();
    let mentions = bench_mentions(n, start);
    for chunk in mentions.chunks(1000) {
        store.ingest("bench", chunk, None, start).await.unwrap();
    }
    let desk = Arc::new(DeskService::new(
        store.clone(),
        Desk::new(),
        Arc::new(Notify::new()),
    ));
    let scheduler = Scheduler {
        store: store.clone(),
        desk,
        wake_outbox: Arc::new(Notify::new()),
        brand: "BrandCo".into(),
        handoff_digest: false,
        release_claims_at_handoff: false,
        surface: mentionbridge::domain::SurfaceKind::Slack,
        clock: Arc::new(mentionbridge::ports::SystemClock),
    };
    for (label, at) in [
        ("quiet round", start + Span::minutes(1)),
        ("every ticket breaches", start + Span::minutes(61)),
        ("quiet again", start + Span::minutes(62)),
    ] {
        // A round takes at most `ROUND_LIMIT` due tickets; the next follows at once
        // while more are due, as the scheduler's loop does.
        let began = Instant::now();
        let mut rounds = 1;
        while scheduler
            .tick(at)
            .await
            .unwrap()
            .is_some_and(|next| next <= at)
        {
            rounds += 1;
        }
        println!(
            "scheduler {label}: {:.0} ms ({rounds} round(s)) for {n} open tickets; outbox now {} jobs",
            began.elapsed().as_secs_f64() * 1000.0,
            store.jobs().await.unwrap().len()
        );
    }
}

/// The real watcher, store and outbox sender in this process, against in-process fakes.
/// `store` is the `[store]` section; `db_url` what `${DBURL}` in it stands for.
async fn in_process_pass(n: usize, burst: usize, pause: Duration, store: &str, db_url: &str) {
    in_process_pass_with(n, burst, pause, store, db_url, Pace::Off, false).await
}

/// [`in_process_pass`]; with `paced`, the fake Slack refuses a second post to the channel
/// within a second (as Slack does) and the desk keeps its default pace ahead of that;
/// with `streaming`, Mastodon's mentions come by its streaming API (polled only every
/// 5 minutes as reconciliation) instead of by polls every 0.1 s.
/// Who paces posts into a channel: nobody (the bench's default: the desk's own time),
/// the fake Slack alone (a 429 for a post faster than one a second per channel, the desk
/// not pacing itself), or both (the desk at its default pace, as the bot runs).
#[derive(Clone, Copy, PartialEq)]
enum Pace {
    Off,
    SlackOnly,
    Both,
}

async fn in_process_pass_with(
    n: usize,
    burst: usize,
    pause: Duration,
    store: &str,
    db_url: &str,
    pace: Pace,
    streaming: bool,
) {
    let mastodon = FakeMastodon::start().await;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = parsed_config(&slack, &mastodon, store, db_url, dir.path());
    config.mastodon.as_mut().unwrap().streaming = streaming;
    if pace != Pace::Off {
        slack.set_channel_pace(Some(Duration::from_secs(1)));
    }
    if pace == Pace::Both {
        let defaults = Config::parse(
            &dir.path().join("defaults.toml"),
            &bench_config(&slack, &mastodon)
                .replace("messages_per_second = 1000\nmessage_burst = 100\n", ""),
            &|_| Some("x".into()),
        )
        .expect("bench config");
        let (ours, theirs) = (config.slack.as_mut().unwrap(), defaults.slack.unwrap());
        ours.messages_per_second = theirs.messages_per_second;
        ours.message_burst = theirs.message_burst;
    }

    let store = mentionbridge::store::open(&config.store, config.routes.clone())
        .await
        .unwrap();
    let source = Arc::new(
        Mastodon::connect(config.mastodon.as_ref().unwrap())
            .await
            .unwrap(),
    );
    let wake = Arc::new(Notify::new());
    let desk = Arc::new(DeskService::new(
        store.clone(),
        Desk::new().with_rules(Platform::Mastodon, source.text_rules()),
        wake.clone(),
    ));
    let surface = Arc::new(
        Slack::new(
            config.slack.as_ref().expect("bench config has [slack]"),
            desk,
        )
        .unwrap(),
    );
    surface.verify().await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let src: Arc<dyn Source> = source.clone();
    let surfaces: Vec<Arc<dyn Surface>> = vec![surface];
    let watcher = tokio::spawn(watch_source(
        src,
        store.clone(),
        wake.clone(),
        Duration::from_secs(5),
        surfaces.clone(),
        Arc::new(mentionbridge::ports::SystemClock),
        stop_rx.clone(),
    ));
    let publishers: Vec<Arc<dyn Publisher>> = vec![source.clone()];
    let sender = Arc::new(OutboxSender::new(
        store.clone(),
        surfaces,
        publishers,
        wake,
        config.outbox.clone(),
    ));
    let sending = tokio::spawn(sender.run(stop_rx));

    // Let the first poll fix the cursor at "the beginning".
    tokio::time::sleep(Duration::from_millis(300)).await;
    if streaming {
        // And the stream connect, and its catch-up poll pass.
        mastodon.wait_for_streams(1, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Remember when each mention became visible on Mastodon.
    let mut visible: HashMap<String, f64> = HashMap::with_capacity(n);
    let started = Instant::now();
    offer_load(&mastodon, n, burst, pause, |id| {
        visible.insert(id, unix_now());
    })
    .await;
    while store.ticket_count().await.unwrap() < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    while slack.messages("C0SUPPORT").len() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total_secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = tokio::join!(watcher, sending);

    let mut latencies: Vec<f64> = slack
        .messages("C0SUPPORT")
        .iter()
        .filter_map(|m| {
            let remote = m.metadata.as_ref()?["event_payload"]["remote_id"]
                .as_str()?
                .to_string();
            let posted: f64 = m.ts.parse().ok()?;
            Some((posted - visible.get(&remote)?) * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(latencies.len(), n, "every mention got exactly one card");
    println!(
        "ingested: {:.0} mentions/s ({:.2} s until all {n} were stored and flushed)",
        n as f64 / ingest_secs,
        ingest_secs
    );
    println!(
        "end to end: {:.0} cards/s ({:.2} s until all {n} cards were posted)",
        n as f64 / total_secs,
        total_secs
    );
    println!(
        "visible on Mastodon -> card posted: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    if pace != Pace::Off {
        println!(
            "Slack answered {} posts with 429 (the desk's own pace: {} a second, burst {})",
            slack.rate_limited(),
            config.slack.as_ref().unwrap().messages_per_second,
            config.slack.as_ref().unwrap().message_burst
        );
    }
    println!(
        "peak RSS so far (bot + both fakes in one process): {:.1} MiB",
        peak_rss_mib("self")
    );
}

/// Streaming against polling: 1,000 mentions at 100/s, each pushed by the fake Mastodon
/// on its stream, to the card on the fake Slack.
async fn streaming_pass() {
    for (streaming, label) in [
        (
            true,
            "-- streaming: 1000 mentions at 100/s (10 every 100 ms) pushed on Mastodon's stream",
        ),
        (false, "-- the same by polling every 0.1 s"),
    ] {
        println!("{label}");
        let pause = Duration::from_millis(100);
        in_process_pass_with(1000, 10, pause, SLED, "", Pace::Off, streaming).await;
    }
}

/// A burst into one channel with Slack's per-channel pace on and off: the time to the
/// last card, and the 429s drawn.
async fn pacing_pass(n: usize) {
    println!("-- pacing: {n} mentions at once into one channel, Slack's pace off");
    in_process_pass_with(n, n, Duration::ZERO, SLED, "", Pace::Off, false).await;
    println!("-- pacing: the same with Slack's pace on (one message a second per channel), the desk's off");
    in_process_pass_with(n, n, Duration::ZERO, SLED, "", Pace::SlackOnly, false).await;
    println!("-- pacing: Slack's pace on and the desk's own (as the bot runs)");
    in_process_pass_with(n, n, Duration::ZERO, SLED, "", Pace::Both, false).await;
}

/// The same load against the real binary in its own process, to read the bot's own
/// memory high-water mark (the fakes keep every message and request they saw).
async fn bot_process_pass(n: usize) {
    let mastodon = FakeMastodon::start().await;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bot-config.toml");
    std::fs::write(&config, bench_config(&slack, &mastodon)).unwrap();
    let mut bot = tokio::process::Command::new(env!("CARGO_BIN_EXE_mentionbridge"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("B", slack.bot_token())
        .env("A", slack.app_token())
        .env("M", mastodon.token())
        .env(
            "MENTIONBRIDGE_LOG",
            std::env::var("BENCH_BOT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = bot.id().unwrap().to_string();
    while slack.open_connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    offer_load(&mastodon, n, n, Duration::ZERO, |_| {}).await;
    while slack.messages("C0SUPPORT").len() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(&pid);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = bot.wait().await;
    println!("bot as its own process: {n} cards in {secs:.2} s; peak RSS {rss:.1} MiB");
}

/// [`bench_config`] with `store` as its `[store]` section, parsed with the fakes' tokens
/// and `db_url` for `${DBURL}`.
fn parsed_config(
    slack: &FakeSlack,
    mastodon: &FakeMastodon,
    store: &str,
    db_url: &str,
    dir: &std::path::Path,
) -> Config {
    let text = bench_config(slack, mastodon).replace(SLED, store);
    let tokens: HashMap<&str, String> = HashMap::from([
        ("B", slack.bot_token().to_string()),
        ("A", slack.app_token().to_string()),
        ("M", mastodon.token().to_string()),
        ("DBURL", db_url.to_string()),
    ]);
    Config::parse(&dir.join("bench.toml"), &text, &|v| tokens.get(v).cloned())
        .expect("bench config")
}

/// The config both passes use: Socket Mode against the fakes, secrets from B, A and M.
fn bench_config(slack: &FakeSlack, mastodon: &FakeMastodon) -> String {
    format!(
        r#"
{SLED}[slack]
api_url = "{}"
bot_token = "${{B}}"
app_token = "${{A}}"
channel = "C0SUPPORT"
agent_user_ids = ["U0ANA"]
# The fake Slack does not pace posts here: the bench measures the desk's own time.
messages_per_second = 1000
message_burst = 100
[mastodon]
instance_url = "{}"
access_token = "${{M}}"
poll_interval_secs = 0.1
[outbox]
concurrency = 16
"#,
        slack.api_url(),
        mastodon.url()
    )
}

/// Offer the load in bursts of `burst` every `pause`, telling `seen` each mention's
/// status id as it becomes visible.
async fn offer_load(
    mastodon: &FakeMastodon,
    n: usize,
    burst: usize,
    pause: Duration,
    mut seen: impl FnMut(String),
) {
    let mut added = 0;
    while added < n {
        let burst = (n - added).min(burst);
        for i in 0..burst {
            let ids = mastodon.add_mention(
                &format!("customer{}", added + i),
                "my order is late, please help",
            );
            seen(ids.status_id);
        }
        added += burst;
        tokio::time::sleep(pause).await;
    }
}

/// What the ingest passes store into: a fresh sled directory or PostgreSQL database per
/// run.
#[derive(Clone, Copy)]
enum IngestBackend<'a> {
    Sled,
    Postgres(&'a postgres::Postgres),
}

impl IngestBackend<'_> {
    fn label(self) -> &'static str {
        match self {
            IngestBackend::Sled => "sled",
            IngestBackend::Postgres(_) => "postgres",
        }
    }

    /// A fresh, empty store (the directory it lives in, for sled, goes with it).
    async fn open(self) -> (SharedStore, Option<tempfile::TempDir>) {
        match self {
            IngestBackend::Sled => {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    mentionbridge::store::SledStore::open(&dir.path().join("store.sled")).unwrap();
                (Arc::new(store), Some(dir))
            }
            IngestBackend::Postgres(pg) => {
                let config = mentionbridge::config::PostgresConfig {
                    url: mentionbridge::config::Secret::new(pg.fresh_database()),
                    pool_size: 16,
                    tls: mentionbridge::config::PgTls::Disable,
                    ca_file: None,
                    connect_timeout: Duration::from_secs(10),
                };
                let store = mentionbridge::store::PostgresStore::connect(&config)
                    .await
                    .unwrap();
                (Arc::new(store), None)
            }
        }
    }
}

/// Group commit (`BENCH_ONLY=ingest`): distinct mentions (100,000, or `BENCH_MENTIONS`)
/// stored by 1, 16 and 256 concurrent callers handing over one mention per call (as
/// streams do) and by 1 and 16 callers handing over pages of 40 (as polls do), each call
/// followed by a flush as the watcher does; on sled and on PostgreSQL, through the
/// grouped store `store::open` gives, and for comparison on the bare backend (one
/// transaction and one flush per call). A run ends when every mention is stored or
/// after `BENCH_INGEST_SECS` (10); mentions/s stored and flushed, median of 3 runs.
async fn ingest_passes() {
    let n: usize = std::env::var("BENCH_MENTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let limit = Duration::from_secs_f64(
        std::env::var("BENCH_INGEST_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10.0),
    );
    let pg = postgres::Postgres::start();
    let shapes = [(1, 1), (16, 1), (256, 1), (1, 40), (16, 40)];
    for backend in [IngestBackend::Sled, IngestBackend::Postgres(&pg)] {
        for grouped in [true, false] {
            let how = if grouped { "grouped" } else { "bare" };
            println!(
                "-- ingest on {} ({how}): {n} mentions, each call then a flush",
                backend.label()
            );
            for (callers, per_call) in shapes {
                let mut runs = Vec::new();
                for _ in 0..3 {
                    let (store, _dir) = backend.open().await;
                    let store = if grouped {
                        mentionbridge::store::GroupCommit::wrap(store)
                    } else {
                        store
                    };
                    runs.push(ingest_run(store, n, callers, per_call, limit).await);
                }
                runs.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
                let (stored, rate) = runs[1];
                let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.1)).collect();
                println!(
                    "ingest {} {how}, {callers} caller(s) x {per_call} mention(s) per call: {rate:.0} mentions/s stored and flushed (median; runs {}; {stored} mentions in the median run)",
                    backend.label(),
                    all.join(", ")
                );
            }
        }
    }
}

/// `callers` tasks take the next `per_call` of `n` distinct mentions until none are left
/// (or `limit` has passed), each storing them as its own source with the last one's id
/// as the cursor, then flushing. Mentions stored, and mentions/s.
async fn ingest_run(
    store: SharedStore,
    n: usize,
    callers: usize,
    per_call: usize,
    limit: Duration,
) -> (usize, f64) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mentions = Arc::new(bench_mentions(n, chrono::Utc::now()));
    let taken = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for c in 0..callers {
        let (store, mentions, taken) = (store.clone(), mentions.clone(), taken.clone());
        running.spawn(async move {
            let source = format!("stream:{c}");
            let mut stored = 0;
            while started.elapsed() < limit {
                let from = taken.fetch_add(per_call, Ordering::SeqCst);
                if from >= mentions.len() {
                    break;
                }
                let page = &mentions[from..(from + per_call).min(mentions.len())];
                let cursor = page.last().map(|m| m.remote_id.as_str());
                let done = store
                    .ingest(&source, page, cursor, chrono::Utc::now())
                    .await
                    .unwrap();
                store.flush().await.unwrap();
                assert_eq!(done.new_tickets.len(), page.len());
                stored += page.len();
            }
            stored
        });
    }
    let stored: usize = running.join_all().await.into_iter().sum();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(store.ticket_count().await.unwrap(), stored);
    (stored, stored as f64 / secs)
}
