//! Producing content signatures (the server side).
//!
//! The format is fixed by what clients accept: ECDSA over P-384 with SHA-384, the
//! signature written as the raw 48-byte `r` followed by the 48-byte `s` (IEEE P1363, not
//! the DER form X.509 uses), base64url-encoded. `p384` signs deterministically (RFC 6979),
//! so re-signing unchanged data yields the same string, and never needs a random source
//! that could fail or be weak.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use p384::ecdsa::signature::Signer as _;
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};

use crate::PkiError;

/// A content-signature signing key (ECDSA P-384).
///
/// Its `Debug` output shows only the public key, never the private one.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// Loads a P-384 private key from PEM: PKCS#8 (`PRIVATE KEY`, what
    /// [`init_dev_pki`](crate::init_dev_pki) writes) or SEC1 (`EC PRIVATE KEY`, what
    /// `openssl ecparam -genkey` writes).
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let key = match SigningKey::from_pkcs8_pem(pem) {
            Ok(key) => key,
            Err(pkcs8_err) => p384::SecretKey::from_sec1_pem(pem)
                .map(SigningKey::from)
                .map_err(|_| PkiError::Key(format!("not a P-384 private key: {pkcs8_err}")))?,
        };
        Ok(Self { key })
    }

    /// Signs `message` (normally [`signed_message`](crate::signed_message)'s output) and
    /// returns the 96-byte `r||s` signature as padded base64url: always 128 characters,
    /// which for 96 bytes happens to need no `=`.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature: Signature = self.key.sign(message);
        URL_SAFE.encode(signature.to_bytes())
    }

    /// The public key as a SubjectPublicKeyInfo PEM (`PUBLIC KEY`), as the reference
    /// server's local ECDSA backend publishes it.
    pub fn public_key_pem(&self) -> String {
        self.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a valid P-384 public key always encodes")
    }

    /// The public key, to compare with a certificate's or to verify with directly.
    pub fn verifying_key(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.verifying_key().to_encoded_point(true);
        f.debug_struct("Signer")
            .field("public_key", &URL_SAFE.encode(public.as_bytes()))
            .field("private_key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use p384::ecdsa::signature::Verifier as _;
    use p384::pkcs8::EncodePrivateKey as _;

    use super::*;

    fn test_signer() -> (Signer, String) {
        let key = SigningKey::from_slice(&[7u8; 48]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        (Signer::from_pem(&pem).unwrap(), pem)
    }

    #[test]
    fn signature_is_128_chars_of_raw_r_s() {
        let (signer, _) = test_signer();
        let sig = signer.sign(b"Content-Signature:\x00{}");
        assert_eq!(sig.len(), 128);
        let raw = URL_SAFE.decode(&sig).unwrap();
        assert_eq!(raw.len(), 96);
        let signature = Signature::from_slice(&raw).unwrap();
        signer
            .verifying_key()
            .verify(b"Content-Signature:\x00{}", &signature)
            .unwrap();
        // Deterministic: same key and message, same signature.
        assert_eq!(sig, signer.sign(b"Content-Signature:\x00{}"));
    }

    #[test]
    fn debug_does_not_leak_the_private_key() {
        let (signer, pem) = test_signer();
        let debug = format!("{signer:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains(&hex_of(&[7u8; 48])));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!debug.contains(&body[..20]));
    }

    #[test]
    fn public_key_pem_round_trips() {
        let (signer, _) = test_signer();
        let pem = signer.public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        use p384::pkcs8::DecodePublicKey as _;
        assert_eq!(
            VerifyingKey::from_public_key_pem(&pem).unwrap(),
            signer.verifying_key()
        );
    }

    #[test]
    fn sec1_pem_is_accepted_and_garbage_refused() {
        let secret = p384::SecretKey::from_slice(&[9u8; 48]).unwrap();
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(Signer::from_pem(&sec1).is_ok());
        assert!(matches!(
            Signer::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(PkiError::Key(_))
        ));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
