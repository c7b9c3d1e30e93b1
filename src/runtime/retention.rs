//! Privacy over time (issue 14): the retention duty anonymises what `[retention]` keeps no
//! longer — every check, it pages through the tickets, asks `domain::privacy::due` what
//! of each closed ticket is past its days, and has the store rewrite it. One replica runs
//! it, under its lease; time comes from the `Clock` port, so a test sets it. The same
//! removal, [`remove`], serves `mentionbridge erase`.

use crate::domain::privacy::{self, Removal, Retention};
use crate::domain::{AuditEntry, Effect, Ticket, Transition};
use crate::ports::{hash_key, Clock, SharedStore, Store, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Tickets read per page while the duty looks.
pub const PAGE: usize = 500;

/// What one removal pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub tickets: u64,
    pub texts: u64,
    pub identities: u64,
}

impl Removed {
    fn add(&mut self, removal: Removal) {
        self.tickets += 1;
        self.texts += u64::from(removal.text);
        self.identities += u64::from(removal.identity);
    }
}

/// Remove `removal` from ticket `t` (as stored) under the desk's hash `key`: the store
/// rewrites the ticket, its audit and its keys, then records the removal on the ticket's
/// trail (`why`, and with identity removed only the person's keyed hash) and queues a
/// re-render of its cards, so no card keeps showing what was removed.
pub async fn remove(
    store: &dyn Store,
    t: &Ticket,
    removal: Removal,
    why: &str,
    key: &[u8],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rw = privacy::rewrite(t, removal, why, key, now);
    store.rewrite_ticket(&rw).await?;
    let line = AuditEntry {
        ticket: t.id,
        at: now,
        actor: None,
        what: privacy::removal_line(removal, why),
        detail: rw.ticket.anonymised.as_ref().and_then(|a| a.author.clone()),
    };
    store
        .transition(t.id, &|stored| {
            Some(Transition {
                ticket: stored.clone(),
                effects: vec![Effect::UpdateCards],
                audit: line.clone(),
            })
        })
        .await?;
    Ok(())
}

/// One pass at `now`: every closed ticket whose kinds of data are past their days loses
/// them. The hash key is made only if an identity is due.
pub async fn apply(
    store: &dyn Store,
    policy: &Retention,
    now: DateTime<Utc>,
) -> Result<Removed, StoreError> {
    let mut done = Removed::default();
    if policy.is_empty() {
        return Ok(done);
    }
    let mut key: Option<Vec<u8>> = None;
    let mut after = None;
    loop {
        let page = store.tickets_after(after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        for t in &page {
            let removal = privacy::due(t, policy, now);
            if !removal.any() {
                continue;
            }
            let k = match &key {
                Some(k) => k.clone(),
                None => key.insert(hash_key(store).await?).clone(),
            };
            remove(store, t, removal, "retention", &k, now).await?;
            done.add(removal);
        }
    }
    if done.tickets > 0 {
        store.flush().await?;
    }
    Ok(done)
}

/// The duty: a pass every `every` (a test's hand-driven clock: looked at often).
pub struct RetentionDuty {
    pub store: SharedStore,
    pub policy: Retention,
    pub every: Duration,
    pub clock: Arc<dyn Clock>,
    pub wake_outbox: Arc<Notify>,
}

impl RetentionDuty {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let wait = if self.clock.is_manual() {
            Duration::from_millis(200)
        } else {
            self.every
        };
        loop {
            match apply(self.store.as_ref(), &self.policy, self.clock.now()).await {
                Ok(done) if done.tickets > 0 => {
                    tracing::info!(
                        tickets = done.tickets,
                        texts = done.texts,
                        identities = done.identities,
                        "retention anonymised closed tickets"
                    );
                    self.wake_outbox.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "retention pass failed; trying again at the next check")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}
