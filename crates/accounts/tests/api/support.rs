//! A running accounts service and a protocol-level client for it.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use accounts::store::AccountStore;
use accounts::store::postgres::PostgresAccountStore;
use accounts::store::sqlite::SqliteAccountStore;
use accounts::{AccountsService, AccountsSettings, router};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use identity::IdentityProvider;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tempfile::TempDir;

/// One RSA key for the whole run: generating one per test would dominate it.
static KEY_PEM: LazyLock<String> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    IdentityProvider::open(dir.path(), "test").unwrap();
    std::fs::read_to_string(dir.path().join("identity-key.pem")).unwrap()
});

/// A running service, stopped when dropped.
pub struct Server {
    pub base: String,
    pub idp: IdentityProvider,
    pub service: AccountsService,
    pub http: reqwest::Client,
    pub dir: TempDir,
    _schema: Option<postgres_support::TestSchema>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a service with default settings.
pub async fn start() -> Server {
    start_with(AccountsSettings::default()).await
}

/// Starts a service with `settings`, on a fresh data directory.
pub async fn start_with(settings: AccountsSettings) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("identity-key.pem"), KEY_PEM.as_str()).unwrap();
    let idp = IdentityProvider::open(dir.path(), "syncstack-local").unwrap();
    let (store, schema) = test_store(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let public_url = url::Url::parse(&base).unwrap();
    let service = AccountsService::new(store, idp.clone(), settings, &public_url).unwrap();
    let app = router(service.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        base,
        idp,
        service,
        http: reqwest::Client::new(),
        dir,
        _schema: schema,
        task,
    }
}

/// The store of a test server: SQLite, or with `SYNCSTACK_TEST_ACCOUNTS_ON_POSTGRES=1` and
/// `SYNCSTACK_TEST_POSTGRES_URL` set, PostgreSQL on a fresh schema (`scripts/test` runs the
/// suite a second time that way).
async fn test_store(
    dir: &std::path::Path,
) -> (Arc<dyn AccountStore>, Option<postgres_support::TestSchema>) {
    let on_postgres = std::env::var("SYNCSTACK_TEST_ACCOUNTS_ON_POSTGRES").as_deref() == Ok("1");
    match std::env::var("SYNCSTACK_TEST_POSTGRES_URL") {
        Ok(base) if on_postgres => {
            let schema = postgres_support::TestSchema::create(&base).await.unwrap();
            let store = PostgresAccountStore::open(schema.url(), 4).await.unwrap();
            (Arc::new(store), Some(schema))
        }
        _ => {
            let path = dir.join("fxa-accounts.db");
            (
                Arc::new(SqliteAccountStore::open(&path, true).unwrap()),
                None,
            )
        }
    }
}

/// HKDF-SHA256 with onepw's namespace, written from the protocol description.
pub fn kw(ikm: &[u8], name: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Hkdf::<Sha256>::new(Some(&[]), ikm)
        .expand(
            format!("identity.mozilla.com/picl/v1/{name}").as_bytes(),
            &mut out,
        )
        .unwrap();
    out
}

/// The client's side of onepw v1 for one email and password.
pub struct Stretched {
    pub auth_pw: String,
    pub unwrap_b_key: Vec<u8>,
}

pub fn stretch(email: &str, password: &str) -> Stretched {
    let mut quick = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        format!("identity.mozilla.com/picl/v1/quickStretch:{email}").as_bytes(),
        1000,
        &mut quick,
    );
    Stretched {
        auth_pw: hex::encode(kw(&quick, "authPW", 32)),
        unwrap_b_key: kw(&quick, "unwrapBkey", 32),
    }
}

/// A token as the client holds it, with the keys it derives.
#[derive(Clone)]
pub struct Token {
    pub kind: &'static str,
    pub id: String,
    pub auth_key: Vec<u8>,
    pub bundle_key: Vec<u8>,
}

impl Token {
    pub fn new(hex_token: &str, kind: &'static str) -> Self {
        let material = kw(&hex::decode(hex_token).unwrap(), kind, 96);
        Token {
            kind,
            id: hex::encode(&material[..32]),
            auth_key: material[32..64].to_vec(),
            bundle_key: material[64..].to_vec(),
        }
    }

    /// The `Bearer fxs_…` header value.
    pub fn bearer(&self) -> String {
        let prefix = match self.kind {
            "sessionToken" => "fxs",
            "keyFetchToken" => "fxk",
            _ => "fxpc",
        };
        format!("Bearer {prefix}_{}", self.id)
    }
}

/// Opens a key bundle: checks the HMAC, then XORs.
pub fn unbundle(bundle_key: &[u8], bundle: &[u8]) -> Option<Vec<u8>> {
    let (ciphertext, tag) = bundle.split_at(bundle.len() - 32);
    let material = kw(bundle_key, "account/keys", 32 + ciphertext.len());
    let mut mac = Hmac::<Sha256>::new_from_slice(&material[..32]).unwrap();
    mac.update(ciphertext);
    mac.verify_slice(tag).ok()?;
    Some(
        ciphertext
            .iter()
            .zip(&material[32..])
            .map(|(a, b)| a ^ b)
            .collect(),
    )
}

/// A response's status and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: bool,
}

impl Answer {
    /// The errno, asserting the error envelope's shape.
    pub fn errno(&self) -> u64 {
        assert_eq!(
            self.body["code"].as_u64(),
            Some(u64::from(self.status.as_u16())),
            "{}",
            self.body
        );
        assert!(self.body["error"].is_string() && self.body["message"].is_string());
        self.body["errno"].as_u64().expect("an errno")
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional JSON body and Authorization header.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authorization: Option<String>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(auth) = authorization {
            request = request.header("Authorization", auth);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        Answer {
            status,
            body: response.json().await.unwrap(),
            retry_after,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// The Hawk header a client computes for a request (payload hashed when there is one).
    pub fn hawk(&self, token: &Token, method: &str, path: &str, body: Option<&Value>) -> String {
        let url = url::Url::parse(&self.base).unwrap();
        let target = sync_proto::hawk::RequestTarget {
            method,
            path_and_query: path,
            host: url.host_str().unwrap(),
            port: url.port().unwrap(),
        };
        let payload = body.map(|b| b.to_string());
        sync_proto::hawk::sign_request(
            &token.id,
            &token.auth_key,
            &target,
            payload
                .as_deref()
                .map(|p| ("application/json", p.as_bytes())),
        )
    }

    /// A Hawk-signed request.
    pub async fn hawk_call(
        &self,
        token: &Token,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let header = self.hawk(token, method.as_str(), path, body.as_ref());
        self.call(method, path, body, Some(header)).await
    }

    /// Creates an account through the API; its session token.
    pub async fn sign_up(&self, email: &str, password: &str) -> Value {
        let answer = self
            .post(
                "/auth/v1/account/create?keys=true",
                json!({"email": email, "authPW": stretch(email, password).auth_pw}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }

    /// Signs in with keys; the answer's body.
    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/auth/v1/account/login?keys=true",
            json!({"email": email, "authPW": stretch(email, password).auth_pw}),
        )
        .await
    }

    /// Signs in and fetches kB: (session, kB).
    pub async fn login_with_kb(&self, email: &str, password: &str) -> (Token, Vec<u8>) {
        let answer = self.login(email, password).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let session = Token::new(
            answer.body["sessionToken"].as_str().unwrap(),
            "sessionToken",
        );
        let fetch = Token::new(
            answer.body["keyFetchToken"].as_str().unwrap(),
            "keyFetchToken",
        );
        let kb = self.fetch_kb(&fetch, email, password).await;
        (session, kb)
    }

    /// Fetches and unwraps kB with a key fetch token.
    pub async fn fetch_kb(&self, fetch: &Token, email: &str, password: &str) -> Vec<u8> {
        let keys = self
            .hawk_call(fetch, Method::GET, "/auth/v1/account/keys", None)
            .await;
        assert_eq!(keys.status, 200, "{}", keys.body);
        let bundle = hex::decode(keys.body["bundle"].as_str().unwrap()).unwrap();
        let plain = unbundle(&fetch.bundle_key, &bundle).expect("the bundle's HMAC verifies");
        assert_eq!(plain.len(), 64, "kA ‖ wrapKb");
        let unwrap = stretch(email, password).unwrap_b_key;
        plain[32..]
            .iter()
            .zip(&unwrap)
            .map(|(a, b)| a ^ b)
            .collect()
    }
}
