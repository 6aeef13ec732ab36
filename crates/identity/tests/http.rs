//! The provider's HTTP endpoints over a real socket, driven the way a client would.

use std::sync::LazyLock;
use std::time::Duration;

use identity::{AUDIENCE, AccessTokenClaims, IdentityProvider, Jwks, SYNC_SCOPE, router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

const ISSUER: &str = "http://127.0.0.1/identity";

/// A running provider, stopped when dropped.
struct Server {
    idp: IdentityProvider,
    base: String,
    client: reqwest::Client,
    _dir: TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One signing key for every test in this file: generating an RSA key per test would
/// dominate the run. Each server still gets its own data directory.
static KEY_PEM: LazyLock<String> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    IdentityProvider::open(dir.path(), ISSUER).unwrap();
    std::fs::read_to_string(dir.path().join("identity-key.pem")).unwrap()
});

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("identity-key.pem"), KEY_PEM.as_str()).unwrap();
    let idp = IdentityProvider::open(dir.path(), ISSUER).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(idp.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        idp,
        base,
        client: reqwest::Client::new(),
        _dir: dir,
        task,
    }
}

impl Server {
    fn token_request(&self, name: &str, password: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/identity/v1/token", self.base))
            .basic_auth(name, Some(password))
    }

    async fn jwks(&self) -> Jwks {
        self.client
            .get(format!("{}/identity/jwks.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies `token` against the served JWKS, as the token server would.
    async fn verify(&self, token: &str) -> AccessTokenClaims {
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwks = self.jwks().await;
        let jwk = jwks
            .keys
            .iter()
            .find(|jwk| Some(&jwk.kid) == header.kid.as_ref())
            .expect("the token's kid is served");
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
            .unwrap()
            .claims
    }
}

async fn assert_refused(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="syncstack""#
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn serves_the_jwks() {
    let server = start().await;
    let response = server
        .client
        .get(format!("{}/identity/jwks.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "max-age=300");
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], server.idp.kid());
    assert_eq!(key["e"], "AQAB");
    assert!(key["n"].as_str().unwrap().len() > 300);
}

#[tokio::test]
async fn issues_a_token_for_the_right_password() {
    let server = start().await;
    let alice = server.idp.add_account("alice", Some("hunter2")).unwrap();
    let response = server
        .token_request("alice", "hunter2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], SYNC_SCOPE);

    let claims = server.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.sub, alice.uid);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.client_id, "syncstack");
    assert_eq!(claims.scope, SYNC_SCOPE);
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.fxa_generation, alice.generation);
}

#[tokio::test]
async fn refuses_a_wrong_password() {
    let server = start().await;
    server.idp.add_account("alice", Some("hunter2")).unwrap();
    let response = server
        .token_request("alice", "hunter3")
        .send()
        .await
        .unwrap();
    assert_refused(response).await;
}

#[tokio::test]
async fn refuses_an_unknown_account() {
    let server = start().await;
    let response = server
        .token_request("nobody", "hunter2")
        .send()
        .await
        .unwrap();
    assert_refused(response).await;
}

#[tokio::test]
async fn refuses_an_account_without_a_password() {
    let server = start().await;
    server.idp.add_account("robot", None).unwrap();
    for password in ["", "anything"] {
        let response = server
            .token_request("robot", password)
            .send()
            .await
            .unwrap();
        assert_refused(response).await;
    }
}

#[tokio::test]
async fn refuses_missing_or_malformed_credentials() {
    let server = start().await;
    let url = format!("{}/identity/v1/token", server.base);
    assert_refused(server.client.post(&url).send().await.unwrap()).await;
    let response = server
        .client
        .post(&url)
        .header("authorization", "Bearer abc")
        .send()
        .await
        .unwrap();
    assert_refused(response).await;
}

#[tokio::test]
async fn honours_scope_and_duration_from_the_body() {
    let server = start().await;
    server.idp.add_account("alice", Some("hunter2")).unwrap();
    let scope = format!("profile {SYNC_SCOPE}");
    let response = server
        .token_request("alice", "hunter2")
        .json(&serde_json::json!({ "scope": scope, "duration": 120 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["scope"], scope.as_str());
    let claims = server.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.scope, scope);
    assert_eq!(claims.exp - claims.iat, 120);

    let response = server
        .token_request("alice", "hunter2")
        .json(&serde_json::json!({ "duration": 86_401 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn next_token_carries_a_bumped_generation() {
    let server = start().await;
    let alice = server.idp.add_account("alice", Some("hunter2")).unwrap();
    let token = |server: &Server| {
        let request = server.token_request("alice", "hunter2");
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let before = server.verify(&token(&server).await).await;
    assert_eq!(before.fxa_generation, alice.generation);

    let bumped = server.idp.bump_generation("alice").unwrap();
    assert!(bumped.generation > alice.generation);
    let after = server.verify(&token(&server).await).await;
    assert_eq!(after.fxa_generation, bumped.generation);
    assert_eq!(after.sub, before.sub, "the uid does not change");
}

#[tokio::test]
async fn api_issued_tokens_verify_against_the_served_jwks() {
    // The CLI issues tokens without HTTP; the token server must accept those too.
    let server = start().await;
    let alice = server.idp.add_account("alice", None).unwrap();
    let token = server
        .idp
        .issue_token("alice", SYNC_SCOPE, Duration::from_secs(60))
        .unwrap();
    let claims = server.verify(&token).await;
    assert_eq!(claims.sub, alice.uid);
}
