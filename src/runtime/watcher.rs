//! One watcher per source. Polling: read after the stored cursor, store what is new
//! together with the new cursor (one transaction, flushed), wake the outbox, sleep,
//! repeat. A restart resumes from the stored cursor, so nothing is skipped and nothing is
//! re-posted.
//!
//! A source with a push channel ([`MentionStream`]) is also streamed: once the stream is
//! connected and subscribed, the watcher catches up by polling from the cursor (so what
//! was said while it was down is not missed), then stores each streamed mention as it
//! arrives and polls only every `reconcile_every` as a safety net. Stream and poll may
//! both deliver a post; the store's dedupe keys absorb the second. A dropped stream is
//! connected again after a backoff with jitter, and the poll goes back to its own
//! interval meanwhile; a server without streaming is polled, and `/healthz` says so.

use crate::ports::Clock;
use crate::ports::DeliveryError;
use crate::ports::Surface;
use crate::ports::{Ingested, SharedStore, Store, StoreError};
use crate::ports::{MentionStream, Source, StreamError, StreamEvent};
use crate::runtime::language::Languages;
use crate::wire::hints::backoff;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// Where a watcher tells the team that its source stopped for a reason a person must
/// act on (a spent budget, a revoked token).
pub type Announcers = Vec<Arc<dyn Surface>>;

/// A server without streaming is asked again this often.
const RETRY_UNSUPPORTED: Duration = Duration::from_secs(3600);
/// A refused stream (token, scope) is tried again this often; the poll keeps reporting
/// the refusal to the team meanwhile.
const RETRY_REFUSED: Duration = Duration::from_secs(900);
/// A connection that stayed up this long was healthy: its drop starts the backoff anew.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// Streamed events waiting to be stored; the stream waits when this many are queued.
const QUEUED_EVENTS: usize = 256;

/// How each source on this replica is read right now, for `/healthz` and `/metrics`.
#[derive(Clone, Default)]
pub struct Modes(Arc<Mutex<BTreeMap<String, SourceMode>>>);

/// How one source is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceMode {
    /// `polling`, `connecting`, `streaming` or `reconnecting`.
    pub mode: &'static str,
    /// The stream (no secrets), when the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Why the source is polled or reconnecting, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub since: DateTime<Utc>,
}

impl Modes {
    pub fn snapshot(&self) -> BTreeMap<String, SourceMode> {
        self.0.lock().expect("modes lock").clone()
    }

    fn set(&self, key: &str, mode: SourceMode) {
        let mut all = self.0.lock().expect("modes lock");
        // `since` is when the mode began, not when it was last confirmed.
        if let Some(old) = all.get(key) {
            if old.mode == mode.mode && old.detail == mode.detail {
                return;
            }
        }
        all.insert(key.to_string(), mode);
    }

    fn remove(&self, key: &str) {
        self.0.lock().expect("modes lock").remove(key);
    }

    /// `mentionbridge_source_streaming`: 1 while a source's stream is up on this replica.
    pub fn exposition(&self) -> String {
        let mut out = String::from(
            "# HELP mentionbridge_source_streaming 1 while the source's push stream is connected on this replica, 0 while it is polled.\n# TYPE mentionbridge_source_streaming gauge\n",
        );
        for (key, mode) in self.snapshot() {
            let up = u8::from(mode.mode == "streaming");
            out.push_str(&format!(
                "mentionbridge_source_streaming{{source=\"{}\"}} {up}\n",
                crate::reports::escape_label(&key)
            ));
        }
        out
    }
}

/// One source's watcher; see the module's doc.
pub struct Watcher {
    pub source: Arc<dyn Source>,
    /// Under the watcher's lease (a fenced handle) when replicas share the store.
    pub store: SharedStore,
    pub wake_outbox: Arc<Notify>,
    pub max_backoff: Duration,
    pub announcers: Announcers,
    pub clock: Arc<dyn Clock>,
    pub modes: Modes,
    /// Each mention's language is detected before it is stored.
    pub languages: Languages,
}

/// Where the stream stands between two turns of the watcher's loop.
enum Link {
    /// Connecting or connected: the task runs the stream, its events come on `events`.
    Open {
        task: tokio::task::JoinHandle<StreamError>,
        events: mpsc::Receiver<StreamEvent>,
        since: Instant,
        up: bool,
    },
    /// Down: connect again at `at`.
    Closed { at: Instant },
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Link::Open { task, .. } = self {
            task.abort();
        }
    }
}

impl Watcher {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let key = self.source.cursor_key();
        let stream = self.source.stream();
        let mut polls = Polls {
            failures: 0,
            not_before: Instant::now(),
            announced: None,
        };
        let mut link = Link::Closed { at: Instant::now() };
        let mut stream_failures: u32 = 0;
        let mut next_poll = Instant::now();
        self.modes.set(&key, self.mode("polling", &stream, None));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let streaming = matches!(link, Link::Open { up: true, .. });
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(next_poll) => {
                    let interval = match (&stream, streaming) {
                        (Some(s), true) => s.reconcile_every(),
                        _ => self.source.poll_interval(),
                    };
                    next_poll = Instant::now() + self.poll_round(&key, &mut polls, interval).await;
                }
                turn = next_turn(&mut link), if stream.is_some() => match turn {
                    Turn::ConnectDue => {
                        let stream = stream.as_ref().expect("guarded");
                        link = self.connect(stream.clone()).await;
                        self.modes.set(&key, self.mode("connecting", &Some(stream.clone()), None));
                    }
                    Turn::Event(StreamEvent::Connected) => {
                        if let Link::Open { up, .. } = &mut link {
                            *up = true;
                        }
                        tracing::info!(source = %key, stream = %stream.as_ref().map(|s| s.describe()).unwrap_or_default(), "stream connected; catching up by polling");
                        self.modes.set(&key, self.mode("streaming", &stream, None));
                        // Catch up now (what was said while the stream was down), unless
                        // the platform asked the poll to wait.
                        next_poll = polls.not_before.max(Instant::now());
                    }
                    Turn::Event(StreamEvent::Mentions { mentions, cursor }) => {
                        let stream_key = stream.as_ref().and_then(|s| s.cursor_key());
                        self.store_streamed(&key, stream_key.as_deref(), &mentions, cursor.as_deref()).await;
                    }
                    Turn::Ended(ended, lasted) => {
                        if lasted >= HEALTHY_AFTER {
                            stream_failures = 0;
                        }
                        let (wait, mode) = match &ended {
                            StreamError::Dropped { after, reason } => {
                                let wait = jittered(backoff(stream_failures, *after, self.max_backoff));
                                stream_failures += 1;
                                tracing::warn!(source = %key, %reason, retry_in_ms = wait.as_millis() as u64, "stream dropped; polling until it is back");
                                (wait, self.mode("reconnecting", &stream, Some(reason.clone())))
                            }
                            StreamError::Refused { reason } => {
                                tracing::error!(source = %key, %reason, "stream refused; polling instead, trying the stream again later");
                                (RETRY_REFUSED, self.mode("polling", &stream, Some(format!("stream refused: {reason}"))))
                            }
                            StreamError::Unsupported { reason } => {
                                tracing::warn!(source = %key, %reason, "no streaming on this server; polling instead");
                                (RETRY_UNSUPPORTED, self.mode("polling", &stream, Some(format!("no streaming: {reason}"))))
                            }
                        };
                        self.modes.set(&key, mode);
                        link = Link::Closed { at: Instant::now() + wait };
                        // The poll takes over at its own interval until the stream is back.
                        next_poll = next_poll
                            .min(Instant::now() + self.source.poll_interval())
                            .max(polls.not_before);
                    }
                },
            }
        }
        drop(link);
        self.modes.remove(&key);
        tracing::info!(source = %key, "watcher stopped");
    }

    fn mode(
        &self,
        mode: &'static str,
        stream: &Option<Arc<dyn MentionStream>>,
        detail: Option<String>,
    ) -> SourceMode {
        SourceMode {
            mode,
            stream: stream.as_ref().map(|s| s.describe()),
            detail,
            since: self.clock.now(),
        }
    }

    async fn connect(&self, stream: Arc<dyn MentionStream>) -> Link {
        let cursor = match stream.cursor_key() {
            Some(k) => match self.store.cursor(&k).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(stream = %stream.describe(), error = %e, "could not read the stream's cursor; connecting again shortly");
                    return Link::Closed {
                        at: Instant::now() + Duration::from_secs(1),
                    };
                }
            },
            None => None,
        };
        let (tx, events) = mpsc::channel(QUEUED_EVENTS);
        let task = tokio::spawn(async move { stream.run(cursor, tx).await });
        Link::Open {
            task,
            events,
            since: Instant::now(),
            up: false,
        }
    }

    /// Store streamed mentions (with the stream's own cursor, when it has one) and wake
    /// the outbox. A failure is logged: the catch-up poll after the next connect, or the
    /// next reconciliation poll, brings the mentions again.
    async fn store_streamed(
        &self,
        key: &str,
        stream_key: Option<&str>,
        mentions: &[crate::domain::Mention],
        cursor: Option<&str>,
    ) {
        let (source, cursor) = match stream_key {
            Some(k) => (k, cursor),
            // The poll's cursor is the poll's: a stream without its own never moves it.
            None => (key, None),
        };
        if mentions.is_empty() && cursor.is_none() {
            return;
        }
        let mentions = self.languages.stamp(mentions).await;
        let stored = async {
            let done = self
                .store
                .ingest(source, &mentions, cursor, self.clock.now())
                .await?;
            self.store.flush().await?;
            Ok::<Ingested, StoreError>(done)
        }
        .await;
        match stored {
            Ok(done) if done.changed() => {
                tracing::info!(source = %key, new_tickets = done.new_tickets.len(), followups = done.followups.len(), "streamed mentions stored");
                self.wake_outbox.notify_one();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(source = %key, error = %e, "streamed mentions not stored; the next poll brings them again")
            }
        }
    }

    /// One poll (pages follow at once while `more`); returns the pause before the next.
    async fn poll_round(&self, key: &str, polls: &mut Polls, interval: Duration) -> Duration {
        match poll_once(
            self.source.as_ref(),
            self.store.as_ref(),
            key,
            self.clock.as_ref(),
            &self.languages,
        )
        .await
        {
            Ok((done, more)) => {
                polls.failures = 0;
                if done.changed() {
                    tracing::info!(source = %key, new_tickets = done.new_tickets.len(), followups = done.followups.len(), "mentions stored");
                    self.wake_outbox.notify_one();
                }
                if more {
                    Duration::ZERO
                } else {
                    interval
                }
            }
            Err(DeliveryError::Retry { after, reason }) => {
                let wait = backoff(polls.failures, after, self.max_backoff);
                polls.failures += 1;
                polls.not_before = Instant::now() + wait;
                tracing::warn!(source = %key, %reason, retry_in_ms = wait.as_millis() as u64, "polling failed; backing off");
                wait
            }
            Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                tracing::error!(source = %key, %reason, "polling refused; will try again later");
                let today = Utc::now().date_naive();
                if polls.announced.as_ref() != Some(&(today, reason.clone())) {
                    let text = format!("Mentions are not being collected: {reason}");
                    for surface in &self.announcers {
                        if let Err(e) = surface.announce(&text).await {
                            tracing::warn!(error = %e, "could not warn the team in chat");
                        }
                    }
                    polls.announced = Some((today, reason));
                }
                let wait = interval.max(self.max_backoff);
                polls.not_before = Instant::now() + wait;
                wait
            }
        }
    }
}

/// The poll's own failure count, what it last told the team, and how long the platform
/// asked it to wait.
struct Polls {
    failures: u32,
    /// No poll before this, not even a stream's catch-up (a 429's `Retry-After`).
    not_before: Instant,
    /// Each distinct refusal is announced once a day, not at every poll.
    announced: Option<(chrono::NaiveDate, String)>,
}

/// What the stream's side of the watcher has for it next.
enum Turn {
    /// The stream is down and due to connect again.
    ConnectDue,
    Event(StreamEvent),
    /// The stream's connection ended, why, and after how long.
    Ended(StreamError, Duration),
}

async fn next_turn(link: &mut Link) -> Turn {
    match link {
        Link::Closed { at } => {
            tokio::time::sleep_until(*at).await;
            Turn::ConnectDue
        }
        Link::Open {
            task,
            events,
            since,
            ..
        } => match events.recv().await {
            Some(event) => Turn::Event(event),
            // Every sender is gone: the task ended. Learn why.
            None => {
                let ended = match task.await {
                    Ok(why) => why,
                    Err(e) => StreamError::Dropped {
                        after: None,
                        reason: format!("the stream task failed: {e}"),
                    },
                };
                Turn::Ended(ended, since.elapsed())
            }
        },
    }
}

/// `wait` spread between three quarters and all of it, so many desks (or sources) that
/// lost their streams at once do not come back at the same instant.
fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(wait.as_nanos() as u64);
    let spread = (h.finish() % 1_000) as u32;
    wait.mul_f64(0.75 + f64::from(spread) / 4_000.0)
}

/// The polling watcher of one source, as before streams existed (benches and tools).
pub async fn watch_source(
    source: Arc<dyn Source>,
    store: SharedStore,
    wake_outbox: Arc<Notify>,
    max_backoff: Duration,
    announcers: Announcers,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    Watcher {
        source,
        store,
        wake_outbox,
        max_backoff,
        announcers,
        clock,
        modes: Modes::default(),
        languages: Languages::off(),
    }
    .run(shutdown)
    .await
}

async fn poll_once(
    source: &dyn Source,
    store: &dyn Store,
    key: &str,
    clock: &dyn Clock,
    languages: &Languages,
) -> Result<(Ingested, bool), DeliveryError> {
    let store_err = |e: StoreError| DeliveryError::retry(e.to_string());
    let cursor = store.cursor(key).await.map_err(store_err)?;
    let batch = source.poll(cursor.as_deref()).await?;
    let mentions = languages.stamp(&batch.mentions).await;
    let created = store
        .ingest(key, &mentions, batch.cursor.as_deref(), clock.now())
        .await
        .map_err(store_err)?;
    // Durable before anything is acknowledged or acted on.
    store.flush().await.map_err(store_err)?;
    Ok((created, batch.more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_three_quarters_and_all_of_the_wait() {
        let wait = Duration::from_secs(8);
        for _ in 0..200 {
            let j = jittered(wait);
            assert!(j >= Duration::from_secs(6) && j <= wait, "{j:?}");
        }
    }
}
