//! Queries that only read. Each takes the open transaction of the caller, and runs
//! statements prepared once per connection (`prepare_cached`).

use deadpool_postgres::Transaction;
use sync_proto::SyncTimestamp;
use tokio_postgres::types::ToSql;

use super::now_ms;
use super::tx::TxError;
use crate::page::PageBuilder;
use crate::{Bso, BsoPage, BsoQuery, CollectionFigures, Cursor, Precondition, Sort, Versioned};
use crate::{StoreError, UserId};

/// The sort key given to records without a sortindex: below every valid sortindex, so they
/// come last in `sort=index` order (the same key as the SQLite backend, so cursors agree).
pub const MISSING_SORTINDEX_KEY: i64 = -1_000_000_000;

/// Rows fetched per round trip of a listing, so that a page can stop at its byte budget
/// without the server sending every remaining row.
const FETCH_ROWS: i32 = 100;

/// A stored millisecond count as a timestamp.
pub fn ts(ms: i64) -> SyncTimestamp {
    SyncTimestamp::from_millis(ms.max(0) as u64)
}

/// A user id as PostgreSQL's `BIGINT`. Ids come from tokens minted for `u64`, and the
/// bit pattern round-trips, so ids above `i64::MAX` stay distinct.
pub fn uid(user: UserId) -> i64 {
    user as i64
}

pub async fn lookup_collection(tx: &Transaction<'_>, name: &str) -> Result<Option<i32>, TxError> {
    let stmt = tx
        .prepare_cached("SELECT id FROM storage_collections WHERE name = $1")
        .await?;
    Ok(tx.query_opt(&stmt, &[&name]).await?.map(|row| row.get(0)))
}

/// The storage timestamp: the newest collection timestamp, tombstone included.
pub async fn storage_timestamp(
    tx: &Transaction<'_>,
    user: UserId,
) -> Result<SyncTimestamp, TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(modified), 0)::BIGINT FROM storage_user_collections \
             WHERE user_id = $1",
        )
        .await?;
    Ok(ts(tx.query_one(&stmt, &[&uid(user)]).await?.get(0)))
}

pub async fn collection_timestamp(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
) -> Result<SyncTimestamp, TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT modified FROM storage_user_collections \
             WHERE user_id = $1 AND collection_id = $2",
        )
        .await?;
    let row = tx.query_opt(&stmt, &[&uid(user), &collection_id]).await?;
    Ok(row.map_or(SyncTimestamp::ZERO, |row| ts(row.get(0))))
}

/// A live record's timestamp, or zero.
pub async fn bso_timestamp(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
    id: &str,
) -> Result<SyncTimestamp, TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT modified FROM storage_bsos \
             WHERE user_id = $1 AND collection_id = $2 AND id = $3 AND expiry > $4",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&uid(user), &collection_id, &id, &now_ms()])
        .await?;
    Ok(row.map_or(SyncTimestamp::ZERO, |row| ts(row.get(0))))
}

pub async fn collection_timestamps(
    tx: &Transaction<'_>,
    user: UserId,
    precondition: Precondition,
) -> Result<Versioned<CollectionFigures<SyncTimestamp>>, TxError> {
    let last_modified = storage_timestamp(tx, user).await?;
    precondition.check(last_modified)?;
    let stmt = tx
        .prepare_cached(
            "SELECT c.name, uc.modified FROM storage_user_collections uc \
             JOIN storage_collections c ON c.id = uc.collection_id \
             WHERE uc.user_id = $1 AND uc.collection_id != 0 ORDER BY c.name",
        )
        .await?;
    let value = tx
        .query(&stmt, &[&uid(user)])
        .await?
        .iter()
        .map(|row| (row.get(0), ts(row.get(1))))
        .collect();
    Ok(Versioned {
        last_modified,
        value,
    })
}

/// The per-collection aggregate of live records that `info/*` reports.
#[derive(Debug, Clone, Copy)]
pub enum Figure {
    /// Number of records.
    Count,
    /// Payload bytes.
    Bytes,
}

pub async fn collection_figures(
    tx: &Transaction<'_>,
    user: UserId,
    precondition: Precondition,
    figure: Figure,
) -> Result<Versioned<CollectionFigures<u64>>, TxError> {
    let last_modified = storage_timestamp(tx, user).await?;
    precondition.check(last_modified)?;
    let aggregate = match figure {
        Figure::Count => "COUNT(*)",
        Figure::Bytes => "SUM(b.payload_size)",
    };
    let sql = format!(
        "SELECT c.name, {aggregate}::BIGINT FROM storage_bsos b \
         JOIN storage_collections c ON c.id = b.collection_id \
         WHERE b.user_id = $1 AND b.expiry > $2 GROUP BY c.name ORDER BY c.name"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let value = tx
        .query(&stmt, &[&uid(user), &now_ms()])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get::<_, i64>(1).max(0) as u64))
        .collect();
    Ok(Versioned {
        last_modified,
        value,
    })
}

/// Payload bytes of the user's live records.
pub async fn usage(tx: &Transaction<'_>, user: UserId) -> Result<u64, TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(payload_size), 0)::BIGINT FROM storage_bsos \
             WHERE user_id = $1 AND expiry > $2",
        )
        .await?;
    let bytes: i64 = tx.query_one(&stmt, &[&uid(user), &now_ms()]).await?.get(0);
    Ok(bytes.max(0) as u64)
}

pub async fn bso(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
    id: &str,
) -> Result<Option<Bso>, TxError> {
    let stmt = tx
        .prepare_cached(
            "SELECT id, modified, payload, sortindex FROM storage_bsos \
             WHERE user_id = $1 AND collection_id = $2 AND id = $3 AND expiry > $4",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&uid(user), &collection_id, &id, &now_ms()])
        .await?;
    row.map(|row| {
        Ok(Bso {
            id: row.get(0),
            modified: ts(row.get(1)),
            payload: payload_text(row.get(2))?,
            sortindex: row.get(3),
        })
    })
    .transpose()
}

/// A stored payload as text. Payloads are written from Rust strings, so anything else is
/// a damaged database, reported rather than papered over.
pub fn payload_text(bytes: Vec<u8>) -> Result<String, TxError> {
    String::from_utf8(bytes)
        .map_err(|_| TxError::Store(StoreError::Backend("stored payload is not UTF-8".into())))
}

/// A page of a collection listing, with keyset pagination (see [`Cursor`]). The SQL
/// mirrors the SQLite backend's, so both order records (and read cursors) the same way.
pub async fn bsos(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i32,
    query: &BsoQuery,
    max_page_bytes: usize,
) -> Result<BsoPage, TxError> {
    if query.ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(BsoPage::default());
    }
    let sort_key = match query.sort {
        Sort::Newest | Sort::Oldest => "modified".to_owned(),
        Sort::Index => format!("COALESCE(sortindex, {MISSING_SORTINDEX_KEY})::BIGINT"),
    };
    let payload = if query.full { "payload" } else { "''::BYTEA" };
    let mut sql = format!(
        "SELECT id, modified, {payload}, sortindex, {sort_key} FROM storage_bsos \
         WHERE user_id = $1 AND collection_id = $2 AND expiry > $3"
    );
    let (user_id, now) = (uid(user), now_ms());
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&user_id, &collection_id, &now];
    let newer = query.newer.map(|t| t.as_millis() as i64);
    if let Some(newer) = &newer {
        args.push(newer);
        sql.push_str(&format!(" AND modified > ${}", args.len()));
    }
    let older = query.older.map(|t| t.as_millis() as i64);
    if let Some(older) = &older {
        args.push(older);
        sql.push_str(&format!(" AND modified < ${}", args.len()));
    }
    if let Some(ids) = &query.ids {
        args.push(ids);
        sql.push_str(&format!(" AND id = ANY(${})", args.len()));
    }
    let mut skip = 0i64;
    if let Some(Cursor::After { key, id }) = &query.cursor {
        let (key_cmp, id_cmp) = query.sort.after_cursor();
        args.push(key);
        let key_arg = args.len();
        args.push(id);
        let id_arg = args.len();
        sql.push_str(&format!(
            " AND ({sort_key} {key_cmp} ${key_arg} \
             OR ({sort_key} = ${key_arg} AND id {id_cmp} ${id_arg}))"
        ));
    } else if let Some(Cursor::Skip(n)) = &query.cursor {
        skip = i64::try_from(*n).unwrap_or(i64::MAX);
    }
    let order = query.sort.order_by();
    // One row more than asked tells whether another page follows.
    let fetch = i64::from(query.limit) + 1;
    args.push(&fetch);
    sql.push_str(&format!(" ORDER BY {order} LIMIT ${}", args.len()));
    args.push(&skip);
    sql.push_str(&format!(" OFFSET ${}", args.len()));

    let stmt = tx.prepare_cached(&sql).await?;
    // A portal hands rows over in chunks, so a page that reaches its byte budget early
    // stops fetching: one request never holds gigabytes of records in memory.
    let portal = tx.bind(&stmt, &args).await?;
    let mut page = PageBuilder::new(query.limit, max_page_bytes);
    'fetch: loop {
        let chunk = tx.query_portal(&portal, FETCH_ROWS).await?;
        let exhausted = chunk.len() < FETCH_ROWS as usize;
        for row in chunk {
            let bso = Bso {
                id: row.get(0),
                modified: ts(row.get(1)),
                payload: payload_text(row.get(2))?,
                sortindex: row.get(3),
            };
            if !page.offer(bso, row.get(4)) {
                break 'fetch;
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(page.finish())
}
