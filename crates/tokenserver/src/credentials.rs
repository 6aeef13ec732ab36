//! The request's credentials: the bearer token and the key headers.
//!
//! `X-KeyID` is `<keys_changed_at>-<client state>`, the client state being the first 16
//! bytes of the SHA-256 of the account's sync key in url-safe base64 without padding. The
//! optional legacy `X-Client-State` carries the same value in hex and must agree. Client
//! states are kept as lowercase hex, as in Mozilla's database.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::TokenServerError;

/// What the headers say about the caller's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeaders {
    /// When the keys last changed (None when 0, as the reference treats 0).
    pub keys_changed_at: Option<i64>,
    /// The client state, lowercase hex.
    pub client_state: String,
}

/// The bearer token of the `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, TokenServerError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| TokenServerError::unauthorized("no Authorization header"))?
        .to_str()
        .map_err(|_| TokenServerError::unauthorized("Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        TokenServerError::unauthorized("Authorization header is not \"<scheme> <token>\"")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenServerError::unsupported_scheme(format!(
            "authorization scheme {scheme:?}"
        )));
    }
    Ok(token.trim())
}

/// Validates `X-Client-State` (if sent) before anything else looks at it.
pub fn client_state_header(headers: &HeaderMap) -> Result<Option<String>, TokenServerError> {
    let Some(value) = headers.get("x-client-state") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        TokenServerError::invalid_client_state_header("X-Client-State is not ASCII")
    })?;
    let valid = (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(TokenServerError::invalid_client_state_header(format!(
            "X-Client-State {text:?}"
        )));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// Reads `X-KeyID` and checks it against `X-Client-State`.
pub fn key_headers(
    headers: &HeaderMap,
    client_state: Option<&str>,
) -> Result<KeyHeaders, TokenServerError> {
    let value = headers
        .get("x-keyid")
        .ok_or_else(TokenServerError::missing_key_id)?
        .to_str()
        .map_err(|_| TokenServerError::invalid_credentials("X-KeyID is not ASCII"))?;
    let parsed = parse_key_id(value)?;
    if let Some(header_state) = client_state
        && header_state != parsed.client_state
    {
        return Err(TokenServerError::client_state_mismatch(
            "X-Client-State does not match the client state of X-KeyID",
        ));
    }
    Ok(parsed)
}

/// Parses `<keys_changed_at>-<url-safe base64 client state>`.
pub fn parse_key_id(value: &str) -> Result<KeyHeaders, TokenServerError> {
    let (kca, state) = value.split_once('-').ok_or_else(|| {
        TokenServerError::invalid_credentials(format!("X-KeyID {value:?} has no '-'"))
    })?;
    let keys_changed_at: i64 = kca.parse().ok().filter(|v: &i64| *v >= 0).ok_or_else(|| {
        TokenServerError::invalid_credentials(format!("X-KeyID keys_changed_at {kca:?}"))
    })?;
    let bytes = URL_SAFE_NO_PAD.decode(state).map_err(|_| {
        TokenServerError::invalid_credentials(format!(
            "X-KeyID client state {state:?} is not base64url"
        ))
    })?;
    Ok(KeyHeaders {
        keys_changed_at: (keys_changed_at != 0).then_some(keys_changed_at),
        client_state: hex::encode(bytes),
    })
}

/// `fxa_kid` of a node token: 13-digit keys_changed_at (or generation) and the client state.
pub fn format_key_id(keys_changed_at: i64, client_state_hex: &str) -> String {
    let bytes = hex::decode(client_state_hex).unwrap_or_default();
    format!("{keys_changed_at:013}-{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn parses_key_ids_as_the_reference() {
        assert_eq!(
            parse_key_id("1234-qqo").unwrap(),
            KeyHeaders {
                keys_changed_at: Some(1234),
                client_state: "aaaa".into()
            }
        );
        assert_eq!(parse_key_id("0-u7s").unwrap().keys_changed_at, None);
        for bad in ["1234", "x-qqo", "-1-qqo", "12-!!", "12-qqo="] {
            assert!(parse_key_id(bad).is_err(), "{bad}");
        }
        assert_eq!(format_key_id(2345, "bbbb"), "0000000002345-u7s");
    }

    #[test]
    fn reads_bearer_tokens() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc")])).unwrap(),
            "abc"
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer abc")])).unwrap(),
            "abc"
        );
        let e = bearer_token(&headers(&[("authorization", "Basic abc")])).unwrap_err();
        assert_eq!(e.description, "Unsupported");
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer")]))
                .unwrap_err()
                .description,
            "Unauthorized"
        );
        assert_eq!(
            bearer_token(&headers(&[])).unwrap_err().status_text,
            "error"
        );
    }

    #[test]
    fn checks_client_state_against_key_id() {
        let ok = headers(&[("x-keyid", "1234-qqo"), ("x-client-state", "AAAA")]);
        let state = client_state_header(&ok).unwrap();
        assert!(key_headers(&ok, state.as_deref()).is_ok());
        let mismatch = headers(&[("x-keyid", "1234-qqo"), ("x-client-state", "bbbb")]);
        let state = client_state_header(&mismatch).unwrap();
        assert_eq!(
            key_headers(&mismatch, state.as_deref())
                .unwrap_err()
                .status_text,
            "invalid-client-state"
        );
        let bad = headers(&[("x-client-state", "not valid!")]);
        assert_eq!(client_state_header(&bad).unwrap_err().status.as_u16(), 400);
        assert_eq!(
            key_headers(&headers(&[]), None).unwrap_err().status_text,
            "invalid-key-id"
        );
    }
}
