//! Duties one replica at a time carries out (each source's watcher, the scheduler, the
//! Discord gateway session), each under a lease in the store. A replica runs a duty only
//! while it holds the lease, renews it every third of its length, and stops the duty at
//! once when the lease is lost or cannot be confirmed before it runs out; its writes go
//! through a fenced store handle, so even a replica paused past its lease cannot write
//! with it once another has taken over. A dead holder's duty passes to another replica
//! within one lease length; a clean stop hands it over at once.
//!
//! With the embedded store there is one process, and every duty is granted at once.

use crate::ports::{Fence, Lease, SharedStore};
pub use crate::runtime::supervisor::Ended as Finished;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a duty's work may take to stop before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// This process among the replicas: its name, its store, how long its leases last,
/// and what it holds now.
#[derive(Clone)]
pub struct Replica {
    name: String,
    store: SharedStore,
    lease: Duration,
    held: Arc<Mutex<BTreeMap<String, DutyState>>>,
}

/// One duty as this replica sees it (for `/healthz` and `/metrics`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DutyState {
    /// This replica holds the duty and carries it out.
    pub held: bool,
    /// The grant it holds (grows with every grant of the duty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// Seconds since the lease was last renewed (or granted): stays below a third of
    /// the lease while all is well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_age_secs: Option<f64>,
    /// Why it is not held, when that is not simply another replica holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip)]
    renewed: Option<Instant>,
}

impl DutyState {
    fn idle(error: Option<String>) -> DutyState {
        DutyState {
            held: false,
            token: None,
            lease_age_secs: None,
            last_error: error,
            renewed: None,
        }
    }
}

/// How a duty's run ended.
enum Ended {
    /// The work returned (after a stop, or by itself), with its failure if any.
    Returned(Option<String>),
    /// The lease was lost or could not be confirmed in time: the work was dropped.
    Lost,
}

impl Replica {
    pub fn new(name: impl Into<String>, store: SharedStore, lease: Duration) -> Replica {
        Replica {
            name: name.into(),
            store,
            lease,
            held: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every duty this replica runs for, and its state now.
    pub fn duties(&self) -> BTreeMap<String, DutyState> {
        let mut duties = self.held.lock().expect("duties lock").clone();
        for d in duties.values_mut() {
            d.lease_age_secs = d.renewed.map(|t| t.elapsed().as_secs_f64());
        }
        duties
    }

    /// A store handle for `duty`'s work: its writes commit only under the lease this
    /// replica holds for it.
    pub fn fence(&self, duty: &str) -> (Arc<Fence>, SharedStore) {
        let fence = Fence::new(duty);
        let store = self.store.fenced(fence.clone());
        (fence, store)
    }

    fn set(&self, duty: &str, state: DutyState) {
        self.held
            .lock()
            .expect("duties lock")
            .insert(duty.to_string(), state);
    }

    /// Carry out `duty` whenever this replica holds its lease, until `shutdown` flips.
    /// `work` is started on each grant with a stop signal of its own; it is stopped
    /// (dropped, mid-step if need be) when the lease is lost, and asked to finish when
    /// the replica shuts down, after which the lease is released for the others.
    pub async fn hold<W, F>(
        &self,
        duty: &str,
        fence: Arc<Fence>,
        work: W,
        mut shutdown: watch::Receiver<bool>,
    ) where
        W: Fn(watch::Receiver<bool>) -> F,
        F: Future,
        F::Output: Finished,
    {
        let every = self.lease / 3;
        self.set(duty, DutyState::idle(None));
        loop {
            if *shutdown.borrow() {
                return;
            }
            let lease = match self.store.acquire_lease(duty, &self.name, self.lease).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    self.set(duty, DutyState::idle(None));
                    if wait(every, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(duty, error = %e, "cannot reach the store to take a duty; trying again");
                    self.set(duty, DutyState::idle(Some(e.to_string())));
                    if wait(every, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            tracing::info!(duty, token = lease.token, replica = %self.name, "duty taken");
            fence.set(Some(lease.clone()));
            let ended = self.run_held(duty, &lease, &work, &mut shutdown).await;
            fence.set(None);
            match ended {
                Ended::Lost => {
                    self.set(duty, DutyState::idle(Some("lease lost".into())));
                    tracing::warn!(
                        duty,
                        token = lease.token,
                        "duty lost: stopped it; another replica may hold it now"
                    );
                }
                Ended::Returned(failure) => {
                    self.release(&lease).await;
                    if *shutdown.borrow() {
                        self.set(duty, DutyState::idle(None));
                        tracing::info!(duty, "duty stopped and handed over");
                        return;
                    }
                    tracing::warn!(
                        duty,
                        error = failure.as_deref().unwrap_or("none"),
                        "duty's work ended by itself; handed over, taking it again shortly"
                    );
                    self.set(duty, DutyState::idle(failure));
                }
            }
            if wait(every, &mut shutdown).await {
                return;
            }
        }
    }

    async fn run_held<W, F>(
        &self,
        duty: &str,
        lease: &Lease,
        work: &W,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended
    where
        W: Fn(watch::Receiver<bool>) -> F,
        F: Future,
        F::Output: Finished,
    {
        let every = self.lease / 3;
        let mut renewed = Instant::now();
        let held = |renewed: Instant| DutyState {
            held: true,
            token: Some(lease.token),
            lease_age_secs: None,
            last_error: None,
            renewed: Some(renewed),
        };
        self.set(duty, held(renewed));
        let (stop_tx, stop_rx) = watch::channel(false);
        let work = work(stop_rx);
        tokio::pin!(work);
        let mut tick = tokio::time::interval_at(renewed + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        let mut given_up_at = Instant::now();
        loop {
            tokio::select! {
                ended = &mut work => return Ended::Returned(ended.failure()),
                // Work that does not finish soon after the stop (a source sleeping out a
                // platform's rate limit) is dropped: whatever it did is committed or not
                // at all, and the next holder carries on from the store.
                _ = tokio::time::sleep_until(given_up_at), if stopping => {
                    tracing::info!(duty, "duty's work did not stop in time; dropped it");
                    return Ended::Returned(None);
                }
                _ = tick.tick() => {
                    let started = Instant::now();
                    match self.store.renew_lease(lease, self.lease).await {
                        Ok(true) => {
                            // Counted from before the call: the store's expiry is at
                            // least this late.
                            renewed = started;
                            self.set(duty, held(renewed));
                        }
                        Ok(false) => return Ended::Lost,
                        Err(e) => {
                            tracing::warn!(duty, error = %e, "could not renew a duty's lease");
                            // Unconfirmed: once it may have run out, another replica
                            // may hold it, so stop before that.
                            if renewed.elapsed() + every >= self.lease {
                                return Ended::Lost;
                            }
                        }
                    }
                }
                _ = shutdown.changed(), if !stopping => {
                    stopping = true;
                    given_up_at = Instant::now() + STOP_GRACE;
                    let _ = stop_tx.send(true);
                }
            }
        }
    }

    async fn release(&self, lease: &Lease) {
        if let Err(e) = self.store.release_lease(lease).await {
            tracing::warn!(duty = %lease.duty, error = %e, "could not release a duty; it passes on when its lease runs out");
        }
    }
}

/// Sleep `d` unless the shutdown comes first; `true`: shutting down.
async fn wait(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
    *shutdown.borrow()
}

/// The duties' lines for `/metrics`.
pub fn exposition(replica: &Replica) -> String {
    use std::fmt::Write;
    let duties = replica.duties();
    let mut out = String::from(
        "# HELP mentionbridge_duty_held 1 while this replica holds the duty's lease and carries it out.\n# TYPE mentionbridge_duty_held gauge\n",
    );
    for (duty, d) in &duties {
        let _ = writeln!(
            out,
            "mentionbridge_duty_held{{duty=\"{duty}\"}} {}",
            u8::from(d.held)
        );
    }
    out.push_str("# HELP mentionbridge_duty_lease_age_seconds Seconds since this replica last renewed the duty's lease.\n# TYPE mentionbridge_duty_lease_age_seconds gauge\n");
    for (duty, d) in &duties {
        if let Some(age) = d.lease_age_secs {
            let _ = writeln!(
                out,
                "mentionbridge_duty_lease_age_seconds{{duty=\"{duty}\"}} {age:.3}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StoreError;
    use crate::store::SledStore;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_duty_runs_while_held_and_its_lease_is_released_at_shutdown() {
        let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
        let replica = Replica::new("a", store.clone(), Duration::from_secs(3));
        let (fence, fenced) = replica.fence("scheduler");
        let (tx, rx) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let r = replica.clone();
        let task = tokio::spawn(async move {
            r.hold(
                "scheduler",
                fence,
                move |mut stop| {
                    let (counted, fenced) = (counted.clone(), fenced.clone());
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        fenced.set_state("k", b"v").await.unwrap();
                        let _ = stop.changed().await;
                    }
                },
                rx,
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(replica.duties()["scheduler"].held);
        assert_eq!(store.state("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        // Another holder cannot take it while it is held.
        assert_eq!(
            store
                .acquire_lease("scheduler", "b", Duration::from_secs(3))
                .await
                .unwrap(),
            None
        );
        tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!replica.duties()["scheduler"].held);
        // Released: the next replica takes it at once, with a newer token.
        let next = store
            .acquire_lease("scheduler", "b", Duration::from_secs(3))
            .await
            .unwrap()
            .expect("released at shutdown");
        assert!(next.token > 1);
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ignores_the_stop_is_dropped_after_the_grace_and_the_duty_handed_over() {
        let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
        let replica = Replica::new("a", store.clone(), Duration::from_secs(15));
        let (fence, _) = replica.fence("watcher:slow");
        let (tx, rx) = watch::channel(false);
        let r = replica.clone();
        let task = tokio::spawn(async move {
            // A source sleeping out a rate limit: it never looks at its stop signal.
            r.hold(
                "watcher:slow",
                fence,
                |_stop| tokio::time::sleep(Duration::from_secs(3600)),
                rx,
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(replica.duties()["watcher:slow"].held);
        let asked = tokio::time::Instant::now();
        tx.send(true).unwrap();
        task.await.unwrap();
        let took = asked.elapsed();
        assert!(took >= STOP_GRACE && took < STOP_GRACE * 2, "{took:?}");
        assert!(store
            .acquire_lease("watcher:slow", "b", Duration::from_secs(15))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_work_and_its_writes_are_refused() {
        let store: SharedStore = Arc::new(SledStore::temporary().unwrap());
        let replica = Replica::new("a", store.clone(), Duration::from_secs(3));
        let (fence, fenced) = replica.fence("watcher:x");
        let lease = store
            .acquire_lease("watcher:x", "a", Duration::from_secs(3))
            .await
            .unwrap()
            .unwrap();
        fence.set(Some(lease.clone()));
        fenced.set_state("k", b"1").await.unwrap();
        // Another replica takes the duty (this one's lease was released meanwhile).
        store.release_lease(&lease).await.unwrap();
        store
            .acquire_lease("watcher:x", "b", Duration::from_secs(3))
            .await
            .unwrap()
            .unwrap();
        let refused = fenced.set_state("k", b"2").await.unwrap_err();
        assert!(matches!(refused, StoreError::Fenced { .. }), "{refused}");
        assert_eq!(store.state("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        fence.set(None);
        assert!(matches!(
            fenced.set_state("k", b"3").await.unwrap_err(),
            StoreError::Fenced { .. }
        ));
    }
}
