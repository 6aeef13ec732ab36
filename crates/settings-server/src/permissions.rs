//! `GET /v1/permissions` (when `experimental_permissions_endpoint` is on): every object on
//! which the caller holds a permission, in Kinto's shape, which kinto-http's
//! `listPermissions` and Kinto Admin read to show what a user may edit:
//!
//! - one entry per object URI, with `resource_name`, `id` and the ids of the object and its
//!   parents (`bucket_id`, `collection_id`, `group_id`, `record_id`, `account_id`);
//! - the permissions an object's own permissions imply on it, added (a bucket's `write`
//!   implies `read`, `read:attributes`, `collection:create` and `group:create`);
//! - a `root` entry (URI `/`) for what the settings grant (`bucket:create`,
//!   `account:create`);
//! - Kinto's list filters (`resource_name=`, `exclude_resource_name=`, ...) and `_sort`.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::authenticate;
use crate::error::{Errno, KintoError};
use crate::query::ListQuery;
use crate::state::SettingsState;

#[derive(Serialize)]
pub(crate) struct Listing {
    data: Vec<Value>,
}

/// The permissions that holding `permission` on a `resource_name` object implies on that
/// same object (Kinto's inheritance tree, read downwards and kept to one object).
fn implied(resource_name: &str, permission: &str) -> &'static [&'static str] {
    match (resource_name, permission) {
        ("bucket", "write") => &[
            "write",
            "read",
            "read:attributes",
            "collection:create",
            "group:create",
        ],
        ("bucket", "read") => &["read", "read:attributes"],
        ("bucket", "collection:create") => &["collection:create", "read:attributes"],
        ("bucket", "group:create") => &["group:create", "read:attributes"],
        ("collection", "write") => &["write", "read", "read:attributes", "record:create"],
        ("collection", "read") => &["read", "read:attributes"],
        ("collection", "record:create") => &["record:create", "read:attributes"],
        (_, "write") => &["write", "read"],
        (_, "read") => &["read"],
        _ => &[],
    }
}

/// The entry of `uri`, or None for URIs that name no object.
fn entry(uri: &str, held: &BTreeSet<String>) -> Option<Value> {
    let parts: Vec<&str> = uri.trim_start_matches('/').split('/').collect();
    let (resource_name, ids): (&str, Vec<(&str, &str)>) = match parts.as_slice() {
        ["buckets", b] => ("bucket", vec![("bucket_id", *b)]),
        ["buckets", b, "collections", c] => {
            ("collection", vec![("bucket_id", *b), ("collection_id", *c)])
        }
        ["buckets", b, "groups", g] => ("group", vec![("bucket_id", *b), ("group_id", *g)]),
        ["buckets", b, "collections", c, "records", r] => (
            "record",
            vec![("bucket_id", *b), ("collection_id", *c), ("record_id", *r)],
        ),
        ["accounts", a] => ("account", vec![("account_id", *a)]),
        _ => return None,
    };
    let mut permissions = BTreeSet::new();
    for permission in held {
        permissions.insert(permission.as_str());
        permissions.extend(implied(resource_name, permission));
    }
    let mut map = Map::new();
    map.insert("uri".into(), uri.into());
    map.insert("resource_name".into(), resource_name.into());
    map.insert("permissions".into(), permissions.into_iter().collect());
    if let Some((_, id)) = ids.last() {
        map.insert("id".into(), (*id).into());
    }
    for (name, id) in ids {
        map.insert(name.into(), id.into());
    }
    Some(Value::Object(map))
}

/// The endpoint.
pub(crate) async fn list(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Json<Listing>, KintoError> {
    let settings = &state.settings;
    if !settings.experimental_permissions_endpoint {
        return Err(KintoError::new(
            StatusCode::NOT_FOUND,
            Errno::MissingResource,
            "The permissions endpoint is not enabled",
        ));
    }
    let query = ListQuery::parse(uri.query().unwrap_or(""))?;
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, &headers).await?;
    let mut by_uri: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (uri, permission) in state.store.permissions_of(&caller.principals).await? {
        by_uri.entry(uri).or_default().insert(permission);
    }
    let mut data: Vec<Value> = by_uri
        .iter()
        .filter_map(|(uri, held)| entry(uri, held))
        .collect();
    let mut root = Vec::new();
    if caller.is_any_of(&settings.bucket_create_principals) {
        root.push("bucket:create");
    }
    if caller.is_any_of(&settings.account_create_principals) {
        root.push("account:create");
    }
    if !root.is_empty() {
        data.push(serde_json::json!({
            "uri": "/",
            "resource_name": "root",
            "permissions": root,
        }));
    }
    Ok(Json(Listing {
        data: query.apply_json(data),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_their_ids_and_expand_permissions() {
        let held: BTreeSet<String> = ["write".to_owned()].into();
        let bucket = entry("/buckets/b", &held).unwrap();
        assert_eq!(bucket["id"], "b");
        assert_eq!(bucket["bucket_id"], "b");
        assert_eq!(
            bucket["permissions"],
            serde_json::json!([
                "collection:create",
                "group:create",
                "read",
                "read:attributes",
                "write"
            ])
        );
        let record = entry("/buckets/b/collections/c/records/r", &held).unwrap();
        assert_eq!(
            (
                &record["resource_name"],
                &record["collection_id"],
                &record["record_id"]
            ),
            (&"record".into(), &"c".into(), &"r".into())
        );
        assert_eq!(record["permissions"], serde_json::json!(["read", "write"]));
        assert!(entry("/buckets/b/history/x", &held).is_none());
    }
}
