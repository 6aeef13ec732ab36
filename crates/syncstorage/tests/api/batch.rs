//! Batch uploads: staging, appending, committing, merging, refused batch ids, empty commit
//! bodies, expiry and the total-records limit.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sync_proto::token::MasterSecret;
use syncstorage::{AppState, NodeSettings};
use syncstorage_store::sqlite::{SqliteOptions, SqliteStore};
use url::Url;

use crate::common::{Reply, SECRET, SyncClient, TestNode, mint, record};

/// Milliseconds of a JSON timestamp.
fn millis(value: &Value) -> u64 {
    (value.as_f64().expect("a timestamp") * 1000.0).round() as u64
}

/// The ids stored in `collection`, sorted.
async fn ids(client: &SyncClient, collection: &str) -> Vec<String> {
    let reply = client.get(&format!("/storage/{collection}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut ids: Vec<String> = serde_json::from_value(reply.json()).unwrap();
    ids.sort();
    ids
}

/// Opens a batch in `collection` holding `records`; returns its id.
async fn start(client: &SyncClient, collection: &str, records: Value) -> String {
    let reply = client
        .post(&format!("/storage/{collection}?batch=true"), records)
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    reply.json()["batch"]
        .as_str()
        .expect("a batch id")
        .to_owned()
}

/// POSTs `body` (JSON or newlines) to `rest`.
async fn post_raw(client: &SyncClient, rest: &str, content_type: &str, body: &str) -> Reply {
    let call = client.call(Method::POST, rest).body(content_type, body);
    client.send(call).await
}

#[tokio::test]
async fn opening_a_batch_writes_nothing() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .post(
            "/storage/c?batch=true",
            json!([record("a", 1), record("b", 1), {"id": "bad", "bogus": 1}]),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let body = reply.json();
    assert!(body["batch"].is_string(), "{body}");
    assert!(body.get("modified").is_none(), "{body}");
    assert_eq!(body["success"], json!(["a", "b"]));
    assert_eq!(body["failed"], json!({"bad": "unknown field bogus"}));
    assert_eq!(reply.header("x-last-modified"), Some("0.00"));

    let listing = client.get("/storage/c").await;
    assert_eq!(listing.json(), json!([]));
    assert_eq!(listing.header("x-last-modified"), Some("0.00"));
    assert_eq!(client.get("/info/collections").await.json(), json!({}));
}

#[tokio::test]
async fn commit_publishes_staged_and_committed_records_together() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let before = client.post("/storage/c", json!([record("old", 1)])).await;
    assert_eq!(before.status, 200);
    let before_ts = before.header("x-last-modified").unwrap().to_owned();

    let batch = start(&client, "c", json!([record("a", 1)])).await;
    let reply = client
        .post(
            &format!("/storage/c?batch={batch}"),
            json!([record("b", 1)]),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.json()["batch"], batch.as_str());
    assert_eq!(reply.json()["success"], json!(["b"]));
    assert_eq!(reply.header("x-last-modified"), Some(before_ts.as_str()));
    assert_eq!(ids(&client, "c").await, ["old"]);

    let reply = client
        .post(
            &format!("/storage/c?batch={batch}&commit=true"),
            json!([record("c", 1)]),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert!(body.get("batch").is_none(), "{body}");
    assert_eq!(body["success"], json!(["c"]));
    assert_eq!(body["failed"], json!({}));
    let modified = millis(&body["modified"]);
    assert_eq!(reply.ts_header("x-last-modified"), modified);
    assert!(modified > before.ts_header("x-last-modified"));

    let listing = client.get("/storage/c?full=1").await;
    assert_eq!(listing.ts_header("x-last-modified"), modified);
    let listing = listing.json();
    let records = listing.as_array().unwrap();
    assert_eq!(records.len(), 4, "{listing}");
    for record in records {
        let expected = match record["id"].as_str().unwrap() {
            "old" => before.ts_header("x-last-modified"),
            _ => modified,
        };
        assert_eq!(millis(&record["modified"]), expected, "{record}");
    }
    let collections = client.get("/info/collections").await.json();
    assert_eq!(millis(&collections["c"]), modified);
}

#[tokio::test]
async fn later_writes_to_a_record_merge_field_by_field() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let existing = client
        .post(
            "/storage/c",
            json!([{"id": "e", "payload": "e0", "sortindex": 9}]),
        )
        .await;
    assert_eq!(existing.status, 200);

    let batch = start(
        &client,
        "c",
        json!([
            {"id": "a", "payload": "a1", "sortindex": 3},
            {"id": "e", "payload": "e1"},
        ]),
    )
    .await;
    let reply = client
        .post(
            &format!("/storage/c?batch={batch}"),
            json!([{"id": "a", "payload": "a2"}, {"id": "b", "payload": "b1", "sortindex": 4}]),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let reply = client
        .post(
            &format!("/storage/c?batch={batch}&commit=true"),
            json!([{"id": "b", "payload": "b2"}]),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    for (id, payload, sortindex) in [("a", "a2", 3), ("b", "b2", 4), ("e", "e1", 9)] {
        let stored = client.get(&format!("/storage/c/{id}")).await.json();
        assert_eq!(stored["payload"], payload, "{stored}");
        assert_eq!(stored["sortindex"], sortindex, "{stored}");
    }
}

#[tokio::test]
async fn batch_true_with_commit_is_a_plain_post() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .post("/storage/c?batch=true&commit=true", json!([record("a", 1)]))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert!(body.get("batch").is_none(), "{body}");
    assert_eq!(body["success"], json!(["a"]));
    assert_eq!(
        reply.ts_header("x-last-modified"),
        millis(&body["modified"])
    );
    assert_eq!(ids(&client, "c").await, ["a"]);
}

#[tokio::test]
async fn unknown_and_foreign_batches_are_refused() {
    let node = TestNode::start().await;
    let owner = node.client(1);
    let other = node.client(2);
    let batch = start(&owner, "c", json!([record("a", 1)])).await;
    let one = json!([record("x", 1)]);

    for (client, rest) in [
        (&owner, "/storage/c?batch=nosuchbatch".to_owned()),
        (
            &owner,
            "/storage/c?batch=nosuchbatch&commit=true".to_owned(),
        ),
        (&other, format!("/storage/c?batch={batch}")),
        (&other, format!("/storage/c?batch={batch}&commit=true")),
        (&owner, format!("/storage/other?batch={batch}")),
        (&owner, format!("/storage/other?batch={batch}&commit=true")),
        (&owner, "/storage/c?commit=true".to_owned()),
        (&owner, format!("/storage/c?batch={batch}&commit=yes")),
    ] {
        let reply = client.post(&rest, one.clone()).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, "0"),
            "{rest}: {reply:?}"
        );
    }
    assert!(ids(&other, "c").await.is_empty());
    assert!(ids(&owner, "other").await.is_empty());

    // The batch survived all that, and is gone once committed.
    let reply = owner
        .post(&format!("/storage/c?batch={batch}&commit=true"), json!([]))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(ids(&owner, "c").await, ["a"]);
    for rest in [
        format!("/storage/c?batch={batch}"),
        format!("/storage/c?batch={batch}&commit=true"),
    ] {
        owner.post(&rest, one.clone()).await.assert_weave(400, 0);
    }
    assert_eq!(ids(&owner, "c").await, ["a"]);
}

#[tokio::test]
async fn empty_commit_bodies() {
    let node = TestNode::start().await;
    let client = node.client(1);
    for (content_type, body, status) in [
        ("application/json", "[]", 200),
        ("application/json", "{}", 400),
        ("application/json", "", 400),
        ("application/newlines", "", 200),
        ("application/newlines", "\n", 400),
        ("application/newlines", "{}", 400),
        ("application/newlines", "[]", 400),
    ] {
        let batch = start(&client, "c", json!([record("a", 1)])).await;
        let rest = format!("/storage/c?batch={batch}&commit=true");
        let reply = post_raw(&client, &rest, content_type, body).await;
        match status {
            200 => {
                assert_eq!(reply.status, 200, "{content_type} {body:?}: {reply:?}");
                assert_eq!(reply.json()["success"], json!([]));
            }
            _ => reply.assert_weave(400, 8),
        }
    }
}

/// A node whose batches live for `lifetime`, with a client for user 1. The node stops when
/// the test's runtime does; the returned directory must outlive it.
async fn start_with_batch_lifetime(lifetime: Duration) -> (tempfile::TempDir, SyncClient) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        batch_lifetime: lifetime,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("storage.db"), options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let settings = NodeSettings::new(Url::parse(&url).unwrap(), MasterSecret::new(SECRET));
    let state = AppState::new(Arc::new(store), settings);
    tokio::spawn(syncstorage::serve(listener, state, std::future::pending()));
    let client = SyncClient::new(&url, 1, mint(1, &url, 3600));
    (dir, client)
}

#[tokio::test]
async fn expired_batches_are_refused() {
    let (_dir, client) = start_with_batch_lifetime(Duration::from_secs(1)).await;
    let batch = start(&client, "c", json!([record("a", 1)])).await;
    let reply = client
        .post(
            &format!("/storage/c?batch={batch}"),
            json!([record("b", 1)]),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    for rest in [
        format!("/storage/c?batch={batch}"),
        format!("/storage/c?batch={batch}&commit=true"),
    ] {
        client
            .post(&rest, json!([record("c", 1)]))
            .await
            .assert_weave(400, 0);
    }
    assert!(ids(&client, "c").await.is_empty());
}

#[tokio::test]
async fn batches_hold_at_most_max_total_records() {
    let node = TestNode::start_with(|s| s.limits.max_total_records = 3).await;
    let client = node.client(1);
    let four: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| record(id, 1))
        .collect();
    client
        .post("/storage/c?batch=true", Value::from(four))
        .await
        .assert_weave(400, 17);

    let batch = start(&client, "c", json!([record("a", 1), record("b", 1)])).await;
    let append = format!("/storage/c?batch={batch}");
    client
        .post(&append, json!([record("c", 1), record("d", 1)]))
        .await
        .assert_weave(400, 17);
    // Restaging a record already in the batch does not count it twice.
    let reply = client
        .post(&append, json!([record("a", 2), record("c", 1)]))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");

    let reply = client
        .post(&format!("/storage/c?batch={batch}&commit=true"), json!([]))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(ids(&client, "c").await, ["a", "b", "c"]);
}
