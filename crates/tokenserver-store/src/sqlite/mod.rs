//! The SQLite backend: Mozilla's `services`, `nodes` and `users` tables in one database file.
//!
//! A token server is asked for a token about once an hour per client, so its load is light.
//! One connection behind a mutex, used from blocking threads, is enough, and it serializes
//! this process's writes without any retry logic. Every write is one `BEGIN IMMEDIATE`
//! transaction: it takes the file's write lock before its first read, so what it reads (the
//! candidate nodes, a user's rows) cannot change under it before it commits, even when
//! another process, such as an operator's command, writes to the same file. If such a
//! process holds the lock past the busy timeout, the call fails with
//! [`TokenStoreError::Conflict`], which the caller may retry.
//!
//! The node-assignment rule is described in the crate docs.

mod nodes;
mod schema;
mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::rules::normalize;
use crate::{Node, NodeChange, TokenStore, TokenStoreError, UserKeys, UserRecord, UserState};

/// The only service this server knows, and its endpoint pattern (seeded by the schema).
const SYNC_SERVICE: &str = "sync-1.5";

/// The share of a node's capacity given back when every node has spent its budget.
pub const DEFAULT_RELEASE_RATE: f64 = 0.1;

/// A [`TokenStore`] on one SQLite database file.
#[derive(Clone)]
pub struct SqliteTokenStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    ctx: Ctx,
}

/// What every statement needs besides the connection.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// Row id of `sync-1.5` in `services`.
    service: i64,
    /// See [`SqliteTokenStore::with_release_rate`].
    release_rate: f64,
}

impl SqliteTokenStore {
    /// Opens the database at `path` and brings its schema up to date. With `create` off, a
    /// missing file is an error instead of a new, empty database, so that a mistyped path
    /// cannot silently lose every user's node assignment.
    pub fn open(path: &Path, create: bool) -> Result<Self, TokenStoreError> {
        let conn = sqlite_support::open_migrated(path, create, schema::MIGRATIONS, "token")
            .map_err(|error| TokenStoreError::Backend(error.to_string()))?;
        let service = conn
            .query_row(
                "SELECT id FROM services WHERE service = ?1",
                [SYNC_SERVICE],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| {
                TokenStoreError::Backend(format!(
                    "the services table of {} has no '{SYNC_SERVICE}' row",
                    path.display()
                ))
            })?;
        tracing::info!(
            path = %path.display(),
            schema = schema::latest_version(),
            "opened SQLite token database"
        );
        Ok(SqliteTokenStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
            ctx: Ctx {
                service,
                release_rate: DEFAULT_RELEASE_RATE,
            },
        })
    }

    /// Sets the share of a node's capacity released when every node has spent its budget
    /// (Mozilla's `node_capacity_release_rate`, default 0.1). Values are clamped to
    /// `0.0..=1.0`, and NaN means the default. However small the rate, a release gives a
    /// node with room at least one slot.
    pub fn with_release_rate(mut self, rate: f64) -> Self {
        self.ctx.release_rate = if rate.is_nan() {
            DEFAULT_RELEASE_RATE
        } else {
            rate.clamp(0.0, 1.0)
        };
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on a blocking thread.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, TokenStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, Ctx) -> Result<T, TokenStoreError> + Send + 'static,
    {
        let (conn, ctx) = (self.conn.clone(), self.ctx);
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled back its transaction while unwinding (rusqlite's
            // `Transaction` rolls back on drop), so the connection is still usable.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn, ctx)
        })
        .await
        .map_err(|e| TokenStoreError::Backend(format!("token store task failed: {e}")))?
    }

    /// Runs `f` in one immediate transaction, committed when `f` succeeds and rolled back
    /// when it fails.
    async fn write<T, F>(&self, f: F) -> Result<T, TokenStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, Ctx) -> Result<T, TokenStoreError> + Send + 'static,
    {
        self.with_conn(move |conn, ctx| {
            let tx = begin_write(conn)?;
            let value = f(&tx, ctx)?;
            tx.commit().map_err(backend)?;
            Ok(value)
        })
        .await
    }
}

/// Starts a write transaction that holds the write lock from its first statement.
fn begin_write(conn: &mut Connection) -> Result<Transaction<'_>, TokenStoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)
}

/// Converts a driver error. A busy database (another process holding the lock past the
/// timeout) is a conflict the caller may retry; anything else is a backend failure.
fn backend(error: rusqlite::Error) -> TokenStoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &error
        && matches!(
            code.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        )
    {
        return TokenStoreError::Conflict;
    }
    TokenStoreError::Backend(error.to_string())
}

/// Whether the error is a UNIQUE constraint violation.
fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(code, _)
            if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// The wall clock in milliseconds, for writes whose caller gives no time (race repair in
/// [`TokenStore::get_user`]).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    async fn get_user(&self, email: &str) -> Result<Option<UserState>, TokenStoreError> {
        let email = email.to_owned();
        self.with_conn(move |conn, ctx| users::get_user(conn, ctx, &email, now_ms()))
            .await
    }

    async fn allocate_user(
        &self,
        keys: &UserKeys,
        now_ms: i64,
    ) -> Result<UserRecord, TokenStoreError> {
        let keys = keys.clone();
        self.write(move |tx, ctx| users::allocate_user(tx, ctx, &keys, now_ms))
            .await
    }

    async fn update_user(
        &self,
        uid: u64,
        generation: i64,
        keys_changed_at: Option<i64>,
    ) -> Result<(), TokenStoreError> {
        self.write(move |tx, _| users::update_user(tx, uid, generation, keys_changed_at))
            .await
    }

    async fn replaced_users(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<UserRecord>, TokenStoreError> {
        self.with_conn(move |conn, ctx| users::replaced_users(conn, ctx, before_ms, limit))
            .await
    }

    async fn delete_user_record(&self, uid: u64) -> Result<(), TokenStoreError> {
        self.write(move |tx, _| users::delete_user_record(tx, uid))
            .await
    }

    async fn add_node(&self, url: &str, capacity: i64) -> Result<Node, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| nodes::add(tx, ctx, &url, capacity))
            .await
    }

    async fn ensure_node(&self, url: &str, capacity: i64) -> Result<Node, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| nodes::ensure(tx, ctx, &url, capacity))
            .await
    }

    async fn list_nodes(&self) -> Result<Vec<Node>, TokenStoreError> {
        self.with_conn(|conn, ctx| nodes::list(conn, ctx)).await
    }

    async fn update_node(&self, url: &str, change: NodeChange) -> Result<Node, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| nodes::update(tx, ctx, &url, &change))
            .await
    }

    async fn remove_node(&self, url: &str, now_ms: i64) -> Result<u64, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| nodes::remove(tx, ctx, &url, now_ms))
            .await
    }

    async fn unassign_node(&self, url: &str, now_ms: i64) -> Result<u64, TokenStoreError> {
        let url = normalize(url).to_owned();
        self.write(move |tx, ctx| nodes::unassign(tx, ctx, &url, now_ms))
            .await
    }

    async fn check(&self) -> Result<(), TokenStoreError> {
        self.with_conn(|conn, _| {
            conn.query_row("SELECT COUNT(*) FROM services", [], |row| {
                row.get::<_, i64>(0)
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
