//! The backends behind the store port (`crate::ports::Store`): sled, embedded, for one
//! machine; PostgreSQL, for replicas sharing one database. Each passes the contract
//! suite in `tests/integration/store_contract.rs`.

mod grouped;
pub mod postgres;
mod sled;
pub mod snapshot;

pub use self::grouped::{GroupCommit, GroupLimits};
pub use self::postgres::PostgresStore;
pub use self::sled::{compact as compact_sled, open_db as open_sled_db, SledStore};

use crate::config::StoreConfig;
use crate::domain::routes::Routes;
use crate::ports::{SharedStore, StoreError};
use std::sync::Arc;

/// The configured store, its new tickets stamped from `routes`, its ingests committed in
/// groups (see [`GroupCommit`]: an ingest through it is durable when it returns).
/// PostgreSQL's schema is brought up to date first (see `postgres::migrate`).
pub async fn open(config: &StoreConfig, routes: Routes) -> Result<SharedStore, StoreError> {
    Ok(GroupCommit::wrap(open_backend(config, routes).await?))
}

/// The configured backend itself, without group commit (for measuring it alone).
pub async fn open_backend(config: &StoreConfig, routes: Routes) -> Result<SharedStore, StoreError> {
    Ok(match config {
        StoreConfig::Sled { path } => Arc::new(SledStore::open(path)?.with_routes(routes)),
        StoreConfig::Postgres(pg) => {
            Arc::new(PostgresStore::connect(pg).await?.with_routes(routes))
        }
    })
}

/// Copy the sled store at `from` (nobody may be running on it: sled locks it) into the
/// PostgreSQL database `to`, which must hold no desk yet: every ticket with its number,
/// the audit log, cards, cursors, source state, remembered events and unsent jobs, in
/// one transaction, then read back and counted.
pub async fn copy(
    from: &std::path::Path,
    to: &crate::config::PostgresConfig,
) -> Result<snapshot::Copied, StoreError> {
    let snapshot = SledStore::open(from)?.snapshot()?;
    let target = PostgresStore::connect(to).await?;
    target.import(&snapshot).await?;
    Ok(snapshot.counts())
}
