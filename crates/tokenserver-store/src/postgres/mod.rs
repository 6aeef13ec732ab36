//! The PostgreSQL backend: the SQLite backend's tables in a PostgreSQL database (or schema),
//! for a token server that runs in several processes or on several machines.
//!
//! # Transactions and concurrency
//!
//! Unlike the SQLite backend, several processes write at once here, so every write that
//! reads before it writes locks what it read:
//!
//! - An allocation first takes a transaction-scoped advisory lock keyed by the account
//!   (`pg_advisory_xact_lock`), then reads the account's rows. A second allocation for the
//!   same account waits, then finds the row the first one made and returns it
//!   (`rules::reusable`), so two devices of a new user asking at once get one uid. The
//!   partial unique index on unreplaced rows (see `schema`) backs this up.
//! - The candidate nodes are read `FOR UPDATE`, in id order, so two allocations never
//!   choose from the same loads: the second waits for the first to commit, and PostgreSQL
//!   then re-checks its `WHERE` (room left, budget left) against the committed row. A node
//!   is therefore never given more users than its capacity.
//! - Transactions run at `READ COMMITTED`. A deadlock or serialization failure (PostgreSQL
//!   asks for a retry) becomes [`TokenStoreError::Conflict`] inside the operation, and the
//!   whole transaction is run again a few times before that error reaches the caller.
//!
//! Reads that write nothing (`list_nodes`, `replaced_users`, the first read of `get_user`)
//! take no lock.

mod nodes;
mod schema;
mod users;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::rules::normalize;
use crate::sqlite::DEFAULT_RELEASE_RATE;
use crate::{Node, NodeChange, TokenStore, TokenStoreError, UserKeys, UserRecord, UserState};

/// The only service this server knows (seeded by the schema).
const SYNC_SERVICE: &str = "sync-1.5";

/// A [`TokenStore`] on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresTokenStore {
    pool: Pool,
    ctx: Ctx,
}

/// What every statement needs besides the connection.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// Row id of `sync-1.5` in `services`.
    service: i64,
    /// See [`PostgresTokenStore::with_release_rate`].
    release_rate: f64,
}

/// What an operation inside a transaction returns.
type TxFuture<'a, T> = postgres_support::TxFuture<'a, T, TokenStoreError>;

impl PostgresTokenStore {
    /// Connects to `url` with a pool of at most `max_connections` and brings the schema up
    /// to date. Processes starting at once apply each migration once (an advisory lock).
    pub async fn open(url: &str, max_connections: usize) -> Result<Self, TokenStoreError> {
        let pool = postgres_support::connect(url, max_connections)
            .await
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let mut client = pool.get().await.map_err(pool_error)?;
        postgres_support::migrate(&mut client, schema::MIGRATIONS, "token")
            .await
            .map_err(backend)?;
        let service: i64 = client
            .query_opt(
                "SELECT id FROM services WHERE service = $1",
                &[&SYNC_SERVICE],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| {
                TokenStoreError::Backend(format!("the services table has no '{SYNC_SERVICE}' row"))
            })?
            .get(0);
        tracing::info!(
            schema = schema::MIGRATIONS.len(),
            "opened PostgreSQL token database"
        );
        Ok(PostgresTokenStore {
            pool,
            ctx: Ctx {
                service,
                release_rate: DEFAULT_RELEASE_RATE,
            },
        })
    }

    /// Sets the share of a node's capacity released when every node has spent its budget,
    /// as [`SqliteTokenStore::with_release_rate`](crate::sqlite::SqliteTokenStore::with_release_rate)
    /// does (clamped to `0.0..=1.0`, NaN means the default, at least one slot).
    pub fn with_release_rate(mut self, rate: f64) -> Self {
        self.ctx.release_rate = if rate.is_nan() {
            DEFAULT_RELEASE_RATE
        } else {
            rate.clamp(0.0, 1.0)
        };
        self
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, TokenStoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `op` in one transaction, committed when it succeeds, rolled back when it fails,
    /// and run again (up to [`postgres_support::ATTEMPTS`] in all) when PostgreSQL aborted
    /// it for a deadlock or serialization failure.
    async fn write<T, F>(&self, op: F) -> Result<T, TokenStoreError>
    where
        T: Send,
        F: for<'a> Fn(&'a Transaction<'a>, Ctx) -> TxFuture<'a, T> + Send + Sync,
    {
        let ctx = self.ctx;
        postgres_support::write(&self.pool, move |tx| op(tx, ctx)).await
    }
}

impl postgres_support::TxErrors for TokenStoreError {
    fn conflict() -> Self {
        TokenStoreError::Conflict
    }

    fn backend(message: String) -> Self {
        TokenStoreError::Backend(message)
    }

    fn retryable(&self) -> bool {
        matches!(self, TokenStoreError::Conflict)
    }
}

/// A driver error as the store's error (see [`postgres_support::TxErrors::driver`]).
fn backend(error: tokio_postgres::Error) -> TokenStoreError {
    <TokenStoreError as postgres_support::TxErrors>::driver(error)
}

fn pool_error(error: deadpool_postgres::PoolError) -> TokenStoreError {
    <TokenStoreError as postgres_support::TxErrors>::pool(error)
}

/// Whether the error is a unique constraint violation.
fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Prepares `sql` once per connection and runs it.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, TokenStoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query(&statement, params).await.map_err(backend)
}

/// Prepares `sql` once per connection and runs it; returns the rows changed.
async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, TokenStoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.execute(&statement, params).await.map_err(backend)
}

/// The wall clock in milliseconds, for writes whose caller gives no time.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl TokenStore for PostgresTokenStore {
    async fn get_user(&self, email: &str) -> Result<Option<UserState>, TokenStoreError> {
        let client = self.client().await?;
        let Some(summary) = users::read(&client, self.ctx, email).await? else {
            return Ok(None);
        };
        if summary.unreplaced.is_empty() {
            return Ok(Some(summary.state));
        }
        drop(client);
        let email = email.to_owned();
        let now = now_ms();
        self.write(move |tx, ctx| {
            let email = email.clone();
            Box::pin(async move { users::repair(tx, ctx, &email, now).await })
        })
        .await
    }

    async fn allocate_user(
        &self,
        keys: &UserKeys,
        now_ms: i64,
    ) -> Result<UserRecord, TokenStoreError> {
        self.write(|tx, ctx| {
            let keys = keys.clone();
            Box::pin(async move { users::allocate(tx, ctx, &keys, now_ms).await })
        })
        .await
    }

    async fn update_user(
        &self,
        uid: u64,
        generation: i64,
        keys_changed_at: Option<i64>,
    ) -> Result<(), TokenStoreError> {
        let client = self.client().await?;
        users::update(&client, uid, generation, keys_changed_at).await
    }

    async fn replaced_users(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<UserRecord>, TokenStoreError> {
        let client = self.client().await?;
        users::replaced(&client, self.ctx, before_ms, limit).await
    }

    async fn delete_user_record(&self, uid: u64) -> Result<(), TokenStoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM users WHERE uid = $1",
            &[&(uid as i64)],
        )
        .await?;
        Ok(())
    }

    async fn add_node(&self, url: &str, capacity: i64) -> Result<Node, TokenStoreError> {
        let client = self.client().await?;
        nodes::add(&client, self.ctx, normalize(url), capacity).await
    }

    async fn ensure_node(&self, url: &str, capacity: i64) -> Result<Node, TokenStoreError> {
        let client = self.client().await?;
        nodes::ensure(&client, self.ctx, normalize(url), capacity).await
    }

    async fn list_nodes(&self) -> Result<Vec<Node>, TokenStoreError> {
        let client = self.client().await?;
        nodes::list(&client, self.ctx).await
    }

    async fn update_node(&self, url: &str, change: NodeChange) -> Result<Node, TokenStoreError> {
        let client = self.client().await?;
        nodes::update(&client, self.ctx, normalize(url), &change).await
    }

    async fn remove_node(&self, url: &str, now_ms: i64) -> Result<u64, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| {
            let url = url.clone();
            Box::pin(async move { nodes::remove(tx, ctx, &url, now_ms).await })
        })
        .await
    }

    async fn unassign_node(&self, url: &str, now_ms: i64) -> Result<u64, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| {
            let url = url.clone();
            Box::pin(async move { nodes::unassign(tx, ctx, &url, now_ms).await })
        })
        .await
    }

    async fn check(&self) -> Result<(), TokenStoreError> {
        let client = self.client().await?;
        query(&client, "SELECT COUNT(*) FROM services", &[]).await?;
        Ok(())
    }
}
