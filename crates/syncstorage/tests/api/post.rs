//! Non-batch POST to `storage/{collection}`: the result body, per-record failures, requests
//! refused whole, body formats, POST limits and declared sizes.

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use crate::common::{Reply, SyncClient, TestNode, record};

/// Milliseconds of a JSON timestamp.
fn millis(value: &Value) -> u64 {
    (value.as_f64().expect("a timestamp") * 1000.0).round() as u64
}

/// The raw text of the top-level `modified` value of a POST result.
fn raw_modified(body: &str) -> &str {
    const KEY: &str = "\"modified\":";
    let rest = &body[body.find(KEY).expect("a modified key") + KEY.len()..];
    rest[..rest.find([',', '}']).unwrap()].trim()
}

/// The ids stored in `collection`, sorted.
async fn ids(client: &SyncClient, collection: &str) -> Vec<String> {
    let reply = client.get(&format!("/storage/{collection}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut ids: Vec<String> = serde_json::from_value(reply.json()).unwrap();
    ids.sort();
    ids
}

/// The records of `collection` keyed by id.
async fn records(client: &SyncClient, collection: &str) -> serde_json::Map<String, Value> {
    let reply = client.get(&format!("/storage/{collection}?full=1")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let list = reply.json();
    let list = list.as_array().unwrap();
    list.iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[tokio::test]
async fn post_reports_modified_success_and_failed() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .post(
            "/storage/bookmarks",
            json!([record("a", 10), {"id": "b", "payload": "y", "sortindex": 2}]),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert_eq!(body["success"], json!(["a", "b"]));
    assert_eq!(body["failed"], json!({}));

    let raw = raw_modified(&reply.body);
    let decimals = raw.split_once('.').expect("a decimal point").1;
    assert_eq!(decimals.len(), 2, "modified {raw}");
    assert_eq!(reply.header("x-last-modified"), Some(raw));

    let modified = millis(&body["modified"]);
    let stored = records(&client, "bookmarks").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored["a"]["payload"], "x".repeat(10));
    assert_eq!(stored["b"]["sortindex"], 2);
    for record in stored.values() {
        assert_eq!(millis(&record["modified"]), modified, "{record}");
    }
}

#[tokio::test]
async fn post_updates_only_the_fields_sent() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let first = client
        .post(
            "/storage/c",
            json!([{"id": "a", "payload": "keep", "sortindex": 1}]),
        )
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let reply = client
        .post("/storage/c", json!([{"id": "a", "sortindex": 5}]))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let stored = client.get("/storage/c/a").await.json();
    assert_eq!(stored["payload"], "keep");
    assert_eq!(stored["sortindex"], 5);
}

#[tokio::test]
async fn bad_records_fail_alone() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .post(
            "/storage/c",
            json!([
                record("ok", 3),
                {"id": "unknown", "bogus": 1},
                {"id": "number", "payload": 42},
                {"id": "text", "sortindex": "5"},
                {"id": "negative", "ttl": -1},
                {"id": "range", "sortindex": 1_000_000_000},
                {"id": "tab\there", "payload": "x"},
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["success"], json!(["ok"]));
    assert_eq!(
        body["failed"],
        json!({
            "unknown": "unknown field bogus",
            "number": "invalid json",
            "text": "invalid json",
            "negative": "invalid json",
            "range": "invalid bso: sortindex out of range",
            "tab\there": "invalid bso: invalid id",
        })
    );
    assert_eq!(ids(&client, "c").await, ["ok"]);
}

#[tokio::test]
async fn unusable_bodies_are_refused_whole() {
    let node = TestNode::start().await;
    let client = node.client(1);
    for body in [
        r#"[{"id": "ok"}, "#,
        r#"{"id": "ok"}"#,
        r#"[{"id": "ok"}, "a"]"#,
        r#"[{"id": "ok"}, {"payload": "x"}]"#,
        r#"[{"id": "ok"}, {"id": "dup"}, {"id": "dup"}]"#,
    ] {
        let call = client
            .call(Method::POST, "/storage/c")
            .body("application/json", body);
        client.send(call).await.assert_weave(400, 8);
    }
    assert_eq!(client.get("/info/collections").await.json(), json!({}));
}

/// Sends a signed POST with `body` and no Content-Type at all.
async fn post_without_content_type(client: &SyncClient, rest: &str, body: &str) -> Reply {
    let call = client.call(Method::POST, rest);
    let url = Url::parse(&format!("{}{}", client.base, call.path)).unwrap();
    let request = client
        .http
        .post(url.clone())
        .header("authorization", client.authorization(&call, &url))
        .body(body.to_owned())
        .build()
        .unwrap();
    assert!(request.headers().get("content-type").is_none());
    let response = client.http.execute(request).await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn other_content_types_are_refused() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let json_body = r#"[{"id": "a", "payload": "x"}]"#;
    let call = client
        .call(Method::POST, "/storage/c")
        .body("application/xml", json_body);
    client.send(call).await.assert_weave(415, 0);
    post_without_content_type(&client, "/storage/c", json_body)
        .await
        .assert_weave(415, 0);
    assert_eq!(client.get("/info/collections").await.json(), json!({}));
}

#[tokio::test]
async fn newlines_and_text_plain_bodies_are_read() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let lines = "{\"id\": \"a\", \"payload\": \"1\"}\n{\"id\": \"b\", \"payload\": \"2\"}\n";
    let call = client
        .call(Method::POST, "/storage/c")
        .body("application/newlines", lines);
    let reply = client.send(call).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["success"], json!(["a", "b"]));

    let call = client
        .call(Method::POST, "/storage/c")
        .body("text/plain", r#"[{"id": "c", "payload": "3"}]"#);
    let reply = client.send(call).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["success"], json!(["c"]));

    let call = client.call(Method::POST, "/storage/c").body(
        "application/json; charset=utf-8",
        r#"[{"id": "d", "payload": "4"}]"#,
    );
    let reply = client.send(call).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(ids(&client, "c").await, ["a", "b", "c", "d"]);
}

/// Each POST crosses one limit only, so the outcome does not depend on the order in which
/// the limits are checked.
#[tokio::test]
async fn records_past_the_post_limits_are_sent_back() {
    let node = TestNode::start_with(|s| {
        s.limits.max_post_records = 2;
        s.limits.max_post_bytes = 10;
        s.limits.max_record_payload_bytes = 6;
    })
    .await;
    let client = node.client(1);
    for (records, success, failed) in [
        (
            json!([record("a", 1), record("b", 1), record("extra", 1)]),
            json!(["a", "b"]),
            json!({"extra": "retry bso"}),
        ),
        (
            json!([record("c", 1), record("too-big", 7)]),
            json!(["c"]),
            json!({"too-big": "retry bytes"}),
        ),
        (
            json!([record("d", 6), record("over-post", 5)]),
            json!(["d"]),
            json!({"over-post": "retry bytes"}),
        ),
    ] {
        let reply = client.post("/storage/c", records).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let body = reply.json();
        assert_eq!((&body["success"], &body["failed"]), (&success, &failed));
    }
    assert_eq!(ids(&client, "c").await, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn declared_sizes_over_the_limits_are_refused() {
    let node = TestNode::start_with(|s| {
        s.limits.max_post_records = 2;
        s.limits.max_post_bytes = 100;
        s.limits.max_total_records = 5;
        s.limits.max_total_bytes = 1000;
    })
    .await;
    let client = node.client(1);
    let post = |rest: &str, name: &str, value: &str| {
        client
            .call(Method::POST, rest)
            .json(&json!([record("a", 1)]))
            .header(name, value)
    };
    let plain = "/storage/c";
    let batch = "/storage/c?batch=true";

    client
        .send(post(plain, "X-Weave-Records", "3"))
        .await
        .assert_weave(400, 17);
    client
        .send(post(plain, "X-Weave-Bytes", "101"))
        .await
        .assert_weave(400, 17);
    client
        .send(post(batch, "X-Weave-Total-Records", "6"))
        .await
        .assert_weave(400, 17);
    client
        .send(post(batch, "X-Weave-Total-Bytes", "1001"))
        .await
        .assert_weave(400, 17);
    client
        .send(post(plain, "X-Weave-Records", "many"))
        .await
        .assert_weave(400, 0);
    assert_eq!(client.get("/info/collections").await.json(), json!({}));

    let reply = client.send(post(plain, "X-Weave-Records", "2")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = client.send(post(plain, "X-Weave-Bytes", "100")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = client.send(post(batch, "X-Weave-Total-Records", "5")).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let reply = client
        .send(post(batch, "X-Weave-Total-Bytes", "1000"))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
}

#[tokio::test]
async fn known_bad_crypto_keys_are_refused() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let payload = r#"{"ciphertext": "abc", "IV": "AAAAAAAAAAAAAAAAAAAAAA==", "hmac": "def"}"#;
    let bad = json!([{"id": "keys", "payload": payload}]);
    client
        .post("/storage/crypto", bad.clone())
        .await
        .assert_weave(400, 8);
    assert_eq!(client.get("/info/collections").await.json(), json!({}));

    let reply = client.post("/storage/other", bad).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["success"], json!(["keys"]));
}

#[tokio::test]
async fn stale_unmodified_since_is_refused() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let first = client.post("/storage/c", json!([record("a", 1)])).await;
    let second = client.post("/storage/c", json!([record("b", 1)])).await;
    assert_eq!((first.status, second.status), (200, 200));
    let older = first.header("x-last-modified").unwrap();
    let current = second.header("x-last-modified").unwrap();

    let call = client
        .call(Method::POST, "/storage/c")
        .json(&json!([record("c", 1)]))
        .header("X-If-Unmodified-Since", older);
    let reply = client.send(call).await;
    assert_eq!(reply.status, 412, "{reply:?}");
    assert_eq!(reply.header("x-last-modified"), Some(current));
    assert_eq!(ids(&client, "c").await, ["a", "b"]);

    let call = client
        .call(Method::POST, "/storage/c")
        .json(&json!([record("c", 1)]))
        .header("X-If-Unmodified-Since", current);
    assert_eq!(client.send(call).await.status, 200);
    assert_eq!(ids(&client, "c").await, ["a", "b", "c"]);
}
