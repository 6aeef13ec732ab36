//! The review workflow and content signer over a real socket: editors, reviewers, the
//! preview and destination copies, signatures checked as a client checks them (the x5u
//! chain fetched from the server, the root pinned by its SHA-256).

mod server;
mod signing;

use reqwest::Method;
use serde_json::json;

pub(crate) use server::Server;
use server::{SOURCE, ids};

#[tokio::test]
async fn full_review_cycle() {
    let server = Server::with_collection().await;

    // Creating the source made its groups and an empty, signed destination and preview.
    let source = server.source().await;
    assert_eq!(source["status"], "signed");
    assert_eq!(source["last_signature_by"], "account:admin");
    let editors = server
        .get(
            "/v1/buckets/main-workspace/groups/cfr-editors",
            Some("admin"),
        )
        .await;
    assert_eq!(editors.body["data"]["members"], json!(["account:editor"]));
    assert!(ids(&server.verified("main").await).is_empty());
    assert!(ids(&server.verified("main-preview").await).is_empty());

    // The editor edits: work in progress.
    server
        .record("editor", "r1", json!({"title": "one", "n": 1}))
        .await;
    server
        .record("editor", "r2", json!({"title": "two", "tags": ["a", "é"]}))
        .await;
    let source = server.source().await;
    assert_eq!(source["status"], "work-in-progress");
    assert_eq!(source["last_edit_by"], "account:editor");
    assert!(
        source["last_edit_date"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );

    // Review requested: the preview has the records, signed; the destination does not.
    let reply = server.set_status("editor", "to-review").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let source = server.source().await;
    assert_eq!(source["status"], "to-review");
    assert_eq!(source["last_review_request_by"], "account:editor");
    let preview = server.verified("main-preview").await;
    assert_eq!(ids(&preview), ["r1", "r2"]);
    assert!(ids(&server.verified("main").await).is_empty());

    // Approved: the destination has them, signed over exactly what clients receive.
    let reply = server.set_status("reviewer", "to-sign").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let source = server.source().await;
    assert_eq!(source["status"], "signed");
    assert_eq!(source["last_review_by"], "account:reviewer");
    assert_eq!(source["last_signature_by"], "account:reviewer");
    assert!(source["last_review_date"].is_string());
    let main = server.verified("main").await;
    assert_eq!(ids(&main), ["r1", "r2"]);
    let r2 = main["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "r2")
        .unwrap();
    assert_eq!(r2["tags"], json!(["a", "é"]));
    assert_eq!(main["metadata"]["bucket"], "main");
    // The destination numbered its own timestamps, and the signature is over them.
    let records = server
        .get("/v1/buckets/main/collections/cfr/records", None)
        .await;
    assert_eq!(records.status, 200);
    let newest = records.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["last_modified"].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(main["timestamp"].as_i64().unwrap(), newest);

    // Everyone reads the destination; nobody but the plugin writes it.
    for user in [None, Some("editor"), Some("reviewer"), Some("admin")] {
        let write = server
            .call(
                Method::PUT,
                "/v1/buckets/main/collections/cfr/records/r9",
                user,
                Some(json!({"data": {}})),
            )
            .await;
        assert!(
            matches!(write.status.as_u16(), 401 | 403),
            "{user:?}: {:?}",
            write.body
        );
    }
    // The source stays private.
    let hidden = server.get(&format!("{SOURCE}/records"), None).await;
    assert!(
        hidden.status == 401 || hidden.body["data"] == json!([]),
        "{:?}",
        hidden.body
    );

    // The root URL announces the workflow as the reference does.
    let hello = server.get("/v1/", None).await;
    let signer = &hello.body["capabilities"]["signer"];
    assert_eq!(
        signer["resources"],
        json!([{
            "source": {"bucket": "main-workspace", "collection": null},
            "preview": {"bucket": "main-preview", "collection": null},
            "destination": {"bucket": "main", "collection": null},
        }])
    );
    assert_eq!(signer["editors_group"], "{collection_id}-editors");
    assert_eq!(signer["reviewers_group"], "{collection_id}-reviewers");
    assert_eq!(signer["to_review_enabled"], true);
    assert_eq!(signer["group_check_enabled"], true);
    assert_eq!(signer["plugin_userid"], "plugin:remote-settings");

    // The chain is served as published, and nothing else is.
    let x5u = main["metadata"]["signature"]["x5u"].as_str().unwrap();
    let chain = server
        .http
        .get(x5u)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(chain, server.pki.chain_pem);
    server
        .get("/v1/__certs__/nothing.chain", None)
        .await
        .refused(404, 111, "not found");
    let heartbeat = server.get("/v1/__heartbeat__", None).await;
    assert_eq!(heartbeat.status, 200, "{:?}", heartbeat.body);
    assert_eq!(heartbeat.body["signer"], true);
}

#[tokio::test]
async fn only_an_editor_asks_and_only_another_reviewer_approves() {
    let server = Server::with_collection().await;
    server.record("editor", "r1", json!({"n": 1})).await;

    // The admin may write the collection but is not an editor any more.
    server
        .set_status("admin", "to-review")
        .await
        .refused(403, 121, "Not in cfr-editors group");
    server
        .set_status("outsider", "to-review")
        .await
        .refused(403, 121, "");
    server
        .set_status("reviewer", "to-review")
        .await
        .refused(403, 121, "Not in cfr-editors group");
    assert_eq!(server.source().await["status"], "work-in-progress");

    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    server
        .set_status("editor", "to-sign")
        .await
        .refused(403, 121, "Not in cfr-reviewers group");
    server
        .set_status("outsider", "to-sign")
        .await
        .refused(403, 121, "");
    server
        .set_status("admin", "to-sign")
        .await
        .refused(403, 121, "Not in cfr-reviewers group");

    // An editor who is also a reviewer cannot approve their own request.
    server
        .set_members("cfr-reviewers", &["reviewer", "editor"])
        .await;
    server
        .set_status("editor", "to-sign")
        .await
        .refused(403, 121, "Last editor cannot review");
    assert_eq!(server.source().await["status"], "to-review");
    assert!(ids(&server.changeset("main").await).is_empty());

    assert_eq!(server.set_status("reviewer", "to-sign").await.status, 200);
    assert_eq!(ids(&server.verified("main").await), ["r1"]);
}

#[tokio::test]
async fn self_approval_when_configured_and_no_review_when_disabled() {
    let server = Server::start(30, true, |s| s.allow_self_approval = true).await;
    server.create_collection().await;
    server
        .set_members("cfr-reviewers", &["reviewer", "editor"])
        .await;
    server.record("editor", "r1", json!({"n": 1})).await;
    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    assert_eq!(server.set_status("editor", "to-sign").await.status, 200);
    assert_eq!(ids(&server.verified("main").await), ["r1"]);

    let server = Server::start(30, true, |s| s.to_review_enabled = false).await;
    server.create_collection().await;
    server.record("editor", "r1", json!({"n": 1})).await;
    // Anyone who may write the collection publishes straight away.
    let reply = server.set_status("admin", "to-sign").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(ids(&server.verified("main").await), ["r1"]);
    assert_eq!(
        server.get("/v1/", None).await.body["capabilities"]["signer"]["to_review_enabled"],
        false
    );
}

#[tokio::test]
async fn illegal_transitions_are_refused() {
    let server = Server::with_collection().await;
    assert_eq!(server.source().await["status"], "signed");
    server
        .set_status("reviewer", "to-sign")
        .await
        .refused(400, 109, "Collection already signed");
    server.set_status("editor", "to-rollback").await.refused(
        400,
        109,
        "Collection has no work-in-progress",
    );

    server.record("editor", "r1", json!({"n": 1})).await;
    server
        .set_status("reviewer", "to-sign")
        .await
        .refused(400, 109, "Collection not under review");
    server.set_status("reviewer", "signed").await.refused(
        400,
        109,
        "Cannot set status to 'signed'",
    );
    server.set_status("editor", "in-progress").await.refused(
        400,
        109,
        "Invalid status 'in-progress'",
    );
    server
        .set_status("editor", "to-refresh")
        .await
        .refused(400, 109, "Invalid status");
    server
        .put(SOURCE, "admin", json!({"data": {}}))
        .await
        .refused(400, 109, "Cannot remove status");
    server
        .patch(
            SOURCE,
            "editor",
            json!({"data": {"last_edit_by": "account:someone"}}),
        )
        .await
        .refused(400, 109, "Cannot change 'last_edit_by'");
    server
        .patch(
            SOURCE,
            "editor",
            json!({"data": {"last_signature_date": null}}),
        )
        .await
        .refused(400, 109, "Cannot change 'last_signature_date'");
    let source = server.source().await;
    assert_eq!(source["status"], "work-in-progress");
    assert_eq!(source["last_edit_by"], "account:editor");

    // Other metadata stays editable, and comments are the people's.
    let reply = server
        .patch(SOURCE, "editor", json!({"data": {"displayFields": ["n"]}}))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = server
        .patch(
            SOURCE,
            "editor",
            json!({"data": {"status": "to-review", "last_editor_comment": "please"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(server.source().await["last_editor_comment"], "please");
    // A published field is copied with the signature.
    assert_eq!(
        server.verified("main-preview").await["metadata"]["displayFields"],
        json!(["n"])
    );
}

#[tokio::test]
async fn edits_reset_the_review_and_rollback_restores() {
    let server = Server::with_collection().await;
    server
        .publish(&[("r1", json!({"v": 1})), ("r2", json!({"v": 2}))])
        .await;

    // Changes under review: any edit puts the collection back in progress.
    server.record("editor", "r1", json!({"v": 10})).await;
    server.record("editor", "r3", json!({"v": 3})).await;
    let deleted = server
        .call(
            Method::DELETE,
            &format!("{SOURCE}/records/r2"),
            Some("editor"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    assert_eq!(ids(&server.verified("main-preview").await), ["r1", "r3"]);
    server.record("editor", "r4", json!({"v": 4})).await;
    assert_eq!(server.source().await["status"], "work-in-progress");
    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    // The reviewer declines.
    assert_eq!(
        server
            .patch(
                SOURCE,
                "reviewer",
                json!({"data": {"status": "work-in-progress", "last_reviewer_comment": "no"}})
            )
            .await
            .status,
        200
    );
    assert_eq!(server.source().await["status"], "work-in-progress");

    // Rollback: the source and the preview are what is published again.
    let reply = server.set_status("editor", "to-rollback").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let source = server.source().await;
    assert_eq!(source["status"], "signed");
    assert_eq!(source["last_reviewer_comment"], "");
    let records = server
        .get(&format!("{SOURCE}/records"), Some("editor"))
        .await;
    let mut values: Vec<(String, i64)> = records.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["v"].as_i64().unwrap(),
            )
        })
        .collect();
    values.sort();
    assert_eq!(values, [("r1".to_owned(), 1), ("r2".to_owned(), 2)]);
    assert_eq!(ids(&server.verified("main-preview").await), ["r1", "r2"]);
    assert_eq!(ids(&server.verified("main").await), ["r1", "r2"]);

    // Deleting a record is published as a deletion: clients syncing from a timestamp see
    // the tombstone.
    let before = server.changeset("main").await["timestamp"]
        .as_i64()
        .unwrap();
    server
        .call(
            Method::DELETE,
            &format!("{SOURCE}/records/r1"),
            Some("editor"),
            None,
        )
        .await;
    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    assert_eq!(server.set_status("reviewer", "to-sign").await.status, 200);
    let diff = server
        .get(
            &format!("/v1/buckets/main/collections/cfr/changeset?_expected=1&_since={before}"),
            None,
        )
        .await;
    assert_eq!(
        diff.body["changes"],
        json!([{"id": "r1", "last_modified": diff.body["timestamp"], "deleted": true}])
    );
    assert_eq!(ids(&server.verified("main").await), ["r2"]);
}
