//! Batch staging in a database file of its own, with its own writer (ADR 0015).
//!
//! Opening a batch and appending to it only stage records that nobody reads until the
//! commit. On the store's own file they waited in the one writer's queue behind every other
//! user's writes, three times per batch upload. Here they wait only for this file's writer,
//! which does nothing else; only the commit's write of the records goes through the store's
//! writer. The file holds uncommitted uploads only: losing it loses no committed record.
//!
//! A commit reads the staged records (a reader here), writes them (the store's writer),
//! then drops the batch (this writer). The caller holds the user's lock (`user_locks`)
//! across those steps so that nothing of the same user touching batches runs between them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{OptionalExtension, Transaction, params};
use sync_proto::{BsoUpdate, Patch, SyncTimestamp};

use super::writer::{Writer, WriterName};
use super::{Inner, backend, now_ms, reader_pool, run_read};
use crate::{Precondition, StoreError, UserId, new_batch_id, patch_from, patch_op};

/// The staging file's schema, as ordered migrations (see `sqlite_support::migrate`).
const MIGRATIONS: &[&str] = &[
    // 1: batches and their records. *_op is 0 keep, 1 reset, 2 set (see `patch_op`).
    r#"
    CREATE TABLE batches (
        id            TEXT PRIMARY KEY,
        user_id       INTEGER NOT NULL,
        collection_id INTEGER NOT NULL,
        expiry        INTEGER NOT NULL
    );
    CREATE INDEX batches_by_owner ON batches (user_id, collection_id);
    CREATE INDEX batches_by_expiry ON batches (expiry);

    CREATE TABLE batch_items (
        batch_id     TEXT NOT NULL,
        id           TEXT NOT NULL,
        sortindex_op INTEGER NOT NULL,
        sortindex    INTEGER,
        payload_op   INTEGER NOT NULL,
        payload      TEXT,
        ttl_op       INTEGER NOT NULL,
        ttl          INTEGER,
        UNIQUE (batch_id, id)
    );
    "#,
];

/// Readers of staged records: a commit reads its batch once, so two are plenty.
const READERS: u32 = 2;

/// Where the staging file of the store at `main` lives: beside it, `storage.db` staging in
/// `storage-batches.db`.
pub(super) fn staging_path(main: &Path) -> PathBuf {
    let stem = main.file_stem().unwrap_or_default().to_string_lossy();
    let name = match main.extension() {
        Some(ext) => format!("{stem}-batches.{}", ext.to_string_lossy()),
        None => format!("{stem}-batches"),
    };
    main.with_file_name(name)
}

/// The staging file: its writer and a few readers.
pub(super) struct Staging {
    writer: Writer,
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl Staging {
    /// Opens (creating it if needed: it holds nothing that must survive) the staging file
    /// beside the store at `main`, with the store's durability: a batch must not come back
    /// from a power loss with some of its acknowledged appends missing.
    pub fn open(main: &Path, synchronous: &str, inner: Arc<Inner>) -> Result<Staging, StoreError> {
        let path = staging_path(main);
        let conn = sqlite_support::open_migrated(&path, true, MIGRATIONS, "batch staging")
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        // Staged records are deleted soon after they are written, so the file stays small;
        // the WAL is cut back after a burst instead of keeping its largest size.
        conn.execute_batch(&format!(
            "PRAGMA synchronous={synchronous}; PRAGMA journal_size_limit=67108864;"
        ))
        .map_err(backend)?;
        Ok(Staging {
            writer: Writer::start(conn, inner, WriterName::Staging),
            readers: reader_pool(&path, READERS)?,
        })
    }

    /// Opens a batch holding `items`; returns its id.
    pub async fn create(
        &self,
        user: UserId,
        collection_id: i64,
        items: Vec<BsoUpdate>,
        max_records: u64,
    ) -> Result<String, StoreError> {
        self.writer
            .write(move |tx, inner| {
                let id = new_batch_id();
                let expiry = now_ms().saturating_add(inner.batch_lifetime.as_millis() as i64);
                tx.execute(
                    "INSERT INTO batches (id, user_id, collection_id, expiry) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, user as i64, collection_id, expiry],
                )
                .map_err(backend)?;
                stage_items(tx, &id, &items, max_records)?;
                Ok(id)
            })
            .await
    }

    /// Adds `items` to an open batch of this user and collection, if `precondition` holds
    /// for the collection's timestamp `last_modified` (checked after the batch, as
    /// Mozilla's server does: an unknown batch is "not found" whatever the precondition).
    pub async fn append(
        &self,
        batch: String,
        owner: (UserId, i64),
        items: Vec<BsoUpdate>,
        precondition: (Precondition, SyncTimestamp),
        max_records: u64,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |tx, _| {
                check_batch(tx, &batch, owner)?;
                precondition.0.check(precondition.1)?;
                stage_items(tx, &batch, &items, max_records)
            })
            .await
    }

    /// The records staged in an open batch of this user and collection, in staging order.
    /// The caller holds the user's lock, so every append to the batch is committed and
    /// none is running.
    pub async fn staged(
        &self,
        batch: String,
        owner: (UserId, i64),
    ) -> Result<Vec<BsoUpdate>, StoreError> {
        run_read(&self.readers, move |tx| {
            check_batch(tx, &batch, owner)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, sortindex_op, sortindex, payload_op, payload, ttl_op, ttl \
                     FROM batch_items WHERE batch_id = ?1 ORDER BY rowid",
                )
                .map_err(backend)?;
            stmt.query_map([&batch], |row| {
                Ok(BsoUpdate {
                    id: row.get(0)?,
                    sortindex: patch_from(row.get(1)?, row.get(2)?),
                    payload: patch_from(row.get(3)?, row.get(4)?),
                    ttl: patch_from(row.get(5)?, row.get(6)?),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(backend)
        })
        .await
    }

    /// Drops a batch and its records (after its commit).
    pub async fn discard(&self, batch: String) -> Result<(), StoreError> {
        self.writer
            .write(move |tx, _| {
                tx.execute("DELETE FROM batch_items WHERE batch_id = ?1", [&batch])
                    .map_err(backend)?;
                tx.execute("DELETE FROM batches WHERE id = ?1", [&batch])
                    .map_err(backend)?;
                Ok(())
            })
            .await
    }

    /// Drops a user's batches: those of one collection, or all of them.
    pub async fn discard_owned(
        &self,
        user: UserId,
        collection_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |tx, _| {
                let owned = "SELECT id FROM batches \
                             WHERE user_id = ?1 AND (?2 IS NULL OR collection_id = ?2)";
                tx.execute(
                    &format!("DELETE FROM batch_items WHERE batch_id IN ({owned})"),
                    params![user as i64, collection_id],
                )
                .map_err(backend)?;
                tx.execute(
                    "DELETE FROM batches WHERE user_id = ?1 AND (?2 IS NULL OR collection_id = ?2)",
                    params![user as i64, collection_id],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await
    }

    /// Drops expired batches; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.writer
            .write(|tx, _| {
                let now = now_ms();
                tx.execute(
                    "DELETE FROM batch_items WHERE batch_id IN \
                     (SELECT id FROM batches WHERE expiry <= ?1)",
                    [now],
                )
                .map_err(backend)?;
                let batches = tx
                    .execute("DELETE FROM batches WHERE expiry <= ?1", [now])
                    .map_err(backend)?;
                Ok(batches as u64)
            })
            .await
    }

    /// Whether the staging file answers a query.
    pub async fn check(&self) -> Result<(), StoreError> {
        run_read(&self.readers, |tx| {
            tx.query_row("SELECT COUNT(*) FROM batches", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(drop)
            .map_err(backend)
        })
        .await
    }

    /// Writes waiting for this file's writer.
    pub fn waiting(&self) -> u32 {
        self.writer.waiting()
    }

    /// Finishes queued writes and closes the file.
    pub async fn close(&self) {
        self.writer.close().await;
    }
}

/// Checks that a batch is open and belongs to this user and collection.
fn check_batch(
    tx: &Transaction<'_>,
    batch: &str,
    (user, collection_id): (UserId, i64),
) -> Result<(), StoreError> {
    let found: Option<i64> = tx
        .prepare_cached(
            "SELECT 1 FROM batches \
             WHERE id = ?1 AND user_id = ?2 AND collection_id = ?3 AND expiry > ?4",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![batch, user as i64, collection_id, now_ms()],
                |row| row.get(0),
            )
            .optional()
        })
        .map_err(backend)?;
    found.map(|_| ()).ok_or(StoreError::BatchNotFound)
}

/// Stages records in a batch; a record staged again merges field by field.
fn stage_items(
    tx: &Transaction<'_>,
    batch: &str,
    items: &[BsoUpdate],
    max_records: u64,
) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO batch_items \
               (batch_id, id, sortindex_op, sortindex, payload_op, payload, ttl_op, ttl) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (batch_id, id) DO UPDATE SET \
               sortindex = CASE WHEN excluded.sortindex_op = 0 THEN sortindex ELSE excluded.sortindex END, \
               sortindex_op = CASE WHEN excluded.sortindex_op = 0 THEN sortindex_op ELSE excluded.sortindex_op END, \
               payload = CASE WHEN excluded.payload_op = 0 THEN payload ELSE excluded.payload END, \
               payload_op = CASE WHEN excluded.payload_op = 0 THEN payload_op ELSE excluded.payload_op END, \
               ttl = CASE WHEN excluded.ttl_op = 0 THEN ttl ELSE excluded.ttl END, \
               ttl_op = CASE WHEN excluded.ttl_op = 0 THEN ttl_op ELSE excluded.ttl_op END",
        )
        .map_err(backend)?;
    for item in items {
        stmt.execute(params![
            batch,
            item.id,
            patch_op(&item.sortindex),
            set_value(&item.sortindex),
            patch_op(&item.payload),
            set_value(&item.payload),
            patch_op(&item.ttl),
            set_value(&item.ttl)
        ])
        .map_err(backend)?;
    }
    let staged: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM batch_items WHERE batch_id = ?1")
        .and_then(|mut stmt| stmt.query_row([batch], |row| row.get(0)))
        .map_err(backend)?;
    if staged as u64 > max_records {
        return Err(StoreError::BatchTooLarge);
    }
    Ok(())
}

/// The value a patch sets, if it sets one.
fn set_value<T>(patch: &Patch<T>) -> Option<&T> {
    match patch {
        Patch::Set(value) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_file_sits_beside_the_store() {
        assert_eq!(
            staging_path(Path::new("/var/lib/s/storage.db")),
            Path::new("/var/lib/s/storage-batches.db")
        );
        assert_eq!(
            staging_path(Path::new("data/store")),
            Path::new("data/store-batches")
        );
    }
}
