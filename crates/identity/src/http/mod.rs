//! The provider's HTTP endpoints: the JWKS, and a token endpoint for password logins.
//!
//! The JWKS is what makes the provider an ordinary issuer to the token server. The token
//! endpoint is a deliberately small OAuth-style exchange, not a full OAuth server: the
//! account name and password come as HTTP Basic credentials, and an access token comes
//! back in an RFC 6749 §5.1 response. Every refusal is logged with its real reason (never
//! the password), while the client only learns that the credentials were wrong, so that
//! it cannot tell which account names exist.
//!
//! Password checks are argon2 (about 19 MiB and tens of milliseconds each) and run on
//! blocking threads; a semaphore caps how many run at once, so a burst of logins queues
//! instead of exhausting memory.

mod basic;
mod error;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::provider::Login;
use crate::token::validate_scope;
use crate::{IdentityProvider, SYNC_SCOPE};
use basic::Credentials;
use error::TokenError;

/// Token lifetime when the request names none, in seconds.
const DEFAULT_DURATION_SECS: u64 = 3600;

/// Longest token lifetime a request may ask for, in seconds.
const MAX_DURATION_SECS: u64 = 86_400;

/// How long verifiers may cache the JWKS.
const JWKS_CACHE_CONTROL: &str = "max-age=300";

/// The provider's routes, with `idp` as their state:
/// `GET /identity/jwks.json` and `POST /identity/v1/token`.
pub fn router(idp: IdentityProvider) -> Router {
    let logins = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let state = AppState {
        idp,
        logins: Arc::new(Semaphore::new(logins)),
    };
    Router::new()
        .route("/identity/jwks.json", get(jwks))
        .route("/identity/v1/token", post(token))
        .with_state(state)
}

#[derive(Clone)]
struct AppState {
    idp: IdentityProvider,
    /// One permit per password check allowed to run at once.
    logins: Arc<Semaphore>,
}

/// The optional JSON body of a token request.
#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    /// Space-separated scopes; Sync's if absent.
    scope: Option<String>,
    /// Lifetime in seconds, 1 to 86400; an hour if absent.
    duration: Option<u64>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, JWKS_CACHE_CONTROL)],
        Json(state.idp.jwks()),
    )
        .into_response()
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TokenError> {
    // The cheap checks come first, so a malformed request costs no password hashing.
    let (scope, duration) = parse_request(&body)?;
    let credentials = Credentials::from_headers(&headers)?;
    let permit = Arc::clone(&state.logins)
        .acquire_owned()
        .await
        .map_err(|error| TokenError::Internal(error.to_string()))?;
    let idp = state.idp.clone();
    let token_scope = scope.clone();
    let name = credentials.name.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match idp.login(&credentials.name, &credentials.password)? {
            Login::Accepted(account) => idp
                .issue_for(&account, &token_scope, Duration::from_secs(duration))
                .map(Ok),
            Login::NoSuchAccount => Ok(Err("no such account")),
            Login::NoPassword => Ok(Err("the account has no password")),
            Login::WrongPassword => Ok(Err("wrong password")),
        }
    })
    .await
    .map_err(|error| TokenError::Internal(format!("login task failed: {error}")))??;
    let access_token = outcome.map_err(|reason| TokenError::refused(name.clone(), reason))?;
    tracing::info!(account = ?name, scope, expires_in = duration, "issued access token");
    let body = TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: duration,
        scope,
    };
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}

/// The scope and lifetime in seconds a request asks for, with the defaults filled in.
fn parse_request(body: &[u8]) -> Result<(String, u64), TokenError> {
    let request: TokenRequest = if body.trim_ascii().is_empty() {
        TokenRequest::default()
    } else {
        serde_json::from_slice(body).map_err(|error| {
            TokenError::InvalidRequest(format!("the body is not a valid token request: {error}"))
        })?
    };
    let scope = request.scope.unwrap_or_else(|| SYNC_SCOPE.to_owned());
    validate_scope(&scope).map_err(|_| TokenError::InvalidScope(scope.clone()))?;
    let duration = request.duration.unwrap_or(DEFAULT_DURATION_SECS);
    if !(1..=MAX_DURATION_SECS).contains(&duration) {
        return Err(TokenError::InvalidRequest(format!(
            "duration must be between 1 and {MAX_DURATION_SECS} seconds"
        )));
    }
    Ok((scope, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_gets_defaults() {
        for body in [&b""[..], b"  \n", b"{}"] {
            let (scope, duration) = parse_request(body).unwrap();
            assert_eq!(scope, SYNC_SCOPE);
            assert_eq!(duration, DEFAULT_DURATION_SECS);
        }
    }

    #[test]
    fn body_sets_scope_and_duration() {
        let body = br#"{"scope": "profile", "duration": 120, "grant_type": "password"}"#;
        assert_eq!(parse_request(body).unwrap(), ("profile".to_owned(), 120));
        assert_eq!(parse_request(br#"{"duration": 86400}"#).unwrap().1, 86_400);
    }

    #[test]
    fn refuses_bad_bodies() {
        for body in [
            &br#"{"duration": 0}"#[..],
            br#"{"duration": 86401}"#,
            br#"{"duration": -5}"#,
            br#"{"duration": "60"}"#,
            b"not json",
            b"[]",
        ] {
            assert!(
                matches!(parse_request(body), Err(TokenError::InvalidRequest(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse_request(br#"{"scope": ""}"#),
            Err(TokenError::InvalidScope(_))
        ));
    }
}
