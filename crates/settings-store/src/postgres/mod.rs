//! The PostgreSQL backend: Kinto's objects, list timestamps and permissions in a PostgreSQL
//! database (or schema), for Remote Settings served by several processes behind a load
//! balancer. It answers every call as the SQLite backend does (the conformance suite runs
//! on both); what differs is how writers are kept apart.
//!
//! # Transactions and timestamps
//!
//! Every write is one `READ COMMITTED` transaction that first takes its list's timestamp
//! row: `put` with one upsert that computes the next timestamp (Kinto's
//! `max(now, previous + 1)`, or a newer forced value) under the row lock, `delete` and
//! `delete_many` with `SELECT ... FOR UPDATE`. The lock is held until the commit, so writers
//! of one list run one at a time, whatever process they are in, and a list's timestamps
//! strictly increase in commit order. Only then is the current object read and the
//! precondition checked, so nothing can change the object between the check and the write.
//! A failed precondition rolls back the timestamp too.
//!
//! "Now" is the database server's clock (`clock_timestamp()`, read once the lock is held),
//! so processes on machines whose clocks disagree still take timestamps from one clock.
//!
//! A deadlock or serialization failure (PostgreSQL asks the client to retry) becomes
//! [`StoreError::Conflict`] inside the operation, and the transaction is run again, up to
//! [`postgres_support::ATTEMPTS`] times in all, before the conflict reaches the server (which answers 409
//! with `Retry-After` only then). Kinto's own PostgreSQL backend answers the first one.
//!
//! # Locks
//!
//! [`SettingsStore::lock`] is a session advisory lock on a connection taken from the pool
//! for as long as the lock is held (see `lock`), so the pool always keeps at least two
//! connections: one holder must still be able to write.

mod lock;
mod objects;
mod perms;
mod schema;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio_postgres::types::ToSql;

use crate::{
    Kind, Object, Permissions, Precondition, RawObject, SettingsStore, StoreError, StoreLock, Write,
};

/// A [`SettingsStore`] on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresSettingsStore {
    pool: Pool,
}

/// What an operation inside a transaction returns.
type TxFuture<'a, T> = postgres_support::TxFuture<'a, T, StoreError>;

impl PostgresSettingsStore {
    /// Connects to `url` with a pool of at most `max_connections` (at least 2, see the
    /// module docs) and brings the schema up to date. Processes starting at once apply each
    /// migration once (an advisory lock).
    pub async fn open(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let pool = postgres_support::connect(url, max_connections.max(2))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut client = pool.get().await.map_err(pool_error)?;
        postgres_support::migrate(&mut client, schema::MIGRATIONS, "settings")
            .await
            .map_err(backend)?;
        tracing::info!(
            schema = schema::MIGRATIONS.len(),
            "opened PostgreSQL settings database"
        );
        Ok(PostgresSettingsStore { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `op` in one transaction, committed when it succeeds, rolled back when it fails,
    /// and run again (up to [`postgres_support::ATTEMPTS`] in all) when PostgreSQL aborted
    /// it for a deadlock or serialization failure.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'a> Fn(&'a Transaction<'a>) -> TxFuture<'a, T> + Send + Sync,
    {
        postgres_support::write(&self.pool, op).await
    }
}

impl postgres_support::TxErrors for StoreError {
    fn conflict() -> Self {
        StoreError::Conflict
    }

    fn backend(message: String) -> Self {
        StoreError::Backend(message)
    }

    fn retryable(&self) -> bool {
        matches!(self, StoreError::Conflict)
    }
}

/// A driver error as the store's error (see [`postgres_support::TxErrors::driver`]).
fn backend(error: tokio_postgres::Error) -> StoreError {
    <StoreError as postgres_support::TxErrors>::driver(error)
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    <StoreError as postgres_support::TxErrors>::pool(error)
}

/// Prepares `sql` once per connection and runs it.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query(&statement, params).await.map_err(backend)
}

/// Prepares `sql` once per connection and runs it; returns the rows changed.
async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.execute(&statement, params).await.map_err(backend)
}

#[async_trait]
impl SettingsStore for PostgresSettingsStore {
    async fn get(&self, kind: Kind, parent: &str, id: &str) -> Result<Option<Object>, StoreError> {
        objects::get(&self.client().await?, kind, parent, id).await
    }

    async fn list(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<Object>, StoreError> {
        objects::list(&self.client().await?, kind, parent, include_deleted).await
    }

    async fn list_raw(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<RawObject>, StoreError> {
        objects::list_raw(&self.client().await?, kind, parent, include_deleted).await
    }

    async fn timestamp(&self, kind: Kind, parent: &str) -> Result<i64, StoreError> {
        objects::timestamp(&self.client().await?, kind, parent).await
    }

    async fn put(&self, write: Write) -> Result<(Object, bool), StoreError> {
        self.write(|tx| {
            let write = write.clone();
            Box::pin(async move { objects::put(tx, write).await })
        })
        .await
    }

    async fn delete(
        &self,
        kind: Kind,
        parent: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<Object, StoreError> {
        // The operation may only borrow the transaction (it runs again on a conflict).
        let (parent, id) = (parent.to_owned(), id.to_owned());
        self.write(|tx| {
            let (parent, id) = (parent.clone(), id.clone());
            Box::pin(async move { objects::delete(tx, kind, &parent, &id, precondition).await })
        })
        .await
    }

    async fn delete_many(
        &self,
        kind: Kind,
        parent: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<Object>, StoreError> {
        let parent = parent.to_owned();
        self.write(|tx| {
            let (parent, ids) = (parent.clone(), ids.clone());
            Box::pin(async move { objects::delete_many(tx, kind, &parent, ids).await })
        })
        .await
    }

    async fn permissions(&self, uri: &str) -> Result<Permissions, StoreError> {
        perms::get(&self.client().await?, uri).await
    }

    async fn permissions_of(
        &self,
        principals: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        perms::of(&self.client().await?, principals).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            Box::pin(async move {
                tx.batch_execute(
                    "DELETE FROM objects; DELETE FROM timestamps; DELETE FROM permissions;",
                )
                .await
                .map_err(backend)
            })
        })
        .await
    }

    async fn lock(&self, name: &str) -> Result<StoreLock, StoreError> {
        lock::acquire(self.client().await?, name).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        query(
            &self.client().await?,
            "SELECT COUNT(*) FROM timestamps WHERE FALSE",
            &[],
        )
        .await?;
        Ok(())
    }
}
