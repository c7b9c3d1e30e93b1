//! Making sled's writes durable, one flush at a time.
//!
//! sled 0.34's `flush_async` deadlocks when several run at once beside transactions (its
//! issue #1308, fixed on its main branch and never released): each flush holds sled's
//! concurrency-control read lock while it waits for the log to be written, a transaction
//! waiting for the write lock keeps new readers out, and the flushes that would write the
//! log wait behind it. The desk's outbox workers, watchers and agent actions all flush, so
//! here one blocking `flush` runs at a time on tokio's blocking pool, and callers that
//! arrive while it runs share the next one: each is answered by a flush that began after
//! it asked.

use crate::ports::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub(super) struct Flusher {
    /// Tickets handed to callers, in the order they asked (after their writes).
    asked: AtomicU64,
    /// Every ticket up to this one is covered by a finished flush.
    covered: AtomicU64,
    /// Held while a flush runs.
    running: tokio::sync::Mutex<()>,
}

impl Flusher {
    /// Everything `db` holds now is on disk when this returns `Ok`.
    pub(super) async fn flush(self: &Arc<Self>, db: &sled::Db) -> Result<(), StoreError> {
        let mine = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = self.running.lock().await;
        if self.covered.load(Ordering::SeqCst) >= mine {
            // A flush that began after this caller asked has finished.
            return Ok(());
        }
        // Every ticket handed out so far was asked for before this flush begins.
        let upto = self.asked.load(Ordering::SeqCst);
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|_| StoreError::Backend("the store's flush was cut short".into()))??;
        self.covered.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sled::transaction::ConflictableTransactionError;
    use sled::Transactional;
    use std::time::Duration;

    /// 64 tasks on two workers, each committing transactions over two trees and flushing
    /// after each, as the desk's workers do. With `flush_async` in place of `Flusher` this
    /// hangs in a release build within seconds here; the workers then block, so the wait
    /// is on a thread of its own.
    #[test]
    fn callers_flushing_at_once_beside_transactions_are_all_answered() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let (a, b) = (db.open_tree("a").unwrap(), db.open_tree("b").unwrap());
        let flusher = Arc::new(Flusher::default());
        let (done_tx, done) = std::sync::mpsc::channel();
        let (a2, flusher2) = (a.clone(), flusher.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for caller in 0..64u32 {
                    let (db, a, b, flusher) = (db.clone(), a2.clone(), b.clone(), flusher2.clone());
                    tasks.push(tokio::spawn(async move {
                        for i in 0..20u32 {
                            let k = (caller * 1000 + i).to_be_bytes();
                            (&a, &b)
                                .transaction(|(a, b)| {
                                    a.insert(&k, &k)?;
                                    b.insert(&k, &k)?;
                                    Ok::<_, ConflictableTransactionError<()>>(())
                                })
                                .unwrap();
                            flusher.flush(&db).await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let _ = done_tx.send(());
        });
        done.recv_timeout(Duration::from_secs(120))
            .expect("every flush answered (no deadlock)");
        assert_eq!(a.len(), 64 * 20);
        assert!(
            flusher.covered.load(Ordering::SeqCst) >= 64 * 20,
            "the last flush covered every caller"
        );
    }
}
