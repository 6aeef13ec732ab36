//! Batch uploads: records staged over several requests, written together at commit.

use std::time::Duration;

use deadpool_postgres::Transaction;
use sync_proto::{BsoUpdate, Patch, SyncTimestamp};

use super::now_ms;
use super::read::{payload_text, uid};
use super::tx::TxError;
use super::write;
use crate::{StoreError, UserId, WriteBsos, WriteOutcome};
use crate::{merge_updates, new_batch_id, patch_from, patch_op};

/// Opens a batch holding `items`; returns its id.
pub async fn create(
    tx: &Transaction<'_>,
    request: &WriteBsos,
    collection_id: i32,
    lifetime: Duration,
    max_records: u64,
) -> Result<String, TxError> {
    let id = new_batch_id();
    let expiry = now_ms().saturating_add(lifetime.as_millis() as i64);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO storage_batches (id, user_id, collection_id, expiry) \
             VALUES ($1, $2, $3, $4)",
        )
        .await?;
    tx.execute(&stmt, &[&id, &uid(request.user), &collection_id, &expiry])
        .await?;
    stage(tx, &id, request.items.clone(), max_records).await?;
    Ok(id)
}

/// Checks that a batch is open and belongs to this user and collection, and locks it so
/// that a purge cannot remove it before this transaction ends.
pub async fn check(
    tx: &Transaction<'_>,
    batch: &str,
    user: UserId,
    collection_id: i32,
) -> Result<(), TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT 1 FROM storage_batches \
             WHERE id = $1 AND user_id = $2 AND collection_id = $3 AND expiry > $4 \
             FOR UPDATE",
        )
        .await?;
    let found = tx
        .query_opt(&stmt, &[&batch, &uid(user), &collection_id, &now_ms()])
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::BatchNotFound.into()),
    }
}

/// Stages records in one statement; a record staged again merges field by field.
pub async fn stage(
    tx: &Transaction<'_>,
    batch: &str,
    items: Vec<BsoUpdate>,
    max_records: u64,
) -> Result<(), TxError> {
    let items = merge_updates(items);
    let count = items.len();
    let (mut ids, mut sortindex_ops, mut sortindexes) = (
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
    );
    let (mut payload_ops, mut payloads, mut ttl_ops, mut ttls) = (
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
        Vec::with_capacity(count),
    );
    for item in items {
        sortindex_ops.push(patch_op(&item.sortindex));
        sortindexes.push(match item.sortindex {
            Patch::Set(v) => Some(v),
            _ => None,
        });
        payload_ops.push(patch_op(&item.payload));
        payloads.push(match item.payload {
            Patch::Set(p) => Some(p.into_bytes()),
            _ => None,
        });
        ttl_ops.push(patch_op(&item.ttl));
        ttls.push(match item.ttl {
            Patch::Set(v) => Some(i64::from(v)),
            _ => None,
        });
        ids.push(item.id);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO storage_batch_items AS s \
               (batch_id, id, sortindex_op, sortindex, payload_op, payload, ttl_op, ttl) \
             SELECT $1, i.id, i.sortindex_op, i.sortindex, i.payload_op, i.payload, \
                    i.ttl_op, i.ttl \
             FROM UNNEST($2::TEXT[], $3::SMALLINT[], $4::INTEGER[], $5::SMALLINT[], \
                         $6::BYTEA[], $7::SMALLINT[], $8::BIGINT[]) WITH ORDINALITY \
               AS i (id, sortindex_op, sortindex, payload_op, payload, ttl_op, ttl, n) \
             ORDER BY i.n \
             ON CONFLICT (batch_id, id) DO UPDATE SET \
               sortindex = CASE WHEN EXCLUDED.sortindex_op = 0 \
                 THEN s.sortindex ELSE EXCLUDED.sortindex END, \
               sortindex_op = CASE WHEN EXCLUDED.sortindex_op = 0 \
                 THEN s.sortindex_op ELSE EXCLUDED.sortindex_op END, \
               payload = CASE WHEN EXCLUDED.payload_op = 0 \
                 THEN s.payload ELSE EXCLUDED.payload END, \
               payload_op = CASE WHEN EXCLUDED.payload_op = 0 \
                 THEN s.payload_op ELSE EXCLUDED.payload_op END, \
               ttl = CASE WHEN EXCLUDED.ttl_op = 0 THEN s.ttl ELSE EXCLUDED.ttl END, \
               ttl_op = CASE WHEN EXCLUDED.ttl_op = 0 THEN s.ttl_op ELSE EXCLUDED.ttl_op END",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &batch,
            &ids,
            &sortindex_ops,
            &sortindexes,
            &payload_ops,
            &payloads,
            &ttl_ops,
            &ttls,
        ],
    )
    .await?;
    let stmt = tx
        .prepare_cached("SELECT COUNT(*) FROM storage_batch_items WHERE batch_id = $1")
        .await?;
    let staged: i64 = tx.query_one(&stmt, &[&batch]).await?.get(0);
    if staged as u64 > max_records {
        return Err(StoreError::BatchTooLarge.into());
    }
    Ok(())
}

/// Writes the staged records with the commit request's records on top, at `stamp`, then
/// drops the batch. Returns the ids written, staged ones first.
pub async fn commit(
    tx: &Transaction<'_>,
    batch: &str,
    request: &WriteBsos,
    collection_id: i32,
    stamp: SyncTimestamp,
) -> Result<(WriteOutcome, Vec<String>), TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT id, sortindex_op, sortindex, payload_op, payload, ttl_op, ttl \
             FROM storage_batch_items WHERE batch_id = $1 ORDER BY seq",
        )
        .await?;
    let mut items = Vec::new();
    for row in tx.query(&stmt, &[&batch]).await? {
        let payload = row
            .get::<_, Option<Vec<u8>>>(4)
            .map(payload_text)
            .transpose()?;
        let ttl = row
            .get::<_, Option<i64>>(6)
            .map(|ttl| u32::try_from(ttl).unwrap_or(u32::MAX));
        items.push(BsoUpdate {
            id: row.get(0),
            sortindex: patch_from(row.get(1), row.get(2)),
            payload: patch_from(row.get(3), payload),
            ttl: patch_from(row.get(5), ttl),
        });
    }
    items.extend(request.items.iter().cloned());
    let items = merge_updates(items);
    let ids = items.iter().map(|item| item.id.clone()).collect();
    let outcome = write::store_bsos(tx, request, items, collection_id, stamp).await?;
    discard(tx, Batches::One(batch)).await?;
    Ok((outcome, ids))
}

/// Which batches [`discard`] drops.
pub enum Batches<'a> {
    /// One batch, by id.
    One(&'a str),
    /// Every batch of a user.
    OfUser(UserId),
    /// Every batch of a user's collection.
    OfCollection(UserId, i32),
    /// Up to this many expired batches that no writer holds.
    Expired(i64),
}

/// Drops batches with their staged records; returns how many batches went. The batches go
/// first, each row locked, so that an append holding one has committed by the time its
/// statement ends; the records go in a statement of their own, whose snapshot, taken
/// after that, sees what such an append staged. (One statement would delete the records
/// as its snapshot saw them before it waited, leaving the append's records behind.)
pub async fn discard(tx: &Transaction<'_>, which: Batches<'_>) -> Result<u64, TxError> {
    let rows = match which {
        Batches::One(id) => {
            let stmt = tx
                .prepare_cached("DELETE FROM storage_batches WHERE id = $1 RETURNING id")
                .await?;
            tx.query(&stmt, &[&id]).await?
        }
        Batches::OfUser(user) => {
            let stmt = tx
                .prepare_cached("DELETE FROM storage_batches WHERE user_id = $1 RETURNING id")
                .await?;
            tx.query(&stmt, &[&uid(user)]).await?
        }
        Batches::OfCollection(user, collection_id) => {
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM storage_batches WHERE user_id = $1 AND collection_id = $2 \
                     RETURNING id",
                )
                .await?;
            tx.query(&stmt, &[&uid(user), &collection_id]).await?
        }
        Batches::Expired(chunk) => {
            let stmt = tx
                .prepare_cached(
                    "DELETE FROM storage_batches WHERE id IN ( \
                       SELECT id FROM storage_batches WHERE expiry <= $1 \
                       LIMIT $2 FOR UPDATE SKIP LOCKED) \
                     RETURNING id",
                )
                .await?;
            tx.query(&stmt, &[&now_ms(), &chunk]).await?
        }
    };
    let ids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    if !ids.is_empty() {
        let stmt = tx
            .prepare_cached("DELETE FROM storage_batch_items WHERE batch_id = ANY($1)")
            .await?;
        tx.execute(&stmt, &[&ids]).await?;
    }
    Ok(ids.len() as u64)
}

/// Deletes up to `chunk` expired batches (their staged records go with them) that no
/// writer holds, and staged records whose batch is gone; returns how many batches went.
/// Such records are left only by a build before storage migration 3 still running against
/// the new schema (its deletes of batches relied on the dropped foreign key to take the
/// records too). A record is staged only in the transaction that creates its batch or
/// under the batch's row lock, so one whose batch this statement's snapshot does not see
/// is an orphan.
pub async fn purge_expired(tx: &Transaction<'_>, chunk: i64) -> Result<u64, TxError> {
    let batches = discard(tx, Batches::Expired(chunk)).await?;
    let stmt = tx
        .prepare_cached(
            "DELETE FROM storage_batch_items i WHERE NOT EXISTS \
               (SELECT 1 FROM storage_batches b WHERE b.id = i.batch_id)",
        )
        .await?;
    tx.execute(&stmt, &[]).await?;
    Ok(batches)
}
