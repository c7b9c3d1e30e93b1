//! Holding back the calls a chat surface just refused. Slack paces `chat.postMessage`
//! at about one message a second per channel and Discord limits each route's bucket: a
//! 429 for one call means every call of that kind to that channel gets one too until its
//! `Retry-After` has passed. So every outbox worker goes through one shared gate per
//! (method, channel): one call at a time, a 429 closes the gate for everybody for the
//! wait the surface gave, and for a while afterwards calls are spaced by that wait, so a
//! backlog drains at the surface's pace instead of drawing a 429 per worker per round.
//! A refused call is tried again at its turn (a 429 means the surface did nothing), unless
//! the wait is long: then the caller gets the 429 back and the outbox defers the job.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

#[derive(Default)]
struct Gate {
    /// No call goes through before this.
    open_at: Option<Instant>,
    /// While paced, each call moves `open_at` this far on.
    spacing: Duration,
    paced_until: Option<Instant>,
}

/// The gates of one surface, shared by every worker.
#[derive(Default)]
pub struct Pacing {
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Gate>>>>,
    refused: std::sync::atomic::AtomicU64,
}

/// What the gate needs to know about a call's outcome.
pub enum Answer {
    /// The surface refused with 429; try again after this long.
    RateLimited(Duration),
    /// The surface's headers say the bucket is empty until this long from now.
    BucketEmpty(Duration),
    Other,
}

impl Pacing {
    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<Gate>> {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// How many 429s this surface has answered (for logs and tests of the pacing).
    pub fn refusals(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
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
        let gate = self.gate(key);
        let mut tries = 0;
        loop {
            // One call at a time per gate; tokio's mutex is fair, so callers take turns.
            let mut g = gate.lock().await;
            let now = Instant::now();
            if let Some(at) = g.open_at.filter(|at| *at > now) {
                if at - now > WAIT_IN_LINE_UP_TO {
                    return Err(held(at - now));
                }
                tokio::time::sleep_until(at).await;
            }
            let result = call().await;
            let now = Instant::now();
            let paced = g.paced_until.is_some_and(|until| now < until);
            match judge(&result) {
                Answer::RateLimited(wait) => {
                    self.refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    #[tokio::test]
    async fn twenty_workers_on_one_channel_draw_one_refusal_at_most_and_all_get_through() {
        let surface = Arc::new(Paced {
            last: Mutex::new(None),
            refused: AtomicU32::new(0),
            taken: AtomicU32::new(0),
        });
        let pacing = Arc::new(Pacing::default());
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
}
