//! The `objects` and `timestamps` tables: reads, writes, tombstones and subtree deletes
//! (the rules are the SQLite backend's; see its `objects` module).

use std::collections::HashSet;

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::Map;
use tokio_postgres::Row;

use super::{execute, perms, query};
use crate::rules::{check, next_timestamp, under, uri};
use crate::{Kind, Object, Precondition, RawObject, StoreError, Write};

/// The database server's clock in milliseconds, as an SQL expression.
const NOW_MS: &str = "FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Reads a row selected as `id, last_modified, data::TEXT, deleted`.
fn object_from_row(row: &Row) -> Result<Object, StoreError> {
    let id: String = row.get(0);
    let deleted: bool = row.get(3);
    let data = if deleted {
        Map::new()
    } else {
        let text: &str = row.get(2);
        serde_json::from_str(text).map_err(|e| {
            StoreError::Backend(format!("object {id:?} has invalid stored data: {e}"))
        })?
    };
    Ok(Object {
        id,
        last_modified: row.get(1),
        data,
        deleted,
    })
}

/// One live object.
pub async fn get(
    client: &impl GenericClient,
    kind: Kind,
    parent: &str,
    id: &str,
) -> Result<Option<Object>, StoreError> {
    let rows = query(
        client,
        "SELECT id, last_modified, data::TEXT, deleted FROM objects \
         WHERE kind = $1 AND parent = $2 AND id = $3 AND NOT deleted",
        &[&kind.plural(), &parent, &id],
    )
    .await?;
    rows.first().map(object_from_row).transpose()
}

/// The objects of a list, by id (bytewise, as on SQLite).
pub async fn list(
    client: &impl GenericClient,
    kind: Kind,
    parent: &str,
    include_deleted: bool,
) -> Result<Vec<Object>, StoreError> {
    let rows = query(
        client,
        "SELECT id, last_modified, data::TEXT, deleted FROM objects \
         WHERE kind = $1 AND parent = $2 AND ($3 OR NOT deleted) ORDER BY id",
        &[&kind.plural(), &parent, &include_deleted],
    )
    .await?;
    rows.iter().map(object_from_row).collect()
}

/// The objects of a list, their data as the text PostgreSQL gives for it.
pub async fn list_raw(
    client: &impl GenericClient,
    kind: Kind,
    parent: &str,
    include_deleted: bool,
) -> Result<Vec<RawObject>, StoreError> {
    let rows = query(
        client,
        "SELECT id, last_modified, data::TEXT, deleted FROM objects \
         WHERE kind = $1 AND parent = $2 AND ($3 OR NOT deleted) ORDER BY id",
        &[&kind.plural(), &parent, &include_deleted],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| RawObject {
            id: row.get(0),
            last_modified: row.get(1),
            data: row.get(2),
            deleted: row.get(3),
        })
        .collect())
}

/// The list's timestamp, 0 for a list never written.
pub async fn timestamp(
    client: &impl GenericClient,
    kind: Kind,
    parent: &str,
) -> Result<i64, StoreError> {
    let rows = query(
        client,
        "SELECT last_modified FROM timestamps WHERE kind = $1 AND parent = $2",
        &[&kind.plural(), &parent],
    )
    .await?;
    Ok(rows.first().map_or(0, |row| row.get(0)))
}

/// Takes the list's next timestamp in one upsert, which locks the list's row until the
/// transaction ends. The expression is `rules::next_timestamp` in SQL: a forced value newer
/// than the list, else `max(now, previous + 1)` (a new list's previous is 0).
async fn take_timestamp(
    tx: &Transaction<'_>,
    kind: Kind,
    parent: &str,
    forced: Option<i64>,
) -> Result<i64, StoreError> {
    let rows = query(
        tx,
        &format!(
            "INSERT INTO timestamps AS t (kind, parent, last_modified) \
             VALUES ($1, $2, CASE WHEN $3::BIGINT > 0 THEN $3::BIGINT \
                                  ELSE GREATEST(1, {NOW_MS}) END) \
             ON CONFLICT (kind, parent) DO UPDATE SET last_modified = \
               CASE WHEN $3::BIGINT > t.last_modified THEN $3::BIGINT \
                    ELSE GREATEST(t.last_modified + 1, {NOW_MS}) END \
             RETURNING last_modified"
        ),
        &[&kind.plural(), &parent, &forced],
    )
    .await?;
    rows.first()
        .map(|row| row.get(0))
        .ok_or_else(|| StoreError::Backend("timestamp upsert returned no row".into()))
}

/// Locks the list's timestamp row and returns its value and the clock, or None for a list
/// that has no row (and therefore no object).
async fn lock_list(
    tx: &Transaction<'_>,
    kind: Kind,
    parent: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    let rows = query(
        tx,
        &format!(
            "SELECT last_modified, {NOW_MS} FROM timestamps \
             WHERE kind = $1 AND parent = $2 FOR UPDATE"
        ),
        &[&kind.plural(), &parent],
    )
    .await?;
    Ok(rows.first().map(|row| (row.get(0), row.get(1))))
}

async fn set_timestamp(
    tx: &Transaction<'_>,
    kind: Kind,
    parent: &str,
    last_modified: i64,
) -> Result<(), StoreError> {
    execute(
        tx,
        "UPDATE timestamps SET last_modified = $3 WHERE kind = $1 AND parent = $2",
        &[&kind.plural(), &parent, &last_modified],
    )
    .await?;
    Ok(())
}

/// Creates or replaces an object; see [`crate::SettingsStore::put`].
pub async fn put(tx: &Transaction<'_>, write: Write) -> Result<(Object, bool), StoreError> {
    let Write {
        kind,
        parent,
        id,
        mut data,
        permissions,
        precondition,
        forced_timestamp,
    } = write;
    // The list's lock first: the object read below is then the latest committed one.
    let last_modified = take_timestamp(tx, kind, &parent, forced_timestamp).await?;
    let current = get(tx, kind, &parent, &id).await?;
    check(precondition, current.as_ref())?;
    data.remove("id");
    data.remove("last_modified");
    let json = serde_json::to_string(&data)
        .map_err(|e| StoreError::Backend(format!("encoding object {id:?}: {e}")))?;
    execute(
        tx,
        "INSERT INTO objects (kind, parent, id, last_modified, data, deleted) \
         VALUES ($1, $2, $3, $4, $5::TEXT::JSON, FALSE) \
         ON CONFLICT (kind, parent, id) DO UPDATE SET \
         last_modified = EXCLUDED.last_modified, data = EXCLUDED.data, deleted = FALSE",
        &[&kind.plural(), &parent, &id, &last_modified, &json],
    )
    .await?;
    if let Some(permissions) = &permissions {
        perms::replace(tx, &uri(kind, &parent, &id), permissions).await?;
    }
    let object = Object {
        id,
        last_modified,
        data,
        deleted: false,
    };
    Ok((object, current.is_none()))
}

/// Deletes one object; see [`crate::SettingsStore::delete`] and the SQLite backend (a
/// missing object is `NotFound` whatever the precondition).
pub async fn delete(
    tx: &Transaction<'_>,
    kind: Kind,
    parent: &str,
    id: &str,
    precondition: Precondition,
) -> Result<Object, StoreError> {
    let (previous, now) = lock_list(tx, kind, parent)
        .await?
        .ok_or(StoreError::NotFound)?;
    let current = get(tx, kind, parent, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    check(precondition, Some(&current))?;
    let last_modified = next_timestamp(previous, now, None)?;
    set_timestamp(tx, kind, parent, last_modified).await?;
    tombstone(tx, kind, parent, id, last_modified).await
}

/// Deletes live objects of a list, each at its own timestamp, in the SQLite backend's
/// order (ids as given, or all by `last_modified` then id).
pub async fn delete_many(
    tx: &Transaction<'_>,
    kind: Kind,
    parent: &str,
    ids: Option<Vec<String>>,
) -> Result<Vec<Object>, StoreError> {
    let Some((mut previous, now)) = lock_list(tx, kind, parent).await? else {
        return Ok(Vec::new());
    };
    let targets: Vec<String> = match ids {
        None => query(
            tx,
            "SELECT id FROM objects WHERE kind = $1 AND parent = $2 AND NOT deleted \
             ORDER BY last_modified, id",
            &[&kind.plural(), &parent],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect(),
        Some(ids) => {
            let live: HashSet<String> = query(
                tx,
                "SELECT id FROM objects \
                 WHERE kind = $1 AND parent = $2 AND NOT deleted AND id = ANY($3)",
                &[&kind.plural(), &parent, &ids],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
            let mut seen = HashSet::new();
            ids.into_iter()
                .filter(|id| live.contains(id) && seen.insert(id.clone()))
                .collect()
        }
    };
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut tombstones = Vec::with_capacity(targets.len());
    for id in &targets {
        previous = next_timestamp(previous, now, None)?;
        tombstones.push(tombstone(tx, kind, parent, id, previous).await?);
    }
    set_timestamp(tx, kind, parent, previous).await?;
    Ok(tombstones)
}

/// Turns a live object into a tombstone at `last_modified` and removes its permissions and
/// everything under it.
async fn tombstone(
    tx: &Transaction<'_>,
    kind: Kind,
    parent: &str,
    id: &str,
    last_modified: i64,
) -> Result<Object, StoreError> {
    execute(
        tx,
        "UPDATE objects SET last_modified = $4, data = '{}'::JSON, deleted = TRUE \
         WHERE kind = $1 AND parent = $2 AND id = $3",
        &[&kind.plural(), &parent, &id, &last_modified],
    )
    .await?;
    purge_under(tx, &uri(kind, parent, id)).await?;
    Ok(Object {
        id: id.to_owned(),
        last_modified,
        data: Map::new(),
        deleted: true,
    })
}

/// Deletes, without tombstones, every object of every list whose parent is `uri` or under
/// it, those lists' timestamps, and the permissions of `uri` and every URI under it. The
/// lists are found in `timestamps` (see the schema's invariant) through its `parent` index.
async fn purge_under(tx: &Transaction<'_>, uri: &str) -> Result<(), StoreError> {
    let (lower, slash, upper) = under(uri);
    execute(
        tx,
        "DELETE FROM objects o USING timestamps t \
         WHERE t.parent >= $1 AND t.parent < $3 AND (t.parent = $1 OR t.parent >= $2) \
           AND o.kind = t.kind AND o.parent = t.parent",
        &[&lower, &slash, &upper],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM timestamps \
         WHERE parent >= $1 AND parent < $3 AND (parent = $1 OR parent >= $2)",
        &[&lower, &slash, &upper],
    )
    .await?;
    perms::delete_under(tx, uri).await
}
