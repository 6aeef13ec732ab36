//! Remote Settings in `syncstack serve`: the Kinto API under /v1, configured with Kinto's
//! setting names.

use serde_json::{Value, json};

use crate::process::Node;

#[tokio::test]
async fn the_kinto_api_is_served_and_configured_by_kinto_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[("SYNCSTACK_SETTINGS_PAGINATE_BY", "2")]).await;
    let http = reqwest::Client::new();
    let base = format!("{}/v1", server.url);
    let put = |path: &str, body: Value| {
        http.put(format!("{base}{path}"))
            .basic_auth("ops", Some("long password"))
            .json(&body)
            .send()
    };
    let account = http
        .put(format!("{base}/accounts/ops"))
        .json(&json!({"data": {"password": "long password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 201);
    assert_eq!(put("/buckets/main", json!({})).await.unwrap().status(), 201);
    let collection = json!({"permissions": {"read": ["system.Everyone"]}});
    assert_eq!(
        put("/buckets/main/collections/cfr", collection)
            .await
            .unwrap()
            .status(),
        201
    );
    for i in 0..3 {
        let record = put(
            &format!("/buckets/main/collections/cfr/records/r{i}"),
            json!({"data": {"n": i}}),
        )
        .await
        .unwrap();
        assert_eq!(record.status(), 201);
    }
    let page = http
        .get(format!("{base}/buckets/main/collections/cfr/records"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers().contains_key("next-page"),
        "paginate_by from SYNCSTACK_SETTINGS_PAGINATE_BY"
    );
    let body: Value = page.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let hello: Value = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hello["http_api_version"], "1.23");
    server.stop().await;
}
