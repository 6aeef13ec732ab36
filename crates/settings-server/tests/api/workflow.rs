//! The review workflow and content signer over a real socket: editors, reviewers, the
//! preview and destination copies, signatures checked as a client checks them (the x5u
//! chain fetched from the server, the root pinned by its SHA-256).

use std::sync::Arc;
use std::time::Duration;

use content_signature::DevPki;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use settings_server::workflow::{SignerSettings, Workflow};
use settings_server::{KintoSettings, SettingsState};

const SIGNER_NAME: &str = "remote-settings.content-signature.mozilla.org";
const SOURCE: &str = "/v1/buckets/main-workspace/collections/cfr";

pub(crate) struct Server {
    url: String,
    http: reqwest::Client,
    state: SettingsState,
    workflow: Arc<Workflow>,
    pki: DevPki,
    _dir: tempfile::TempDir,
    _schema: Option<postgres_support::TestSchema>,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Server {
    /// A server whose signer certificate is valid for `days`, configured by `configure`.
    async fn start(days: u64, signed: bool, configure: impl FnOnce(&mut SignerSettings)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (store, schema) = crate::test_store(dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let pki =
            content_signature::init_dev_pki(SIGNER_NAME, Duration::from_secs(days * 86_400), now())
                .unwrap();
        let mut settings = SignerSettings::default();
        configure(&mut settings);
        let keys = signed.then_some((pki.signer_key_pem.as_str(), pki.chain_pem.as_str()));
        let workflow = Arc::new(Workflow::with_keys(settings, &url, keys).unwrap());
        let kinto = KintoSettings {
            attachment_base_path: Some(dir.path().join("attachments").display().to_string()),
            ..KintoSettings::default()
        };
        let state = SettingsState::new(store, kinto).with_hooks(workflow.clone());
        let app = settings_server::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            url,
            http: reqwest::Client::new(),
            state,
            workflow,
            pki,
            _dir: dir,
            _schema: schema,
        }
    }

    /// A signing server with `cfr` under review: `admin` created it, `editor` and
    /// `reviewer` are in its groups, `outsider` has no permission.
    pub(crate) async fn with_collection() -> Server {
        let server = Server::start(30, true, |_| {}).await;
        server.create_collection().await;
        server
    }

    async fn create_collection(&self) {
        self.accounts().await;
        self.source_collection().await;
    }

    async fn accounts(&self) {
        for name in ["admin", "editor", "reviewer", "outsider"] {
            let reply = self
                .call(
                    Method::PUT,
                    &format!("/v1/accounts/{name}"),
                    None,
                    Some(json!({"data": {"password": format!("{name}-password")}})),
                )
                .await;
            assert_eq!(reply.status, 201, "{:?}", reply.body);
        }
    }

    async fn source_collection(&self) {
        let bucket = self
            .put("/v1/buckets/main-workspace", "admin", json!({}))
            .await;
        assert_eq!(bucket.status, 201, "{:?}", bucket.body);
        let collection = self.put(SOURCE, "admin", json!({})).await;
        assert_eq!(collection.status, 201, "{:?}", collection.body);
        for (group, member) in [("cfr-editors", "editor"), ("cfr-reviewers", "reviewer")] {
            self.set_members(group, &[member]).await;
        }
    }

    async fn set_members(&self, group: &str, members: &[&str]) {
        let members: Vec<String> = members.iter().map(|m| format!("account:{m}")).collect();
        let reply = self
            .patch(
                &format!("/v1/buckets/main-workspace/groups/{group}"),
                "admin",
                json!({"data": {"members": members}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(user) = user {
            request = request.basic_auth(user, Some(format!("{user}-password")));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    pub(crate) async fn get(&self, path: &str, user: Option<&str>) -> Reply {
        self.call(Method::GET, path, user, None).await
    }

    async fn put(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(user), Some(body)).await
    }

    async fn patch(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(user), Some(body)).await
    }

    /// Sets the source's status as `user`.
    async fn set_status(&self, user: &str, status: &str) -> Reply {
        self.patch(SOURCE, user, json!({"data": {"status": status}}))
            .await
    }

    async fn record(&self, user: &str, id: &str, data: Value) -> Reply {
        self.put(
            &format!("{SOURCE}/records/{id}"),
            user,
            json!({"data": data}),
        )
        .await
    }

    /// The source collection's metadata (as the admin sees it).
    pub(crate) async fn source(&self) -> Value {
        let reply = self.get(SOURCE, Some("admin")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["data"].clone()
    }

    /// An anonymous client's changeset of `bucket/cfr`.
    async fn changeset(&self, bucket: &str) -> Value {
        let reply = self
            .get(
                &format!("/v1/buckets/{bucket}/collections/cfr/changeset?_expected=0"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body
    }

    /// Fetches `bucket/cfr` as a client does and checks its signature: the x5u chain from
    /// the URL in the metadata, the root pinned by the PKI's SHA-256. Returns the
    /// changeset.
    async fn verified(&self, bucket: &str) -> Value {
        let changeset = self.changeset(bucket).await;
        let signature = &changeset["metadata"]["signature"];
        assert_eq!(signature["mode"], "p384ecdsa");
        assert_eq!(changeset["metadata"]["signatures"], json!([signature]));
        let x5u = signature["x5u"].as_str().expect("an x5u URL");
        assert!(
            x5u.starts_with(&format!("{}/v1/__certs__/{SIGNER_NAME}-", self.url)),
            "{x5u}"
        );
        let chain = self.http.get(x5u).send().await.unwrap();
        assert_eq!(chain.status(), 200);
        let chain = chain.text().await.unwrap();
        content_signature::verify(
            changeset["changes"].as_array().unwrap(),
            changeset["timestamp"].as_u64().unwrap(),
            signature["signature"].as_str().unwrap(),
            &chain,
            &self.pki.root_sha256_bytes(),
            SIGNER_NAME,
            now(),
        )
        .unwrap_or_else(|e| panic!("{bucket}: {e}"));
        changeset
    }

    /// Rotates the signing certificate (same root) and returns its chain.
    fn rotate(&self, days: u64) -> String {
        let (cert, key) = content_signature::issue_signer(
            &self.pki.intermediate_pem,
            &self.pki.intermediate_key_pem,
            SIGNER_NAME,
            now() - 600,
            now() + days * 86_400,
        )
        .unwrap();
        let chain = format!("{cert}{}{}", self.pki.intermediate_pem, self.pki.root_pem);
        self.workflow.install_keys(&key, &chain).unwrap();
        chain
    }

    /// Editor edits, asks for a review, the reviewer approves.
    pub(crate) async fn publish(&self, records: &[(&str, Value)]) {
        for (id, data) in records {
            let reply = self.record("editor", id, data.clone()).await;
            assert!(reply.status.is_success(), "{:?}", reply.body);
        }
        assert_eq!(self.set_status("editor", "to-review").await.status, 200);
        assert_eq!(self.set_status("reviewer", "to-sign").await.status, 200);
        assert_eq!(self.source().await["status"], "signed");
    }
}

impl Reply {
    #[track_caller]
    fn refused(&self, status: u16, errno: u64, message: &str) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.body);
        assert_eq!(self.body["errno"], errno, "{:?}", self.body);
        assert_eq!(self.body["code"], status);
        assert!(
            self.body["message"]
                .as_str()
                .unwrap_or("")
                .contains(message),
            "{:?}",
            self.body
        );
    }
}

fn ids(changeset: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = changeset["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids
}

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
