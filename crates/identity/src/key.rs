//! The RSA signing key and the JWKS that publishes it.
//!
//! The key is generated once (RSA 2048) and kept as PKCS#8 PEM in the data directory,
//! mode 0600, so tokens stay valid across restarts. The key id is derived from the public
//! key (the first 16 hex characters of the SHA-256 of its SubjectPublicKeyInfo DER), so it
//! is stable without being stored and changes whenever the key does: a verifier that caches
//! the JWKS sees an unknown `kid` after a key swap and knows to fetch it again.
//!
//! The private key is never logged; only its path and key id are.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::IdentityError;

/// File name of the signing key inside the data directory.
pub(crate) const KEY_FILE: &str = "identity-key.pem";

/// Size of a generated key.
const KEY_BITS: usize = 2048;

/// A JSON Web Key Set: the public keys a verifier accepts signatures from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys; this provider publishes exactly one.
    pub keys: Vec<Jwk>,
}

/// One RSA public key in JWK form (RFC 7517, RFC 7518 §6.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// Algorithm: `RS256`.
    pub alg: String,
    /// Intended use: `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// Key id, matching the `kid` in token headers.
    pub kid: String,
    /// Modulus, big-endian, base64url without padding.
    pub n: String,
    /// Public exponent, big-endian, base64url without padding.
    pub e: String,
}

/// The loaded signing key.
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// Loads `<data_dir>/identity-key.pem`, or generates and stores a new key if there is
    /// none.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<Self, IdentityError> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => Self::from_pem(&path, &pem),
            Err(error) if error.kind() == ErrorKind::NotFound => Self::create(&path),
            Err(error) => Err(IdentityError::Key(format!(
                "reading {}: {error}",
                path.display()
            ))),
        }
    }

    /// Parses the key read from `path`.
    fn from_pem(path: &Path, pem: &str) -> Result<Self, IdentityError> {
        warn_if_readable_by_others(path);
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|error| {
            IdentityError::Key(format!(
                "{} is not a PKCS#8 PEM RSA private key: {error}",
                path.display()
            ))
        })?;
        if key.size() * 8 < KEY_BITS {
            return Err(IdentityError::Key(format!(
                "{} holds a {}-bit key; at least {KEY_BITS} bits are required",
                path.display(),
                key.size() * 8
            )));
        }
        Self::new(&key, pem)
    }

    /// Generates a key and stores it at `path`, which must not exist yet. If another
    /// process stored one first, that one is used instead.
    fn create(path: &Path) -> Result<Self, IdentityError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)
            .map_err(|error| IdentityError::Key(format!("generating a key: {error}")))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| IdentityError::Key(format!("encoding the key: {error}")))?;
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                let pem = std::fs::read_to_string(path).map_err(|error| {
                    IdentityError::Key(format!("reading {}: {error}", path.display()))
                })?;
                return Self::from_pem(path, &pem);
            }
            Err(error) => {
                return Err(IdentityError::Key(format!(
                    "creating {}: {error}",
                    path.display()
                )));
            }
        };
        if let Err(error) = file
            .write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
        {
            // A truncated key file would fail every later start; better to leave none.
            let _ = std::fs::remove_file(path);
            return Err(IdentityError::Key(format!(
                "writing {}: {error}",
                path.display()
            )));
        }
        let signing_key = Self::new(&key, &pem)?;
        tracing::info!(path = %path.display(), kid = %signing_key.jwk.kid, "generated a new identity signing key");
        Ok(signing_key)
    }

    fn new(key: &RsaPrivateKey, pem: &str) -> Result<Self, IdentityError> {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|error| IdentityError::Key(format!("loading the key for signing: {error}")))?;
        let jwk = public_jwk(&key.to_public_key())?;
        Ok(SigningKey { encoding, jwk })
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key, for `jsonwebtoken::encode`.
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

fn public_jwk(public: &RsaPublicKey) -> Result<Jwk, IdentityError> {
    let der = public
        .to_public_key_der()
        .map_err(|error| IdentityError::Key(format!("encoding the public key: {error}")))?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(Jwk {
        kty: "RSA".to_owned(),
        alg: "RS256".to_owned(),
        key_use: "sig".to_owned(),
        kid: hex::encode(&digest[..8]),
        n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    })
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
            "the identity signing key is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_the_same_kid() {
        let dir = tempfile::tempdir().unwrap();
        let first = SigningKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");

        let second = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.jwk(), second.jwk());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            pem,
            "not rewritten"
        );
    }

    #[test]
    fn jwk_describes_the_public_key() {
        let key = RsaPrivateKey::from_pkcs8_pem(&crate::provider::tests::test_key_pem()).unwrap();
        let jwk = public_jwk(&key.to_public_key()).unwrap();
        assert_eq!(
            (jwk.kty.as_str(), jwk.alg.as_str(), jwk.key_use.as_str()),
            ("RSA", "RS256", "sig")
        );
        assert_eq!(jwk.kid.len(), 16);
        assert!(
            jwk.kid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(jwk.e, "AQAB", "exponent 65537");
        let n = URL_SAFE_NO_PAD.decode(&jwk.n).unwrap();
        assert_eq!(n.len(), 256, "2048-bit modulus, no leading zero");
        let json = serde_json::to_value(Jwks { keys: vec![jwk] }).unwrap();
        assert_eq!(json["keys"][0]["use"], "sig");
    }

    #[test]
    fn refuses_a_file_that_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let error = SigningKey::load_or_create(dir.path()).err().unwrap();
        assert!(matches!(error, IdentityError::Key(_)), "{error}");
        assert!(error.to_string().contains(KEY_FILE), "{error}");
    }
}
