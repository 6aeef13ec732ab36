//! The object and list endpoints, the same for every kind: buckets, groups, collections,
//! records and accounts differ only in where they live and who may create them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Serialize;
use serde_json::{Map, Value};
use settings_store::{Kind, Object, Permissions, Precondition, Write};

use crate::access::{Action, allowed, missing_or_forbidden};
use crate::auth::{self, Caller, authenticate};
use crate::body::{self, ObjectBody};
use crate::error::{Errno, KintoError};
use crate::hooks::{PendingWrite, WriteEvent};
use crate::resource::Resource;
use crate::state::SettingsState;

/// An object with its permissions.
#[derive(Serialize)]
struct ObjectResponse {
    data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Permissions>,
}

/// A list.
#[derive(Serialize)]
pub(crate) struct ListResponse {
    pub(crate) data: Vec<Value>,
}

pub(crate) struct Context {
    pub(crate) state: SettingsState,
    pub(crate) caller: Caller,
    pub(crate) resource: Resource,
}

pub(crate) async fn context(
    state: SettingsState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Context, KintoError> {
    let path = uri.path().strip_prefix("/v1").unwrap_or(uri.path());
    let resource = Resource::parse(path)?;
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, headers).await?;
    Ok(Context {
        state,
        caller,
        resource,
    })
}

pub(crate) fn etag(ts: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{ts}\"")).expect("a quoted number is a header value")
}

pub(crate) use crate::dates::http_date;

fn parse_etag(value: &str) -> Option<i64> {
    value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

/// `If-Match` / `If-None-Match: *` of a write.
fn write_precondition(headers: &HeaderMap) -> Result<Precondition, KintoError> {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(value) = header_text(header::IF_MATCH) {
        if value == "*" {
            return Ok(Precondition::IfExists);
        }
        return parse_etag(value).map(Precondition::IfMatch).ok_or_else(|| {
            KintoError::invalid_parameter("header", "If-Match", "must be a quoted timestamp or *")
        });
    }
    if let Some(value) = header_text(header::IF_NONE_MATCH) {
        if value == "*" {
            return Ok(Precondition::IfAbsent);
        }
        return Err(KintoError::invalid_parameter(
            "header",
            "If-None-Match",
            "only * is allowed on writes",
        ));
    }
    Ok(Precondition::None)
}

pub(crate) fn not_modified(headers: &HeaderMap, current: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_etag)
        .is_some_and(|ts| ts == current)
}

pub(crate) fn is_admin(ctx: &Context) -> bool {
    ctx.caller
        .is_any_of(&ctx.state.settings.account_write_principals)
}

/// The object as shown to clients (an account's password hash never is).
pub(crate) fn shown(kind: Kind, object: &Object) -> Value {
    let mut json = object.to_json();
    if kind == Kind::Account
        && let Value::Object(map) = &mut json
    {
        map.remove("password");
    }
    json
}

async fn may_write(ctx: &Context, resource: &Resource) -> Result<bool, KintoError> {
    if ctx.resource.kind == Kind::Account && is_admin(ctx) {
        return Ok(true);
    }
    allowed(
        ctx.state.store.as_ref(),
        &ctx.caller,
        &resource.permission_chain(),
        Action::Write,
    )
    .await
}

async fn may_read(ctx: &Context, resource: &Resource) -> Result<bool, KintoError> {
    if ctx.resource.kind == Kind::Account && is_admin(ctx) {
        return Ok(true);
    }
    allowed(
        ctx.state.store.as_ref(),
        &ctx.caller,
        &resource.permission_chain(),
        Action::Read,
    )
    .await
}

pub(crate) async fn may_create(ctx: &Context) -> Result<bool, KintoError> {
    let settings = &ctx.state.settings;
    Ok(match ctx.resource.kind {
        Kind::Bucket => ctx.caller.is_any_of(&settings.bucket_create_principals),
        Kind::Account => ctx.caller.is_any_of(&settings.account_create_principals) || is_admin(ctx),
        kind => {
            let container = Resource {
                id: None,
                ..ctx.resource.clone()
            };
            allowed(
                ctx.state.store.as_ref(),
                &ctx.caller,
                &container.permission_chain(),
                Action::Create(kind),
            )
            .await?
        }
    })
}

/// The parent object must exist (a collection's bucket, a record's collection).
pub(crate) async fn ensure_parent(ctx: &Context) -> Result<(), KintoError> {
    let Some(parent) = ctx.resource.parent_resource() else {
        return Ok(());
    };
    let id = parent.id.clone().unwrap_or_default();
    if ctx
        .state
        .store
        .get(parent.kind, &parent.parent, &id)
        .await?
        .is_none()
    {
        return Err(missing_or_forbidden(ctx.state.store.as_ref(), &ctx.caller, &parent).await);
    }
    Ok(())
}

pub(crate) fn refuse_if_readonly(ctx: &Context) -> Result<(), KintoError> {
    if ctx.state.settings.readonly {
        return Err(KintoError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Errno::MethodNotAllowed,
            "The server is read-only",
        ));
    }
    Ok(())
}

fn object_response(
    status: StatusCode,
    kind: Kind,
    object: &Object,
    permissions: Option<Permissions>,
) -> Response {
    let mut response = (
        status,
        Json(ObjectResponse {
            data: shown(kind, object),
            permissions,
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(object.last_modified));
    if let Some(date) = http_date(object.last_modified) {
        response.headers_mut().insert(header::LAST_MODIFIED, date);
    }
    response
}

fn generated_id(kind: Kind) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    match kind {
        Kind::Record => {
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let hex = hex_string(&bytes);
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        }
        _ => {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            bytes[..8]
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect()
        }
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces an account's clear-text password by its hash (a no-op for other kinds),
/// refusing a missing or empty one.
fn hash_account_password(
    resource: &Resource,
    data: &mut Map<String, Value>,
) -> Result<(), KintoError> {
    if resource.kind != Kind::Account {
        return Ok(());
    }
    match data.get("password") {
        Some(Value::String(password)) if !password.is_empty() => {
            let hash = auth::hash_password(password)?;
            data.insert("password".into(), Value::String(hash));
            Ok(())
        }
        _ => Err(KintoError::invalid_data(
            "data.password",
            "a non-empty string is required",
        )),
    }
}

/// Writes an object (an account's password already hashed); the caller's principal always
/// gets `write` on what it writes.
async fn store_object(
    ctx: &Context,
    resource: &Resource,
    mut data: Map<String, Value>,
    permissions: Option<Permissions>,
    precondition: Precondition,
) -> Result<(Object, bool, Permissions), KintoError> {
    let id = resource.id.clone().unwrap_or_default();
    let forced = data.get("last_modified").and_then(Value::as_i64);
    // A forced timestamp in the far future would pin the list there for good.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if forced.is_some_and(|ts| ts > now_ms + 86_400_000) {
        return Err(KintoError::invalid_data(
            "data.last_modified",
            "must not be more than a day in the future",
        ));
    }
    data.remove("id");
    data.remove("last_modified");
    let mut permissions = match permissions {
        Some(given) => given,
        None => ctx.state.store.permissions(&resource.uri()).await?,
    };
    let owner = match (&ctx.caller.user_id, resource.kind) {
        (_, Kind::Account) => Some(format!("account:{id}")),
        (Some(user), _) => Some(user.clone()),
        (None, _) => None,
    };
    if let Some(owner) = owner {
        permissions.entry("write".into()).or_default().insert(owner);
    }
    let before = ctx
        .state
        .store
        .get(resource.kind, &resource.parent, &id)
        .await?;
    let pending = PendingWrite {
        caller: &ctx.caller,
        resource,
        before: before.as_ref(),
        data: Some(&data),
    };
    ctx.state.hooks.check(&ctx.state, &pending).await?;
    let write = Write {
        kind: resource.kind,
        parent: resource.parent.clone(),
        id,
        data,
        permissions: Some(permissions.clone()),
        precondition,
        forced_timestamp: forced,
    };
    let (object, created) = ctx.state.store.put(write).await?;
    let event = WriteEvent {
        caller: &ctx.caller,
        resource,
        before: before.as_ref(),
        after: &object,
    };
    ctx.state.hooks.written(&ctx.state, &event).await?;
    Ok((object, created, permissions))
}

/// `GET` of one object.
pub async fn get_object(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    let id = ctx.resource.id.clone().unwrap_or_default();
    let store = ctx.state.store.as_ref();
    let Some(object) = store
        .get(ctx.resource.kind, &ctx.resource.parent, &id)
        .await?
    else {
        return Err(missing_or_forbidden(store, &ctx.caller, &ctx.resource).await);
    };
    if !may_read(&ctx, &ctx.resource).await? {
        return Err(KintoError::denied(&ctx.caller));
    }
    if not_modified(&headers, object.last_modified) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response
            .headers_mut()
            .insert(header::ETAG, etag(object.last_modified));
        return Ok(response);
    }
    let permissions = if may_write(&ctx, &ctx.resource).await? {
        Some(store.permissions(&ctx.resource.uri()).await?)
    } else {
        None
    };
    Ok(object_response(
        StatusCode::OK,
        ctx.resource.kind,
        &object,
        permissions,
    ))
}

/// `PUT` of one object: creates it or replaces it.
pub async fn put_object(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    refuse_if_readonly(&ctx)?;
    let ObjectBody { data, permissions } = body::parse(&headers, &bytes)?;
    ensure_parent(&ctx).await?;
    let id = ctx.resource.id.clone().unwrap_or_default();
    let existing = ctx
        .state
        .store
        .get(ctx.resource.kind, &ctx.resource.parent, &id)
        .await?;
    let permitted = match &existing {
        Some(_) => may_write(&ctx, &ctx.resource).await?,
        None => may_create(&ctx).await?,
    };
    if !permitted {
        return Err(KintoError::denied(&ctx.caller));
    }
    let mut data = data.unwrap_or_default();
    if let Some(Value::String(body_id)) = data.get("id")
        && body_id != &id
    {
        return Err(KintoError::invalid_data(
            "data.id",
            "does not match the id in the URL",
        ));
    }
    data.remove("id");
    hash_account_password(&ctx.resource, &mut data)?;
    let (object, created, permissions) = store_object(
        &ctx,
        &ctx.resource,
        data,
        permissions,
        write_precondition(&headers)?,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(object_response(
        status,
        ctx.resource.kind,
        &object,
        Some(permissions),
    ))
}

/// `PATCH` of one object: fields merged (shallow, or RFC 7396 with
/// `application/merge-patch+json`), permissions given replace those permissions.
pub async fn patch_object(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    refuse_if_readonly(&ctx)?;
    let patch_kind = body::patch_kind(&headers);
    let ObjectBody { data, permissions } = if patch_kind == body::PatchKind::JsonPatch {
        ObjectBody::default()
    } else {
        body::parse(&headers, &bytes)?
    };
    let id = ctx.resource.id.clone().unwrap_or_default();
    let store = ctx.state.store.as_ref();
    let Some(existing) = store
        .get(ctx.resource.kind, &ctx.resource.parent, &id)
        .await?
    else {
        return Err(missing_or_forbidden(store, &ctx.caller, &ctx.resource).await);
    };
    if !may_write(&ctx, &ctx.resource).await? {
        return Err(KintoError::denied(&ctx.caller));
    }
    match write_precondition(&headers)? {
        Precondition::IfMatch(ts) if ts != existing.last_modified => {
            return Err(KintoError::modified(Some(shown(
                ctx.resource.kind,
                &existing,
            ))));
        }
        Precondition::IfAbsent => {
            return Err(KintoError::modified(Some(shown(
                ctx.resource.kind,
                &existing,
            ))));
        }
        _ => {}
    }
    if patch_kind == body::PatchKind::JsonPatch {
        if ctx.resource.kind == Kind::Account {
            return Err(KintoError::invalid_data(
                "body",
                "accounts cannot be changed with JSON Patch",
            ));
        }
        let current = store.permissions(&ctx.resource.uri()).await?;
        let (fields, all) = body::apply_json_patch(&existing.data, &current, &bytes)?;
        let (object, _, all) = store_object(
            &ctx,
            &ctx.resource,
            fields,
            Some(all),
            Precondition::IfMatch(existing.last_modified),
        )
        .await?;
        return Ok(object_response(
            StatusCode::OK,
            ctx.resource.kind,
            &object,
            Some(all),
        ));
    }
    let new_password = data.as_ref().is_some_and(|d| d.contains_key("password"));
    let mut fields = existing.data.clone();
    if let Some(patch) = data {
        body::apply_patch(&mut fields, patch, patch_kind);
    }
    // The stored hash stays as it is unless a new password was given.
    if new_password {
        hash_account_password(&ctx.resource, &mut fields)?;
    }
    let mut all = store.permissions(&ctx.resource.uri()).await?;
    if let Some(given) = permissions {
        all.extend(given);
    }
    let (object, _, all) = store_object(
        &ctx,
        &ctx.resource,
        fields,
        Some(all),
        Precondition::IfMatch(existing.last_modified),
    )
    .await?;
    Ok(object_response(
        StatusCode::OK,
        ctx.resource.kind,
        &object,
        Some(all),
    ))
}

/// `DELETE` of one object (and everything under it); answers the tombstone.
pub async fn delete_object(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    refuse_if_readonly(&ctx)?;
    let id = ctx.resource.id.clone().unwrap_or_default();
    let store = ctx.state.store.as_ref();
    if store
        .get(ctx.resource.kind, &ctx.resource.parent, &id)
        .await?
        .is_none()
    {
        return Err(missing_or_forbidden(store, &ctx.caller, &ctx.resource).await);
    }
    if !may_write(&ctx, &ctx.resource).await? {
        return Err(KintoError::denied(&ctx.caller));
    }
    let before = store
        .get(ctx.resource.kind, &ctx.resource.parent, &id)
        .await?;
    let pending = PendingWrite {
        caller: &ctx.caller,
        resource: &ctx.resource,
        before: before.as_ref(),
        data: None,
    };
    ctx.state.hooks.check(&ctx.state, &pending).await?;
    let tombstone = store
        .delete(
            ctx.resource.kind,
            &ctx.resource.parent,
            &id,
            write_precondition(&headers)?,
        )
        .await?;
    let event = WriteEvent {
        caller: &ctx.caller,
        resource: &ctx.resource,
        before: before.as_ref(),
        after: &tombstone,
    };
    ctx.state.hooks.written(&ctx.state, &event).await?;
    match (ctx.resource.kind, &before) {
        (Kind::Record, Some(record)) => crate::attachments::remove_file(&ctx.state, record).await,
        (Kind::Bucket | Kind::Collection, _) => {
            crate::attachments::remove_tree(&ctx.state, &ctx.resource).await
        }
        _ => {}
    }
    Ok(object_response(
        StatusCode::OK,
        ctx.resource.kind,
        &tombstone,
        None,
    ))
}

/// `POST` to a list: creates an object (201), or answers the existing one with that id
/// (200), as Kinto does.
pub async fn post_list(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, KintoError> {
    let mut ctx = context(state, &uri, &headers).await?;
    refuse_if_readonly(&ctx)?;
    let ObjectBody { data, permissions } = body::parse(&headers, &bytes)?;
    ensure_parent(&ctx).await?;
    let mut data = data.unwrap_or_default();
    let id = match data.remove("id") {
        Some(Value::String(id)) => {
            let valid = match ctx.resource.kind {
                Kind::Account => crate::resource::is_valid_account_id(&id),
                _ => crate::resource::is_valid_id(&id),
            };
            if !valid {
                return Err(KintoError::invalid_data("data.id", "invalid id"));
            }
            id
        }
        Some(_) => return Err(KintoError::invalid_data("data.id", "must be a string")),
        None if ctx.resource.kind == Kind::Account => {
            return Err(KintoError::invalid_data(
                "data.id",
                "an account needs an id",
            ));
        }
        None => generated_id(ctx.resource.kind),
    };
    let resource = ctx.resource.with_id(&id);
    if let Some(existing) = ctx
        .state
        .store
        .get(resource.kind, &resource.parent, &id)
        .await?
    {
        ctx.resource = resource.clone();
        if !may_read(&ctx, &resource).await? {
            return Err(KintoError::denied(&ctx.caller));
        }
        return Ok(object_response(
            StatusCode::OK,
            resource.kind,
            &existing,
            None,
        ));
    }
    if !may_create(&ctx).await? {
        return Err(KintoError::denied(&ctx.caller));
    }
    ctx.resource = resource.clone();
    hash_account_password(&resource, &mut data)?;
    let (object, _, permissions) = store_object(
        &ctx,
        &resource,
        data,
        permissions,
        write_precondition(&headers)?,
    )
    .await?;
    Ok(object_response(
        StatusCode::CREATED,
        resource.kind,
        &object,
        Some(permissions),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_ids() {
        let record = generated_id(Kind::Record);
        assert_eq!(record.len(), 36);
        assert_eq!(&record[14..15], "4");
        assert_eq!(generated_id(Kind::Bucket).len(), 8);
        assert!(crate::resource::is_valid_id(&generated_id(
            Kind::Collection
        )));
    }

    #[test]
    fn reads_etags() {
        assert_eq!(parse_etag("\"123\""), Some(123));
        assert_eq!(parse_etag("W/\"5\""), Some(5));
        assert_eq!(parse_etag("nope"), None);
    }
}
