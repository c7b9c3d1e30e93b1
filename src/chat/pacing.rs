//! Pacing the calls a chat surface takes. Slack posts about one message a second per
//! channel (short bursts allowed) and Discord limits each route's bucket. Calls go
//! through one shared gate per (method, channel), one at a time:
//! - ahead of the limits: a gate with a documented rate (Slack's message rate per
//!   channel) lets a burst through and then one call per interval, so a backlog drains at
//!   the surface's pace instead of drawing 429s; a gate whose bucket the surface reported
//!   empty (Discord's `X-RateLimit-Remaining: 0`) waits for its reset;
//! - behind them: a 429 for one call means every call of that kind to that channel gets
//!   one too until its `Retry-After` has passed, so it closes the gate for everybody for
//!   that wait, and for a while afterwards calls are spaced by it;
//! - in order of urgency: waiting calls go new cards first, then notes, then refreshes
//!   (see [`Urgency`]), oldest first within each.
//!
//! A refused call is tried again at its turn (a 429 means the surface did nothing),
//! unless the wait is long: then the caller gets the 429 back and the outbox defers the
//! job.

use crate::ports::{urgency, Urgency};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Waits up to this long are taken in turn at the gate; a longer one goes back to the
/// outbox, which defers the job instead of holding a worker.
const WAIT_IN_LINE_UP_TO: Duration = Duration::from_secs(15);
/// A call refused this many times in a row goes back to the outbox.
const TRIES: u32 = 4;
/// After a 429, calls through the gate stay spaced this long.
const PACED_FOR: Duration = Duration::from_secs(60);
/// Bounds on a surface's `Retry-After` as a spacing: a zero or absurd value neither
/// spins nor stalls.
const SHORTEST: Duration = Duration::from_millis(50);
const LONGEST: Duration = Duration::from_secs(3600);

/// A surface's documented pace for the gates of one method: `burst` calls at once, then
/// one every `every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub every: Duration,
    pub burst: u32,
}

#[derive(Default)]
struct Gate {
    /// No call goes through before this.
    open_at: Option<Instant>,
    /// While paced, each call moves `open_at` this far on.
    spacing: Duration,
    paced_until: Option<Instant>,
    /// The documented pace: calls it still allows at once, as of `filled_at`.
    tokens: f64,
    filled_at: Option<Instant>,
    /// Who waits, by urgency then arrival, and whether a call is under way.
    line: BTreeSet<(Urgency, u64)>,
    busy: bool,
}

/// A gate's state and the bell that rings when its turn moves on.
#[derive(Default)]
struct Door {
    gate: Mutex<Gate>,
    turn: Notify,
}

/// The gates of one surface, shared by every worker.
#[derive(Default)]
pub struct Pacing {
    gates: Mutex<HashMap<String, Arc<Door>>>,
    /// Documented paces by method (the part of a gate's key before the first space).
    limits: HashMap<String, Limit>,
    refused: AtomicU64,
    waiting: AtomicU64,
    arrivals: AtomicU64,
}

/// What the gate needs to know about a call's outcome.
pub enum Answer {
    /// The surface refused with 429; try again after this long.
    RateLimited(Duration),
    /// The surface's headers say the bucket is empty until this long from now.
    BucketEmpty(Duration),
    Other,
}

/// A place in a gate's line (and the call under way once it is this one's turn): gives
/// the turn on when dropped, whether the call finished or its caller gave up.
struct Place<'a> {
    door: &'a Door,
    pacing: &'a Pacing,
    key: (Urgency, u64),
    holding: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut g = self.door.gate.lock().unwrap_or_else(|e| e.into_inner());
        if self.holding {
            g.busy = false;
        } else {
            g.line.remove(&self.key);
        }
        drop(g);
        self.pacing.waiting.fetch_sub(1, Ordering::Relaxed);
        self.door.turn.notify_waiters();
    }
}

impl Pacing {
    /// Pace the gates of `method` ahead of the surface's limit.
    pub fn with_limit(mut self, method: &str, limit: Limit) -> Pacing {
        self.limits.insert(method.to_string(), limit);
        self
    }

    fn door(&self, key: &str) -> Arc<Door> {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// How many 429s this surface has answered (for logs and tests of the pacing).
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// How many calls wait at this surface's gates or are under way (`/metrics`).
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Wait for this call's turn at `door`: nobody under way and nobody more urgent (or
    /// as urgent and older) in line.
    async fn take_turn<'a>(&'a self, door: &'a Door) -> Place<'a> {
        let key = (urgency(), self.arrivals.fetch_add(1, Ordering::Relaxed));
        self.waiting.fetch_add(1, Ordering::Relaxed);
        door.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .line
            .insert(key);
        let mut place = Place {
            door,
            pacing: self,
            key,
            holding: false,
        };
        loop {
            let rung = door.turn.notified();
            tokio::pin!(rung);
            rung.as_mut().enable();
            {
                let mut g = door.gate.lock().unwrap_or_else(|e| e.into_inner());
                if !g.busy && g.line.first() == Some(&key) {
                    g.line.remove(&key);
                    g.busy = true;
                    place.holding = true;
                    return place;
                }
            }
            rung.await;
        }
    }

    /// Make a call through the gate `key` (method and channel). `judge` reads the outcome;
    /// `held` makes the error returned when the gate stays closed longer than a worker
    /// should wait in line.
    pub async fn send<T, E, F, Fut>(
        &self,
        key: &str,
        mut call: F,
        judge: impl Fn(&Result<T, E>) -> Answer,
        held: impl Fn(Duration) -> E,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let door = self.door(key);
        let limit = self
            .limits
            .get(key.split(' ').next().unwrap_or(key))
            .copied();
        let mut tries = 0;
        loop {
            let _turn = self.take_turn(&door).await;
            let wait = {
                let mut g = door.gate.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let open = g.open_at.filter(|at| *at > now).unwrap_or(now);
                let at = match limit {
                    Some(limit) => {
                        let at = open.max(g.take_token(limit, now));
                        if at - now > WAIT_IN_LINE_UP_TO {
                            // Not made: its share of the pace is given back.
                            g.tokens += 1.0;
                        }
                        at
                    }
                    None => open,
                };
                at - now
            };
            if wait > WAIT_IN_LINE_UP_TO {
                return Err(held(wait));
            }
            if wait > Duration::ZERO {
                tokio::time::sleep(wait).await;
            }
            let result = call().await;
            let now = Instant::now();
            let mut g = door.gate.lock().unwrap_or_else(|e| e.into_inner());
            let paced = g.paced_until.is_some_and(|until| now < until);
            match judge(&result) {
                Answer::RateLimited(wait) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    let wait = wait.clamp(SHORTEST, LONGEST);
                    g.open_at = Some(now + wait);
                    g.spacing = wait;
                    g.paced_until = Some(now + PACED_FOR);
                    tries += 1;
                    if tries >= TRIES || wait > WAIT_IN_LINE_UP_TO {
                        return result;
                    }
                    tracing::info!(
                        gate = key,
                        wait_ms = wait.as_millis() as u64,
                        "rate-limited; holding back every call through this gate"
                    );
                }
                Answer::BucketEmpty(wait) => {
                    g.open_at = Some(now + wait.clamp(Duration::ZERO, LONGEST));
                    return result;
                }
                Answer::Other => {
                    if paced {
                        g.open_at = Some(now + g.spacing);
                    }
                    return result;
                }
            }
        }
    }
}

impl Gate {
    /// Take one call from the documented pace; returns when that call may go (now, or
    /// once the bucket has refilled enough).
    fn take_token(&mut self, limit: Limit, now: Instant) -> Instant {
        let burst = f64::from(limit.burst.max(1));
        let every = limit.every.max(Duration::from_millis(1)).as_secs_f64();
        let tokens = match self.filled_at {
            None => burst,
            Some(at) => {
                (self.tokens + now.saturating_duration_since(at).as_secs_f64() / every).min(burst)
            }
        };
        // Spend it now; a negative balance is the wait for the call's token to refill.
        self.tokens = tokens - 1.0;
        self.filled_at = Some(now);
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens * every)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const PACE: Duration = SHORTEST;

    /// A surface that takes one call per `PACE` and answers 429 (wait `PACE`) otherwise.
    struct Paced {
        last: Mutex<Option<Instant>>,
        refused: AtomicU32,
        taken: AtomicU32,
    }

    impl Paced {
        async fn call(&self) -> Result<(), Duration> {
            let now = Instant::now();
            let mut last = self.last.lock().unwrap();
            if last.is_some_and(|l| now - l < PACE) {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(PACE);
            }
            *last = Some(now);
            self.taken.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// Twenty workers post to one channel at once; every post gets through.
    async fn twenty_workers(surface: &Arc<Paced>, pacing: &Arc<Pacing>) {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (surface, pacing) = (surface.clone(), pacing.clone());
            workers.spawn(async move {
                pacing
                    .send(
                        "chat.postMessage C1",
                        || surface.call(),
                        |r| match r {
                            Err(wait) => Answer::RateLimited(*wait),
                            Ok(()) => Answer::Other,
                        },
                        |wait| wait,
                    )
                    .await
            });
        }
        while let Some(done) = workers.join_next().await {
            assert_eq!(done.unwrap(), Ok(()));
        }
        assert_eq!(surface.taken.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn twenty_workers_on_one_channel_draw_one_refusal_at_most_and_all_get_through() {
        let surface = Arc::new(Paced {
            last: Mutex::new(None),
            refused: AtomicU32::new(0),
            taken: AtomicU32::new(0),
        });
        let pacing = Arc::new(Pacing::default());
        twenty_workers(&surface, &pacing).await;
        // The second call may come before the first 429 taught the gate; none after it.
        assert!(surface.refused.load(Ordering::SeqCst) <= 1);
        assert_eq!(
            pacing.refusals(),
            u64::from(surface.refused.load(Ordering::SeqCst))
        );
    }

    #[tokio::test]
    async fn a_long_wait_goes_back_to_the_caller_and_other_gates_are_not_held() {
        let pacing = Pacing::default();
        let judge = |r: &Result<(), Duration>| match r {
            Err(w) => Answer::RateLimited(*w),
            Ok(()) => Answer::Other,
        };
        let refused = pacing
            .send(
                "m C1",
                || async { Err(Duration::from_secs(120)) },
                judge,
                |w| w,
            )
            .await;
        assert_eq!(refused, Err(Duration::from_secs(120)));
        // The same gate is closed: the next call is not even made.
        let calls = AtomicU32::new(0);
        let held = pacing
            .send(
                "m C1",
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                },
                judge,
                |w| w,
            )
            .await;
        assert!(held.unwrap_err() > Duration::from_secs(100));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // Another channel is not held back.
        let other = pacing.send("m C2", || async { Ok(()) }, judge, |w| w).await;
        assert_eq!(other, Ok(()));
    }

    #[tokio::test]
    async fn a_documented_pace_keeps_a_backlog_ahead_of_the_limit_with_no_refusal() {
        // The surface takes one call per PACE with no burst; the desk paces itself below
        // that: twenty workers at once draw no 429 at all.
        let surface = Arc::new(Paced {
            last: Mutex::new(None),
            refused: AtomicU32::new(0),
            taken: AtomicU32::new(0),
        });
        let pacing = Arc::new(Pacing::default().with_limit(
            "chat.postMessage",
            Limit {
                // Room for a loaded machine's scheduling jitter between calls.
                every: PACE * 2,
                burst: 1,
            },
        ));
        let started = Instant::now();
        twenty_workers(&surface, &pacing).await;
        assert_eq!(surface.refused.load(Ordering::SeqCst), 0);
        assert!(started.elapsed() >= PACE * 19, "paced, not all at once");
        assert_eq!(pacing.waiting(), 0, "nobody left in line");
    }

    #[tokio::test]
    async fn a_burst_goes_at_once_and_then_one_per_interval() {
        let pacing = Pacing::default().with_limit(
            "m",
            Limit {
                every: Duration::from_millis(100),
                burst: 3,
            },
        );
        let judge = |_: &Result<(), ()>| Answer::Other;
        let started = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            pacing
                .send("m C1", || async { Ok(()) }, judge, |_| ())
                .await
                .unwrap();
            at.push(started.elapsed());
        }
        assert!(
            at[2] < Duration::from_millis(50),
            "the burst at once: {at:?}"
        );
        assert!(at[3] >= Duration::from_millis(90), "then paced: {at:?}");
        assert!(at[4] >= Duration::from_millis(190), "{at:?}");
        // Another channel has its own pace.
        let other = Instant::now();
        pacing
            .send("m C2", || async { Ok(()) }, judge, |_| ())
            .await
            .unwrap();
        assert!(other.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn waiting_calls_go_new_cards_first_then_notes_then_refreshes() {
        use crate::ports::{with_urgency, Urgency};
        let pacing = Arc::new(Pacing::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let hold = Arc::new(tokio::sync::Mutex::new(Some(hold)));
        let judge = |_: &Result<(), ()>| Answer::Other;
        // The first call holds the gate until released.
        let first = {
            let (pacing, hold) = (pacing.clone(), hold.clone());
            tokio::spawn(async move {
                pacing
                    .send(
                        "m C1",
                        || {
                            let hold = hold.clone();
                            async move {
                                if let Some(h) = hold.lock().await.take() {
                                    let _ = h.await;
                                }
                                Ok(())
                            }
                        },
                        judge,
                        |_| (),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut waiting = Vec::new();
        for (name, urgency) in [
            ("refresh 1", Urgency::Refresh),
            ("note", Urgency::Note),
            ("refresh 2", Urgency::Refresh),
            ("card 1", Urgency::NewCard),
            ("card 2", Urgency::NewCard),
        ] {
            let (pacing, order) = (pacing.clone(), order.clone());
            waiting.push(tokio::spawn(with_urgency(urgency, async move {
                pacing
                    .send(
                        "m C1",
                        || {
                            order.lock().unwrap().push(name);
                            async { Ok(()) }
                        },
                        judge,
                        |_| (),
                    )
                    .await
            })));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pacing.waiting(), 6, "one under way, five in line");
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["card 1", "card 2", "note", "refresh 1", "refresh 2"]
        );
        assert_eq!(pacing.waiting(), 0);
    }
}
