//! The backends behind the store port (`crate::ports::Store`): sled, embedded, for one
//! machine; PostgreSQL, for replicas sharing one database. Each passes the contract
//! suite in `tests/integration/store_contract.rs`.

pub mod postgres;
mod sled;

pub use self::postgres::PostgresStore;
pub use self::sled::SledStore;

use crate::config::StoreConfig;
use crate::domain::routes::Routes;
use crate::ports::{SharedStore, StoreError};
use std::sync::Arc;

/// The configured store, its new tickets stamped from `routes`. PostgreSQL's schema is
/// brought up to date first (see `postgres::migrate`).
pub async fn open(config: &StoreConfig, routes: Routes) -> Result<SharedStore, StoreError> {
    Ok(match config {
        StoreConfig::Sled { path } => Arc::new(SledStore::open(path)?.with_routes(routes)),
        StoreConfig::Postgres(pg) => {
            Arc::new(PostgresStore::connect(pg).await?.with_routes(routes))
        }
    })
}
