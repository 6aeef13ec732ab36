//! The test server of the review workflow's tests: a signing Remote Settings server on a
//! real socket, its accounts and groups, and the calls the tests make as each of them.

use std::sync::Arc;
use std::time::Duration;

use content_signature::DevPki;
use reqwest::Method;
use serde_json::{Value, json};
use settings_server::workflow::{SignerSettings, Workflow};
use settings_server::{KintoSettings, SettingsState};

pub(crate) use crate::reply::Reply;
use crate::reply::send;

pub(crate) const SIGNER_NAME: &str = "remote-settings.content-signature.mozilla.org";
pub(crate) const SOURCE: &str = "/v1/buckets/main-workspace/collections/cfr";

pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) state: SettingsState,
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) pki: DevPki,
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) _schema: Option<postgres_support::TestSchema>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Server {
    /// A server whose signer certificate is valid for `days`, configured by `configure`.
    pub(crate) async fn start(
        days: u64,
        signed: bool,
        configure: impl FnOnce(&mut SignerSettings),
    ) -> Server {
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

    pub(crate) async fn create_collection(&self) {
        self.accounts().await;
        self.source_collection().await;
    }

    pub(crate) async fn accounts(&self) {
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

    pub(crate) async fn source_collection(&self) {
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

    pub(crate) async fn set_members(&self, group: &str, members: &[&str]) {
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

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        send(&self.http, &self.url, method, path, user, body, &[]).await
    }

    pub(crate) async fn get(&self, path: &str, user: Option<&str>) -> Reply {
        self.call(Method::GET, path, user, None).await
    }

    pub(crate) async fn put(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(user), Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(user), Some(body)).await
    }

    /// Sets the source's status as `user`.
    pub(crate) async fn set_status(&self, user: &str, status: &str) -> Reply {
        self.patch(SOURCE, user, json!({"data": {"status": status}}))
            .await
    }

    pub(crate) async fn record(&self, user: &str, id: &str, data: Value) -> Reply {
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
    pub(crate) async fn changeset(&self, bucket: &str) -> Value {
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
    pub(crate) async fn verified(&self, bucket: &str) -> Value {
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
    pub(crate) fn rotate(&self, days: u64) -> String {
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
    pub(crate) fn refused(&self, status: u16, errno: u64, message: &str) {
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

pub(crate) fn ids(changeset: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = changeset["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids
}
