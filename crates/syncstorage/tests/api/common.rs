//! Test harness: a node on a real socket (port 0, temporary SQLite, or a fresh PostgreSQL
//! schema when `SYNCSTACK_TEST_POSTGRES_URL` is set and a test asks for it) and a client
//! that signs every request with Hawk, as a Sync client does.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use postgres_support::TestSchema;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use sync_proto::hawk::{self, RequestTarget};
use sync_proto::token::{self, MasterSecret, Token, TokenPayload};
use syncstorage::{AppState, NodeSettings};
use syncstorage_store::Store;
use syncstorage_store::postgres::{PostgresOptions, PostgresStore};
use syncstorage_store::sqlite::{SqliteOptions, SqliteStore};
use tokio::sync::oneshot;
use url::Url;

pub const SECRET: &str = "test-master-secret";

/// A storage node serving on loopback until dropped.
pub struct TestNode {
    /// The public URL (with any path prefix), without a trailing slash.
    pub url: String,
    /// The socket address the node listens on.
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
    schema: Option<TestSchema>,
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    /// Starts a node; `configure` may change the settings (its public URL is set after).
    pub async fn start_with(configure: impl FnOnce(&mut NodeSettings)) -> TestNode {
        Self::start_at("", configure).await
    }

    /// Starts a node whose public URL has the path `prefix` (e.g. "/sync").
    ///
    /// With `SYNCSTACK_TEST_STORAGE_ON_POSTGRES=1` and `SYNCSTACK_TEST_POSTGRES_URL` set, the
    /// node runs on a fresh PostgreSQL schema instead of SQLite (`scripts/test` runs the
    /// suite a second time that way).
    pub async fn start_at(prefix: &str, configure: impl FnOnce(&mut NodeSettings)) -> TestNode {
        if std::env::var("SYNCSTACK_TEST_STORAGE_ON_POSTGRES").as_deref() == Ok("1")
            && let Ok(base) = std::env::var("SYNCSTACK_TEST_POSTGRES_URL")
        {
            let schema = TestSchema::create(&base).await.unwrap();
            let store = PostgresStore::open(schema.url(), PostgresOptions::default())
                .await
                .unwrap();
            let mut node = Self::start_on(Arc::new(store), prefix, configure).await;
            node.schema = Some(schema);
            return node;
        }
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("storage.db"), SqliteOptions::default()).unwrap();
        let mut node = Self::start_on(Arc::new(store), prefix, configure).await;
        node._dir = Some(dir);
        node
    }

    /// Starts a node on a fresh PostgreSQL schema, or `None` when
    /// `SYNCSTACK_TEST_POSTGRES_URL` is not set (the test then checks nothing).
    pub async fn start_postgres() -> Option<TestNode> {
        let base = std::env::var("SYNCSTACK_TEST_POSTGRES_URL").ok()?;
        let schema = TestSchema::create(&base).await.unwrap();
        let store = PostgresStore::open(schema.url(), PostgresOptions::default())
            .await
            .unwrap();
        let mut node = Self::start_on(Arc::new(store), "", |_| {}).await;
        node.schema = Some(schema);
        Some(node)
    }

    async fn start_on(
        store: Arc<dyn Store>,
        prefix: &str,
        configure: impl FnOnce(&mut NodeSettings),
    ) -> TestNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}{prefix}");
        let mut settings = NodeSettings::new(Url::parse(&url).unwrap(), MasterSecret::new(SECRET));
        configure(&mut settings);
        let state = AppState::new(store, settings);
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = syncstorage::serve(listener, state.clone(), async {
            let _ = stopped.await;
        });
        tokio::spawn(serving.into_future());
        TestNode {
            url,
            addr,
            state,
            stop: Some(stop),
            _dir: None,
            schema: None,
        }
    }

    /// Stops the node and drops its PostgreSQL schema, if it has one.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(schema) = self.schema.take() {
            self.state.store.close().await;
            schema.drop_schema().await.unwrap();
        }
    }

    /// A client for `uid` with a fresh token for this node.
    pub fn client(&self, uid: u64) -> SyncClient {
        SyncClient::new(&self.url, uid, mint(uid, &self.url, 3600))
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn mint(uid: u64, node: &str, duration: u64) -> Token {
    token::mint(
        &MasterSecret::new(SECRET),
        &TokenPayload::new(uid, node, duration),
    )
}

/// A decoded response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// A Sync timestamp header as milliseconds.
    pub fn ts_header(&self, name: &str) -> u64 {
        let text = self
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header"));
        sync_proto::SyncTimestamp::parse_seconds(text)
            .unwrap()
            .as_millis()
    }

    /// Asserts a Weave error: status and bare integer body.
    #[track_caller]
    pub fn assert_weave(&self, status: u16, code: u8) {
        assert_eq!(
            (self.status, self.body.trim()),
            (status, code.to_string().as_str()),
            "{self:?}"
        );
    }
}

/// A request to send.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<(String, Vec<u8>)>,
    pub headers: Vec<(String, String)>,
    pub sign_payload: bool,
    pub sign: bool,
}

/// Signs requests for one user with one token.
#[derive(Clone)]
pub struct SyncClient {
    pub http: reqwest::Client,
    /// Base URL (public URL of the node).
    pub base: String,
    pub uid: u64,
    pub token: Token,
}

impl SyncClient {
    pub fn new(base: &str, uid: u64, token: Token) -> Self {
        SyncClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.trim_end_matches('/').to_owned(),
            uid,
            token,
        }
    }

    /// `/1.5/<uid>` + `rest`.
    pub fn path(&self, rest: &str) -> String {
        format!("/1.5/{}{rest}", self.uid)
    }

    pub fn call(&self, method: Method, rest: &str) -> Call {
        Call {
            method,
            path: self.path(rest),
            body: None,
            headers: Vec::new(),
            sign_payload: false,
            sign: true,
        }
    }

    pub async fn get(&self, rest: &str) -> Reply {
        self.send(self.call(Method::GET, rest)).await
    }

    pub async fn delete(&self, rest: &str) -> Reply {
        self.send(self.call(Method::DELETE, rest)).await
    }

    pub async fn put(&self, rest: &str, body: Value) -> Reply {
        self.send(self.call(Method::PUT, rest).json(&body)).await
    }

    pub async fn post(&self, rest: &str, body: Value) -> Reply {
        self.send(self.call(Method::POST, rest).json(&body)).await
    }

    /// The Authorization header this client would send for `call` to `url`.
    pub fn authorization(&self, call: &Call, url: &Url) -> String {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let target = RequestTarget {
            method: call.method.as_str(),
            path_and_query: &path_and_query,
            host: url.host_str().unwrap(),
            port: url.port_or_known_default().unwrap(),
        };
        let payload = match (&call.body, call.sign_payload) {
            (Some((content_type, body)), true) => Some((content_type.as_str(), body.as_slice())),
            _ => None,
        };
        hawk::sign_request(&self.token.id, self.token.key.as_bytes(), &target, payload)
    }

    pub async fn send(&self, call: Call) -> Reply {
        let url = Url::parse(&format!("{}{}", self.base, call.path)).unwrap();
        let authorization = self.authorization(&call, &url);
        self.send_to(call, &url, Some(authorization)).await
    }

    /// Sends `call` to `url` with a chosen Authorization header.
    pub async fn send_to(&self, call: Call, url: &Url, authorization: Option<String>) -> Reply {
        let mut request = self.http.request(call.method.clone(), url.clone());
        if call.sign
            && let Some(authorization) = authorization
        {
            request = request.header("authorization", authorization);
        }
        for (name, value) in &call.headers {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        if let Some((content_type, body)) = call.body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.expect("request reaches the node");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Call {
    pub fn json(mut self, value: &Value) -> Self {
        self.body = Some((
            "application/json".into(),
            serde_json::to_vec(value).unwrap(),
        ));
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn unsigned(mut self) -> Self {
        self.sign = false;
        self
    }

    pub fn with_payload_hash(mut self) -> Self {
        self.sign_payload = true;
        self
    }
}

/// A record with a payload of `size` bytes.
pub fn record(id: &str, size: usize) -> Value {
    serde_json::json!({"id": id, "payload": "x".repeat(size)})
}
