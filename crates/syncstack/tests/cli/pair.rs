//! `syncstack pair`: two client processes pair through a real server.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::process::{Node, run_ok, run_syncstack};

const BINARY: &str = env!("CARGO_BIN_EXE_syncstack");

/// Starts `pair offer` and returns the code and server it prints, and the process.
async fn offer(dir: &std::path::Path, extra: &[&str]) -> (String, String, tokio::process::Child) {
    let mut child = Command::new(BINARY)
        .current_dir(dir)
        .args(["pair", "--profile", "old.json", "--poll-ms", "50"])
        .args(extra)
        .arg("offer")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.trim().strip_prefix("syncstack pair accept ") {
            let mut words = rest.split_whitespace();
            let code = words.next().unwrap().to_owned();
            let server = words.nth(1).unwrap().to_owned();
            // Keep reading, so the process can still print.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (code, server, child);
        }
    }
    panic!("pair offer printed no code");
}

async fn logged_in_device(dir: &std::path::Path, server: &Node) {
    run_ok(
        dir,
        &["accounts", "add", "gina", "--password-stdin"],
        &[],
        "pw\n",
    );
    run_ok(
        dir,
        &[
            "client",
            "--profile",
            "old.json",
            "login",
            "--token-server",
            &server.url,
            "--account",
            "gina",
            "--password-stdin",
        ],
        &[],
        "pw\n",
    );
    run_ok(
        dir,
        &["client", "--profile", "old.json", "put", "tabs"],
        &[],
        r#"{"id": "t1", "clientName": "old laptop", "tabs": []}"#,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_pairs_by_code_and_reads_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    logged_in_device(dir.path(), &server).await;
    let (code, relay, offering) = offer(dir.path(), &[]).await;
    assert_eq!(relay, server.url);
    let d = dir.path().to_owned();
    let accepted = tokio::task::spawn_blocking(move || {
        run_syncstack(
            &d,
            &[
                "pair",
                "--profile",
                "new.json",
                "--poll-ms",
                "50",
                "--server",
                &relay,
                "accept",
                &code,
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("paired"));
    let offered = offering.wait_with_output().await.unwrap();
    assert!(
        offered.status.success(),
        "{}",
        String::from_utf8_lossy(&offered.stderr)
    );

    // The new device is logged in with the same key and reads the old device's data.
    let tabs: Value = serde_json::from_str(&run_ok(
        dir.path(),
        &["client", "--profile", "new.json", "get", "tabs", "t1"],
        &[],
        "",
    ))
    .unwrap();
    assert_eq!(tabs["clientName"], "old laptop");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.path().join("new.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_fails_on_both_devices() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    logged_in_device(dir.path(), &server).await;
    let (code, relay, offering) = offer(dir.path(), &[]).await;
    let mut wrong: Vec<char> = code.chars().collect();
    wrong[1] = if wrong[1] == 'k' { 'm' } else { 'k' };
    let wrong: String = wrong.into_iter().collect();
    let d = dir.path().to_owned();
    let accepted = tokio::task::spawn_blocking(move || {
        run_syncstack(
            &d,
            &[
                "pair",
                "--profile",
                "new.json",
                "--poll-ms",
                "50",
                "--server",
                &relay,
                "accept",
                &wrong,
            ],
            &[],
        )
    })
    .await
    .unwrap();
    assert!(!accepted.status.success());
    assert!(
        String::from_utf8_lossy(&accepted.stderr).contains("did not match"),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(!dir.path().join("new.json").exists(), "nothing is saved");
    let offered = offering.wait_with_output().await.unwrap();
    assert!(!offered.status.success());
    assert!(String::from_utf8_lossy(&offered.stderr).contains("did not match"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_nobody_takes_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    logged_in_device(dir.path(), &server).await;
    let (_code, _relay, offering) = offer(dir.path(), &["--timeout-secs", "1"]).await;
    let offered = offering.wait_with_output().await.unwrap();
    assert!(!offered.status.success());
    assert!(String::from_utf8_lossy(&offered.stderr).contains("timed out"));
    server.stop().await;
}
