//! Round trips through the development PKI: sign with the dev signer, verify against the
//! dev root, and check that each kind of breakage is refused for the right reason.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;
use crate::{Signer, VerifyError, signed_message, signed_payload, verify, verify_chain};

const SIGNER: &str = "remote-settings.content-signature.mozilla.org";
const NOW: u64 = 1_750_000_000;
const DAY: u64 = 24 * 60 * 60;
const VALIDITY: Duration = Duration::from_secs(30 * DAY);
const TIMESTAMP: u64 = 1_749_999_999_123;

/// One PKI for the whole module: key generation and P-384 arithmetic are slow unoptimized.
fn pki() -> &'static DevPki {
    static PKI: OnceLock<DevPki> = OnceLock::new();
    PKI.get_or_init(|| init_dev_pki(SIGNER, VALIDITY, NOW).unwrap())
}

fn records() -> Vec<Value> {
    vec![
        json!({"id": "b", "last_modified": 2, "name": "Zoë"}),
        json!({"id": "a", "last_modified": 1, "enabled": true}),
        json!({"id": "c", "last_modified": 3, "deleted": true}),
    ]
}

fn sign(key_pem: &str, records: &[Value], timestamp: u64) -> String {
    let payload = signed_payload(records, timestamp).unwrap();
    Signer::from_pem(key_pem)
        .unwrap()
        .sign(&signed_message(&payload))
}

fn valid_signature() -> &'static str {
    static SIG: OnceLock<String> = OnceLock::new();
    SIG.get_or_init(|| sign(&pki().signer_key_pem, &records(), TIMESTAMP))
}

fn check(chain: &str, signer_name: &str, at: u64) -> Result<(), VerifyError> {
    verify(
        &records(),
        TIMESTAMP,
        valid_signature(),
        chain,
        &pki().root_sha256_bytes(),
        signer_name,
        at,
    )
}

fn chain_of(ee: &str) -> String {
    format!("{ee}{}{}", pki().intermediate_pem, pki().root_pem)
}

/// Issues a signer from the dev intermediate with custom parameters.
fn custom_signer(params: CertificateParams) -> (String, String) {
    let issuer = load_issuer(&pki().intermediate_pem, &pki().intermediate_key_pem).unwrap();
    issue(params, &issuer).unwrap()
}

#[test]
fn round_trip_verifies() {
    check(&pki().chain_pem, SIGNER, NOW).unwrap();
    check(&pki().chain_pem, SIGNER, NOW + 29 * DAY).unwrap();
    // Backdated for clock skew.
    check(&pki().chain_pem, SIGNER, NOW - 60).unwrap();
}

#[test]
fn pki_shape() {
    let pki = pki();
    assert_eq!(pki.root_sha256.len(), 32 * 3 - 1);
    assert!(pki.root_sha256.split(':').all(|b| {
        b.len() == 2
            && b.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    }));
    assert_eq!(
        pki.chain_pem,
        format!(
            "{}{}{}",
            pki.signer_cert_pem, pki.intermediate_pem, pki.root_pem
        )
    );
    assert!(pki.signer_key_pem.contains("BEGIN PRIVATE KEY"));
    let debug = format!("{pki:?}");
    assert!(debug.contains("[redacted]"));
    assert!(!debug.contains("PRIVATE KEY"));
    // The signer's published public key is the one in its certificate.
    let leaf = verify_chain(&pki.chain_pem, &pki.root_sha256_bytes(), SIGNER, NOW).unwrap();
    let signer = Signer::from_pem(&pki.signer_key_pem).unwrap();
    assert_eq!(*leaf.public_key(), signer.verifying_key());
}

#[test]
fn tampered_record_is_a_bad_signature() {
    let mut tampered = records();
    tampered[0]["name"] = json!("Zoe");
    let result = verify(
        &tampered,
        TIMESTAMP,
        valid_signature(),
        &pki().chain_pem,
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW,
    );
    assert_eq!(result, Err(VerifyError::BadSignature));
    // Changing only the timestamp breaks it too.
    let result = verify(
        &records(),
        TIMESTAMP + 1,
        valid_signature(),
        &pki().chain_pem,
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW,
    );
    assert_eq!(result, Err(VerifyError::BadSignature));
}

#[test]
fn tombstones_and_order_do_not_matter() {
    let mut reordered: Vec<Value> = records().into_iter().rev().collect();
    reordered.retain(|r| r.get("deleted").is_none());
    verify(
        &reordered,
        TIMESTAMP,
        valid_signature(),
        &pki().chain_pem,
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW,
    )
    .unwrap();
}

#[test]
fn tampered_signature_is_a_bad_signature() {
    let sig = valid_signature();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{flipped}{}", &sig[1..]);
    let result = verify(
        &records(),
        TIMESTAMP,
        &tampered,
        &pki().chain_pem,
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW,
    );
    assert_eq!(result, Err(VerifyError::BadSignature));
    // The NSS header form is accepted.
    let header = format!("p384ecdsa={sig}");
    verify(
        &records(),
        TIMESTAMP,
        &header,
        &pki().chain_pem,
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW,
    )
    .unwrap();
}

#[test]
fn wrong_root_pin() {
    let other = [0x42u8; 32];
    assert_eq!(
        verify_chain(&pki().chain_pem, &other, SIGNER, NOW).unwrap_err(),
        VerifyError::WrongRoot
    );
    // A chain that does not carry the pinned root is refused outright, even though it is
    // otherwise intact.
    let chain_without_root = format!("{}{}", pki().signer_cert_pem, pki().intermediate_pem);
    assert_eq!(
        verify_chain(&chain_without_root, &pki().root_sha256_bytes(), SIGNER, NOW).unwrap_err(),
        VerifyError::WrongRoot
    );
    // Whatever certificate the pin names is the trust anchor: pinning the intermediate
    // makes it one. The pin is the whole of the trust decision.
    let intermediate_pin = fingerprint::sha256(
        &CertificateDer::from_pem_slice(pki().intermediate_pem.as_bytes()).unwrap(),
    );
    assert!(verify_chain(&chain_without_root, &intermediate_pin, SIGNER, NOW).is_ok());
}

#[test]
fn expired_signer() {
    let err = check(&pki().chain_pem, SIGNER, NOW + 31 * DAY).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Expired {
            not_after: NOW + 30 * DAY
        }
    );
    assert_eq!(err.reason(), "expired_cert");

    let (cert, key) = issue_signer(
        &pki().intermediate_pem,
        &pki().intermediate_key_pem,
        SIGNER,
        NOW - 10 * DAY,
        NOW - DAY,
    )
    .unwrap();
    let sig = sign(&key, &records(), TIMESTAMP);
    let result = verify(
        &records(),
        TIMESTAMP,
        &sig,
        &chain_of(&cert),
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW,
    );
    assert_eq!(
        result,
        Err(VerifyError::Expired {
            not_after: NOW - DAY
        })
    );
}

#[test]
fn not_yet_valid_signer() {
    let (cert, _) = issue_signer(
        &pki().intermediate_pem,
        &pki().intermediate_key_pem,
        SIGNER,
        NOW + DAY,
        NOW + 10 * DAY,
    )
    .unwrap();
    assert_eq!(
        verify_chain(&chain_of(&cert), &pki().root_sha256_bytes(), SIGNER, NOW).unwrap_err(),
        VerifyError::NotYetValid {
            not_before: NOW + DAY
        }
    );
    // Before the whole PKI existed.
    assert!(matches!(
        check(&pki().chain_pem, SIGNER, NOW - DAY),
        Err(VerifyError::NotYetValid { .. })
    ));
}

#[test]
fn wrong_signer_name() {
    assert_eq!(
        check(
            &pki().chain_pem,
            "onecrl.content-signature.mozilla.org",
            NOW
        ),
        Err(VerifyError::WrongSignerName(
            "onecrl.content-signature.mozilla.org".into()
        ))
    );
    assert!(matches!(
        check(&pki().chain_pem, "not a name", NOW),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn missing_intermediate() {
    let chain = format!("{}{}", pki().signer_cert_pem, pki().root_pem);
    assert_eq!(check(&chain, SIGNER, NOW), Err(VerifyError::UnknownIssuer));
}

#[test]
fn chain_order_does_not_matter_after_the_end_entity() {
    let chain = format!(
        "{}{}{}",
        pki().signer_cert_pem,
        pki().root_pem,
        pki().intermediate_pem
    );
    check(&chain, SIGNER, NOW).unwrap();
    // But the end entity must come first.
    let chain = format!(
        "{}{}{}",
        pki().intermediate_pem,
        pki().signer_cert_pem,
        pki().root_pem
    );
    assert!(check(&chain, SIGNER, NOW).is_err());
}

#[test]
fn signer_outside_name_constraints() {
    let (cert, key) = issue_signer(
        &pki().intermediate_pem,
        &pki().intermediate_key_pem,
        "evil.example.com",
        NOW - DAY,
        NOW + DAY,
    )
    .unwrap();
    let sig = sign(&key, &records(), TIMESTAMP);
    let result = verify(
        &records(),
        TIMESTAMP,
        &sig,
        &chain_of(&cert),
        &pki().root_sha256_bytes(),
        "evil.example.com",
        NOW,
    );
    assert_eq!(result, Err(VerifyError::NameConstraints));
    // The parent domain itself is inside the constraint (RFC 5280 DNS subtree), as is a
    // sibling signer.
    for name in [
        "content-signature.mozilla.org",
        "onecrl.content-signature.mozilla.org",
    ] {
        let (cert, _) = issue_signer(
            &pki().intermediate_pem,
            &pki().intermediate_key_pem,
            name,
            NOW - DAY,
            NOW + DAY,
        )
        .unwrap();
        verify_chain(&chain_of(&cert), &pki().root_sha256_bytes(), name, NOW).unwrap();
    }
    // A look-alike suffix is not a subdomain.
    let (cert, _) = issue_signer(
        &pki().intermediate_pem,
        &pki().intermediate_key_pem,
        "x.evilcontent-signature.mozilla.org",
        NOW - DAY,
        NOW + DAY,
    )
    .unwrap();
    assert_eq!(
        verify_chain(
            &chain_of(&cert),
            &pki().root_sha256_bytes(),
            "x.evilcontent-signature.mozilla.org",
            NOW
        )
        .unwrap_err(),
        VerifyError::NameConstraints
    );
}

#[test]
fn signer_without_code_signing_eku() {
    let mut params = signer_params(SIGNER, NOW - DAY, NOW + DAY).unwrap();
    params.extended_key_usages.clear();
    let (cert, _) = custom_signer(params);
    assert_eq!(
        verify_chain(&chain_of(&cert), &pki().root_sha256_bytes(), SIGNER, NOW).unwrap_err(),
        VerifyError::NotCodeSigning
    );

    let mut params = signer_params(SIGNER, NOW - DAY, NOW + DAY).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (cert, _) = custom_signer(params);
    assert_eq!(
        verify_chain(&chain_of(&cert), &pki().root_sha256_bytes(), SIGNER, NOW).unwrap_err(),
        VerifyError::NotCodeSigning
    );
}

#[test]
fn ca_used_as_signer_is_refused() {
    // The intermediate presented as the end entity (with its own chain behind it).
    let chain = format!("{}{}", pki().intermediate_pem, pki().root_pem);
    assert!(matches!(
        verify_chain(&chain, &pki().root_sha256_bytes(), SIGNER, NOW),
        Err(VerifyError::BadChain(_)) | Err(VerifyError::UnknownIssuer)
    ));
}

#[test]
fn expired_root_is_refused() {
    // A root that expires before the signer does (not something init_dev_pki makes).
    let root_key = generate_key().unwrap();
    let mut root_params = ca_params("short-lived root", NOW - 10 * DAY, NOW - DAY).unwrap();
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let (ee, _) = issue(
        signer_params(SIGNER, NOW - DAY, NOW + DAY).unwrap(),
        &root_issuer,
    )
    .unwrap();
    let chain = format!("{ee}{}", root.pem());
    assert_eq!(
        verify_chain(&chain, &fingerprint::sha256(root.der()), SIGNER, NOW).unwrap_err(),
        VerifyError::Expired {
            not_after: NOW - DAY
        }
    );
}

#[test]
fn key_rotation() {
    let (cert, key) = issue_signer(
        &pki().intermediate_pem,
        &pki().intermediate_key_pem,
        SIGNER,
        NOW,
        NOW + 60 * DAY,
    )
    .unwrap();
    let chain = chain_of(&cert);
    let new_sig = sign(&key, &records(), TIMESTAMP);
    verify(
        &records(),
        TIMESTAMP,
        &new_sig,
        &chain,
        &pki().root_sha256_bytes(),
        SIGNER,
        NOW + 45 * DAY,
    )
    .unwrap();
    // The old key's signature does not verify against the new certificate.
    assert_eq!(check(&chain, SIGNER, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn issue_signer_refuses_bad_input() {
    let pki = pki();
    let other_key = generate_key().unwrap().serialize_pem();
    assert!(matches!(
        issue_signer(&pki.intermediate_pem, &other_key, SIGNER, NOW, NOW + DAY),
        Err(PkiError::Key(_))
    ));
    assert!(matches!(
        issue_signer(
            &pki.intermediate_pem,
            &pki.intermediate_key_pem,
            "bad name!",
            NOW,
            NOW + DAY
        ),
        Err(PkiError::SignerName(_))
    ));
    assert!(matches!(
        issue_signer(
            &pki.intermediate_pem,
            &pki.intermediate_key_pem,
            SIGNER,
            NOW,
            NOW
        ),
        Err(PkiError::Validity(_))
    ));
    assert!(matches!(
        issue_signer(
            "not a pem",
            &pki.intermediate_key_pem,
            SIGNER,
            NOW,
            NOW + DAY
        ),
        Err(PkiError::Certificate(_))
    ));
    assert!(matches!(
        init_dev_pki("", VALIDITY, NOW),
        Err(PkiError::SignerName(_))
    ));
}

#[test]
fn permitted_domain_is_the_parent() {
    assert_eq!(permitted_domain(SIGNER), "content-signature.mozilla.org");
    assert_eq!(permitted_domain("signer.local"), "local");
    assert_eq!(permitted_domain("localhost"), "localhost");
}
