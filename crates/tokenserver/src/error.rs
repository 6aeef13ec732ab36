//! The token server's one error type and the one place it becomes a response.
//!
//! The body is Cornice's shape, as Mozilla's token servers (Python and Rust) answer:
//! `{"status": "<status>", "errors": [{"location", "name", "description"}]}`. Clients look at
//! `status` (`invalid-generation`, `invalid-client-state`, ...) to decide what to do, so every
//! refusal names the same status as the reference. The reason for the log stays here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Where the problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// In the request body or the credentials.
    Body,
    /// In a header.
    Header,
    /// In the URL.
    Url,
    /// Inside the server.
    Internal,
}

/// A refused or failed token request.
#[derive(Debug, Clone)]
pub struct TokenServerError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body's `status` string.
    pub status_text: &'static str,
    /// Where the problem was found.
    pub location: Location,
    /// The field concerned (often empty).
    pub name: String,
    /// What the client is told.
    pub description: String,
    /// What the log says (never sent).
    pub reason: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'a str,
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    location: Location,
    name: &'a str,
    description: &'a str,
}

impl TokenServerError {
    fn new(
        status: StatusCode,
        status_text: &'static str,
        location: Location,
        description: &str,
        reason: impl Into<String>,
    ) -> Self {
        TokenServerError {
            status,
            status_text,
            location,
            name: String::new(),
            description: description.to_owned(),
            reason: reason.into(),
        }
    }

    /// 401 `error` / body / "Unauthorized".
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "error",
            Location::Body,
            "Unauthorized",
            reason,
        )
    }

    /// 401 `error` / body / "Unsupported": an authorization scheme other than Bearer.
    pub fn unsupported_scheme(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "error",
            Location::Body,
            "Unsupported",
            reason,
        )
    }

    /// 401 `invalid-credentials`: the access token or X-KeyID is not acceptable.
    pub fn invalid_credentials(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            Location::Body,
            "Unauthorized",
            reason,
        )
    }

    /// 401 `invalid-credentials`, saying why: the issuer that must verify the opaque token
    /// could not be reached in time. Clients see a refusal, not a hang or a 5xx, as at
    /// Mozilla; the description tells a person what happened.
    pub fn issuer_unreachable(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            Location::Body,
            "Unauthorized: the token's issuer could not be reached to verify it",
            reason,
        )
    }

    /// 401 `invalid-key-id`: no X-KeyID header.
    pub fn missing_key_id() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-key-id",
            Location::Header,
            "Missing X-KeyID header",
            "no X-KeyID header",
        )
    }

    /// 400 `error` / header / X-Client-State: not a valid client state.
    pub fn invalid_client_state_header(reason: impl Into<String>) -> Self {
        TokenServerError {
            name: "X-Client-State".into(),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "error",
                Location::Header,
                "Invalid client state value",
                reason,
            )
        }
    }

    /// 401 `invalid-client-state` / body: X-Client-State disagrees with X-KeyID.
    pub fn client_state_mismatch(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-client-state",
            Location::Body,
            "Unauthorized",
            reason,
        )
    }

    /// 401 `invalid-client-state` / header / X-Client-State, with the reference's wording.
    pub fn unacceptable_client_state(what: &str) -> Self {
        TokenServerError {
            name: "X-Client-State".into(),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid-client-state",
                Location::Header,
                &format!("Unacceptable client-state value {what}"),
                format!("client state refused: {what}"),
            )
        }
    }

    /// 401 `invalid-generation`.
    pub fn invalid_generation(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-generation",
            Location::Body,
            "Unauthorized",
            reason,
        )
    }

    /// 401 `invalid-keysChangedAt`.
    pub fn invalid_keys_changed_at(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid-keysChangedAt",
            Location::Body,
            "Unauthorized",
            reason,
        )
    }

    /// 403 `new-users-disabled`.
    pub fn new_users_disabled() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "new-users-disabled",
            Location::Body,
            "New users are not allowed",
            "a new user asked for a token while allow_new_users is false",
        )
    }

    /// 404 `error` / url: unknown application or version.
    pub fn unsupported(name: &str, description: &str) -> Self {
        TokenServerError {
            name: name.to_owned(),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "error",
                Location::Url,
                description,
                format!("{description}: {name}"),
            )
        }
    }

    /// 503 `internal-error`: no node can take the user.
    pub fn no_node() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal-error",
            Location::Internal,
            "Server error",
            "no storage node can take a new user",
        )
    }

    /// 500 `internal-error`.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            Location::Internal,
            "Server error",
            reason,
        )
    }
}

impl From<tokenserver_store::TokenStoreError> for TokenServerError {
    fn from(error: tokenserver_store::TokenStoreError) -> Self {
        use tokenserver_store::TokenStoreError as E;
        match error {
            E::NoNodeAvailable => TokenServerError::no_node(),
            E::Conflict => TokenServerError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..TokenServerError::internal("concurrent update of a user record")
            },
            other => TokenServerError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for TokenServerError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = self.status_text, reason = %self.reason, "token request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), error = self.status_text, reason = %self.reason, "token request refused");
        }
        let body = ErrorBody {
            status: self.status_text,
            errors: [ErrorEntry {
                location: self.location,
                name: &self.name,
                description: &self.description,
            }],
        };
        (self.status, Json(body)).into_response()
    }
}
