//! `DELETE /1.5/{uid}` and `DELETE /1.5/{uid}/storage`: delete all of a user's data.

use axum::extract::State;

use super::SyncResponse;
use crate::auth::HawkUser;
use crate::error::ApiError;
use crate::extractors::Preconditions;
use crate::state::AppState;

/// Deletes every collection; the body is JSON `null`, as on Mozilla's server.
pub async fn delete_all(
    State(state): State<AppState>,
    user: HawkUser,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let before = state.store.delete_storage(user.uid, pre).await?;
    tracing::info!(uid = user.uid, "deleted all storage");
    Ok(SyncResponse::raw(
        b"null".to_vec(),
        "application/json",
        before,
    ))
}
