//! What Firefox asks a Remote Settings server at start-up, in the exact form it asks it.
//!
//! Pointed at a custom server, Firefox reads some twenty built-in collections as it starts
//! (search configuration, Nimbus experiments, OneCRL, …). For each, its client first asks
//! the monitor for that one collection (`Utils.fetchLatestChanges`: `collection`, `bucket`,
//! `_expected=0`, and `_since` with the last ETag on later polls). A server that does not
//! hold the collection must answer an empty `changes` list as JSON: Firefox then reports an
//! unknown collection and reads it as empty. Any other answer (an error status, a body
//! without `changes`, another content type) becomes a server error in every one of those
//! components. The full behaviour is checked against Firefox itself in
//! `tests/firefox/remote_settings.py`; this pins the server's side without a browser.

use reqwest::StatusCode;
use serde_json::{Value, json};
use settings_server::{KintoSettings, SettingsState};

/// Collections Firefox ESR 153 reads at start-up (a sample), with their buckets.
const STARTUP: &[(&str, &str)] = &[
    ("main", "search-config-v2"),
    ("main", "nimbus-desktop-experiments"),
    ("main", "remote-permissions"),
    ("main", "query-stripping"),
    ("security-state", "onecrl"),
    ("blocklists", "gfx"),
];

/// What must live as long as the server: its directory, and its schema on PostgreSQL.
type Guard = (tempfile::TempDir, Option<postgres_support::TestSchema>);

async fn start() -> (String, reqwest::Client, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let (store, schema) = crate::test_store(dir.path()).await;
    let state = SettingsState::new(store, KintoSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, settings_server::router(state)).await });
    (url, reqwest::Client::new(), (dir, schema))
}

/// GET as Firefox sends it (anonymous); the status, content type and JSON body.
async fn get(http: &reqwest::Client, url: &str) -> (StatusCode, String, Value) {
    let reply = http.get(url).send().await.unwrap();
    let status = reply.status();
    let content_type = reply
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = reply.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Firefox's per-collection monitor query, first poll and later ones (`_since` = ETag).
async fn assert_unknown_everywhere(http: &reqwest::Client, api: &str) {
    for (bucket, collection) in STARTUP {
        for since in ["", "&_since=%221700000000000%22"] {
            let url = format!(
                "{api}/buckets/monitor/collections/changes/changeset?collection={collection}&bucket={bucket}&_expected=0{since}"
            );
            let (status, content_type, body) = get(http, &url).await;
            assert_eq!(status, 200, "{url}: {body}");
            assert!(content_type.contains("application/json"), "{url}");
            assert_eq!(body["changes"], json!([]), "{url}");
            assert!(body["timestamp"].is_i64(), "{url}: {body}");
        }
    }
}

#[tokio::test]
async fn startup_polls_for_collections_not_held_are_empty_lists() {
    let (api, http, _guard) = start().await;
    // A server holding nothing at all: no `main` bucket, no monitor data.
    assert_unknown_everywhere(&http, &api).await;
    let (status, _, body) = get(
        &http,
        &format!("{api}/buckets/monitor/collections/changes/records"),
    )
    .await;
    assert_eq!((status.as_u16(), &body["data"]), (200, &json!([])));

    // A server holding one public collection in `main`: only that one is listed, and only
    // to the query for it.
    let editor =
        |request: reqwest::RequestBuilder| request.basic_auth("editor", Some("editor password"));
    let reply = http
        .put(format!("{api}/accounts/editor"))
        .json(&json!({"data": {"password": "editor password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    for (path, body) in [
        (
            "/buckets/main",
            json!({"permissions": {"read": ["system.Everyone"]}}),
        ),
        ("/buckets/main/collections/held", json!({})),
        (
            "/buckets/main/collections/held/records/r1",
            json!({"data": {"n": 1}}),
        ),
    ] {
        let reply = editor(http.put(format!("{api}{path}")).json(&body))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
    }
    assert_unknown_everywhere(&http, &api).await;
    let (_, _, held) = get(
        &http,
        &format!("{api}/buckets/monitor/collections/changes/changeset?collection=held&bucket=main&_expected=0"),
    )
    .await;
    assert_eq!(held["changes"].as_array().map(Vec::len), Some(1), "{held}");
    assert_eq!(held["changes"][0]["collection"], "held");

    // Firefox never asks for the changeset of a collection the monitor did not list; if
    // something does, a collection that does not exist in a readable bucket is a 404 (as
    // in Kinto), with a JSON body.
    let (status, content_type, _) = get(
        &http,
        &format!("{api}/buckets/main/collections/search-config-v2/changeset?_expected=0"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(content_type.contains("application/json"));
}
