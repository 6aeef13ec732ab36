//! Queries that only read. Each takes the open transaction of the caller.

use rusqlite::{OptionalExtension, Transaction, params};
use sync_proto::SyncTimestamp;

use super::{backend, now_ms};
use crate::{Bso, CollectionFigures, Precondition, StoreError, UserId, Versioned};

/// The sort key given to records without a sortindex: below every valid sortindex, so they
/// come last in `sort=index` order, as on Mozilla's server.
pub const MISSING_SORTINDEX_KEY: i64 = -1_000_000_000;

pub fn lookup_collection(tx: &Transaction<'_>, name: &str) -> Result<Option<i64>, StoreError> {
    tx.prepare_cached("SELECT id FROM collections WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |row| row.get(0)).optional())
        .map_err(backend)
}

pub fn ts(ms: i64) -> SyncTimestamp {
    SyncTimestamp::from_millis(ms.max(0) as u64)
}

/// The storage timestamp: the newest collection timestamp, tombstone included.
pub fn storage_timestamp(tx: &Transaction<'_>, user: UserId) -> Result<SyncTimestamp, StoreError> {
    tx.prepare_cached("SELECT COALESCE(MAX(modified), 0) FROM user_collections WHERE user_id = ?1")
        .and_then(|mut stmt| stmt.query_row([user as i64], |row| row.get(0)))
        .map(ts)
        .map_err(backend)
}

pub fn collection_timestamp(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
) -> Result<SyncTimestamp, StoreError> {
    tx.prepare_cached(
        "SELECT modified FROM user_collections WHERE user_id = ?1 AND collection_id = ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![user as i64, collection_id], |row| row.get(0))
            .optional()
    })
    .map(|ms| ms.map_or(SyncTimestamp::ZERO, ts))
    .map_err(backend)
}

/// A live record's timestamp, or zero.
pub fn bso_timestamp(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    id: &str,
) -> Result<SyncTimestamp, StoreError> {
    tx.prepare_cached(
        "SELECT modified FROM bsos \
         WHERE user_id = ?1 AND collection_id = ?2 AND id = ?3 AND expiry > ?4",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![user as i64, collection_id, id, now_ms()], |row| {
            row.get(0)
        })
        .optional()
    })
    .map(|ms| ms.map_or(SyncTimestamp::ZERO, ts))
    .map_err(backend)
}

pub fn collection_timestamps(
    tx: &Transaction<'_>,
    user: UserId,
    precondition: Precondition,
) -> Result<Versioned<CollectionFigures<SyncTimestamp>>, StoreError> {
    let last_modified = storage_timestamp(tx, user)?;
    precondition.check(last_modified)?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT c.name, uc.modified FROM user_collections uc \
             JOIN collections c ON c.id = uc.collection_id \
             WHERE uc.user_id = ?1 AND uc.collection_id != 0 ORDER BY c.name",
        )
        .map_err(backend)?;
    let value = stmt
        .query_map([user as i64], |row| Ok((row.get(0)?, ts(row.get(1)?))))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(backend)?;
    Ok(Versioned {
        last_modified,
        value,
    })
}

/// Per-collection aggregates of live records; `aggregate` is a fixed SQL expression chosen
/// by the caller, never client input.
pub fn collection_figures(
    tx: &Transaction<'_>,
    user: UserId,
    precondition: Precondition,
    aggregate: &'static str,
) -> Result<Versioned<CollectionFigures<u64>>, StoreError> {
    let last_modified = storage_timestamp(tx, user)?;
    precondition.check(last_modified)?;
    let sql = format!(
        "SELECT c.name, {aggregate} FROM bsos b JOIN collections c ON c.id = b.collection_id \
         WHERE b.user_id = ?1 AND b.expiry > ?2 GROUP BY b.collection_id ORDER BY c.name"
    );
    let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
    let value = stmt
        .query_map(params![user as i64, now_ms()], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(backend)?;
    Ok(Versioned {
        last_modified,
        value,
    })
}

/// Payload bytes of the user's live records.
pub fn usage(tx: &Transaction<'_>, user: UserId) -> Result<u64, StoreError> {
    tx.prepare_cached(
        "SELECT COALESCE(SUM(payload_size), 0) FROM bsos WHERE user_id = ?1 AND expiry > ?2",
    )
    .and_then(|mut stmt| stmt.query_row(params![user as i64, now_ms()], |row| row.get::<_, i64>(0)))
    .map(|bytes| bytes.max(0) as u64)
    .map_err(backend)
}

pub fn bso(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    id: &str,
) -> Result<Option<Bso>, StoreError> {
    tx.prepare_cached(
        "SELECT id, modified, payload, sortindex FROM bsos \
         WHERE user_id = ?1 AND collection_id = ?2 AND id = ?3 AND expiry > ?4",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![user as i64, collection_id, id, now_ms()], |row| {
            Ok(Bso {
                id: row.get(0)?,
                modified: ts(row.get(1)?),
                payload: row.get(2)?,
                sortindex: row.get(3)?,
            })
        })
        .optional()
    })
    .map_err(backend)
}
