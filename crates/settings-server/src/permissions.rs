//! `GET /v1/permissions` (when `experimental_permissions_endpoint` is on): every object on
//! which the caller holds a permission, with those permissions, as Kinto lists them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::auth::authenticate;
use crate::error::{Errno, KintoError};
use crate::state::SettingsState;

#[derive(Serialize)]
pub(crate) struct Entry {
    uri: String,
    resource_name: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection_id: Option<String>,
    permissions: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Listing {
    data: Vec<Entry>,
}

/// Splits `/buckets/b/collections/c/records/r` into its named parts.
fn describe(uri: &str, permissions: Vec<String>) -> Option<Entry> {
    let parts: Vec<&str> = uri.trim_start_matches('/').split('/').collect();
    let (resource_name, id, bucket_id, collection_id) = match parts.as_slice() {
        ["buckets", b] => ("bucket", *b, None, None),
        ["buckets", b, "collections", c] => ("collection", *c, Some(*b), None),
        ["buckets", b, "groups", g] => ("group", *g, Some(*b), None),
        ["buckets", b, "collections", c, "records", r] => ("record", *r, Some(*b), Some(*c)),
        ["accounts", a] => ("account", *a, None, None),
        _ => return None,
    };
    Some(Entry {
        uri: uri.to_owned(),
        resource_name: resource_name.to_owned(),
        id: id.to_owned(),
        bucket_id: bucket_id.map(str::to_owned),
        collection_id: collection_id.map(str::to_owned),
        permissions,
    })
}

/// The endpoint.
pub(crate) async fn list(
    State(state): State<SettingsState>,
    headers: HeaderMap,
) -> Result<Json<Listing>, KintoError> {
    if !state.settings.experimental_permissions_endpoint {
        return Err(KintoError::new(
            StatusCode::NOT_FOUND,
            Errno::MissingResource,
            "The permissions endpoint is not enabled",
        ));
    }
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, &headers).await?;
    let mut by_uri: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (uri, permission) in state.store.permissions_of(&caller.principals).await? {
        by_uri.entry(uri).or_default().push(permission);
    }
    let data = by_uri
        .into_iter()
        .filter_map(|(uri, mut permissions)| {
            if permissions.iter().any(|p| p == "write") && !permissions.iter().any(|p| p == "read")
            {
                permissions.push("read".to_owned());
            }
            permissions.sort();
            describe(&uri, permissions)
        })
        .collect();
    Ok(Json(Listing { data }))
}
