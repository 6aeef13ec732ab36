//! Request bodies of PUT (one record) and POST (a list of records).
//!
//! The body is read only up to `max_request_bytes` (a declared `Content-Length` above it is
//! refused before any byte is read, by the router's limit layer), then parsed. A POST keeps
//! going past bad records: each goes to `failed` with its reason and the rest are written.
//! What makes the whole request unusable (not JSON, not a list, a record with no id, the same
//! id twice) refuses it whole with 400/8, as Mozilla's server does.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::Value;
use sync_proto::bso::{self, BsoError};
use sync_proto::{BsoUpdate, ServerLimits, WeaveError};

use crate::auth::read_limited;
use crate::error::ApiError;
use crate::state::AppState;

/// Reason given for records past `max_post_records`.
const RETRY_BSO: &str = "retry bso";
/// Reason given for records past a byte limit.
const RETRY_BYTES: &str = "retry bytes";

/// The records of a POST, sorted into those to write and those refused.
#[derive(Debug, Clone, Default)]
pub struct PostBody {
    /// Valid records within the limits, in request order.
    pub valid: Vec<BsoUpdate>,
    /// Refused records: id and reason.
    pub failed: BTreeMap<String, String>,
}

/// The record of a PUT, with its id still to be taken from the URL.
#[derive(Debug, Clone)]
pub struct PutBody(pub Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Newlines,
}

fn body_format(request: &Request) -> Result<BodyFormat, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "text/plain" => Ok(BodyFormat::Json),
        "application/newlines" => Ok(BodyFormat::Newlines),
        _ => Err(ApiError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WeaveError::Unknown,
            format!("unsupported Content-Type {content_type:?}"),
        )),
    }
}

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::bad_request(WeaveError::InvalidWbo, reason)
}

/// Splits a parsed list of records into valid and failed, enforcing the POST limits.
pub fn sort_records(values: Vec<Value>, limits: &ServerLimits) -> Result<PostBody, ApiError> {
    let mut seen = HashSet::new();
    let mut body = PostBody::default();
    let mut post_bytes = 0u64;
    for value in values {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("a record is not a JSON object"))?;
        let id = match object.get("id") {
            Some(Value::String(id)) => id.clone(),
            _ => return Err(invalid("a record has no string id")),
        };
        if !seen.insert(id.clone()) {
            return Err(invalid(format!("record id {id:?} appears twice")));
        }
        let update = match bso::parse_bso(&value, None) {
            Ok(update) => update,
            Err(
                error @ (BsoError::InvalidId
                | BsoError::WrongType(_)
                | BsoError::OutOfRange(_)
                | BsoError::UnknownField(_)),
            ) => {
                body.failed.insert(id, error.to_string());
                continue;
            }
            Err(error) => return Err(invalid(error.to_string())),
        };
        let size = update.payload_len() as u64;
        if body.valid.len() as u64 >= limits.max_post_records {
            body.failed.insert(id, RETRY_BSO.to_owned());
        } else if size > limits.max_record_payload_bytes
            || post_bytes + size > limits.max_post_bytes
        {
            body.failed.insert(id, RETRY_BYTES.to_owned());
        } else {
            post_bytes += size;
            body.valid.push(update);
        }
    }
    Ok(body)
}

fn parse_values(bytes: &[u8], format: BodyFormat) -> Result<Vec<Value>, ApiError> {
    match format {
        BodyFormat::Json => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(values)) => Ok(values),
            Ok(_) => Err(invalid("body is not a JSON list")),
            Err(e) => Err(invalid(format!("body is not JSON: {e}"))),
        },
        BodyFormat::Newlines => {
            let text = std::str::from_utf8(bytes).map_err(|_| invalid("body is not UTF-8"))?;
            text.lines()
                .map(|line| {
                    serde_json::from_str::<Value>(line)
                        .map_err(|e| invalid(format!("a line is not JSON: {e}")))
                })
                .collect()
        }
    }
}

impl FromRequest<AppState> for PostBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.settings.limits;
        let format = body_format(&request)?;
        let bytes = read_limited(request.into_body(), limits.max_request_bytes).await?;
        sort_records(parse_values(&bytes, format)?, &limits)
    }
}

impl FromRequest<AppState> for PutBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.settings.limits;
        if body_format(&request)? == BodyFormat::Newlines {
            return Err(invalid("a PUT body must be one JSON object"));
        }
        let bytes = read_limited(request.into_body(), limits.max_request_bytes).await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value @ Value::Object(_)) => Ok(PutBody(value)),
            Ok(_) => Err(invalid("PUT body is not a JSON object")),
            Err(e) => Err(invalid(format!("PUT body is not JSON: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> ServerLimits {
        ServerLimits {
            max_post_records: 2,
            max_post_bytes: 10,
            max_record_payload_bytes: 6,
            ..ServerLimits::default()
        }
    }

    #[test]
    fn sorts_valid_and_failed() {
        let values = vec![
            json!({"id": "a", "payload": "12345"}),
            json!({"id": "b", "payload": "1234567"}),
            json!({"id": "c", "payload": "123456"}),
            json!({"id": "d", "sortindex": "x"}),
            json!({"id": "e", "bogus": 1}),
            json!({"id": "f"}),
            json!({"id": "g"}),
        ];
        let body = sort_records(values, &limits()).unwrap();
        let ids: Vec<_> = body.valid.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "f"]);
        assert_eq!(body.failed["b"], "retry bytes");
        assert_eq!(body.failed["c"], "retry bytes");
        assert_eq!(body.failed["d"], "invalid json");
        assert_eq!(body.failed["e"], "unknown field bogus");
        assert_eq!(body.failed["g"], "retry bso");
    }

    #[test]
    fn refuses_whole_requests() {
        for values in [
            vec![json!({"id": "a"}), json!({"id": "a"})],
            vec![json!({"payload": "x"})],
            vec![json!({"id": 5})],
            vec![json!("x")],
        ] {
            assert!(sort_records(values, &limits()).is_err());
        }
    }

    #[test]
    fn reads_newlines() {
        assert_eq!(parse_values(b"", BodyFormat::Newlines).unwrap().len(), 0);
        assert_eq!(
            parse_values(b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n", BodyFormat::Newlines)
                .unwrap()
                .len(),
            2
        );
        assert!(parse_values(b"\n", BodyFormat::Newlines).is_err());
        assert!(parse_values(b"{}", BodyFormat::Json).is_err());
        assert!(parse_values(b"", BodyFormat::Json).is_err());
    }
}
