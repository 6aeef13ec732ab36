//! Signing in to a Mozilla-accounts-compatible service (syncstack's accounts service, or
//! any server speaking the same onepw + OAuth subset) the way Firefox does, so that a
//! client and Firefox share one account key (kB) and read each other's data.
//!
//! [`AccountsClient::sign_in`] stretches the password (`sync_proto::onepw`: PBKDF2, then
//! HKDF into `authPW` and `unwrapBKey`), logs in with `?keys=true`, fetches the key bundle
//! with the single-use key fetch token (Hawk-signed; the bundle's HMAC is checked before
//! anything is unwrapped), unwraps kB, reads the oldsync key's rotation time (the
//! `keys_changed_at` of `X-KeyID`) and asks for an offline OAuth grant (`fxa-credentials`,
//! scope oldsync). It keeps only the refresh token: it can mint oldsync access tokens and
//! nothing else (no key fetch, no password change, no device changes), and it is revocable
//! on its own. The session is destroyed before returning. [`RefreshTokenLogin`] then
//! gets access tokens from the refresh token.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use sync_proto::hawk::{self, RequestTarget};
use sync_proto::onepw::{ClientKeys, KEYS_NAMESPACE, TokenKeys, TokenKind, unbundle, xor32};

use crate::auth::AccessTokenSource;
use crate::error::ClientError;

/// Firefox desktop's OAuth client id; the accounts service grants oldsync to it.
pub const FIREFOX_CLIENT_ID: &str = "5882386c6d801776";
/// The scope that grants Sync.
pub const OLDSYNC_SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";

/// Mozilla accounts' errnos a person can act on.
const ERRNO_UNKNOWN_ACCOUNT: u64 = 102;
const ERRNO_INCORRECT_PASSWORD: u64 = 103;
const ERRNO_THROTTLED: u64 = 114;
const ERRNO_INCORRECT_EMAIL_CASE: u64 = 120;

/// An accounts service's auth API (`…/auth/v1`).
#[derive(Clone)]
pub struct AccountsClient {
    /// The auth server's base URL with its version, e.g. `https://host/auth/v1`.
    pub auth_url: String,
    /// HTTP client.
    pub http: reqwest::Client,
}

/// What a sign-in yields.
pub struct SignedIn {
    /// The account's uid.
    pub uid: String,
    /// The address as the account spells it (sign-in may have corrected its case).
    pub email: String,
    /// The account key.
    pub kb: [u8; 32],
    /// When the oldsync key last changed, in ms: the `keys_changed_at` of `X-KeyID`.
    pub keys_changed_at: u64,
    /// An offline grant of the oldsync scope.
    pub refresh_token: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("uid", &self.uid)
            .field("keys_changed_at", &self.keys_changed_at)
            .finish_non_exhaustive()
    }
}

/// A session and key fetch token of one login, with the stretched password.
struct Session {
    uid: String,
    email: String,
    keys: ClientKeys,
    session: [u8; 32],
    key_fetch: [u8; 32],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginAnswer {
    uid: String,
    session_token: String,
    key_fetch_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    errno: Option<u64>,
    message: Option<String>,
    email: Option<String>,
}

impl AccountsClient {
    /// The accounts service announced at `server`'s origin by
    /// `/.well-known/fxa-client-configuration`, as Firefox finds it; `None` when the origin
    /// serves no such document (no accounts service there).
    pub async fn discover(
        http: &reqwest::Client,
        server: &str,
    ) -> Result<Option<AccountsClient>, ClientError> {
        let mut url = url::Url::parse(server)
            .map_err(|e| ClientError::Protocol(format!("{server:?} is not a URL: {e}")))?;
        url.set_path("/.well-known/fxa-client-configuration");
        url.set_query(None);
        let response = http.get(url).send().await?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let Ok(config) = response.json::<Value>().await else {
            return Ok(None);
        };
        Ok(config["auth_server_base_url"].as_str().map(|base| {
            let base = base.trim_end_matches('/');
            let auth_url = if base.ends_with("/v1") {
                base.to_owned()
            } else {
                format!("{base}/v1")
            };
            AccountsClient {
                auth_url,
                http: http.clone(),
            }
        }))
    }

    /// Signs in as Firefox does and returns kB, its rotation time and a refresh token.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<SignedIn, ClientError> {
        let session = self.login(email, password).await?;
        let result = self.keys_and_grant(&session).await;
        // The refresh token is all that is kept; the session would be a broader credential.
        let _ = self
            .hawk_json(
                Method::POST,
                "session/destroy",
                &session.session,
                TokenKind::Session,
                Some(json!({})),
            )
            .await;
        result
    }

    /// Makes `kb` the account's key (the CLI's migration of a key it made before it signed
    /// in through the account): a password change keeping the password, carrying `kb`
    /// wrapped under it, marked `keysChanged` so that keys_changed_at moves and the token
    /// server accepts the key's fingerprint. Every session of the account (Firefox's
    /// included) is revoked, as by any password change.
    pub async fn replace_kb(
        &self,
        email: &str,
        password: &str,
        kb: &[u8; 32],
    ) -> Result<(), ClientError> {
        let session = self.login(email, password).await?;
        let auth_pw = hex::encode(session.keys.auth_pw);
        let start = self
            .hawk_json(
                Method::POST,
                "password/change/start",
                &session.session,
                TokenKind::Session,
                Some(json!({"email": session.email, "oldAuthPW": auth_pw})),
            )
            .await?;
        let change_token = token_field(&start, "passwordChangeToken")?;
        let wrap_kb = xor32(kb, &session.keys.unwrap_b_key);
        self.hawk_json(
            Method::POST,
            "password/change/finish",
            &change_token,
            TokenKind::PasswordChange,
            Some(json!({
                "authPW": auth_pw,
                "wrapKb": hex::encode(wrap_kb),
                "keysChanged": true,
            })),
        )
        .await?;
        Ok(())
    }

    /// Revokes a refresh token (one a sign-in gave and nobody will use).
    pub async fn destroy_refresh_token(&self, refresh_token: &str) -> Result<(), ClientError> {
        let response = self
            .http
            .post(format!("{}/oauth/destroy", self.auth_url))
            .json(&json!({"client_id": FIREFOX_CLIENT_ID, "token": refresh_token}))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(ClientError::Login(format!(
                "oauth/destroy answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    /// `account/login?keys=true`, retrying once with the address's stored case (errno 120).
    async fn login(&self, email: &str, password: &str) -> Result<Session, ClientError> {
        let mut email = email.to_owned();
        for _ in 0..2 {
            let keys = ClientKeys::derive(&email, password);
            let response = self
                .http
                .post(format!("{}/account/login?keys=true", self.auth_url))
                .json(&json!({"email": email, "authPW": hex::encode(keys.auth_pw)}))
                .send()
                .await?;
            if response.status().is_success() {
                let answer: LoginAnswer = response.json().await?;
                let key_fetch = answer.key_fetch_token.ok_or_else(|| {
                    ClientError::Protocol("the login answer has no keyFetchToken".into())
                })?;
                return Ok(Session {
                    uid: answer.uid,
                    email,
                    keys,
                    session: hex32(&answer.session_token, "sessionToken")?,
                    key_fetch: hex32(&key_fetch, "keyFetchToken")?,
                });
            }
            let status = response.status().as_u16();
            let error: ErrorAnswer = response.json().await.unwrap_or(ErrorAnswer {
                errno: None,
                message: None,
                email: None,
            });
            match (error.errno, error.email) {
                (Some(ERRNO_INCORRECT_EMAIL_CASE), Some(stored)) if stored != email => {
                    email = stored;
                }
                (errno, _) => return Err(login_error(&email, status, errno, error.message)),
            }
        }
        Err(ClientError::Login(format!(
            "the accounts service keeps asking for another spelling of {email}"
        )))
    }

    /// The key bundle, the oldsync key's rotation time and an offline oldsync grant.
    async fn keys_and_grant(&self, session: &Session) -> Result<SignedIn, ClientError> {
        let answer = self
            .hawk_json(
                Method::GET,
                "account/keys",
                &session.key_fetch,
                TokenKind::KeyFetch,
                None,
            )
            .await?;
        let bundle = answer["bundle"]
            .as_str()
            .and_then(|b| hex::decode(b).ok())
            .ok_or_else(|| ClientError::Protocol("account/keys gave no hex bundle".into()))?;
        let bundle_key = TokenKeys::derive(&session.key_fetch, TokenKind::KeyFetch).bundle_key;
        let plain = unbundle(&bundle_key, KEYS_NAMESPACE, &bundle)
            .filter(|plain| plain.len() == 64)
            .ok_or_else(|| ClientError::Protocol("the key bundle failed its MAC check".into()))?;
        let wrap_kb: [u8; 32] = plain[32..].try_into().expect("64-byte bundle");
        let kb = xor32(&wrap_kb, &session.keys.unwrap_b_key);

        let scoped = self
            .hawk_json(
                Method::POST,
                "account/scoped-key-data",
                &session.session,
                TokenKind::Session,
                Some(json!({"client_id": FIREFOX_CLIENT_ID, "scope": OLDSYNC_SCOPE})),
            )
            .await?;
        let keys_changed_at = scoped[OLDSYNC_SCOPE]["keyRotationTimestamp"]
            .as_u64()
            .ok_or_else(|| {
                ClientError::Protocol("scoped-key-data has no oldsync rotation time".into())
            })?;

        let grant = self
            .hawk_json(
                Method::POST,
                "oauth/token",
                &session.session,
                TokenKind::Session,
                Some(json!({
                    "grant_type": "fxa-credentials",
                    "client_id": FIREFOX_CLIENT_ID,
                    "scope": OLDSYNC_SCOPE,
                    "access_type": "offline",
                })),
            )
            .await?;
        let refresh_token = grant["refresh_token"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("the grant has no refresh_token".into()))?
            .to_owned();
        Ok(SignedIn {
            uid: session.uid.clone(),
            email: session.email.clone(),
            kb,
            keys_changed_at,
            refresh_token,
        })
    }

    /// A Hawk-signed request with `token`'s keys (MAC over the body too), answered in JSON.
    async fn hawk_json(
        &self,
        method: Method,
        path: &str,
        token: &[u8; 32],
        kind: TokenKind,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = url::Url::parse(&format!("{}/{path}", self.auth_url))
            .map_err(|e| ClientError::Protocol(format!("accounts URL: {e}")))?;
        let keys = TokenKeys::derive(token, kind);
        let body = body.map(|b| b.to_string().into_bytes());
        let target = RequestTarget {
            method: method.as_str(),
            path_and_query: url.path(),
            host: url.host_str().unwrap_or(""),
            port: url.port_or_known_default().unwrap_or(80),
        };
        let payload = body.as_deref().map(|b| ("application/json", b));
        let authorization =
            hawk::sign_request(&hex::encode(keys.id), &keys.auth_key, &target, payload);
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", authorization);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let error: Option<ErrorAnswer> = response.json().await.ok();
            let (errno, message) = error.map_or((None, None), |e| (e.errno, e.message));
            return Err(ClientError::Login(format!(
                "{path}: {} ({status}, errno {})",
                message.unwrap_or_else(|| "refused".into()),
                errno.map_or("none".into(), |n| n.to_string())
            )));
        }
        Ok(response.json().await?)
    }
}

/// Gets oldsync access tokens with a refresh token.
pub struct RefreshTokenLogin {
    /// Where the token endpoint is.
    pub accounts: AccountsClient,
    /// The refresh token of [`SignedIn`].
    pub refresh_token: String,
}

#[async_trait]
impl AccessTokenSource for RefreshTokenLogin {
    async fn access_token(&self) -> Result<String, ClientError> {
        let response = self
            .accounts
            .http
            .post(format!("{}/oauth/token", self.accounts.auth_url))
            .json(&json!({
                "grant_type": "refresh_token",
                "client_id": FIREFOX_CLIENT_ID,
                "refresh_token": self.refresh_token,
                "scope": OLDSYNC_SCOPE,
            }))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(ClientError::Login(format!(
                "the accounts service refused the saved sign-in ({}); sign in again with `syncstack client login --account EMAIL`",
                response.status()
            )));
        }
        let answer: Value = response.json().await?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("the token answer has no access_token".into()))
    }
}

/// The error a person reads for a refused login.
fn login_error(
    email: &str,
    status: u16,
    errno: Option<u64>,
    message: Option<String>,
) -> ClientError {
    ClientError::Login(match errno {
        Some(ERRNO_INCORRECT_PASSWORD) => format!("incorrect password for {email}"),
        Some(ERRNO_UNKNOWN_ACCOUNT) => format!("no account {email} on this server"),
        Some(ERRNO_THROTTLED) => {
            format!("too many failed sign-ins for {email}; wait and try again")
        }
        _ => format!(
            "the accounts service refused the sign-in: {} ({status})",
            message.unwrap_or_else(|| "no reason given".into())
        ),
    })
}

fn token_field(answer: &Value, name: &str) -> Result<[u8; 32], ClientError> {
    let text = answer[name]
        .as_str()
        .ok_or_else(|| ClientError::Protocol(format!("the answer has no {name}")))?;
    hex32(text, name)
}

fn hex32(text: &str, name: &str) -> Result<[u8; 32], ClientError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| ClientError::Protocol(format!("{name} is not 32 bytes of hex")))
}
