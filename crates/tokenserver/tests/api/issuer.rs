//! A test issuer: an RSA key, its JWKS, and JWTs with any claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

pub const SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";

pub struct Issuer {
    pub name: String,
    pub kid: String,
    key: EncodingKey,
    pub jwks: String,
}

impl Issuer {
    pub fn new(name: &str, kid: &str) -> Issuer {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let public = private.to_public_key();
        let jwks = json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]});
        Issuer {
            name: name.into(),
            kid: kid.into(),
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwks: jwks.to_string(),
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// A token for account `sub` with `generation`, valid for an hour.
    pub fn token(&self, sub: &str, generation: i64) -> String {
        self.sign(json!({
            "iss": self.name, "sub": sub, "aud": "syncstack", "scope": SCOPE,
            "exp": Self::now() + 3600, "iat": Self::now(), "fxa-generation": generation,
        }))
    }

    /// A token with the claims of `token`, changed by `edit`.
    pub fn token_with(&self, sub: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = json!({
            "iss": self.name, "sub": sub, "aud": "syncstack", "scope": SCOPE,
            "exp": Self::now() + 3600, "iat": Self::now(),
        });
        edit(&mut claims);
        self.sign(claims)
    }

    pub fn sign(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }

    pub fn expired_by(secs: i64) -> i64 {
        Self::now() - secs
    }
}
