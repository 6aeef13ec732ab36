//! OAuth clients, scopes, and the access tokens: RS256 `at+JWT`s shaped like Mozilla
//! accounts' (`sub`, `scope`, `aud`, `client_id`, `fxa-generation`, `iat`, `exp`, `jti`),
//! signed with the built-in identity provider's key.
//!
//! The `aud` of a token with Sync's scope is the token server's URL, as at Mozilla; of any
//! other token, its client id. Verification here (`/v1/verify`, the profile) is stricter
//! than Mozilla's: the issuer, the expiry and the audience are all checked.

use identity::AccessTokenClaims;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::ApiError;
use crate::service::{AccountsService, now_ms};
use crate::store::AccountRecord;

/// Firefox desktop's OAuth client id.
pub const FIREFOX_CLIENT_ID: &str = "5882386c6d801776";
/// The scope that grants Sync, and the only one with a key.
pub const OLDSYNC_SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";
/// The profile scope.
pub const PROFILE_SCOPE: &str = "profile";

/// A known OAuth client. All are public (no secret) and must use PKCE.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
}

/// Mozilla's own Firefox clients, the only ones this server serves.
const CLIENTS: &[Client] = &[
    Client {
        id: FIREFOX_CLIENT_ID,
        name: "Firefox",
    },
    Client {
        id: "a2270f727f45f648",
        name: "Firefox for Android",
    },
    Client {
        id: "1b1a3e44c54fbb58",
        name: "Firefox for iOS",
    },
];

/// The client with this id; OAuth errno 101 if there is none.
pub(crate) fn client(id: &str) -> Result<&'static Client, ApiError> {
    CLIENTS
        .iter()
        .find(|client| client.id == id)
        .ok_or_else(|| ApiError::UnknownClient(id.to_owned()))
}

/// Checks that every scope of the space-separated list is one this server grants (Sync,
/// or the profile and its sub-scopes) and returns the list normalized.
pub(crate) fn check_scopes(scope: &str) -> Result<String, ApiError> {
    let mut granted: Vec<&str> = Vec::new();
    for item in scope.split_whitespace() {
        let allowed = item == OLDSYNC_SCOPE
            || item == PROFILE_SCOPE
            || item
                .strip_prefix("profile:")
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(is_scope_char));
        if !allowed {
            return Err(ApiError::InvalidScopes(item.to_owned()));
        }
        if !granted.contains(&item) {
            granted.push(item);
        }
    }
    if granted.is_empty() {
        return Err(ApiError::InvalidScopes(scope.to_owned()));
    }
    Ok(granted.join(" "))
}

fn is_scope_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')
}

/// Whether every scope of `wanted` is covered by `granted` (space-separated lists).
pub(crate) fn scopes_cover(granted: &str, wanted: &str) -> bool {
    wanted.split_whitespace().all(|want| {
        granted.split_whitespace().any(|have| {
            have == want
                || (have == PROFILE_SCOPE && want.starts_with("profile:"))
                || want == PROFILE_SCOPE && have == PROFILE_SCOPE
        })
    })
}

/// A signed access token and its lifetime in seconds.
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) expires_in: u64,
}

impl AccountsService {
    /// Signs an access token for `account`, valid for `ttl` seconds (capped by the
    /// configured lifetime; the configured lifetime when absent).
    pub(crate) fn issue_access_token(
        &self,
        account: &AccountRecord,
        client_id: &str,
        scope: &str,
        ttl: Option<u64>,
    ) -> Result<Issued, ApiError> {
        let max = self.inner.settings.access_token_ttl_secs.max(1);
        let expires_in = ttl.unwrap_or(max).clamp(1, max);
        let iat = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let aud = if scope.split_whitespace().any(|s| s == OLDSYNC_SCOPE) {
            self.inner.tokenserver.clone()
        } else {
            client_id.to_owned()
        };
        let claims = AccessTokenClaims {
            iss: self.inner.base.clone(),
            sub: account.uid.clone(),
            aud,
            client_id: client_id.to_owned(),
            iat,
            exp: iat + expires_in,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            scope: scope.to_owned(),
            fxa_generation: u64::try_from(account.generation).unwrap_or(0),
        };
        let token = self
            .inner
            .idp
            .sign_claims(&claims)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Issued { token, expires_in })
    }

    /// Verifies one of this service's access tokens: signature, `typ`, issuer, expiry and
    /// audience (the token server or one of the known clients).
    pub(crate) fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::OAuthInvalidToken("not a JWT"))?;
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|typ| typ.eq_ignore_ascii_case("at+jwt"));
        if header.alg != Algorithm::RS256 || !typ_ok {
            return Err(ApiError::OAuthInvalidToken("not an RS256 at+jwt"));
        }
        let jwks = self.inner.idp.jwks();
        let jwk = jwks
            .keys
            .iter()
            .find(|jwk| header.kid.as_deref() == Some(jwk.kid.as_str()))
            .ok_or(ApiError::OAuthInvalidToken("unknown key id"))?;
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
            .map_err(|e| ApiError::Internal(format!("our own JWK: {e}")))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_issuer(&[&self.inner.base]);
        let mut audiences: Vec<&str> = CLIENTS.iter().map(|client| client.id).collect();
        audiences.push(&self.inner.tokenserver);
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => ApiError::ExpiredToken,
                ErrorKind::InvalidAudience => ApiError::OAuthInvalidToken("foreign audience"),
                ErrorKind::InvalidIssuer => ApiError::OAuthInvalidToken("foreign issuer"),
                ErrorKind::InvalidSignature => ApiError::OAuthInvalidToken("bad signature"),
                _ => ApiError::OAuthInvalidToken("invalid claims"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            check_scopes(&format!("profile {OLDSYNC_SCOPE} profile")).unwrap(),
            format!("profile {OLDSYNC_SCOPE}")
        );
        assert!(check_scopes("profile:email").is_ok());
        for bad in [
            "",
            "  ",
            "openid",
            "https://identity.mozilla.com/apps/send",
            "profile:",
        ] {
            assert!(check_scopes(bad).is_err(), "{bad:?}");
        }
        assert!(scopes_cover(
            &format!("profile {OLDSYNC_SCOPE}"),
            OLDSYNC_SCOPE
        ));
        assert!(scopes_cover("profile", "profile:email"));
        assert!(!scopes_cover("profile:email", "profile"));
        assert!(!scopes_cover("profile", OLDSYNC_SCOPE));
        assert!(client(FIREFOX_CLIENT_ID).is_ok());
        assert_eq!(client("0000").unwrap_err().errno(), 101);
    }
}
