//! Storage nodes on PostgreSQL, as separate processes sharing one database. Skipped unless
//! `SYNCSTACK_TEST_POSTGRES_URL` names a server (each test uses a fresh schema).

use serde_json::json;

use crate::process::Node;

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
    a.stop().await;
    b.stop().await;
    schema.drop_schema().await.unwrap();
}
