//! One watcher per source: poll after the stored cursor, store what is new together with
//! the new cursor (one transaction, flushed), wake the outbox, sleep, repeat. A restart
//! resumes from the stored cursor, so nothing is skipped and nothing is re-posted.

use crate::ports::Clock;
use crate::ports::DeliveryError;
use crate::ports::Source;
use crate::ports::Surface;
use crate::ports::{Ingested, SharedStore, Store, StoreError};
use crate::wire::hints::backoff;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Where a watcher tells the team that its source stopped for a reason a person must
/// act on (a spent budget, a revoked token).
pub type Announcers = Vec<Arc<dyn Surface>>;

pub async fn watch_source(
    source: Arc<dyn Source>,
    store: SharedStore,
    wake_outbox: Arc<Notify>,
    max_backoff: Duration,
    announcers: Announcers,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    let key = source.cursor_key();
    let mut failures: u32 = 0;
    // Each distinct refusal is announced once a day, not at every poll.
    let mut announced: Option<(chrono::NaiveDate, String)> = None;
    loop {
        let pause = match poll_once(source.as_ref(), store.as_ref(), &key, clock.as_ref()).await {
            Ok((done, more)) => {
                failures = 0;
                if done.changed() {
                    tracing::info!(source = %key, new_tickets = done.new_tickets.len(), followups = done.followups.len(), "mentions stored");
                    wake_outbox.notify_one();
                }
                if more {
                    Duration::ZERO
                } else {
                    source.poll_interval()
                }
            }
            Err(DeliveryError::Retry { after, reason }) => {
                let wait = backoff(failures, after, max_backoff);
                failures += 1;
                tracing::warn!(source = %key, %reason, retry_in_ms = wait.as_millis() as u64, "polling failed; backing off");
                wait
            }
            Err(DeliveryError::Permanent { reason } | DeliveryError::Gone { reason }) => {
                tracing::error!(source = %key, %reason, "polling refused; will try again later");
                let today = Utc::now().date_naive();
                if announced.as_ref() != Some(&(today, reason.clone())) {
                    let text = format!("Mentions are not being collected: {reason}");
                    for surface in &announcers {
                        if let Err(e) = surface.announce(&text).await {
                            tracing::warn!(error = %e, "could not warn the team in chat");
                        }
                    }
                    announced = Some((today, reason));
                }
                source.poll_interval().max(max_backoff)
            }
        };
        if pause > Duration::ZERO || *shutdown.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        if *shutdown.borrow() {
            tracing::info!(source = %key, "watcher stopped");
            return;
        }
    }
}

async fn poll_once(
    source: &dyn Source,
    store: &dyn Store,
    key: &str,
    clock: &dyn Clock,
) -> Result<(Ingested, bool), DeliveryError> {
    let store_err = |e: StoreError| DeliveryError::retry(e.to_string());
    let cursor = store.cursor(key).await.map_err(store_err)?;
    let batch = source.poll(cursor.as_deref()).await?;
    let created = store
        .ingest(key, &batch.mentions, batch.cursor.as_deref(), clock.now())
        .await
        .map_err(store_err)?;
    // Durable before anything is acknowledged or acted on.
    store.flush().await.map_err(store_err)?;
    Ok((created, batch.more))
}
