//! Verification of OAuth access tokens: JWTs offline against trusted issuers' JWKS, opaque
//! tokens at the issuer that asked for it.
//!
//! syncstack's identity provider and accounts service issue RS256 JWTs, as Mozilla accounts
//! does for clients on its JWT list. Each trusted issuer is an issuer string, an optional
//! audience and a key set (several keys, so a key can be rotated without a gap). A JWT is
//! accepted only if its header names RS256, its key is one of that issuer's, its signature
//! verifies, its `iss` is that issuer, its `aud` matches when an audience is configured, it
//! has not expired, and its scope includes Sync's. A JWT that fails is refused: it is never
//! sent anywhere.
//!
//! A token that is not a JWT at all (Mozilla accounts' default, opaque hex) is verified at
//! the `/v1/verify` of the issuers configured with one ([`crate::remote`]), as Mozilla's
//! token server does; without such an issuer it is refused.

use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::TokenServerError;
use crate::remote::RemoteIssuer;

/// The scope a token must carry to fetch Sync credentials.
pub const SYNC_SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";
/// Clock difference tolerated between the issuer and the token server, in seconds.
const LEEWAY_SECS: u64 = 30;

/// An issuer the token server trusts.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry, if checked.
    pub audience: Option<String>,
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl std::fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "keys",
                &self.keys.iter().map(|(kid, _)| kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TrustedIssuer {
    /// An issuer with the RSA keys of a JWKS document (other key types are skipped).
    pub fn from_jwks(issuer: &str, audience: Option<String>, jwks: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(jwks)
            .map_err(|e| format!("JWKS for {issuer} is not valid: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
                continue;
            }
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| format!("a key of {issuer} is unusable: {e}"))?;
            keys.push((jwk.common.key_id.clone(), key));
        }
        if keys.is_empty() {
            return Err(format!("JWKS for {issuer} holds no RSA key"));
        }
        Ok(TrustedIssuer {
            issuer: issuer.to_owned(),
            audience,
            keys,
        })
    }

    /// The key ids of this issuer.
    pub fn key_ids(&self) -> Vec<Option<String>> {
        self.keys.iter().map(|(kid, _)| kid.clone()).collect()
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The account's uid at the issuer (`sub`).
    pub subject: String,
    /// The account's generation (None when absent or 0).
    pub generation: Option<i64>,
    /// The issuer that signed it.
    pub issuer: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Scope,
    #[serde(rename = "fxa-generation", default)]
    generation: Option<i64>,
}

/// `scope` as a space- (or comma-) separated string, or as a list.
#[derive(Deserialize, Default)]
#[serde(untagged)]
pub(crate) enum Scope {
    Text(String),
    List(Vec<String>),
    #[default]
    Missing,
}

impl Scope {
    pub(crate) fn contains(&self, wanted: &str) -> bool {
        match self {
            Scope::Text(text) => text.split([' ', ',']).any(|s| s == wanted),
            Scope::List(list) => list.iter().any(|s| s == wanted),
            Scope::Missing => false,
        }
    }
}

/// Verifies access tokens against the trusted issuers.
#[derive(Debug, Default)]
pub struct Verifier {
    issuers: RwLock<Vec<TrustedIssuer>>,
    remote: RwLock<Vec<Arc<RemoteIssuer>>>,
}

impl Verifier {
    /// A verifier trusting `issuers`.
    pub fn new(issuers: Vec<TrustedIssuer>) -> Self {
        Verifier {
            issuers: RwLock::new(issuers),
            remote: RwLock::default(),
        }
    }

    /// Verifies opaque tokens at `issuer` too (after those added before it).
    pub fn trust_remote(&self, issuer: RemoteIssuer) {
        let mut remote = self.remote.write().unwrap_or_else(|p| p.into_inner());
        remote.retain(|r| r.issuer != issuer.issuer);
        remote.push(Arc::new(issuer));
    }

    /// Whether any issuer is trusted, by key set or by verification URL.
    pub fn trusts_anyone(&self) -> bool {
        !self.issuers().is_empty()
            || !self
                .remote
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
    }

    /// Verifies `token`: a JWT offline ([`Verifier::verify_jwt`]), anything else at the
    /// issuers with a verification URL, in turn, until one vouches for it.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenServerError> {
        if jsonwebtoken::decode_header(token).is_ok() {
            return self.verify_jwt(token).map_err(|reason| {
                TokenServerError::invalid_credentials(format!("access token refused: {reason}"))
            });
        }
        let remote = self
            .remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut refusal = TokenServerError::invalid_credentials(
            "access token refused: not a JWT, and no issuer has a verify_url",
        );
        for issuer in remote {
            match issuer.verify(token).await {
                Ok(verified) => return Ok(verified),
                Err(error) => refusal = error,
            }
        }
        Err(refusal)
    }

    /// Adds an issuer, or replaces the keys of one with the same `iss`.
    pub fn trust(&self, issuer: TrustedIssuer) {
        let mut issuers = self.issuers.write().unwrap_or_else(|p| p.into_inner());
        issuers.retain(|i| i.issuer != issuer.issuer);
        issuers.push(issuer);
    }

    /// The issuers trusted now.
    pub fn issuers(&self) -> Vec<TrustedIssuer> {
        self.issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verifies a JWT offline; the error says why, for the log only.
    pub fn verify_jwt(&self, token: &str) -> Result<VerifiedToken, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("algorithm {:?} is not RS256", header.alg));
        }
        let issuers = self.issuers.read().unwrap_or_else(|p| p.into_inner());
        let mut candidates = issuers.iter().flat_map(|issuer| {
            issuer
                .keys
                .iter()
                .filter(|(kid, _)| header.kid.is_none() || kid.is_none() || *kid == header.kid)
                .map(move |(_, key)| (issuer, key))
        });
        let mut last_error = match &header.kid {
            Some(kid) => format!("no trusted key has kid {kid:?}"),
            None => "no trusted key".to_owned(),
        };
        for (issuer, key) in candidates.by_ref() {
            let mut validation = Validation::new(Algorithm::RS256);
            validation.leeway = LEEWAY_SECS;
            validation.set_issuer(&[&issuer.issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            match &issuer.audience {
                Some(audience) => validation.set_audience(&[audience]),
                None => validation.validate_aud = false,
            }
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    if !data.claims.scope.contains(SYNC_SCOPE) {
                        return Err(format!("token lacks the scope {SYNC_SCOPE}"));
                    }
                    if data.claims.sub.is_empty() {
                        return Err("token has an empty subject".into());
                    }
                    return Ok(VerifiedToken {
                        subject: data.claims.sub,
                        generation: data.claims.generation.filter(|g| *g != 0),
                        issuer: issuer.issuer.clone(),
                    });
                }
                Err(error) => last_error = format!("{}: {error}", issuer.issuer),
            }
        }
        Err(last_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_in_every_form() {
        assert!(Scope::Text(format!("profile {SYNC_SCOPE}")).contains(SYNC_SCOPE));
        assert!(Scope::Text(format!("profile,{SYNC_SCOPE}")).contains(SYNC_SCOPE));
        assert!(Scope::List(vec![SYNC_SCOPE.into()]).contains(SYNC_SCOPE));
        assert!(!Scope::Text(format!("{SYNC_SCOPE}x")).contains(SYNC_SCOPE));
        assert!(!Scope::Missing.contains(SYNC_SCOPE));
    }

    #[test]
    fn refuses_what_is_not_a_jwt_or_not_rs256() {
        let verifier = Verifier::default();
        assert!(verifier.verify_jwt("nonsense").is_err());
        // An HS256 token, even a well-formed one.
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(verifier.verify_jwt(&hs).unwrap_err().contains("not RS256"));
    }

    #[test]
    fn refuses_a_jwks_without_rsa_keys() {
        assert!(TrustedIssuer::from_jwks("i", None, r#"{"keys": []}"#).is_err());
        assert!(TrustedIssuer::from_jwks("i", None, "{").is_err());
    }
}
