//! The PostgreSQL backend: a pool of async connections, one transaction per request.
//!
//! Where the SQLite backend serializes writes on one connection in one process, here
//! several nodes (processes, machines) may write to one database at once. Each write that
//! changes records therefore starts by locking the user's row in `storage_users`, which also
//! holds the user's last timestamp: writes of one user run one after the other wherever
//! they come from, each takes `max(now, last + 10 ms)`, and timestamps strictly increase
//! across processes, as they do in one SQLite process (ADR 0010). Writes of different users
//! never wait for each other; staging a batch, which changes no record until the commit,
//! locks only the batch. Reads take a snapshot and never wait for writers.
//!
//! Modules: `tx` runs transactions (isolation, bounded retries, error mapping), `read` and
//! `write` hold the statements, `batch` the batch uploads, `schema` the migrations.

mod batch;
mod read;
mod schema;
mod tx;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use sync_proto::SyncTimestamp;

use crate::{
    Bso, BsoPage, BsoQuery, CollectionFigures, PoolState, Precondition, Store, StoreError, UserId,
    Versioned, WriteBsos, WriteOutcome,
};
use read::Figure;
use tx::{TxError, driver_error};

/// How to open the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections in the pool (each request holds one for its transaction).
    pub max_connections: usize,
    /// How long a batch stays open.
    pub batch_lifetime: Duration,
    /// Payload bytes after which a listing page ends early (with a cursor for the rest), so
    /// that one request never holds gigabytes of records in memory.
    pub max_page_bytes: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            batch_lifetime: Duration::from_secs(2 * 60 * 60),
            max_page_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A [`Store`] on a PostgreSQL database, safe to share between several nodes.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    inner: Arc<Inner>,
}

struct Inner {
    /// Collection ids by name. Names are never deleted nor renumbered, and only committed
    /// rows are cached, so an entry stays true in every process.
    collections: RwLock<HashMap<String, i32>>,
    batch_lifetime: Duration,
    max_page_bytes: usize,
    closed: AtomicBool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`, libpq's
    /// parameters) and brings its schema up to date. The database must exist: nothing is
    /// created but the tables, so a mistyped database name is an error.
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let pool = postgres_support::connect(url, options.max_connections)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))?;
        postgres_support::migrate(&mut client, schema::MIGRATIONS, schema::SCHEMA_NAME)
            .await
            .map_err(|e| driver_error(&e))?;
        drop(client);
        tracing::info!(
            schema = schema::MIGRATIONS.len(),
            "opened PostgreSQL storage"
        );
        Ok(PostgresStore {
            pool,
            inner: Arc::new(Inner {
                collections: RwLock::new(HashMap::new()),
                batch_lifetime: options.batch_lifetime,
                max_page_bytes: options.max_page_bytes.max(1),
                closed: AtomicBool::new(false),
            }),
        })
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Backend("store is closed".into()));
        }
        Ok(())
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t deadpool_postgres::Transaction<'t>) -> tx::TxFuture<'t, T>,
    {
        self.ensure_open()?;
        tx::read(&self.pool, work).await
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: for<'t> Fn(&'t deadpool_postgres::Transaction<'t>) -> tx::TxFuture<'t, T>,
    {
        self.ensure_open()?;
        tx::write(&self.pool, work).await
    }

    fn cached_collection(&self, name: &str) -> Option<i32> {
        self.inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    fn remember_collection(&self, name: &str, id: i32) {
        self.inner
            .collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), id);
    }

    /// The id of a collection name, if any user ever wrote to it.
    async fn collection_id(&self, name: &str) -> Result<Option<i32>, StoreError> {
        if let Some(id) = self.cached_collection(name) {
            return Ok(Some(id));
        }
        let owned = name.to_owned();
        let id = self
            .read(move |tx| Box::pin(async move { read::lookup_collection(tx, &owned).await }))
            .await?;
        if let Some(id) = id {
            self.remember_collection(name, id);
        }
        Ok(id)
    }

    /// The id of a collection name, creating it in its own transaction first. The row is
    /// committed before the write that needs it, so it can be cached at once; if that
    /// write then fails, an unused name remains, which no client can see.
    async fn collection_id_or_create(&self, name: &str) -> Result<i32, StoreError> {
        if let Some(id) = self.collection_id(name).await? {
            return Ok(id);
        }
        let owned = Arc::new(name.to_owned());
        let id = self
            .write(move |tx| {
                let name = owned.clone();
                Box::pin(async move {
                    // Another node may create the same name at the same moment: the
                    // loser's insert does nothing and the lookup finds the winner's row.
                    let stmt = tx
                        .prepare_cached(
                            "INSERT INTO storage_collections (name) VALUES ($1) \
                             ON CONFLICT (name) DO NOTHING",
                        )
                        .await?;
                    tx.execute(&stmt, &[&*name]).await?;
                    read::lookup_collection(tx, &name).await?.ok_or_else(|| {
                        TxError::Store(StoreError::Backend("collection vanished".into()))
                    })
                })
            })
            .await?;
        self.remember_collection(name, id);
        Ok(id)
    }
}

fn now_ms() -> i64 {
    SyncTimestamp::now().as_millis() as i64
}

#[async_trait]
impl Store for PostgresStore {
    async fn collection_timestamps(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<SyncTimestamp>>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move { read::collection_timestamps(tx, user, precondition).await })
        })
        .await
    }

    async fn collection_counts(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<u64>>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                read::collection_figures(tx, user, precondition, Figure::Count).await
            })
        })
        .await
    }

    async fn collection_usage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<u64>>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                read::collection_figures(tx, user, precondition, Figure::Bytes).await
            })
        })
        .await
    }

    async fn storage_usage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<u64>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let last_modified = read::storage_timestamp(tx, user).await?;
                precondition.check(last_modified)?;
                Ok(Versioned {
                    last_modified,
                    value: read::usage(tx, user).await?,
                })
            })
        })
        .await
    }

    async fn delete_storage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        self.write(move |tx| {
            Box::pin(async move { write::delete_storage(tx, user, precondition).await })
        })
        .await
    }

    async fn get_bsos(
        &self,
        user: UserId,
        collection: &str,
        query: BsoQuery,
        precondition: Precondition,
    ) -> Result<Versioned<BsoPage>, StoreError> {
        let Some(collection_id) = self.collection_id(collection).await? else {
            precondition.check(SyncTimestamp::ZERO)?;
            return Ok(Versioned {
                last_modified: SyncTimestamp::ZERO,
                value: BsoPage::default(),
            });
        };
        let max_page_bytes = self.inner.max_page_bytes;
        self.read(move |tx| {
            Box::pin(async move {
                let last_modified = read::collection_timestamp(tx, user, collection_id).await?;
                precondition.check(last_modified)?;
                let value = read::bsos(tx, user, collection_id, &query, max_page_bytes).await?;
                Ok(Versioned {
                    last_modified,
                    value,
                })
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
        let bso = match self.collection_id(collection).await? {
            Some(collection_id) => {
                let id = id.to_owned();
                self.read(move |tx| {
                    Box::pin(async move { read::bso(tx, user, collection_id, &id).await })
                })
                .await?
            }
            None => None,
        };
        let last_modified = bso.as_ref().map_or(SyncTimestamp::ZERO, |b| b.modified);
        precondition.check(last_modified)?;
        let bso = bso.ok_or(StoreError::NotFound)?;
        Ok(Versioned {
            last_modified,
            value: bso,
        })
    }

    async fn put_bsos(
        &self,
        request: WriteBsos,
        per_record_precondition: bool,
    ) -> Result<WriteOutcome, StoreError> {
        let collection_id = self.collection_id_or_create(&request.collection).await?;
        let request = Arc::new(request);
        self.write(move |tx| {
            let request = request.clone();
            Box::pin(async move {
                let stamp = write::next_timestamp(tx, request.user).await?;
                let resource = match request.items.as_slice() {
                    [only] if per_record_precondition => {
                        read::bso_timestamp(tx, request.user, collection_id, &only.id).await?
                    }
                    _ => read::collection_timestamp(tx, request.user, collection_id).await?,
                };
                request.precondition.check(resource)?;
                let items = request.items.clone();
                write::store_bsos(tx, &request, items, collection_id, stamp).await
            })
        })
        .await
    }

    async fn delete_collection(
        &self,
        user: UserId,
        collection: &str,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        let collection_id = self.collection_id(collection).await?;
        self.write(move |tx| {
            Box::pin(async move {
                write::delete_collection(tx, user, collection_id, precondition).await
            })
        })
        .await
    }

    async fn delete_bsos(
        &self,
        user: UserId,
        collection: &str,
        ids: Vec<String>,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        let collection_id = self.collection_id(collection).await?;
        let ids = Arc::new(ids);
        self.write(move |tx| {
            let ids = ids.clone();
            Box::pin(async move {
                write::delete_bsos(tx, user, collection_id, &ids, precondition).await
            })
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
        let collection_id = self
            .collection_id(collection)
            .await?
            .ok_or(StoreError::NotFound)?;
        let id = Arc::new(id.to_owned());
        self.write(move |tx| {
            let id = id.clone();
            Box::pin(
                async move { write::delete_bso(tx, user, collection_id, &id, precondition).await },
            )
        })
        .await
    }

    async fn create_batch(
        &self,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<Versioned<String>, StoreError> {
        let collection_id = self.collection_id_or_create(&request.collection).await?;
        let lifetime = self.inner.batch_lifetime;
        let request = Arc::new(request);
        self.write(move |tx| {
            let request = request.clone();
            Box::pin(async move {
                // Staging takes no user lock (ADR 0010, addendum): it changes no record.
                let last_modified =
                    read::collection_timestamp(tx, request.user, collection_id).await?;
                request.precondition.check(last_modified)?;
                let id = batch::create(tx, &request, collection_id, lifetime, max_records).await?;
                Ok(Versioned {
                    last_modified,
                    value: id,
                })
            })
        })
        .await
    }

    async fn append_batch(
        &self,
        batch: &str,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<SyncTimestamp, StoreError> {
        let collection_id = self
            .collection_id(&request.collection)
            .await?
            .ok_or(StoreError::BatchNotFound)?;
        let (batch, request) = (Arc::new(batch.to_owned()), Arc::new(request));
        self.write(move |tx| {
            let (batch, request) = (batch.clone(), request.clone());
            Box::pin(async move {
                // The batch's row lock, not the user's, orders appends (ADR 0010, addendum).
                batch::check(tx, &batch, request.user, collection_id).await?;
                let last_modified =
                    read::collection_timestamp(tx, request.user, collection_id).await?;
                request.precondition.check(last_modified)?;
                batch::stage(tx, &batch, request.items.clone(), max_records).await?;
                Ok(last_modified)
            })
        })
        .await
    }

    async fn commit_batch(
        &self,
        batch: &str,
        request: WriteBsos,
    ) -> Result<(WriteOutcome, Vec<String>), StoreError> {
        let collection_id = self
            .collection_id(&request.collection)
            .await?
            .ok_or(StoreError::BatchNotFound)?;
        let (batch, request) = (Arc::new(batch.to_owned()), Arc::new(request));
        self.write(move |tx| {
            let (batch, request) = (batch.clone(), request.clone());
            Box::pin(async move {
                let stamp = write::next_timestamp(tx, request.user).await?;
                batch::check(tx, &batch, request.user, collection_id).await?;
                let last_modified =
                    read::collection_timestamp(tx, request.user, collection_id).await?;
                request.precondition.check(last_modified)?;
                batch::commit(tx, &batch, &request, collection_id, stamp).await
            })
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        const CHUNK: i64 = 1000;
        let mut total = 0;
        // Small chunks, each its own transaction, so that no lock is held for long; records
        // and batches in separate transactions, so a purge never holds both kinds of rows.
        loop {
            let records = self
                .write(|tx| Box::pin(async move { write::purge_expired_records(tx, CHUNK).await }))
                .await?;
            let batches = self
                .write(|tx| Box::pin(async move { batch::purge_expired(tx, CHUNK).await }))
                .await?;
            total += records + batches;
            if records + batches == 0 {
                return Ok(total);
            }
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query_one("SELECT COUNT(*) FROM storage_collections", &[])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// Connections open and idle; `waiting_writers` counts requests (reads or writes)
    /// waiting for a pooled connection, PostgreSQL having no single writer to queue for.
    fn pool_state(&self) -> PoolState {
        let status = self.pool.status();
        PoolState {
            connections: u32::try_from(status.size).unwrap_or(u32::MAX),
            idle: u32::try_from(status.available).unwrap_or(u32::MAX),
            waiting_writers: u32::try_from(status.waiting).unwrap_or(u32::MAX),
        }
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.pool.close();
        tracing::info!("closed PostgreSQL storage");
    }
}
