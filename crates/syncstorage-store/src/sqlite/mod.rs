//! The SQLite backend: one database file, one writer connection, a pool of readers; batch
//! uploads are staged in a second file with its own writer (`staging`, ADR 0015).
//!
//! SQLite allows one writer at a time, so writes are serialized here, in process, on a
//! single connection owned by one thread (see `writer`), instead of contending for the file
//! lock and failing with `SQLITE_BUSY`. That is also why concurrent first writes to a new
//! collection cannot fail here as they can on Mozilla's server: there is no lock to lose.
//! Readers use WAL snapshots on a pool of connections and never wait for the writer.

mod batches;
mod checkpointer;
mod listing;
mod read;
mod schema;
mod staging;
mod user_locks;
mod write;
mod writer;

use checkpointer::Checkpointer;
use staging::Staging;
use user_locks::UserLocks;
use writer::{Writer, WriterName};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction};
use sync_proto::SyncTimestamp;

use crate::{
    Bso, BsoPage, BsoQuery, CollectionFigures, PoolState, Precondition, Store, StoreError, UserId,
    Versioned, WriteBsos, WriteOutcome,
};

/// Per-connection tuning. Readers lose their page cache whenever another connection has
/// written, which under a steady write load means every read starts cold; memory-mapping
/// the file lets them read pages straight from the OS cache instead of copying them in.
const TUNING: &str =
    "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;";

/// When the writer copies the WAL back into the database. SQLite's default, every 1,000
/// pages (4 MB), made checkpoints about a third of the writer's time under the benchmark's
/// mix: records are spread over the file, so each 4 MB of WAL held few repeats of a page and
/// each checkpoint copied (and synced) nearly all of it. Every 8,192 pages (32 MB) the same
/// hot pages are copied once for many commits (writer CPU per request down by about a
/// fifth, measured); the WAL file is truncated back to 64 MB if a burst grew it past that.
/// Most of the copying is done meanwhile by the checkpoint thread (see `checkpointer`); the
/// writer's own checkpoint copies what is left and lets the WAL start over.
const CHECKPOINTS: &str = "PRAGMA wal_autocheckpoint=8192; PRAGMA journal_size_limit=67108864;";

/// How `fsync` is used on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed write survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a committed write survives a crash of the process, and may be
    /// lost with the last moments before a power loss. Faster.
    Normal,
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Create the file if it does not exist. Off for paths an operator typed, so that a
    /// typo is an error rather than a new, empty database.
    pub create: bool,
    /// Reader connections in the pool.
    pub readers: u32,
    /// Commit durability.
    pub durability: Durability,
    /// How long a batch stays open.
    pub batch_lifetime: Duration,
    /// Payload bytes after which a listing page ends early (with a cursor for the rest), so
    /// that one request never holds gigabytes of records in memory.
    pub max_page_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            create: true,
            readers: 4,
            durability: Durability::Full,
            batch_lifetime: Duration::from_secs(2 * 60 * 60),
            max_page_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A [`Store`] on one SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    writer: Arc<Writer>,
    checkpointer: Arc<Checkpointer>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    staging: Arc<Staging>,
    user_locks: Arc<UserLocks>,
    closed: Arc<AtomicBool>,
}

/// What reads and writes share: the collection-name cache and fixed options.
pub(crate) struct Inner {
    path: PathBuf,
    collections: RwLock<HashMap<String, i64>>,
    batch_lifetime: Duration,
    max_page_bytes: usize,
}

impl SqliteStore {
    /// Opens (and if allowed creates) the database at `path` and brings its schema up to
    /// date.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        if !options.create && !path.exists() {
            return Err(StoreError::Backend(format!(
                "database file {} does not exist (add ?mode=rwc to the URL to create it)",
                path.display()
            )));
        }
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        let mut writer = Connection::open(path).map_err(backend)?;
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; \
                 PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; {TUNING} {CHECKPOINTS}"
            ))
            .map_err(backend)?;
        writer.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut writer).map_err(backend)?;

        let readers = reader_pool(path, options.readers)?;

        let checkpoints = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(backend)?;
        checkpoints
            .execute_batch(&format!("PRAGMA synchronous={synchronous};"))
            .map_err(backend)?;

        tracing::info!(path = %path.display(), schema = schema::latest_version(), "opened SQLite storage");
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            collections: RwLock::new(HashMap::new()),
            batch_lifetime: options.batch_lifetime,
            max_page_bytes: options.max_page_bytes.max(1),
        });
        Ok(SqliteStore {
            writer: Arc::new(Writer::start(writer, inner.clone(), WriterName::Writer)),
            checkpointer: Arc::new(Checkpointer::start(checkpoints)),
            staging: Arc::new(Staging::open(path, synchronous, inner.clone())?),
            user_locks: Arc::new(UserLocks::new()),
            inner,
            readers,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a read transaction on a pooled reader, on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Inner) -> Result<T, StoreError> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Backend("store is closed".into()));
        }
        let inner = self.inner.clone();
        run_read(&self.readers, move |tx| f(tx, &inner)).await
    }

    /// Runs `f` in the writer's transaction; answers once it is committed.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Inner) -> Result<T, StoreError> + Send + 'static,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Backend("store is closed".into()));
        }
        self.writer.write(f).await
    }
}

/// A pool of read-only connections to the file at `path`.
fn reader_pool(path: &Path, size: u32) -> Result<r2d2::Pool<SqliteConnectionManager>, StoreError> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|conn| {
            conn.set_prepared_statement_cache_capacity(64);
            conn.execute_batch(&format!(
                "PRAGMA busy_timeout=5000; PRAGMA query_only=1; {TUNING}"
            ))
        });
    r2d2::Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .map_err(|e| StoreError::Backend(format!("opening reader pool: {e}")))
}

/// Runs `f` in a read transaction on a connection of `readers`, on a blocking thread.
async fn run_read<T, F>(
    readers: &r2d2::Pool<SqliteConnectionManager>,
    f: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    let readers = readers.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = readers
            .get()
            .map_err(|e| StoreError::Backend(format!("no reader connection: {e}")))?;
        let tx = conn.transaction().map_err(backend)?;
        f(&tx)
    })
    .await
    .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
}

impl Inner {
    /// The id of a collection name, if any user ever wrote to it (read transactions: what
    /// they find is committed, so it is cached).
    fn collection_id(&self, tx: &Transaction<'_>, name: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.cached_collection(name) {
            return Ok(Some(id));
        }
        let id = read::lookup_collection(tx, name)?;
        if let Some(id) = id {
            self.remember_collection(name, id);
        }
        Ok(id)
    }

    /// The id of a collection name in a write transaction. Nothing found here is cached: the
    /// row may have been created by a write of the same group that is not committed yet.
    fn collection_id_for_write(
        &self,
        tx: &Transaction<'_>,
        name: &str,
    ) -> Result<Option<i64>, StoreError> {
        match self.cached_collection(name) {
            Some(id) => Ok(Some(id)),
            None => read::lookup_collection(tx, name),
        }
    }

    /// The id of a collection name, creating it (writes only).
    fn collection_id_or_create(&self, tx: &Transaction<'_>, name: &str) -> Result<i64, StoreError> {
        match self.collection_id_for_write(tx, name)? {
            Some(id) => Ok(id),
            None => write::create_collection(tx, name),
        }
    }

    fn cached_collection(&self, name: &str) -> Option<i64> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    fn remember_collection(&self, name: &str, id: i64) {
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), id);
    }
}

/// Converts a driver error. A busy database (another process holding the lock past the
/// timeout) is a conflict the client may retry; anything else is a backend failure.
pub(crate) fn backend(error: rusqlite::Error) -> StoreError {
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

fn now_ms() -> i64 {
    SyncTimestamp::now().as_millis() as i64
}

#[async_trait]
impl Store for SqliteStore {
    async fn collection_timestamps(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<SyncTimestamp>>, StoreError> {
        self.read(move |tx, _| read::collection_timestamps(tx, user, precondition))
            .await
    }

    async fn collection_counts(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<u64>>, StoreError> {
        self.read(move |tx, _| read::collection_figures(tx, user, precondition, "COUNT(*)"))
            .await
    }

    async fn collection_usage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<u64>>, StoreError> {
        self.read(move |tx, _| {
            read::collection_figures(tx, user, precondition, "SUM(payload_size)")
        })
        .await
    }

    async fn storage_usage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<u64>, StoreError> {
        self.read(move |tx, _| {
            let last_modified = read::storage_timestamp(tx, user)?;
            precondition.check(last_modified)?;
            Ok(Versioned {
                last_modified,
                value: read::usage(tx, user)?,
            })
        })
        .await
    }

    async fn delete_storage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        self.delete_with_batches(user, None, precondition).await
    }

    async fn get_bsos(
        &self,
        user: UserId,
        collection: &str,
        query: BsoQuery,
        precondition: Precondition,
    ) -> Result<Versioned<BsoPage>, StoreError> {
        let collection = collection.to_owned();
        self.read(move |tx, inner| {
            let Some(collection_id) = inner.collection_id(tx, &collection)? else {
                precondition.check(SyncTimestamp::ZERO)?;
                return Ok(Versioned {
                    last_modified: SyncTimestamp::ZERO,
                    value: BsoPage::default(),
                });
            };
            let last_modified = read::collection_timestamp(tx, user, collection_id)?;
            precondition.check(last_modified)?;
            let value = listing::bsos(tx, user, collection_id, &query, inner.max_page_bytes)?;
            Ok(Versioned {
                last_modified,
                value,
            })
        })
        .await
    }

    async fn get_bso(
        &self,
        user: UserId,
        collection: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<Versioned<Bso>, StoreError> {
        let (collection, id) = (collection.to_owned(), id.to_owned());
        self.read(move |tx, inner| {
            let bso = match inner.collection_id(tx, &collection)? {
                Some(collection_id) => read::bso(tx, user, collection_id, &id)?,
                None => None,
            };
            let last_modified = bso.as_ref().map_or(SyncTimestamp::ZERO, |b| b.modified);
            precondition.check(last_modified)?;
            let bso = bso.ok_or(StoreError::NotFound)?;
            Ok(Versioned {
                last_modified,
                value: bso,
            })
        })
        .await
    }

    async fn put_bsos(
        &self,
        request: WriteBsos,
        per_record_precondition: bool,
    ) -> Result<WriteOutcome, StoreError> {
        self.write(move |tx, inner| {
            let collection_id = inner.collection_id_or_create(tx, &request.collection)?;
            let resource = match request.items.as_slice() {
                [only] if per_record_precondition => {
                    read::bso_timestamp(tx, request.user, collection_id, &only.id)?
                }
                _ => read::collection_timestamp(tx, request.user, collection_id)?,
            };
            request.precondition.check(resource)?;
            write::store_bsos(tx, &request, collection_id)
        })
        .await
    }

    async fn delete_collection(
        &self,
        user: UserId,
        collection: &str,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        self.delete_with_batches(user, Some(collection.to_owned()), precondition)
            .await
    }

    async fn delete_bsos(
        &self,
        user: UserId,
        collection: &str,
        ids: Vec<String>,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        let collection = collection.to_owned();
        self.write(move |tx, inner| {
            let collection_id = inner.collection_id_for_write(tx, &collection)?;
            write::delete_bsos(tx, user, collection_id, &ids, precondition)
        })
        .await
    }

    async fn delete_bso(
        &self,
        user: UserId,
        collection: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        let (collection, id) = (collection.to_owned(), id.to_owned());
        self.write(move |tx, inner| {
            let collection_id = inner
                .collection_id_for_write(tx, &collection)?
                .ok_or(StoreError::NotFound)?;
            write::delete_bso(tx, user, collection_id, &id, precondition)
        })
        .await
    }

    async fn create_batch(
        &self,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<Versioned<String>, StoreError> {
        self.open_batch(request, max_records).await
    }

    async fn append_batch(
        &self,
        batch: &str,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<SyncTimestamp, StoreError> {
        self.stage_in_batch(batch.to_owned(), request, max_records)
            .await
    }

    async fn commit_batch(
        &self,
        batch: &str,
        request: WriteBsos,
    ) -> Result<(WriteOutcome, Vec<String>), StoreError> {
        self.write_batch(batch.to_owned(), request).await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        // Small chunks, each its own transaction, so that client writes are not held up
        // behind one long purge.
        loop {
            let removed = self
                .write(|tx, _| write::purge_expired_chunk(tx, 1000))
                .await?;
            total += removed;
            if removed == 0 {
                break;
            }
        }
        Ok(total + self.staging.purge_expired().await?)
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.read(|tx, _| {
            tx.query_row("SELECT COUNT(*) FROM collections", [], |row| {
                row.get::<_, i64>(0)
            })
            .map_err(backend)?;
            Ok(())
        })
        .await?;
        self.staging.check().await
    }

    fn pool_state(&self) -> PoolState {
        let state = self.readers.state();
        PoolState {
            connections: state.connections + 1,
            idle: state.idle_connections,
            waiting_writers: self.writer.waiting() + self.staging.waiting(),
        }
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let checkpointer = self.checkpointer.clone();
        let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
        self.writer.close().await;
        self.staging.close().await;
    }
}
