//! A development PKI for content signing: the certificates a self-hosted Remote Settings
//! server needs to publish a verifiable x5u chain without Mozilla's Autograph.
//!
//! Clients only trust a signature whose key is certified by a chain up to a pinned root,
//! so a server that merely holds an ECDSA key (the reference server's "local" backend)
//! cannot be verified by them. This module mints the same three-level profile Autograph
//! uses, all P-384:
//!
//! - a self-signed **root** CA; its SHA-256 is what clients pin. Its private key is thrown
//!   away once the intermediate is signed, so it can never certify anything else;
//! - an **intermediate** CA (keyCertSign, EKU codeSigning, path length 0) whose **name
//!   constraints** permit only the signer name's parent domain, so even a stolen
//!   intermediate key cannot mint signers for other names;
//! - the **signer** end entity (CN = DNS SAN = signer name, EKU codeSigning, KeyUsage
//!   digitalSignature), whose key signs collections. It is meant to be short-lived and
//!   re-issued from the intermediate with [`issue_signer`].
//!
//! Every certificate is backdated by [`CLOCK_SKEW`] so that clients with a slightly slow
//! clock accept a fresh chain, as Autograph does. Times are Unix seconds, passed in
//! explicitly, which is also how tests make expired and not-yet-valid chains.

use std::fmt;
use std::time::Duration;

use p384::ecdsa::VerifyingKey;
use p384::pkcs8::DecodePublicKey as _;
use rcgen::PublicKeyData as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
    PKCS_ECDSA_P384_SHA384, SanType,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, DnsName};
use time::OffsetDateTime;

use crate::PkiError;
use crate::fingerprint;

mod external;
pub use external::{IssuerChain, read_issuer_chain};

/// How far certificates are backdated to tolerate client clock skew (10 minutes).
pub const CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// The shortest lifetime given to the root and intermediate CAs (ten years); they outlive
/// many signer rotations.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// A freshly minted development PKI, all PEM text.
///
/// Its `Debug` output omits the private keys.
#[derive(Clone)]
pub struct DevPki {
    /// The self-signed root CA certificate.
    pub root_pem: String,
    /// SHA-256 of the root's DER as colon-separated upper-case hex (`3C:01:…`), the value
    /// clients pin.
    pub root_sha256: String,
    /// The intermediate CA certificate.
    pub intermediate_pem: String,
    /// The intermediate CA's PKCS#8 private key, needed to re-issue signers
    /// ([`issue_signer`]). Keep it offline if you can.
    pub intermediate_key_pem: String,
    /// The signer (end-entity) certificate.
    pub signer_cert_pem: String,
    /// The signer's PKCS#8 private key, for [`Signer::from_pem`](crate::Signer::from_pem).
    pub signer_key_pem: String,
    /// The x5u chain to publish: signer, then intermediate, then root.
    pub chain_pem: String,
}

impl DevPki {
    /// [`root_sha256`](Self::root_sha256) as bytes, for
    /// [`verify_chain`](crate::verify_chain).
    pub fn root_sha256_bytes(&self) -> [u8; 32] {
        fingerprint::parse(&self.root_sha256).expect("formatted by this module")
    }
}

impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPki")
            .field("root_sha256", &self.root_sha256)
            .field("root_pem", &self.root_pem)
            .field("intermediate_pem", &self.intermediate_pem)
            .field("intermediate_key_pem", &"[redacted]")
            .field("signer_cert_pem", &self.signer_cert_pem)
            .field("signer_key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Creates a root, a name-constrained intermediate and a signer certificate for
/// `signer_name` (e.g. `remote-settings.content-signature.mozilla.org`), valid from
/// `now_unix_secs - CLOCK_SKEW`.
///
/// The signer is valid until `now + validity`; the two CAs until
/// `now + max(validity, CA_LIFETIME)`. The intermediate permits the signer name's parent
/// domain (`content-signature.mozilla.org` and its subdomains in the example), or the name
/// itself if it has a single label.
pub fn init_dev_pki(
    signer_name: &str,
    validity: Duration,
    now_unix_secs: u64,
) -> Result<DevPki, PkiError> {
    check_signer_name(signer_name)?;
    let not_before = now_unix_secs.saturating_sub(CLOCK_SKEW.as_secs());
    let signer_not_after = now_unix_secs.saturating_add(validity.as_secs());
    let ca_not_after = now_unix_secs.saturating_add(validity.max(CA_LIFETIME).as_secs());

    let root_key = generate_key()?;
    let mut root_params = ca_params(
        "syncstack development content-signing root",
        not_before,
        ca_not_after,
    )?;
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root_cert = root_params.self_signed(&root_key).map_err(cert_error)?;
    let root_issuer = Issuer::new(root_params, root_key);

    let intermediate_key = generate_key()?;
    let mut intermediate_params = ca_params(
        "syncstack development content-signing intermediate",
        not_before,
        ca_not_after,
    )?;
    intermediate_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    intermediate_params.use_authority_key_identifier_extension = true;
    intermediate_params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(
            permitted_domain(signer_name).into(),
        )],
        excluded_subtrees: Vec::new(),
    });
    let intermediate_cert = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .map_err(cert_error)?;
    // Dropping the root issuer here discards the root's private key for good.
    drop(root_issuer);
    let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);

    let (signer_cert_pem, signer_key_pem) = issue(
        signer_params(signer_name, not_before, signer_not_after)?,
        &intermediate_issuer,
    )?;

    let root_pem = root_cert.pem();
    let intermediate_pem = intermediate_cert.pem();
    let chain_pem = format!("{signer_cert_pem}{intermediate_pem}{root_pem}");
    Ok(DevPki {
        root_sha256: fingerprint::format(&fingerprint::sha256(root_cert.der())),
        root_pem,
        intermediate_pem,
        intermediate_key_pem: intermediate_issuer.key().serialize_pem(),
        signer_cert_pem,
        signer_key_pem,
        chain_pem,
    })
}

/// Issues a new signer certificate and key for `signer_name` from an existing
/// intermediate (key rotation, or a CA of the operator's: see [`read_issuer_chain`]), valid from `not_before` to `not_after` (Unix seconds,
/// used as given: no clock-skew backdating is added).
///
/// The intermediate's key may be PKCS#8 or SEC1 (`EC PRIVATE KEY`). Returns
/// `(cert_pem, key_pem)`; the new chain is `cert_pem` followed by the intermediate
/// and root PEMs. The name is not checked against the intermediate's constraints here:
/// a signer outside them is issued, and refused by verification.
pub fn issue_signer(
    intermediate_cert_pem: &str,
    intermediate_key_pem: &str,
    signer_name: &str,
    not_before: u64,
    not_after: u64,
) -> Result<(String, String), PkiError> {
    check_signer_name(signer_name)?;
    let issuer = load_issuer(intermediate_cert_pem, intermediate_key_pem)?;
    issue(signer_params(signer_name, not_before, not_after)?, &issuer)
}

/// The end-entity profile: CN = DNS SAN = signer name, codeSigning, digitalSignature.
fn signer_params(
    signer_name: &str,
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, signer_name);
    params.subject_alt_names = vec![SanType::DnsName(
        signer_name
            .try_into()
            .map_err(|_| PkiError::SignerName(signer_name.into()))?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, not_before, not_after)?;
    Ok(params)
}

fn ca_params(
    common_name: &str,
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "syncstack");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    set_validity(&mut params, not_before, not_after)?;
    Ok(params)
}

/// Generates a key for `params` and has `issuer` certify it; returns `(cert_pem, key_pem)`.
fn issue(
    params: CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String), PkiError> {
    let key = generate_key()?;
    let cert = params.signed_by(&key, issuer).map_err(cert_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn load_issuer(cert_pem: &str, key_pem: &str) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&external::pkcs8_key_pem(key_pem)?)
        .map_err(|e| PkiError::Key(e.to_string()))?;
    if !key.is_compatible(&PKCS_ECDSA_P384_SHA384) {
        return Err(PkiError::Key("the intermediate key is not P-384".into()));
    }
    // rcgen does not check that the key belongs to the certificate; a mismatch would
    // produce signers no client accepts, so refuse it here.
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| PkiError::Certificate(format!("intermediate PEM: {e}")))?;
    let parsed = webpki::EndEntityCert::try_from(&cert)
        .map_err(|e| PkiError::Certificate(format!("intermediate: {e}")))?;
    let cert_key = VerifyingKey::from_public_key_der(parsed.subject_public_key_info().as_ref())
        .map_err(|_| PkiError::Certificate("the intermediate's key is not P-384".into()))?;
    if VerifyingKey::from_sec1_bytes(key.der_bytes()).ok() != Some(cert_key) {
        return Err(PkiError::Key(
            "the key does not match the intermediate certificate".into(),
        ));
    }
    Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_error)
}

fn generate_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(|e| PkiError::Key(e.to_string()))
}

fn set_validity(
    params: &mut CertificateParams,
    not_before: u64,
    not_after: u64,
) -> Result<(), PkiError> {
    if not_after <= not_before {
        return Err(PkiError::Validity(format!(
            "not_after {not_after} is not after not_before {not_before}"
        )));
    }
    params.not_before = unix_time(not_before)?;
    params.not_after = unix_time(not_after)?;
    Ok(())
}

fn unix_time(secs: u64) -> Result<OffsetDateTime, PkiError> {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or_else(|| PkiError::Validity(format!("unix time {secs} is out of range")))
}

fn check_signer_name(signer_name: &str) -> Result<(), PkiError> {
    DnsName::try_from(signer_name)
        .map(|_| ())
        .map_err(|_| PkiError::SignerName(signer_name.into()))
}

/// The name-constraint subtree for a signer: its parent domain, or itself if single-label.
fn permitted_domain(signer_name: &str) -> &str {
    match signer_name.split_once('.') {
        Some((_, parent)) if !parent.is_empty() => parent,
        _ => signer_name,
    }
}

fn cert_error(e: rcgen::Error) -> PkiError {
    PkiError::Certificate(e.to_string())
}

#[cfg(test)]
mod tests;
