//! Checking content signatures and their x5u certificate chains (the client side).
//!
//! A signature alone proves nothing: it must come from a key that a root the client
//! already trusts vouched for, for this purpose and this signer. The rules follow Firefox
//! and application-services (both NSS/mozpkix), which are stricter than the archived
//! remote-settings-client:
//!
//! - the PEM's first certificate is the end entity, the others are candidate issuers in
//!   any order;
//! - the trust anchor is the one certificate whose SHA-256 equals the pinned hash, and
//!   nothing else: a chain that does not carry the pinned root is refused outright;
//! - `rustls-webpki` (a port of mozpkix) builds and validates the path at the given
//!   time: validity dates, certificate signatures, CA flags, the code-signing EKU on every
//!   certificate that has an EKU extension (the end entity must have one), and the
//!   intermediates' name constraints;
//! - the pinned root's own validity dates are checked too, as Mozilla's client
//!   specification requires ("each certificate valid now"), since webpki treats an anchor
//!   as bare key material and does not;
//! - the end entity must be valid for the signer name as a DNS subject alternative name
//!   (not the subject CN, which is what the archived Rust client compared);
//! - the signature is ECDSA P-384/SHA-384 over [`PREFIX`](crate::PREFIX) + payload, as
//!   96 raw bytes in base64url.
//!
//! No revocation is checked: chains are short-lived and Mozilla's clients do not either.

use std::time::Duration;

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use p384::ecdsa::signature::Verifier as _;
use p384::ecdsa::{Signature, VerifyingKey};
use p384::pkcs8::DecodePublicKey as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, DnsName, ServerName, UnixTime};
use serde_json::Value;
use webpki::{EndEntityCert, KeyUsage};

use crate::VerifyError;
use crate::fingerprint::sha256;
use crate::message::{signed_message, signed_payload};

/// The DER contents of OID 1.3.6.1.5.5.7.3.3, id-kp-codeSigning.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Base64url that accepts the signature with or without its `=` padding.
const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The end-entity certificate of a chain that [`verify_chain`] accepted.
#[derive(Debug, Clone)]
pub struct LeafCert {
    der: Vec<u8>,
    key: VerifyingKey,
}

impl LeafCert {
    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate's P-384 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks `signature` over `message` with this certificate's key; see
    /// [`verify_signature`].
    pub fn verify_signature(&self, message: &[u8], signature: &str) -> Result<(), VerifyError> {
        check_signature(&self.key, message, signature)
    }
}

/// Checks a content signature over `message` with the public key of `leaf_cert_der`.
///
/// `signature_b64url` is base64url, padded or not, optionally in the `p384ecdsa=<sig>`
/// header form; it must decode to the 96-byte `r||s` of an ECDSA P-384/SHA-384 signature.
/// This checks the signature only: call [`verify_chain`] first to trust the certificate.
pub fn verify_signature(
    message: &[u8],
    signature_b64url: &str,
    leaf_cert_der: &[u8],
) -> Result<(), VerifyError> {
    check_signature(&leaf_public_key(leaf_cert_der)?, message, signature_b64url)
}

/// Validates an x5u chain (PEM, end entity first) at `now_unix_secs` against the root
/// whose DER has SHA-256 `root_sha256`, for content signing by `signer_name`.
///
/// See the [module documentation](self) for the exact rules. On success returns the end
/// entity, ready to check signatures with.
pub fn verify_chain(
    pem_chain: &str,
    root_sha256: &[u8; 32],
    signer_name: &str,
    now_unix_secs: u64,
) -> Result<LeafCert, VerifyError> {
    let certs = split_pem(pem_chain)?;
    let (ee_der, others) = certs
        .split_first()
        .ok_or_else(|| VerifyError::Malformed("the chain holds no certificate".into()))?;
    let root_index = others
        .iter()
        .position(|cert| sha256(cert) == *root_sha256)
        .ok_or(VerifyError::WrongRoot)?;
    let root = &others[root_index];
    let anchor = webpki::anchor_from_trusted_cert(root)
        .map_err(|e| VerifyError::Malformed(format!("pinned root: {e}")))?;
    let intermediates: Vec<CertificateDer<'_>> = others
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != root_index)
        .map(|(_, cert)| cert.clone())
        .collect();

    let ee = EndEntityCert::try_from(ee_der).map_err(|e| malformed_cert("end entity", e))?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now_unix_secs));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        time,
        KeyUsage::required(CODE_SIGNING),
        None,
        None,
    )
    .map_err(map_webpki_error)?;
    check_root_validity(root, now_unix_secs)?;

    let name = DnsName::try_from(signer_name)
        .map_err(|_| VerifyError::Malformed(format!("signer name {signer_name:?}")))?;
    ee.verify_is_valid_for_subject_name(&ServerName::DnsName(name))
        .map_err(|e| match e {
            webpki::Error::CertNotValidForName(_) => {
                VerifyError::WrongSignerName(signer_name.to_owned())
            }
            other => map_webpki_error(other),
        })?;

    Ok(LeafCert {
        der: ee_der.to_vec(),
        key: leaf_public_key(ee_der)?,
    })
}

/// Verifies a collection end to end: the chain as in [`verify_chain`], then the
/// signature over [`signed_payload`]`(records, timestamp)` as in [`verify_signature`].
///
/// `records` must already be stripped of client-local fields; tombstones are dropped here.
pub fn verify(
    records: &[Value],
    timestamp: u64,
    signature: &str,
    pem_chain: &str,
    root_sha256: &[u8; 32],
    signer_name: &str,
    now_unix_secs: u64,
) -> Result<(), VerifyError> {
    let leaf = verify_chain(pem_chain, root_sha256, signer_name, now_unix_secs)?;
    let payload = signed_payload(records, timestamp)?;
    leaf.verify_signature(&signed_message(&payload), signature)
}

fn split_pem(pem_chain: &str) -> Result<Vec<CertificateDer<'static>>, VerifyError> {
    CertificateDer::pem_slice_iter(pem_chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| VerifyError::Malformed(format!("PEM chain: {e}")))
}

fn leaf_public_key(leaf_cert_der: &[u8]) -> Result<VerifyingKey, VerifyError> {
    let der = CertificateDer::from(leaf_cert_der);
    let ee = EndEntityCert::try_from(&der).map_err(|e| malformed_cert("end entity", e))?;
    VerifyingKey::from_public_key_der(ee.subject_public_key_info().as_ref())
        .map_err(|e| VerifyError::Malformed(format!("end-entity key is not P-384: {e}")))
}

fn check_signature(key: &VerifyingKey, message: &[u8], signature: &str) -> Result<(), VerifyError> {
    let encoded = signature.trim();
    let encoded = encoded.strip_prefix("p384ecdsa=").unwrap_or(encoded);
    let raw = URL_SAFE_ANY_PADDING
        .decode(encoded)
        .map_err(|e| VerifyError::Malformed(format!("signature is not base64url: {e}")))?;
    if raw.len() != 96 {
        return Err(VerifyError::Malformed(format!(
            "signature has {} bytes, expected 96",
            raw.len()
        )));
    }
    // 96 bytes that are not a valid (r, s) pair, e.g. r = 0, simply do not verify.
    let signature = Signature::from_slice(&raw).map_err(|_| VerifyError::BadSignature)?;
    key.verify(message, &signature)
        .map_err(|_| VerifyError::BadSignature)
}

fn check_root_validity(root: &[u8], now_unix_secs: u64) -> Result<(), VerifyError> {
    let (_, cert) = x509_parser::parse_x509_certificate(root)
        .map_err(|e| VerifyError::Malformed(format!("pinned root: {e}")))?;
    let now = i64::try_from(now_unix_secs).unwrap_or(i64::MAX);
    let validity = cert.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    if now < not_before {
        return Err(VerifyError::NotYetValid {
            not_before: u64::try_from(not_before).unwrap_or(0),
        });
    }
    if now > not_after {
        return Err(VerifyError::Expired {
            not_after: u64::try_from(not_after).unwrap_or(0),
        });
    }
    Ok(())
}

fn malformed_cert(which: &str, e: webpki::Error) -> VerifyError {
    VerifyError::Malformed(format!("{which} certificate: {e}"))
}

fn map_webpki_error(e: webpki::Error) -> VerifyError {
    use webpki::Error as E;
    match e {
        E::CertExpired { not_after, .. } => VerifyError::Expired {
            not_after: not_after.as_secs(),
        },
        E::CertNotValidYet { not_before, .. } => VerifyError::NotYetValid {
            not_before: not_before.as_secs(),
        },
        E::UnknownIssuer => VerifyError::UnknownIssuer,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => VerifyError::NotCodeSigning,
        #[allow(deprecated)]
        E::RequiredEkuNotFound => VerifyError::NotCodeSigning,
        E::NameConstraintViolation => VerifyError::NameConstraints,
        E::BadDer | E::BadDerTime | E::TrailingData(_) => VerifyError::Malformed(e.to_string()),
        other => VerifyError::BadChain(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_decoding_errors_are_malformed() {
        let key = *p384::ecdsa::SigningKey::from_slice(&[3u8; 48])
            .unwrap()
            .verifying_key();
        for bad in ["", "not base64!", "AAAA", &"A".repeat(130)] {
            assert!(
                matches!(
                    check_signature(&key, b"m", bad),
                    Err(VerifyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // 96 zero bytes decode but are no valid signature.
        assert_eq!(
            check_signature(&key, b"m", &"A".repeat(128)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn garbage_chains_are_malformed() {
        let pin = [0u8; 32];
        let now = 1_700_000_000;
        assert!(matches!(
            verify_chain("", &pin, "a.example", now),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            verify_chain(
                "-----BEGIN CERTIFICATE-----\nfdfeff\n-----END CERTIFICATE-----\n",
                &pin,
                "a.example",
                now
            ),
            Err(VerifyError::Malformed(_)) | Err(VerifyError::WrongRoot)
        ));
        assert!(matches!(
            verify_chain(
                "-----BEGIN CERTIFICATE-----\nAAAA\n",
                &pin,
                "a.example",
                now
            ),
            Err(VerifyError::Malformed(_))
        ));
    }
}
