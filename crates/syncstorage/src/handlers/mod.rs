//! Handlers, one module per URL segment. Each takes validated input from the extractors,
//! makes one store call and shapes the typed response; none builds an error body.

pub mod bso;
pub mod collection;
pub mod dockerflow;
pub mod info;
pub mod storage;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sync_proto::SyncTimestamp;
use syncstorage_store::{WriteBsos, WriteOutcome};

use crate::error::ApiError;
use crate::headers::{X_LAST_MODIFIED, X_WEAVE_QUOTA_REMAINING};
use crate::state::AppState;

/// A JSON response with `X-Last-Modified` and any extra headers.
pub(crate) struct SyncResponse {
    status: StatusCode,
    body: Vec<u8>,
    content_type: &'static str,
    headers: HeaderMap,
}

impl SyncResponse {
    /// 200 with `value` as JSON.
    pub fn json<T: Serialize>(value: &T, last_modified: SyncTimestamp) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| {
            ApiError::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                sync_proto::WeaveError::Unknown,
                e.to_string(),
            )
        })?;
        Ok(Self::raw(body, "application/json", last_modified))
    }

    /// 200 with a body already encoded.
    pub fn raw(body: Vec<u8>, content_type: &'static str, last_modified: SyncTimestamp) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(X_LAST_MODIFIED, header_value(&last_modified.to_string()));
        SyncResponse {
            status: StatusCode::OK,
            body,
            content_type,
            headers,
        }
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        self.headers.insert(name, header_value(value));
        self
    }

    /// Adds `X-Weave-Quota-Remaining` when quotas are enforced.
    pub fn with_quota(self, state: &AppState, outcome: &WriteOutcome) -> Self {
        match outcome.usage_bytes {
            Some(used) if state.settings.quota_enabled => {
                let remaining = state.settings.limits.max_quota_limit.saturating_sub(used) / 1024;
                self.with_header(X_WEAVE_QUOTA_REMAINING, &remaining.to_string())
            }
            _ => self,
        }
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl IntoResponse for SyncResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        response.headers_mut().extend(self.headers);
        response
    }
}

/// A stored record in its wire form.
pub(crate) fn wire(bso: &syncstorage_store::Bso) -> sync_proto::bso::BsoOut<'_> {
    sync_proto::bso::BsoOut {
        id: &bso.id,
        modified: bso.modified,
        payload: &bso.payload,
        sortindex: bso.sortindex,
    }
}

/// The quota to enforce on a write, if any.
pub(crate) fn quota(state: &AppState) -> Option<u64> {
    state
        .settings
        .quota_enabled
        .then_some(state.settings.limits.max_quota_limit)
}

/// Refuses the known-bad `crypto/keys` payload that a buggy client once uploaded (an all-zero
/// IV), as Mozilla's server does, so that it cannot overwrite good keys.
pub(crate) fn refuse_known_bad_payload(write: &WriteBsos) -> Result<(), ApiError> {
    if write.collection != "crypto" {
        return Ok(());
    }
    for item in &write.items {
        if let sync_proto::Patch::Set(payload) = &item.payload
            && is_known_bad_crypto_payload(payload)
        {
            return Err(ApiError::bad_request(
                sync_proto::WeaveError::InvalidWbo,
                "known-bad crypto payload (all-zero IV)",
            ));
        }
    }
    Ok(())
}

fn is_known_bad_crypto_payload(payload: &str) -> bool {
    const MARKER: &str = "IV\":";
    const ZERO_IV: &str = "\"AAAAAAAAAAAAAAAAAAAAAA==";
    payload.match_indices(MARKER).any(|(at, _)| {
        payload[at + MARKER.len()..]
            .trim_start_matches(|c: char| c.is_whitespace())
            .starts_with(ZERO_IV)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_the_zero_iv() {
        assert!(is_known_bad_crypto_payload(
            r#"{"IV": "AAAAAAAAAAAAAAAAAAAAAA==", "x": 1}"#
        ));
        assert!(is_known_bad_crypto_payload(
            r#"{"IV":"AAAAAAAAAAAAAAAAAAAAAA=="}"#
        ));
        assert!(!is_known_bad_crypto_payload(
            r#"{"IV": "AAAAAAAAAAAAAAAAAAAAAB=="}"#
        ));
    }
}
