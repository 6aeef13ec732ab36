//! The `info/*` views, dockerflow endpoints, and headers every storage response carries.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestNode, record};

#[tokio::test]
async fn empty_user_has_no_collections() {
    let node = TestNode::start().await;
    let reply = node.client(1).get("/info/collections").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({}));
    assert_eq!(reply.header("x-weave-records"), Some("0"));
    assert_eq!(reply.header("x-last-modified"), Some("0.00"));
    assert!(reply.header("x-weave-timestamp").is_some());
}

#[tokio::test]
async fn collections_counts_usage_and_quota() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let first = client
        .post(
            "/storage/history",
            json!([record("a", 1024), record("b", 1024)]),
        )
        .await;
    let second = client
        .post("/storage/tabs", json!([record("t", 512)]))
        .await;
    let history_ts = first.ts_header("x-last-modified");
    let tabs_ts = second.ts_header("x-last-modified");
    assert!(tabs_ts > history_ts);

    let collections = client.get("/info/collections").await;
    assert_eq!(collections.header("x-weave-records"), Some("2"));
    assert_eq!(collections.ts_header("x-last-modified"), tabs_ts);
    let body = collections.json();
    assert_eq!(
        (body["history"].as_f64().unwrap() * 1000.0).round() as u64,
        history_ts
    );
    assert_eq!(
        (body["tabs"].as_f64().unwrap() * 1000.0).round() as u64,
        tabs_ts
    );
    assert!(
        collections
            .body
            .contains(&format!("{}.{:02}", tabs_ts / 1000, tabs_ts % 1000 / 10))
    );

    assert_eq!(
        client.get("/info/collection_counts").await.json(),
        json!({"history": 2, "tabs": 1})
    );
    assert_eq!(
        client.get("/info/collection_usage").await.json(),
        json!({"history": 2.0, "tabs": 0.5})
    );
    assert_eq!(client.get("/info/quota").await.json(), json!([2.5, null]));
}

#[tokio::test]
async fn info_views_honour_if_modified_since() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let stamp = client.post("/storage/tabs", json!([record("t", 1)])).await;
    let stamp = stamp.header("x-last-modified").unwrap().to_owned();
    for view in [
        "collections",
        "collection_counts",
        "collection_usage",
        "quota",
    ] {
        let call = client
            .call(Method::GET, &format!("/info/{view}"))
            .header("x-if-modified-since", &stamp);
        let reply = client.send(call).await;
        assert_eq!(reply.status, 304, "{view}");
        assert_eq!(reply.header("x-last-modified"), Some(stamp.as_str()));
    }
}

#[tokio::test]
async fn configuration_publishes_the_limits() {
    let node = TestNode::start_with(|s| s.limits.max_post_records = 42).await;
    let reply = node.client(1).get("/info/configuration").await;
    assert_eq!(reply.status, 200);
    let limits = reply.json();
    for key in [
        "max_post_bytes",
        "max_post_records",
        "max_record_payload_bytes",
        "max_request_bytes",
        "max_total_bytes",
        "max_total_records",
    ] {
        assert!(limits.get(key).is_some(), "{key}");
    }
    assert_eq!(limits["max_post_records"], 42);
    assert_eq!(limits["max_post_bytes"], 2_621_440);
}

#[tokio::test]
async fn timestamps_strictly_increase_per_user() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let mut last = 0;
    for i in 0..20 {
        let reply = client
            .put(&format!("/storage/tabs/r{i}"), json!({"payload": "x"}))
            .await;
        let stamp = reply.ts_header("x-last-modified");
        assert!(stamp > last, "write {i}: {stamp} after {last}");
        assert_eq!(stamp % 10, 0);
        assert!(reply.ts_header("x-weave-timestamp") >= stamp);
        last = stamp;
    }
}

#[tokio::test]
async fn dockerflow_endpoints() {
    let node = TestNode::start().await;
    let http = reqwest::Client::new();
    let heartbeat = http
        .get(format!("{}/__heartbeat__", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(heartbeat.status(), 200);
    assert!(heartbeat.headers().get("x-weave-timestamp").is_none());
    let body: serde_json::Value = heartbeat.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["database"].as_str()),
        (Some("ok"), Some("ok"))
    );

    let lb = http
        .get(format!("{}/__lbheartbeat__", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(lb.status(), 200);
    let version: serde_json::Value = http
        .get(format!("{}/__version__", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn heartbeat_fails_when_the_database_is_gone() {
    let node = TestNode::start().await;
    node.state.store.close().await;
    let reply = reqwest::get(format!("{}/__heartbeat__", node.url))
        .await
        .unwrap();
    assert_eq!(reply.status(), 503);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client.get("/info/collections").await;
    client.get("/storage/tabs/missing").await;
    let text = node.state.metrics.render(node.state.store.pool_state());
    assert!(
        text.contains(r#"route="/1.5/{uid}/info/collections",method="GET",status="200""#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/1.5/{uid}/storage/{collection}/{bso}",method="GET",status="404""#)
    );
    assert!(text.contains("syncstack_storage_request_duration_seconds_bucket"));
    assert!(text.contains("syncstack_storage_db_pool_connections"));
}
