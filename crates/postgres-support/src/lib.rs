//! What every PostgreSQL backend of syncstack shares: a pool opened from a `postgres://`
//! URL, numbered migrations that several processes may run at once, and throwaway schemas
//! so the conformance suites can run side by side on one test database.
//!
//! The pool is deadpool over tokio-postgres: async, so a slow query holds no thread, and
//! recycled connections are checked before reuse so a restarted database server costs one
//! failed request per connection at most.

mod migrate;
mod pool;
mod testing;
mod transaction;

pub use deadpool_postgres::{Object as Connection, Pool};
pub use migrate::migrate;
pub use pool::{PoolError, connect, is_postgres_url};
pub use testing::TestSchema;
pub use tokio_postgres::{Row, error::SqlState};
pub use transaction::{ATTEMPTS, TxErrors, TxFuture, write};

/// Whether `error` is a serialization failure or deadlock, the two errors PostgreSQL asks
/// the client to answer by running the transaction again.
pub fn is_retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}
