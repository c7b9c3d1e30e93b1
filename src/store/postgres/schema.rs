//! Reaching the database (the pool, TLS) and bringing its schema up to date.

use crate::config::{PgTls, PostgresConfig};
use crate::ports::{BackendError, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// The schema versions this binary knows, oldest first: applied in order, each once.
/// Files are only ever added; a migration never drops or rewrites what a running replica
/// of the previous release reads.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "outbox_deferred",
        include_str!("../../../migrations/0002_outbox_deferred.sql"),
    ),
    (
        3,
        "flat_costs",
        include_str!("../../../migrations/0003_flat_costs.sql"),
    ),
    (
        4,
        "ticket_facts",
        include_str!("../../../migrations/0004_ticket_facts.sql"),
    ),
    (
        5,
        "triage",
        include_str!("../../../migrations/0005_triage.sql"),
    ),
    (
        6,
        "incidents",
        include_str!("../../../migrations/0006_incidents.sql"),
    ),
    (
        7,
        "person_notes",
        include_str!("../../../migrations/0007_person_notes.sql"),
    ),
];

/// The advisory lock migrations run under ("mbschema"), so replicas starting together
/// migrate one after the other (the later ones find nothing left to do).
pub(super) const MIGRATION_LOCK: i64 = 0x6d62_7363_6865_6d61;

/// Why something failed, in words that never hold the URL or its password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Plain(pub(super) String);

pub(super) fn plain(what: impl Into<String>) -> BackendError {
    Box::new(Plain(what.into()))
}

fn open_error(config: &PostgresConfig, source: BackendError) -> StoreError {
    StoreError::Open {
        path: config.describe(),
        source,
    }
}

/// The connection pool `config` describes: `pool_size` connections, none opened yet.
/// Waiting for a connection, opening one and recycling one are each bounded by
/// `connect_timeout`, so an unreachable database is an error soon, never a hang.
///
/// TLS follows `config.tls`, whatever the URL's `sslmode` says: `disable` connects in
/// the clear; `prefer` uses TLS when the server offers it (unless the URL asks for
/// `require`, which is kept); `require` insists on it even if the URL says
/// `sslmode=disable`, since the operator's `[store] tls` is the deliberate choice. With
/// TLS the server's certificate is verified against the system's roots plus `ca_file`.
pub(super) fn pool(config: &PostgresConfig) -> Result<Pool, StoreError> {
    let mut pg: tokio_postgres::Config = config.url.expose().parse().map_err(|_| {
        // The parser's message may quote part of the URL: it is not passed on.
        open_error(config, plain("the URL is not a PostgreSQL connection URL"))
    })?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        // So an operator sees in `pg_stat_activity` whose connections these are.
        pg.application_name("mentionbridge");
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match config.tls {
        PgTls::Disable => {
            pg.ssl_mode(SslMode::Disable);
            Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
        }
        PgTls::Prefer | PgTls::Require => {
            let mode = if config.tls == PgTls::Require || pg.get_ssl_mode() == SslMode::Require {
                SslMode::Require
            } else {
                SslMode::Prefer
            };
            pg.ssl_mode(mode);
            let tls = tls_config(config).map_err(|e| open_error(config, e))?;
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
            Manager::from_config(pg, connector, manager_config)
        }
    };
    let wait = Some(config.connect_timeout);
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .wait_timeout(wait)
        .create_timeout(wait)
        .recycle_timeout(wait)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| open_error(config, plain(format!("the connection pool: {e}"))))
}

fn tls_config(config: &PostgresConfig) -> Result<rustls::ClientConfig, BackendError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system root certificate could not be loaded");
    }
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system root certificates rustls cannot use");
    }
    if let Some(path) = &config.ca_file {
        let unreadable = |e: &dyn std::fmt::Display| {
            plain(format!(
                "{} is not a readable file of PEM certificates: {e}",
                path.display()
            ))
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
            roots
                .add(cert.map_err(|e| unreadable(&e))?)
                .map_err(|e| unreadable(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(unreadable(&"it holds no certificate"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Apply every migration the database lacks, in one transaction under
/// [`MIGRATION_LOCK`]; the versions applied now (none: it was up to date). A database
/// migrated by a newer release is refused with [`StoreError::SchemaTooNew`].
pub(super) async fn apply(pool: &Pool, config: &PostgresConfig) -> Result<Vec<i64>, StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| open_error(config, Box::new(e)))?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    bigint      PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: Option<i64> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let found = found.unwrap_or(0);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
            &[version, name],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    if !applied.is_empty() {
        tracing::info!(
            database = %config.describe(),
            versions = ?applied,
            "store schema migrated"
        );
    }
    Ok(applied)
}
