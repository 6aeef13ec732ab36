//! The signer's side of the workflow: certificate rotation and expiry warnings, key files,
//! unsigned publication without a key, published copies and attachments.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use settings_server::workflow::{SignerSettings, Workflow};

use super::server::{SIGNER_NAME, SOURCE, Server, ids, now};

#[tokio::test]
async fn resigning_moves_signatures_to_a_new_certificate() {
    let server = Server::with_collection().await;
    server.publish(&[("r1", json!({"v": 1}))]).await;
    let first = server.verified("main").await;
    let first_signature = first["metadata"]["signature"].clone();

    // Unchanged key and data: the same (deterministic) signature, still valid.
    assert_eq!(server.set_status("editor", "to-resign").await.status, 200);
    assert_eq!(
        server.verified("main").await["metadata"]["signature"],
        first_signature
    );

    // A rotated certificate: to-resign signs again, without touching the records.
    let chain = server.rotate(60);
    assert_eq!(server.set_status("editor", "to-resign").await.status, 200);
    let source = server.source().await;
    assert_eq!(
        source["status"], "signed",
        "the previous status is restored"
    );
    assert_eq!(source["last_signature_by"], "account:editor");
    let second = server.verified("main").await;
    let second_signature = &second["metadata"]["signature"];
    assert_ne!(second_signature["signature"], first_signature["signature"]);
    assert_ne!(second_signature["x5u"], first_signature["x5u"]);
    assert_eq!(second["timestamp"], first["timestamp"]);
    assert_eq!(second["changes"], first["changes"]);
    let served = server
        .http
        .get(second_signature["x5u"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served, chain);
    server.verified("main-preview").await;
    // The old chain stays served for clients holding the old signature.
    let old = server
        .http
        .get(first_signature["x5u"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);

    // The periodic job's re-signature, after another rotation, while a review is pending.
    server.record("editor", "r2", json!({"v": 2})).await;
    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    server.rotate(90);
    assert_eq!(
        server
            .workflow
            .resign_outdated(&server.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        server
            .workflow
            .resign_outdated(&server.state)
            .await
            .unwrap(),
        0
    );
    assert_eq!(server.workflow.resign_all(&server.state).await.unwrap(), 1);
    let third = server.verified("main").await;
    assert_ne!(
        third["metadata"]["signature"]["x5u"],
        second_signature["x5u"]
    );
    assert_eq!(ids(&third), ["r1"]);
    assert_eq!(ids(&server.verified("main-preview").await), ["r1", "r2"]);
    let source = server.source().await;
    assert_eq!(
        source["status"], "to-review",
        "re-signing changes no status"
    );
    assert_eq!(source["last_signature_by"], "plugin:remote-settings");
}

#[tokio::test]
async fn floats_are_refused_in_reviewed_collections() {
    let server = Server::with_collection().await;
    server
        .record("editor", "r1", json!({"price": {"eur": 1.5}}))
        .await
        .refused(
            400,
            109,
            "field contains float value (tip: use integer or string), 'price.eur'",
        );
    let post = server
        .call(
            Method::POST,
            &format!("{SOURCE}/records"),
            Some("editor"),
            Some(json!({"data": {"ratio": 0.25}})),
        )
        .await;
    post.refused(400, 109, "float");
    assert_eq!(
        server
            .record("editor", "r1", json!({"price": "1.5"}))
            .await
            .status,
        201
    );

    // Elsewhere floats are fine.
    assert_eq!(
        server
            .put("/v1/buckets/other", "admin", json!({}))
            .await
            .status,
        201
    );
    assert_eq!(
        server
            .put("/v1/buckets/other/collections/c", "admin", json!({}))
            .await
            .status,
        201
    );
    assert_eq!(
        server
            .put(
                "/v1/buckets/other/collections/c/records/r",
                "admin",
                json!({"data": {"x": 1.5}})
            )
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn deleting_the_source_empties_what_was_published() {
    let server = Server::with_collection().await;
    server.publish(&[("r1", json!({"v": 1}))]).await;
    let deleted = server
        .call(Method::DELETE, SOURCE, Some("admin"), None)
        .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    assert!(ids(&server.verified("main").await).is_empty());
    assert!(ids(&server.verified("main-preview").await).is_empty());
    let group = server
        .get(
            "/v1/buckets/main-workspace/groups/cfr-editors",
            Some("admin"),
        )
        .await;
    assert_eq!(group.status, 404);
}

#[tokio::test]
async fn the_heartbeat_warns_before_the_certificate_expires() {
    let server = Server::start(5, true, |s| s.resign_before_expiry_days = 10).await;
    let heartbeat = server.get("/v1/__heartbeat__", None).await;
    assert_eq!(heartbeat.status, 503, "{:?}", heartbeat.body);
    assert_eq!(heartbeat.body["signer"], false);
    assert_eq!(heartbeat.body["storage"], true);
    let raw = reqwest::get(format!("{}/v1/__heartbeat__", server.url))
        .await
        .unwrap();
    assert_eq!(raw.headers()["retry-after"], "30", "503s say when to retry");

    // Renewed: healthy again.
    server.rotate(60);
    let heartbeat = server.get("/v1/__heartbeat__", None).await;
    assert_eq!(heartbeat.status, 200, "{:?}", heartbeat.body);
    assert_eq!(heartbeat.body["signer"], true);
}

#[tokio::test]
async fn without_a_key_collections_are_reviewed_and_published_unsigned() {
    let server = Server::start(30, false, |_| {}).await;
    server.create_collection().await;
    server.publish(&[("r1", json!({"v": 1}))]).await;
    let main = server.changeset("main").await;
    assert_eq!(ids(&main), ["r1"]);
    assert!(main["metadata"].get("signature").is_none());
    let heartbeat = server.get("/v1/__heartbeat__", None).await;
    assert_eq!(heartbeat.status, 200);
    assert!(heartbeat.body.get("signer").is_none());

    assert_eq!(server.workflow.resign_all(&server.state).await.unwrap(), 0);
    // Once a key is installed, the start-up re-signature signs what was published.
    server
        .workflow
        .install_keys(&server.pki.signer_key_pem, &server.pki.chain_pem)
        .unwrap();
    assert_eq!(
        server
            .workflow
            .resign_outdated(&server.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(ids(&server.verified("main").await), ["r1"]);
}

#[tokio::test]
async fn key_files_are_read_and_reloaded_when_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = content_signature::init_dev_pki(SIGNER_NAME, Duration::from_secs(30 * 86_400), now())
        .unwrap();
    let (key, chain) = (dir.path().join("key.pem"), dir.path().join("chain.pem"));
    std::fs::write(&key, &pki.signer_key_pem).unwrap();
    std::fs::write(&chain, &pki.chain_pem).unwrap();
    let settings = SignerSettings {
        key_file: Some(key.clone()),
        chain_file: Some(chain.clone()),
        x5u_base_url: Some("https://cdn.example.com/chains".into()),
        ..SignerSettings::default()
    };
    let workflow = Workflow::new(settings.clone(), "http://unused").unwrap();
    let first = workflow.current_signer().unwrap().x5u.clone();
    assert!(first.starts_with(&format!("https://cdn.example.com/chains/{SIGNER_NAME}-")));
    assert!(!workflow.reload_keys().unwrap(), "unchanged files");

    let (cert, new_key) = content_signature::issue_signer(
        &pki.intermediate_pem,
        &pki.intermediate_key_pem,
        SIGNER_NAME,
        now() - 600,
        now() + 90 * 86_400,
    )
    .unwrap();
    std::fs::write(&key, &new_key).unwrap();
    std::fs::write(
        &chain,
        format!("{cert}{}{}", pki.intermediate_pem, pki.root_pem),
    )
    .unwrap();
    assert!(workflow.reload_keys().unwrap());
    assert_ne!(workflow.current_signer().unwrap().x5u, first);

    // Unusable material is refused at start, with the file named.
    std::fs::write(&key, "not a key").unwrap();
    let error = Workflow::new(settings.clone(), "http://unused").unwrap_err();
    assert!(error.to_string().contains("signing key"), "{error}");
    let missing = SignerSettings {
        key_file: Some(dir.path().join("nope.pem")),
        ..settings
    };
    let error = Workflow::new(missing, "http://unused").unwrap_err();
    assert!(error.to_string().contains("nope.pem"), "{error}");
}

#[tokio::test]
async fn published_collections_cannot_be_deleted_while_their_source_exists() {
    let server = Server::start(30, true, |_| {}).await;
    server.accounts().await;
    // The admin owns the destination bucket, so only the workflow stops the delete.
    assert_eq!(
        server
            .put("/v1/buckets/main", "admin", json!({}))
            .await
            .status,
        201
    );
    server.source_collection().await;
    let main = "/v1/buckets/main/collections/cfr";
    server
        .call(Method::DELETE, main, Some("admin"), None)
        .await
        .refused(403, 121, "Collection is in use.");
    assert_eq!(
        server
            .call(Method::DELETE, SOURCE, Some("admin"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .call(Method::DELETE, main, Some("admin"), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn attachments_go_through_the_review_and_stay_served_once_published() {
    let server = Server::with_collection().await;
    server.publish(&[("r1", json!({"v": 1}))]).await;
    let form = reqwest::multipart::Form::new().part(
        "attachment",
        reqwest::multipart::Part::bytes(&b"payload"[..]).file_name("p.bin"),
    );
    let uploaded = server
        .http
        .post(format!("{}{SOURCE}/records/r1/attachment", server.url))
        .basic_auth("editor", Some("editor-password"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let info: Value = uploaded.json().await.unwrap();
    // An attachment is an edit like any other: it needs a review before it is published.
    assert_eq!(server.source().await["status"], "work-in-progress");
    assert_eq!(server.set_status("editor", "to-review").await.status, 200);
    assert_eq!(server.set_status("reviewer", "to-sign").await.status, 200);
    let published = server.verified("main").await;
    assert_eq!(published["changes"][0]["attachment"], info);
    // Deleting the source record (and publishing that) keeps the file the published copy
    // pointed to, for clients that still hold it.
    let deleted = server
        .call(
            Method::DELETE,
            &format!("{SOURCE}/records/r1"),
            Some("editor"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200);
    let file = reqwest::get(format!(
        "{}/attachments/{}",
        server.url,
        info["location"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(&file.bytes().await.unwrap()[..], b"payload");
}
