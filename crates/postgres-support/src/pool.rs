//! Opening a pool from a database URL.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Why a pool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error("could not build the PostgreSQL pool: {0}")]
    Build(String),
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(String),
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens a pool of at most `max_size` connections to `url` and checks one connection, so a
/// wrong URL or an unreachable server fails at start, not on the first request.
///
/// The URL takes libpq's parameters (`?options=-csearch_path%3Dname`, `sslmode=disable`,
/// ...). Connections are unencrypted: a database reached over an untrusted network belongs
/// behind a TLS tunnel or on a private network (docs/deployment.md).
pub async fn connect(url: &str, max_size: usize) -> Result<Pool, PoolError> {
    let config = tokio_postgres::Config::from_str(url).map_err(PoolError::InvalidUrl)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_size.max(1))
        .build()
        .map_err(|e| PoolError::Build(e.to_string()))?;
    let first = pool
        .get()
        .await
        .map_err(|e| PoolError::Connect(e.to_string()))?;
    drop(first);
    Ok(pool)
}
