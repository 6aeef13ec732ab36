//! Devices, attached clients and the profile: what Firefox shows in its account menu and
//! "Manage devices". Push and device commands (Send Tab) are not offered: they answer a
//! clear 403 with errno 202 and no `Retry-After`, which Firefox treats as a plain failure
//! instead of backing off from every request.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::account::account_of;
use super::{json_body, required};
use crate::auth::{authenticate, read};
use crate::onepw::TokenKind;
use crate::service::now_ms;
use crate::store::DeviceRecord;
use crate::tokens::client;
use crate::{AccountsService, ApiError};

/// Longest device name, in characters.
const MAX_NAME: usize = 255;
/// Longest push field or `availableCommands` document, in bytes.
const MAX_FIELD: usize = 4096;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviceRequest {
    id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    push_callback: Option<String>,
    push_public_key: Option<String>,
    push_auth_key: Option<String>,
    available_commands: Option<Map<String, Value>>,
}

fn device_json(device: &DeviceRecord, current: Option<&[u8; 32]>) -> Value {
    let commands: Value = serde_json::from_str(&device.available_commands).unwrap_or(json!({}));
    json!({
        "id": device.id,
        "isCurrentDevice": current.is_some() && device.session_id_hash.as_ref() == current,
        "name": device.name,
        "type": device.device_type,
        "createdAt": device.created_at,
        "lastAccessTime": device.last_access_at,
        "pushCallback": device.push_callback,
        "pushPublicKey": device.push_public_key,
        "pushAuthKey": device.push_auth_key,
        "pushEndpointExpired": false,
        "availableCommands": commands,
        "location": {},
    })
}

fn bounded(value: Option<String>, name: &str) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if value.len() > MAX_FIELD => Err(ApiError::InvalidParameter(name.into())),
        other => Ok(other),
    }
}

/// `POST /account/device`: registers the session's device, or updates it.
pub(super) async fn register(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let request: DeviceRequest = json_body(&body)?;
    let store = &service.inner.store;
    let existing = store.devices(&session.uid).await?;
    let current = match &request.id {
        Some(id) => Some(
            existing
                .iter()
                .find(|device| &device.id == id)
                .ok_or(ApiError::UnknownDevice)?,
        ),
        None => existing
            .iter()
            .find(|device| device.session_id_hash == Some(session.id_hash)),
    };
    let name = match (request.name, current) {
        (Some(name), _) => name.chars().take(MAX_NAME).collect(),
        (None, Some(device)) => device.name.clone(),
        (None, None) => "Firefox".to_owned(),
    };
    let device_type = request
        .device_type
        .or_else(|| current.map(|d| d.device_type.clone()))
        .unwrap_or_else(|| "desktop".into());
    let commands = match request.available_commands {
        Some(commands) => Value::Object(commands).to_string(),
        None => current.map_or_else(|| "{}".to_owned(), |d| d.available_commands.clone()),
    };
    if commands.len() > MAX_FIELD || device_type.len() > 32 {
        return Err(ApiError::InvalidParameter(
            "availableCommands or type".into(),
        ));
    }
    let now = now_ms();
    let device = DeviceRecord {
        id: current.map_or_else(|| hex::encode(rand::random::<[u8; 16]>()), |d| d.id.clone()),
        uid: session.uid.clone(),
        session_id_hash: Some(session.id_hash),
        name,
        device_type,
        push_callback: bounded(request.push_callback, "pushCallback")?,
        push_public_key: bounded(request.push_public_key, "pushPublicKey")?,
        push_auth_key: bounded(request.push_auth_key, "pushAuthKey")?,
        available_commands: commands,
        created_at: now,
        last_access_at: now,
    };
    let stored = store.upsert_device(&device).await?;
    Ok(Json(device_json(&stored, Some(&session.id_hash))))
}

/// `GET /account/devices`.
pub(super) async fn list(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let devices = service.inner.store.devices(&session.uid).await?;
    let list: Vec<Value> = devices
        .iter()
        .map(|device| device_json(device, Some(&session.id_hash)))
        .collect();
    Ok(Json(Value::Array(list)))
}

/// `GET /account/attached_clients`: sessions (with their devices) and OAuth clients
/// holding refresh tokens.
pub(super) async fn attached_clients(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let store = &service.inner.store;
    let devices = store.devices(&session.uid).await?;
    let mut clients = Vec::new();
    for token in store.sessions(&session.uid).await? {
        let device = devices
            .iter()
            .find(|device| device.session_id_hash == Some(token.id_hash));
        clients.push(json!({
            "clientId": null,
            "deviceId": device.map(|d| d.id.clone()),
            "sessionTokenId": hex::encode(token.id_hash),
            "refreshTokenId": null,
            "isCurrentSession": token.id_hash == session.id_hash,
            "deviceType": device.map(|d| d.device_type.clone()),
            "name": device.map(|d| d.name.clone()),
            "createdTime": token.created_at,
            "lastAccessTime": device.map_or(token.created_at, |d| d.last_access_at),
            "scope": null,
            "location": {},
            "userAgent": token.user_agent,
            "os": null,
        }));
    }
    for refresh in store.refresh_tokens(&session.uid).await? {
        let name = client(&refresh.client_id).map_or("OAuth client", |c| c.name);
        let scope: Vec<&str> = refresh.scope.split_whitespace().collect();
        clients.push(json!({
            "clientId": refresh.client_id,
            "deviceId": null,
            "sessionTokenId": null,
            "refreshTokenId": hex::encode(refresh.token_hash),
            "isCurrentSession": false,
            "deviceType": null,
            "name": name,
            "createdTime": refresh.created_at,
            "lastAccessTime": refresh.created_at,
            "scope": scope,
            "location": {},
            "userAgent": "",
            "os": null,
        }));
    }
    Ok(Json(Value::Array(clients)))
}

#[derive(Deserialize)]
pub(super) struct DestroyRequest {
    id: Option<String>,
}

/// `POST /account/device/destroy {id}`: forgets the device and signs its session out.
pub(super) async fn destroy(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    let session = authenticate(&service, &parts, &body, TokenKind::Session).await?;
    let request: DestroyRequest = json_body(&body)?;
    let id = required(request.id, "id")?;
    if !service.inner.store.delete_device(&session.uid, &id).await? {
        return Err(ApiError::UnknownDevice);
    }
    Ok(Json(json!({})))
}

/// Refuses a device-command or push route after authenticating it, so that a client with
/// a bad token still learns that first.
async fn unsupported(
    service: AccountsService,
    request: Request,
    what: &'static str,
) -> Result<Json<Value>, ApiError> {
    let (parts, body) = read(request).await?;
    authenticate(&service, &parts, &body, TokenKind::Session).await?;
    Err(ApiError::NotSupported(what))
}

/// `GET /account/device/commands`.
pub(super) async fn commands(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    unsupported(service, request, "device commands").await
}

/// `POST /account/devices/notify`.
pub(super) async fn notify(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    unsupported(service, request, "push notifications").await
}

/// `POST /account/devices/invoke_command`.
pub(super) async fn invoke_command(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    unsupported(service, request, "device commands").await
}

/// `GET /profile/v1/profile` with `Authorization: Bearer <access token>` (scope `profile`).
pub(super) async fn profile(
    State(service): State<AccountsService>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, _) = read(request).await?;
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::InvalidToken("no Bearer access token"))?;
    // 401 for any bad token, expired included: Firefox's profile client answers a 401 by
    // fetching a fresh token, and any other error by giving up.
    let claims = service
        .verify_access_token(token.trim())
        .map_err(|_| ApiError::InvalidToken("invalid or expired access token"))?;
    if !claims
        .scope
        .split_whitespace()
        .any(|scope| scope == "profile" || scope.starts_with("profile:"))
    {
        return Err(ApiError::InvalidToken("the token lacks the profile scope"));
    }
    let account = account_of(&service, &claims.sub).await?;
    Ok(Json(json!({
        "uid": account.uid,
        "email": account.email,
        "displayName": account.display_name,
        "locale": null,
        "avatar": null,
        "avatarDefault": true,
        "amrValues": ["pwd"],
        "twoFactorAuthentication": false,
        "subscriptions": [],
    })))
}
