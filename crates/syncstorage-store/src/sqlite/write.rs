//! Statements that write. Each runs inside the writer's immediate transaction, so the
//! reads they make first (timestamps, existing rows) cannot be invalidated before commit.

use rusqlite::{OptionalExtension, Transaction, params};
use sync_proto::{BsoUpdate, Patch, SyncTimestamp};

use super::read::{self, ts};
use super::{backend, now_ms};
use crate::{Precondition, StoreError, UserId, WriteBsos, WriteOutcome};

/// Expiry of a record without a TTL.
const NEVER: i64 = i64::MAX;
/// The pseudo-collection whose timestamp records collection deletes.
const TOMBSTONE_COLLECTION: i64 = 0;
/// Custom collections get ids above the standard ones, as on Mozilla's servers.
const FIRST_CUSTOM_COLLECTION: i64 = 101;

pub fn create_collection(tx: &Transaction<'_>, name: &str) -> Result<i64, StoreError> {
    let next: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(id) + 1, 0) FROM collections",
            [],
            |row| row.get(0),
        )
        .map_err(backend)?;
    let id = next.max(FIRST_CUSTOM_COLLECTION);
    tx.execute(
        "INSERT INTO collections (id, name) VALUES (?1, ?2)",
        params![id, name],
    )
    .map_err(backend)?;
    Ok(id)
}

/// Takes the timestamp of a write: now, or 10 ms after the user's previous write if that is
/// later, so that a user's timestamps strictly increase even when writes arrive within the
/// same 10 ms or the clock steps back.
fn next_timestamp(tx: &Transaction<'_>, user: UserId) -> Result<SyncTimestamp, StoreError> {
    let previous: Option<i64> = tx
        .prepare_cached("SELECT last_write FROM users WHERE user_id = ?1")
        .and_then(|mut stmt| stmt.query_row([user as i64], |row| row.get(0)).optional())
        .map_err(backend)?;
    let now = SyncTimestamp::now();
    let stamp = match previous {
        Some(prev) if ts(prev) >= now => ts(prev).next(),
        _ => now,
    };
    tx.prepare_cached(
        "INSERT INTO users (user_id, last_write) VALUES (?1, ?2) \
         ON CONFLICT (user_id) DO UPDATE SET last_write = excluded.last_write",
    )
    .and_then(|mut stmt| stmt.execute(params![user as i64, stamp.as_millis() as i64]))
    .map_err(backend)?;
    Ok(stamp)
}

fn touch_collection(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    stamp: SyncTimestamp,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO user_collections (user_id, collection_id, modified) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id, collection_id) DO UPDATE SET modified = excluded.modified",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            user as i64,
            collection_id,
            stamp.as_millis() as i64
        ])
    })
    .map_err(backend)?;
    Ok(())
}

/// Writes validated records at one new timestamp, after the quota check.
pub fn store_bsos(
    tx: &Transaction<'_>,
    request: &WriteBsos,
    collection_id: i64,
) -> Result<WriteOutcome, StoreError> {
    if let Some(quota) = request.quota
        && read::usage(tx, request.user)? >= quota
    {
        return Err(StoreError::QuotaExceeded);
    }
    let stamp = next_timestamp(tx, request.user)?;
    for item in &request.items {
        upsert_bso(tx, request.user, collection_id, item, stamp)?;
    }
    touch_collection(tx, request.user, collection_id, stamp)?;
    let usage_bytes = match request.quota {
        Some(_) => Some(read::usage(tx, request.user)?),
        None => None,
    };
    Ok(WriteOutcome {
        modified: stamp,
        usage_bytes,
    })
}

/// Applies one record's changes in one statement. Fields the client did not send keep
/// their stored value; a record that does not exist or has expired starts from the
/// defaults; `modified` moves only when the payload or sortindex is written (a TTL-only
/// update extends the record's life without making clients download it again). In an
/// UPDATE every right-hand side reads the row as it was, so the `expiry <= now` tests all
/// see the old expiry.
fn upsert_bso(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    item: &BsoUpdate,
    stamp: SyncTimestamp,
) -> Result<(), StoreError> {
    let stamp_ms = stamp.as_millis() as i64;
    let (payload_given, payload) = match &item.payload {
        Patch::Keep => (false, ""),
        Patch::Reset => (true, ""),
        Patch::Set(p) => (true, p.as_str()),
    };
    let (sortindex_given, sortindex) = match item.sortindex {
        Patch::Keep => (false, None),
        Patch::Reset => (true, None),
        Patch::Set(v) => (true, Some(v)),
    };
    let (ttl_given, expiry) = match item.ttl {
        Patch::Keep => (false, NEVER),
        Patch::Reset => (true, NEVER),
        Patch::Set(ttl) => (true, stamp_ms.saturating_add(i64::from(ttl) * 1000)),
    };
    tx.prepare_cached(
        "INSERT INTO bsos \
           (user_id, collection_id, id, sortindex, payload, payload_size, modified, expiry) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (user_id, collection_id, id) DO UPDATE SET \
           payload = CASE WHEN bsos.expiry <= ?9 OR ?10 THEN excluded.payload ELSE bsos.payload END, \
           payload_size = CASE WHEN bsos.expiry <= ?9 OR ?10 \
             THEN excluded.payload_size ELSE bsos.payload_size END, \
           sortindex = CASE WHEN bsos.expiry <= ?9 OR ?11 \
             THEN excluded.sortindex ELSE bsos.sortindex END, \
           modified = CASE WHEN bsos.expiry <= ?9 OR ?10 OR ?11 \
             THEN excluded.modified ELSE bsos.modified END, \
           expiry = CASE WHEN bsos.expiry <= ?9 OR ?12 THEN excluded.expiry ELSE bsos.expiry END",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            user as i64,
            collection_id,
            item.id,
            sortindex,
            payload,
            payload.len() as i64,
            stamp_ms,
            expiry,
            now_ms(),
            payload_given,
            sortindex_given,
            ttl_given
        ])
    })
    .map_err(backend)?;
    Ok(())
}

pub fn delete_storage(
    tx: &Transaction<'_>,
    user: UserId,
    precondition: Precondition,
) -> Result<SyncTimestamp, StoreError> {
    let last_modified = read::storage_timestamp(tx, user)?;
    precondition.check(last_modified)?;
    let uid = user as i64;
    for sql in [
        "DELETE FROM bsos WHERE user_id = ?1",
        "DELETE FROM user_collections WHERE user_id = ?1",
    ] {
        tx.execute(sql, [uid]).map_err(backend)?;
    }
    Ok(last_modified)
}

/// Deletes a collection and bumps the tombstone, so the storage timestamp moves forward.
/// A collection that was never written is not an error; the storage timestamp is returned.
pub fn delete_collection(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: Option<i64>,
    precondition: Precondition,
) -> Result<SyncTimestamp, StoreError> {
    let resource = match collection_id {
        Some(id) => read::collection_timestamp(tx, user, id)?,
        None => SyncTimestamp::ZERO,
    };
    precondition.check(resource)?;
    let Some(collection_id) = collection_id.filter(|_| resource > SyncTimestamp::ZERO) else {
        return read::storage_timestamp(tx, user);
    };
    let uid = user as i64;
    tx.execute(
        "DELETE FROM bsos WHERE user_id = ?1 AND collection_id = ?2",
        params![uid, collection_id],
    )
    .map_err(backend)?;
    tx.execute(
        "DELETE FROM user_collections WHERE user_id = ?1 AND collection_id = ?2",
        params![uid, collection_id],
    )
    .map_err(backend)?;
    let stamp = next_timestamp(tx, user)?;
    touch_collection(tx, user, TOMBSTONE_COLLECTION, stamp)?;
    Ok(stamp)
}

pub fn delete_bsos(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: Option<i64>,
    ids: &[String],
    precondition: Precondition,
) -> Result<SyncTimestamp, StoreError> {
    let resource = match collection_id {
        Some(id) => read::collection_timestamp(tx, user, id)?,
        None => SyncTimestamp::ZERO,
    };
    precondition.check(resource)?;
    let Some(collection_id) = collection_id.filter(|_| resource > SyncTimestamp::ZERO) else {
        return Ok(resource);
    };
    let stamp = next_timestamp(tx, user)?;
    let mut stmt = tx
        .prepare_cached("DELETE FROM bsos WHERE user_id = ?1 AND collection_id = ?2 AND id = ?3")
        .map_err(backend)?;
    for id in ids {
        stmt.execute(params![user as i64, collection_id, id])
            .map_err(backend)?;
    }
    touch_collection(tx, user, collection_id, stamp)?;
    Ok(stamp)
}

pub fn delete_bso(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    id: &str,
    precondition: Precondition,
) -> Result<SyncTimestamp, StoreError> {
    let resource = read::bso_timestamp(tx, user, collection_id, id)?;
    precondition.check(resource)?;
    if resource == SyncTimestamp::ZERO {
        return Err(StoreError::NotFound);
    }
    let stamp = next_timestamp(tx, user)?;
    tx.execute(
        "DELETE FROM bsos WHERE user_id = ?1 AND collection_id = ?2 AND id = ?3",
        params![user as i64, collection_id, id],
    )
    .map_err(backend)?;
    touch_collection(tx, user, collection_id, stamp)?;
    Ok(stamp)
}

/// Deletes up to ?2 records expired at ?1. The second bound is the partial expiry index's
/// own condition (schema migration 2), which SQLite must see to use that index.
pub(super) const PURGE_RECORDS: &str = "DELETE FROM bsos WHERE rowid IN \
     (SELECT rowid FROM bsos WHERE expiry <= ?1 AND expiry < 9223372036854775807 LIMIT ?2)";

/// Deletes up to `chunk` expired records; returns how many.
pub fn purge_expired_chunk(tx: &Transaction<'_>, chunk: i64) -> Result<u64, StoreError> {
    let records = tx
        .execute(PURGE_RECORDS, params![now_ms(), chunk])
        .map_err(backend)?;
    Ok(records as u64)
}
