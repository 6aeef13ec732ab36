//! Attachments, as the kinto-attachment plugin serves them: a file uploaded to a record
//! (`POST {record}/attachment`, multipart), kept under a directory, described in the
//! record's `attachment` field (`filename`, `hash` (SHA-256 hex), `location` relative to the
//! base URL, `mimetype`, `size`), served under `/attachments/`, and deleted with the record.

use std::path::{Component, Path, PathBuf};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Multipart, OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use settings_store::{Kind, Object, Precondition, Write};
use sha2::{Digest, Sha256};

use crate::access::{Action, allowed, missing_or_forbidden};
use crate::auth::authenticate;
use crate::error::{Errno, KintoError};
use crate::hooks::{PendingWrite, WriteEvent};
use crate::resource::Resource;
use crate::state::SettingsState;

/// What a record's `attachment` field holds.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentInfo {
    filename: String,
    hash: String,
    location: String,
    mimetype: String,
    size: u64,
}

fn base_path(state: &SettingsState) -> Result<PathBuf, KintoError> {
    state
        .settings
        .attachment_base_path
        .clone()
        .map(PathBuf::from)
        .ok_or_else(|| {
            KintoError::new(
                StatusCode::NOT_FOUND,
                Errno::MissingResource,
                "Attachments are not enabled on this server",
            )
        })
}

/// The base URL clients prepend to `location` (`capabilities.attachments.base_url`).
pub fn base_url(state: &SettingsState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.attachment_base_url {
        return if url.ends_with('/') {
            url.clone()
        } else {
            format!("{url}/")
        };
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}/attachments/")
}

fn record_of(uri: &str) -> Result<Resource, KintoError> {
    let path = uri
        .strip_prefix("/v1")
        .unwrap_or(uri)
        .trim_end_matches("/attachment");
    let resource = Resource::parse(path)?;
    if resource.kind != Kind::Record || resource.id.is_none() {
        return Err(KintoError::not_found("record"));
    }
    Ok(resource)
}

/// A safe extension for the stored file (letters and digits only).
fn extension(filename: &str) -> String {
    Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.len() <= 10 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default()
}

/// Deletes the file an `attachment` field points to, if any, unless old files are kept
/// (`attachment_keep_old_files`: published copies of a record point at the same file).
pub async fn remove_file(state: &SettingsState, record: &Object) {
    if state.settings.attachment_keep_old_files {
        return;
    }
    let (Ok(base), Some(location)) = (
        base_path(state),
        record
            .data
            .get("attachment")
            .and_then(|a| a.get("location"))
            .and_then(Value::as_str),
    ) else {
        return;
    };
    if let Some(path) = safe_join(&base, location)
        && let Err(error) = tokio::fs::remove_file(&path).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "could not delete an attachment file");
    }
}

/// Deletes every file of a bucket or collection (after the bucket or collection is gone),
/// unless old files are kept.
pub async fn remove_tree(state: &SettingsState, resource: &Resource) {
    if state.settings.attachment_keep_old_files {
        return;
    }
    let Ok(base) = base_path(state) else { return };
    let relative = match (resource.kind, &resource.id) {
        (Kind::Bucket, Some(id)) => id.clone(),
        (Kind::Collection, Some(id)) => {
            format!("{}/{id}", resource.parent.trim_start_matches("/buckets/"))
        }
        _ => return,
    };
    if let Some(path) = safe_join(&base, &relative) {
        let _ = tokio::fs::remove_dir_all(path).await;
    }
}

/// Joins a relative location under the base directory, refusing anything that could leave
/// it or name one file two ways: every `/`-separated segment must be a plain name (`Path`
/// would silently drop `.` segments, so the string is checked, not its components).
fn safe_join(base: &Path, relative: &str) -> Option<PathBuf> {
    let plain = |segment: &str| {
        !segment.is_empty() && segment != "." && segment != ".." && !segment.contains('\\')
    };
    if relative.split('/').all(plain)
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        Some(base.join(relative))
    } else {
        None
    }
}

/// `POST {record}/attachment`: stores the file, creating the record if needed.
pub async fn upload(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, KintoError> {
    let base = base_path(&state)?;
    let resource = record_of(uri.path())?;
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, &headers).await?;
    let store = state.store.as_ref();
    let id = resource.id.clone().unwrap_or_default();
    let collection = resource
        .parent_resource()
        .ok_or_else(|| KintoError::not_found("collection"))?;
    if store
        .get(
            Kind::Collection,
            &collection.parent,
            collection.id.as_deref().unwrap_or(""),
        )
        .await?
        .is_none()
    {
        return Err(missing_or_forbidden(store, &caller, &collection).await);
    }
    let existing = store.get(Kind::Record, &resource.parent, &id).await?;
    let permitted = match &existing {
        Some(_) => allowed(store, &caller, &resource.permission_chain(), Action::Write).await?,
        None => {
            let container = Resource {
                id: None,
                ..resource.clone()
            };
            allowed(
                store,
                &caller,
                &container.permission_chain(),
                Action::Create(Kind::Record),
            )
            .await?
        }
    };
    if !permitted {
        return Err(KintoError::denied(&caller));
    }

    let mut file: Option<(String, String, Bytes)> = None;
    let mut extra = Map::new();
    let mut given_permissions = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        KintoError::invalid_data("attachment", format!("malformed multipart body: {e}"))
    })? {
        match field.name() {
            Some("attachment") => {
                let filename = field.file_name().unwrap_or("attachment").to_owned();
                let mimetype = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let bytes = field.bytes().await.map_err(|e| {
                    KintoError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Errno::RequestTooLarge,
                        format!("attachment: {e}"),
                    )
                })?;
                file = Some((filename, mimetype, bytes));
            }
            Some("data") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| KintoError::invalid_data("data", e.to_string()))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => extra = map,
                    _ => return Err(KintoError::invalid_data("data", "must be a JSON object")),
                }
            }
            Some("permissions") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| KintoError::invalid_data("permissions", e.to_string()))?;
                given_permissions = Some(crate::body::parse_permissions(&text)?);
            }
            Some(other) => {
                return Err(KintoError::invalid_data(
                    other,
                    "not one of attachment, data, permissions",
                ));
            }
            None => {}
        }
    }
    let (filename, mimetype, bytes) =
        file.ok_or_else(|| KintoError::invalid_data("attachment", "a file is required"))?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let collection_id = collection.id.clone().unwrap_or_default();
    let bucket_id = collection.parent.trim_start_matches("/buckets/").to_owned();
    let location = format!(
        "{bucket_id}/{collection_id}/{}{}",
        uuid_like(),
        extension(&filename)
    );
    let path = safe_join(&base, &location)
        .ok_or_else(|| KintoError::invalid_data("attachment", "bad location"))?;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(storage_error)?;
    }
    let info = AttachmentInfo {
        filename,
        hash,
        location,
        mimetype,
        size: bytes.len() as u64,
    };
    let mut data = existing
        .as_ref()
        .map(|r| r.data.clone())
        .unwrap_or_default();
    data.extend(
        extra
            .into_iter()
            .filter(|(k, _)| k != "id" && k != "last_modified"),
    );
    data.insert(
        "attachment".into(),
        serde_json::to_value(&info).expect("serializes"),
    );
    // The plugin (the review workflow) sees the write as any record write, before the
    // file exists, so a refusal leaves nothing behind.
    let pending = PendingWrite {
        caller: &caller,
        resource: &resource,
        before: existing.as_ref(),
        data: Some(&data),
    };
    state.hooks.check(&state, &pending).await?;
    let temporary = path.with_extension("part");
    tokio::fs::write(&temporary, &bytes)
        .await
        .map_err(storage_error)?;
    tokio::fs::rename(&temporary, &path)
        .await
        .map_err(storage_error)?;

    // Given permissions replace those of the same name, as a PATCH of the record would.
    let mut permissions = store.permissions(&resource.uri()).await?;
    permissions.extend(given_permissions.unwrap_or_default());
    if let Some(user) = &caller.user_id {
        permissions
            .entry("write".into())
            .or_default()
            .insert(user.clone());
    }
    let precondition = existing.as_ref().map_or(Precondition::IfAbsent, |r| {
        Precondition::IfMatch(r.last_modified)
    });
    let write = Write {
        kind: Kind::Record,
        parent: resource.parent.clone(),
        id,
        data,
        permissions: Some(permissions),
        precondition,
        forced_timestamp: None,
    };
    match store.put(write).await {
        Ok((object, _)) => {
            let event = WriteEvent {
                caller: &caller,
                resource: &resource,
                before: existing.as_ref(),
                after: &object,
            };
            state.hooks.written(&state, &event).await?;
            if let Some(previous) = existing {
                remove_file(&state, &previous).await;
            }
            let mut response = (StatusCode::CREATED, Json(info)).into_response();
            if let Ok(location) = HeaderValue::from_str(uri.path().trim_end_matches("/attachment"))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Err(error) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(error.into())
        }
    }
}

/// `DELETE {record}/attachment`: removes the file and sets the record's `attachment` to null.
pub async fn delete(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    base_path(&state)?;
    let resource = record_of(uri.path())?;
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, &headers).await?;
    let store = state.store.as_ref();
    let id = resource.id.clone().unwrap_or_default();
    let Some(record) = store.get(Kind::Record, &resource.parent, &id).await? else {
        return Err(missing_or_forbidden(store, &caller, &resource).await);
    };
    if !allowed(store, &caller, &resource.permission_chain(), Action::Write).await? {
        return Err(KintoError::denied(&caller));
    }
    // kinto-attachment leaves `"attachment": null`, and deleting it again is no error.
    if record.data.get("attachment").is_none_or(Value::is_null) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut data = record.data.clone();
    data.insert("attachment".into(), Value::Null);
    let pending = PendingWrite {
        caller: &caller,
        resource: &resource,
        before: Some(&record),
        data: Some(&data),
    };
    state.hooks.check(&state, &pending).await?;
    let write = Write {
        kind: Kind::Record,
        parent: resource.parent.clone(),
        id,
        data,
        permissions: None,
        precondition: Precondition::IfMatch(record.last_modified),
        forced_timestamp: None,
    };
    let (object, _) = store.put(write).await?;
    let event = WriteEvent {
        caller: &caller,
        resource: &resource,
        before: Some(&record),
        after: &object,
    };
    state.hooks.written(&state, &event).await?;
    remove_file(&state, &record).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /attachments/{location}`: the file.
pub async fn serve(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, KintoError> {
    let base = base_path(&state)?;
    let relative = uri.path().trim_start_matches("/attachments/");
    let path = safe_join(&base, relative).ok_or_else(|| KintoError::not_found("attachment"))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| KintoError::not_found("attachment"))?;
    let mut response = (StatusCode::OK, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

fn storage_error(error: std::io::Error) -> KintoError {
    tracing::error!(%error, "storing an attachment failed");
    KintoError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Errno::Backend,
        "could not store the attachment",
    )
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_stay_under_the_base() {
        let base = Path::new("/data/attachments");
        assert_eq!(
            safe_join(base, "main/cfr/x.png"),
            Some(PathBuf::from("/data/attachments/main/cfr/x.png"))
        );
        assert_eq!(safe_join(base, "../etc/passwd"), None);
        assert_eq!(safe_join(base, "/etc/passwd"), None);
        assert_eq!(safe_join(base, "main/./x"), None);
        assert_eq!(extension("photo.PNG"), ".png");
        assert_eq!(extension("weird.p/ng"), "");
        assert_eq!(extension("noext"), "");
    }
}
