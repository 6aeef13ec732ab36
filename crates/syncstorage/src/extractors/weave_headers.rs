//! `X-Weave-Records`, `X-Weave-Bytes`, `X-Weave-Total-Records`, `X-Weave-Total-Bytes`: sizes
//! a client declares before sending, checked against the limits so that an oversized batch
//! is refused before anything is staged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use sync_proto::WeaveError;

use crate::error::ApiError;
use crate::headers::{
    X_WEAVE_BYTES, X_WEAVE_RECORDS_IN, X_WEAVE_TOTAL_BYTES, X_WEAVE_TOTAL_RECORDS,
};
use crate::state::AppState;

/// Proof that the declared sizes are within the limits.
#[derive(Debug, Clone, Copy)]
pub struct DeclaredSizes;

fn check(headers: &HeaderMap, name: &HeaderName, limit: u64) -> Result<(), ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(());
    };
    let declared: u32 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(WeaveError::Unknown, format!("{name} is not a count"))
        })?;
    if u64::from(declared) > limit {
        return Err(ApiError::bad_request(
            WeaveError::SizeLimitExceeded,
            format!("{name} {declared} over the limit {limit}"),
        ));
    }
    Ok(())
}

impl FromRequestParts<AppState> for DeclaredSizes {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let limits = &state.settings.limits;
        check(&parts.headers, &X_WEAVE_RECORDS_IN, limits.max_post_records)?;
        check(&parts.headers, &X_WEAVE_BYTES, limits.max_post_bytes)?;
        check(
            &parts.headers,
            &X_WEAVE_TOTAL_RECORDS,
            limits.max_total_records,
        )?;
        check(&parts.headers, &X_WEAVE_TOTAL_BYTES, limits.max_total_bytes)?;
        Ok(DeclaredSizes)
    }
}
