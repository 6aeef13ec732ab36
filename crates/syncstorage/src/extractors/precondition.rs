//! `X-If-Modified-Since` and `X-If-Unmodified-Since`.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sync_proto::{SyncTimestamp, WeaveError};
use syncstorage_store::Precondition;

use crate::error::ApiError;
use crate::headers::{X_IF_MODIFIED_SINCE, X_IF_UNMODIFIED_SINCE};

/// The request's condition; both headers at once, or an unreadable value, is a 400.
#[derive(Debug, Clone, Copy)]
pub struct Preconditions(pub Precondition);

fn read(
    headers: &HeaderMap,
    name: &axum::http::HeaderName,
) -> Result<Option<SyncTimestamp>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request(WeaveError::Unknown, format!("{name} is not ASCII")))?;
    SyncTimestamp::parse_seconds(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request(WeaveError::Unknown, format!("{name}: {e}")))
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let modified = read(&parts.headers, &X_IF_MODIFIED_SINCE)?;
        let unmodified = read(&parts.headers, &X_IF_UNMODIFIED_SINCE)?;
        let precondition = match (modified, unmodified) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    WeaveError::Unknown,
                    "X-If-Modified-Since and X-If-Unmodified-Since together",
                ));
            }
            (Some(since), None) => Precondition::IfModifiedSince(since),
            (None, Some(since)) => Precondition::IfUnmodifiedSince(since),
            (None, None) => Precondition::None,
        };
        Ok(Preconditions(precondition))
    }
}
