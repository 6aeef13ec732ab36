//! Mozilla's public content-signature test vector: a signature made by Mozilla's signer
//! (Autograph) and its real non-production x5u chain, so our verifier is checked against
//! something we did not produce ourselves. Sources are cited in `tests/data/README.md`
//! and in the `source` field of `tests/data/mozilla-vector.json`.

use content_signature::{
    VerifyError, fingerprint, signed_message, signed_payload, verify, verify_chain,
    verify_signature,
};
use serde_json::Value;

const CHAIN: &str = include_str!("data/mozilla-nonprod-2021.chain.pem");
const VECTOR: &str = include_str!("data/mozilla-vector.json");

struct Vector {
    records: Vec<Value>,
    timestamp: u64,
    message: Vec<u8>,
    signature: String,
    root: [u8; 32],
    signer_name: String,
    verify_at: u64,
}

fn vector() -> Vector {
    let v: Value = serde_json::from_str(VECTOR).unwrap();
    assert_eq!(v["chain_file"], "mozilla-nonprod-2021.chain.pem");
    Vector {
        records: v["records"].as_array().unwrap().clone(),
        timestamp: v["timestamp"].as_u64().unwrap(),
        message: v["message"].as_str().unwrap().as_bytes().to_vec(),
        signature: v["signature"].as_str().unwrap().to_owned(),
        root: fingerprint::parse(v["root_sha256"].as_str().unwrap()).unwrap(),
        signer_name: v["signer_name"].as_str().unwrap().to_owned(),
        verify_at: v["verify_at"].as_u64().unwrap(),
    }
}

/// The certificates of the chain as PEM blocks, in file order.
fn pem_blocks() -> Vec<String> {
    CHAIN
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter_map(|part| {
            part.find("-----BEGIN")
                .map(|start| part[start..].to_owned())
        })
        .collect()
}

#[test]
fn our_message_matches_the_vector() {
    let v = vector();
    let payload = signed_payload(&v.records, v.timestamp).unwrap();
    assert_eq!(signed_message(&payload), v.message);
}

#[test]
fn mozilla_signature_verifies() {
    let v = vector();
    let leaf = verify_chain(CHAIN, &v.root, &v.signer_name, v.verify_at).unwrap();
    leaf.verify_signature(&v.message, &v.signature).unwrap();
    verify_signature(&v.message, &v.signature, leaf.der()).unwrap();
    verify(
        &v.records,
        v.timestamp,
        &v.signature,
        CHAIN,
        &v.root,
        &v.signer_name,
        v.verify_at,
    )
    .unwrap();
    // The NSS header form is accepted too.
    leaf.verify_signature(&v.message, &format!("p384ecdsa={}", v.signature))
        .unwrap();
}

#[test]
fn dropping_the_nul_fails() {
    let v = vector();
    let leaf = verify_chain(CHAIN, &v.root, &v.signer_name, v.verify_at).unwrap();
    let without_nul: Vec<u8> = v.message.iter().copied().filter(|&b| b != 0).collect();
    assert_eq!(without_nul.len(), v.message.len() - 1);
    assert_eq!(
        leaf.verify_signature(&without_nul, &v.signature),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_modified_timestamp_fails() {
    let v = vector();
    let result = verify(
        &v.records,
        v.timestamp + 1,
        &v.signature,
        CHAIN,
        &v.root,
        &v.signer_name,
        v.verify_at,
    );
    assert_eq!(result, Err(VerifyError::BadSignature));
}

#[test]
fn outside_the_validity_period() {
    let v = vector();
    // 2008-07-09, before any certificate of the chain.
    assert!(matches!(
        verify_chain(CHAIN, &v.root, &v.signer_name, 1_215_559_719),
        Err(VerifyError::NotYetValid { .. })
    ));
    // 2021-05-01, after the end entity's notAfter (2021-04-24T15:04:05Z).
    assert_eq!(
        verify_chain(CHAIN, &v.root, &v.signer_name, 1_619_827_200).unwrap_err(),
        VerifyError::Expired {
            not_after: 1_619_276_645
        }
    );
}

#[test]
fn wrong_signer_name_and_root() {
    let v = vector();
    assert_eq!(
        verify_chain(CHAIN, &v.root, "some.hostname.org", v.verify_at).unwrap_err(),
        VerifyError::WrongSignerName("some.hostname.org".into())
    );
    // The CN and SAN name the signer; its parent domain is not the signer.
    assert!(verify_chain(CHAIN, &v.root, "content-signature.mozilla.org", v.verify_at).is_err());
    assert_eq!(
        verify_chain(CHAIN, &[0u8; 32], &v.signer_name, v.verify_at).unwrap_err(),
        VerifyError::WrongRoot
    );
}

#[test]
fn chain_order_and_completeness() {
    let v = vector();
    let blocks = pem_blocks();
    assert_eq!(blocks.len(), 3);
    let (ee, intermediate, root) = (&blocks[0], &blocks[1], &blocks[2]);

    let reordered = format!("{ee}{root}{intermediate}");
    verify_chain(&reordered, &v.root, &v.signer_name, v.verify_at).unwrap();

    let missing_intermediate = format!("{ee}{root}");
    assert_eq!(
        verify_chain(&missing_intermediate, &v.root, &v.signer_name, v.verify_at).unwrap_err(),
        VerifyError::UnknownIssuer
    );

    let missing_root = format!("{ee}{intermediate}");
    assert_eq!(
        verify_chain(&missing_root, &v.root, &v.signer_name, v.verify_at).unwrap_err(),
        VerifyError::WrongRoot
    );
}

#[test]
fn a_truncated_signature_is_malformed() {
    let v = vector();
    let leaf = verify_chain(CHAIN, &v.root, &v.signer_name, v.verify_at).unwrap();
    assert!(matches!(
        leaf.verify_signature(&v.message, &v.signature[..124]),
        Err(VerifyError::Malformed(_))
    ));
}
