//! The backends behind the store port (`crate::ports::Store`). Sled, embedded, for one
//! machine; each backend passes the contract suite in `tests/integration/store_contract.rs`.

mod sled;

pub use self::sled::SledStore;

use crate::domain::routes::Routes;
use crate::ports::{SharedStore, StoreError};
use std::path::Path;
use std::sync::Arc;

/// The configured store, its new tickets stamped from `routes`.
pub fn open(path: &Path, routes: Routes) -> Result<SharedStore, StoreError> {
    Ok(Arc::new(SledStore::open(path)?.with_routes(routes)))
}
