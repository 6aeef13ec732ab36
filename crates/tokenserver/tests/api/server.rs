//! The token server on port 0, and a client for it.

use std::future::IntoFuture;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sync_proto::token::MasterSecret;
use tokenserver::remote::RemoteIssuer;
use tokenserver::verifier::{TrustedIssuer, Verifier};
use tokenserver::{TokenServerSettings, TokenServerState};
use tokenserver_store::TokenStore;
use tokenserver_store::postgres::PostgresTokenStore;
use tokenserver_store::sqlite::SqliteTokenStore;

use crate::issuer::Issuer;

pub const SECRET: &str = "token-server-test-secret";

pub struct TestTokenServer {
    pub url: String,
    pub store: Arc<dyn TokenStore>,
    _dir: tempfile::TempDir,
    _schema: Option<postgres_support::TestSchema>,
}

/// The store of a test server: SQLite, or with `SYNCSTACK_TEST_TOKENSERVER_ON_POSTGRES=1` and
/// `SYNCSTACK_TEST_POSTGRES_URL` set, PostgreSQL on a fresh schema (`scripts/test` runs the
/// suite a second time that way).
async fn test_store(
    dir: &std::path::Path,
) -> (Arc<dyn TokenStore>, Option<postgres_support::TestSchema>) {
    let on_postgres = std::env::var("SYNCSTACK_TEST_TOKENSERVER_ON_POSTGRES").as_deref() == Ok("1");
    match std::env::var("SYNCSTACK_TEST_POSTGRES_URL") {
        Ok(base) if on_postgres => {
            let schema = postgres_support::TestSchema::create(&base).await.unwrap();
            let store = PostgresTokenStore::open(schema.url(), 4).await.unwrap();
            (Arc::new(store), Some(schema))
        }
        _ => {
            let store = SqliteTokenStore::open(&dir.join("tokens.db"), true).unwrap();
            (Arc::new(store), None)
        }
    }
}

impl TestTokenServer {
    /// A token server trusting `issuer`, with nodes `(url, capacity)`.
    pub async fn start(issuer: &Issuer, nodes: &[(&str, i64)]) -> TestTokenServer {
        Self::start_with(issuer, nodes, |_| {}).await
    }

    pub async fn start_with(
        issuer: &Issuer,
        nodes: &[(&str, i64)],
        configure: impl FnOnce(&mut TokenServerSettings),
    ) -> TestTokenServer {
        Self::start_full(issuer, nodes, configure, None).await
    }

    /// A token server trusting `issuer` for JWTs and `remote` for opaque tokens.
    pub async fn start_with_remote(
        issuer: &Issuer,
        nodes: &[(&str, i64)],
        remote: RemoteIssuer,
    ) -> TestTokenServer {
        Self::start_full(issuer, nodes, |_| {}, Some(remote)).await
    }

    async fn start_full(
        issuer: &Issuer,
        nodes: &[(&str, i64)],
        configure: impl FnOnce(&mut TokenServerSettings),
        remote: Option<RemoteIssuer>,
    ) -> TestTokenServer {
        let dir = tempfile::tempdir().unwrap();
        let (store, schema) = test_store(dir.path()).await;
        for (url, capacity) in nodes {
            store.add_node(url, *capacity).await.unwrap();
        }
        let trusted =
            TrustedIssuer::from_jwks(&issuer.name, Some("syncstack".into()), &issuer.jwks).unwrap();
        let verifier = Verifier::new(vec![trusted]);
        if let Some(remote) = remote {
            verifier.trust_remote(remote);
        }
        let mut settings = TokenServerSettings::new(MasterSecret::new(SECRET), b"metrics".to_vec());
        configure(&mut settings);
        let state = TokenServerState {
            store: store.clone(),
            verifier: Arc::new(verifier),
            settings: Arc::new(settings),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, tokenserver::router(state)).into_future());
        TestTokenServer {
            url,
            store,
            _dir: dir,
            _schema: schema,
        }
    }

    /// `GET /1.0/sync/1.5` with a bearer token and `X-KeyID: <kca>-<client state>`.
    pub async fn request(
        &self,
        bearer: &str,
        keys_changed_at: i64,
        client_state_hex: &str,
    ) -> Reply {
        let key_id = key_id(keys_changed_at, client_state_hex);
        self.get(
            "/1.0/sync/1.5",
            &[
                ("authorization", &format!("Bearer {bearer}")),
                ("x-keyid", &key_id),
            ],
        )
        .await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }
}

pub fn key_id(keys_changed_at: i64, client_state_hex: &str) -> String {
    format!(
        "{keys_changed_at}-{}",
        URL_SAFE_NO_PAD.encode(hex::decode(client_state_hex).unwrap())
    )
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts an error: status, body status string, and the single error's fields.
    #[track_caller]
    pub fn assert_error(
        &self,
        status: u16,
        status_text: &str,
        location: &str,
        name: &str,
        description: &str,
    ) {
        let expected = serde_json::json!({
            "status": status_text,
            "errors": [{"location": location, "name": name, "description": description}],
        });
        assert_eq!((self.status, &self.body), (status, &expected), "{self:?}");
    }

    pub fn uid(&self) -> u64 {
        assert_eq!(self.status, 200, "{self:?}");
        self.body["uid"].as_u64().unwrap()
    }

    pub fn endpoint(&self) -> &str {
        self.body["api_endpoint"].as_str().unwrap()
    }
}
