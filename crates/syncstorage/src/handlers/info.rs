//! `GET /1.5/{uid}/info/*`.

use axum::extract::State;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sync_proto::SyncTimestamp;

use super::SyncResponse;
use crate::auth::HawkUser;
use crate::error::ApiError;
use crate::extractors::Preconditions;
use crate::headers::X_WEAVE_RECORDS;
use crate::state::AppState;

/// Serializes `(name, value)` pairs as a JSON object.
struct AsObject<'a, T>(&'a [(String, T)]);

impl<T: Serialize> Serialize for AsObject<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

fn kilobytes(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

/// `info/collections`: each collection's last-modified time.
pub async fn collections(
    State(state): State<AppState>,
    user: HawkUser,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let found = state.store.collection_timestamps(user.uid, pre).await?;
    let count = found.value.len().to_string();
    Ok(
        SyncResponse::json(&AsObject(&found.value), found.last_modified)?
            .with_header(X_WEAVE_RECORDS, &count),
    )
}

/// `info/collection_counts`: live records per collection.
pub async fn collection_counts(
    State(state): State<AppState>,
    user: HawkUser,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let found = state.store.collection_counts(user.uid, pre).await?;
    let count = found.value.len().to_string();
    Ok(
        SyncResponse::json(&AsObject(&found.value), found.last_modified)?
            .with_header(X_WEAVE_RECORDS, &count),
    )
}

/// `info/collection_usage`: kilobytes per collection.
pub async fn collection_usage(
    State(state): State<AppState>,
    user: HawkUser,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let found = state.store.collection_usage(user.uid, pre).await?;
    let usage: Vec<(String, f64)> = found
        .value
        .into_iter()
        .map(|(name, bytes)| (name, kilobytes(bytes)))
        .collect();
    let count = usage.len().to_string();
    Ok(SyncResponse::json(&AsObject(&usage), found.last_modified)?
        .with_header(X_WEAVE_RECORDS, &count))
}

/// `info/quota`: `[used kilobytes, quota kilobytes or null]`.
pub async fn quota(
    State(state): State<AppState>,
    user: HawkUser,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let found = state.store.storage_usage(user.uid, pre).await?;
    let limit = super::quota(&state).map(kilobytes);
    SyncResponse::json(&(kilobytes(found.value), limit), found.last_modified)
}

/// `info/configuration`: the limits. Not authenticated, as on Mozilla's server: clients
/// read it before they hold a token for this node.
pub async fn configuration(State(state): State<AppState>) -> Result<SyncResponse, ApiError> {
    SyncResponse::json(&state.settings.limits, SyncTimestamp::ZERO)
}
