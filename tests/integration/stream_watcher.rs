//! The watcher with a push stream, against a scripted stream and source on a real sled
//! store: the catch-up poll on every connect, the stream and the poll racing for one
//! post, the stream's own cursor stored with its mentions and handed back on reconnect,
//! reconciliation at the slow interval, and the fall-back to polling.

use async_trait::async_trait;
use mentionbridge::domain::{Author, Mention, Platform, Visibility};
use mentionbridge::ports::{
    Batch, DeliveryError, MentionStream, SharedStore, Source, StreamError, StreamEvent, SystemClock,
};
use mentionbridge::runtime::watcher::{Modes, Watcher};
use mentionbridge::store::SledStore;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

fn mention(id: &str) -> Mention {
    Mention {
        platform: Platform::Mastodon,
        network: None,
        account: "brand".into(),
        remote_id: id.into(),
        url: format!("https://m.example/{id}"),
        author: Author {
            handle: format!("c{id}"),
            name: format!("C {id}"),
            profile_url: String::new(),
            id: None,
            followers: None,
        },
        text: "where is my order".into(),
        language: Some("en".into()),
        created_at: chrono::Utc::now(),
        in_reply_to: None,
        visibility: Visibility::Public,
        reply_context: None,
        external_id: None,
        detected_language: None,
    }
}

/// A source whose posts tests add; its cursor is how many it has handed out.
struct Posts {
    posts: Mutex<Vec<Mention>>,
    /// When each poll happened.
    polls: Mutex<Vec<Instant>>,
    interval: Duration,
    stream: Option<Arc<dyn MentionStream>>,
    /// Every poll is refused with 429 and this `Retry-After`.
    refuse_for: Mutex<Option<Duration>>,
}

#[async_trait]
impl Source for Posts {
    fn cursor_key(&self) -> String {
        "scripted:brand".into()
    }
    fn poll_interval(&self) -> Duration {
        self.interval
    }
    async fn poll(&self, cursor: Option<&str>) -> Result<Batch, DeliveryError> {
        self.polls.lock().unwrap().push(Instant::now());
        if let Some(after) = *self.refuse_for.lock().unwrap() {
            return Err(DeliveryError::Retry {
                after: Some(after),
                reason: "429".into(),
            });
        }
        let from: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let posts = self.posts.lock().unwrap();
        Ok(Batch {
            mentions: posts[from.min(posts.len())..].to_vec(),
            cursor: Some(posts.len().to_string()),
            more: false,
        })
    }
    fn stream(&self) -> Option<Arc<dyn MentionStream>> {
        self.stream.clone()
    }
}

/// One connection's script: what it sends, then how it ends (`None`: it stays up).
struct Session {
    /// How long the connection takes to come up.
    pause: Duration,
    events: Vec<StreamEvent>,
    end: Option<StreamError>,
}

/// A stream that plays one session per connect and records the cursor it was given.
struct Scripted {
    sessions: Mutex<VecDeque<Session>>,
    cursors: Mutex<Vec<Option<String>>>,
    own_cursor: bool,
    reconcile: Duration,
    /// Events pushed while a session is up (after its script).
    live: Mutex<Option<mpsc::Sender<StreamEvent>>>,
}

#[async_trait]
impl MentionStream for Scripted {
    fn describe(&self) -> String {
        "scripted stream".into()
    }
    fn cursor_key(&self) -> Option<String> {
        self.own_cursor.then(|| "scripted:brand:stream".to_string())
    }
    fn reconcile_every(&self) -> Duration {
        self.reconcile
    }
    async fn run(&self, cursor: Option<String>, events: mpsc::Sender<StreamEvent>) -> StreamError {
        self.cursors.lock().unwrap().push(cursor);
        let session = self.sessions.lock().unwrap().pop_front();
        let Some(session) = session else {
            return StreamError::Unsupported {
                reason: "script over".into(),
            };
        };
        tokio::time::sleep(session.pause).await;
        for e in session.events {
            if events.send(e).await.is_err() {
                return StreamError::Dropped {
                    after: None,
                    reason: "watcher gone".into(),
                };
            }
        }
        match session.end {
            Some(end) => end,
            None => {
                *self.live.lock().unwrap() = Some(events.clone());
                events.closed().await;
                StreamError::Dropped {
                    after: None,
                    reason: "watcher gone".into(),
                }
            }
        }
    }
}

struct Rig {
    store: SharedStore,
    source: Arc<Posts>,
    stream: Arc<Scripted>,
    modes: Modes,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A session that connects after `pause` and then stays up, silent.
fn connected_after(pause: Duration) -> Session {
    Session {
        pause,
        events: vec![StreamEvent::Connected],
        end: None,
    }
}

fn rig(sessions: Vec<Session>, own_cursor: bool, poll: Duration, reconcile: Duration) -> Rig {
    let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
    let stream = Arc::new(Scripted {
        sessions: Mutex::new(sessions.into()),
        cursors: Mutex::new(Vec::new()),
        own_cursor,
        reconcile,
        live: Mutex::new(None),
    });
    let source = Arc::new(Posts {
        posts: Mutex::new(Vec::new()),
        polls: Mutex::new(Vec::new()),
        interval: poll,
        stream: Some(stream.clone() as Arc<dyn MentionStream>),
        refuse_for: Mutex::new(None),
    });
    let modes = Modes::default();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(
        Watcher {
            source: source.clone(),
            store: store.clone(),
            wake_outbox: Arc::new(Notify::new()),
            max_backoff: Duration::from_millis(200),
            announcers: Vec::new(),
            clock: Arc::new(SystemClock),
            modes: modes.clone(),
            languages: Default::default(),
        }
        .run(stop_rx),
    );
    Rig {
        store,
        source,
        stream,
        modes,
        stop,
        task,
    }
}

impl Rig {
    async fn tickets(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .store
            .all_tickets()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.mention.remote_id)
            .collect();
        ids.sort();
        ids
    }

    async fn until(&self, what: &str, mut ok: impl FnMut(&Rig) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn until_tickets(&self, want: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let have = self.tickets().await;
            if have == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tickets {have:?}, wanted {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn mode(&self) -> String {
        self.modes
            .snapshot()
            .get("scripted:brand")
            .map(|m| m.mode.to_string())
            .unwrap_or_default()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the watcher stops when told")
            .unwrap();
        assert!(
            self.modes.snapshot().is_empty(),
            "a stopped watcher leaves no mode"
        );
    }
}

fn mentions(ids: &[&str], cursor: Option<&str>) -> StreamEvent {
    StreamEvent::Mentions {
        mentions: ids.iter().map(|i| mention(i)).collect(),
        cursor: cursor.map(str::to_string),
    }
}

#[tokio::test]
async fn a_connect_catches_up_by_polling_and_the_stream_and_the_poll_make_one_ticket_per_post() {
    // Slow polls, so any poll after the first is the catch-up the connect caused.
    let r = rig(
        vec![connected_after(Duration::from_millis(300))],
        false,
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    r.until("the first poll", |r| {
        r.source.polls.lock().unwrap().len() == 1
    })
    .await;
    // Said while the stream was connecting: only the catch-up poll can bring it.
    r.source.posts.lock().unwrap().push(mention("1"));
    r.until("the catch-up poll", |r| {
        r.source.polls.lock().unwrap().len() >= 2
    })
    .await;
    r.until_tickets(&["1"]).await;
    assert_eq!(r.mode(), "streaming");
    // A post the stream and the poll both deliver: one ticket.
    r.source.posts.lock().unwrap().push(mention("2"));
    let live = r
        .stream
        .live
        .lock()
        .unwrap()
        .clone()
        .expect("session is up");
    live.send(mentions(&["2"], None)).await.unwrap();
    live.send(mentions(&["3"], None)).await.unwrap();
    r.until_tickets(&["1", "2", "3"]).await;
    // The stream never moved the poll's cursor: the poll still owes "2".
    assert_eq!(
        r.store.cursor("scripted:brand").await.unwrap().as_deref(),
        Some("1")
    );
    let polls = r.source.polls.lock().unwrap().len();
    assert_eq!(polls, 2, "no poll but the first and the catch-up");
    r.stop().await;
}

#[tokio::test]
async fn a_dropped_stream_reconnects_from_its_stored_cursor_and_catches_up_again() {
    let r = rig(
        vec![
            Session {
                pause: Duration::ZERO,
                events: vec![
                    StreamEvent::Connected,
                    mentions(&["a"], Some("100")),
                    // A checkpoint: no mention, the position moves on.
                    mentions(&[], Some("150")),
                ],
                end: Some(StreamError::Dropped {
                    after: None,
                    reason: "connection reset".into(),
                }),
            },
            Session {
                pause: Duration::ZERO,
                events: vec![StreamEvent::Connected, mentions(&["a", "b"], Some("200"))],
                end: None,
            },
        ],
        true,
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    r.until_tickets(&["a", "b"]).await;
    let cursors = r.stream.cursors.lock().unwrap().clone();
    assert_eq!(cursors, vec![None, Some("150".to_string())]);
    assert_eq!(
        r.store
            .cursor("scripted:brand:stream")
            .await
            .unwrap()
            .as_deref(),
        Some("200")
    );
    // The first poll, then one catch-up per connect.
    r.until("three polls", |r| r.source.polls.lock().unwrap().len() == 3)
        .await;
    assert_eq!(r.mode(), "streaming");
    r.stop().await;
}

#[tokio::test]
async fn while_the_stream_is_up_the_poll_runs_at_the_reconciliation_interval() {
    let r = rig(
        vec![connected_after(Duration::ZERO)],
        false,
        Duration::from_millis(50),
        Duration::from_millis(600),
    );
    r.until("streaming", |r| r.mode() == "streaming").await;
    let from = r.source.polls.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let polls = r.source.polls.lock().unwrap().len() - from;
    // At the 50 ms poll interval this would be about 30.
    assert!(
        (1..=4).contains(&polls),
        "{polls} polls in 1.5 s at a 600 ms reconciliation interval"
    );
    r.stop().await;
}

#[tokio::test]
async fn a_server_without_streaming_is_polled_and_says_so() {
    let r = rig(
        vec![Session {
            pause: Duration::ZERO,
            events: vec![],
            end: Some(StreamError::Unsupported {
                reason: "no streaming URL".into(),
            }),
        }],
        false,
        Duration::from_millis(50),
        Duration::from_secs(3600),
    );
    r.until("the fall-back", |r| {
        r.modes
            .snapshot()
            .get("scripted:brand")
            .and_then(|m| m.detail.clone())
            .is_some_and(|d| d.contains("no streaming URL"))
    })
    .await;
    assert_eq!(r.mode(), "polling");
    r.source.posts.lock().unwrap().push(mention("p"));
    r.until_tickets(&["p"]).await;
    let from = r.source.polls.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        r.source.polls.lock().unwrap().len() - from >= 4,
        "polled at its own interval"
    );
    // Not hammered: one connect attempt, the next only after an hour.
    assert_eq!(r.stream.cursors.lock().unwrap().len(), 1);
    r.stop().await;
}

#[tokio::test]
async fn a_flapping_stream_backs_off_instead_of_reconnecting_in_a_loop() {
    let drop = || Session {
        pause: Duration::ZERO,
        events: vec![StreamEvent::Connected],
        end: Some(StreamError::Dropped {
            after: None,
            reason: "reset".into(),
        }),
    };
    let r = rig(
        (0..50).map(|_| drop()).collect(),
        false,
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let connects = r.stream.cursors.lock().unwrap().len();
    // Backoff of at least 150 ms (three quarters of the 200 ms cap) between connects.
    assert!(
        (2..=8).contains(&connects),
        "{connects} connects in one second"
    );
    assert_eq!(r.mode(), "reconnecting");
    r.stop().await;
}

#[tokio::test]
async fn a_connect_does_not_catch_up_while_the_platform_asked_the_poll_to_wait() {
    let r = rig(
        vec![connected_after(Duration::from_millis(300))],
        false,
        Duration::from_millis(50),
        Duration::from_secs(3600),
    );
    *r.source.refuse_for.lock().unwrap() = Some(Duration::from_secs(60));
    r.until("streaming", |r| r.mode() == "streaming").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        r.source.polls.lock().unwrap().len(),
        1,
        "the 429's wait holds the catch-up poll too"
    );
    r.stop().await;
}
