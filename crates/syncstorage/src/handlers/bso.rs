//! `GET|PUT|DELETE /1.5/{uid}/storage/{collection}/{bso}`.

use axum::extract::State;
use serde::Serialize;
use sync_proto::bso::parse_bso;
use sync_proto::{SyncTimestamp, WeaveError};
use syncstorage_store::WriteBsos;

use super::{SyncResponse, quota, refuse_known_bad_payload, wire};
use crate::auth::HawkUser;
use crate::error::ApiError;
use crate::extractors::{BsoPath, Preconditions, PutBody};
use crate::state::AppState;

/// Reads one record.
pub async fn get(
    State(state): State<AppState>,
    user: HawkUser,
    path: BsoPath,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let found = state
        .store
        .get_bso(user.uid, &path.collection, &path.id, pre)
        .await?;
    SyncResponse::json(&wire(&found.value), found.last_modified)
}

/// Creates or updates one record; the body is the new timestamp as a bare number.
pub async fn put(
    State(state): State<AppState>,
    user: HawkUser,
    path: BsoPath,
    Preconditions(pre): Preconditions,
    PutBody(value): PutBody,
) -> Result<SyncResponse, ApiError> {
    let update = parse_bso(&value, Some(&path.id))
        .map_err(|e| ApiError::bad_request(WeaveError::InvalidWbo, e.to_string()))?;
    let limit = state.settings.limits.max_record_payload_bytes;
    if update.payload_len() as u64 > limit {
        return Err(ApiError::bad_request(
            WeaveError::InvalidWbo,
            format!(
                "payload of {} bytes over the limit {limit}",
                update.payload_len()
            ),
        ));
    }
    let write = WriteBsos {
        user: user.uid,
        collection: path.collection,
        items: vec![update],
        precondition: pre,
        quota: quota(&state),
    };
    refuse_known_bad_payload(&write)?;
    let outcome = state.store.put_bsos(write, true).await?;
    Ok(SyncResponse::json(&outcome.modified, outcome.modified)?.with_quota(&state, &outcome))
}

#[derive(Serialize)]
struct Deleted {
    modified: SyncTimestamp,
}

/// Deletes one record; the body is `{"modified": ts}`.
pub async fn delete(
    State(state): State<AppState>,
    user: HawkUser,
    path: BsoPath,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let modified = state
        .store
        .delete_bso(user.uid, &path.collection, &path.id, pre)
        .await?;
    SyncResponse::json(&Deleted { modified }, modified)
}
