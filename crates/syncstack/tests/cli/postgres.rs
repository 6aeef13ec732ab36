//! syncstack on PostgreSQL, as a deployment of several processes runs it: storage nodes,
//! Remote Settings servers and the token database shared by separate processes. Skipped
//! unless `SYNCSTACK_TEST_POSTGRES_URL` names a server (each test uses a fresh schema).

use std::collections::HashSet;

use postgres_support::TestSchema;
use serde_json::{Value, json};

use crate::process::{Node, run_ok};

fn server() -> Option<String> {
    std::env::var("SYNCSTACK_TEST_POSTGRES_URL").ok()
}

/// Two `syncstack serve` processes with the same `postgres://` database URL: neither
/// creates an SQLite file, each sees what the other wrote, and a user's timestamps keep
/// increasing as the client alternates between them.
#[tokio::test]
async fn two_processes_share_one_postgresql_database() {
    let Ok(base) = std::env::var("SYNCSTACK_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = postgres_support::TestSchema::create(&base).await.unwrap();
    let env = [
        ("SYNCSTACK_STORAGE__DATABASE_URL", schema.url()),
        ("SYNCSTACK_MASTER_SECRET", "shared-by-both-nodes"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Node::start_in(dir_a.path(), &["--services", "storage"], &env).await;
    let b = Node::start_in(dir_b.path(), &["--services", "storage"], &env).await;
    for dir in [&dir_a, &dir_b] {
        assert!(!dir.path().join("syncstack-data/storage.db").exists());
    }
    let clients = [a.client(5), b.client(5)];
    let mut previous = 0.0;
    for i in 0..10 {
        let (status, modified) = clients[i % 2]
            .request(
                "PUT",
                &format!("/storage/tabs/r{i}"),
                Some(json!({"payload": format!("from node {}", i % 2)})),
            )
            .await;
        assert_eq!(status, 200, "{modified}");
        let modified = modified.as_f64().unwrap();
        assert!(modified > previous, "write {i}: {modified} <= {previous}");
        previous = modified;
    }
    let (status, record) = clients[1].request("GET", "/storage/tabs/r0", None).await;
    assert_eq!((status, &record["payload"]), (200, &json!("from node 0")));
    let (_, ids) = clients[0].request("GET", "/storage/tabs", None).await;
    assert_eq!(ids.as_array().unwrap().len(), 10);

    // Now at once: 40 writes for the same user and collection through both processes.
    // Every one succeeds (no 5xx), and each gets its own timestamp.
    let paths: Vec<String> = (0..40).map(|i| format!("/storage/history/c{i}")).collect();
    let writes = paths.iter().enumerate().map(|(i, path)| {
        clients[i % 2].request(
            "PUT",
            path,
            Some(json!({"payload": format!("concurrent {i}")})),
        )
    });
    let results = futures::future::join_all(writes).await;
    let mut stamps: Vec<String> = results
        .iter()
        .map(|(status, modified)| {
            assert_eq!(*status, 200, "{modified}");
            modified.to_string()
        })
        .collect();
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 40, "every write took its own timestamp");
    let (_, ids) = clients[1].request("GET", "/storage/history", None).await;
    assert_eq!(ids.as_array().unwrap().len(), 40);
    a.stop().await;
    b.stop().await;
    schema.drop_schema().await.unwrap();
}

/// Two `serve` processes on one PostgreSQL schema, behind an imaginary load balancer: record
/// writes sent through both at once (distinct records, and one record both keep
/// rewriting) all succeed, take distinct timestamps, and both processes list every record
/// with the collection's timestamp being the newest record's; review-workflow sources
/// created through both at once are both published under the shared workflow lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_remote_settings_on_postgresql() {
    let Some(base) = server() else { return };
    let schema = TestSchema::create(&base).await.unwrap();
    let env = [("SYNCSTACK_SETTINGS_STORAGE_URL", schema.url())];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Node::start_in(dir_a.path(), &["--services", "settings"], &env).await;
    let b = Node::start_in(dir_b.path(), &["--services", "settings"], &env).await;
    let http = reqwest::Client::new();
    let account = http
        .put(format!("{}/v1/accounts/ops", a.url))
        .json(&json!({"data": {"password": "long password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 201);
    let put = |server: &str, path: &str, body: Value| {
        http.put(format!("{server}/v1{path}"))
            .basic_auth("ops", Some("long password"))
            .json(&body)
            .send()
    };
    // The account written through A authenticates through B.
    let bucket = put(&b.url, "/buckets/main", json!({})).await.unwrap();
    assert_eq!(bucket.status(), 201);
    let collection = put(&a.url, "/buckets/main/collections/cfr", json!({}))
        .await
        .unwrap();
    assert_eq!(collection.status(), 201);

    const WRITES: usize = 120;
    let mut tasks = Vec::new();
    for i in 0..WRITES {
        let server = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let id = if i % 3 == 0 {
            "shared".to_owned()
        } else {
            format!("r{i}")
        };
        let request = put(
            &server,
            &format!("/buckets/main/collections/cfr/records/{id}"),
            json!({"data": {"i": i}}),
        );
        tasks.push(tokio::spawn(async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut stamps = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(status == 200 || status == 201, "{status}: {body}");
        stamps.insert(body["data"]["last_modified"].as_i64().unwrap());
    }
    assert_eq!(stamps.len(), WRITES, "two writes took one timestamp");
    let newest = *stamps.iter().max().unwrap();
    for server in [&a, &b] {
        let listing = http
            .get(format!(
                "{}/v1/buckets/main/collections/cfr/records",
                server.url
            ))
            .basic_auth("ops", Some("long password"))
            .send()
            .await
            .unwrap();
        assert_eq!(listing.status(), 200);
        let etag = listing.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(etag, format!("\"{newest}\""));
        let body: Value = listing.json().await.unwrap();
        let records = body["data"].as_array().unwrap();
        let distinct = WRITES - WRITES.div_ceil(3);
        assert_eq!(
            records.len(),
            distinct + 1,
            "every record, from both servers"
        );
    }

    // Review-workflow sources created through both servers at once: each publishes its
    // copies under the workflow's lock, shared through PostgreSQL, and ends `signed`.
    let workspace = put(&a.url, "/buckets/main-workspace", json!({}))
        .await
        .unwrap();
    assert_eq!(workspace.status(), 201);
    let (one, two) = tokio::join!(
        put(&a.url, "/buckets/main-workspace/collections/one", json!({})),
        put(&b.url, "/buckets/main-workspace/collections/two", json!({})),
    );
    assert_eq!(one.unwrap().status(), 201);
    assert_eq!(two.unwrap().status(), 201);
    for (server, id) in [(&b, "one"), (&a, "two")] {
        let source: Value = http
            .get(format!(
                "{}/v1/buckets/main-workspace/collections/{id}",
                server.url
            ))
            .basic_auth("ops", Some("long password"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(source["data"]["status"], "signed", "{source}");
        let published = http
            .get(format!("{}/v1/buckets/main/collections/{id}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(published.status(), 200, "main/{id} published");
    }
    a.stop().await;
    b.stop().await;
    schema.drop_schema().await.unwrap();
}

/// `syncstack nodes` works on a PostgreSQL token database named by the configuration, and
/// what one invocation adds the next one lists.
#[tokio::test]
async fn nodes_commands_use_a_postgresql_token_database() {
    let Some(base) = server() else { return };
    let schema = TestSchema::create(&base).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [("SYNCSTACK_TOKENSERVER__DATABASE_URL", schema.url())];
    run_ok(
        dir.path(),
        &["nodes", "add", "https://node1.example", "--capacity", "50"],
        &env,
        "",
    );
    let listed = run_ok(dir.path(), &["nodes", "list"], &env, "");
    assert!(listed.contains("https://node1.example"), "{listed}");
    assert!(
        !dir.path().join("syncstack-data/tokenserver.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    schema.drop_schema().await.unwrap();
}
