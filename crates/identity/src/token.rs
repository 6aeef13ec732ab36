//! Access tokens: the claims, their names on the wire, and signing.
//!
//! The shape copies Mozilla Accounts' JWT access tokens (header `typ` `at+jwt`, RS256,
//! `kid`), so that the token server's verifier needs nothing specific to this issuer. The
//! claim names, including the hyphenated `fxa-generation`, are part of that contract; see
//! [`AccessTokenClaims`].

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::IdentityError;
use crate::key::SigningKey;

/// The OAuth scope that grants access to Sync storage.
pub const SYNC_SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";

/// The `aud` of every token this provider issues.
pub const AUDIENCE: &str = "syncstack";

/// The `client_id` of every token this provider issues.
pub const CLIENT_ID: &str = "syncstack";

/// The JWT header `typ` of an access token (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";

/// Longest scope string accepted, in bytes; it is copied into every token.
const MAX_SCOPE_LEN: usize = 1024;

/// The claims of an access token, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer: the provider's configured issuer string.
    pub iss: String,
    /// Subject: the account uid, 32 lowercase hex characters.
    pub sub: String,
    /// Audience: always [`AUDIENCE`], a single string (not an array).
    pub aud: String,
    /// The OAuth client the token was issued to: always [`CLIENT_ID`].
    pub client_id: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Unique token id, 32 lowercase hex characters.
    pub jti: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The account's generation when the token was issued, milliseconds since the Unix
    /// epoch. The token server refuses a token whose generation is older than the newest
    /// one it has seen for the user.
    #[serde(rename = "fxa-generation")]
    pub fxa_generation: u64,
}

/// Checks that `scope` is one or more OAuth scope tokens separated by single spaces
/// (RFC 6749 §3.3).
pub(crate) fn validate_scope(scope: &str) -> Result<(), IdentityError> {
    let scope_char = |c: char| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    let valid = !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .split(' ')
            .all(|token| !token.is_empty() && token.chars().all(scope_char));
    if !valid {
        return Err(IdentityError::InvalidScope(scope.to_owned()));
    }
    Ok(())
}

/// Signs `claims` as an RS256 `at+jwt` under `key`.
pub(crate) fn sign(key: &SigningKey, claims: &AccessTokenClaims) -> Result<String, IdentityError> {
    let header = Header {
        typ: Some(TOKEN_TYPE.to_owned()),
        kid: Some(key.kid().to_owned()),
        ..Header::new(Algorithm::RS256)
    };
    jsonwebtoken::encode(&header, claims, key.encoding_key())
        .map_err(|error| IdentityError::Key(format!("signing a token: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_scope_lists() {
        for scope in [
            SYNC_SCOPE,
            "profile",
            "profile https://identity.mozilla.com/apps/oldsync",
            "a:b",
        ] {
            assert!(validate_scope(scope).is_ok(), "{scope:?}");
        }
    }

    #[test]
    fn refuses_malformed_scopes() {
        let too_long = "a".repeat(MAX_SCOPE_LEN + 1);
        for scope in [
            "",
            " ",
            "a  b",
            " a",
            "a ",
            "a\tb",
            "quote\"",
            "back\\slash",
            "é",
            too_long.as_str(),
        ] {
            assert!(
                matches!(validate_scope(scope), Err(IdentityError::InvalidScope(_))),
                "{scope:?}"
            );
        }
    }

    #[test]
    fn generation_claim_is_hyphenated() {
        let claims = AccessTokenClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: AUDIENCE.into(),
            client_id: CLIENT_ID.into(),
            iat: 1,
            exp: 2,
            jti: "j".into(),
            scope: SYNC_SCOPE.into(),
            fxa_generation: 3,
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["fxa-generation"], 3);
        assert!(json.get("fxa_generation").is_none());
    }
}
