//! The service's one error type and the one place it becomes Mozilla's error body,
//! `{code, errno, error, message}` (plus the fields some errors add, such as `email`).
//!
//! Errnos are Mozilla's: the auth server's for account, session and token-auth errors, the
//! OAuth server's (which reuse small numbers) for the OAuth endpoints, because that is
//! what Firefox and PyFxA were written against. No error carries `Retry-After` except
//! throttling: one `Retry-After` puts Firefox's account client into backoff for every
//! request, so a permanent refusal must never send it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::store::StoreError;

/// Why a request was refused.
#[derive(Debug)]
pub enum ApiError {
    /// 400/101: `account/create` for an address that has an account.
    AccountExists(String),
    /// 400/102: no account has this address (or uid).
    UnknownAccount(String),
    /// 400/103: wrong `authPW`.
    IncorrectPassword(String),
    /// 400/120: wrong password, and the address differs from the account's in case only;
    /// the client retries with the account's spelling (its stretch salt).
    IncorrectEmailCase(String),
    /// 400/106: the body is not JSON, or not an object.
    InvalidJson,
    /// 400/107: a parameter has the wrong shape (the reason is logged and sent).
    InvalidParameter(String),
    /// 400/108: a required parameter is missing.
    MissingParameter(&'static str),
    /// 401/109: the Hawk MAC or payload hash does not verify.
    InvalidSignature(&'static str),
    /// 401/110: no such token, a destroyed one, or no credentials at all.
    InvalidToken(&'static str),
    /// 401/111: the Hawk timestamp is outside the window; carries the server time.
    InvalidTimestamp(u64),
    /// 401/115: a Hawk nonce seen before (a replay).
    InvalidNonce,
    /// 413/113: the body is larger than the limit.
    RequestTooLarge,
    /// 429/114: too many failed logins; carries the seconds to wait.
    Throttled(u64),
    /// 400/123: the device id names no device of this account.
    UnknownDevice,
    /// 403/202: a feature this server does not offer (push, device commands, sign-up
    /// when closed); carries the reason.
    NotSupported(&'static str),
    /// OAuth 400/101: unknown `client_id`.
    UnknownClient(String),
    /// OAuth 400/105: unknown or already used authorization code.
    UnknownCode,
    /// OAuth 400/106: the code was issued to another client.
    MismatchCode,
    /// OAuth 400/107: the code expired.
    ExpiredCode,
    /// OAuth 400/108: an access token that is not ours, malformed, or for another audience.
    OAuthInvalidToken(&'static str),
    /// OAuth 400/109: a malformed OAuth request parameter.
    OAuthInvalidParameter(String),
    /// OAuth 400/114: scopes the client may not have.
    InvalidScopes(String),
    /// OAuth 400/115: an expired access token.
    ExpiredToken,
    /// OAuth 400/117: the PKCE verifier does not match the challenge.
    MismatchCodeChallenge,
    /// OAuth 400/118: a public client without PKCE.
    MissingPkce,
    /// OAuth 400/121: an unsupported `grant_type`.
    InvalidGrantType,
    /// OAuth 400/122: unknown refresh token.
    UnknownRefreshToken,
    /// 404/116: a path (or method) this server does not serve.
    UnknownEndpoint,
    /// 500/999: a bug or a failed database; the detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// Status, errno, error, message and extra fields of the body.
    fn parts(&self) -> (StatusCode, u32, String, Map<String, Value>) {
        use ApiError::*;
        let mut extra = Map::new();
        let (status, errno, message) = match self {
            AccountExists(email) => {
                extra.insert("email".into(), json!(email));
                (400, 101, "Account already exists".to_owned())
            }
            UnknownAccount(email) => {
                extra.insert("email".into(), json!(email));
                (400, 102, "Unknown account".to_owned())
            }
            IncorrectPassword(email) => {
                extra.insert("email".into(), json!(email));
                (400, 103, "Incorrect password".to_owned())
            }
            IncorrectEmailCase(email) => {
                extra.insert("email".into(), json!(email));
                (400, 120, "Incorrect email case".to_owned())
            }
            InvalidJson => (400, 106, "Invalid JSON in request body".to_owned()),
            InvalidParameter(reason) => (
                400,
                107,
                format!("Invalid parameter in request body: {reason}"),
            ),
            MissingParameter(name) => {
                extra.insert("param".into(), json!(name));
                (
                    400,
                    108,
                    format!("Missing parameter in request body: {name}"),
                )
            }
            InvalidSignature(reason) => (401, 109, format!("Invalid request signature: {reason}")),
            InvalidToken(_) => (
                401,
                110,
                "Invalid authentication token in request signature".to_owned(),
            ),
            InvalidTimestamp(now) => {
                extra.insert("serverTime".into(), json!(now));
                (
                    401,
                    111,
                    "Invalid timestamp in request signature".to_owned(),
                )
            }
            InvalidNonce => (401, 115, "Invalid nonce in request signature".to_owned()),
            RequestTooLarge => (413, 113, "Request body too large".to_owned()),
            Throttled(seconds) => {
                extra.insert("retryAfter".into(), json!(seconds));
                (429, 114, "Client has sent too many requests".to_owned())
            }
            UnknownDevice => (400, 123, "Unknown device".to_owned()),
            NotSupported(what) => (403, 202, format!("Not supported by this server: {what}")),
            UnknownClient(id) => {
                extra.insert("clientId".into(), json!(id));
                (400, 101, "Unknown client".to_owned())
            }
            UnknownCode => (400, 105, "Unknown code".to_owned()),
            MismatchCode => (400, 106, "Incorrect code".to_owned()),
            ExpiredCode => (400, 107, "Expired code".to_owned()),
            OAuthInvalidToken(_) => (400, 108, "Invalid token".to_owned()),
            OAuthInvalidParameter(reason) => {
                (400, 109, format!("Invalid request parameter: {reason}"))
            }
            InvalidScopes(scopes) => {
                extra.insert("invalidScopes".into(), json!(scopes));
                (400, 114, "Requested scopes are not allowed".to_owned())
            }
            ExpiredToken => (400, 115, "Expired token".to_owned()),
            MismatchCodeChallenge => (400, 117, "Incorrect code_challenge".to_owned()),
            MissingPkce => (
                400,
                118,
                "Public clients require PKCE OAuth parameters".to_owned(),
            ),
            InvalidGrantType => (400, 121, "Invalid grant_type".to_owned()),
            UnknownRefreshToken => (400, 122, "Unknown token".to_owned()),
            UnknownEndpoint => (
                404,
                116,
                "This endpoint is not supported by this server".to_owned(),
            ),
            Internal(_) => (500, 999, "Unspecified error".to_owned()),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, errno, message, extra)
    }

    /// The errno sent for this error.
    pub fn errno(&self) -> u32 {
        self.parts().1
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errno, message, extra) = self.parts();
        match &self {
            ApiError::Internal(detail) => {
                tracing::error!(status = status.as_u16(), errno, %detail, "accounts request failed")
            }
            ApiError::InvalidToken(reason)
            | ApiError::InvalidSignature(reason)
            | ApiError::OAuthInvalidToken(reason)
            | ApiError::NotSupported(reason) => {
                tracing::info!(
                    status = status.as_u16(),
                    errno,
                    reason,
                    "accounts request refused"
                )
            }
            _ => {
                tracing::info!(status = status.as_u16(), errno, %message, "accounts request refused")
            }
        }
        let mut body = Map::new();
        body.insert("code".into(), json!(status.as_u16()));
        body.insert("errno".into(), json!(errno));
        body.insert(
            "error".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("message".into(), json!(message));
        body.extend(extra);
        let mut response = (status, Json(Value::Object(body))).into_response();
        if let ApiError::Throttled(seconds) = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throttling_sends_retry_after() {
        let throttled = ApiError::Throttled(30).into_response();
        assert_eq!(throttled.status(), 429);
        assert_eq!(throttled.headers()[header::RETRY_AFTER], "30");
        for error in [
            ApiError::NotSupported("push"),
            ApiError::Internal("x".into()),
            ApiError::InvalidToken("x"),
        ] {
            let response = error.into_response();
            assert!(response.headers().get(header::RETRY_AFTER).is_none());
        }
    }

    #[test]
    fn errnos_are_mozillas() {
        assert_eq!(ApiError::IncorrectPassword(String::new()).errno(), 103);
        assert_eq!(ApiError::UnknownAccount(String::new()).errno(), 102);
        assert_eq!(ApiError::InvalidSignature("mac").errno(), 109);
        assert_eq!(ApiError::InvalidToken("gone").errno(), 110);
        assert_eq!(ApiError::MismatchCodeChallenge.errno(), 117);
    }
}
