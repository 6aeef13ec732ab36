//! Opaque access tokens verified at the issuer's `/v1/verify`: a fake issuer on port 0
//! answers as Mozilla accounts does and counts the calls it gets.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokenserver::remote::{RemoteIssuer, RemoteSettings};

use crate::issuer::Issuer;
use crate::server::TestTokenServer;

const SYNC: &str = "https://identity.mozilla.com/apps/oldsync";
const GOOD: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const PROFILE_ONLY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A fake `/v1/verify`: known tokens get their answer, others a 400 as Mozilla's; `delay`
/// holds every answer back.
struct FakeIssuer {
    url: String,
    calls: Arc<AtomicUsize>,
    tokens_seen: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct FakeState {
    answers: Arc<HashMap<&'static str, Value>>,
    calls: Arc<AtomicUsize>,
    tokens_seen: Arc<std::sync::Mutex<Vec<String>>>,
    delay: Duration,
}

async fn verify(
    State(state): State<FakeState>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    state.tokens_seen.lock().unwrap().push(token.clone());
    tokio::time::sleep(state.delay).await;
    match state.answers.get(token.as_str()) {
        Some(answer) => (StatusCode::OK, Json(answer.clone())),
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 400, "errno": 108, "message": "Invalid token"})),
        ),
    }
}

impl FakeIssuer {
    async fn start(delay: Duration) -> FakeIssuer {
        let answers = HashMap::from([
            (
                GOOD,
                json!({"user": "mozuser1", "client_id": "5882386c6d801776",
                       "scope": [SYNC, "profile"], "generation": 1700000000000i64,
                       "profile_changed_at": 1}),
            ),
            (
                PROFILE_ONLY,
                json!({"user": "mozuser2", "scope": ["profile"]}),
            ),
        ]);
        let calls = Arc::new(AtomicUsize::new(0));
        let tokens_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let state = FakeState {
            answers: Arc::new(answers),
            calls: calls.clone(),
            tokens_seen: tokens_seen.clone(),
            delay,
        };
        let app = axum::Router::new()
            .route("/v1/verify", post(verify))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/verify", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, app).into_future());
        FakeIssuer {
            url,
            calls,
            tokens_seen,
        }
    }

    fn remote(&self, settings: RemoteSettings) -> RemoteIssuer {
        RemoteIssuer::new("https://accounts.example", &self.url, &settings).unwrap()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn server_with(fake: &FakeIssuer, settings: RemoteSettings) -> (Issuer, TestTokenServer) {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start_with_remote(
        &issuer,
        &[("http://node-a.test", 100)],
        fake.remote(settings),
    )
    .await;
    (issuer, server)
}

#[tokio::test]
async fn an_opaque_token_the_issuer_vouches_for_gets_a_token_and_its_answer_is_reused() {
    let fake = FakeIssuer::start(Duration::ZERO).await;
    let (_, server) = server_with(&fake, RemoteSettings::default()).await;
    let first = server.request(GOOD, 1700000000000, "aaaa").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(fake.calls(), 1);
    // The user is the issuer's `user`, with its generation on record.
    let user = server
        .store
        .get_user("mozuser1@api.accounts.firefox.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.current.generation, 1700000000000);
    assert_eq!(user.current.uid, first.uid());

    // Within the cache's lifetime the answer is reused: no second call.
    let second = server.request(GOOD, 1700000000000, "aaaa").await;
    assert_eq!(second.uid(), first.uid());
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn answers_are_asked_again_once_the_cache_forgot_them() {
    let fake = FakeIssuer::start(Duration::ZERO).await;
    let settings = RemoteSettings {
        cache_ttl: Duration::ZERO,
        ..RemoteSettings::default()
    };
    let (_, server) = server_with(&fake, settings).await;
    for _ in 0..2 {
        server.request(GOOD, 1700000000000, "aaaa").await.uid();
    }
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn tokens_the_issuer_refuses_or_that_lack_the_sync_scope_get_401() {
    let fake = FakeIssuer::start(Duration::ZERO).await;
    let (_, server) = server_with(&fake, RemoteSettings::default()).await;
    let unknown = "2222222222222222222222222222222222222222222222222222222222222222";
    for token in [unknown, PROFILE_ONLY] {
        let reply = server.request(token, 1, "aaaa").await;
        reply.assert_error(401, "invalid-credentials", "body", "", "Unauthorized");
    }
    // A refusal is an answer too: asked once per token.
    server.request(unknown, 1, "aaaa").await.assert_error(
        401,
        "invalid-credentials",
        "body",
        "",
        "Unauthorized",
    );
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn a_slow_issuer_is_a_clear_401_within_the_timeout_and_is_not_cached() {
    let fake = FakeIssuer::start(Duration::from_secs(30)).await;
    let settings = RemoteSettings {
        timeout: Duration::from_millis(300),
        ..RemoteSettings::default()
    };
    let (_, server) = server_with(&fake, settings).await;
    let started = Instant::now();
    let reply = server.request(GOOD, 1700000000000, "aaaa").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the request hung"
    );
    reply.assert_error(
        401,
        "invalid-credentials",
        "body",
        "",
        "Unauthorized: the token's issuer could not be reached to verify it",
    );
    server.request(GOOD, 1700000000000, "aaaa").await;
    assert_eq!(
        fake.calls(),
        2,
        "a failure to reach the issuer is not cached"
    );
}

#[tokio::test]
async fn an_issuer_that_is_down_is_a_clear_401() {
    // A port that was bound and released: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/verify", listener.local_addr().unwrap());
    drop(listener);
    let issuer = Issuer::new("https://idp.test", "k1");
    let remote =
        RemoteIssuer::new("https://accounts.example", &url, &RemoteSettings::default()).unwrap();
    let server =
        TestTokenServer::start_with_remote(&issuer, &[("http://node-a.test", 100)], remote).await;
    server.request(GOOD, 1, "aaaa").await.assert_error(
        401,
        "invalid-credentials",
        "body",
        "",
        "Unauthorized: the token's issuer could not be reached to verify it",
    );
}

#[tokio::test]
async fn jwts_are_verified_offline_and_never_sent_to_the_issuer() {
    let fake = FakeIssuer::start(Duration::ZERO).await;
    let (issuer, server) = server_with(&fake, RemoteSettings::default()).await;
    // A good JWT passes offline.
    server
        .request(&issuer.token("acct1", 1234), 1234, "aaaa")
        .await
        .uid();
    // A JWT signed by an unknown key is refused without asking the issuer.
    let stranger = Issuer::new("https://idp.test", "k1");
    server
        .request(&stranger.token("acct1", 1234), 1234, "aaaa")
        .await
        .assert_error(401, "invalid-credentials", "body", "", "Unauthorized");
    assert_eq!(fake.calls(), 0, "{:?}", fake.tokens_seen.lock().unwrap());
}
