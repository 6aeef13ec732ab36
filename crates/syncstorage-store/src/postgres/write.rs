//! Statements that write. Each runs inside a write transaction that began by locking the
//! user's row ([`lock_user`] or [`next_timestamp`]), so the reads they make first
//! (timestamps, existing rows) cannot be invalidated by another writer of the same user
//! before commit, whichever process that writer runs in.

use deadpool_postgres::Transaction;
use sync_proto::{BsoUpdate, Patch, SyncTimestamp};

use super::batch::{self, Batches};
use super::now_ms;
use super::read::{self, ts, uid};
use super::tx::TxError;
use crate::{Precondition, StoreError, UserId, WriteBsos, WriteOutcome, merge_updates};

/// Expiry of a record without a TTL.
const NEVER: i64 = i64::MAX;
/// The pseudo-collection whose timestamp records collection deletes.
const TOMBSTONE_COLLECTION: i32 = 0;

/// Locks the user's row until the transaction ends (creating it on a first write), so that
/// writes of one user run one after the other across every process sharing the database.
pub async fn lock_user(tx: &Transaction<'_>, user: UserId) -> Result<(), TxError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO storage_users AS u (user_id, last_write) VALUES ($1, 0) \
             ON CONFLICT (user_id) DO UPDATE SET last_write = u.last_write",
        )
        .await?;
    tx.execute(&stmt, &[&uid(user)]).await?;
    Ok(())
}

/// Takes the timestamp of a write, locking the user's row if it is not locked yet: now, or
/// 10 ms after the user's previous write if that is later. One statement reads and moves
/// the user's last timestamp under the row lock, so timestamps strictly increase even when
/// writes arrive in the same 10 ms, from several processes, or after a clock stepped back
/// (or runs behind on another machine).
pub async fn next_timestamp(tx: &Transaction<'_>, user: UserId) -> Result<SyncTimestamp, TxError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO storage_users AS u (user_id, last_write) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE \
               SET last_write = GREATEST(EXCLUDED.last_write, u.last_write + 10) \
             RETURNING last_write",
        )
        .await?;
    let now = SyncTimestamp::now().as_millis() as i64;
    Ok(ts(tx.query_one(&stmt, &[&uid(user), &now]).await?.get(0)))
}

async fn touch_collection(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
    stamp: SyncTimestamp,
) -> Result<(), TxError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO storage_user_collections (user_id, collection_id, modified) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, collection_id) DO UPDATE SET modified = EXCLUDED.modified",
        )
        .await?;
    let stamp = stamp.as_millis() as i64;
    tx.execute(&stmt, &[&uid(user), &collection_id, &stamp])
        .await?;
    Ok(())
}

/// Writes validated records at the transaction's timestamp, after the quota check.
pub async fn store_bsos(
    tx: &Transaction<'_>,
    request: &WriteBsos,
    items: Vec<BsoUpdate>,
    collection_id: i32,
    stamp: SyncTimestamp,
) -> Result<WriteOutcome, TxError> {
    if let Some(quota) = request.quota
        && read::usage(tx, request.user).await? >= quota
    {
        return Err(StoreError::QuotaExceeded.into());
    }
    upsert_bsos(tx, request.user, collection_id, merge_updates(items), stamp).await?;
    touch_collection(tx, request.user, collection_id, stamp).await?;
    let usage_bytes = match request.quota {
        Some(_) => Some(read::usage(tx, request.user).await?),
        None => None,
    };
    Ok(WriteOutcome {
        modified: stamp,
        usage_bytes,
    })
}

/// Applies every record's changes in one statement, whatever their number: the records
/// travel as parallel arrays, an UPDATE changes those that exist and an INSERT adds the
/// rest. Fields the client did not send keep their stored value; a record that does not
/// exist or has expired starts from the defaults; `modified` moves only when the payload
/// or sortindex is written (a TTL-only update extends a record's life without making
/// clients download it again). In the UPDATE every right-hand side reads the row as it
/// was, so the `expiry <= now` tests all see the old expiry.
async fn upsert_bsos(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
    items: Vec<BsoUpdate>,
    stamp: SyncTimestamp,
) -> Result<(), TxError> {
    let stamp_ms = stamp.as_millis() as i64;
    let count = items.len();
    let mut ids = Vec::with_capacity(count);
    let mut payload_given = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    let mut sizes = Vec::with_capacity(count);
    let mut sortindex_given = Vec::with_capacity(count);
    let mut sortindexes = Vec::with_capacity(count);
    let mut ttl_given = Vec::with_capacity(count);
    let mut expiries = Vec::with_capacity(count);
    for item in items {
        let payload = match item.payload {
            Patch::Keep => {
                payload_given.push(false);
                Vec::new()
            }
            Patch::Reset => {
                payload_given.push(true);
                Vec::new()
            }
            Patch::Set(payload) => {
                payload_given.push(true);
                payload.into_bytes()
            }
        };
        sizes.push(payload.len() as i64);
        payloads.push(payload);
        sortindex_given.push(!matches!(item.sortindex, Patch::Keep));
        sortindexes.push(match item.sortindex {
            Patch::Set(v) => Some(v),
            _ => None,
        });
        ttl_given.push(!matches!(item.ttl, Patch::Keep));
        expiries.push(match item.ttl {
            Patch::Set(ttl) => stamp_ms.saturating_add(i64::from(ttl) * 1000),
            _ => NEVER,
        });
        ids.push(item.id);
    }
    let stmt = tx
        .prepare_cached(
            "WITH input AS ( \
               SELECT * FROM UNNEST($3::TEXT[], $4::BOOL[], $5::BYTEA[], $6::BIGINT[], \
                                    $7::BOOL[], $8::INTEGER[], $9::BOOL[], $10::BIGINT[]) \
                 AS i (id, payload_given, payload, payload_size, \
                       sortindex_given, sortindex, ttl_given, expiry) \
             ), updated AS ( \
               UPDATE storage_bsos b SET \
                 payload = CASE WHEN b.expiry <= $12 OR i.payload_given \
                   THEN i.payload ELSE b.payload END, \
                 payload_size = CASE WHEN b.expiry <= $12 OR i.payload_given \
                   THEN i.payload_size ELSE b.payload_size END, \
                 sortindex = CASE WHEN b.expiry <= $12 OR i.sortindex_given \
                   THEN i.sortindex ELSE b.sortindex END, \
                 modified = CASE WHEN b.expiry <= $12 OR i.payload_given OR i.sortindex_given \
                   THEN $11 ELSE b.modified END, \
                 expiry = CASE WHEN b.expiry <= $12 OR i.ttl_given \
                   THEN i.expiry ELSE b.expiry END \
               FROM input i \
               WHERE b.user_id = $1 AND b.collection_id = $2 AND b.id = i.id \
               RETURNING b.id \
             ) \
             INSERT INTO storage_bsos \
               (user_id, collection_id, id, sortindex, payload, payload_size, modified, expiry) \
             SELECT $1, $2, i.id, i.sortindex, i.payload, i.payload_size, $11, i.expiry \
             FROM input i WHERE i.id NOT IN (SELECT id FROM updated)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &uid(user),
            &collection_id,
            &ids,
            &payload_given,
            &payloads,
            &sizes,
            &sortindex_given,
            &sortindexes,
            &ttl_given,
            &expiries,
            &stamp_ms,
            &now_ms(),
        ],
    )
    .await?;
    Ok(())
}

/// Deletes everything the user stores; the user's row (and so its last timestamp) stays.
pub async fn delete_storage(
    tx: &Transaction<'_>,
    user: UserId,
    precondition: Precondition,
) -> Result<SyncTimestamp, TxError> {
    lock_user(tx, user).await?;
    let last_modified = read::storage_timestamp(tx, user).await?;
    precondition.check(last_modified)?;
    for sql in [
        "DELETE FROM storage_bsos WHERE user_id = $1",
        "DELETE FROM storage_user_collections WHERE user_id = $1",
    ] {
        let stmt = tx.prepare_cached(sql).await?;
        tx.execute(&stmt, &[&uid(user)]).await?;
    }
    batch::discard(tx, Batches::OfUser(user)).await?;
    Ok(last_modified)
}

/// Deletes a collection and bumps the tombstone, so the storage timestamp moves forward.
/// A collection that was never written is not an error; the storage timestamp is returned.
pub async fn delete_collection(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: Option<i32>,
    precondition: Precondition,
) -> Result<SyncTimestamp, TxError> {
    lock_user(tx, user).await?;
    let resource = match collection_id {
        Some(id) => read::collection_timestamp(tx, user, id).await?,
        None => SyncTimestamp::ZERO,
    };
    precondition.check(resource)?;
    let Some(collection_id) = collection_id.filter(|_| resource > SyncTimestamp::ZERO) else {
        return read::storage_timestamp(tx, user).await;
    };
    for sql in [
        "DELETE FROM storage_bsos WHERE user_id = $1 AND collection_id = $2",
        "DELETE FROM storage_user_collections WHERE user_id = $1 AND collection_id = $2",
    ] {
        let stmt = tx.prepare_cached(sql).await?;
        tx.execute(&stmt, &[&uid(user), &collection_id]).await?;
    }
    batch::discard(tx, Batches::OfCollection(user, collection_id)).await?;
    let stamp = next_timestamp(tx, user).await?;
    touch_collection(tx, user, TOMBSTONE_COLLECTION, stamp).await?;
    Ok(stamp)
}

/// Deletes some records in one statement; returns the collection's new timestamp.
pub async fn delete_bsos(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: Option<i32>,
    ids: &[String],
    precondition: Precondition,
) -> Result<SyncTimestamp, TxError> {
    lock_user(tx, user).await?;
    let resource = match collection_id {
        Some(id) => read::collection_timestamp(tx, user, id).await?,
        None => SyncTimestamp::ZERO,
    };
    precondition.check(resource)?;
    let Some(collection_id) = collection_id.filter(|_| resource > SyncTimestamp::ZERO) else {
        return Ok(resource);
    };
    let stamp = next_timestamp(tx, user).await?;
    let stmt = tx
        .prepare_cached(
            "DELETE FROM storage_bsos \
             WHERE user_id = $1 AND collection_id = $2 AND id = ANY($3)",
        )
        .await?;
    tx.execute(&stmt, &[&uid(user), &collection_id, &ids])
        .await?;
    touch_collection(tx, user, collection_id, stamp).await?;
    Ok(stamp)
}

pub async fn delete_bso(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
    id: &str,
    precondition: Precondition,
) -> Result<SyncTimestamp, TxError> {
    lock_user(tx, user).await?;
    let resource = read::bso_timestamp(tx, user, collection_id, id).await?;
    precondition.check(resource)?;
    if resource == SyncTimestamp::ZERO {
        return Err(StoreError::NotFound.into());
    }
    let stamp = next_timestamp(tx, user).await?;
    let stmt = tx
        .prepare_cached(
            "DELETE FROM storage_bsos WHERE user_id = $1 AND collection_id = $2 AND id = $3",
        )
        .await?;
    tx.execute(&stmt, &[&uid(user), &collection_id, &id])
        .await?;
    touch_collection(tx, user, collection_id, stamp).await?;
    Ok(stamp)
}

/// Deletes up to `chunk` expired records that no writer holds; returns how many went.
/// Rows a writer has locked are skipped (the next purge takes them), so a purge never
/// waits on a client's write nor deadlocks with one.
pub async fn purge_expired_records(tx: &Transaction<'_>, chunk: i64) -> Result<u64, TxError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM storage_bsos WHERE (user_id, collection_id, id) IN ( \
               SELECT user_id, collection_id, id FROM storage_bsos \
               WHERE expiry <= $1 AND expiry < 9223372036854775807 \
               LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .await?;
    Ok(tx.execute(&stmt, &[&now_ms(), &chunk]).await?)
}
