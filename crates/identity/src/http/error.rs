//! Token endpoint errors, and the one place they become OAuth error responses
//! (RFC 6749 §5.2) and log lines.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::IdentityError;

/// The `WWW-Authenticate` challenge sent with every 401.
const CHALLENGE: &str = r#"Basic realm="syncstack""#;

/// What the client is told about any refused login, whatever the real reason.
const REFUSED: &str = "incorrect account name or password";

/// Why a token request failed.
#[derive(Debug)]
pub(super) enum TokenError {
    /// 401: missing, malformed or wrong credentials.
    InvalidGrant {
        /// The account name tried, if the credentials could be read.
        account: Option<String>,
        /// The real reason, for the log only.
        reason: &'static str,
        /// What the client is told.
        description: &'static str,
    },
    /// 400: the body could not be used.
    InvalidRequest(String),
    /// 400: the requested scope is malformed.
    InvalidScope(String),
    /// 500: something broke; the detail is logged, not sent.
    Internal(String),
}

impl TokenError {
    /// 401 for credentials that could not be read.
    pub(super) fn bad_credentials(reason: &'static str) -> Self {
        TokenError::InvalidGrant {
            account: None,
            reason,
            description: reason,
        }
    }

    /// 401 for a login refused for `reason`; the client is not told which.
    pub(super) fn refused(account: String, reason: &'static str) -> Self {
        TokenError::InvalidGrant {
            account: Some(account),
            reason,
            description: REFUSED,
        }
    }
}

impl From<IdentityError> for TokenError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::InvalidScope(scope) => TokenError::InvalidScope(scope),
            IdentityError::InvalidDuration => TokenError::InvalidRequest(error.to_string()),
            other => TokenError::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: String,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (status, error, description) = match self {
            TokenError::InvalidGrant {
                account,
                reason,
                description,
            } => {
                // Debug formatting escapes whatever the client put in the name.
                tracing::info!(status = 401, account = ?account, reason, "token request refused");
                (
                    StatusCode::UNAUTHORIZED,
                    "invalid_grant",
                    description.to_owned(),
                )
            }
            TokenError::InvalidRequest(description) => {
                tracing::info!(status = 400, reason = %description, "token request refused");
                (StatusCode::BAD_REQUEST, "invalid_request", description)
            }
            TokenError::InvalidScope(scope) => {
                tracing::info!(status = 400, scope = ?scope, "token request refused: invalid scope");
                let description = "scope must be space-separated scope tokens".to_owned();
                (StatusCode::BAD_REQUEST, "invalid_scope", description)
            }
            TokenError::Internal(detail) => {
                tracing::error!(status = 500, %detail, "token request failed");
                let description = "internal error".to_owned();
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    description,
                )
            }
        };
        let body = ErrorBody {
            error,
            error_description: description,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        response
    }
}
