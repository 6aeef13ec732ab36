//! Kinto's history snapshot, `GET /v1/buckets/{bid}/snapshot/collections/{cid}@{timestamp}`:
//! a collection's records as they were at a timestamp, rebuilt from the live records and
//! the bucket's history.
//!
//! kinto-http.js (`listRecords({at})`) asks for it and treats a 404 as final, so Kinto
//! Admin's comparison of a collection "at" one of its latest approvals depends on it.
//! Kinto 26.5's rule, kept here: records not changed since the timestamp are taken as they
//! are; each record changed since is taken from its most recent history entry at or before
//! the timestamp, and left out if it has none (it was created later). Who may read the
//! bucket or the collection may ask.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use settings_store::{Kind, Object};

use crate::access::{Action, allowed};
use crate::auth::authenticate;
use crate::error::{Details, KintoError};
use crate::resource::is_valid_id;
use crate::state::SettingsState;

/// The answer: the records, newest first.
#[derive(Serialize)]
pub(crate) struct Snapshot {
    data: Vec<Value>,
}

/// Kinto's 404 for an id that no object can have.
fn invalid_id(resource_name: &str, id: &str) -> KintoError {
    KintoError {
        details: Some(Details::Missing {
            id: id.to_owned(),
            resource_name: resource_name.to_owned(),
        }),
        ..KintoError::unknown_path()
    }
}

/// The handler.
pub(crate) async fn get(
    State(state): State<SettingsState>,
    headers: HeaderMap,
    Path((bucket, at)): Path<(String, String)>,
) -> Result<Json<Snapshot>, KintoError> {
    let store = state.store.as_ref();
    let caller = authenticate(store, &state.auth_cache, &headers).await?;
    // One path segment, `{collection}@{timestamp}`: an id never holds `@`.
    let (collection, timestamp) = at.rsplit_once('@').unwrap_or((&at, ""));
    if !is_valid_id(&bucket) {
        return Err(invalid_id("bucket", &bucket));
    }
    if !is_valid_id(collection) {
        return Err(invalid_id("collection", collection));
    }
    let timestamp: i64 = timestamp.parse().ok().filter(|t| *t >= 0).ok_or_else(|| {
        KintoError::invalid_parameter(
            "path",
            "timestamp",
            format!("Invalid timestamp {timestamp:?}"),
        )
    })?;
    let bucket_uri = format!("/buckets/{bucket}");
    let collection_uri = format!("{bucket_uri}/collections/{collection}");
    let chain = [collection_uri.clone(), bucket_uri.clone()];
    if !allowed(store, &caller, &chain, Action::Read).await? {
        return Err(KintoError::denied(&caller));
    }
    let records = store.list(Kind::Record, &collection_uri, true).await?;
    let changed: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.last_modified > timestamp)
        .map(|r| r.id.as_str())
        .collect();
    let mut data: Vec<Value> = records
        .iter()
        .filter(|r| r.last_modified <= timestamp && !r.deleted)
        .map(Object::to_json)
        .collect();
    if !changed.is_empty() {
        data.extend(before(&state, &bucket_uri, collection, &changed, timestamp).await?);
    }
    data.sort_by_key(|r| std::cmp::Reverse(r["last_modified"].as_i64().unwrap_or(0)));
    Ok(Json(Snapshot { data }))
}

/// The versions at or before `timestamp` of the `changed` records of `collection`, from the
/// most recent history entry of each (none for a record created later or deleted by then).
async fn before(
    state: &SettingsState,
    bucket_uri: &str,
    collection: &str,
    changed: &BTreeSet<&str>,
    timestamp: i64,
) -> Result<Vec<Value>, KintoError> {
    let entries = state.store.list(Kind::History, bucket_uri, false).await?;
    let mut latest: HashMap<&str, &Object> = HashMap::new();
    for entry in &entries {
        let field = |name: &str| entry.data.get(name).and_then(Value::as_str);
        let target = entry.data.get("target").and_then(|t| t.get("data"));
        let Some(record) = field("record_id") else {
            continue;
        };
        let at_or_before = target
            .and_then(|t| t.get("last_modified"))
            .and_then(Value::as_i64)
            .is_some_and(|t| t <= timestamp);
        if field("resource_name") != Some("record")
            || field("collection_id") != Some(collection)
            || !changed.contains(record)
            || !at_or_before
        {
            continue;
        }
        let newer = latest
            .get(record)
            .is_none_or(|seen| seen.last_modified < entry.last_modified);
        if newer {
            latest.insert(record, entry);
        }
    }
    Ok(latest
        .into_values()
        .filter(|entry| entry.data.get("action").and_then(Value::as_str) != Some("delete"))
        .filter_map(|entry| entry.data.get("target")?.get("data").cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;

    #[test]
    fn an_invalid_id_is_kintos_404() {
        let error = invalid_id("collection", "a b");
        assert_eq!(error.status, axum::http::StatusCode::NOT_FOUND);
        assert_eq!(error.errno, Errno::MissingResource);
        assert!(error.details.is_some());
    }
}
