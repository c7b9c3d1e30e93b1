//! Serving the router over HTTP/1.1 so that slow and hostile clients cannot hold it.
//! hyper closes a connection whose request headers have not all arrived within
//! `header_read_timeout`; it starts that clock whenever it waits for a head, so the
//! same limit closes an idle keep-alive connection (hyper 1.x `proto/h1/conn.rs`,
//! `poll_read_head`). At most `max_connections` are served at once. When a new one
//! arrives at the cap, the connection that has waited longest for a request (idle, or
//! still dribbling its headers) is shed to make room, so a flood of slow connections
//! cannot keep a signed request out; if every connection is busy with a request, the new
//! one is refused and its client retries.

use super::HttpLimits;
use axum::Router;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Serve `app` on `listener` until `stop` flips; then finish the requests in flight.
pub async fn serve(
    listener: &TcpListener,
    app: Router,
    limits: &HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Connections::new(limits.max_connections);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of file descriptors, most likely: do not spin on it.
                        tracing::warn!(error = %e, "could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = connections.admit() else {
                    tracing::warn!(max = limits.max_connections, "every connection is busy with a request; refused a new one");
                    continue;
                };
                running.spawn(connection(stream, slot, app.clone(), limits.clone(), stop.clone()));
            }
            Some(done) = running.join_next(), if !running.is_empty() => reaped(done),
            _ = stop.changed() => break,
        }
    }
    while let Some(done) = running.join_next().await {
        reaped(done);
    }
}

fn reaped(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            let why = crate::wire::panic::panic_message(&*e.into_panic());
            tracing::error!(component = "http", error = %why, "a request handler panicked; the server goes on");
        }
    }
}

async fn connection(
    stream: TcpStream,
    slot: Slot,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slot = Arc::new(slot);
    let shed = slot.shed.clone();
    let tower = TowerToHyperService::new(app);
    let in_service = slot.clone();
    let service = hyper::service::service_fn(move |req| {
        in_service.busy();
        let answer = tower.call(req);
        let slot = in_service.clone();
        async move {
            let answered = answer.await;
            slot.waiting();
            answered
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(error = %e, "HTTP connection closed");
            }
        }
        _ = shed.notified() => {
            tracing::debug!("shed a connection that waited longest for a request, to make room");
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The connections being served, and which of them wait for a request.
struct Connections {
    cap: usize,
    open: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    slots: BTreeMap<u64, SlotState>,
}

struct SlotState {
    /// Since when it has waited for a request's head; None while one is handled.
    waiting_since: Option<Instant>,
    shed: Arc<Notify>,
}

impl Connections {
    fn new(cap: usize) -> Self {
        Connections {
            cap: cap.max(1),
            open: Arc::default(),
        }
    }

    /// A place for a new connection, shedding the one that waited longest if full.
    fn admit(&self) -> Option<Slot> {
        let mut reg = self.open.lock().expect("connections lock");
        if reg.slots.len() >= self.cap {
            let oldest = reg
                .slots
                .iter()
                .filter_map(|(id, s)| s.waiting_since.map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(shed) = reg.slots.remove(&oldest) {
                shed.shed.notify_one();
            }
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let shed = Arc::new(Notify::new());
        reg.slots.insert(
            id,
            SlotState {
                waiting_since: Some(Instant::now()),
                shed: shed.clone(),
            },
        );
        Some(Slot {
            id,
            shed,
            open: self.open.clone(),
        })
    }
}

/// One admitted connection; it leaves the registry when dropped.
struct Slot {
    id: u64,
    shed: Arc<Notify>,
    open: Arc<Mutex<Registry>>,
}

impl Slot {
    fn mark(&self, waiting_since: Option<Instant>) {
        if let Some(s) = self
            .open
            .lock()
            .expect("connections lock")
            .slots
            .get_mut(&self.id)
        {
            s.waiting_since = waiting_since;
        }
    }

    fn busy(&self) {
        self.mark(None);
    }

    fn waiting(&self) {
        self.mark(Some(Instant::now()));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut reg) = self.open.lock() {
            reg.slots.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_waiting_connection_makes_room_and_busy_ones_stay() {
        let connections = Connections::new(2);
        let first = connections.admit().unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        let second = connections.admit().unwrap();
        // Full: the first, waiting longest, is shed for a third.
        let third = connections.admit().unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(1), first.shed.notified())
                .await
                .is_ok(),
            "the oldest idle connection is told to go"
        );
        // Both remaining connections busy with requests: a fourth is refused.
        second.busy();
        third.busy();
        assert!(connections.admit().is_none());
        // One finishes its request and waits: it is the one to go next.
        second.waiting();
        let _fifth = connections.admit().expect("room made");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), second.shed.notified())
                .await
                .is_ok()
        );
        drop(first);
        assert_eq!(connections.open.lock().unwrap().slots.len(), 2);
    }
}
