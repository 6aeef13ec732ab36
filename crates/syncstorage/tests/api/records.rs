//! Single records: GET, PUT, DELETE, partial updates, TTL and conditional requests.

use reqwest::Method;
use serde_json::json;

use crate::common::TestNode;

#[tokio::test]
async fn put_then_get() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let put = client
        .put(
            "/storage/bookmarks/abc",
            json!({"payload": "p", "sortindex": 3}),
        )
        .await;
    assert_eq!(put.status, 200);
    let modified = put.ts_header("x-last-modified");
    assert_eq!(
        put.body,
        put.header("x-last-modified").unwrap(),
        "body is the bare timestamp"
    );

    let got = client.get("/storage/bookmarks/abc").await;
    assert_eq!(got.status, 200);
    let bso = got.json();
    assert_eq!(
        bso,
        json!({"id": "abc", "modified": bso["modified"], "payload": "p", "sortindex": 3})
    );
    assert_eq!(got.ts_header("x-last-modified"), modified);
    // Exactly two decimals on the wire.
    let raw = got.body.split("\"modified\":").nth(1).unwrap();
    let number: String = raw
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    assert_eq!(
        number.split('.').nth(1).map(str::len),
        Some(2),
        "{}",
        got.body
    );
}

#[tokio::test]
async fn output_has_exactly_the_protocol_keys() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client
        .put(
            "/storage/forms/a",
            json!({"payload": "p", "ttl": 100, "modified": 1.0, "collection": "x"}),
        )
        .await;
    let bso = client.get("/storage/forms/a").await.json();
    let mut keys: Vec<_> = bso.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "modified", "payload"]);
}

#[tokio::test]
async fn partial_updates_keep_what_is_not_sent() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client
        .put("/storage/tabs/t", json!({"payload": "one", "sortindex": 5}))
        .await;
    client.put("/storage/tabs/t", json!({"sortindex": 9})).await;
    let bso = client.get("/storage/tabs/t").await.json();
    assert_eq!(
        (bso["payload"].as_str(), bso["sortindex"].as_i64()),
        (Some("one"), Some(9))
    );
    // null resets to the default.
    client
        .put(
            "/storage/tabs/t",
            json!({"sortindex": null, "payload": null}),
        )
        .await;
    let bso = client.get("/storage/tabs/t").await.json();
    assert_eq!(bso["payload"], "");
    assert!(bso.get("sortindex").is_none());
}

#[tokio::test]
async fn a_ttl_only_update_keeps_modified() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let first = client
        .put("/storage/tabs/t", json!({"payload": "x"}))
        .await
        .ts_header("x-last-modified");
    let second = client
        .put("/storage/tabs/t", json!({"ttl": 3600}))
        .await
        .ts_header("x-last-modified");
    assert!(second > first);
    let bso = client.get("/storage/tabs/t").await;
    assert_eq!(bso.ts_header("x-last-modified"), first);
}

#[tokio::test]
async fn ttl_zero_expires_at_once_and_an_expired_record_can_be_rewritten() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client
        .put("/storage/tabs/gone", json!({"payload": "x", "ttl": 0}))
        .await;
    client.get("/storage/tabs/gone").await.assert_weave(404, 0);
    assert_eq!(client.get("/storage/tabs").await.json(), json!([]));
    assert_eq!(
        client.get("/info/collection_counts").await.json(),
        json!({})
    );
    // A write to the expired record starts from the defaults.
    client
        .put("/storage/tabs/gone", json!({"sortindex": 2}))
        .await;
    let bso = client.get("/storage/tabs/gone").await.json();
    assert_eq!(
        (bso["payload"].as_str(), bso["sortindex"].as_i64()),
        (Some(""), Some(2))
    );
}

#[tokio::test]
async fn a_ttl_expires_later() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client
        .put("/storage/tabs/soon", json!({"payload": "x", "ttl": 1}))
        .await;
    assert_eq!(client.get("/storage/tabs/soon").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.get("/storage/tabs/soon").await.assert_weave(404, 0);
}

#[tokio::test]
async fn missing_records_are_404() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client
        .get("/storage/bookmarks/nope")
        .await
        .assert_weave(404, 0);
    client
        .delete("/storage/bookmarks/nope")
        .await
        .assert_weave(404, 0);
    client
        .put("/storage/bookmarks/yes", json!({"payload": "x"}))
        .await;
    client
        .delete("/storage/bookmarks/nope")
        .await
        .assert_weave(404, 0);
}

#[tokio::test]
async fn delete_returns_the_new_timestamp() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let put = client
        .put("/storage/bookmarks/a", json!({"payload": "x"}))
        .await
        .ts_header("x-last-modified");
    let deleted = client.delete("/storage/bookmarks/a").await;
    assert_eq!(deleted.status, 200);
    let modified = deleted.json()["modified"].as_f64().unwrap();
    assert!((modified * 1000.0).round() as u64 > put);
    client
        .get("/storage/bookmarks/a")
        .await
        .assert_weave(404, 0);
    let collections = client.get("/info/collections").await.json();
    assert_eq!(collections["bookmarks"].as_f64(), Some(modified));
}

#[tokio::test]
async fn conditional_reads_and_writes() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let ts = client
        .put("/storage/history/h", json!({"payload": "1"}))
        .await;
    let stamp = ts.header("x-last-modified").unwrap().to_owned();

    let not_modified = client
        .send(
            client
                .call(Method::GET, "/storage/history/h")
                .header("x-if-modified-since", &stamp),
        )
        .await;
    assert_eq!((not_modified.status, not_modified.body.as_str()), (304, ""));
    assert_eq!(not_modified.header("x-last-modified"), Some(stamp.as_str()));

    let older = format!("{:.2}", stamp.parse::<f64>().unwrap() - 1.0);
    let changed = client
        .send(
            client
                .call(Method::GET, "/storage/history/h")
                .header("x-if-modified-since", &older),
        )
        .await;
    assert_eq!(changed.status, 200);

    let refused = client
        .send(
            client
                .call(Method::PUT, "/storage/history/h")
                .json(&json!({"payload": "2"}))
                .header("x-if-unmodified-since", &older),
        )
        .await;
    assert_eq!((refused.status, refused.body.as_str()), (412, ""));
    assert_eq!(refused.header("x-last-modified"), Some(stamp.as_str()));
    assert_eq!(
        client.get("/storage/history/h").await.json()["payload"],
        "1"
    );

    let accepted = client
        .send(
            client
                .call(Method::PUT, "/storage/history/h")
                .json(&json!({"payload": "2"}))
                .header("x-if-unmodified-since", &stamp),
        )
        .await;
    assert_eq!(accepted.status, 200);
}

#[tokio::test]
async fn unmodified_since_zero_creates_only_if_absent() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let create = |payload: &'static str| {
        client
            .call(Method::PUT, "/storage/meta/global")
            .json(&json!({"payload": payload}))
            .header("x-if-unmodified-since", "0")
    };
    assert_eq!(client.send(create("first")).await.status, 200);
    assert_eq!(client.send(create("second")).await.status, 412);
    assert_eq!(
        client.get("/storage/meta/global").await.json()["payload"],
        "first"
    );
}

#[tokio::test]
async fn bad_precondition_headers_are_400() {
    let node = TestNode::start().await;
    let client = node.client(1);
    for (name, value) in [
        ("x-if-modified-since", "abc"),
        ("x-if-unmodified-since", "-1"),
    ] {
        let reply = client
            .send(
                client
                    .call(Method::GET, "/storage/tabs")
                    .header(name, value),
            )
            .await;
        reply.assert_weave(400, 0);
    }
    let both = client
        .call(Method::GET, "/storage/tabs")
        .header("x-if-modified-since", "1")
        .header("x-if-unmodified-since", "1");
    client.send(both).await.assert_weave(400, 0);
}

#[tokio::test]
async fn invalid_put_bodies_are_400_8() {
    let node = TestNode::start().await;
    let client = node.client(1);
    for body in [
        json!({"payload": 5}),
        json!({"sortindex": "1"}),
        json!({"sortindex": 1_000_000_000}),
        json!({"ttl": -1}),
        json!({"unknown": true}),
        json!([1, 2]),
    ] {
        client
            .put("/storage/tabs/t", body)
            .await
            .assert_weave(400, 8);
    }
    let not_json = client
        .call(Method::PUT, "/storage/tabs/t")
        .body("application/json", "{nope");
    client.send(not_json).await.assert_weave(400, 8);
    let newlines = client
        .call(Method::PUT, "/storage/tabs/t")
        .body("application/newlines", "{\"payload\":\"x\"}\n");
    client.send(newlines).await.assert_weave(400, 8);
    let wrong_type = client
        .call(Method::PUT, "/storage/tabs/t")
        .body("image/png", "{}");
    client.send(wrong_type).await.assert_weave(415, 0);
    client.get("/storage/tabs/t").await.assert_weave(404, 0);
}

#[tokio::test]
async fn invalid_ids_and_names() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let long_id = "x".repeat(65);
    client
        .get(&format!("/storage/tabs/{long_id}"))
        .await
        .assert_weave(400, 0);
    client.get("/storage/tabs/a%09b").await.assert_weave(400, 0);
    client.get("/storage/bad%21name").await.assert_weave(404, 0);
    client
        .get(&format!("/storage/{}", "c".repeat(33)))
        .await
        .assert_weave(404, 0);
    // Printable ASCII, space included, is a valid id.
    assert_eq!(
        client
            .put("/storage/tabs/a%20b~", json!({"payload": "x"}))
            .await
            .status,
        200
    );
    assert_eq!(
        client.get("/storage/tabs/a%20b~").await.json()["id"],
        "a b~"
    );
}

#[tokio::test]
async fn other_methods_are_405_and_unknown_paths_404() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .send(client.call(Method::PATCH, "/storage/tabs/t"))
        .await;
    assert_eq!(reply.status, 405);
    client.get("/nothing/here").await.assert_weave(404, 0);
    let reply = client.get("/nothing/here").await;
    assert!(reply.header("x-weave-timestamp").is_some());
}
