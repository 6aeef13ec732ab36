//! The whole service on one loopback socket, wired as `syncstack serve` wires it: the
//! storage node, the token server and the identity provider in one axum app, SQLite in a
//! temporary directory, one master secret, the node registered under its public URL. In
//! front of everything sits a fault hook the tests drive (503 + Retry-After, 401) and that
//! logs every storage request it sees.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use identity::IdentityProvider;
use sync_client::auth::{AccessTokenSource, PasswordLogin, TokenServerClient};
use sync_client::keys::{self, KeyBundle};
use sync_client::session::Session;
use sync_client::storage::{NodeCredentials, RawBso, StorageClient};
use sync_client::tier::{Tier1Client, Tier2Client};
use sync_proto::SyncTimestamp;
use sync_proto::token::MasterSecret;
use syncstorage::{AppState, NodeSettings};
use syncstorage_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use tokenserver::verifier::{TrustedIssuer, Verifier};
use tokenserver::{TokenServerSettings, TokenServerState};
use tokenserver_store::TokenStore;
use tokenserver_store::sqlite::SqliteTokenStore;

/// The secret the token server and the node share.
const SECRET: &str = "e2e-master-secret";
/// The local identity provider's `iss`.
const ISSUER: &str = "syncstack-local";
/// The token endpoint (relative to the stack's URL).
pub const TOKEN_PATH: &str = "/1.0/sync/1.5";

/// One storage request as the fault hook saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query, e.g. `/1.5/7/storage/bookmarks?batch=true`.
    pub target: String,
    /// Whether the hook answered it itself (503 or 401) instead of passing it on.
    pub faulted: bool,
}

#[derive(Default)]
struct FaultState {
    /// Answers still to give, in order, before requests pass again.
    planned: VecDeque<Fault>,
    storage: Vec<Seen>,
    token_requests: usize,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Unavailable { retry_after: u64 },
    Unauthorized,
}

/// The test-controlled hook in front of the whole app.
#[derive(Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap()
    }

    /// The next `count` storage requests get 503 with `Retry-After: retry_after`.
    pub fn unavailable(&self, count: usize, retry_after: u64) {
        let mut state = self.lock();
        state.planned.extend(std::iter::repeat_n(
            Fault::Unavailable { retry_after },
            count,
        ));
    }

    /// The next storage request gets 401 (body `0`), as a node that no longer knows the
    /// token answers.
    pub fn unauthorized_once(&self) {
        self.lock().planned.push_back(Fault::Unauthorized);
    }

    /// Every storage request (`/1.5/...`) that reached the hook so far.
    pub fn storage_requests(&self) -> Vec<Seen> {
        self.lock().storage.clone()
    }

    /// How many storage requests reached the hook so far.
    pub fn storage_count(&self) -> usize {
        self.lock().storage.len()
    }

    /// How many token requests (`GET /1.0/sync/1.5`) reached the hook so far.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }
}

async fn fault_hook(State(faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path == TOKEN_PATH {
        faults.lock().token_requests += 1;
    }
    if path.starts_with("/1.5/") {
        let fault = {
            let mut state = faults.lock();
            let fault = state.planned.pop_front();
            let target = request
                .uri()
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or(path);
            state.storage.push(Seen {
                method: request.method().clone(),
                target,
                faulted: fault.is_some(),
            });
            fault
        };
        match fault {
            Some(Fault::Unavailable { retry_after }) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", retry_after.to_string())],
                    "",
                )
                    .into_response();
            }
            Some(Fault::Unauthorized) => {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("content-type", "application/json")
                    .body(Body::from("0"))
                    .unwrap();
            }
            None => {}
        }
    }
    next.run(request).await
}

/// The identity provider's RSA key, generated once for the whole binary (generating one
/// per test would cost seconds on a small machine).
fn shared_identity_key() -> &'static PathBuf {
    static KEY: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        IdentityProvider::open(dir.path(), ISSUER).unwrap();
        let pem = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|ext| ext == "pem"))
            .expect("the identity provider wrote its key");
        (dir, pem)
    })
    .1
}

/// A running stack; stops when the test's runtime ends.
pub struct Stack {
    /// `http://127.0.0.1:<port>`: the node's public URL, the token server and the IdP.
    pub url: String,
    pub idp: IdentityProvider,
    pub tokens: Arc<dyn TokenStore>,
    pub faults: Arc<Faults>,
    _dir: tempfile::TempDir,
}

/// An account of the identity provider with its Sync key.
#[derive(Clone)]
pub struct Account {
    pub name: String,
    pub password: String,
    /// The account key (kB); its fingerprint goes to the token server.
    pub kb: [u8; 32],
    /// The keys_changed_at of the X-KeyID.
    pub keys_changed_at: u64,
}

impl Account {
    pub fn bundle(&self) -> KeyBundle {
        KeyBundle::from_kb(&self.kb)
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    /// Starts the stack; `configure` may change the node's settings.
    pub async fn start_with(configure: impl FnOnce(&mut NodeSettings)) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let secret = MasterSecret::new(SECRET);

        let options = SqliteOptions {
            durability: Durability::Normal,
            ..SqliteOptions::default()
        };
        let store = Arc::new(SqliteStore::open(&dir.path().join("storage.db"), options).unwrap());
        let mut settings = NodeSettings::new(url.parse().unwrap(), secret.clone());
        configure(&mut settings);
        let node = AppState::new(store, settings);

        let idp_dir = dir.path().join("identity");
        std::fs::create_dir(&idp_dir).unwrap();
        let key = shared_identity_key();
        std::fs::copy(key, idp_dir.join(key.file_name().unwrap())).unwrap();
        let idp = IdentityProvider::open(&idp_dir, ISSUER).unwrap();

        let tokens: Arc<dyn TokenStore> =
            Arc::new(SqliteTokenStore::open(&dir.path().join("tokens.db"), true).unwrap());
        tokens.add_node(&url, 100).await.unwrap();
        let jwks = serde_json::to_string(&idp.jwks()).unwrap();
        let trusted =
            TrustedIssuer::from_jwks(idp.issuer(), Some(identity::AUDIENCE.into()), &jwks).unwrap();
        let token_state = TokenServerState {
            store: tokens.clone(),
            verifier: Arc::new(Verifier::new(vec![trusted])),
            settings: Arc::new(TokenServerSettings::new(secret, b"e2e-metrics".to_vec())),
        };

        let faults = Arc::new(Faults::default());
        let app = Router::new()
            .merge(syncstorage::router(node.clone()))
            .merge(tokenserver::router(token_state))
            .merge(identity::router(idp.clone()))
            .layer(from_fn_with_state(faults.clone(), fault_hook));
        tokio::spawn(axum::serve(listener, app).into_future());
        Stack {
            url,
            idp,
            tokens,
            faults,
            _dir: dir,
        }
    }

    /// Creates an account with a password and a random kB.
    pub fn add_account(&self, name: &str) -> Account {
        let password = format!("{name}-password");
        let created = self.idp.add_account(name, Some(&password)).unwrap();
        Account {
            name: name.into(),
            password,
            kb: rand::random(),
            keys_changed_at: created.generation,
        }
    }

    /// Logs in with the account's password, as the CLI does.
    pub fn password_login(&self, account: &Account) -> PasswordLogin {
        PasswordLogin {
            url: self.url.clone(),
            account: account.name.clone(),
            password: account.password.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// A token server client for the account's key, with access tokens from `source`.
    pub fn token_client_with(
        &self,
        account: &Account,
        source: Box<dyn AccessTokenSource>,
    ) -> TokenServerClient {
        TokenServerClient {
            url: self.url.clone(),
            key_id: keys::key_id(&account.kb, account.keys_changed_at),
            source,
            http: reqwest::Client::new(),
        }
    }

    pub fn token_client(&self, account: &Account) -> TokenServerClient {
        self.token_client_with(account, Box::new(self.password_login(account)))
    }

    pub fn storage(&self, account: &Account) -> StorageClient {
        StorageClient::new(NodeCredentials::TokenServer(self.token_client(account)))
    }

    pub fn tier1(&self, account: &Account) -> Tier1Client {
        Tier1Client::new(self.storage(account), account.bundle())
    }

    pub fn tier2(&self, account: &Account) -> Tier2Client {
        Tier2Client::new(self.storage(account), account.bundle())
    }
}

/// The stored (encrypted) record, which must exist.
pub async fn raw(session: &Session, collection: &str, id: &str) -> RawBso {
    session
        .storage()
        .get_record(collection, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{collection}/{id} is missing on the server"))
}

/// The collection's timestamp in info/collections.
pub async fn collection_ts(session: &Session, collection: &str) -> Option<SyncTimestamp> {
    session
        .collections()
        .await
        .unwrap()
        .get(collection)
        .copied()
}

/// Asserts that a result is the expected error variant, showing it otherwise.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err(error) => assert!(matches!(error, $pattern $(if $guard)?), "unexpected error: {error:?}"),
            Ok(value) => panic!("expected an error, got Ok({value:?})"),
        }
    };
}
