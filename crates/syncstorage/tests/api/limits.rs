//! Request size limits (declared and streamed bodies, record payloads) and storage quotas.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use reqwest::Method;
use serde_json::json;
use url::Url;

use crate::common::{Reply, SyncClient, TestNode, record};

/// A node that refuses request bodies over 1000 bytes.
async fn small_request_node() -> TestNode {
    TestNode::start_with(|s| s.limits.max_request_bytes = 1000).await
}

#[tokio::test]
async fn declared_length_over_the_limit_is_refused() {
    let node = small_request_node().await;
    let client = node.client(1);
    client
        .post("/storage/c", json!([record("a", 1200)]))
        .await
        .assert_weave(413, 17);
    client
        .put("/storage/c/a", record("a", 1200))
        .await
        .assert_weave(413, 17);
    assert_eq!(client.get("/info/collections").await.json(), json!({}));

    let reply = client.post("/storage/c", json!([record("a", 900)])).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// POSTs `chunks` as a streamed body of unknown length, so that it goes out chunked.
async fn post_chunked(client: &SyncClient, rest: &str, chunks: &[&str]) -> Reply {
    let call = client.call(Method::POST, rest);
    let url = Url::parse(&format!("{}{}", client.base, call.path)).unwrap();
    let mut frames = Vec::new();
    for chunk in chunks {
        // One-frame bodies give the frames, so the test needs no direct http-body dependency.
        let mut body = Full::new(Bytes::from(chunk.to_string()));
        frames.push(body.frame().await.unwrap());
    }
    let body = reqwest::Body::wrap(StreamBody::new(futures::stream::iter(frames)));
    let request = client
        .http
        .post(url.clone())
        .header("authorization", client.authorization(&call, &url))
        .header("content-type", "application/json")
        .body(body)
        .build()
        .unwrap();
    assert!(
        request.body().unwrap().as_bytes().is_none(),
        "body has a known length"
    );
    let response = client.http.execute(request).await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_refused() {
    let node = small_request_node().await;
    let client = node.client(1);
    let filler = "x".repeat(400);
    let over = [
        r#"[{"id": "a", "payload": ""#,
        &filler,
        &filler,
        &filler,
        r#""}]"#,
    ];
    post_chunked(&client, "/storage/c", &over)
        .await
        .assert_weave(413, 17);
    assert_eq!(client.get("/info/collections").await.json(), json!({}));

    let under = [r#"[{"id": "a", "payload": ""#, &filler, &filler, r#""}]"#];
    let reply = post_chunked(&client, "/storage/c", &under).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["success"], json!(["a"]));
}

#[tokio::test]
async fn put_payload_over_the_record_limit_is_refused() {
    let node = TestNode::start_with(|s| s.limits.max_record_payload_bytes = 100).await;
    let client = node.client(1);
    client
        .put("/storage/c/a", record("a", 101))
        .await
        .assert_weave(400, 8);
    assert_eq!(client.get("/storage/c/a").await.status, 404);
    let reply = client.put("/storage/c/a", record("a", 100)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn writes_stop_once_the_quota_is_used() {
    let node = TestNode::start_with(|s| {
        s.quota_enabled = true;
        s.limits.max_quota_limit = 2048;
    })
    .await;
    let client = node.client(1);
    let reply = client.put("/storage/c/a", record("a", 1000)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-weave-quota-remaining"), Some("1"));

    // Under quota before the write, so it is written even though it goes over.
    let reply = client.post("/storage/c", json!([record("b", 1100)])).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-weave-quota-remaining"), Some("0"));

    client
        .put("/storage/c/c", record("c", 1))
        .await
        .assert_weave(403, 14);
    client
        .post("/storage/c", json!([record("c", 1)]))
        .await
        .assert_weave(403, 14);
    let quota = client.get("/info/quota").await;
    assert_eq!(quota.status, 200, "{quota:?}");
    assert_eq!(quota.json(), json!([2100.0 / 1024.0, 2.0]));

    // Freeing space lets writes through again.
    assert_eq!(client.delete("/storage/c/b").await.status, 200);
    let reply = client.put("/storage/c/c", record("c", 1)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn without_quotas_there_is_no_limit_to_report() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client.put("/storage/c/a", record("a", 1024)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-weave-quota-remaining"), None);
    let reply = client.post("/storage/c", json!([record("b", 512)])).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-weave-quota-remaining"), None);
    assert_eq!(client.get("/info/quota").await.json(), json!([1.5, null]));
}
