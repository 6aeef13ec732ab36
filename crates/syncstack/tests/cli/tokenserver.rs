//! The token server, the identity provider and several storage nodes as separate
//! processes, driven by the real CLI and real HTTP clients.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::process::{Client, Node, run_ok};

const SECRET: (&str, &str) = ("SYNCSTACK_MASTER_SECRET", "many-nodes-shared-secret");

fn syncstack(dir: &Path, args: &[&str]) -> String {
    run_ok(dir, args, &[SECRET], "")
}

fn access_token(dir: &Path, account: &str) -> String {
    syncstack(dir, &["accounts", "token", account])
        .trim()
        .to_owned()
}

fn node_of(token: &Value) -> String {
    token["api_endpoint"]
        .as_str()
        .unwrap()
        .rsplit_once("/1.5/")
        .unwrap()
        .0
        .to_owned()
}

/// One process with every service: an account of the built-in identity provider gets an
/// access token, the token server hands out a storage token for the process's own node
/// (registered on first start), and the storage node accepts it.
#[tokio::test]
async fn the_whole_stack_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    let output = run_ok(dir.path(), &["accounts", "add", "alice"], &[], "");
    assert!(output.contains("added account alice"), "{output}");
    let bearer = run_ok(dir.path(), &["accounts", "token", "alice"], &[], "")
        .trim()
        .to_owned();
    let (status, token) = server.token_for(&bearer, "1-qqo").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(node_of(&token), server.url);
    let client = Client::from_minted(&token);
    let (status, _) = client
        .request("PUT", "/storage/tabs/t", Some(json!({"payload": "hello"})))
        .await;
    assert_eq!(status, 200);
    let (_, record) = client.request("GET", "/storage/tabs/t", None).await;
    assert_eq!(record["payload"], "hello");
    let nodes = run_ok(dir.path(), &["nodes", "list"], &[], "");
    assert!(nodes.contains(&server.url), "{nodes}");
    server.stop().await;
}

#[tokio::test]
async fn accounts_log_in_over_http_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    run_ok(
        dir.path(),
        &["accounts", "add", "bob", "--password-stdin"],
        &[],
        "correct horse\n",
    );
    let listed = run_ok(dir.path(), &["accounts", "list"], &[], "");
    assert!(
        listed.contains("bob") && listed.contains("password"),
        "{listed}"
    );
    let http = reqwest::Client::new();
    let login = |password: &'static str| {
        http.post(format!("{}/identity/v1/token", server.url))
            .basic_auth("bob", Some(password))
            .send()
    };
    assert_eq!(login("wrong").await.unwrap().status(), 401);
    let answer: Value = login("correct horse").await.unwrap().json().await.unwrap();
    let bearer = answer["access_token"].as_str().unwrap();
    assert_eq!(server.token_for(bearer, "1-qqo").await.0, 200);

    // A password change moves the generation: the old access token is refused.
    run_ok(
        dir.path(),
        &["accounts", "passwd", "bob"],
        &[],
        "new secret\n",
    );
    let fresh = run_ok(dir.path(), &["accounts", "token", "bob"], &[], "")
        .trim()
        .to_owned();
    assert_eq!(server.token_for(&fresh, "1-qqo").await.0, 200);
    let (status, body) = server.token_for(bearer, "1-qqo").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (401, Some("invalid-generation"))
    );

    run_ok(dir.path(), &["accounts", "remove", "bob"], &[], "");
    assert!(!run_ok(dir.path(), &["accounts", "list"], &[], "").contains("bob"));
    assert!(
        !std::fs::read(dir.path().join("syncstack-data/accounts.db"))
            .unwrap()
            .windows(b"correct horse".len())
            .any(|w| w == b"correct horse")
    );
    server.stop().await;
}

/// A token server and two storage nodes, each its own process, sharing only the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_nodes_for_real() {
    let ts_dir = tempfile::tempdir().unwrap();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let tokens = Node::start_in(
        ts_dir.path(),
        &["--services", "tokenserver,identity"],
        &[SECRET],
    )
    .await;
    let node_a = Node::start_in(a_dir.path(), &["--services", "storage"], &[SECRET]).await;
    let node_b = Node::start_in(b_dir.path(), &["--services", "storage"], &[SECRET]).await;
    let ts = ts_dir.path();
    syncstack(ts, &["nodes", "add", &node_a.url, "--capacity", "10"]);
    syncstack(ts, &["nodes", "add", &node_b.url, "--capacity", "30"]);

    // Users spread by capacity (the reference's log-load rule gives 6 and 14 for 20 users).
    let mut by_node = HashMap::<String, Vec<(String, Value)>>::new();
    for i in 0..20 {
        let name = format!("user{i}");
        syncstack(ts, &["accounts", "add", &name]);
        let (status, token) = tokens.token_for(&access_token(ts, &name), "1-qqo").await;
        assert_eq!(status, 200, "{token}");
        by_node
            .entry(node_of(&token))
            .or_default()
            .push((name, token));
    }
    assert_eq!(by_node[&node_a.url].len(), 6);
    assert_eq!(by_node[&node_b.url].len(), 14);
    let listed = syncstack(ts, &["nodes", "list"]);
    assert!(
        listed.contains(&node_a.url) && listed.contains(&node_b.url),
        "{listed}"
    );

    // A token minted for node A is refused by node B, and accepted by A.
    let (mover_name, on_a) = &by_node[&node_a.url][0];
    let mut forged = on_a.clone();
    let uid = on_a["uid"].as_u64().unwrap();
    forged["api_endpoint"] = json!(format!("{}/1.5/{uid}", node_b.url));
    assert_eq!(
        Client::from_minted(&forged)
            .request("GET", "/info/collections", None)
            .await
            .0,
        401
    );
    assert_eq!(
        Client::from_minted(on_a)
            .request("GET", "/info/collections", None)
            .await
            .0,
        200
    );

    // A downed node gets no new users.
    syncstack(ts, &["nodes", "down", &node_b.url]);
    for i in 20..24 {
        let name = format!("user{i}");
        syncstack(ts, &["accounts", "add", &name]);
        let (_, token) = tokens.token_for(&access_token(ts, &name), "1-qqo").await;
        assert_eq!(
            node_of(&token),
            node_a.url,
            "a new user went to the downed node"
        );
    }
    syncstack(ts, &["nodes", "up", &node_b.url]);

    // A user on A writes data; A is removed; the user moves to B and starts empty there.
    let mover = Client::from_minted(on_a);
    assert_eq!(
        mover
            .request("PUT", "/storage/tabs/t", Some(json!({"payload": "on A"})))
            .await
            .0,
        200
    );
    let removed = syncstack(ts, &["nodes", "remove", &node_a.url]);
    assert!(removed.contains("users will get a new node"), "{removed}");
    let (status, moved) = tokens
        .token_for(&access_token(ts, mover_name), "1-qqo")
        .await;
    assert_eq!(status, 200);
    assert_eq!(node_of(&moved), node_b.url);
    assert_ne!(moved["uid"], on_a["uid"]);
    let (status, collections) = Client::from_minted(&moved)
        .request("GET", "/info/collections", None)
        .await;
    assert_eq!(
        (status, collections),
        (200, json!({})),
        "the moved user starts empty"
    );

    for node in [tokens, node_a, node_b] {
        node.stop().await;
    }
}

/// New keys give a new uid; `syncstack purge` then deletes the old uid's data from its node
/// with a Hawk-signed DELETE and drops the record.
#[tokio::test]
async fn purge_deletes_the_old_data_of_a_user_who_changed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[SECRET]).await;
    syncstack(dir.path(), &["accounts", "add", "carol"]);
    let (_, old) = server
        .token_for(&access_token(dir.path(), "carol"), "1-qqo")
        .await;
    let old_client = Client::from_minted(&old);
    old_client
        .request(
            "PUT",
            "/storage/bookmarks/b",
            Some(json!({"payload": "old keys"})),
        )
        .await;

    run_ok(
        dir.path(),
        &["accounts", "passwd", "carol"],
        &[SECRET],
        "pw\n",
    );
    let (status, new) = server
        .token_for(&access_token(dir.path(), "carol"), "2-u7s")
        .await;
    assert_eq!(status, 200, "{new}");
    assert_ne!(new["uid"], old["uid"]);

    let report = syncstack(dir.path(), &["purge"]);
    assert!(report.contains("purged 1 users' data"), "{report}");
    // The old uid's data is gone from the node (a token for it still verifies).
    let (_, collections) = old_client.request("GET", "/info/collections", None).await;
    assert_eq!(collections, json!({}));
    let again = syncstack(dir.path(), &["purge"]);
    assert!(again.contains("purged 0 users' data"), "{again}");
    server.stop().await;
}

#[tokio::test]
async fn node_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let added = syncstack(d, &["nodes", "add", "http://n1.test", "--capacity", "50"]);
    assert!(
        added.contains("http://n1.test") && added.contains("50"),
        "{added}"
    );
    let set = syncstack(
        d,
        &[
            "nodes",
            "set",
            "http://n1.test",
            "--capacity",
            "80",
            "--backoff",
            "true",
        ],
    );
    assert!(set.contains("80") && set.contains("backoff"), "{set}");
    assert!(syncstack(d, &["nodes", "down", "http://n1.test"]).contains("down"));
    assert!(!syncstack(d, &["nodes", "up", "http://n1.test"]).contains("down"));
    syncstack(d, &["nodes", "remove", "http://n1.test"]);
    assert!(!syncstack(d, &["nodes", "list"]).contains("n1.test"));
    let out = crate::process::run_syncstack(
        d,
        &["nodes", "add", "ftp://x", "--capacity", "1"],
        &[SECRET],
    );
    assert!(!out.status.success());
}

/// A token server that trusts the identity provider of another process only through its
/// published JWKS URL, exactly as it would trust Mozilla Accounts.
#[tokio::test]
async fn an_issuer_is_trusted_through_its_jwks_url() {
    let idp_dir = tempfile::tempdir().unwrap();
    let ts_dir = tempfile::tempdir().unwrap();
    let idp = Node::start_in(idp_dir.path(), &["--services", "identity"], &[SECRET]).await;
    let config = ts_dir.path().join("tokenserver.toml");
    std::fs::write(
        &config,
        format!(
            "[tokenserver]\ntrust_local_identity = false\n\n[[tokenserver.issuers]]\nissuer = \"syncstack-local\"\naudience = \"syncstack\"\njwks_url = \"{}/identity/jwks.json\"\n",
            idp.url
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let tokens = Node::start_in(ts_dir.path(), &["--config", &config_arg], &[SECRET]).await;
    syncstack(idp_dir.path(), &["accounts", "add", "frank"]);
    let bearer = access_token(idp_dir.path(), "frank");
    let (status, token) = tokens.token_for(&bearer, "1-qqo").await;
    assert_eq!(status, 200, "{token}");
    // The token server's own (untrusted) identity provider key does not work.
    syncstack(ts_dir.path(), &["accounts", "add", "mallory"]);
    let (status, body) = tokens
        .token_for(&access_token(ts_dir.path(), "mallory"), "1-qqo")
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (401, Some("invalid-credentials"))
    );
    tokens.stop().await;
    idp.stop().await;
}
