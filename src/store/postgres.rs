//! PLACEHOLDER — being written (issue 11).
use crate::config::PostgresConfig;
use crate::domain::routes::Routes;
use crate::ports::StoreError;

pub struct PostgresStore;

impl PostgresStore {
    pub async fn connect(_config: &PostgresConfig) -> Result<PostgresStore, StoreError> {
        unimplemented!()
    }
    pub fn with_routes(self, _routes: Routes) -> Self {
        self
    }
}
impl PostgresStore {
    pub async fn import(&self, _s: &super::snapshot::Snapshot) -> Result<(), StoreError> {
        unimplemented!()
    }
    pub async fn migrate(_config: &PostgresConfig) -> Result<Vec<i64>, StoreError> {
        unimplemented!()
    }
}
