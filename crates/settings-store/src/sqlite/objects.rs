//! The `objects` and `timestamps` tables: reads, writes, tombstones and subtree deletes.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Map;

use super::{backend, perms};
use crate::rules::{check, next_timestamp, under, uri};
use crate::{Kind, Object, Precondition, RawObject, StoreError, Write};

/// Reads a row selected as `id, last_modified, data, deleted`.
fn raw(row: &Row<'_>) -> rusqlite::Result<RawObject> {
    Ok(RawObject {
        id: row.get(0)?,
        last_modified: row.get(1)?,
        data: row.get(2)?,
        deleted: row.get::<_, i64>(3)? != 0,
    })
}

/// One live object.
pub fn get(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    id: &str,
) -> Result<Option<Object>, StoreError> {
    conn.prepare_cached(
        "SELECT id, last_modified, data, deleted FROM objects \
         WHERE kind = ?1 AND parent = ?2 AND id = ?3 AND deleted = 0",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![kind.plural(), parent, id], raw)
            .optional()
    })
    .map_err(backend)?
    .map(RawObject::parse)
    .transpose()
}

/// Whether a live object exists (without reading its data).
fn is_live(conn: &Connection, kind: Kind, parent: &str, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT 1 FROM objects WHERE kind = ?1 AND parent = ?2 AND id = ?3 AND deleted = 0",
    )
    .and_then(|mut stmt| stmt.exists(params![kind.plural(), parent, id]))
    .map_err(backend)
}

/// The objects of a list (ordered by id, although callers must not rely on it).
pub fn list(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    include_deleted: bool,
) -> Result<Vec<Object>, StoreError> {
    list_raw(conn, kind, parent, include_deleted)?
        .into_iter()
        .map(RawObject::parse)
        .collect()
}

/// The objects of a list, their data unparsed.
pub fn list_raw(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    include_deleted: bool,
) -> Result<Vec<RawObject>, StoreError> {
    let sql = if include_deleted {
        "SELECT id, last_modified, data, deleted FROM objects \
         WHERE kind = ?1 AND parent = ?2 ORDER BY id"
    } else {
        "SELECT id, last_modified, data, deleted FROM objects \
         WHERE kind = ?1 AND parent = ?2 AND deleted = 0 ORDER BY id"
    };
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params![kind.plural(), parent], raw)
        .map_err(backend)?;
    rows.map(|row| row.map_err(backend)).collect()
}

/// The list's timestamp, 0 for a list never written.
pub fn timestamp(conn: &Connection, kind: Kind, parent: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT last_modified FROM timestamps WHERE kind = ?1 AND parent = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![kind.plural(), parent], |row| row.get(0))
                .optional()
        })
        .map(Option::unwrap_or_default)
        .map_err(backend)
}

fn set_timestamp(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    last_modified: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO timestamps (kind, parent, last_modified) VALUES (?1, ?2, ?3) \
         ON CONFLICT (kind, parent) DO UPDATE SET last_modified = excluded.last_modified",
    )
    .and_then(|mut stmt| stmt.execute(params![kind.plural(), parent, last_modified]))
    .map_err(backend)?;
    Ok(())
}

/// Takes the list's next timestamp and records it as the list's.
fn take_timestamp(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    now: i64,
    forced: Option<i64>,
) -> Result<i64, StoreError> {
    let next = next_timestamp(timestamp(conn, kind, parent)?, now, forced)?;
    set_timestamp(conn, kind, parent, next)?;
    Ok(next)
}

/// Creates or replaces an object; see [`crate::SettingsStore::put`].
pub fn put(conn: &Connection, write: Write, now: i64) -> Result<(Object, bool), StoreError> {
    let Write {
        kind,
        parent,
        id,
        mut data,
        permissions,
        precondition,
        forced_timestamp,
    } = write;
    let current = get(conn, kind, &parent, &id)?;
    check(precondition, current.as_ref())?;
    let last_modified = take_timestamp(conn, kind, &parent, now, forced_timestamp)?;
    data.remove("id");
    data.remove("last_modified");
    let json = serde_json::to_string(&data)
        .map_err(|e| StoreError::Backend(format!("encoding object {id:?}: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO objects (kind, parent, id, last_modified, data, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, 0) \
         ON CONFLICT (kind, parent, id) DO UPDATE SET \
         last_modified = excluded.last_modified, data = excluded.data, deleted = 0",
    )
    .and_then(|mut stmt| stmt.execute(params![kind.plural(), parent, id, last_modified, json]))
    .map_err(backend)?;
    if let Some(permissions) = &permissions {
        perms::replace(conn, &uri(kind, &parent, &id), permissions)?;
    }
    let object = Object {
        id,
        last_modified,
        data,
        deleted: false,
    };
    Ok((object, current.is_none()))
}

/// Deletes one object; see [`crate::SettingsStore::delete`]. A missing or already deleted
/// object is [`StoreError::NotFound`] whatever the precondition, as Kinto's `DELETE` looks
/// the object up (404) before it checks `If-Match` / `If-None-Match` (412).
pub fn delete(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    id: &str,
    precondition: Precondition,
    now: i64,
) -> Result<Object, StoreError> {
    let current = get(conn, kind, parent, id)?.ok_or(StoreError::NotFound)?;
    check(precondition, Some(&current))?;
    let last_modified = take_timestamp(conn, kind, parent, now, None)?;
    tombstone(conn, kind, parent, id, last_modified)
}

/// Deletes live objects of a list, each at its own timestamp; see
/// [`crate::SettingsStore::delete_many`]. Explicit ids are deleted in the order given
/// (repeats, missing ids and tombstones skipped); all objects in the order they were last
/// written, so the tombstones keep the objects' relative order.
pub fn delete_many(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    ids: Option<Vec<String>>,
    now: i64,
) -> Result<Vec<Object>, StoreError> {
    let targets: Vec<String> = match ids {
        None => {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM objects WHERE kind = ?1 AND parent = ?2 AND deleted = 0 \
                     ORDER BY last_modified, id",
                )
                .map_err(backend)?;
            stmt.query_map(params![kind.plural(), parent], |row| row.get(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
                .map_err(backend)?
        }
        Some(ids) => {
            let mut seen = HashSet::new();
            let mut live = Vec::new();
            for id in ids {
                if seen.insert(id.clone()) && is_live(conn, kind, parent, &id)? {
                    live.push(id);
                }
            }
            live
        }
    };
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut previous = timestamp(conn, kind, parent)?;
    let mut tombstones = Vec::with_capacity(targets.len());
    for id in &targets {
        previous = next_timestamp(previous, now, None)?;
        tombstones.push(tombstone(conn, kind, parent, id, previous)?);
    }
    set_timestamp(conn, kind, parent, previous)?;
    Ok(tombstones)
}

/// Turns a live object into a tombstone at `last_modified` and removes its permissions and
/// everything under it.
fn tombstone(
    conn: &Connection,
    kind: Kind,
    parent: &str,
    id: &str,
    last_modified: i64,
) -> Result<Object, StoreError> {
    conn.prepare_cached(
        "UPDATE objects SET last_modified = ?4, data = '{}', deleted = 1 \
         WHERE kind = ?1 AND parent = ?2 AND id = ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![kind.plural(), parent, id, last_modified]))
    .map_err(backend)?;
    purge_under(conn, &uri(kind, parent, id))?;
    Ok(Object {
        id: id.to_owned(),
        last_modified,
        data: Map::new(),
        deleted: true,
    })
}

/// Deletes, without tombstones, every object whose parent is `uri` or under it (children,
/// grandchildren, and their tombstones), the timestamps of those lists, and the permissions
/// of `uri` and of every URI under it.
///
/// The lists to empty are found in `timestamps` (every list with objects has a row there;
/// see `schema`), through its `parent` index, so deleting a leaf such as a record costs two
/// index lookups rather than a scan of `objects`.
fn purge_under(conn: &Connection, uri: &str) -> Result<(), StoreError> {
    let (lower, slash, upper) = under(uri);
    let lists: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT kind, parent FROM timestamps \
             WHERE parent >= ?1 AND parent < ?3 AND (parent = ?1 OR parent >= ?2)",
        )
        .and_then(|mut stmt| {
            stmt.query_map(params![lower, slash, upper], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(backend)?;
    if !lists.is_empty() {
        let mut objects = conn
            .prepare_cached("DELETE FROM objects WHERE kind = ?1 AND parent = ?2")
            .map_err(backend)?;
        let mut timestamps = conn
            .prepare_cached("DELETE FROM timestamps WHERE kind = ?1 AND parent = ?2")
            .map_err(backend)?;
        for (kind, parent) in &lists {
            objects.execute(params![kind, parent]).map_err(backend)?;
            timestamps.execute(params![kind, parent]).map_err(backend)?;
        }
    }
    perms::delete_under(conn, uri)
}

/// Deletes every row of every table.
pub fn flush(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("DELETE FROM objects; DELETE FROM timestamps; DELETE FROM permissions;")
        .map_err(backend)
}
