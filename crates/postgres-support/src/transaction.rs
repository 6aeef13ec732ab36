//! Running a unit of work as one transaction, again when PostgreSQL asks for it.
//!
//! Every PostgreSQL backend writes the same way: take a pooled connection, open a
//! transaction, do the work, commit; if PostgreSQL aborted the transaction for a deadlock or
//! a serialization failure, nothing was done, so do it all again after a short random pause,
//! a bounded number of times. A failed attempt is rolled back at once, so the connection
//! returns to the pool with no transaction (and no lock) open.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use rand::Rng;

/// The future of one attempt at a transaction's work.
pub type TxFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// Attempts of a transaction, in all, before a retryable failure is returned. Five attempts
/// with pauses of up to 10, 20, 30 and 40 ms absorb the deadlocks two writers meeting in
/// opposite orders produce, without making a client wait long for a real outage.
pub const ATTEMPTS: u32 = 5;

/// How a backend's errors relate to the driver's. A backend names its two kinds of failure;
/// the classification of driver errors (what PostgreSQL asks to retry is a conflict,
/// anything else a backend failure) is shared.
pub trait TxErrors: Sized {
    /// The error for contention the caller may retry.
    fn conflict() -> Self;
    /// Any other database failure, described for the logs.
    fn backend(message: String) -> Self;
    /// Whether running the transaction again may succeed.
    fn retryable(&self) -> bool;

    /// The error for a driver failure (beginning, a statement, committing, rolling back).
    fn driver(error: tokio_postgres::Error) -> Self {
        if crate::is_retryable(&error) {
            Self::conflict()
        } else {
            Self::backend(error.to_string())
        }
    }

    /// The error when no pooled connection could be had.
    fn pool(error: deadpool_postgres::PoolError) -> Self {
        Self::backend(format!("no PostgreSQL connection: {error}"))
    }
}

/// Runs `work` in one transaction on a connection of `pool` and commits it, running it
/// again (up to [`ATTEMPTS`] in all) while it fails with a retryable error. An answer is
/// given only after the commit succeeded.
pub async fn write<T, E, F>(pool: &Pool, work: F) -> Result<T, E>
where
    E: TxErrors,
    F: for<'t> Fn(&'t Transaction<'t>) -> TxFuture<'t, T, E>,
{
    let mut client = pool.get().await.map_err(E::pool)?;
    let mut attempt = 1;
    loop {
        let tx = client.transaction().await.map_err(E::driver)?;
        let result = match work(&tx).await {
            Ok(value) => tx.commit().await.map_err(E::driver).map(|()| value),
            Err(error) => {
                tx.rollback().await.map_err(E::driver)?;
                Err(error)
            }
        };
        match result {
            Err(error) if error.retryable() && attempt < ATTEMPTS => {
                let pause = rand::rng().random_range(1..=10 * u64::from(attempt));
                tracing::debug!(attempt, pause_ms = pause, "transaction contended; retrying");
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            Err(error) => {
                if error.retryable() {
                    tracing::warn!(attempt, "transaction still contended; giving up");
                }
                return Err(error);
            }
            Ok(value) => return Ok(value),
        }
    }
}
