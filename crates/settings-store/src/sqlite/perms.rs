//! The `permissions` table: one row per (object URI, permission, principal).

use rusqlite::{Connection, params};

use super::backend;
use crate::rules::under;
use crate::{Permissions, StoreError};

/// The permissions stored on `uri`. Only non-empty sets exist: a permission stored with no
/// principal has no row, so it reads back as absent.
pub fn get(conn: &Connection, uri: &str) -> Result<Permissions, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT permission, principal FROM permissions WHERE uri = ?1")
        .map_err(backend)?;
    let rows = stmt
        .query_map([uri], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(backend)?;
    let mut permissions = Permissions::new();
    for row in rows {
        let (permission, principal) = row.map_err(backend)?;
        permissions.entry(permission).or_default().insert(principal);
    }
    Ok(permissions)
}

/// Replaces every permission of `uri` with `permissions`.
pub fn replace(conn: &Connection, uri: &str, permissions: &Permissions) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM permissions WHERE uri = ?1")
        .and_then(|mut stmt| stmt.execute([uri]))
        .map_err(backend)?;
    let mut insert = conn
        .prepare_cached("INSERT INTO permissions (uri, permission, principal) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    for (permission, principals) in permissions {
        for principal in principals {
            insert
                .execute(params![uri, permission, principal])
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// Deletes the permissions of `uri` and of every URI under it (`uri/...`).
pub fn delete_under(conn: &Connection, uri: &str) -> Result<(), StoreError> {
    let (lower, slash, upper) = under(uri);
    conn.prepare_cached(
        "DELETE FROM permissions \
         WHERE uri >= ?1 AND uri < ?3 AND (uri = ?1 OR uri >= ?2)",
    )
    .and_then(|mut stmt| stmt.execute(params![lower, slash, upper]))
    .map_err(backend)?;
    Ok(())
}

/// Every (URI, permission) granted to one of `principals`, sorted, without repeats.
pub fn of(conn: &Connection, principals: &[String]) -> Result<Vec<(String, String)>, StoreError> {
    if principals.is_empty() {
        return Ok(Vec::new());
    }
    // The principals travel as one JSON array, so that the statement text (and its cached
    // preparation) does not depend on how many there are.
    let principals = serde_json::to_string(principals)
        .map_err(|e| StoreError::Backend(format!("encoding principals: {e}")))?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT DISTINCT uri, permission FROM permissions \
             WHERE principal IN (SELECT value FROM json_each(?1)) \
             ORDER BY uri, permission",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([principals], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<_>>().map_err(backend)
}
