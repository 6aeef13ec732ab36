//! Issuing signers under a CA the operator already has, instead of a fresh development root.
//!
//! Two cases need this. An organization whose clients already trust its own CA wants the
//! content-signing certificate to chain to it, not to a root nobody pins. And a Remote
//! Settings server for Firefox developers must chain to the one root an unmodified Firefox
//! trusts for local servers (`ContentSignatureLocalRoot`): no root key exists for it, only
//! the published key of the intermediate under it, so the signer can only be issued from
//! that intermediate.
//!
//! The operator hands over the issuing CA's certificate, optionally followed by the
//! certificates above it up to a self-signed root (one PEM file, issuer first), and its key.
//! [`read_issuer_chain`] splits that file; [`issue_signer`](super::issue_signer) issues
//! from its first certificate. When the root is in the file, callers can check the new
//! chain end to end with [`verify_chain`](crate::verify_chain) before publishing it.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::PkiError;
use crate::fingerprint;

/// An existing CA's certificates, split into what goes into every x5u chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerChain {
    /// The issuing CA's certificate, then any further intermediates, as PEM (the root is
    /// not included). Signers are issued by the first one.
    pub intermediates_pem: String,
    /// The self-signed root above the issuing CA, when the file carried it.
    pub root_pem: Option<String>,
    /// SHA-256 of the root's DER in the `3C:01:…` form clients pin, when the root is known
    /// (the issuing CA's own, when it is a self-signed root itself).
    pub root_sha256: Option<String>,
    /// The issuing CA's subject, for messages.
    pub subject: String,
    /// When the issuing CA expires (Unix seconds): no signer it issues verifies after that.
    pub not_after: u64,
}

/// Splits a PEM file holding an issuing CA certificate, optionally followed by the
/// certificates above it (a trailing self-signed certificate is taken as the root).
///
/// Refuses a file without certificates and a first certificate that is not a CA (a signer
/// issued by it would be refused by every client).
pub fn read_issuer_chain(pem: &str) -> Result<IssuerChain, PkiError> {
    let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Certificate(format!("issuer PEM: {e}")))?;
    let Some(first) = ders.first() else {
        return Err(PkiError::Certificate(
            "the issuer file holds no certificate".into(),
        ));
    };
    let issuer = parse(first)?;
    if !issuer.is_ca() {
        return Err(PkiError::Certificate(format!(
            "{} is not a CA certificate (no basicConstraints CA:TRUE), so it cannot issue signers",
            issuer.subject()
        )));
    }
    let subject = issuer.subject().to_string();
    let not_after = u64::try_from(issuer.validity().not_after.timestamp()).unwrap_or(0);

    let last = ders.last().expect("not empty");
    let top_is_root = is_self_signed(&parse(last)?);
    // A self-signed CA given alone issues directly: it is its own root, already in every
    // chain as the issuer, so it is not repeated as a separate root.
    let (intermediates, root) = if top_is_root && ders.len() > 1 {
        (&ders[..ders.len() - 1], Some(last))
    } else {
        (&ders[..], None)
    };
    Ok(IssuerChain {
        intermediates_pem: intermediates.iter().map(|d| to_pem(d)).collect(),
        root_pem: root.map(|d| to_pem(d)),
        root_sha256: top_is_root.then(|| fingerprint::format(&fingerprint::sha256(last))),
        subject,
        not_after,
    })
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::Certificate(format!("issuer certificate: {e}")))
}

/// Subject equals issuer. (Whether its signature is good is for path validation to say:
/// a forged root simply fails [`verify_chain`](crate::verify_chain).)
fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw()
}

fn to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Turns a P-384 key in SEC1 form (`EC PRIVATE KEY`, what OpenSSL and Autograph write) into
/// PKCS#8, the only form the certificate generator reads; PKCS#8 input is returned as is.
pub(super) fn pkcs8_key_pem(key_pem: &str) -> Result<String, PkiError> {
    use p384::pkcs8::{EncodePrivateKey as _, LineEnding};
    if !key_pem.contains("-----BEGIN EC PRIVATE KEY-----") {
        return Ok(key_pem.to_owned());
    }
    let key = p384::SecretKey::from_sec1_pem(key_pem)
        .map_err(|_| PkiError::Key("not a P-384 key in SEC1 (EC PRIVATE KEY) form".into()))?;
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| PkiError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::{Signer, VerifyError, init_dev_pki, issue_signer, signed_message, signed_payload};

    /// The intermediate Mozilla published (Autograph's development configuration) under
    /// `ContentSignatureLocalRoot`, the root Firefox trusts for servers on localhost,
    /// followed by that root; see `tests/data/README.md`.
    const MOZILLA_INTERMEDIATE: &str =
        include_str!("../../tests/data/mozilla-local-dev-intermediate.pem");
    /// Its key, as published: SEC1 (`EC PRIVATE KEY`).
    const MOZILLA_INTERMEDIATE_KEY: &str =
        include_str!("../../tests/data/mozilla-local-dev-intermediate-key.pem");
    /// SHA-256 of `ContentSignatureLocalRoot`, as embedded in Firefox.
    const LOCAL_ROOT_SHA256: &str = "5E:36:F2:14:DE:82:3F:8B:29:96:89:23:5F:03:41:AC:\
                                     AF:A0:75:AF:82:CB:4C:D4:30:7C:3D:B3:43:39:2A:FE";
    const SIGNER: &str = "remote-settings.content-signature.mozilla.org";
    /// 2027-01-15, inside the intermediate's validity.
    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 24 * 60 * 60;

    #[test]
    fn mozilla_file_splits_into_intermediate_and_local_root() {
        let chain = read_issuer_chain(MOZILLA_INTERMEDIATE).unwrap();
        assert_eq!(chain.root_sha256.as_deref(), Some(LOCAL_ROOT_SHA256));
        assert!(
            chain.subject.contains("CN=csinter1553186747"),
            "{}",
            chain.subject
        );
        // 2029-03-21 16:45:47 UTC: the day this route stops working.
        assert_eq!(chain.not_after, 1_868_805_947);
        assert_eq!(
            chain.intermediates_pem.matches("BEGIN CERTIFICATE").count(),
            1
        );
        assert_eq!(
            format!("{}{}", chain.intermediates_pem, chain.root_pem.unwrap()),
            MOZILLA_INTERMEDIATE,
            "re-encoded byte for byte"
        );
    }

    /// A signer issued from Mozilla's published intermediate and its SEC1 key verifies
    /// under the local root pinned by its hash, as Firefox verifies it; the intermediate's
    /// name constraints still apply to it.
    #[test]
    fn signers_issued_under_the_mozilla_intermediate_verify_under_the_local_root() {
        let issuer = read_issuer_chain(MOZILLA_INTERMEDIATE).unwrap();
        let root = fingerprint::parse(LOCAL_ROOT_SHA256).unwrap();
        let (cert, key) = issue_signer(
            &issuer.intermediates_pem,
            MOZILLA_INTERMEDIATE_KEY,
            SIGNER,
            NOW - 600,
            NOW + 30 * DAY,
        )
        .unwrap();
        let chain = format!(
            "{cert}{}{}",
            issuer.intermediates_pem,
            issuer.root_pem.as_deref().unwrap()
        );
        let records = vec![json!({"id": "a", "last_modified": 1})];
        let payload = signed_payload(&records, 1).unwrap();
        let signature = Signer::from_pem(&key)
            .unwrap()
            .sign(&signed_message(&payload));
        crate::verify(&records, 1, &signature, &chain, &root, SIGNER, NOW).unwrap();
        // Without the root in the chain (what Firefox also accepts), our client refuses:
        // it only trusts a chain carrying the pinned root.
        let without_root = format!("{cert}{}", issuer.intermediates_pem);
        assert!(crate::verify_chain(&without_root, &root, SIGNER, NOW).is_err());

        let outside = "remote-settings.example.org";
        let (cert, _) = issue_signer(
            &issuer.intermediates_pem,
            MOZILLA_INTERMEDIATE_KEY,
            outside,
            NOW - 600,
            NOW + DAY,
        )
        .unwrap();
        let chain = format!("{cert}{}", MOZILLA_INTERMEDIATE);
        assert_eq!(
            crate::verify_chain(&chain, &root, outside, NOW).err(),
            Some(VerifyError::NameConstraints)
        );
    }

    #[test]
    fn an_intermediate_alone_has_no_root() {
        let pki = init_dev_pki(SIGNER, Duration::from_secs(DAY), NOW).unwrap();
        let chain = read_issuer_chain(&pki.intermediate_pem).unwrap();
        assert_eq!(chain.root_pem, None);
        assert_eq!(chain.root_sha256, None);
        assert_eq!(chain.intermediates_pem, pki.intermediate_pem);
        // Intermediate, then root: the dev PKI's own pin.
        let both = format!("{}{}", pki.intermediate_pem, pki.root_pem);
        let chain = read_issuer_chain(&both).unwrap();
        assert_eq!(chain.root_sha256, Some(pki.root_sha256.clone()));
    }

    /// A self-signed CA given alone is both the issuer and the root clients pin.
    #[test]
    fn a_self_signed_ca_alone_is_its_own_root() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_ECDSA_P384_SHA384};
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let chain = read_issuer_chain(&ca.pem()).unwrap();
        assert_eq!(chain.root_pem, None, "not repeated in the chain");
        let pin = fingerprint::sha256(ca.der());
        assert_eq!(chain.root_sha256, Some(fingerprint::format(&pin)));
        let now = 1_800_000_000;
        let (cert, _) = issue_signer(
            &chain.intermediates_pem,
            &key.serialize_pem(),
            SIGNER,
            now - 60,
            now + DAY,
        )
        .unwrap();
        let full = format!("{cert}{}", chain.intermediates_pem);
        crate::verify_chain(&full, &pin, SIGNER, now).unwrap();
    }

    #[test]
    fn refuses_files_that_cannot_issue() {
        let pki = init_dev_pki(SIGNER, Duration::from_secs(DAY), NOW).unwrap();
        assert!(matches!(
            read_issuer_chain(&pki.signer_cert_pem),
            Err(PkiError::Certificate(m)) if m.contains("not a CA")
        ));
        assert!(matches!(
            read_issuer_chain("no certificate here"),
            Err(PkiError::Certificate(_))
        ));
        assert!(matches!(
            pkcs8_key_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
            Err(PkiError::Key(_))
        ));
    }
}
