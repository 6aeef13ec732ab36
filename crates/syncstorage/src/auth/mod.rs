//! Hawk authentication of storage requests, as route middleware.
//!
//! Authentication runs after routing (an unknown path is a 404 whoever asks) and before any
//! other validation, in the order of Mozilla's server: header, token signature, expiry,
//! node, timestamp window, MAC, payload hash, nonce, then the URL's uid against the token's.
//! The verified identity is handed to handlers as a request extension, read by the
//! [`HawkUser`] extractor.
//!
//! The MAC is checked against the node's *public* URL (host, port and path prefix), not
//! against whatever the request line says, because that is what the client signed: behind
//! a reverse proxy that strips a path prefix or changes the port, the public URL is still
//! right (Mozilla's server fails here, syncstorage-rs issue #1217). The request's own
//! `Host` and path are tried second, for clients that reach the node directly.

mod nonce;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sync_proto::WeaveError;
use sync_proto::hawk::{self, HawkHeader};
use sync_proto::token;

pub use nonce::NonceCache;

use crate::error::ApiError;
use crate::state::AppState;

/// The user a request was authenticated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HawkUser {
    /// The uid of the token, equal to the URL's.
    pub uid: u64,
}

impl<S: Send + Sync> FromRequestParts<S> for HawkUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<HawkUser>()
            .copied()
            .ok_or_else(|| ApiError::unauthorized("route is not behind Hawk authentication"))
    }
}

/// Middleware: verifies the request's Hawk credentials or refuses it.
pub async fn require_hawk(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match authenticate(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn authenticate(state: &AppState, request: Request) -> Result<Request, ApiError> {
    let settings = &state.settings;
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    // Mozilla's server only routes numeric uids, so anything else is a 404 for anyone.
    let url_uid = path_uid(&path)
        .ok_or_else(|| ApiError::not_found(format!("no numeric uid in path {path}")))?;
    let header_value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("no Authorization header"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    let hawk_header = HawkHeader::parse(header_value)
        .map_err(|e| ApiError::unauthorized(format!("bad Hawk header: {e}")))?;
    let (claims, key) = token::verify(&settings.master_secret, &hawk_header.id)
        .map_err(|e| ApiError::unauthorized(format!("token refused: {e}")))?;

    let now = unix_now();
    let grace = if is_info_collections(&path) {
        settings.expired_token_grace.as_secs_f64()
    } else {
        0.0
    };
    if claims.expires.round() + grace <= now as f64 {
        return Err(ApiError::unauthorized(format!(
            "token for uid {} expired",
            claims.uid
        )));
    }
    if !token::same_node(&claims.node, settings.public_url.as_str()) {
        return Err(ApiError::unauthorized(format!(
            "token for node {} presented to {}",
            claims.node, settings.public_url
        )));
    }
    let skew = settings.hawk_skew.as_secs();
    if hawk_header.ts.abs_diff(now) > skew {
        return Err(ApiError::StaleTimestamp {
            now,
            tsm: hawk::timestamp_mac(key.as_bytes(), now),
        });
    }
    if !mac_matches(state, &parts, &hawk_header, key.as_bytes()) {
        return Err(ApiError::unauthorized("Hawk MAC does not match"));
    }

    let body = match &hawk_header.hash {
        Some(expected) => {
            let bytes = read_limited(body, settings.limits.max_request_bytes).await?;
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !hawk::payload_hash_matches(expected, content_type, &bytes) {
                return Err(ApiError::unauthorized(
                    "Hawk payload hash does not match the body",
                ));
            }
            Body::from(bytes)
        }
        None => body,
    };

    if !state
        .nonces
        .check_and_insert(&hawk_header.id, &hawk_header.nonce, hawk_header.ts)
    {
        return Err(ApiError::unauthorized("Hawk nonce replayed"));
    }
    if url_uid != claims.uid {
        return Err(ApiError::bad_request(
            WeaveError::Unknown,
            format!("token uid {} does not match URL uid {url_uid}", claims.uid),
        ));
    }
    parts.extensions.insert(HawkUser { uid: claims.uid });
    Ok(Request::from_parts(parts, body))
}

/// Checks the MAC against the public URL, then against the request as received.
fn mac_matches(state: &AppState, parts: &Parts, header: &HawkHeader, key: &[u8]) -> bool {
    let original = parts.extensions.get::<OriginalUri>().map(|uri| &uri.0);
    let request = hawk::ReceivedRequest::from_parts(parts, original);
    hawk::verify_mac_behind(key, header, &state.settings.public_url, &request)
}

/// Reads a body, refusing it with 413 as soon as it passes `limit` bytes.
pub async fn read_limited(body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(
            ApiError::payload_too_large(format!("request body over {limit} bytes")),
        ),
        Err(error) => Err(ApiError::bad_request(
            WeaveError::Unknown,
            format!("could not read the request body: {error}"),
        )),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The uid segment of `/1.5/{uid}/...`.
fn path_uid(path: &str) -> Option<u64> {
    let segment = path.strip_prefix("/1.5/")?.split('/').next()?;
    if segment.is_empty() || segment.len() > 10 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

fn is_info_collections(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    matches!(
        (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next()
        ),
        (
            Some("1.5"),
            Some(_),
            Some("info"),
            Some("collections"),
            None
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_uid_segment() {
        assert_eq!(path_uid("/1.5/42/info/collections"), Some(42));
        assert_eq!(path_uid("/1.5/42"), Some(42));
        assert_eq!(path_uid("/1.5/x/storage"), None);
        assert!(is_info_collections("/1.5/1/info/collections"));
        assert!(!is_info_collections("/1.5/1/info/collections/x"));
        assert!(!is_info_collections("/1.5/1/info/quota"));
    }
}
