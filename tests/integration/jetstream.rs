//! Bluesky's Jetstream at the adapter: the Bluesky source's stream, run against the fake
//! Jetstream (`fakes::bluesky`, `/subscribe`) and read the way the desk reads it, from the
//! channel `run()` fills. What the runtime does with it (catch-up polls, storing the
//! position, reconnecting) is not here.

use crate::fakes::bluesky::{FakeBluesky, APP_PASSWORD, BRAND_HANDLE};
use crate::fakes::Fault;
use mentionbridge::config::{BlueskyConfig, JetstreamConfig, Secret};
use mentionbridge::domain::Mention;
use mentionbridge::ports::{MentionStream, Source, StreamError, StreamEvent};
use mentionbridge::sources::bluesky::Bluesky;
use mentionbridge::store::SledStore;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Jetstream's rewind on reconnect, in µs.
const REWIND_US: u64 = 5_000_000;
const WAIT: Duration = Duration::from_secs(10);

/// The Bluesky source against the fake, with Jetstream on.
struct Desk {
    fake: FakeBluesky,
    source: Arc<Bluesky>,
    stream: Arc<dyn MentionStream>,
    _dir: tempfile::TempDir,
}

async fn desk(keywords: &[&str], quiet: Duration) -> Desk {
    let fake = FakeBluesky::start().await;
    let url = fake.jetstream_url();
    desk_at(fake, keywords, quiet, url).await
}

/// The source against `fake`'s PDS, subscribing at `jetstream_url`.
async fn desk_at(
    fake: FakeBluesky,
    keywords: &[&str],
    quiet: Duration,
    jetstream_url: String,
) -> Desk {
    let jetstream = JetstreamConfig {
        url: jetstream_url,
        reconcile_every: Duration::from_secs(300),
        quiet,
    };
    let (source, dir) = source(&fake, keywords, Some(jetstream)).await;
    let stream = source.stream().expect("jetstream is on");
    Desk {
        fake,
        source,
        stream,
        _dir: dir,
    }
}

/// The Bluesky source logged in at `fake`, with a store of its own.
async fn source(
    fake: &FakeBluesky,
    keywords: &[&str],
    jetstream: Option<JetstreamConfig>,
) -> (Arc<Bluesky>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(&dir.path().join("store.sled")).unwrap());
    let config = BlueskyConfig {
        service_url: fake.url(),
        handle: BRAND_HANDLE.into(),
        app_password: Secret::new(APP_PASSWORD),
        poll_interval: Duration::from_secs(30),
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        jetstream,
    };
    let source = Bluesky::connect(&config, store).await.expect("logged in");
    (source, dir)
}

/// One `run()` of the stream, read as the desk reads it.
struct Run {
    events: mpsc::Receiver<StreamEvent>,
    task: JoinHandle<StreamError>,
    /// The position of the last event that carried one.
    cursor: Option<String>,
}

impl Desk {
    /// Runs the stream from `cursor` and waits until it says it is connected.
    async fn run(&self, cursor: Option<String>) -> Run {
        let (tx, mut events) = mpsc::channel(64);
        let stream = self.stream.clone();
        let task = tokio::spawn(async move { stream.run(cursor, tx).await });
        let first = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("connected in time");
        assert_eq!(first, Some(StreamEvent::Connected), "Connected comes first");
        Run {
            events,
            task,
            cursor: None,
        }
    }
}

impl Run {
    /// The next event (None: the run ended), within `within`.
    async fn next(&mut self, within: Duration) -> Option<StreamEvent> {
        let event = tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten();
        if let Some(StreamEvent::Mentions {
            cursor: Some(c), ..
        }) = &event
        {
            if let Some(before) = &self.cursor {
                assert!(
                    c.parse::<u64>().unwrap() >= before.parse::<u64>().unwrap(),
                    "the position went back from {before} to {c}"
                );
            }
            self.cursor = Some(c.clone());
        }
        event
    }

    /// Mentions until there are `n`, skipping checkpoints; panics after `within`.
    async fn mentions(&mut self, n: usize, within: Duration) -> Vec<Mention> {
        let deadline = Instant::now() + within;
        let mut found = Vec::new();
        while found.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(StreamEvent::Mentions { mentions, cursor }) => {
                    assert!(cursor.is_some(), "every batch carries a position");
                    found.extend(mentions);
                }
                Some(StreamEvent::Connected) => panic!("Connected twice"),
                None => panic!(
                    "{} of {n} mentions within {within:?}: {:#?}",
                    found.len(),
                    found.iter().map(|m| &m.text).collect::<Vec<_>>()
                ),
            }
        }
        found
    }

    /// Every mention that arrives within `within` (the run keeps going).
    async fn mentions_for(&mut self, within: Duration) -> Vec<Mention> {
        let deadline = Instant::now() + within;
        let mut found = Vec::new();
        while let Some(event) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            if let StreamEvent::Mentions { mentions, .. } = event {
                found.extend(mentions);
            }
        }
        found
    }

    /// Waits for the run to end; returns why and the mentions handed over meanwhile.
    async fn ended(mut self, within: Duration) -> (StreamError, Vec<Mention>, Option<String>) {
        let mut found = Vec::new();
        let deadline = Instant::now() + within;
        while let Some(event) = self
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            if let StreamEvent::Mentions { mentions, .. } = event {
                found.extend(mentions);
            }
        }
        let why = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.task,
        )
        .await
        .expect("the run ended in time")
        .expect("the run did not panic");
        (why, found, self.cursor)
    }

    fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

fn remote_ids(mentions: &[Mention]) -> Vec<String> {
    mentions.iter().map(|m| m.remote_id.clone()).collect()
}

fn reason(e: &StreamError) -> String {
    e.to_string()
}

/// The run ended as a drop (to be reconnected), for a reason that says `saying`.
fn assert_dropped(why: &StreamError, saying: &str) {
    assert!(
        matches!(why, StreamError::Dropped { .. }) && reason(why).contains(saying),
        "expected a drop saying {saying:?}: {why:?}"
    );
}

#[tokio::test]
async fn mentions_replies_quotes_and_keyword_hits_arrive_and_noise_does_not() {
    let d = desk(&["acme"], Duration::from_secs(30)).await;
    assert_eq!(
        d.stream.describe(),
        format!("bluesky jetstream {}", d.fake.jetstream_url())
    );
    assert_eq!(
        d.stream.cursor_key(),
        Some(format!("{}:jetstream", d.source.cursor_key()))
    );
    assert_eq!(d.stream.reconcile_every(), Duration::from_secs(300));
    let (ours, _) = d.fake.add_post(BRAND_HANDLE, "Our app is back up.");
    let mut run = d.run(None).await;

    let connect = d.fake.jetstream_connects().pop().unwrap();
    assert_eq!(connect.wanted_collections, ["app.bsky.feed.post"]);
    assert_eq!(connect.cursor, None, "no position yet: live");
    assert_eq!(connect.max_message_size, Some(1 << 20));
    assert!(!connect.authorization, "no credential goes to Jetstream");
    assert!(connect
        .user_agent
        .is_some_and(|ua| ua.starts_with("mentionbridge/")));

    d.fake.add_post(BRAND_HANDLE, "acme news from us"); // our own post: never a ticket
    let (mention, _) = d.fake.add_mention("alice.test", "my order is late");
    d.fake.add_post("erin.test", "lunch was great"); // noise
    d.fake.add_post("frank.test", "acmebank is down"); // not the word
    d.fake.add_like("gina.test", &ours); // not a post
    let (reply, _) = d.fake.add_reply("bob.test", &ours, "still broken here");
    let (quote, _) = d.fake.add_quote("carol.test", &ours, "is it though?");
    let (keyword, _) = d.fake.add_post("dave.test", "My ACME router died again");

    let got = run.mentions(4, WAIT).await;
    assert_eq!(remote_ids(&got), [mention, reply.clone(), quote, keyword]);
    assert_eq!(got[0].author.handle, "alice.test");
    assert_eq!(got[0].author.name, "Alice");
    assert_eq!(got[0].account, BRAND_HANDLE);
    assert_eq!(got[1].in_reply_to.as_deref(), Some(ours.as_str()));
    let context: Value = serde_json::from_str(got[1].reply_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        context["root"]["uri"],
        ours.as_str(),
        "the answer threads under our post"
    );
    assert_eq!(got[3].text, "My ACME router died again");
    assert_eq!(got[3].language.as_deref(), Some("en"));

    // Nothing else comes: noise stays noise (checkpoints may).
    d.fake.add_post("hank.test", "nothing to see");
    assert_eq!(run.mentions_for(Duration::from_millis(600)).await, []);
    assert!(run.is_running());
}

#[tokio::test]
async fn a_post_by_the_poll_and_by_the_stream_is_the_same_mention() {
    let d = desk(&["acme"], Duration::from_secs(30)).await;
    let (ours, _) = d.fake.add_post(BRAND_HANDLE, "Maintenance tonight.");
    let mut run = d.run(None).await;
    d.fake.add_mention("alice.test", "where is my parcel?");
    d.fake.add_reply("bob.test", &ours, "how long?");
    d.fake.add_quote("carol.test", &ours, "again??");
    d.fake.add_post("dave.test", "acme support, anyone awake?");
    let streamed = run.mentions(4, WAIT).await;

    // The same posts, through the notifications and the keyword search.
    let polled = d.source.poll(None).await.expect("the poll").mentions;
    for s in &streamed {
        let p = polled
            .iter()
            .find(|p| p.remote_id == s.remote_id)
            .unwrap_or_else(|| panic!("the poll did not find {}", s.remote_id));
        assert_eq!(p.dedupe_keys(), s.dedupe_keys(), "{}", s.text);
        assert_eq!(p, s, "one post, one mention, whichever path brought it");
    }
}

#[tokio::test]
async fn the_position_grows_and_a_reconnect_rewinds_and_replays() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let mut run = d.run(None).await;
    let (m1, _) = d.fake.add_mention("alice.test", "one");
    let (m2, _) = d.fake.add_mention("bob.test", "two");
    let first = run.mentions(2, WAIT).await;
    assert_eq!(remote_ids(&first), [m1.clone(), m2.clone()]);
    let after_m2 = run.cursor.clone().expect("a position");
    assert_eq!(
        after_m2.parse::<u64>().unwrap(),
        d.fake.jetstream_last_time_us(),
        "the position is the time_us of the last event read"
    );

    // Others' posts flow: a checkpoint (every 2 s) moves the position without mentions.
    let started = Instant::now();
    let checkpoint = loop {
        d.fake.add_post("noise.test", "weather is nice");
        match run.next(Duration::from_millis(200)).await {
            Some(StreamEvent::Mentions { mentions, cursor }) => {
                assert_eq!(mentions, []);
                break cursor.unwrap();
            }
            Some(other) => panic!("{other:?}"),
            None => assert!(started.elapsed() < Duration::from_secs(4), "no checkpoint"),
        }
    };
    assert!(checkpoint.parse::<u64>().unwrap() > after_m2.parse::<u64>().unwrap());
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "checkpoints are not sent for every event: {:?}",
        started.elapsed()
    );

    // The desk goes away; a mention arrives meanwhile.
    run.task.abort();
    d.fake.wait_for_jetstream_sockets(0, WAIT).await;
    let (m3, _) = d.fake.add_mention("carol.test", "three");

    // Back, from the position stored with m2: 5 s earlier, so m1 and m2 come again
    // (the store's dedupe keys absorb them) and m3 is not missed.
    let mut run = d.run(Some(after_m2.clone())).await;
    let asked = d.fake.jetstream_connects().pop().unwrap().cursor;
    assert_eq!(asked, Some(after_m2.parse::<u64>().unwrap() - REWIND_US));
    let again = run.mentions(3, WAIT).await;
    assert_eq!(remote_ids(&again), [m1, m2, m3]);
    assert!(
        run.cursor.unwrap().parse::<u64>().unwrap() >= checkpoint.parse::<u64>().unwrap(),
        "the position never goes back below the stored one"
    );
    assert_eq!(d.fake.jetstream_connects().len(), 2);
}

#[tokio::test]
async fn an_unreadable_stored_position_reads_live() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let _run = d.run(Some("not a number".into())).await;
    assert_eq!(d.fake.jetstream_connects().pop().unwrap().cursor, None);
}

#[tokio::test]
async fn a_stream_that_goes_quiet_is_dropped_within_stream_quiet() {
    let d = desk(&[], Duration::from_secs(1)).await;
    let mut run = d.run(None).await;
    d.fake.add_mention("alice.test", "hello");
    run.mentions(1, WAIT).await;
    d.fake.set_jetstream_quiet(true);
    let quiet_from = Instant::now();
    d.fake.add_mention("bob.test", "held back");
    let (why, _, _) = run.ended(Duration::from_secs(5)).await;
    let after = quiet_from.elapsed();
    assert!(
        matches!(&why, StreamError::Dropped { after: None, .. })
            && reason(&why).contains("went quiet"),
        "{why:?}"
    );
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "{after:?}"
    );
    // Speaking again, the next connection works.
    d.fake.set_jetstream_quiet(false);
    let mut run = d.run(None).await;
    let (m, _) = d.fake.add_mention("carol.test", "are you there?");
    assert_eq!(remote_ids(&run.mentions(1, WAIT).await), [m]);
}

#[tokio::test]
async fn an_abrupt_drop_and_a_close_frame_end_the_run_as_dropped() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let run = d.run(None).await;
    let cut = Instant::now();
    d.fake.drop_jetstream_sockets();
    let (why, _, _) = run.ended(Duration::from_secs(5)).await;
    assert_dropped(&why, "");
    assert!(
        cut.elapsed() < Duration::from_secs(2),
        "{:?}",
        cut.elapsed()
    );

    let run = d.run(None).await;
    d.fake.close_jetstream_sockets(1001, "going away");
    let (why, _, _) = run.ended(Duration::from_secs(5)).await;
    assert_dropped(&why, "1001");
}

#[tokio::test]
async fn a_drop_in_the_middle_of_a_burst_loses_nothing_after_the_reconnect() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let run = d.run(None).await;
    d.fake.cut_jetstream_after(4);
    let burst: Vec<String> = (0..10)
        .map(|i| {
            d.fake
                .add_mention(&format!("user{i}.test"), &format!("burst {i}"))
                .0
        })
        .collect();
    let (why, before, cursor) = run.ended(WAIT).await;
    assert_dropped(&why, "");
    assert!(before.len() <= 4, "{} arrived before the cut", before.len());
    let mut seen: BTreeSet<String> = remote_ids(&before).into_iter().collect();

    let mut run = d.run(cursor).await;
    let rest = run.mentions(10, WAIT).await;
    seen.extend(remote_ids(&rest));
    let all: BTreeSet<String> = burst.into_iter().collect();
    assert_eq!(seen, all, "every post of the burst arrived");
}

#[tokio::test]
async fn hostile_frames_are_skipped_and_the_stream_keeps_going() {
    let d = desk(&["acme"], Duration::from_secs(30)).await;
    let brand = d.fake.brand_did();
    let mut run = d.run(None).await;
    let now = || chrono::Utc::now().timestamp_micros() as u64;
    let post = |did: &str, rkey: &str, cid: &str, record: Value| {
        json!({"did": did, "time_us": now(), "kind": "commit", "commit": {"rev": "3l3qo2vutsw2b",
            "operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey,
            "record": record, "cid": cid}})
        .to_string()
    };
    let mention_of_us = json!({"text": "hi @brand.test", "createdAt": "2024-09-09T19:46:02.102Z",
        "facets": [{"index": {"byteStart": 4000, "byteEnd": 3}, "features": [
            {"$type": "app.bsky.richtext.facet#mention", "did": brand}]}]});
    let alice = d.fake.did_of("alice.test");
    for frame in [
        "garbage".to_string(),
        "{}".into(),
        "[1,2,3]".into(),
        json!({"did": alice, "time_us": "soon", "kind": "commit"}).to_string(),
        json!({"did": alice, "time_us": now(), "kind": "commit", "commit": 5}).to_string(),
        json!({"did": alice, "time_us": now(), "kind": "commit", "commit": {"operation": "create"}}).to_string(),
        json!({"did": alice, "time_us": now(), "kind": "identity", "identity": []}).to_string(),
        json!({"did": alice, "time_us": now(), "kind": "account", "account": "x"}).to_string(),
        format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)),
        post("not-a-did", "3kx", "bafyreix1", mention_of_us.clone()),
        post(&alice, "../../admin", "bafyreix2", mention_of_us.clone()),
        post(&alice, "3ky", "bafy rei", mention_of_us.clone()),
        post(&alice, "3kz", "bafyreix3", json!({"text": 5, "facets": "everywhere"})),
        post(&alice, "3kw", "bafyreix4", json!({"text": "acme", "langs": "en"})),
        post(&alice, "3kv", "bafyreix5", json!({"text": "x".repeat(600_000)})),
    ] {
        d.fake.push_jetstream_frame(&frame);
    }
    d.fake
        .push_jetstream_binary(&[0x28, 0xb5, 0x2f, 0xfd, 0, 1, 2]);
    // A facet with a bogus byte range still names us; customer text passes as it is.
    d.fake
        .push_jetstream_frame(&post(&alice, "3kbogus", "bafyreibogus1", mention_of_us));
    d.fake.push_jetstream_frame(&post(
        &alice,
        "3kping",
        "bafyreiping1",
        json!({"text": "<!channel> @here acme is down <@U123>", "createdAt": "2024-09-09T19:46:02.102Z"}),
    ));
    let (normal, _) = d.fake.add_mention("bob.test", "after all that");
    let got = run.mentions(3, WAIT).await;
    assert_eq!(
        remote_ids(&got),
        [
            format!("at://{alice}/app.bsky.feed.post/3kbogus"),
            format!("at://{alice}/app.bsky.feed.post/3kping"),
            normal
        ]
    );
    assert_eq!(got[1].text, "<!channel> @here acme is down <@U123>");
    assert!(run.is_running());

    // A message over the limit ends the connection, not the process.
    d.fake.push_jetstream_frame(&"y".repeat(3 << 20));
    let (why, _, _) = run.ended(WAIT).await;
    assert_dropped(&why, "larger than");
}

#[tokio::test]
async fn authors_are_looked_up_in_batches_once_and_identity_events_keep_them_current() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let mut run = d.run(None).await;
    d.fake.add_mention("alice.test", "first");
    run.mentions(1, WAIT).await;
    d.fake.add_mention("alice.test", "second");
    let got = run.mentions(1, WAIT).await;
    assert_eq!(got[0].author.handle, "alice.test");
    assert_eq!(d.fake.count("app.bsky.actor.getProfiles"), 1, "cached");

    // A burst of strangers: looked up together, 25 at most per call.
    let before = d.fake.count("app.bsky.actor.getProfiles");
    for i in 0..30 {
        d.fake.add_mention(&format!("stranger{i}.test"), "hello");
    }
    let got = run.mentions(30, WAIT).await;
    assert!(got.iter().all(|m| m.author.handle.starts_with("stranger")));
    let calls: Vec<usize> = d
        .fake
        .requests()
        .iter()
        .filter(|r| r.nsid == "app.bsky.actor.getProfiles")
        .map(|r| r.query.matches("actors=").count())
        .collect();
    assert!(calls.iter().all(|&n| (1..=25).contains(&n)), "{calls:?}");
    assert!(calls.len() - before < 30, "one call per author: {calls:?}");

    // Alice changes her handle: the identity event says so, no lookup needed.
    let lookups = d.fake.count("app.bsky.actor.getProfiles");
    d.fake.change_handle("alice.test", "alice.example.com");
    let (uri, _) = d.fake.add_mention("alice.example.com", "new name, same me");
    let got = run.mentions(1, WAIT).await;
    assert_eq!(got[0].author.handle, "alice.example.com");
    assert_eq!(
        got[0].url,
        format!(
            "https://bsky.app/profile/alice.example.com/post/{}",
            uri.rsplit('/').next().unwrap()
        )
    );
    assert_eq!(d.fake.count("app.bsky.actor.getProfiles"), lookups);
}

#[tokio::test]
async fn when_the_author_cannot_be_looked_up_the_mention_shows_the_did() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let mut run = d.run(None).await;
    d.fake
        .fail_next("app.bsky.actor.getProfiles", vec![Fault::status(502)]);
    let (uri, _) = d.fake.add_mention("alice.test", "anyone?");
    let got = run.mentions(1, WAIT).await;
    let did = d.fake.did_of("alice.test");
    assert_eq!(got[0].remote_id, uri);
    assert_eq!(got[0].author.handle, did);
    assert_eq!(got[0].author.id.as_deref(), Some(did.as_str()));
    assert_eq!(
        got[0].author.profile_url,
        format!("https://bsky.app/profile/{did}")
    );

    // A failure is not remembered: the next mention has the handle.
    d.fake.add_mention("alice.test", "hello again");
    assert_eq!(run.mentions(1, WAIT).await[0].author.handle, "alice.test");

    // A lookup that hangs holds the stream back 3 s at most.
    d.fake
        .fail_next("app.bsky.actor.getProfiles", vec![Fault::Hang]);
    let posted = Instant::now();
    d.fake.add_mention("bob.test", "hello?");
    let got = run.mentions(1, WAIT).await;
    assert_eq!(got[0].author.handle, d.fake.did_of("bob.test"));
    assert!(
        posted.elapsed() < Duration::from_secs(5),
        "{:?}",
        posted.elapsed()
    );
}

#[tokio::test]
async fn refusals_at_the_upgrade_say_what_the_desk_should_do() {
    let d = desk(&[], Duration::from_secs(30)).await;
    let (tx, _rx) = mpsc::channel(8);
    type Expected = fn(&StreamError) -> bool;
    let cases: Vec<(Fault, Expected)> = vec![
        (Fault::status(404), |e| {
            matches!(e, StreamError::Unsupported { .. })
        }),
        (Fault::status(403), |e| {
            matches!(e, StreamError::Refused { .. })
        }),
        (Fault::status(400), |e| {
            matches!(e, StreamError::Refused { .. })
        }),
        (
            Fault::too_many_requests(7),
            |e| matches!(e, StreamError::Dropped { after: Some(a), .. } if *a == Duration::from_secs(7)),
        ),
        (Fault::status(503), |e| {
            matches!(e, StreamError::Dropped { .. })
        }),
    ];
    for (fault, expected) in cases {
        let shown = format!("{fault:?}");
        d.fake.fail_next_subscribe(vec![fault]);
        let why = d.stream.run(None, tx.clone()).await;
        assert!(expected(&why), "{shown}: {why:?}");
        assert!(reason(&why).contains(&d.fake.jetstream_url()), "{why}");
    }

    // Nobody listening at the address: dropped, to be tried again.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{closed}/subscribe");
    let elsewhere = desk_at(
        FakeBluesky::start().await,
        &[],
        Duration::from_secs(30),
        url,
    )
    .await;
    let why = elsewhere.stream.run(None, tx).await;
    assert!(
        matches!(why, StreamError::Dropped { after: None, .. }),
        "{why:?}"
    );
}

#[tokio::test]
async fn without_jetstream_in_the_config_there_is_no_stream() {
    let fake = FakeBluesky::start().await;
    let (source, _dir) = source(&fake, &[], None).await;
    assert!(source.stream().is_none());
}

/// What reading the whole network costs, as numbers to decide on compression with: the
/// fake pushes posts shaped like real Jetstream commits (a few hundred bytes each, some
/// replies, links and images, 0.4 % of them ours) at 50/s (about the network's rate of
/// posts) and at 500/s, and the stream reads them on a thread of its own, whose CPU time
/// is the desk's whole cost of the stream (websocket, JSON, matching, lookups, handing
/// over). A measurement, not a test: run it in release,
/// `cargo test --release --test integration what_reading -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn what_reading_the_whole_network_costs() {
    for rate in [50, 500] {
        let m = measure(rate, Duration::from_secs(20));
        let per_10k = |cpu: Duration| cpu.as_secs_f64() * 10_000.0 / m.events as f64;
        println!(
            "jetstream at {rate} posts/s: {} events in {:.1} s, {:.0} B/event, {:.1} KB/s \
             ({:.2} GB/day); the stream's thread: {:.3} s CPU = {:.3} s per 10,000 events \
             ({:.2} % of a core); the whole process, fake included: {:.2} s per 10,000 \
             events; {} mentions handed over",
            m.events,
            m.wall.as_secs_f64(),
            m.bytes as f64 / m.events as f64,
            m.bytes as f64 / m.wall.as_secs_f64() / 1000.0,
            m.bytes as f64 / m.wall.as_secs_f64() * 86_400.0 / 1e9,
            m.stream_cpu.as_secs_f64(),
            per_10k(m.stream_cpu),
            m.stream_cpu.as_secs_f64() / m.wall.as_secs_f64() * 100.0,
            per_10k(m.process_cpu),
            m.mentions,
        );
    }
}

struct Measured {
    events: u64,
    bytes: u64,
    wall: Duration,
    stream_cpu: Duration,
    process_cpu: Duration,
    mentions: usize,
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, in ns).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        stat.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

/// CPU time of the whole process (`/proc/self/stat` utime + stime, in 1/100 s).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    Duration::from_millis((f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) * 10)
}

/// A post of the rest of the network, as the firehose carries them.
fn noise_record(i: u64, rng: &mut u64) -> Value {
    const WORDS: &[&str] = &[
        "the",
        "a",
        "today",
        "really",
        "coffee",
        "weather",
        "new",
        "thread",
        "love",
        "this",
        "art",
        "music",
        "game",
        "night",
        "why",
        "people",
        "good",
        "morning",
        "rain",
        "city",
        "train",
        "book",
        "reading",
        "finally",
        "week",
        "photo",
        "dog",
        "cat",
        "friends",
        "🌧️",
        "política",
        "bonjour",
        "日本語",
        "ありがとう",
        "vamos",
        "heute",
    ];
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let words = 6 + next() % 24;
    let text: Vec<&str> = (0..words)
        .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
        .collect();
    let text = text.join(" ");
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut record = json!({"$type": "app.bsky.feed.post", "createdAt": created,
                            "langs": ["en"], "text": text});
    let parent = format!(
        "at://did:plc:{:024x}/app.bsky.feed.post/3l{:011x}",
        next(),
        i
    );
    match next() % 10 {
        0..=2 => {
            record["reply"] = json!({
                "parent": {"cid": format!("bafyreig{:052x}", next() as u128 * 7), "uri": parent},
                "root": {"cid": format!("bafyreih{:052x}", next() as u128 * 3), "uri": parent}});
        }
        3 => {
            record["facets"] = json!([{"features": [{"$type": "app.bsky.richtext.facet#link",
                "uri": "https://example.com/some/article"}], "index": {"byteEnd": 20, "byteStart": 0}}]);
        }
        4 => {
            record["embed"] = json!({"$type": "app.bsky.embed.images", "images": [{"alt": "",
                "aspectRatio": {"height": 1500, "width": 2000},
                "image": {"$type": "blob", "mimeType": "image/jpeg", "size": 412_331,
                          "ref": {"$link": format!("bafkreia{:052x}", next() as u128)}}}]});
        }
        _ => {}
    }
    record
}

fn measure(rate: u64, over: Duration) -> Measured {
    let (fake_tx, fake_rx) = std::sync::mpsc::channel();
    let (load_tx, load_rx) = std::sync::mpsc::channel();
    let sentinel = Arc::new(std::sync::Mutex::new(None::<String>));
    let sentinel_set = sentinel.clone();
    // The network, on a thread of its own: the fake and what it pushes.
    let network = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let fake = FakeBluesky::start().await;
            fake_tx.send(fake.clone()).unwrap();
            fake.wait_for_jetstream_sockets(1, WAIT).await;
            let total = rate * over.as_secs();
            let start = tokio::time::Instant::now();
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            for i in 0..total {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64))
                    .await;
                match i % 500 {
                    0 => {
                        fake.add_mention(&format!("fan{i}.test"), "where is my order?");
                    }
                    250 => {
                        fake.add_post(&format!("kw{i}.test"), "is acme down for anyone else?");
                    }
                    _ => {
                        let did = format!("did:plc:{:024x}", i.wrapping_mul(0x2545_F491_4F6C_DD1D));
                        fake.emit_post(&did, &noise_record(i, &mut rng));
                    }
                }
            }
            let wall = start.elapsed();
            // One mention more marks the end for the reader.
            let (last, _) = fake.add_mention("last.test", "the end");
            *sentinel_set.lock().unwrap() = Some(last);
            // Serve lookups until the reader is done.
            fake.wait_for_jetstream_sockets(0, Duration::from_secs(120))
                .await;
            let (bytes, frames) = fake.jetstream_sent();
            load_tx.send((bytes, frames, wall)).unwrap();
        })
    });
    let fake = fake_rx.recv().unwrap();
    // The desk's side, on this thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let measured = rt.block_on(async move {
        let url = fake.jetstream_url();
        let d = desk_at(fake, &["acme"], Duration::from_secs(30), url).await;
        let (tx, mut rx) = mpsc::channel(1024);
        let run = d.stream.run(None, tx);
        let read = async {
            assert_eq!(rx.recv().await, Some(StreamEvent::Connected));
            let (cpu, process) = (thread_cpu(), process_cpu());
            let mut mentions = 0;
            loop {
                let Some(StreamEvent::Mentions { mentions: got, .. }) = rx.recv().await else {
                    panic!("the stream ended");
                };
                mentions += got.len();
                let last = sentinel.lock().unwrap().clone();
                if got.iter().any(|m| Some(&m.remote_id) == last.as_ref()) {
                    return (thread_cpu() - cpu, process_cpu() - process, mentions);
                }
            }
        };
        tokio::select! {
            why = run => panic!("the stream ended: {why}"),
            done = read => done,
        }
    });
    let (bytes, frames, wall) = load_rx.recv().unwrap();
    network.join().unwrap();
    let (stream_cpu, process_cpu, mentions) = measured;
    Measured {
        events: frames,
        bytes,
        wall,
        stream_cpu,
        process_cpu,
        mentions,
    }
}
