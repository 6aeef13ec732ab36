//! Token authentication: Hawk (MAC, payload hash, timestamp and nonce all checked) or the
//! `Bearer <prefix>_<id>` scheme of newer clients.
//!
//! Mozilla's server only looks up the Hawk `id` and never checks the MAC, so anyone who
//! sees a request can replay or alter it. Here a Hawk request must be fresh, unreplayed,
//! and MACed over its method, public URL and (when the client hashed it) its body with
//! the token's key. The Bearer scheme is a replayable credential by design; it is accepted
//! because PyFxA 0.9 and newer Firefox send it, and it is only as safe as TLS.
//!
//! Tokens are looked up by the SHA-256 of their id, so lookups reveal nothing through
//! timing, and MACs are compared in constant time (`sync_proto::hawk::verify_mac`).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::OriginalUri;
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use sync_proto::hawk::{self, HawkHeader};

use crate::ApiError;
use crate::onepw::{TokenKind, id_hash};
use crate::service::{AccountsService, now_ms};
use crate::store::TokenRecord;

/// Largest request body accepted, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Splits a request and reads its body, refusing one over [`MAX_BODY_BYTES`].
pub(crate) async fn read(request: Request) -> Result<(Parts, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let bytes = match BodyExt::collect(limited).await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(ApiError::RequestTooLarge),
    };
    Ok((parts, bytes))
}

/// The client's address: the connection's peer, or the first `X-Forwarded-For` entry when
/// configured to trust it.
pub(crate) fn client_address(service: &AccountsService, parts: &Parts) -> Option<IpAddr> {
    if service.inner.settings.trust_forwarded_for
        && let Some(first) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(first);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The `User-Agent`, shortened, for the list of attached clients.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(255).collect())
}

/// Authenticates the request with a token of `kind`; the token as stored. The token is
/// left in place: single-use tokens are taken by the handler once it is authenticated.
pub(crate) async fn authenticate(
    service: &AccountsService,
    parts: &Parts,
    body: &Bytes,
    kind: TokenKind,
) -> Result<TokenRecord, ApiError> {
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::InvalidToken("no Authorization header"))?;
    if let Some(rest) = authorization.strip_prefix("Bearer ") {
        let id = rest
            .trim()
            .strip_prefix(kind.bearer_prefix())
            .and_then(|rest| rest.strip_prefix('_'))
            .ok_or(ApiError::InvalidToken("Bearer token of another kind"))?;
        return lookup(service, id, kind).await;
    }
    let hawk_header = HawkHeader::parse(authorization)
        .map_err(|_| ApiError::InvalidToken("not Hawk or Bearer"))?;
    let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
    if hawk_header.ts.abs_diff(now) > service.inner.settings.hawk_skew_secs {
        return Err(ApiError::InvalidTimestamp(now));
    }
    let token = lookup(service, &hawk_header.id, kind).await?;
    if !mac_matches(service, parts, &hawk_header, &token.auth_key) {
        return Err(ApiError::InvalidSignature("Bad mac"));
    }
    if let Some(expected) = &hawk_header.hash {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !hawk::payload_hash_matches(expected, content_type, body) {
            return Err(ApiError::InvalidSignature("Payload is invalid"));
        }
    }
    if !service
        .inner
        .nonces
        .check_and_insert(&hawk_header.id, &hawk_header.nonce, hawk_header.ts)
    {
        return Err(ApiError::InvalidNonce);
    }
    Ok(token)
}

/// The stored token whose id is the hex string `id`.
async fn lookup(
    service: &AccountsService,
    id: &str,
    kind: TokenKind,
) -> Result<TokenRecord, ApiError> {
    let id = hex::decode(id)
        .ok()
        .filter(|id| id.len() == 32)
        .ok_or(ApiError::InvalidToken("malformed token id"))?;
    service
        .inner
        .store
        .token(&id_hash(&id), kind)
        .await?
        .ok_or(ApiError::InvalidToken("unknown or destroyed token"))
}

/// Checks the MAC against the public URL, then against the request as received.
fn mac_matches(service: &AccountsService, parts: &Parts, header: &HawkHeader, key: &[u8]) -> bool {
    let original = parts.extensions.get::<OriginalUri>().map(|uri| &uri.0);
    let request = hawk::ReceivedRequest::from_parts(parts, original);
    hawk::verify_mac_behind(key, header, &service.inner.public_url, &request)
}
