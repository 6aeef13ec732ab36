//! Queries that only read. Each takes the open transaction of the caller.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params, params_from_iter};
use sync_proto::SyncTimestamp;

use super::{backend, now_ms};
use crate::{
    Bso, BsoPage, BsoQuery, CollectionFigures, Cursor, Precondition, Sort, StoreError, UserId,
    Versioned,
};

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

/// A page of a collection listing, with keyset pagination (see [`Cursor`]).
pub fn bsos(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    query: &BsoQuery,
    max_page_bytes: usize,
) -> Result<BsoPage, StoreError> {
    let sort_key = match query.sort {
        Sort::Newest | Sort::Oldest => "modified".to_owned(),
        Sort::Index => format!("COALESCE(sortindex, {MISSING_SORTINDEX_KEY})"),
    };
    let payload = if query.full { "payload" } else { "''" };
    let mut sql = format!(
        "SELECT id, modified, {payload}, sortindex, {sort_key} FROM bsos \
         WHERE user_id = ?1 AND collection_id = ?2 AND expiry > ?3"
    );
    let mut args: Vec<Value> = vec![
        Value::Integer(user as i64),
        Value::Integer(collection_id),
        Value::Integer(now_ms()),
    ];
    let mut bind = |sql: &mut String, fragment: &str, value: Value| {
        args.push(value);
        sql.push_str(&fragment.replace('?', &format!("?{}", args.len())));
    };
    if let Some(newer) = query.newer {
        bind(
            &mut sql,
            " AND modified > ?",
            Value::Integer(newer.as_millis() as i64),
        );
    }
    if let Some(older) = query.older {
        bind(
            &mut sql,
            " AND modified < ?",
            Value::Integer(older.as_millis() as i64),
        );
    }
    if let Some(ids) = &query.ids {
        if ids.is_empty() {
            return Ok(BsoPage::default());
        }
        sql.push_str(" AND id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            bind(&mut sql, "?", Value::Text(id.clone()));
        }
        sql.push(')');
    }
    let mut skip = 0;
    match &query.cursor {
        Some(Cursor::After { key, id }) => {
            let (key_cmp, id_cmp) = match query.sort {
                Sort::Newest => ("<", "<"),
                Sort::Oldest => (">", ">"),
                Sort::Index => ("<", ">"),
            };
            args.push(Value::Integer(*key));
            let key_arg = args.len();
            args.push(Value::Text(id.clone()));
            let id_arg = args.len();
            sql.push_str(&format!(
                " AND ({sort_key} {key_cmp} ?{key_arg} OR ({sort_key} = ?{key_arg} AND id {id_cmp} ?{id_arg}))"
            ));
        }
        Some(Cursor::Skip(n)) => skip = *n,
        None => {}
    }
    let order = match query.sort {
        Sort::Newest => "modified DESC, id DESC",
        Sort::Oldest => "modified ASC, id ASC",
        Sort::Index => "5 DESC, id ASC",
    };
    // One row more than asked tells whether another page follows.
    let limit = i64::from(query.limit);
    args.push(Value::Integer(limit + 1));
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?{}", args.len()));
    if skip > 0 {
        args.push(Value::Integer(skip as i64));
        sql.push_str(&format!(" OFFSET ?{}", args.len()));
    }

    let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
    let found = stmt
        .query_map(params_from_iter(args), |row| {
            Ok((
                Bso {
                    id: row.get(0)?,
                    modified: ts(row.get(1)?),
                    payload: row.get(2)?,
                    sortindex: row.get(3)?,
                },
                row.get::<_, i64>(4)?,
            ))
        })
        .map_err(backend)?;
    // A page ends at `limit` records or, whichever comes first, once it holds
    // `max_page_bytes` of payload, so one request never holds gigabytes in memory (10,000
    // records of 2.5 MB would be 25 GB). The cursor lets the client fetch the rest.
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    for row in found {
        let row = row.map_err(backend)?;
        if rows.len() as i64 >= limit || (bytes >= max_page_bytes && !rows.is_empty()) {
            more = true;
            break;
        }
        bytes += row.0.payload.len();
        rows.push(row);
    }
    let next = more
        .then(|| {
            rows.last().map(|(bso, key)| Cursor::After {
                key: *key,
                id: bso.id.clone(),
            })
        })
        .flatten();
    Ok(BsoPage {
        items: rows.into_iter().map(|(bso, _)| bso).collect(),
        next,
    })
}
