//! The review workflow's own writes in the history, as Kinto's remote-settings plugin
//! leaves them: each one an entry of the plugin user, after the write that caused it. Kinto
//! Admin's collection history and "latest approvals" read these entries.

use serde_json::{Value, json};

use crate::workflow::Server;

const PLUGIN: &str = "plugin:remote-settings";

/// `(user_id, action, status)` of the source collection's entries, oldest first.
fn collection_entries(history: &Value) -> Vec<(String, String, Value)> {
    let mut entries: Vec<(String, String, Value)> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["target"]["data"]["status"].clone(),
            )
        })
        .collect();
    entries.reverse();
    entries
}

fn owned(entries: &[(&str, &str, &str)]) -> Vec<(String, String, Value)> {
    entries
        .iter()
        .map(|(user, action, status)| (user.to_string(), action.to_string(), json!(status)))
        .collect()
}

#[tokio::test]
async fn the_workflows_writes_are_recorded_as_the_plugins() {
    let server = Server::with_collection().await;
    // Where the history stands before the review round.
    let before = server
        .get("/v1/buckets/main-workspace/history?_limit=1", Some("admin"))
        .await;
    let start = before.body["data"][0]["last_modified"].as_i64().unwrap();
    server.publish(&[("r1", json!({"text": "hello"}))]).await;

    let history = server
        .get(
            &format!(
                "/v1/buckets/main-workspace/history?resource_name=collection&collection_id=cfr&_since={start}"
            ),
            Some("admin"),
        )
        .await;
    assert_eq!(history.status, 200, "{:?}", history.body);
    assert_eq!(
        collection_entries(&history.body),
        owned(&[
            // The editor's record puts the source back to work in progress.
            (PLUGIN, "update", "work-in-progress"),
            ("account:editor", "update", "to-review"),
            // The plugin notes who asked (and copies to the preview, in its own bucket).
            (PLUGIN, "update", "to-review"),
            ("account:reviewer", "update", "to-sign"),
            (PLUGIN, "update", "signed"),
        ])
    );
    let entries = history.body["data"].as_array().unwrap();
    let signed = &entries[0]["target"]["data"];
    assert_eq!(signed["last_review_request_by"], "account:editor");
    assert_eq!(signed["last_review_by"], "account:reviewer");
    assert_eq!(signed["last_signature_by"], "account:reviewer");
    assert_eq!(entries[0]["uri"], "/buckets/main-workspace/collections/cfr");
    assert_eq!(
        entries[2]["target"]["data"]["last_review_request_by"],
        "account:editor"
    );

    // Kinto Admin's "latest approvals": the reviewers' to-sign writes.
    let approvals = server
        .get(
            "/v1/buckets/main-workspace/history?resource_name=collection&collection_id=cfr&target.data.status=to-sign&_sort=-last_modified&_limit=20",
            Some("admin"),
        )
        .await;
    assert_eq!(approvals.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(approvals.body["data"][0]["user_id"], "account:reviewer");
    // Its "hide the signer plugin" filter leaves the people's writes.
    let people = server
        .get(
            &format!("/v1/buckets/main-workspace/history?collection_id=cfr&_since={start}&exclude_user_id={PLUGIN}"),
            Some("admin"),
        )
        .await;
    let users: Vec<&str> = people.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        ["account:reviewer", "account:editor", "account:editor"]
    );

    // The published copies and signatures, in the preview's and destination's buckets,
    // readable by whoever may read the published collection (everyone, an outsider too).
    for bucket in ["main-preview", "main"] {
        let published = server
            .get(&format!("/v1/buckets/{bucket}/history"), Some("outsider"))
            .await;
        assert_eq!(published.status, 200, "{bucket}: {:?}", published.body);
        let entries = published.body["data"].as_array().unwrap();
        assert!(
            entries.iter().all(|e| e["user_id"] == PLUGIN),
            "{entries:?}"
        );
        let record = entries
            .iter()
            .find(|e| e["resource_name"] == "record")
            .unwrap_or_else(|| panic!("{bucket}: no record entry in {entries:?}"));
        assert_eq!(record["action"], "create");
        assert_eq!(record["record_id"], "r1");
        assert_eq!(record["target"]["data"]["text"], "hello");
        assert_eq!(
            record["uri"],
            format!("/buckets/{bucket}/collections/cfr/records/r1")
        );
        // The newest entry is the signature of what the record entry copied.
        assert_eq!(entries[0]["resource_name"], "collection");
        assert_eq!(
            entries[0]["target"]["data"]["signature"]["mode"],
            "p384ecdsa"
        );
    }
}

#[tokio::test]
async fn creating_a_source_collection_records_its_groups_and_published_copies() {
    let server = Server::with_collection().await;
    let history = server
        .get(
            "/v1/buckets/main-workspace/history?exclude_resource_name=record",
            Some("admin"),
        )
        .await;
    let entries: Vec<(String, String, String)> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["uri"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("account:admin", "create", "/buckets/main-workspace"),
        (
            "account:admin",
            "create",
            "/buckets/main-workspace/collections/cfr",
        ),
        (
            PLUGIN,
            "create",
            "/buckets/main-workspace/groups/cfr-editors",
        ),
        (
            PLUGIN,
            "create",
            "/buckets/main-workspace/groups/cfr-reviewers",
        ),
        (PLUGIN, "update", "/buckets/main-workspace/collections/cfr"),
        (PLUGIN, "update", "/buckets/main-workspace/collections/cfr"),
        (
            "account:admin",
            "update",
            "/buckets/main-workspace/groups/cfr-editors",
        ),
        (
            "account:admin",
            "update",
            "/buckets/main-workspace/groups/cfr-reviewers",
        ),
    ]
    .iter()
    .map(|(u, a, uri)| (u.to_string(), a.to_string(), uri.to_string()))
    .collect();
    assert_eq!(entries, expected);
    // The destination bucket's entry is the plugin's to read; its collection's, everyone's.
    let main = server
        .get("/v1/buckets/main/history", Some("outsider"))
        .await;
    let created: Vec<&str> = main.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "create")
        .map(|e| e["resource_name"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["collection"]);
}
