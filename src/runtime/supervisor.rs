//! The supervisor: every long-running task of the bot (source watchers, the outbox
//! sender, the scheduler, the chat listeners, the HTTP server, handlers' background work)
//! runs as a named component in one `JoinSet`, stopped together by one shutdown signal,
//! as in mini-redis. A component that panics, fails or ends by itself is logged with its
//! name and started again after an exponential backoff; ending because of the shutdown
//! is a clean stop, not a restart. What each component is doing right now is kept in
//! [`Health`], which `/healthz` shows.

use futures_util::FutureExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::failpoints::Failpoints;

/// What a component's run came to, besides a panic.
pub trait Ended {
    /// Why it failed, if it did.
    fn failure(self) -> Option<String>;
}

impl Ended for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: Display> Ended for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    Running,
    /// Stopped unexpectedly; waiting out its backoff before the next start.
    Restarting,
    /// Stopped unexpectedly several times in a row, each soon after starting: a person
    /// should look. It is still started again, at the longest backoff.
    Failed,
    /// Stopped because the bot is shutting down.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    pub state: ComponentState,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Every supervised component's state, by name.
#[derive(Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, ComponentHealth>>>);

impl Health {
    pub fn snapshot(&self) -> BTreeMap<String, ComponentHealth> {
        self.0.lock().expect("health lock").clone()
    }

    /// Every component is running.
    pub fn all_up(&self) -> bool {
        self.snapshot()
            .values()
            .all(|c| c.state == ComponentState::Running)
    }

    fn set(&self, name: &str, health: ComponentHealth) {
        self.0
            .lock()
            .expect("health lock")
            .insert(name.to_string(), health);
    }
}

/// How fast a component is started again.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub first_wait: Duration,
    pub longest_wait: Duration,
    /// A run this long is a success: the next failure starts the backoff over.
    pub steady_after: Duration,
    /// This many quick failures in a row mark the component failed.
    pub failed_after: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            first_wait: Duration::from_secs(1),
            longest_wait: Duration::from_secs(60),
            steady_after: Duration::from_secs(60),
            failed_after: 5,
        }
    }
}

impl RestartPolicy {
    fn wait(&self, quick_failures: u32) -> Duration {
        let factor = 1u32 << quick_failures.saturating_sub(1).min(16);
        self.first_wait
            .saturating_mul(factor)
            .min(self.longest_wait)
    }
}

pub use crate::wire::panic::panic_message;

/// Keeps error texts on `/healthz` short.
fn shortened(text: String) -> String {
    const MOST: usize = 300;
    if text.chars().count() <= MOST {
        return text;
    }
    let mut cut: String = text.chars().take(MOST).collect();
    cut.push('…');
    cut
}

pub struct Supervisor {
    tasks: JoinSet<()>,
    health: Health,
    stop: watch::Receiver<bool>,
    policy: RestartPolicy,
    failpoints: Failpoints,
}

impl Supervisor {
    pub fn new(stop: watch::Receiver<bool>, failpoints: Failpoints) -> Self {
        Supervisor {
            tasks: JoinSet::new(),
            health: Health::default(),
            stop,
            policy: RestartPolicy::default(),
            failpoints,
        }
    }

    pub fn with_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Run `start` as the component `name` until shutdown, starting it again whenever it
    /// stops for any other reason. `start` gets the shutdown signal to watch.
    pub fn spawn<F, Fut>(&mut self, name: impl Into<String>, mut start: F)
    where
        F: FnMut(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Ended + Send,
    {
        let name = name.into();
        let health = self.health.clone();
        let mut stop = self.stop.clone();
        let policy = self.policy;
        let failpoints = self.failpoints.clone();
        let report = move |name: &str, state, restarts, last_error: &Option<String>| {
            health.set(
                name,
                ComponentHealth {
                    state,
                    restarts,
                    last_error: last_error.clone(),
                },
            )
        };
        report(&name, ComponentState::Running, 0, &None);
        self.tasks.spawn(async move {
            let (mut restarts, mut quick_failures) = (0u32, 0u32);
            let mut last_error: Option<String> = None;
            loop {
                let started = Instant::now();
                let run = start(stop.clone());
                let panics = failpoints.panics_at_start(&name);
                let outcome = AssertUnwindSafe(async move {
                    if panics {
                        panic!("failpoint: panic at start");
                    }
                    run.await
                })
                .catch_unwind()
                .await;
                let why = match outcome {
                    Ok(ended) => ended.failure(),
                    Err(payload) => Some(format!("panicked: {}", panic_message(&*payload))),
                };
                if *stop.borrow() {
                    if let Some(why) = &why {
                        tracing::warn!(component = %name, error = %why, "component ended with an error while shutting down");
                    }
                    report(&name, ComponentState::Stopped, restarts, &last_error);
                    return;
                }
                let why = shortened(why.unwrap_or_else(|| "stopped by itself".into()));
                restarts += 1;
                quick_failures = if started.elapsed() >= policy.steady_after {
                    1
                } else {
                    quick_failures + 1
                };
                let wait = policy.wait(quick_failures);
                let state = if quick_failures >= policy.failed_after {
                    ComponentState::Failed
                } else {
                    ComponentState::Restarting
                };
                tracing::error!(component = %name, error = %why, restarts, retry_in_ms = wait.as_millis() as u64, "component stopped; starting it again");
                last_error = Some(why);
                report(&name, state, restarts, &last_error);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    report(&name, ComponentState::Stopped, restarts, &last_error);
                    return;
                }
                tracing::info!(component = %name, restarts, "component started again");
                report(&name, ComponentState::Running, restarts, &last_error);
            }
        });
    }

    /// Wait for every component to stop (after the shutdown signal).
    pub async fn stopped(&mut self) {
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = done {
                // Only an abort gets here: each component's panics are caught inside.
                tracing::warn!(error = %e, "a supervised task was cancelled");
            }
        }
    }
}

type Chore = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Work a chat handler starts and does not wait for (a button press handled after
/// Slack's acknowledgement, a late Discord answer). It is run by the supervised
/// component [`BackgroundWork`], which owns every piece in its `JoinSet` and logs a
/// panic with what the work was; nothing is a bare `tokio::spawn`.
#[derive(Clone)]
pub struct Background(mpsc::UnboundedSender<Chore>);

/// The other end of [`Background`]: run it as a supervised component.
pub struct BackgroundWork(tokio::sync::Mutex<mpsc::UnboundedReceiver<Chore>>);

pub fn background() -> (Background, BackgroundWork) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Background(tx), BackgroundWork(tokio::sync::Mutex::new(rx)))
}

impl Background {
    /// `what` names the work in the log if it panics.
    pub fn spawn(&self, what: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        if self.0.send((what, Box::pin(work))).is_err() {
            tracing::warn!(work = what, "shutting down: work not started");
        }
    }
}

impl BackgroundWork {
    /// Run chores until shutdown, then let those in flight finish.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut chores = self.0.lock().await;
        let mut running = JoinSet::new();
        let mut names = HashMap::new();
        let finished =
            |names: &mut HashMap<tokio::task::Id, &'static str>,
             done: Result<(tokio::task::Id, ()), tokio::task::JoinError>| {
                match done {
                    Ok((id, ())) => {
                        names.remove(&id);
                    }
                    Err(e) => {
                        let what = names.remove(&e.id()).unwrap_or("background work");
                        if e.is_panic() {
                            let why = panic_message(&*e.into_panic());
                            tracing::error!(component = "background", work = what, error = %why, "background work panicked; the rest goes on");
                        }
                    }
                }
            };
        loop {
            tokio::select! {
                chore = chores.recv() => match chore {
                    Some((what, work)) => {
                        names.insert(running.spawn(work).id(), what);
                    }
                    None => break,
                },
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    finished(&mut names, done);
                }
                _ = stop.changed() => break,
            }
        }
        while let Some(done) = running.join_next_with_id().await {
            finished(&mut names, done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_component_restarts_with_growing_backoff_and_shows_on_health() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sup = Supervisor::new(stop_rx, Failpoints::default());
        let health = sup.health();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        sup.spawn("scheduler", move |mut stop| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 6 {
                    panic!("boom {n}");
                }
                let _ = stop.changed().await;
            }
        });
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        let h = &health.snapshot()["scheduler"];
        assert_eq!(h.state, ComponentState::Restarting);
        assert_eq!(h.restarts, 1);
        assert_eq!(h.last_error.as_deref(), Some("panicked: boom 0"));
        assert!(!health.all_up());

        // Waits of 1, 2, 4, 8 s: no start comes early.
        for (wait, starts_after) in [(1, 2), (2, 3), (4, 4), (8, 5)] {
            tokio::time::advance(Duration::from_millis(wait * 1000 - 10)).await;
            settle().await;
            assert_eq!(
                starts.load(Ordering::SeqCst),
                starts_after - 1,
                "before {wait} s"
            );
            tokio::time::advance(Duration::from_millis(10)).await;
            settle().await;
            assert_eq!(
                starts.load(Ordering::SeqCst),
                starts_after,
                "after {wait} s"
            );
        }
        // Five quick failures in a row: failed, still retried.
        assert_eq!(health.snapshot()["scheduler"].state, ComponentState::Failed);
        tokio::time::advance(Duration::from_secs(16)).await;
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 6);
        tokio::time::advance(Duration::from_secs(32)).await;
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 7);
        let h = &health.snapshot()["scheduler"];
        assert_eq!(h.state, ComponentState::Running);
        assert_eq!(h.restarts, 6);
        assert!(health.all_up());

        stop_tx.send(true).unwrap();
        sup.stopped().await;
        assert_eq!(
            health.snapshot()["scheduler"].state,
            ComponentState::Stopped
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_clean_stop_on_shutdown_is_not_a_restart_but_ending_early_is() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sup = Supervisor::new(stop_rx, Failpoints::default());
        let health = sup.health();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        sup.spawn("outbox", move |mut stop| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let _ = stop.changed().await;
            }
        });
        let early = Arc::new(AtomicU32::new(0));
        let counted = early.clone();
        sup.spawn("watcher", move |_stop| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("the token was revoked") }
        });
        settle().await;
        assert_eq!(
            health.snapshot()["watcher"].last_error.as_deref(),
            Some("the token was revoked")
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(early.load(Ordering::SeqCst), 2);

        stop_tx.send(true).unwrap();
        sup.stopped().await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        let h = &health.snapshot()["outbox"];
        assert_eq!((h.state, h.restarts), (ComponentState::Stopped, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_run_resets_the_backoff() {
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut sup = Supervisor::new(stop_rx, Failpoints::default());
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        sup.spawn("listener", move |_stop| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                // Runs long each time, then fails.
                tokio::time::sleep(Duration::from_secs(if n == 0 { 1 } else { 120 })).await;
                Err::<(), _>("connection lost")
            }
        });
        // 1 s run + 1 s wait, then a 120 s run: the wait after it is 1 s again, not 2 s.
        settle().await;
        for _ in 0..2 {
            tokio::time::advance(Duration::from_secs(1)).await;
            settle().await;
        }
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(120)).await;
        settle().await;
        tokio::time::advance(Duration::from_millis(999)).await;
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failpoint_makes_a_component_panic_once() {
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut sup = Supervisor::new(stop_rx, Failpoints::parse("panic-once:scheduler"));
        let health = sup.health();
        sup.spawn("scheduler", |_stop| std::future::pending::<()>());
        settle().await;
        assert_eq!(
            health.snapshot()["scheduler"].last_error.as_deref(),
            Some("panicked: failpoint: panic at start")
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert!(health.all_up());
    }

    #[tokio::test(start_paused = true)]
    async fn background_work_that_panics_is_logged_and_the_rest_goes_on() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (bg, work) = background();
        let runner = tokio::spawn(async move { work.run(stop_rx).await });
        let done = Arc::new(AtomicU32::new(0));
        bg.spawn("a bad button press", async { panic!("bad payload") });
        for _ in 0..3 {
            let done = done.clone();
            bg.spawn("a button press", async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        settle().await;
        tokio::time::advance(Duration::from_millis(10)).await;
        settle().await;
        assert_eq!(done.load(Ordering::SeqCst), 3);
        // In-flight work finishes after the shutdown signal.
        let late = done.clone();
        bg.spawn("a slow press", async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            late.fetch_add(1, Ordering::SeqCst);
        });
        settle().await;
        stop_tx.send(true).unwrap();
        runner.await.unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 4);
    }
}
