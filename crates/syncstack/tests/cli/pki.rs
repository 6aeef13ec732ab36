//! `settings pki init --intermediate-cert/--intermediate-key`: the signer is issued under a
//! CA the operator already has (an organization's, or the intermediate Mozilla published
//! under the root Firefox trusts for local servers), and `renew` keeps using that CA.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use content_signature::{fingerprint, verify_chain};

use crate::process::run_syncstack;

const NAME: &str = "remote-settings.content-signature.mozilla.org";
const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../content-signature/tests/data"
);
/// Firefox's `ContentSignatureLocalRoot`.
const LOCAL_ROOT: &str = "5E:36:F2:14:DE:82:3F:8B:29:96:89:23:5F:03:41:AC:AF:A0:75:AF:82:CB:4C:D4:30:7C:3D:B3:43:39:2A:FE";
/// When Mozilla's published intermediate expires (2029-03-21 16:45:47 UTC).
const MOZILLA_INTERMEDIATE_NOT_AFTER: u64 = 1_868_805_947;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn init(dir: &Path, cert: &Path, key: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "settings",
        "pki",
        "init",
        "--intermediate-cert",
        cert.to_str().unwrap(),
        "--intermediate-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_syncstack(dir, &args, &[])
}

/// An organization's CA (made here with the dev PKI, root included in its file): the
/// signer chains to that root, the printed pin is the root's, nothing of the CA is
/// re-minted, and `renew` issues a new signer from the copied CA.
#[test]
fn init_under_an_organization_ca_and_renew_keep_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let org = content_signature::init_dev_pki(NAME, Duration::from_secs(86_400), now()).unwrap();
    let cert_file = dir.path().join("org-ca.pem");
    let key_file = dir.path().join("org-ca-key.pem");
    std::fs::write(
        &cert_file,
        format!("{}{}", org.intermediate_pem, org.root_pem),
    )
    .unwrap();
    std::fs::write(&key_file, &org.intermediate_key_pem).unwrap();

    let out = init(dir.path(), &cert_file, &key_file, &["--days", "30"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().last().unwrap(), org.root_sha256, "{stdout}");
    assert!(
        !stdout.contains("ContentSignatureLocalRoot"),
        "only Firefox's local root is named as such"
    );
    let signer = dir.path().join("syncstack-data/signer");
    assert_eq!(read(&signer, "intermediate.pem"), org.intermediate_pem);
    assert_eq!(
        read(&signer, "intermediate-key.pem"),
        org.intermediate_key_pem
    );
    assert_eq!(read(&signer, "root.pem"), org.root_pem);
    for (file, mode) in [
        ("intermediate-key.pem", 0o600),
        ("signer-key.pem", 0o600),
        ("chain.pem", 0o644),
    ] {
        let metadata = std::fs::metadata(signer.join(file)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, mode, "{file}");
    }
    let chain = read(&signer, "chain.pem");
    verify_chain(&chain, &org.root_sha256_bytes(), NAME, now()).unwrap();
    assert!(chain.starts_with(&read(&signer, "signer.pem")));
    assert_ne!(
        read(&signer, "signer.pem"),
        org.signer_cert_pem,
        "a new signer"
    );

    let again = init(dir.path(), &cert_file, &key_file, &[]);
    assert!(!again.status.success(), "init does not overwrite a PKI");

    let renew = run_syncstack(
        dir.path(),
        &["settings", "pki", "renew", "--days", "7"],
        &[],
    );
    assert!(renew.status.success(), "{renew:?}");
    let renewed = read(&signer, "chain.pem");
    assert_ne!(renewed, chain);
    verify_chain(&renewed, &org.root_sha256_bytes(), NAME, now()).unwrap();
    assert!(
        verify_chain(&renewed, &org.root_sha256_bytes(), NAME, now() + 8 * 86_400).is_err(),
        "--days 7 was honoured"
    );
    assert_eq!(read(&signer, "intermediate.pem"), org.intermediate_pem);
}

/// Mozilla's published development intermediate: the chain ends at Firefox's local root,
/// whose hash is printed, and the signer is cut to the intermediate's own expiry; after
/// that date init refuses the intermediate.
#[test]
fn init_under_the_firefox_local_dev_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(DATA);
    let out = init(
        dir.path(),
        &data.join("mozilla-local-dev-intermediate.pem"),
        &data.join("mozilla-local-dev-intermediate-key.pem"),
        &["--days", "36500"],
    );
    if now() >= MOZILLA_INTERMEDIATE_NOT_AFTER {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().last().unwrap(), LOCAL_ROOT);
    assert!(stdout.contains("ContentSignatureLocalRoot"), "{stdout}");
    assert!(
        stdout.contains("valid until 2029-03-21 16:45:47 UTC (when the CA itself expires)"),
        "{stdout}"
    );
    let chain = read(&dir.path().join("syncstack-data/signer"), "chain.pem");
    let pin = fingerprint::parse(LOCAL_ROOT).unwrap();
    verify_chain(&chain, &pin, NAME, now()).unwrap();
    verify_chain(&chain, &pin, NAME, MOZILLA_INTERMEDIATE_NOT_AFTER - 60).unwrap();
}

/// A CA given without its root (no root.pem is written; renew works without it), a key
/// that is not the CA's, a signer name outside the CA's name constraints, and one flag
/// without the other are refused, the failing ones before anything is written.
#[test]
fn init_under_a_ca_refuses_what_clients_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let org = content_signature::init_dev_pki(NAME, Duration::from_secs(86_400), now()).unwrap();
    let other = content_signature::init_dev_pki(NAME, Duration::from_secs(86_400), now()).unwrap();
    let with_root = dir.path().join("ca.pem");
    let alone = dir.path().join("intermediate-only.pem");
    let key = dir.path().join("key.pem");
    let wrong_key = dir.path().join("wrong-key.pem");
    std::fs::write(
        &with_root,
        format!("{}{}", org.intermediate_pem, org.root_pem),
    )
    .unwrap();
    std::fs::write(&alone, &org.intermediate_pem).unwrap();
    std::fs::write(&key, &org.intermediate_key_pem).unwrap();
    std::fs::write(&wrong_key, &other.intermediate_key_pem).unwrap();
    let signer = dir.path().join("syncstack-data/signer");

    let out = init(dir.path(), &with_root, &wrong_key, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
    let out = init(
        dir.path(),
        &with_root,
        &key,
        &["--signer-name", "signer.example.org"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name constraints"),
        "{out:?}"
    );
    assert!(!signer.exists(), "nothing written by a refused init");
    let out = run_syncstack(
        dir.path(),
        &[
            "settings",
            "pki",
            "init",
            "--intermediate-cert",
            with_root.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success(), "--intermediate-key is required too");

    let out = init(dir.path(), &alone, &key, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no root certificate"));
    assert!(!signer.join("root.pem").exists());
    let renew = run_syncstack(dir.path(), &["settings", "pki", "renew"], &[]);
    assert!(renew.status.success(), "{renew:?}");
    // The chain has no root, so a client pinning it needs it appended to verify.
    let chain = read(&signer, "chain.pem");
    assert!(verify_chain(&chain, &org.root_sha256_bytes(), NAME, now()).is_err());
    let completed = format!("{chain}{}", org.root_pem);
    verify_chain(&completed, &org.root_sha256_bytes(), NAME, now()).unwrap();
}
