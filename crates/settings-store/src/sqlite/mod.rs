//! The SQLite backend: Kinto's objects, list timestamps and permissions in one database file.
//!
//! # Connections and transactions
//!
//! Remote Settings is read far more than it is written, and its reads (a few lists of
//! settings, polled by clients) are meant to be served from HTTP caches; writes come from a
//! handful of editors and the signer. One connection behind a mutex, used from blocking
//! threads, is enough for that, and it serializes this process's writes without any retry
//! logic. Every write is one `BEGIN IMMEDIATE` transaction: it takes the file's write lock
//! before its first read, so the list timestamp and the current object it reads cannot
//! change under it before it commits, even when another process writes to the same file. If
//! such a process holds the lock past the busy timeout, the call fails with
//! [`StoreError::Conflict`], which the caller may retry.
//!
//! # Timestamps
//!
//! Each list (kind, parent) has a row in `timestamps`: the highest `last_modified` it ever
//! had. A write reads it and takes `max(now, list + 1)`, or the client's forced timestamp
//! when that is newer than the list (Kinto ignores one that is not, and bumps as usual),
//! then stores the new value, all inside its transaction. Since writers to one file hold
//! its write lock in turn, the timestamps of a list strictly increase in commit order, even
//! within one millisecond and across processes. Deleting objects never lowers the row, so
//! a list's timestamp (its `ETag`) never goes back, even once the list is empty.
//!
//! # Preconditions
//!
//! A write checks its [`Precondition`](crate::Precondition) against the current *live*
//! object inside its transaction (a tombstone counts as absent), so nothing can slip in
//! between the check and the write, unlike Kinto, whose resource layer checks before it
//! calls storage (Kinto#1407). A failed precondition writes nothing and returns the live
//! object, if any.
//!
//! `delete` of a missing or already deleted object is [`StoreError::NotFound`] whatever the
//! precondition, because Kinto's `DELETE` looks the object up (404) before it checks
//! `If-Match` / `If-None-Match` (412). A precondition is only checked against an object
//! that exists (`If-None-Match: *` on an existing object fails, as in Kinto).
//!
//! # Deletes and subtrees
//!
//! Deleting an object leaves a tombstone `{id, last_modified, deleted: true}` in its list,
//! at the list's next timestamp, and removes, without tombstones, everything under its URI
//! (`parent/kind/id`, such as `/buckets/b` or `/buckets/b/collections/c`): the objects of
//! every list whose parent is that URI or starts with it followed by `/`, their tombstones,
//! those lists' timestamps, and the permissions of the URI and of every URI under it. A
//! bucket recreated later therefore starts with no collections, records or tombstones, as
//! in Kinto (#136).
//!
//! URIs under a URI `u` are found with the byte range `[u, u + "0")` (`0` follows `/` in
//! ASCII) narrowed to `u` itself and `u/...`, never with `LIKE`, whose `_` wildcard would
//! match ids containing `_`, and which would also catch siblings such as `u-x`.
//!
//! # Locks
//!
//! [`SettingsStore::lock`] is a named mutex in this process. Two processes could open one
//! file, but syncstack serves an SQLite database from one process; a deployment of several
//! processes uses PostgreSQL, whose locks are shared.
//!
//! # Permissions
//!
//! One row per (URI, permission, principal). A permission stored with no principal has no
//! row, so it reads back as absent.

mod objects;
mod perms;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::{
    Kind, Object, Permissions, Precondition, RawObject, SettingsStore, StoreError, StoreLock, Write,
};

/// A [`SettingsStore`] on one SQLite database file.
#[derive(Clone)]
pub struct SqliteSettingsStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// The named locks of [`SettingsStore::lock`], kept in this process only: an SQLite
    /// database is served by one process.
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl SqliteSettingsStore {
    /// Opens the database at `path` and brings its schema up to date. With `create` off, a
    /// missing file is an error instead of a new, empty database, so that a mistyped path
    /// cannot silently serve no settings at all.
    pub fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        let conn = sqlite_support::open_migrated(path, create, schema::MIGRATIONS, "settings")
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        tracing::info!(
            path = %path.display(),
            schema = schema::latest_version(),
            "opened SQLite settings database"
        );
        Ok(SqliteSettingsStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
            locks: Arc::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on a blocking thread.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled back its transaction while unwinding (rusqlite's
            // `Transaction` rolls back on drop), so the connection is still usable.
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("settings store task failed: {e}")))?
    }

    /// Runs `f` in one immediate transaction, committed when `f` succeeds and rolled back
    /// when it fails. `f` gets the wall clock in milliseconds, read once the write lock is
    /// held.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let value = f(&tx, now_ms())?;
            tx.commit().map_err(backend)?;
            Ok(value)
        })
        .await
    }
}

/// Converts a driver error. A busy database (another process holding the lock past the
/// timeout) is a conflict the caller may retry; anything else is a backend failure.
fn backend(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &error
        && matches!(
            code.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        )
    {
        return StoreError::Conflict;
    }
    StoreError::Backend(error.to_string())
}

/// The wall clock in milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl SettingsStore for SqliteSettingsStore {
    async fn get(&self, kind: Kind, parent: &str, id: &str) -> Result<Option<Object>, StoreError> {
        let (parent, id) = (parent.to_owned(), id.to_owned());
        self.with_conn(move |conn| objects::get(conn, kind, &parent, &id))
            .await
    }

    async fn list(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<Object>, StoreError> {
        let parent = parent.to_owned();
        self.with_conn(move |conn| objects::list(conn, kind, &parent, include_deleted))
            .await
    }

    async fn list_raw(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<RawObject>, StoreError> {
        let parent = parent.to_owned();
        self.with_conn(move |conn| objects::list_raw(conn, kind, &parent, include_deleted))
            .await
    }

    async fn timestamp(&self, kind: Kind, parent: &str) -> Result<i64, StoreError> {
        let parent = parent.to_owned();
        self.with_conn(move |conn| objects::timestamp(conn, kind, &parent))
            .await
    }

    async fn put(&self, write: Write) -> Result<(Object, bool), StoreError> {
        self.write(move |tx, now| objects::put(tx, write, now))
            .await
    }

    async fn delete(
        &self,
        kind: Kind,
        parent: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<Object, StoreError> {
        let (parent, id) = (parent.to_owned(), id.to_owned());
        self.write(move |tx, now| objects::delete(tx, kind, &parent, &id, precondition, now))
            .await
    }

    async fn delete_many(
        &self,
        kind: Kind,
        parent: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<Object>, StoreError> {
        let parent = parent.to_owned();
        self.write(move |tx, now| objects::delete_many(tx, kind, &parent, ids, now))
            .await
    }

    async fn permissions(&self, uri: &str) -> Result<Permissions, StoreError> {
        let uri = uri.to_owned();
        self.with_conn(move |conn| perms::get(conn, &uri)).await
    }

    async fn permissions_of(
        &self,
        principals: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let principals = principals.to_vec();
        self.with_conn(move |conn| perms::of(conn, &principals))
            .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.write(|tx, _| objects::flush(tx)).await
    }

    async fn lock(&self, name: &str) -> Result<StoreLock, StoreError> {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(name.to_owned()).or_default().clone()
        };
        Ok(StoreLock::new(mutex.lock_owned().await))
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            // Reads the schema and the file without scanning any row.
            conn.query_row("SELECT COUNT(*) FROM timestamps WHERE 0", [], |row| {
                row.get::<_, i64>(0)
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
