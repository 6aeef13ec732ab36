//! `/password/change/{start,finish}`: a password change that keeps kB.
//!
//! The client proves the old password (`oldAuthPW`), fetches kB with the key fetch token
//! it gets back, and sends the new `authPW` with `wrapKb` re-wrapped under the new
//! password. The server replaces the verifier, moves the generation (so the token server
//! refuses older access tokens), and revokes every token of the account, handing the
//! client a new session.
//!
//! One syncstack extension: `"keysChanged": true` in the finish request says the client
//! replaces kB itself (the new `wrapKb` wraps another key), so keys_changed_at moves with
//! the generation and the token server accepts the new key fingerprint. Only the CLI's
//! migration of a key it made before the account existed sends it (ADR 0012, addendum).

use axum::Json;
use axum::extract::{Request, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::account::account_of;
use super::{hex32, json_body, required, wants_keys};
use crate::auth::{authenticate, client_address, read, user_agent};
use crate::onepw::TokenKind;
use crate::service::now_ms;
use crate::{AccountsService, ApiError};

#[derive(Deserialize)]
pub(super) struct StartRequest {
    email: Option<String>,
    #[serde(rename = "oldAuthPW")]
    old_auth_pw: Option<String>,
}

/// `POST /password/change/start`: checks the old password (rate-limited).
pub(super) async fn start(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let request: StartRequest = json_body(&body)?;
    let email = required(request.email, "email")?;
    let old = hex32(&required(request.old_auth_pw, "oldAuthPW")?, "oldAuthPW")?;
    let address = client_address(&service, &parts);
    let (account, wrap_kb) = service.check_password(&email, &old, address).await?;
    if account.uid != session.uid {
        return Err(ApiError::InvalidToken("session of another account"));
    }
    let bundle = [account.ka, wrap_kb].concat();
    let (records, tokens) = service.mint_tokens(
        &account.uid,
        &[TokenKind::KeyFetch, TokenKind::PasswordChange],
        Some(bundle),
        None,
    );
    service.inner.store.insert_tokens(&records).await?;
    Ok(Json(json!({
        "keyFetchToken": tokens[0],
        "passwordChangeToken": tokens[1],
    })))
}

#[derive(Deserialize)]
pub(super) struct FinishRequest {
    #[serde(rename = "authPW")]
    auth_pw: Option<String>,
    #[serde(rename = "wrapKb")]
    wrap_kb: Option<String>,
    #[serde(rename = "keysChanged", default)]
    keys_changed: bool,
}

/// `POST /password/change/finish`: the new verifier, once per password change token.
pub(super) async fn finish(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let token = authenticate(&service, &parts, &body, TokenKind::PasswordChange).await?;
    let request: FinishRequest = json_body(&body)?;
    let auth_pw = hex32(&required(request.auth_pw, "authPW")?, "authPW")?;
    let wrap_kb = hex32(&required(request.wrap_kb, "wrapKb")?, "wrapKb")?;
    let taken = service
        .inner
        .store
        .take_token(&token.id_hash, TokenKind::PasswordChange)
        .await?
        .ok_or(ApiError::InvalidToken("password change token already used"))?;
    let ttl_ms =
        i64::try_from(service.inner.settings.one_time_token_ttl_secs * 1000).unwrap_or(i64::MAX);
    if taken.created_at.saturating_add(ttl_ms) <= now_ms() {
        return Err(ApiError::InvalidToken("password change token expired"));
    }
    let account = account_of(&service, &taken.uid).await?;
    let verifier = service.stretch_new(auth_pw.to_vec(), wrap_kb).await?;
    let keys = wants_keys(&parts.uri);
    let kinds: &[TokenKind] = if keys {
        &[TokenKind::Session, TokenKind::KeyFetch]
    } else {
        &[TokenKind::Session]
    };
    let bundle = [account.ka, wrap_kb].concat();
    let (records, tokens) = service.mint_tokens(
        &account.uid,
        kinds,
        Some(bundle),
        user_agent(&parts.headers),
    );
    service
        .inner
        .store
        .change_password(
            &account.uid,
            &verifier,
            now_ms(),
            request.keys_changed,
            &records,
        )
        .await?;
    tracing::info!(uid = %account.uid, keys_changed = request.keys_changed, address = ?client_address(&service, &parts), "password changed; every other token revoked");
    let mut answer = json!({
        "uid": account.uid,
        "sessionToken": tokens[0],
        "verified": true,
        "authAt": now_ms() / 1000,
    });
    if keys {
        answer["keyFetchToken"] = json!(tokens[1]);
    }
    Ok(Json(answer))
}
