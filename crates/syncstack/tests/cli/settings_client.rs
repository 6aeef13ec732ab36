//! `syncstack settings sync|get|status` against `syncstack serve` as separate processes:
//! the zero-flag local setup (the root pinned from `settings pki init`), and a client
//! killed with SIGKILL at points spread over a sync, whose database must afterwards hold
//! the old or the new version, verified, never a mix.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{Node, run_syncstack};

/// Publishes `records` to `main/cfr` through the review workflow (self-approval is on).
async fn publish(base: &str, records: &[Value]) {
    let http = reqwest::Client::new();
    for chunk in records.chunks(500) {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|r| {
                json!({
                    "method": "PUT",
                    "path": format!("/buckets/main-workspace/collections/cfr/records/{}", r["id"].as_str().unwrap()),
                    "body": {"data": {"n": r["n"], "tag": r["tag"]}},
                })
            })
            .collect();
        let reply = http
            .post(format!("{base}/batch"))
            .basic_auth("admin", Some("admin password"))
            .json(&json!({"requests": requests}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let body: Value = reply.json().await.unwrap();
        assert!(
            body["responses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"].as_u64().unwrap() < 300),
            "{body}"
        );
    }
    let reply = http
        .patch(format!("{base}/buckets/main-workspace/collections/cfr"))
        .basic_auth("admin", Some("admin password"))
        .json(&json!({"data": {"status": "to-sign"}}))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{:?}", reply.text().await);
}

fn records(range: std::ops::Range<usize>, tag: &str) -> Vec<Value> {
    range
        .map(|n| json!({"id": format!("r{n:05}"), "n": n, "tag": tag}))
        .collect()
}

/// `settings get main/cfr --verify --no-sync` with the client database `db`: the number
/// of records, or the error output.
fn verified_count(dir: &Path, server: &str, db: &Path) -> Result<usize, String> {
    let out = run_syncstack(
        dir,
        &[
            "settings",
            "get",
            "main/cfr",
            "--verify",
            "--no-sync",
            "--server",
            server,
        ],
        &[(
            "SYNCSTACK_REMOTE_SETTINGS_CLIENT__DATABASE",
            db.to_str().unwrap(),
        )],
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    Ok(records.len())
}

#[tokio::test]
async fn the_client_verifies_and_a_killed_sync_leaves_a_verified_version() {
    let dir = tempfile::tempdir().unwrap();
    let init = run_syncstack(
        dir.path(),
        &["settings", "pki", "init", "--days", "30"],
        &[],
    );
    assert!(init.status.success(), "{init:?}");
    let node = Node::start_in(
        dir.path(),
        &["--services", "settings"],
        &[
            ("SYNCSTACK_SIGNER__TO_REVIEW_ENABLED", "false"),
            ("SYNCSTACK_SIGNER__ALLOW_SELF_APPROVAL", "true"),
            ("SYNCSTACK_SETTINGS_BATCH_MAX_REQUESTS", "500"),
        ],
    )
    .await;
    let base = format!("{}/v1", node.url);
    let http = reqwest::Client::new();
    let account = http
        .put(format!("{base}/accounts/admin"))
        .json(&json!({"data": {"password": "admin password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 201);
    for (method, path, body) in [
        ("PUT", "/buckets/main-workspace", json!({})),
        ("PUT", "/buckets/main-workspace/collections/cfr", json!({})),
        (
            "PATCH",
            "/buckets/main-workspace/groups/cfr-reviewers",
            json!({"data": {"members": ["account:admin"]}}),
        ),
    ] {
        let reply = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .basic_auth("admin", Some("admin password"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            reply.status().is_success(),
            "{path}: {:?}",
            reply.text().await
        );
    }
    publish(&base, &records(0..3, "v1")).await;

    // No root flag: the client pins the root `pki init` wrote in this data directory.
    let db = dir.path().join("client-v1.db");
    let env = [(
        "SYNCSTACK_REMOTE_SETTINGS_CLIENT__DATABASE",
        db.to_str().unwrap(),
    )];
    let sync = run_syncstack(dir.path(), &["settings", "sync", "--server", &base], &env);
    assert!(sync.status.success(), "{sync:?}");
    let stdout = String::from_utf8_lossy(&sync.stdout);
    assert!(stdout.contains("main/cfr: success"), "{stdout}");
    assert_eq!(verified_count(dir.path(), &base, &db), Ok(3));
    let status = run_syncstack(dir.path(), &["settings", "status", "--server", &base], &env);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("main/cfr: 3 records"), "{status}");
    assert!(status.contains("success"), "{status}");

    // A wrong pin: the sync fails, the data stays, and a strict read refuses to answer.
    let wrong_root = ["--root-hash", &["00"; 32].join(":")];
    let mut args = vec!["settings", "sync", "main/cfr", "--server", &base];
    args.extend(wrong_root);
    publish(&base, &records(0..4, "v1b")).await;
    let refused = run_syncstack(dir.path(), &args, &env);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("local data was kept"));
    let strict = run_syncstack(
        dir.path(),
        &["settings", "get", "main/cfr", "--strict", "--server", &base],
        &env,
    );
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("sign_retry_error"));
    assert_eq!(verified_count(dir.path(), &base, &db), Ok(3));
    let sync = run_syncstack(dir.path(), &["settings", "sync", "--server", &base], &env);
    assert!(sync.status.success(), "{sync:?}");
    assert_eq!(verified_count(dir.path(), &base, &db), Ok(4));

    // Version 2: 3,000 records. Time one complete sync from version 1.
    publish(&base, &records(0..3_000, "v2")).await;
    let copy_of_v1 = |name: &str| {
        let path = dir.path().join(name);
        std::fs::copy(&db, &path).unwrap();
        path
    };
    let timed = copy_of_v1("timed.db");
    let started = Instant::now();
    let env = [(
        "SYNCSTACK_REMOTE_SETTINGS_CLIENT__DATABASE",
        timed.to_str().unwrap(),
    )];
    let sync = run_syncstack(
        dir.path(),
        &["settings", "sync", "main/cfr", "--server", &base],
        &env,
    );
    assert!(sync.status.success(), "{sync:?}");
    let full = started.elapsed();
    assert_eq!(verified_count(dir.path(), &base, &timed), Ok(3_000));

    // Kill syncs at ten points spread over that duration: each database must then hold
    // version 1 or version 2, and verify.
    let mut seen = Vec::new();
    for step in 0..10u32 {
        let db = copy_of_v1(&format!("killed-{step}.db"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_syncstack"))
            .current_dir(dir.path())
            .args(["settings", "sync", "main/cfr", "--server", &base])
            .env("SYNCSTACK_REMOTE_SETTINGS_CLIENT__DATABASE", &db)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(full.mul_f64(f64::from(step) / 10.0) + Duration::from_millis(5)).await;
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let count = verified_count(dir.path(), &base, &db);
        assert!(
            matches!(count, Ok(4) | Ok(3_000)),
            "after a kill at step {step}: {count:?}"
        );
        seen.push(count.unwrap());
    }
    eprintln!("records held after each kill: {seen:?}");
}
