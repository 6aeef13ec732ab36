//! Kinto's error body, written in exactly one place.
//!
//! Every non-2xx answer is `{code, errno, error, message, info, details?}`; `errno` is the
//! stable number clients branch on (Kinto's table, `docs/response-codes.md`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use settings_store::StoreError;

/// Where Kinto documents its errors.
const INFO_URL: &str = "https://kinto.readthedocs.io/en/latest/api/1.x/errors.html";

/// Kinto's errno values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Errno {
    /// 401, no credentials.
    MissingAuth = 104,
    /// 401, credentials refused (not sent: as in Kinto, credentials that do not
    /// authenticate make an anonymous caller, refused with 104 where that is not enough).
    InvalidAuth = 105,
    /// 400, body is not JSON.
    InvalidJson = 106,
    /// 400, a parameter is invalid.
    InvalidParameter = 107,
    /// 400, a parameter is missing.
    MissingParameter = 108,
    /// 400, the posted data is invalid.
    InvalidPostedData = 109,
    /// 404, an invalid id.
    InvalidResourceId = 110,
    /// 404, no such resource.
    MissingResource = 111,
    /// 413, body too large.
    RequestTooLarge = 113,
    /// 412, modified meanwhile.
    ModifiedMeanwhile = 114,
    /// 405.
    MethodNotAllowed = 115,
    /// 403.
    Forbidden = 121,
    /// 409, a constraint or a concurrent write.
    Conflict = 122,
    /// 503.
    Backend = 201,
    /// 500.
    Undefined = 999,
}

/// A refused or failed request.
#[derive(Debug, Clone)]
pub struct KintoError {
    /// HTTP status.
    pub status: StatusCode,
    /// Kinto's errno.
    pub errno: Errno,
    /// What the client is told.
    pub message: String,
    /// Validation details, or `{existing}` on a 412.
    pub details: Option<Details>,
}

/// The `details` of an error body.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Details {
    /// Which input was wrong.
    Validation([Invalid; 1]),
    /// The object as it is now (412).
    Existing {
        /// The current object, or null.
        existing: Option<Value>,
    },
    /// Which object is missing (404): kinto-http and Kinto Admin read these to tell a
    /// missing bucket from a missing collection.
    Missing {
        /// Its id.
        id: String,
        /// `bucket`, `collection`, `group`, `record` or `account`.
        resource_name: String,
    },
}

/// One invalid input.
#[derive(Debug, Clone, Serialize)]
pub struct Invalid {
    /// `body`, `querystring`, `path` or `header`.
    pub location: String,
    /// The field.
    pub name: String,
    /// What is wrong.
    pub description: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    errno: u16,
    error: &'a str,
    message: &'a str,
    info: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
}

impl KintoError {
    /// An error with a message.
    pub fn new(status: StatusCode, errno: Errno, message: impl Into<String>) -> Self {
        KintoError {
            status,
            errno,
            message: message.into(),
            details: None,
        }
    }

    /// 400 invalid parameter, naming it.
    pub fn invalid_parameter(location: &str, name: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        KintoError {
            details: Some(Details::Validation([Invalid {
                location: location.into(),
                name: name.into(),
                description: description.clone(),
            }])),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                Errno::InvalidParameter,
                format!("{name} in {location}: {description}"),
            )
        }
    }

    /// 400 for a body that does not validate: errno 107 with the field in `details`, as
    /// Kinto 26.5 answers every body it refuses (its errno 109 goes unused).
    pub fn invalid_data(name: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        KintoError {
            details: Some(Details::Validation([Invalid {
                location: "body".into(),
                name: name.into(),
                description: description.clone(),
            }])),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                Errno::InvalidParameter,
                format!("{name} in body: {description}"),
            )
        }
    }

    /// 404 for an object that does not exist, as Kinto answers it: errno 110 with the
    /// object's id and kind in `details`.
    pub fn missing(resource_name: &str, id: &str) -> Self {
        KintoError {
            details: Some(Details::Missing {
                id: id.to_owned(),
                resource_name: resource_name.to_owned(),
            }),
            ..Self::new(
                StatusCode::NOT_FOUND,
                Errno::InvalidResourceId,
                format!("{resource_name} {id:?} not found"),
            )
        }
    }

    /// 404 for a path no route serves.
    pub fn unknown_path() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Errno::MissingResource,
            "The resource you are looking for could not be found.",
        )
    }

    /// 404 missing resource.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Errno::MissingResource,
            format!("{what} not found"),
        )
    }

    /// 403.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Errno::Forbidden,
            "This user cannot access this resource.",
        )
    }

    /// The refusal of something `caller` may not do: 401 (errno 104, with
    /// `WWW-Authenticate`) to an anonymous caller, so clients such as kinto-http know to ask
    /// for credentials, and 403 to an authenticated one, as Kinto answers.
    pub fn denied(caller: &crate::auth::Caller) -> Self {
        if caller.user_id.is_none() {
            Self::unauthorized(Errno::MissingAuth)
        } else {
            Self::forbidden()
        }
    }

    /// 401 (no credentials, or refused ones).
    pub fn unauthorized(errno: Errno) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            errno,
            "Please authenticate yourself to use this endpoint.",
        )
    }

    /// 412 with the current object.
    pub fn modified(existing: Option<Value>) -> Self {
        KintoError {
            details: Some(Details::Existing { existing }),
            ..Self::new(
                StatusCode::PRECONDITION_FAILED,
                Errno::ModifiedMeanwhile,
                "Resource was modified meanwhile",
            )
        }
    }
}

impl From<StoreError> for KintoError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => KintoError::not_found("object"),
            StoreError::PreconditionFailed { existing } => {
                KintoError::modified(existing.map(|o| o.to_json()))
            }
            StoreError::Conflict => KintoError::new(
                StatusCode::CONFLICT,
                Errno::Conflict,
                "Conflict: a concurrent write; retry",
            ),
            StoreError::Backend(reason) => {
                tracing::error!(%reason, "settings store failed");
                KintoError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Errno::Backend,
                    "Service temporary unavailable due to overloading or maintenance, please retry later.",
                )
            }
        }
    }
}

impl IntoResponse for KintoError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), errno = self.errno as u16, message = %self.message, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), errno = self.errno as u16, message = %self.message, "request refused");
        }
        let body = Body {
            code: self.status.as_u16(),
            errno: self.errno as u16,
            error: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            info: INFO_URL,
            details: self.details.as_ref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Realm\""),
            );
        }
        if self.status.is_server_error() || self.status == StatusCode::CONFLICT {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
