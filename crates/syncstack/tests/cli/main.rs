//! The `syncstack` binary as an operator runs it: zero-configuration start, secrets,
//! configuration layers, graceful shutdown, durability across `kill -9`, metrics.
//!
//! Each test starts the real binary as a child process on port 0 and waits for its
//! "ready" log line (JSON logs), never for a fixed time.

mod accounts;
mod client;
mod http;
mod onepw_login;
mod pair;
mod pki;
mod postgres;
mod process;
mod settings;
mod settings_client;
mod tokenserver;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use process::{Node, run_syncstack};

#[tokio::test]
async fn zero_configuration_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let data = dir.path().join("syncstack-data");
    assert!(data.join("storage.db").exists());
    let mode = std::fs::metadata(data.join("master_secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(data.join("master_secret")).unwrap();
    assert_eq!(secret.trim().len(), 64);
    assert!(
        !node.log().contains(secret.trim()),
        "the secret must never be logged"
    );

    // `token mint` with the same data directory gives credentials the node accepts.
    let minted = run_syncstack(
        dir.path(),
        &["token", "mint", "--uid", "7", "--node", &node.url],
        &[],
    );
    assert!(minted.status.success(), "{minted:?}");
    let token: serde_json::Value = serde_json::from_slice(&minted.stdout).unwrap();
    assert_eq!(token["api_endpoint"], format!("{}/1.5/7", node.url));
    let client = process::Client::from_minted(&token);
    let reply = client
        .request("PUT", "/storage/tabs/t", Some(json!({"payload": "hi"})))
        .await;
    assert_eq!(reply.0, 200, "{reply:?}");
    let reply = client.request("GET", "/storage/tabs/t", None).await;
    assert_eq!(reply.1["payload"], "hi");
    node.stop().await;
}

#[tokio::test]
async fn a_configured_secret_is_used_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SYNCSTACK_MASTER_SECRET", "shared-with-the-token-server")];
    let node = Node::start_in(dir.path(), &[], &env).await;
    assert!(!dir.path().join("syncstack-data/master_secret").exists());
    let token = sync_proto::token::mint(
        &sync_proto::token::MasterSecret::new("shared-with-the-token-server"),
        &sync_proto::token::TokenPayload::new(3, &node.url, 60),
    );
    let client = process::Client::new(&node.url, 3, token);
    assert_eq!(
        client.request("GET", "/info/collections", None).await.0,
        200
    );
    node.stop().await;
}

#[tokio::test]
async fn a_mistyped_database_path_is_an_error_not_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo/storage.db");
    let url = format!("sqlite:{}", missing.display());
    let out = run_syncstack(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("SYNCSTACK_STORAGE__DATABASE_URL", url.as_str())],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn configuration_file_environment_and_flags_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("syncstack.toml");
    std::fs::write(
        &config,
        "[storage.limits]\nmax_post_records = 11\nmax_total_records = 12\n",
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let node = Node::start_in(
        dir.path(),
        &["--config", &config_arg],
        &[("SYNCSTACK_STORAGE__LIMITS__MAX_TOTAL_RECORDS", "13")],
    )
    .await;
    let limits = reqwest::get(format!("{}/1.5/1/info/configuration", node.url))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(limits["max_post_records"], 11, "from the file");
    assert_eq!(
        limits["max_total_records"], 13,
        "the environment beats the file"
    );
    node.stop().await;

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "no_such_setting = 1\n").unwrap();
    let out = run_syncstack(
        dir.path(),
        &["--config", &bad.display().to_string(), "serve"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_setting"));
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_closes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let client = node.client(1);
    // A POST whose body is still arriving when the signal comes.
    let (sender, upload) = client.streaming_post("/storage/history");
    sender
        .send(b"[{\"id\": \"a\", \"payload\": \"first half".to_vec())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    node.signal("TERM");
    sender.send(b" and second half\"}]".to_vec()).await.unwrap();
    drop(sender);
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let status = node.wait().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(node.log().contains("stopped"));
    let wal = dir.path().join("syncstack-data/storage.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL checkpointed on close"
    );

    // The write made it.
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let reply = node
        .client(1)
        .request("GET", "/storage/history/a", None)
        .await;
    assert_eq!(reply.1["payload"], "first half and second half");
    node.stop().await;
}

/// Writers stream PUTs; the server is killed with SIGKILL in the middle. After a restart
/// every write that was acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &[], &[]).await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = node.client(1);
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("w{w}-{i}");
                let reply = client
                    .try_request(
                        "PUT",
                        &format!("/storage/history/{id}"),
                        Some(json!({"payload": id})),
                    )
                    .await;
                match reply {
                    Some((200, _)) => acknowledged.lock().unwrap().push(id),
                    _ => break,
                }
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 1000 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    node.signal("KILL");
    for writer in writers {
        writer.await.unwrap();
    }
    node.wait().await;
    let acknowledged = acknowledged.lock().unwrap().clone();

    let node = Node::start_in(dir.path(), &[], &[]).await;
    let client = node.client(1);
    let (status, stored) = client
        .request("GET", "/storage/history?limit=10000", None)
        .await;
    assert_eq!(status, 200);
    let stored: std::collections::HashSet<String> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    node.stop().await;
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), &["--metrics-listen", "127.0.0.1:0"], &[]).await;
    node.client(1)
        .request("GET", "/info/collections", None)
        .await;
    let metrics_url = node.metrics_url.clone().expect("metrics URL logged");
    let text = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("syncstack_storage_requests_total"), "{text}");
    assert!(text.contains("/info/collections"));
    // Not on the main listener.
    let main = reqwest::get(format!("{}/metrics", node.url)).await.unwrap();
    assert_eq!(main.status(), 404);
    node.stop().await;
}
