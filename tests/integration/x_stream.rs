//! X's filtered stream at the adapter: `X::stream().run()` against the fake X, its
//! events read from the channel the watcher would read. Rules kept in sync with the
//! config (ours added and pruned, someone else's untouched), the same mention as the
//! poll makes, keep-alives and silence, lines cut across chunks, drops and X's
//! reconnect waits, refusals, the request budget, and no token anywhere. Last, the real
//! binary with `[x] stream = true`: a mention is a card long before the next poll.

use crate::fakes::x::{self as fx, FakeX};
use crate::fakes::Fault;
use mentionbridge::config::{Secret, XConfig, XCredentials, XStreamConfig};
use mentionbridge::domain::Mention;
use mentionbridge::ports::{SharedStore, Source, StreamError, StreamEvent};
use mentionbridge::sources::x::X;
use mentionbridge::store::SledStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);
const OUR_TAGS: &str = "mentionbridge:1500000000000000001:";

fn config(x: &FakeX, keywords: &[&str], budget: u32, bearer: &str) -> XConfig {
    XConfig {
        api_url: x.url(),
        user_id: fx::BRAND_ID.into(),
        credentials: XCredentials::Oauth1 {
            consumer_key: Secret::new(fx::CONSUMER_KEY),
            consumer_secret: Secret::new(fx::CONSUMER_SECRET),
            access_token: Secret::new(fx::ACCESS_TOKEN),
            access_token_secret: Secret::new(fx::ACCESS_TOKEN_SECRET),
        },
        poll_interval: Duration::from_secs(120),
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        daily_request_budget: budget,
        stream: Some(XStreamConfig {
            bearer_token: Secret::new(bearer),
            reconcile_every: Duration::from_secs(900),
            quiet: Duration::from_secs(1),
        }),
    }
}

struct Desk {
    x: X,
    store: SharedStore,
}

async fn desk_with(fake: &FakeX, keywords: &[&str], budget: u32, bearer: &str) -> Desk {
    let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
    let x = X::connect(&config(fake, keywords, budget, bearer), store.clone())
        .await
        .expect("X connects");
    Desk { x, store }
}

async fn desk(fake: &FakeX, keywords: &[&str]) -> Desk {
    desk_with(fake, keywords, 100_000, fx::APP_BEARER_TOKEN).await
}

/// One run of the stream, as the watcher drives it.
struct Run {
    events: mpsc::Receiver<StreamEvent>,
    ended: JoinHandle<StreamError>,
}

impl Run {
    fn start(desk: &Desk) -> Run {
        let stream = desk.x.stream().expect("[x] stream = true gives a stream");
        let (tx, events) = mpsc::channel(64);
        let ended = tokio::spawn(async move { stream.run(None, tx).await });
        Run { events, ended }
    }

    async fn next(&mut self) -> StreamEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the stream is still running")
    }

    /// Started and connected (the fake holds the connection open from here on).
    async fn connected(desk: &Desk) -> Run {
        let mut run = Run::start(desk);
        assert_eq!(run.next().await, StreamEvent::Connected);
        run
    }

    /// The next batch of mentions (the stream never moves a cursor).
    async fn mentions(&mut self) -> Vec<Mention> {
        match self.next().await {
            StreamEvent::Mentions { mentions, cursor } => {
                assert_eq!(cursor, None, "X's stream has no position of its own");
                mentions
            }
            other => panic!("mentions expected, got {other:?}"),
        }
    }

    async fn ended(self) -> StreamError {
        self.finish().await.0
    }

    /// How the run ended, and the events it sent that nobody read yet.
    async fn finish(mut self) -> (StreamError, Vec<StreamEvent>) {
        let ended = tokio::time::timeout(WAIT, self.ended)
            .await
            .expect("the run ends in time")
            .expect("the run does not panic");
        let mut left = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            left.push(e);
        }
        (ended, left)
    }
}

/// How a run ended, for the drops: the wait and the reason.
fn dropped(e: StreamError) -> (Duration, String) {
    match e {
        StreamError::Dropped {
            after: Some(after),
            reason,
        } => (after, reason),
        other => panic!("Dropped with a wait expected, got {other:?}"),
    }
}

fn today_key(prefix: &str) -> String {
    format!("{prefix}:{}", chrono::Utc::now().format("%Y-%m-%d"))
}

async fn counted(store: &SharedStore, key: &str) -> u64 {
    let raw = store.state(key).await.unwrap();
    mentionbridge::ports::count_of(raw.as_deref())
}

#[tokio::test]
async fn x_stream_syncs_its_rules_with_the_config_and_never_touches_someone_elses() {
    let fake = FakeX::start().await;
    let foreign = fake.add_stream_rule("cats has:images", Some("their-dashboard"));
    let untagged = fake.add_stream_rule("dogs", None);
    let other_brand = fake.add_stream_rule("@other", Some("mentionbridge:42:mention"));
    let stale = fake.add_stream_rule(
        "oldword -from:brand -is:retweet",
        Some(&format!("{OUR_TAGS}kw:oldword")),
    );
    let desk = desk(&fake, &["acme", "acme down"]).await;
    let run = Run::connected(&desk).await;

    let rules: Vec<fx::StreamRule> = fake.stream_rules();
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    for kept in [&foreign, &untagged, &other_brand] {
        assert!(ids.contains(&kept.as_str()), "{kept} was kept: {rules:?}");
    }
    assert!(
        !ids.contains(&stale.as_str()),
        "our stale rule is gone: {rules:?}"
    );
    let ours: Vec<(String, String)> = rules
        .iter()
        .filter(|r| r.tag.as_deref().is_some_and(|t| t.starts_with(OUR_TAGS)))
        .map(|r| (r.value.clone(), r.tag.clone().unwrap()))
        .collect();
    assert_eq!(
        ours,
        [
            (
                "@brand -from:brand".to_string(),
                format!("{OUR_TAGS}mention")
            ),
            (
                "acme -from:brand -is:retweet".to_string(),
                format!("{OUR_TAGS}kw:acme")
            ),
            (
                "\"acme down\" -from:brand -is:retweet".to_string(),
                format!("{OUR_TAGS}kw:acme down")
            ),
        ]
    );
    // One read, one delete, one add; the connect asked for the poll's fields.
    assert_eq!(fake.rule_calls(), (1, 2));
    let connect = &fake.stream_connect_requests()[0];
    assert!(connect.contains("expansions=author_id"), "{connect}");
    assert!(connect.contains("tweet.fields=created_at"), "{connect}");
    assert!(connect.contains("user.fields=username"), "{connect}");
    // Every request spent the day's budget: users/me, the three rules calls, the connect.
    assert_eq!(fake.request_count(), 5);
    assert_eq!(counted(&desk.store, &today_key("x:budget")).await, 5);
    assert!(
        fake.auth_failures().is_empty(),
        "{:?}",
        fake.auth_failures()
    );

    // Connecting again with the rules in sync reads them and changes nothing.
    fake.drop_streams();
    run.ended().await;
    let _again = Run::connected(&desk).await;
    assert_eq!(fake.rule_calls(), (2, 2));
    assert_eq!(fake.stream_rules(), rules);
}

#[tokio::test]
async fn x_stream_sends_connected_then_each_mention_and_keyword_post_and_counts_what_it_cost() {
    let fake = FakeX::start().await;
    fake.add_stream_rule("cats", Some("their-dashboard"));
    let desk = desk(&fake, &["acme"]).await;
    let mut run = Run::connected(&desk).await;

    let id = fake.add_mention("alice", "where is my parcel? & <3");
    let m = run.mentions().await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].remote_id, id);
    assert_eq!(m[0].author.handle, "alice");
    assert_eq!(
        m[0].text, "@brand where is my parcel? & <3",
        "X's escaping undone"
    );
    assert_eq!(m[0].account, fx::BRAND_ID);

    let kw = fake.add_tweet("carol", "is ACME down again?", None);
    let m = run.mentions().await;
    assert_eq!((m.len(), m[0].remote_id.as_str()), (1, kw.as_str()));

    // Our own post (X would not match it: -from:brand), a post matching only someone
    // else's rule, and then a mention: only the mention comes out.
    fake.add_tweet(fx::BRAND_USERNAME, "@brand acme status: all good", None);
    fake.add_tweet("dave", "my cats are great", None);
    let last = fake.add_mention("erin", "hello?");
    let m = run.mentions().await;
    assert_eq!((m.len(), m[0].remote_id.as_str()), (1, last.as_str()));

    // Four posts came down the stream (dave's too): each is billed, and each was
    // counted before the batch it came in was handed on.
    assert_eq!(fake.stream_posts_sent(), 4);
    assert_eq!(counted(&desk.store, &today_key("x:stream-posts")).await, 4);
    // Requests: users/me, the rules read and add, the connect.
    assert_eq!(counted(&desk.store, &today_key("x:budget")).await, 4);
    drop(run);
}

#[tokio::test]
async fn x_stream_and_poll_make_the_same_mention_with_the_same_dedupe_keys() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &[]).await;
    let brand_post = fake.add_tweet(fx::BRAND_USERNAME, "Our status page is up", None);
    let mut run = Run::connected(&desk).await;
    let reply = fake.add_tweet("alice", "@brand still broken here", Some(&brand_post));
    let streamed = run.mentions().await.remove(0);

    let polled = desk.x.poll(None).await.expect("poll");
    let polled = polled
        .mentions
        .into_iter()
        .find(|m| m.remote_id == reply)
        .expect("the poll finds the reply");
    assert_eq!(streamed, polled);
    assert_eq!(streamed.dedupe_keys(), polled.dedupe_keys());
    assert_eq!(streamed.in_reply_to.as_deref(), Some(brand_post.as_str()));
    assert_eq!(streamed.author.name, "alice (display)");
}

#[tokio::test]
async fn x_stream_and_poll_read_a_keyword_with_spaces_as_one_phrase() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &["acme down"]).await;
    let mut run = Run::connected(&desk).await;
    let scattered = fake.add_tweet("carol", "down at acme the coffee is great", None);
    let phrase = fake.add_tweet("dave", "is acme down for anyone else?", None);
    let streamed = run.mentions().await;
    assert_eq!(
        streamed.iter().map(|m| &m.remote_id).collect::<Vec<_>>(),
        vec![&phrase],
        "the stream's rule is the phrase"
    );
    let polled = desk.x.poll(None).await.expect("poll").mentions;
    let polled: Vec<&String> = polled.iter().map(|m| &m.remote_id).collect();
    assert!(polled.contains(&&phrase), "{polled:?}");
    assert!(
        !polled.contains(&&scattered),
        "the search reads the phrase as the rule does: {polled:?}"
    );
}

#[tokio::test]
async fn x_stream_lives_on_keep_alives_and_silence_drops_it_within_stream_quiet() {
    let fake = FakeX::start().await;
    fake.set_keep_alive(Duration::from_millis(300));
    let desk = desk(&fake, &[]).await;
    let run = Run::connected(&desk).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !run.ended.is_finished(),
        "keep-alives every 300 ms keep a 1 s stream up"
    );

    fake.quiet_streams();
    let quiet_from = Instant::now();
    let (after, reason) = dropped(run.ended().await);
    let took = quiet_from.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(2500),
        "dropped {took:?} after the last keep-alive"
    );
    assert!(reason.contains("went quiet"), "{reason}");
    // The connection had delivered data: the count starts again, first step 250 ms.
    assert_eq!(after, Duration::from_millis(250));
}

#[tokio::test]
async fn x_stream_reassembles_a_post_split_across_chunks() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &[]).await;
    let mut run = Run::connected(&desk).await;
    fake.split_next_stream_post();
    let id = fake.add_mention("alice", "this line comes in two pieces");
    let m = run.mentions().await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].remote_id, id);
    assert_eq!(m[0].text, "@brand this line comes in two pieces");
    // And the stream goes on after it.
    let next = fake.add_mention("bob", "and then one whole");
    assert_eq!(run.mentions().await[0].remote_id, next);
}

#[tokio::test]
async fn x_stream_abrupt_drops_back_off_linearly_until_a_connection_delivers_data() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &[]).await;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let run = Run::connected(&desk).await;
        fake.drop_streams();
        let (after, reason) = dropped(run.ended().await);
        assert!(reason.contains("broke off"), "{reason}");
        waits.push(after);
    }
    assert_eq!(
        waits,
        [250, 500, 750].map(Duration::from_millis),
        "+250 ms per attempt"
    );
    // A connection that delivers data (a keep-alive) starts the count again.
    fake.set_keep_alive(Duration::from_millis(100));
    let run = Run::connected(&desk).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.drop_streams();
    assert_eq!(dropped(run.ended().await).0, Duration::from_millis(250));
    assert_eq!(fake.stream_connects(), 4);
}

#[tokio::test]
async fn x_stream_429_waits_a_minute_then_two_and_5xx_waits_five_seconds_then_ten() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &[]).await;
    fake.fail_next_connects(vec![
        Fault::too_many_requests(1),
        Fault::too_many_requests(1),
    ]);
    let (after, reason) = dropped(Run::start(&desk).ended().await);
    assert_eq!(after, Duration::from_secs(60), "{reason}");
    assert!(reason.contains("429"), "{reason}");
    // X's window (1 s here) is kept: connecting before it resets asks X nothing.
    let (early, reason) = dropped(Run::start(&desk).ended().await);
    assert!(early <= Duration::from_secs(2), "{early:?} {reason}");
    assert!(reason.contains("rate limit"), "{reason}");
    tokio::time::sleep(early + Duration::from_millis(100)).await;
    let (after, _) = dropped(Run::start(&desk).ended().await);
    assert_eq!(after, Duration::from_secs(120));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    fake.fail_next_connects(vec![Fault::status(503), Fault::status(503)]);
    let (after, reason) = dropped(Run::start(&desk).ended().await);
    assert_eq!(after, Duration::from_secs(5), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    assert_eq!(
        dropped(Run::start(&desk).ended().await).0,
        Duration::from_secs(10)
    );
    // Four connects refused (none while the window was shut), nothing open.
    assert_eq!(fake.stream_connects(), 4);
    assert_eq!(fake.live_streams(), 0);
}

#[tokio::test]
async fn x_stream_with_a_wrong_bearer_token_is_refused_and_the_token_is_never_said() {
    let fake = FakeX::start().await;
    let wrong = "x-bearer-not-ours-CANARY77aa00bb11cc22dd";
    let desk = desk_with(&fake, &[], 100_000, wrong).await;
    let stream = desk.x.stream().unwrap();
    assert_eq!(
        stream.describe(),
        format!("x filtered stream {}/2/tweets/search/stream", fake.url())
    );
    assert_eq!(stream.reconcile_every(), Duration::from_secs(900));
    match Run::start(&desk).ended().await {
        StreamError::Refused { reason } => {
            assert!(reason.contains("401"), "{reason}");
            assert!(reason.contains("x.bearer_token"), "{reason}");
            assert!(!reason.contains(wrong), "the token leaked: {reason}");
            assert!(!reason.contains("CANARY"), "a secret leaked: {reason}");
        }
        other => panic!("Refused expected, got {other:?}"),
    }
    assert_eq!(
        fake.stream_connects(),
        0,
        "no connect after the rules were refused"
    );
    assert!(!stream.describe().contains("CANARY"));
}

#[tokio::test]
async fn x_stream_on_a_tier_without_it_is_unsupported_and_polling_stays() {
    let fake = FakeX::start().await;
    fake.set_stream_not_enrolled(true);
    let desk = desk(&fake, &[]).await;
    match Run::start(&desk).ended().await {
        StreamError::Unsupported { reason } => {
            assert!(reason.contains(fx::NOT_ENROLLED_DETAIL), "{reason}");
            assert!(
                reason.contains("Appropriate Level of API Access"),
                "{reason}"
            );
            assert!(reason.contains("polled instead"), "{reason}");
        }
        other => panic!("Unsupported expected, got {other:?}"),
    }
    let id = fake.add_mention("alice", "still read by the poll");
    let batch = desk.x.poll(None).await.expect("the poll still works");
    assert_eq!(batch.mentions[0].remote_id, id);
}

#[tokio::test]
async fn x_stream_with_the_budget_spent_connects_nothing_until_the_day_ends() {
    let fake = FakeX::start().await;
    // `GET /2/users/me` at start spends the whole budget of one.
    let desk = desk_with(&fake, &[], 1, fx::APP_BEARER_TOKEN).await;
    let (after, reason) = dropped(Run::start(&desk).ended().await);
    assert!(reason.contains("budget of 1 spent"), "{reason}");
    assert!(
        after > Duration::ZERO && after <= Duration::from_secs(86_400),
        "{after:?}"
    );
    assert_eq!(fake.stream_connects(), 0);
    assert_eq!(fake.rule_calls(), (0, 0));
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn x_stream_problem_in_the_stream_drops_it_in_x_own_words() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &[]).await;
    let run = Run::connected(&desk).await;
    fake.send_stream_line(r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.x.com/2/problems/operational-disconnect"}]}"#);
    let (after, reason) = dropped(run.ended().await);
    assert!(
        reason.contains("This stream has been disconnected upstream for operational reasons."),
        "{reason}"
    );
    assert_eq!(
        after,
        Duration::from_secs(5),
        "an HTTP-level problem: 5 s first"
    );
}

#[tokio::test]
async fn x_stream_line_past_a_mebibyte_or_unreadable_drops_the_connection() {
    let fake = FakeX::start().await;
    let desk = desk(&fake, &[]).await;
    let run = Run::connected(&desk).await;
    fake.send_stream_bytes(&vec![b'a'; (1 << 20) + 10]);
    let (_, reason) = dropped(run.ended().await);
    assert!(reason.contains("longer than 1024 KiB"), "{reason}");

    let run = Run::connected(&desk).await;
    fake.send_stream_line("{\"data\": not json");
    let (ended, left) = run.finish().await;
    let (_, reason) = dropped(ended);
    assert!(reason.contains("cannot read"), "{reason}");
    assert!(left.is_empty(), "nothing forwarded: {left:?}");
}

#[tokio::test]
async fn x_without_stream_in_its_config_offers_none() {
    let fake = FakeX::start().await;
    let mut c = config(&fake, &[], 100, fx::APP_BEARER_TOKEN);
    c.stream = None;
    let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
    let x = X::connect(&c, store).await.unwrap();
    assert!(x.stream().is_none());
}

#[tokio::test]
async fn x_streamed_mention_is_one_card_long_before_the_next_poll() {
    use crate::drivers::Driver;
    use crate::harness::World;
    let w = World::new().await;
    let fake = FakeX::start().await;
    let section = crate::x_flows::oauth1_section(&fake, 100_000, &[])
        .replace("poll_interval_secs = 0.2", "poll_interval_secs = 60")
        + "stream = true\nbearer_token = \"${TEST_X_BEARER_TOKEN}\"\n";
    *w.extra_config.lock().unwrap() = section;
    let mut env = crate::x_flows::OAUTH1_ENV.to_vec();
    env.push(("TEST_X_BEARER_TOKEN", fx::APP_BEARER_TOKEN));
    let bot = w.start_bot_with(&env).await;
    fake.wait_for_live_streams(1, WAIT).await;
    // The first poll and the catch-up poll after the connect are done: from now on only
    // the stream can bring a post within the minute.
    let mentions = format!("/2/users/{}/mentions", fx::BRAND_ID);
    fake.wait_for_requests("GET", &mentions, 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polls = fake.count("GET", &mentions);

    let asked = Instant::now();
    fake.add_mention("alice", "streamed straight to the desk");
    let d = w.slack_driver();
    let card = d.card(1).await;
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert!(d.card_text(&card).contains("streamed straight to the desk"));
    assert_eq!(fake.count("GET", &mentions), polls, "no poll brought it");
    bot.wait_for_log("streamed mentions stored", WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.cards().len(), 1, "one card");
    let log = bot.log();
    assert!(log.contains("stream connected"), "{log}");
    assert!(
        !log.contains(fx::APP_BEARER_TOKEN),
        "the bearer token is in the log"
    );
}
