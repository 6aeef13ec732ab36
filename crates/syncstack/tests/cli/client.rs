//! `syncstack client` against a real `syncstack serve`: login, read and write, listings,
//! export, key rotation, Tier 2, and a wrong key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::process::{Node, run_ok, run_syncstack};

fn client(dir: &Path, profile: &str, args: &[&str], input: &str) -> String {
    let mut all = vec!["client", "--profile", profile];
    all.extend_from_slice(args);
    run_ok(dir, &all, &[], input)
}

#[tokio::test]
async fn a_user_syncs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Node::start_in(d, &[], &[]).await;
    run_ok(
        d,
        &["accounts", "add", "dana", "--password-stdin"],
        &[],
        "s3cret\n",
    );
    let login = client(
        d,
        "p.json",
        &[
            "login",
            "--token-server",
            &server.url,
            "--account",
            "dana",
            "--password-stdin",
        ],
        "s3cret\n",
    );
    assert!(
        login.contains("logged in") && login.contains("new account key"),
        "{login}"
    );
    let mode = std::fs::metadata(d.join("p.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let bookmark =
        r#"{"id": "bm1", "type": "bookmark", "title": "Rust", "bmkUri": "https://rust-lang.org"}"#;
    client(d, "p.json", &["put", "bookmarks"], bookmark);
    client(
        d,
        "p.json",
        &["put", "passwords"],
        r#"{"id": "pw1", "hostname": "https://x.test", "username": "dana", "password": "hunter2"}"#,
    );
    let got: Value =
        serde_json::from_str(&client(d, "p.json", &["get", "bookmarks", "bm1"], "")).unwrap();
    assert_eq!(got["title"], "Rust");
    assert_eq!(
        client(d, "p.json", &["bookmarks"], "").trim(),
        "Rust  https://rust-lang.org"
    );
    let passwords = client(d, "p.json", &["passwords"], "");
    assert!(
        passwords.contains("https://x.test") && !passwords.contains("hunter2"),
        "{passwords}"
    );
    let status = client(d, "p.json", &["status"], "");
    assert!(
        status.contains("version 5") && status.contains("client tier:   1"),
        "{status}"
    );

    // Export: every collection, decrypted, in a private file.
    client(d, "p.json", &["export", "all.json"], "");
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("all.json")).unwrap()).unwrap();
    assert_eq!(exported["bookmarks"][0]["bmkUri"], "https://rust-lang.org");
    assert!(exported.get("crypto").is_none());
    assert_eq!(
        std::fs::metadata(d.join("all.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Key rotation keeps the data readable, also to a Tier 2 client.
    let rotated = client(d, "p.json", &["keys", "rotate"], "");
    assert!(rotated.contains("2 records re-encrypted"), "{rotated}");
    let tier2: Value = serde_json::from_str(&client(
        d,
        "p.json",
        &["--tier2", "get", "bookmarks", "bm1"],
        "",
    ))
    .unwrap();
    assert_eq!(tier2["title"], "Rust");
    let refused = run_syncstack(
        d,
        &["client", "--profile", "p.json", "--tier2", "keys", "rotate"],
        &[],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Tier 2"));

    // Deleting a record.
    client(d, "p.json", &["delete", "bookmarks", "bm1"], "");
    assert!(client(d, "p.json", &["bookmarks"], "").contains("no bookmarks"));
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Node::start_in(d, &[], &[]).await;
    run_ok(
        d,
        &["accounts", "add", "erin", "--password-stdin"],
        &[],
        "pw\n",
    );
    let kb = "11".repeat(32);
    client(
        d,
        "a.json",
        &[
            "login",
            "--token-server",
            &server.url,
            "--account",
            "erin",
            "--password-stdin",
            "--kb",
            &kb,
            "--keys-changed-at",
            "1000",
        ],
        "pw\n",
    );
    client(
        d,
        "a.json",
        &["put", "tabs"],
        r#"{"id": "t1", "clientName": "laptop", "tabs": []}"#,
    );
    let before = client(d, "a.json", &["collections"], "");

    // Same account, same key id (so the token server gives the same node and uid), other kB.
    let other = "22".repeat(32);
    let login = run_syncstack(
        d,
        &[
            "client",
            "--profile",
            "b.json",
            "login",
            "--token-server",
            &server.url,
            "--oauth-token",
            run_ok(d, &["accounts", "token", "erin"], &[], "").trim(),
            "--kb",
            &other,
            "--keys-changed-at",
            "1000",
        ],
        &[],
    );
    assert!(!login.status.success());
    let stderr = String::from_utf8_lossy(&login.stderr);
    assert!(
        stderr.contains("invalid-client-state") || stderr.contains("wrong kB"),
        "{stderr}"
    );
    assert_eq!(
        client(d, "a.json", &["collections"], ""),
        before,
        "nothing changed on the server"
    );
    server.stop().await;
}
