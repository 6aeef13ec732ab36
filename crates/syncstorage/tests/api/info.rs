//! The `info/*` views, dockerflow endpoints and response headers common to all routes.

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
