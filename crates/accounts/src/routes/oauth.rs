//! OAuth: the discovery documents, authorization codes, the token endpoint's three
//! grants, destroy, verify, the JWKS and client metadata.
//!
//! Every client here is public, so a code is bound to a PKCE S256 challenge and useless
//! without the verifier; it is taken from the store before anything else is checked, so a
//! failed exchange (wrong client, wrong verifier) still burns it. The client's `keys_jwe`
//! (kB-derived keys encrypted to the client's ephemeral key by the sign-in page) is stored
//! with the code and returned as it came: the server cannot read it.

use axum::Json;
use axum::extract::{Path, Request, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::account::account_of;
use super::{hex32, json_body, required};
use crate::auth::{authenticate, read};
use crate::onepw::TokenKind;
use crate::service::now_ms;
use crate::store::{CodeRecord, RefreshRecord};
use crate::tokens::{OLDSYNC_SCOPE, check_scopes, client, scopes_cover};
use crate::{AccountsService, ApiError};

/// Where Firefox's WebChannel flow "redirects": nowhere, the page hands the code over.
const WEBCHANNEL_REDIRECT: &str = "urn:ietf:wg:oauth:2.0:oob:oauth-redirect-webchannel";

/// Longest accepted `keys_jwe`, in bytes (Firefox's is well under 1 KiB).
const MAX_KEYS_JWE: usize = 16 * 1024;

/// `GET /.well-known/fxa-client-configuration`: the one document Firefox's
/// `identity.fxaccounts.autoconfig.uri` needs.
pub(super) async fn client_configuration(State(service): State<AccountsService>) -> Json<Value> {
    let base = &service.inner.base;
    Json(json!({
        "auth_server_base_url": format!("{base}/auth"),
        "oauth_server_base_url": format!("{base}/auth"),
        "profile_server_base_url": format!("{base}/profile"),
        "sync_tokenserver_base_url": service.inner.tokenserver,
    }))
}

/// `GET /.well-known/openid-configuration`.
pub(super) async fn openid_configuration(State(service): State<AccountsService>) -> Json<Value> {
    let base = &service.inner.base;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/"),
        "token_endpoint": format!("{base}/auth/v1/oauth/token"),
        "revocation_endpoint": format!("{base}/auth/v1/oauth/destroy"),
        "introspection_endpoint": format!("{base}/auth/v1/verify"),
        "userinfo_endpoint": format!("{base}/profile/v1/profile"),
        "jwks_uri": format!("{base}/auth/v1/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "fxa-credentials"],
        "scopes_supported": [OLDSYNC_SCOPE, "profile"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

#[derive(Deserialize)]
pub(super) struct AuthorizationRequest {
    client_id: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    access_type: Option<String>,
    response_type: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    keys_jwe: Option<String>,
}

/// `POST /oauth/authorization`: a code for the session's account.
pub(super) async fn authorization(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let request: AuthorizationRequest = json_body(&body)?;
    let client_id = required(request.client_id, "client_id")?;
    client(&client_id)?;
    let state = required(request.state, "state")?;
    if request
        .response_type
        .as_deref()
        .is_some_and(|t| t != "code")
    {
        return Err(ApiError::OAuthInvalidParameter("response_type".into()));
    }
    let scope = check_scopes(&required(request.scope, "scope")?)?;
    let (Some(challenge), Some("S256")) = (
        request.code_challenge,
        request.code_challenge_method.as_deref(),
    ) else {
        return Err(ApiError::MissingPkce);
    };
    let challenge_ok = challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(&challenge)
            .is_ok_and(|bytes| bytes.len() == 32);
    if !challenge_ok {
        return Err(ApiError::OAuthInvalidParameter("code_challenge".into()));
    }
    if request
        .keys_jwe
        .as_ref()
        .is_some_and(|jwe| jwe.len() > MAX_KEYS_JWE || jwe.split('.').count() != 5)
    {
        return Err(ApiError::OAuthInvalidParameter("keys_jwe".into()));
    }
    account_of(&service, &session.uid).await?;
    let code: [u8; 32] = rand::random();
    let ttl_ms = i64::try_from(service.inner.settings.code_ttl_secs * 1000).unwrap_or(i64::MAX);
    service
        .inner
        .store
        .insert_code(&CodeRecord {
            code_hash: Sha256::digest(code).into(),
            uid: session.uid.clone(),
            client_id,
            scope,
            code_challenge: challenge,
            keys_jwe: request.keys_jwe,
            offline: request.access_type.as_deref() == Some("offline"),
            auth_at: session.created_at / 1000,
            expires_at: now_ms().saturating_add(ttl_ms),
        })
        .await?;
    let code = hex::encode(code);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &state)
        .finish();
    Ok(Json(json!({
        "code": code,
        "state": state,
        "redirect": format!("{WEBCHANNEL_REDIRECT}?{query}"),
    })))
}

#[derive(Deserialize)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    ttl: Option<u64>,
    access_type: Option<String>,
}

/// The token endpoint's answer (RFC 6749 §5.1 plus Mozilla's fields).
#[derive(Serialize)]
pub(super) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    scope: String,
    expires_in: u64,
    auth_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_jwe: Option<String>,
}

/// `POST /oauth/token` (and PyFxA's `/token`).
pub(super) async fn token(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<TokenResponse>, ApiError> {
    let (parts, body) = read(request).await?;
    let request: TokenRequest = json_body(&body)?;
    let client_id = required(request.client_id.clone(), "client_id")?;
    client(&client_id)?;
    let grant = request
        .grant_type
        .clone()
        .unwrap_or_else(|| "authorization_code".into());
    let (uid, scope, auth_at, offline, keys_jwe) = match grant.as_str() {
        "authorization_code" => {
            let code = exchange_code(&service, &request, &client_id).await?;
            (
                code.uid,
                code.scope,
                code.auth_at,
                code.offline,
                code.keys_jwe,
            )
        }
        "fxa-credentials" => {
            let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
            let scope = check_scopes(&required(request.scope.clone(), "scope")?)?;
            let offline = request.access_type.as_deref() == Some("offline");
            (session.uid, scope, session.created_at / 1000, offline, None)
        }
        "refresh_token" => {
            let token = required(request.refresh_token.as_deref(), "refresh_token")?;
            let hash: [u8; 32] = Sha256::digest(hex32(token, "refresh_token")?).into();
            let stored = service
                .inner
                .store
                .refresh(&hash)
                .await?
                .filter(|stored| stored.client_id == client_id)
                .ok_or(ApiError::UnknownRefreshToken)?;
            let scope = match &request.scope {
                Some(wanted) => {
                    let wanted = check_scopes(wanted)?;
                    if !scopes_cover(&stored.scope, &wanted) {
                        return Err(ApiError::InvalidScopes(wanted));
                    }
                    wanted
                }
                None => stored.scope.clone(),
            };
            (stored.uid, scope, stored.created_at / 1000, false, None)
        }
        _ => return Err(ApiError::InvalidGrantType),
    };
    let account = service
        .inner
        .store
        .account_by_uid(&uid)
        .await?
        .ok_or(ApiError::OAuthInvalidToken("the account no longer exists"))?;
    let issued = service.issue_access_token(&account, &client_id, &scope, request.ttl)?;
    let refresh_token = if offline {
        let token: [u8; 32] = rand::random();
        service
            .inner
            .store
            .insert_refresh(&RefreshRecord {
                token_hash: Sha256::digest(token).into(),
                uid: uid.clone(),
                client_id: client_id.clone(),
                scope: scope.clone(),
                created_at: now_ms(),
            })
            .await?;
        Some(hex::encode(token))
    } else {
        None
    };
    tracing::info!(%uid, client_id, grant, scope, "issued access token");
    Ok(Json(TokenResponse {
        access_token: issued.token,
        token_type: "bearer",
        scope,
        expires_in: issued.expires_in,
        auth_at,
        refresh_token,
        keys_jwe,
    }))
}

/// Takes the code and checks the client, expiry and PKCE verifier.
async fn exchange_code(
    service: &AccountsService,
    request: &TokenRequest,
    client_id: &str,
) -> Result<CodeRecord, ApiError> {
    let code = required(request.code.as_deref(), "code")?;
    let code = hex32(code, "code").map_err(|_| ApiError::UnknownCode)?;
    let stored = service
        .inner
        .store
        .take_code(&Sha256::digest(code).into())
        .await?
        .ok_or(ApiError::UnknownCode)?;
    if stored.client_id != client_id {
        return Err(ApiError::MismatchCode);
    }
    if stored.expires_at <= now_ms() {
        return Err(ApiError::ExpiredCode);
    }
    let verifier = request
        .code_verifier
        .as_deref()
        .ok_or(ApiError::MissingPkce)?;
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !bool::from(computed.as_bytes().ct_eq(stored.code_challenge.as_bytes())) {
        return Err(ApiError::MismatchCodeChallenge);
    }
    Ok(stored)
}

#[derive(Deserialize)]
pub(super) struct DestroyRequest {
    token: Option<String>,
    refresh_token: Option<String>,
    access_token: Option<String>,
}

/// `POST /oauth/destroy` (and `/destroy`): revokes a refresh token. Access tokens are
/// JWTs that expire on their own, so destroying one succeeds without effect, as does an
/// unknown token: Firefox awaits this call during sign-in.
pub(super) async fn destroy(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (_, body) = read(request).await?;
    let request: DestroyRequest = json_body(&body)?;
    for token in [request.token, request.refresh_token, request.access_token]
        .into_iter()
        .flatten()
    {
        if let Ok(raw) = hex32(&token, "token") {
            let hash: [u8; 32] = Sha256::digest(raw).into();
            if service.inner.store.delete_refresh(&hash).await? {
                tracing::info!("refresh token destroyed");
            }
        }
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub(super) struct VerifyRequest {
    token: Option<String>,
}

/// `POST /verify`: what an access token grants, if it is valid.
pub(super) async fn verify(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (_, body) = read(request).await?;
    let request: VerifyRequest = json_body(&body)?;
    let token = required(request.token, "token")?;
    let claims = service.verify_access_token(&token)?;
    service
        .inner
        .store
        .account_by_uid(&claims.sub)
        .await?
        .ok_or(ApiError::OAuthInvalidToken("the account no longer exists"))?;
    let scope: Vec<&str> = claims.scope.split_whitespace().collect();
    Ok(Json(json!({
        "user": claims.sub,
        "client_id": claims.client_id,
        "scope": scope,
        "generation": claims.fxa_generation,
        "profile_changed_at": claims.fxa_generation,
    })))
}

/// `GET /jwks`: the identity provider's public key, which signs every access token.
pub(super) async fn jwks(State(service): State<AccountsService>) -> Json<identity::Jwks> {
    Json(service.inner.idp.jwks())
}

/// `GET /client/{id}`: a client's public metadata.
pub(super) async fn client_info(Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let client = client(&id)?;
    Ok(Json(json!({
        "id": client.id,
        "name": client.name,
        "trusted": true,
        "image_uri": "",
        "redirect_uri": WEBCHANNEL_REDIRECT,
    })))
}
