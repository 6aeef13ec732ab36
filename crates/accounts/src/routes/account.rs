//! `/account/*`, `/session/*` and `/recovery_email/status`: sign-up, sign-in, keys and
//! session management (onepw).

use axum::Json;
use axum::extract::{Request, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{hex32, json_body, required, wants_keys};
use crate::auth::{authenticate, client_address, read, user_agent};
use crate::onepw::TokenKind;
use crate::service::{SIGN_UP_CLOSED, now_ms};
use crate::tokens::{OLDSYNC_SCOPE, check_scopes, client};
use crate::{AccountsService, ApiError};

/// The body of `account/create` and `account/login`.
#[derive(Deserialize)]
pub(super) struct Credentials {
    email: Option<String>,
    #[serde(rename = "authPW")]
    auth_pw: Option<String>,
}

impl Credentials {
    fn parse(self) -> Result<(String, [u8; 32]), ApiError> {
        let email = required(self.email, "email")?;
        let auth_pw = hex32(&required(self.auth_pw, "authPW")?, "authPW")?;
        Ok((email, auth_pw))
    }
}

/// What `account/create` and `account/login` answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignedIn {
    uid: String,
    session_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_fetch_token: Option<String>,
    verified: bool,
    auth_at: i64,
}

impl SignedIn {
    fn new(uid: String, mut tokens: Vec<String>) -> Self {
        let key_fetch_token = (tokens.len() > 1).then(|| tokens.remove(1));
        SignedIn {
            uid,
            session_token: tokens.swap_remove(0),
            key_fetch_token,
            verified: true,
            auth_at: now_ms() / 1000,
        }
    }
}

fn token_kinds(keys: bool) -> &'static [TokenKind] {
    if keys {
        &[TokenKind::Session, TokenKind::KeyFetch]
    } else {
        &[TokenKind::Session]
    }
}

/// `POST /account/create`: a new account (verified at once: there is no mail here).
pub(super) async fn create(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<SignedIn>, ApiError> {
    let (parts, body) = read(request).await?;
    let (email, auth_pw) = json_body::<Credentials>(&body)?.parse()?;
    // Checked first so that a closed sign-up costs no argon2id, and again in the store's
    // transaction when only the first account may sign up.
    if !service.sign_up_open().await? {
        return Err(ApiError::NotSupported(SIGN_UP_CLOSED));
    }
    let first_only = service.inner.settings.allow_sign_up.is_none();
    let kinds = token_kinds(wants_keys(&parts.uri));
    let created = service
        .create(
            &email,
            &auth_pw,
            None,
            kinds,
            user_agent(&parts.headers),
            first_only,
        )
        .await?;
    Ok(Json(SignedIn::new(created.account.uid, created.tokens)))
}

/// `POST /account/login`: checks `authPW` (rate-limited) and opens a session.
pub(super) async fn login(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<SignedIn>, ApiError> {
    let (parts, body) = read(request).await?;
    let (email, auth_pw) = json_body::<Credentials>(&body)?.parse()?;
    let address = client_address(&service, &parts);
    let (account, wrap_kb) = service.check_password(&email, &auth_pw, address).await?;
    let kinds = token_kinds(wants_keys(&parts.uri));
    let bundle = [account.ka, wrap_kb].concat();
    let (records, tokens) = service.mint_tokens(
        &account.uid,
        kinds,
        Some(bundle),
        user_agent(&parts.headers),
    );
    service.inner.store.insert_tokens(&records).await?;
    tracing::info!(uid = %account.uid, keys = kinds.len() > 1, "signed in");
    Ok(Json(SignedIn::new(account.uid, tokens)))
}

/// `GET /account/keys`: the key bundle, once per key fetch token.
pub(super) async fn keys(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let token = authenticate(&service, &parts, &body, TokenKind::KeyFetch).await?;
    let taken = service
        .inner
        .store
        .take_token(&token.id_hash, TokenKind::KeyFetch)
        .await?
        .ok_or(ApiError::InvalidToken("key fetch token already used"))?;
    let ttl_ms =
        i64::try_from(service.inner.settings.one_time_token_ttl_secs * 1000).unwrap_or(i64::MAX);
    if taken.created_at.saturating_add(ttl_ms) <= now_ms() {
        return Err(ApiError::InvalidToken("key fetch token expired"));
    }
    let bundle = taken
        .key_bundle
        .ok_or_else(|| ApiError::Internal("key fetch token without a bundle".into()))?;
    Ok(Json(json!({ "bundle": hex::encode(bundle) })))
}

/// `GET /account/status?uid=`: whether the account exists (Firefox asks after a 110).
pub(super) async fn status(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let uid = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(name, _)| name == "uid")
        .map(|(_, value)| value.into_owned());
    let exists = match uid {
        Some(uid) => {
            if uid.len() != 32 || !uid.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::InvalidParameter("uid".into()));
            }
            service
                .inner
                .store
                .account_by_uid(&uid.to_ascii_lowercase())
                .await?
                .is_some()
        }
        None => {
            authenticate(&service, &parts, &body, TokenKind::Session).await?;
            true
        }
    };
    Ok(Json(json!({ "exists": exists })))
}

/// `POST /account/destroy {email, authPW}`: deletes the account and everything it owns.
pub(super) async fn destroy(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let (email, auth_pw) = json_body::<Credentials>(&body)?.parse()?;
    let address = client_address(&service, &parts);
    let (account, _) = service.check_password(&email, &auth_pw, address).await?;
    service.inner.store.delete_account(&account.uid).await?;
    tracing::info!(uid = %account.uid, "account destroyed by its owner");
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub(super) struct ScopedKeyRequest {
    client_id: Option<String>,
    scope: Option<String>,
}

/// `POST /account/scoped-key-data`: the metadata clients derive scoped keys with.
pub(super) async fn scoped_key_data(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let request: ScopedKeyRequest = json_body(&body)?;
    client(&required(request.client_id, "client_id")?)?;
    let scopes = check_scopes(&required(request.scope, "scope")?)?;
    let account = account_of(&service, &session.uid).await?;
    let mut answer = Map::new();
    if scopes.split(' ').any(|scope| scope == OLDSYNC_SCOPE) {
        answer.insert(
            OLDSYNC_SCOPE.into(),
            json!({
                "identifier": OLDSYNC_SCOPE,
                "keyRotationSecret": "0".repeat(64),
                "keyRotationTimestamp": account.keys_changed_at,
            }),
        );
    }
    Ok(Json(Value::Object(answer)))
}

/// `GET /recovery_email/status`: every account here is verified.
pub(super) async fn email_status(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let account = account_of(&service, &session.uid).await?;
    Ok(Json(json!({
        "email": account.email,
        "verified": true,
        "sessionVerified": true,
        "emailVerified": true,
    })))
}

/// `GET /session/status`.
pub(super) async fn session_status(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    Ok(Json(json!({ "state": "verified", "uid": session.uid })))
}

/// `POST /session/destroy`: signs the session out (and forgets its device).
pub(super) async fn session_destroy(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    service
        .inner
        .store
        .delete_token(&session.id_hash, TokenKind::Session)
        .await?;
    tracing::info!(uid = %session.uid, "session destroyed");
    Ok(Json(json!({})))
}

/// The account a token belongs to; 110 if it was deleted since.
pub(crate) async fn account_of(
    service: &AccountsService,
    uid: &str,
) -> Result<crate::store::AccountRecord, ApiError> {
    service
        .inner
        .store
        .account_by_uid(uid)
        .await?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))
}
