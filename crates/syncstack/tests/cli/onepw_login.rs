//! `syncstack client login --account EMAIL`: the CLI signs in through the accounts service
//! as Firefox does and holds the account's kB, checked against a second, independent
//! sign-in (`accounts::sign_in`, Bearer tokens); and `--migrate` moves an older
//! identity-provider login of the address without losing its data.

use std::path::Path;

use serde_json::Value;

use crate::accounts::sign_in;
use crate::process::{Node, run_ok, run_with_input};

const EMAIL: &str = "fay@example.org";
const PASSWORD: &str = "fay's long password";

fn client(dir: &Path, profile: &str, args: &[&str], input: &str) -> String {
    let mut all = vec!["client", "--profile", profile];
    all.extend_from_slice(args);
    run_ok(dir, &all, &[], input)
}

/// `client --profile p.json login --account EMAIL --password-stdin` at `url`.
fn login_args(url: &str) -> Vec<&str> {
    vec![
        "client",
        "--profile",
        "p.json",
        "login",
        "--token-server",
        url,
        "--account",
        EMAIL,
        "--password-stdin",
    ]
}

fn saved(dir: &Path, profile: &str) -> (String, Value) {
    let text = std::fs::read_to_string(dir.join(profile)).unwrap();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

/// A node on `dir` with the account EMAIL, made as an operator makes it.
async fn node_with_account(dir: &Path) -> Node {
    let server = Node::start_in(dir, &[], &[]).await;
    run_ok(
        dir,
        &["accounts", "add", EMAIL, "--password-stdin"],
        &[],
        &format!("{PASSWORD}\n"),
    );
    server
}

#[tokio::test]
async fn the_cli_signs_in_with_the_accounts_key_and_refuses_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = node_with_account(d).await;
    let login = login_args(&server.url);

    let refused = run_with_input(d, &login, &[], "not the password\n");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("incorrect password for {EMAIL}")),
        "{stderr}"
    );
    assert!(!d.join("p.json").exists(), "nothing saved");

    let out = run_ok(d, &login, &[], &format!("{PASSWORD}\n"));
    assert!(out.contains("through the accounts service"), "{out}");
    let (text, profile) = saved(d, "p.json");
    let account = sign_in(&server.url, EMAIL, PASSWORD).await;
    assert_eq!(profile["kb"], hex::encode(&account.kb), "the account's kB");
    assert_eq!(profile["keys_changed_at"], account.rotated);
    let refresh = profile["login"]["accounts"]["refresh_token"]
        .as_str()
        .unwrap();
    assert_eq!(refresh.len(), 64);
    assert!(!text.contains(PASSWORD), "the password is not kept");

    // The saved login gets fresh access tokens; a second login of the account (another
    // device, as Firefox is) reads what the first wrote.
    let bookmark = r#"{"id": "bmCLI0000001", "type": "bookmark", "parentid": "unfiled", "title": "Rust", "bmkUri": "https://rust-lang.org/"}"#;
    client(d, "p.json", &["put", "bookmarks"], bookmark);
    run_ok(
        d,
        &[
            "client",
            "--profile",
            "q.json",
            "login",
            "--token-server",
            &server.url,
            "--account",
            // The address in another case: the stored spelling is used (errno 120).
            "Fay@Example.org",
            "--password-stdin",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
    let listed = client(d, "q.json", &["bookmarks"], "");
    assert!(listed.contains("https://rust-lang.org/"), "{listed}");
    server.stop().await;
}

#[tokio::test]
async fn an_older_identity_login_is_migrated_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = node_with_account(d).await;
    // As before this change: the identity provider, and a kB the CLI made itself.
    let old = client(
        d,
        "p.json",
        &[
            "login",
            "--token-server",
            &server.url,
            "--identity-url",
            &server.url,
            "--account",
            EMAIL,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(old.contains("new account key"), "{old}");
    let (_, before) = saved(d, "p.json");
    let old_kb = before["kb"].as_str().unwrap().to_owned();
    assert_ne!(
        old_kb,
        hex::encode(sign_in(&server.url, EMAIL, PASSWORD).await.kb)
    );
    client(
        d,
        "p.json",
        &["put", "bookmarks"],
        r#"{"id": "bmOLD0000001", "type": "bookmark", "title": "Kept", "bmkUri": "https://kept.example/"}"#,
    );

    let login = login_args(&server.url);
    let refused = run_with_input(d, &login, &[], &format!("{PASSWORD}\n"));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--migrate"),
        "{refused:?}"
    );
    assert_eq!(saved(d, "p.json").1, before, "the old login is untouched");

    let mut migrate = login.clone();
    migrate.push("--migrate");
    let out = run_ok(d, &migrate, &[], &format!("{PASSWORD}\n"));
    assert!(out.contains("kept in"), "{out}");
    let (_, after) = saved(d, "p.json");
    assert_eq!(after["kb"], old_kb, "the key the data is under is kept");
    assert!(after["login"]["accounts"].is_object(), "{after}");
    let account = sign_in(&server.url, EMAIL, PASSWORD).await;
    assert_eq!(hex::encode(&account.kb), old_kb, "and is the account's key");
    let listed = client(d, "p.json", &["bookmarks"], "");
    assert!(listed.contains("https://kept.example/"), "{listed}");
    let copies = std::fs::read_dir(d)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("p.json.") && name.ends_with(".bak")
        })
        .count();
    assert_eq!(copies, 1, "the old login is kept beside the new one");
    server.stop().await;
}
