//! The stack the tests run against: syncstack's real Remote Settings server (review
//! workflow and signer, SQLite, a development PKI) on a socket, behind a proxy the test
//! controls. The client only ever talks to the proxy; the x5u chains and the attachment
//! base URL point at the proxy too, so every byte the client reads can be tampered with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use content_signature::DevPki;
use serde_json::{Value, json};
use settings_client::{Client, ClientConfig};
use settings_server::workflow::{SignerSettings, Workflow};
use settings_server::{KintoSettings, SettingsState};
use settings_store::sqlite::SqliteSettingsStore;

pub const SIGNER_NAME: &str = "remote-settings.content-signature.mozilla.org";
pub const WORKSPACE: &str = "/v1/buckets/main-workspace/collections/cfr";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the proxy does to a response whose path and query contain a pattern.
#[derive(Clone)]
pub enum Tamper {
    /// Edit the JSON body.
    Json(Arc<dyn Fn(&mut Value) + Send + Sync>),
    /// Replace the body.
    Body(Vec<u8>),
    /// Answer this instead of asking the server.
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Add a header to the server's answer.
    Header(&'static str, String),
    /// Send the headers and half the body, then break the connection.
    Cut,
}

struct Rule {
    pattern: String,
    tamper: Tamper,
    /// How many more responses it applies to; None: all.
    remaining: Option<usize>,
}

#[derive(Default)]
pub struct ProxyState {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    hits: Mutex<Vec<String>>,
}

impl ProxyState {
    /// Tampers with every response matching `pattern` from now on.
    pub fn always(&self, pattern: &str, tamper: Tamper) {
        self.add(pattern, tamper, None);
    }

    /// Tampers with the next `times` responses matching `pattern`.
    pub fn times(&self, pattern: &str, times: usize, tamper: Tamper) {
        self.add(pattern, tamper, Some(times));
    }

    fn add(&self, pattern: &str, tamper: Tamper, remaining: Option<usize>) {
        self.rules.lock().unwrap().push(Rule {
            pattern: pattern.to_owned(),
            tamper,
            remaining,
        });
    }

    /// Stops tampering.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// The paths (with queries) requested so far.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    fn take_rule(&self, target: &str) -> Option<Tamper> {
        let mut rules = self.rules.lock().unwrap();
        let index = rules.iter().position(|r| target.contains(&r.pattern))?;
        let tamper = rules[index].tamper.clone();
        if let Some(remaining) = &mut rules[index].remaining {
            *remaining -= 1;
            if *remaining == 0 {
                rules.remove(index);
            }
        }
        Some(tamper)
    }
}

async fn forward(State(proxy): State<Arc<ProxyState>>, request: Request) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    proxy.hits.lock().unwrap().push(target.clone());
    let tamper = proxy.take_rule(&target);
    if let Some(Tamper::Respond {
        status,
        headers,
        body,
    }) = &tamper
    {
        let mut response = Response::builder().status(*status);
        for (name, value) in headers {
            response = response.header(*name, value);
        }
        return response.body(Body::from(body.clone())).unwrap();
    }
    let upstream = reqwest::get(format!("{}{target}", proxy.upstream))
        .await
        .unwrap();
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let body = upstream.bytes().await.unwrap().to_vec();
    match tamper {
        Some(Tamper::Json(edit)) => {
            let mut value: Value = serde_json::from_slice(&body).unwrap();
            edit(&mut value);
            response
                .body(Body::from(serde_json::to_vec(&value).unwrap()))
                .unwrap()
        }
        Some(Tamper::Body(replacement)) => response.body(Body::from(replacement)).unwrap(),
        Some(Tamper::Header(name, value)) => {
            response.header(name, value).body(Body::from(body)).unwrap()
        }
        Some(Tamper::Cut) => {
            let half = bytes::Bytes::from(body[..body.len() / 2].to_vec());
            let stream = futures::stream::iter(vec![
                Ok(half),
                Err(std::io::Error::other("connection cut by the test proxy")),
            ]);
            response
                .header("content-length", body.len().to_string())
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Some(Tamper::Respond { .. }) | None => response.body(Body::from(body)).unwrap(),
    }
}

/// The server, the proxy in front of it, and the PKI the server signs with.
pub struct Stack {
    pub upstream: String,
    pub proxy_url: String,
    pub proxy: Arc<ProxyState>,
    pub state: SettingsState,
    pub workflow: Arc<Workflow>,
    pub pki: DevPki,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Stack {
    /// A signing server with the collection `main/cfr` published (empty) and `admin` able
    /// to edit and approve it.
    pub async fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSettingsStore::open(&dir.path().join("server.db"), true).unwrap();
        let server_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = format!("http://{}", server_listener.local_addr().unwrap());
        let proxy_url = format!("http://{}", proxy_listener.local_addr().unwrap());
        let pki =
            content_signature::init_dev_pki(SIGNER_NAME, Duration::from_secs(30 * 86_400), now())
                .unwrap();
        let settings = SignerSettings {
            to_review_enabled: false,
            allow_self_approval: true,
            ..SignerSettings::default()
        };
        // The x5u chains are published under the proxy's URL, as behind a CDN.
        let workflow = Arc::new(
            Workflow::with_keys(
                settings,
                &proxy_url,
                Some((&pki.signer_key_pem, &pki.chain_pem)),
            )
            .unwrap(),
        );
        let kinto = KintoSettings {
            attachment_base_path: Some(dir.path().join("attachments").display().to_string()),
            attachment_base_url: Some(format!("{proxy_url}/attachments/")),
            ..KintoSettings::default()
        };
        let state = SettingsState::new(Arc::new(store), kinto).with_hooks(workflow.clone());
        let app = settings_server::router(state.clone());
        tokio::spawn(async move { axum::serve(server_listener, app).await });
        let proxy = Arc::new(ProxyState {
            upstream: upstream.clone(),
            ..ProxyState::default()
        });
        let proxy_app = axum::Router::new()
            .fallback(forward)
            .with_state(proxy.clone());
        tokio::spawn(async move { axum::serve(proxy_listener, proxy_app).await });
        let stack = Stack {
            upstream,
            proxy_url,
            proxy,
            state,
            workflow,
            pki,
            dir,
            http: reqwest::Client::new(),
        };
        stack.create_collection().await;
        stack
    }

    async fn create_collection(&self) {
        let account = self
            .http
            .put(format!("{}/v1/accounts/admin", self.upstream))
            .json(&json!({"data": {"password": "admin-password"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(account.status(), 201);
        self.write("PUT", "/v1/buckets/main-workspace", json!({}))
            .await;
        self.write("PUT", WORKSPACE, json!({})).await;
        self.write(
            "PATCH",
            "/v1/buckets/main-workspace/groups/cfr-reviewers",
            json!({"data": {"members": ["account:admin"]}}),
        )
        .await;
    }

    /// Sends a write as `admin` straight to the server; asserts it succeeded.
    pub async fn write(&self, method: &str, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.upstream))
            .basic_auth("admin", Some("admin-password"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    /// Writes records into the workspace collection (without publishing).
    pub async fn put_records(&self, records: &[Value]) {
        for record in records {
            let id = record["id"].as_str().unwrap();
            let mut data = record.clone();
            data.as_object_mut().unwrap().remove("id");
            self.write(
                "PUT",
                &format!("{WORKSPACE}/records/{id}"),
                json!({ "data": data }),
            )
            .await;
        }
    }

    /// Deletes a record of the workspace collection (without publishing).
    pub async fn delete_record(&self, id: &str) {
        self.write("DELETE", &format!("{WORKSPACE}/records/{id}"), Value::Null)
            .await;
    }

    /// Publishes the workspace to `main/cfr` and signs it.
    pub async fn publish(&self) {
        self.write("PATCH", WORKSPACE, json!({"data": {"status": "to-sign"}}))
            .await;
    }

    /// Writes `records` and publishes them; returns the published timestamp.
    pub async fn publish_records(&self, records: &[Value]) -> u64 {
        self.put_records(records).await;
        self.publish().await;
        self.published_timestamp().await
    }

    /// The records timestamp of `main/cfr`, read straight from the server.
    pub async fn published_timestamp(&self) -> u64 {
        self.changeset(None).await["timestamp"].as_u64().unwrap()
    }

    /// The changeset of `main/cfr`, straight from the server.
    pub async fn changeset(&self, since: Option<u64>) -> Value {
        let mut url = format!(
            "{}/v1/buckets/main/collections/cfr/changeset?_expected=0",
            self.upstream
        );
        if let Some(since) = since {
            url.push_str(&format!("&_since={since}"));
        }
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Signs with a new signer certificate, issued by the same intermediate for
    /// `signer_name` over `[not_before, not_after]`, and re-signs every collection: the
    /// signature's x5u changes, so clients fetch the new chain.
    pub async fn rotate(&self, signer_name: &str, not_before: u64, not_after: u64) -> String {
        let (cert, key) = content_signature::issue_signer(
            &self.pki.intermediate_pem,
            &self.pki.intermediate_key_pem,
            signer_name,
            not_before,
            not_after,
        )
        .unwrap();
        let chain = format!("{cert}{}{}", self.pki.intermediate_pem, self.pki.root_pem);
        self.workflow.install_keys(&key, &chain).unwrap();
        self.workflow.resign_all(&self.state).await.unwrap();
        chain
    }

    /// The current signature's x5u, as published.
    pub async fn x5u(&self) -> String {
        let changeset = self.changeset(None).await;
        changeset["metadata"]["signature"]["x5u"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A client of this stack (through the proxy), pinned to this stack's root, with its
    /// own database under the stack's directory.
    pub fn client(&self, name: &str) -> Client {
        Client::open(self.client_config(name)).unwrap()
    }

    pub fn client_config(&self, name: &str) -> ClientConfig {
        ClientConfig::new(
            format!("{}/v1", self.proxy_url).parse().unwrap(),
            self.pki.root_sha256_bytes(),
            self.dir.path().join(name).join("settings.db"),
        )
    }
}

/// `n` records `r000`, `r001`, ... with a field `n` and a field `tag`.
pub fn records(range: std::ops::Range<usize>, tag: &str) -> Vec<Value> {
    range
        .map(|n| json!({"id": format!("r{n:03}"), "n": n, "tag": tag}))
        .collect()
}
