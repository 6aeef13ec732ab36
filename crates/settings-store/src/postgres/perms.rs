//! The `permissions` table: one row per (object URI, permission, principal).

use deadpool_postgres::GenericClient;

use super::{execute, query};
use crate::rules::under;
use crate::{Permissions, StoreError};

/// The permissions stored on `uri` (only non-empty sets exist).
pub async fn get(client: &impl GenericClient, uri: &str) -> Result<Permissions, StoreError> {
    let rows = query(
        client,
        "SELECT permission, principal FROM permissions WHERE uri = $1",
        &[&uri],
    )
    .await?;
    let mut permissions = Permissions::new();
    for row in &rows {
        permissions
            .entry(row.get(0))
            .or_default()
            .insert(row.get(1));
    }
    Ok(permissions)
}

/// Replaces every permission of `uri` with `permissions` (two statements, whatever their
/// number: the rows travel as two arrays).
pub async fn replace(
    client: &impl GenericClient,
    uri: &str,
    permissions: &Permissions,
) -> Result<(), StoreError> {
    execute(client, "DELETE FROM permissions WHERE uri = $1", &[&uri]).await?;
    let (names, principals): (Vec<&str>, Vec<&str>) = permissions
        .iter()
        .flat_map(|(name, set)| set.iter().map(move |p| (name.as_str(), p.as_str())))
        .unzip();
    if !names.is_empty() {
        execute(
            client,
            "INSERT INTO permissions (uri, permission, principal) \
             SELECT $1, name, principal FROM UNNEST($2::TEXT[], $3::TEXT[]) AS u (name, principal)",
            &[&uri, &names, &principals],
        )
        .await?;
    }
    Ok(())
}

/// Deletes the permissions of `uri` and of every URI under it (`uri/...`).
pub async fn delete_under(client: &impl GenericClient, uri: &str) -> Result<(), StoreError> {
    let (lower, slash, upper) = under(uri);
    execute(
        client,
        "DELETE FROM permissions WHERE uri >= $1 AND uri < $3 AND (uri = $1 OR uri >= $2)",
        &[&lower, &slash, &upper],
    )
    .await?;
    Ok(())
}

/// Every (URI, permission) granted to one of `principals`, sorted bytewise, without repeats.
pub async fn of(
    client: &impl GenericClient,
    principals: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    if principals.is_empty() {
        return Ok(Vec::new());
    }
    let rows = query(
        client,
        "SELECT DISTINCT uri, permission FROM permissions WHERE principal = ANY($1) \
         ORDER BY uri, permission",
        &[&principals],
    )
    .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
