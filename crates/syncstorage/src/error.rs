//! The storage node's one error type and the one place it becomes a response.
//!
//! SyncStorage error bodies are a bare JSON integer, the Weave code. Statuses and codes
//! follow Mozilla's production server (see `docs/response-codes.md`), because clients were
//! written against it: a conflict is 503 with `Retry-After`, not 409; quota is 403/14.
//! Every refusal is logged here with its reason, which never reaches the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sync_proto::{SyncTimestamp, WeaveError};
use syncstorage_store::StoreError;

use crate::headers::X_LAST_MODIFIED;

/// Seconds a client should wait after a conflict before retrying.
const CONFLICT_RETRY_AFTER: &str = "10";

/// Why a request was refused.
#[derive(Debug)]
pub enum ApiError {
    /// A protocol error with its status, Weave code and a reason for the log.
    Weave {
        /// HTTP status.
        status: StatusCode,
        /// Weave code written as the body.
        code: WeaveError,
        /// What was wrong, for the log line.
        reason: String,
    },
    /// 304: the resource did not change since `X-If-Modified-Since`.
    NotModified(SyncTimestamp),
    /// 412: the resource changed since `X-If-Unmodified-Since`.
    PreconditionFailed(SyncTimestamp),
    /// 401 with a stale Hawk timestamp: tells the client the server's time so it can adjust.
    StaleTimestamp {
        /// The server's time in seconds.
        now: u64,
        /// A MAC of that time under the client's key, so the client can trust it.
        tsm: String,
    },
}

impl ApiError {
    /// 400 with a Weave code.
    pub fn bad_request(code: WeaveError, reason: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, code, reason)
    }

    /// 401 (body 0): the credentials were missing or refused.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::status(StatusCode::UNAUTHORIZED, WeaveError::Unknown, reason)
    }

    /// 404 (body 0).
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::status(StatusCode::NOT_FOUND, WeaveError::Unknown, reason)
    }

    /// 413/17: a body over `max_request_bytes`.
    pub fn payload_too_large(reason: impl Into<String>) -> Self {
        Self::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            WeaveError::SizeLimitExceeded,
            reason,
        )
    }

    /// Any status with a Weave code.
    pub fn status(status: StatusCode, code: WeaveError, reason: impl Into<String>) -> Self {
        ApiError::Weave {
            status,
            code,
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        use StatusCode as S;
        use WeaveError as W;
        let reason = error.to_string();
        match error {
            StoreError::NotModified { last_modified } => ApiError::NotModified(last_modified),
            StoreError::PreconditionFailed { last_modified } => {
                ApiError::PreconditionFailed(last_modified)
            }
            StoreError::NotFound => ApiError::status(S::NOT_FOUND, W::Unknown, reason),
            StoreError::BatchNotFound => ApiError::status(S::BAD_REQUEST, W::Unknown, reason),
            StoreError::BatchTooLarge => {
                ApiError::status(S::BAD_REQUEST, W::SizeLimitExceeded, reason)
            }
            StoreError::QuotaExceeded => ApiError::status(S::FORBIDDEN, W::OverQuota, reason),
            StoreError::Conflict => ApiError::status(S::SERVICE_UNAVAILABLE, W::Unknown, reason),
            StoreError::Backend(_) => {
                ApiError::status(S::INTERNAL_SERVER_ERROR, W::Unknown, reason)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Weave {
                status,
                code,
                reason,
            } => {
                if status.is_server_error() {
                    tracing::error!(status = status.as_u16(), code = code.code(), %reason, "request failed");
                } else {
                    tracing::info!(status = status.as_u16(), code = code.code(), %reason, "request refused");
                }
                let mut response = (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    code.code().to_string(),
                )
                    .into_response();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from_static(CONFLICT_RETRY_AFTER),
                    );
                }
                response
            }
            ApiError::NotModified(ts) => empty_with_last_modified(StatusCode::NOT_MODIFIED, ts),
            ApiError::PreconditionFailed(ts) => {
                tracing::info!(status = 412, last_modified = %ts, "precondition failed");
                empty_with_last_modified(StatusCode::PRECONDITION_FAILED, ts)
            }
            ApiError::StaleTimestamp { now, tsm } => {
                tracing::info!(status = 401, "Hawk timestamp outside the allowed window");
                let challenge =
                    format!("Hawk ts=\"{now}\", tsm=\"{tsm}\", error=\"Stale timestamp\"");
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/json")],
                    WeaveError::Unknown.code().to_string(),
                )
                    .into_response();
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                response
            }
        }
    }
}

fn empty_with_last_modified(status: StatusCode, ts: SyncTimestamp) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(&ts.to_string()) {
        response.headers_mut().insert(X_LAST_MODIFIED, value);
    }
    response
}
