//! `BENCH_ONLY=million`: the desk's steady costs with a long history. A generator writes
//! `BENCH_TICKETS` tickets (default 1,000,000) received evenly over the last two years
//! into a new sled store, as the store lays its records out (tickets, dedupe keys, audit
//! lines), each made by the desk's own pure functions: intake, the card posted, and for
//! nine in ten an agent's reply published and the ticket resolved; the open tenth has
//! its SLA steps taken. The store then has no indexes, like one made before them: the
//! first open builds them (timed). Then five fresh processes (this binary again, so each
//! starts cold and its RSS is its own) open the store and measure, each five times:
//! start-up (open to the first scheduler round done), a quiet scheduler round,
//! `/mentions stats 30d` through the desk, the open list and autocomplete as the chat
//! surfaces build them, and the `/metrics` text. Medians are printed beside their
//! targets, with the peak RSS and the store's size on disk.
//! `BENCH_STORE=<dir>` keeps the sled store there and reuses it on the next run.
//! `BENCH_ONLY=million-postgres` does the same on PostgreSQL (a throwaway cluster, as in
//! the tests; the tickets imported as `store copy` does), by default with 100,000
//! tickets, and times migration 3's fill of the same database taken back to version 2.

use chrono::{DateTime, Duration as Span, Utc};
use mentionbridge::chat::discord::card as discord;
use mentionbridge::chat::slack::card as slack;
use mentionbridge::domain::intake::{self, Intake, Known};
use mentionbridge::domain::oncall::OnCall;
use mentionbridge::domain::oncall::Schedule;
use mentionbridge::domain::routes::Routes;
use mentionbridge::domain::sla::{apply_steps, due_steps};
use mentionbridge::domain::text::TextRules;
use mentionbridge::domain::{
    apply, apply_system, AgentAction, AgentRef, AuditEntry, Desk, Mention, Platform, SurfaceKind,
    SystemEvent, Ticket, TicketId, Transition,
};
use mentionbridge::ports::{AgentDesk, SharedStore};
use mentionbridge::runtime::desk::DeskService;
use mentionbridge::runtime::scheduler::Scheduler;
use mentionbridge::store::SledStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// The variable that turns this binary into one measuring process, on the store it
/// names (`sled:<path>` or `postgres:<url>`).
pub const PROBE: &str = "BENCH_MILLION_PROBE";

/// Where the measured store is.
#[derive(Clone)]
enum Place {
    Sled(PathBuf),
    Postgres(String),
}

impl Place {
    fn parse(spec: &str) -> Place {
        match spec.split_once(':') {
            Some(("postgres", url)) => Place::Postgres(url.to_string()),
            Some(("sled", path)) => Place::Sled(path.into()),
            _ => panic!("{PROBE} is sled:<path> or postgres:<url>"),
        }
    }

    fn spec(&self) -> String {
        match self {
            Place::Sled(path) => format!("sled:{}", path.display()),
            Place::Postgres(url) => format!("postgres:{url}"),
        }
    }

    async fn open(&self) -> SharedStore {
        match self {
            Place::Sled(path) => Arc::new(
                SledStore::open(path)
                    .unwrap()
                    .with_routes(Routes::default()),
            ),
            Place::Postgres(url) => Arc::new(
                mentionbridge::store::PostgresStore::connect(&pg_config(url))
                    .await
                    .unwrap()
                    .with_routes(Routes::default()),
            ),
        }
    }
}

fn pg_config(url: &str) -> mentionbridge::config::PostgresConfig {
    mentionbridge::config::PostgresConfig {
        url: mentionbridge::config::Secret::new(url.to_string()),
        pool_size: 4,
        tls: mentionbridge::config::PgTls::Disable,
        ca_file: None,
        connect_timeout: std::time::Duration::from_secs(10),
    }
}

const RUNS: usize = 5;
const AGENT: &str = "U0ANA";

fn agent() -> AgentRef {
    AgentRef {
        surface: SurfaceKind::Slack,
        user_id: AGENT.into(),
        name: "Ana".into(),
        roles: vec![],
    }
}

fn desk() -> Desk {
    let mut desk = Desk::new()
        .with_rules(Platform::Mastodon, TextRules::default())
        .with_rules(Platform::Bluesky, TextRules::bluesky())
        .with_rules(Platform::X, TextRules::x());
    desk.roster_mut(SurfaceKind::Slack).user_ids = [AGENT.to_string()].into_iter().collect();
    desk
}

/// Mention `i` of the load: the pipeline's mention, numbered, on one of the three
/// platforms we answer on.
fn mention(i: usize, at: DateTime<Utc>) -> Mention {
    let mut m = super::bench_mentions(1, at).remove(0);
    m.platform = [Platform::Mastodon, Platform::Bluesky, Platform::X][i % 3];
    m.remote_id = format!("m{i}");
    m.url = format!("https://m.example/@c{i}/{i}");
    m.author.handle = format!("customer{i}");
    m.author.name = format!("Customer {i}");
    m.text = format!("@brand order #{i} is late, where is it? Please help, it was due last week.");
    m
}

fn scheduler(store: &SharedStore, desk: Arc<DeskService>) -> Scheduler {
    Scheduler {
        store: store.clone(),
        desk,
        wake_outbox: Arc::new(Notify::new()),
        brand: "BrandCo".into(),
        handoff_digest: false,
        release_claims_at_handoff: false,
        surface: SurfaceKind::Slack,
        clock: Arc::new(mentionbridge::ports::SystemClock),
    }
}

fn desk_service(store: &SharedStore) -> Arc<DeskService> {
    Arc::new(
        DeskService::new(store.clone(), desk(), Arc::new(Notify::new()))
            .with_oncall(Schedule::default(), Routes::default()),
    )
}

/// What ticket `i` of the load is, with its dedupe keys and audit lines, made by the
/// desk's own pure functions as the store would have made it: intake, the card posted,
/// and for nine in ten an agent's reply (after 2 to 120 minutes, so some breach the
/// hour) published and the ticket resolved; the open tenth has every SLA step due by
/// a day after `end` already taken, as a running scheduler would have done.
fn record(
    i: usize,
    at: DateTime<Utc>,
    end: DateTime<Utc>,
    routes: &Routes,
    desk: &Desk,
) -> (Ticket, Vec<(String, TicketId)>, Vec<AuditEntry>) {
    let id = TicketId(i as u64 + 1);
    let m = mention(i, at);
    let known = Known {
        seen: false,
        parent: None,
        contacts: &[],
    };
    let Intake::Opened(opened) = intake::admit(&m, known, id, routes, at) else {
        unreachable!("a new post opens a ticket")
    };
    let mut keys: Vec<(String, TicketId)> = m.dedupe_keys().into_iter().map(|k| (k, id)).collect();
    let mut lines = vec![opened.audit];
    let mut step = |tr: Transition| {
        lines.push(tr.audit);
        tr.ticket
    };
    let mut t = step(apply_system(
        &opened.ticket,
        SystemEvent::CardPosted,
        at + Span::minutes(1),
    ));
    if i % 10 != 0 {
        let wait = Span::minutes(2 + (id.0 as i64 * 37) % 119);
        let reply = AgentAction::Reply {
            text: "Sorry! It ships today.".into(),
        };
        t = step(apply(&t, reply, &agent(), desk, at + wait).expect("the agent may reply"));
        let remote_id = format!("r{}-1", id.0);
        keys.extend(
            intake::post_keys(&t.mention, &remote_id)
                .into_iter()
                .map(|k| (k, id)),
        );
        let published = SystemEvent::ReplyPublished {
            seq: 1,
            url: format!("https://m.example/@brand/{remote_id}"),
            remote_id,
        };
        t = step(apply_system(&t, published, at + wait + Span::seconds(1)));
        t = step(
            apply(
                &t,
                AgentAction::Resolve,
                &agent(),
                desk,
                at + Span::hours(3),
            )
            .expect("the agent may resolve"),
        );
    } else {
        // Steps due within a day of `end` too, so no round during the measurement
        // finds one.
        let (policy, by) = (&routes.of(&t).sla, end + Span::days(1));
        while let Some(tr) = apply_steps(
            &t,
            &due_steps(&t, &t.sla, policy, by),
            &OnCall::default(),
            by,
        ) {
            t = step(tr);
        }
    }
    (t, keys, lines)
}

/// Write `n` tickets received evenly over the two years before `end` into a new sled
/// store at `path`, as the store lays its records out (tickets by number, dedupe keys,
/// audit lines by ticket, the ticket counter), in batches: a desk at rest, nothing left
/// in its outbox. The store has no indexes yet; it builds them when it is opened.
fn generate(path: &Path, n: usize, end: DateTime<Utc>) {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .unwrap();
    let tree = |name: &str| db.open_tree(name).unwrap();
    let (tickets, dedupe, audit, meta) =
        (tree("tickets"), tree("dedupe"), tree("audit"), tree("meta"));
    let routes = Routes::default();
    let desk = desk();
    let start = end - Span::days(730);
    let spacing = (end - start) / n.max(1) as i32;
    let mut line = 0u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut t_batch = sled::Batch::default();
        let mut d_batch = sled::Batch::default();
        let mut a_batch = sled::Batch::default();
        for &i in chunk {
            let (t, keys, lines) = record(i, start + spacing * i as i32, end, &routes, &desk);
            t_batch.insert(&t.id.0.to_be_bytes(), serde_json::to_vec(&t).unwrap());
            for (k, id) in keys {
                d_batch.insert(k.as_bytes(), &id.0.to_be_bytes());
            }
            for entry in lines {
                line += 1;
                let k = [entry.ticket.0.to_be_bytes(), line.to_be_bytes()].concat();
                a_batch.insert(k, serde_json::to_vec(&entry).unwrap());
            }
        }
        tickets.apply_batch(t_batch).unwrap();
        dedupe.apply_batch(d_batch).unwrap();
        audit.apply_batch(a_batch).unwrap();
    }
    meta.insert("next_ticket", &(n as u64 + 1).to_be_bytes())
        .unwrap();
    db.flush().unwrap();
}

/// The same tickets as a snapshot, for a PostgreSQL store to import.
fn snapshot(n: usize, end: DateTime<Utc>) -> mentionbridge::store::snapshot::Snapshot {
    let routes = Routes::default();
    let desk = desk();
    let start = end - Span::days(730);
    let spacing = (end - start) / n.max(1) as i32;
    let mut snap = mentionbridge::store::snapshot::Snapshot {
        next_ticket: n as u64 + 1,
        ..Default::default()
    };
    for i in 0..n {
        let (t, keys, lines) = record(i, start + spacing * i as i32, end, &routes, &desk);
        snap.tickets.push(t);
        snap.dedupe.extend(keys);
        snap.audit.extend(lines);
    }
    snap
}

/// Make the store at `place`: generated, then opened once (which builds the indexes of
/// a store made before them, timed).
async fn load(place: &Place, n: usize) {
    let end = Utc::now();
    let began = Instant::now();
    match place {
        Place::Sled(path) => generate(path, n, end),
        Place::Postgres(url) => {
            let store = mentionbridge::store::PostgresStore::connect(&pg_config(url))
                .await
                .unwrap();
            store.import(&snapshot(n, end)).await.unwrap();
        }
    }
    println!(
        "load: {n} tickets generated and written in {:.0} s",
        began.elapsed().as_secs_f64()
    );
    let began = Instant::now();
    let store = place.open().await;
    println!(
        "first open (builds the indexes of a store made before them): {:.1} s",
        began.elapsed().as_secs_f64()
    );
    drop(store);
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
    super::peak_rss_mib("self")
}

/// One measuring process: open the store `spec` names and time what the desk does there.
pub async fn probe(spec: String) {
    let began = Instant::now();
    let store = Place::parse(&spec).open().await;
    let desk = desk_service(&store);
    let scheduler = scheduler(&store, desk.clone());
    scheduler.tick(Utc::now()).await.unwrap();
    let startup = ms(began.elapsed());
    let rss_open = peak_rss_mib();
    let mut times: [Vec<f64>; 5] = Default::default();
    let mut sizes = (0, 0, 0);
    for _ in 0..RUNS {
        let t = Instant::now();
        scheduler.tick(Utc::now()).await.unwrap();
        times[0].push(ms(t.elapsed()));

        let t = Instant::now();
        let stats = desk.stats(&agent(), "30d").await.unwrap();
        times[1].push(ms(t.elapsed()));

        let t = Instant::now();
        let open = desk.open_tickets(slack::LISTED).await.unwrap();
        let list = slack::open_list(&open);
        times[2].push(ms(t.elapsed()));

        let t = Instant::now();
        let typed = desk
            .open_tickets_matching("12", discord::CHOICES)
            .await
            .unwrap();
        let choices = discord::ticket_choices(&typed, "12");
        times[3].push(ms(t.elapsed()));

        let t = Instant::now();
        let metrics = desk.ticket_metrics().await.unwrap();
        times[4].push(ms(t.elapsed()));
        sizes = (stats.len(), list.len() + choices.len(), metrics.len());
    }
    let [quiet, stats, list, auto, metrics] = times.map(median);
    println!(
        "probe startup={startup:.2} quiet={quiet:.3} stats={stats:.2} list={list:.2} auto={auto:.2} metrics={metrics:.2} rss_open={rss_open:.1} rss={:.1} bytes={sizes:?}",
        peak_rss_mib()
    );
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The pass on sled: load, then five measuring processes, then the medians beside the
/// targets and the size on disk.
pub async fn pass() {
    let n = tickets(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // `BENCH_STORE=<dir>`: the store is kept there, and made only if it is not there yet
    // (so a second run measures the same store without the minutes of loading it).
    let kept = std::env::var_os("BENCH_STORE").map(PathBuf::from);
    let path = kept
        .clone()
        .unwrap_or_else(|| dir.path().join("million.sled"));
    println!(
        "-- million: {n} tickets received over two years, {} open, in sled",
        n / 10
    );
    let place = Place::Sled(path.clone());
    if kept.is_some() && path.exists() {
        let began = Instant::now();
        drop(place.open().await);
        println!(
            "kept store at {}: opened in {:.1} s (the indexes built again if their version changed)",
            path.display(),
            began.elapsed().as_secs_f64()
        );
    } else {
        load(&place, n).await;
    }
    measure(&place);
    println!(
        "store on disk: {:.0} MiB",
        dir_size(&path) as f64 / (1024.0 * 1024.0)
    );
}

/// The pass on PostgreSQL: the same, with the database's size, and the fill after
/// migrations 3 and 4 of a database at version 2.
pub async fn pass_postgres() {
    let n = tickets(100_000);
    let pg = super::postgres::Postgres::start();
    let url = pg.fresh_database();
    println!(
        "-- million on PostgreSQL: {n} tickets received over two years, {} open",
        n / 10
    );
    let place = Place::Postgres(url.clone());
    load(&place, n).await;
    measure(&place);
    println!(
        "database size: {} MiB",
        pg.psql_in(
            &url,
            "select pg_database_size(current_database()) / (1024 * 1024)"
        )
    );
    pg.psql_in(
        &url,
        "ALTER TABLE tickets DROP COLUMN received_ns, DROP COLUMN due_ns,
             DROP COLUMN first_answer_ns, DROP COLUMN unanswered_route, DROP COLUMN facts;
         DROP TABLE first_response_waits;
         DELETE FROM counters WHERE name LIKE 'tally:%';
         DELETE FROM state WHERE key IN ('ticket_index', 'due:routes');
         DELETE FROM schema_migrations WHERE version IN (3, 4);",
    );
    let began = Instant::now();
    mentionbridge::store::postgres::migrate(&pg_config(&url))
        .await
        .unwrap();
    println!(
        "migrations 3 and 4 and the index fill of a database at version 2: {:.1} s for {n} tickets",
        began.elapsed().as_secs_f64()
    );
}

fn tickets(default: usize) -> usize {
    std::env::var("BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Five measuring processes on `place`, and the medians of what they measured.
fn measure(place: &Place) {
    let mut probes: Vec<Vec<(String, f64)>> = Vec::new();
    for _ in 0..RUNS {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env(PROBE, place.spec())
            .env_remove("BENCH_ONLY")
            .output()
            .expect("a measuring process");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("probe "))
            .unwrap_or_else(|| {
                panic!(
                    "no probe line: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        println!("  {line}");
        probes.push(
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
                .collect(),
        );
    }
    let of = |key: &str| {
        median(
            probes
                .iter()
                .filter_map(|p| p.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
                .collect(),
        )
    };
    println!(
        "scheduler quiet round: {:.3} ms (target ≤ 5 ms)",
        of("quiet")
    );
    println!(
        "/mentions stats 30d: {:.1} ms (target ≤ 200 ms)",
        of("stats")
    );
    println!("open list: {:.2} ms (target ≤ 20 ms)", of("list"));
    println!("autocomplete: {:.2} ms (target ≤ 20 ms)", of("auto"));
    println!("/metrics: {:.2} ms", of("metrics"));
    println!(
        "start-up, open to first round done: {:.0} ms (target ≤ 1000 ms)",
        of("startup")
    );
    println!(
        "peak RSS: {:.1} MiB (target ≤ 150 MiB); at start-up: {:.1} MiB",
        of("rss"),
        of("rss_open")
    );
}
