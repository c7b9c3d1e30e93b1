//! Several replicas of the desk on one PostgreSQL: real processes, killed, paused and
//! restarted while mentions and agents' replies are in flight, against the fakes and a
//! real database. Every mention gets exactly one card, every reply is published exactly
//! once, and the duties move to a survivor within the lease's bound.

use crate::harness::*;
use crate::postgres::Postgres;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Short leases, so failover happens within seconds in the tests.
const LEASE_SECS: u64 = 3;
/// A dead holder's duty passes on within one lease, plus one renewal period for the
/// survivor to try again, plus slack for a loaded 2-core machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(LEASE_SECS * 2 + 4);

/// A world whose replicas share the database at `url`; Mastodon ignores
/// Idempotency-Key, so a second send would show as a second status.
async fn shared_world() -> World {
    let w = World::new().await;
    *w.store_config.lock().unwrap() = Some(format!(
        "[store]\nbackend = \"postgres\"\nurl = \"${{TEST_DATABASE_URL}}\"\npool_size = 4\ntls = \"disable\"\nlease_secs = {LEASE_SECS}\n"
    ));
    w.mastodon.set_ignore_idempotency(true);
    w
}

async fn replica(w: &World, n: usize, url: &str) -> Bot {
    w.start_replica(n, &[("TEST_DATABASE_URL", url)]).await
}

/// Prints every replica's log if the test fails while it is alive (the bots may have
/// been killed and dropped by then).
struct LogsOnFailure(Vec<std::path::PathBuf>, crate::fakes::slack::FakeSlack);

impl LogsOnFailure {
    fn of(w: &World, bots: &[&Bot]) -> LogsOnFailure {
        LogsOnFailure(bots.iter().map(|b| b.log_path()).collect(), w.slack.clone())
    }
}

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let methods: Vec<String> = self.1.requests().into_iter().map(|(m, _)| m).collect();
            eprintln!(
                "---- Slack saw ----\n{methods:?}\nephemerals: {:?}",
                self.1.ephemerals()
            );
            for path in &self.0 {
                let log = std::fs::read_to_string(path).unwrap_or_default();
                eprintln!("---- {} ----\n{log}", path.display());
            }
        }
    }
}

/// Who holds each duty now, by the process id in the holder's name (see
/// `wire::instance::name`: host-pid-start), among live leases.
fn holders(pg: &Postgres, db: &str) -> BTreeMap<String, u32> {
    let out = pg.psql_in(
        db,
        "SELECT duty || ' ' || holder FROM leases WHERE expires_at > clock_timestamp()",
    );
    out.lines()
        .filter_map(|line| {
            let (duty, holder) = line.trim().split_once(' ')?;
            let pid = holder.rsplit('-').nth(1)?.parse().ok()?;
            Some((duty.to_string(), pid))
        })
        .collect()
}

async fn wait_for_holder(pg: &Postgres, db: &str, duty_prefix: &str, pid: u32) -> Duration {
    let started = Instant::now();
    loop {
        if holders(pg, db)
            .iter()
            .any(|(d, p)| d.starts_with(duty_prefix) && *p == pid)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < FAILOVER_BOUND * 3,
            "{duty_prefix} never reached replica {pid}: {:?}",
            holders(pg, db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every card's ticket number, and how many cards each has.
fn cards_per_ticket(w: &World) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for card in w.cards() {
        *seen.entry(ticket_of(&card)).or_insert(0) += 1;
    }
    seen
}

async fn wait_for_cards(w: &World, n: usize) {
    w.slack
        .wait_until(Duration::from_secs(60), &format!("{n} cards"), |_| {
            cards_per_ticket(w).len() >= n
        })
        .await;
}

fn assert_one_card_each(w: &World, n: usize) {
    let per = cards_per_ticket(w);
    assert_eq!(per.len(), n, "one card per mention: {per:?}");
    assert!(per.values().all(|c| *c == 1), "no doubled card: {per:?}");
    assert_eq!(
        per.keys().copied().collect::<Vec<_>>(),
        (1..=n as u64).collect::<Vec<_>>()
    );
}

fn assert_each_reply_once(w: &World, replies: &[(String, String)]) {
    let posted = w.mastodon.posted_statuses();
    for (status_id, text) in replies {
        let answers: Vec<_> = posted
            .iter()
            .filter(|p| p.in_reply_to_id.as_deref() == Some(status_id.as_str()))
            .collect();
        assert_eq!(
            answers.len(),
            1,
            "the reply to {status_id} ({text:?}) published exactly once: {posted:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_the_work_and_survive_sigkill_of_the_watcher_holder_mid_burst() {
    let pg = crate::postgres::shared();
    let url = pg.fresh_database();
    let db = url.clone();
    let w = shared_world().await;
    let mut statuses = Vec::new();
    for i in 0..15 {
        statuses.push(
            w.mastodon
                .add_mention(&format!("c{i}"), &format!("help #{i}")),
        );
    }
    let a = replica(&w, 1, &url).await;
    let b = replica(&w, 2, &url).await;
    let _logs = LogsOnFailure::of(&w, &[&a, &b]);
    wait_for_cards(&w, 5).await;

    // Agents answer three tickets; the replies are in flight when the holder dies:
    // Mastodon takes each status but answers none of them until after the kill.
    w.mastodon.hold_status_posts(true);
    let mut replies = Vec::new();
    // Three different tickets' cards (the channel's order is the replicas' interleaving).
    let mut cards = w.cards();
    cards.sort_by_key(ticket_of);
    cards.dedup_by_key(|c| ticket_of(c));
    for (n, card) in cards.into_iter().take(3).enumerate() {
        let text = format!("Answer {n}");
        w.reply_via_modal(&card, ANA, &text).await;
        replies.push((
            statuses[(ticket_of(&card) - 1) as usize].status_id.clone(),
            text,
        ));
    }
    let holder = holders(pg, &db)
        .into_iter()
        .find(|(d, _)| d.starts_with("watcher:"))
        .map(|(_, pid)| pid)
        .expect("one replica holds the watcher");
    let (dead, survivor) = if holder == a.pid() { (a, b) } else { (b, a) };
    let survivor_pid = survivor.pid();
    // More mentions arrive around the kill.
    for i in 15..30 {
        statuses.push(
            w.mastodon
                .add_mention(&format!("c{i}"), &format!("help #{i}")),
        );
    }
    w.mastodon.wait_for_posts(replies.len(), WAIT).await;
    dead.kill().await;
    w.mastodon.hold_status_posts(false);
    let failover = wait_for_holder(pg, &db, "watcher:", survivor_pid).await;
    assert!(
        failover <= FAILOVER_BOUND,
        "the watcher moved in {failover:?}, beyond {FAILOVER_BOUND:?}"
    );
    wait_for_holder(pg, &db, "scheduler", survivor_pid).await;

    wait_for_cards(&w, 30).await;
    w.mastodon
        .wait_for_posts(replies.len(), Duration::from_secs(60))
        .await;
    // Time for any doubled send to show.
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 1)).await;
    assert_one_card_each(&w, 30);
    assert_each_reply_once(&w, &replies);
    drop(survivor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_each_hold_nothing_twice_and_a_paused_one_writes_nothing_stale() {
    let pg = crate::postgres::shared();
    let url = pg.fresh_database();
    let db = url.clone();
    let w = shared_world().await;
    for i in 0..10 {
        w.mastodon
            .add_mention(&format!("p{i}"), &format!("paused #{i}"));
    }
    let bots = vec![
        replica(&w, 1, &url).await,
        replica(&w, 2, &url).await,
        replica(&w, 3, &url).await,
    ];
    let _logs = LogsOnFailure::of(&w, &bots.iter().collect::<Vec<_>>());
    wait_for_cards(&w, 10).await;
    let held = holders(pg, &db);
    let watcher = held
        .iter()
        .find(|(d, _)| d.starts_with("watcher:"))
        .map(|(_, pid)| *pid)
        .expect("a watcher holder");
    let paused = bots.iter().find(|b| b.pid() == watcher).unwrap();
    // Paused past its lease: another replica takes the watcher over.
    paused.signal("STOP");
    for i in 10..20 {
        w.mastodon
            .add_mention(&format!("p{i}"), &format!("paused #{i}"));
    }
    let started = Instant::now();
    loop {
        let now = holders(pg, &db);
        if now
            .iter()
            .any(|(d, pid)| d.starts_with("watcher:") && *pid != watcher)
        {
            break;
        }
        assert!(
            started.elapsed() < FAILOVER_BOUND * 3,
            "no takeover: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_cards(&w, 20).await;
    // It wakes up believing it still holds the watcher: it must find out, stop, and
    // write nothing under its old lease.
    paused.signal("CONT");
    paused
        .wait_for_log("duty lost", Duration::from_secs(LEASE_SECS * 3))
        .await;
    for i in 20..25 {
        w.mastodon
            .add_mention(&format!("p{i}"), &format!("paused #{i}"));
    }
    wait_for_cards(&w, 25).await;
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 1)).await;
    assert_one_card_each(&w, 25);
    // Each duty is carried out by exactly one replica, as the replicas themselves say.
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    for bot in &bots {
        let health: serde_json::Value =
            reqwest::get(format!("http://127.0.0.1:{}/healthz", bot.http_port))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        for (duty, state) in health["duties"].as_object().unwrap() {
            *held.entry(duty.clone()).or_insert(0) += usize::from(state["held"] == true);
        }
    }
    assert!(held.keys().any(|d| d.starts_with("watcher:")), "{held:?}");
    assert!(
        held.values().all(|n| *n == 1),
        "one holder per duty: {held:?}"
    );
    drop(bots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_mid_burst_loses_nothing_and_the_desk_resumes_by_itself() {
    // Its own cluster: restarting the shared one would disturb the other tests.
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let w = shared_world().await;
    for i in 0..10 {
        w.mastodon
            .add_mention(&format!("r{i}"), &format!("restart #{i}"));
    }
    let a = replica(&w, 1, &url).await;
    let b = replica(&w, 2, &url).await;
    let _logs = LogsOnFailure::of(&w, &[&a, &b]);
    wait_for_cards(&w, 3).await;
    let card = w.card(1).await;
    // Down (as a crash would take it) while mentions keep coming, then back.
    pg.stop();
    for i in 10..20 {
        w.mastodon
            .add_mention(&format!("r{i}"), &format!("restart #{i}"));
    }
    // A click that cannot be stored is refused in words, not lost in silence.
    w.press(&card, ANA, "mb_claim").await;
    w.wait_ephemeral(ANA, "Try again").await;
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 2)).await;
    pg.start_again();
    wait_for_cards(&w, 20).await;
    // An agent's click after the database is back is stored and acted on.
    w.press(&card, ANA, "mb_claim").await;
    w.wait_card_text(&card, "held by <@U0ANA>").await;
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 1)).await;
    assert_one_card_each(&w, 20);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_replica_loses_nothing() {
    let pg = crate::postgres::shared();
    let url = pg.fresh_database();
    let w = shared_world().await;
    let mut mentions = 0;
    let mut more = |w: &World, k: usize| {
        for _ in 0..k {
            w.mastodon
                .add_mention(&format!("r{mentions}"), &format!("rolling #{mentions}"));
            mentions += 1;
        }
    };
    more(&w, 5);
    let a = replica(&w, 1, &url).await;
    let b = replica(&w, 2, &url).await;
    wait_for_cards(&w, 5).await;
    more(&w, 5);
    let (status, log) = a.terminate().await;
    assert!(status.success(), "graceful stop:\n{log}");
    let a = replica(&w, 3, &url).await;
    more(&w, 5);
    let (status, log) = b.terminate().await;
    assert!(status.success(), "graceful stop:\n{log}");
    let b = replica(&w, 4, &url).await;
    more(&w, 5);
    wait_for_cards(&w, 20).await;
    tokio::time::sleep(Duration::from_secs(LEASE_SECS + 1)).await;
    assert_one_card_each(&w, 20);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sled_desk_is_copied_to_postgres_and_carries_on_there_without_reposting() {
    use mentionbridge::ports::Store;
    // A desk on sled: three tickets, one answered, one claimed.
    let w = World::new().await;
    for i in 0..3 {
        w.mastodon
            .add_mention(&format!("s{i}"), &format!("sled #{i}"));
    }
    let bot = w.start_bot().await;
    let card = w.card(3).await;
    w.reply_via_modal(&w.card(1).await, ANA, "Answered on sled.")
        .await;
    w.mastodon.wait_for_posts(1, WAIT).await;
    w.press(&card, BEN, "mb_claim").await;
    w.wait_card_text(&card, "held by <@U0BEN>").await;
    let (status, _) = bot.terminate().await;
    assert!(status.success());
    let sled_path = w.dir.path().join("store.sled");
    let before = {
        let sled = mentionbridge::store::SledStore::open(&sled_path).unwrap();
        (
            sled.all_tickets().await.unwrap(),
            sled.audit_all().await.unwrap(),
            sled.jobs().await.unwrap(),
            sled.snapshot().unwrap(),
        )
    };

    let pg = crate::postgres::shared();
    let url = pg.fresh_database();
    let copy = |url: String| {
        let mut cmd = w.command();
        cmd.args(["store", "copy", "--from"])
            .arg(&sled_path)
            .args(["--tls", "disable"])
            .env("DATABASE_URL", url);
        async move { cmd.output().await.unwrap() }
    };
    let out = copy(url.clone()).await;
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("3 tickets"), "{said}");
    assert!(!said.contains(&url), "the URL is never printed: {said}");
    // Into a database that holds a desk already: refused, nothing changed.
    let again = copy(url.clone()).await;
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && said.contains("already holds a desk"),
        "{said}"
    );

    let config = mentionbridge::config::PostgresConfig::from_url(
        &url,
        mentionbridge::config::PgTls::Disable,
    )
    .unwrap();
    let copied = mentionbridge::store::PostgresStore::connect(&config)
        .await
        .unwrap();
    assert_eq!(copied.all_tickets().await.unwrap(), before.0);
    assert_eq!(copied.audit_all().await.unwrap(), before.1);
    assert_eq!(copied.jobs().await.unwrap(), before.2);
    let snap = before.3;
    for (source, cursor) in &snap.cursors {
        assert_eq!(copied.cursor(source).await.unwrap().as_ref(), Some(cursor));
    }
    for (ticket, card) in &snap.cards {
        assert_eq!(
            copied
                .ticket_by_card(card.surface, &card.channel, &card.message_id)
                .await
                .unwrap(),
            Some(*ticket)
        );
    }
    assert_eq!(
        copied.seen_event_count().await.unwrap(),
        snap.seen_events.len()
    );

    // The desk goes on on PostgreSQL: the old mentions are not taken in again, no card
    // is posted twice, and the next ticket continues the numbering.
    *w.store_config.lock().unwrap() = Some(
        "[store]\nbackend = \"postgres\"\nurl = \"${TEST_DATABASE_URL}\"\ntls = \"disable\"\n"
            .to_string(),
    );
    let bot = replica(&w, 1, &url).await;
    w.mastodon.add_mention("s3", "postgres #3");
    let fourth = w.card(4).await;
    assert_eq!(ticket_of(&fourth), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_one_card_each(&w, 4);
    assert_eq!(w.mastodon.posted_statuses().len(), 1, "no reply sent again");
    // The claim made on sled holds on PostgreSQL, and is acted on there.
    let held = w.card_now(&card);
    assert!(blocks_text(&held).contains("held by <@U0BEN>"));
    w.press(&held, BEN, "mb_unclaim").await;
    let released = w.wait_card_text(&card, "Open").await;
    assert!(buttons(&released).contains(&"mb_claim".to_string()));
    drop(bot);
}
