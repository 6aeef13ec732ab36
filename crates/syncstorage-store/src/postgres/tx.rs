//! Running one request as one transaction, and what its failures mean.
//!
//! Writes run at `READ COMMITTED` after locking the user's row (see `write::lock_user`;
//! staging a batch locks the batch's row instead): the lock, not the isolation level,
//! keeps two writers of one user from interleaving, and every statement after it sees what
//! the previous holder committed. PostgreSQL may still
//! abort a transaction as a deadlock (say, a write and `purge_expired` meeting on the same
//! expired rows in opposite orders); such a transaction did nothing, so it is run again, a
//! bounded number of times, before the client is told to retry ([`StoreError::Conflict`]).
//!
//! Reads run at `REPEATABLE READ READ ONLY`: several statements (a timestamp and the
//! records it guards) see one snapshot, and a read-only transaction at that level is never
//! aborted for serialization.

use deadpool_postgres::{Pool, Transaction};
use postgres_support::{SqlState, TxErrors};
use tokio_postgres::IsolationLevel;

use crate::StoreError;

/// The future of one attempt at a transaction's work.
pub type TxFuture<'t, T> = postgres_support::TxFuture<'t, T, TxError>;

/// A failure inside a transaction: either a semantic answer, or the driver's error, kept
/// whole until the runner has decided whether to retry.
#[derive(Debug)]
pub enum TxError {
    /// An answer for the client (a failed precondition, a missing batch, ...).
    Store(StoreError),
    /// The database failed.
    Driver(tokio_postgres::Error),
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        TxError::Store(error)
    }
}

impl From<tokio_postgres::Error> for TxError {
    fn from(error: tokio_postgres::Error) -> Self {
        TxError::Driver(error)
    }
}

impl TxErrors for TxError {
    fn conflict() -> Self {
        TxError::Store(StoreError::Conflict)
    }

    fn backend(message: String) -> Self {
        TxError::Store(StoreError::Backend(message))
    }

    /// Kept whole: the runner decides on the driver's error code (see `retryable`).
    fn driver(error: tokio_postgres::Error) -> Self {
        TxError::Driver(error)
    }

    /// PostgreSQL's serialization failures and deadlocks, and a unique violation on insert
    /// (another transaction created the row first; the next attempt sees it and updates
    /// it instead).
    fn retryable(&self) -> bool {
        match self {
            TxError::Store(_) => false,
            TxError::Driver(error) => {
                postgres_support::is_retryable(error)
                    || error.code() == Some(&SqlState::UNIQUE_VIOLATION)
            }
        }
    }
}

impl TxError {
    /// The semantic error the trait returns.
    fn into_store_error(self) -> StoreError {
        match self {
            TxError::Store(error) => error,
            TxError::Driver(error) => driver_error(&error),
        }
    }
}

/// Converts a driver error that is not worth (or no longer worth) retrying. Contention
/// (retryable codes, a lock wait that timed out) is a conflict the client may retry;
/// anything else is a backend failure, described for the logs.
pub fn driver_error(error: &tokio_postgres::Error) -> StoreError {
    let contended = postgres_support::is_retryable(error)
        || matches!(
            error.code(),
            Some(code) if *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::LOCK_NOT_AVAILABLE
        );
    if contended {
        return StoreError::Conflict;
    }
    match error.as_db_error() {
        Some(db) => {
            StoreError::Backend(format!("PostgreSQL {}: {}", db.code().code(), db.message()))
        }
        None => StoreError::Backend(format!("PostgreSQL: {error}")),
    }
}

/// Runs `work` in a read-only snapshot on a pooled connection.
pub async fn read<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    F: for<'t> FnOnce(&'t Transaction<'t>) -> TxFuture<'t, T>,
{
    let mut client = connection(pool).await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| driver_error(&e))?;
    let value = work(&tx).await.map_err(TxError::into_store_error)?;
    tx.commit().await.map_err(|e| driver_error(&e))?;
    Ok(value)
}

/// Runs `work` in a read-write transaction and commits it, running it again (up to
/// [`postgres_support::ATTEMPTS`] times, after a short random pause) when PostgreSQL
/// aborted it for contention. An answer is given only after the commit succeeded.
pub async fn write<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    F: for<'t> Fn(&'t Transaction<'t>) -> TxFuture<'t, T>,
{
    postgres_support::write(pool, work)
        .await
        .map_err(TxError::into_store_error)
}

async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))
}
