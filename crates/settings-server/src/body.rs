//! Request bodies: `{"data": {...}, "permissions": {...}}`, read within the size limit.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};
use settings_store::Permissions;

use crate::error::{Errno, KintoError};

/// The permission names an object may carry.
const PERMISSION_NAMES: [&str; 7] = [
    "read",
    "write",
    "bucket:create",
    "collection:create",
    "group:create",
    "record:create",
    "account:create",
];

/// How a PATCH body is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// Kinto's default: top-level fields replaced.
    Shallow,
    /// RFC 7396 JSON merge patch.
    MergePatch,
    /// RFC 6902 JSON Patch, over `{"data": ..., "permissions": ...}`.
    JsonPatch,
}

/// A parsed object body.
#[derive(Debug, Default)]
pub struct ObjectBody {
    /// `data`, if given.
    pub data: Option<Map<String, Value>>,
    /// `permissions`, if given.
    pub permissions: Option<Permissions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    permissions: Option<BTreeMap<String, Vec<String>>>,
}

/// Parses a body (an empty body is an empty object body).
pub fn parse(headers: &HeaderMap, bytes: &Bytes) -> Result<ObjectBody, KintoError> {
    if bytes.is_empty() {
        return Ok(ObjectBody::default());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !matches!(
        media,
        "application/json" | "application/merge-patch+json" | ""
    ) {
        return Err(KintoError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Errno::InvalidParameter,
            format!("Content-Type {media:?} is not supported"),
        ));
    }
    let raw: RawBody = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            KintoError::invalid_data("body", e.to_string())
        } else {
            KintoError::invalid_data("body", format!("Invalid JSON: {e}"))
        }
    })?;
    let data = match raw.data {
        None => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(KintoError::invalid_data("data", "must be an object")),
    };
    let permissions = raw.permissions.map(checked_permissions).transpose()?;
    Ok(ObjectBody { data, permissions })
}

/// Permissions given by a client, refused if one is not a permission Kinto knows.
fn checked_permissions(given: BTreeMap<String, Vec<String>>) -> Result<Permissions, KintoError> {
    let mut permissions = Permissions::new();
    for (name, principals) in given {
        if !PERMISSION_NAMES.contains(&name.as_str()) {
            return Err(KintoError::invalid_data(
                &format!("permissions.{name}"),
                "unknown permission",
            ));
        }
        permissions.insert(name, principals.into_iter().collect::<BTreeSet<_>>());
    }
    Ok(permissions)
}

/// The `permissions` part of an attachment upload: `{name: [principals]}` as JSON text.
pub fn parse_permissions(text: &str) -> Result<Permissions, KintoError> {
    let given: BTreeMap<String, Vec<String>> = serde_json::from_str(text).map_err(|e| {
        KintoError::invalid_data(
            "permissions",
            format!("is not valid JSON permissions ({e})"),
        )
    })?;
    checked_permissions(given)
}

/// The PATCH flavour named by the Content-Type.
pub fn patch_kind(headers: &HeaderMap) -> PatchKind {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/merge-patch+json") {
        PatchKind::MergePatch
    } else if content_type.starts_with("application/json-patch+json") {
        PatchKind::JsonPatch
    } else {
        PatchKind::Shallow
    }
}

/// Applies a PATCH to stored fields.
pub fn apply_patch(current: &mut Map<String, Value>, patch: Map<String, Value>, kind: PatchKind) {
    for (key, value) in patch {
        if key == "id" || key == "last_modified" {
            continue;
        }
        match (kind, value) {
            (PatchKind::MergePatch, Value::Null) => {
                current.remove(&key);
            }
            (PatchKind::MergePatch, Value::Object(inner)) => {
                let slot = current
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    apply_patch(existing, inner, PatchKind::MergePatch);
                }
            }
            (_, value) => {
                current.insert(key, value);
            }
        }
    }
}

/// Applies an RFC 6902 patch to `{"data": fields, "permissions": {name: [principals]}}`,
/// as Kinto does (paths like `/data/title` or `/permissions/read/system.Everyone`).
pub fn apply_json_patch(
    fields: &Map<String, Value>,
    permissions: &Permissions,
    bytes: &Bytes,
) -> Result<(Map<String, Value>, Permissions), KintoError> {
    let patch: json_patch::Patch = serde_json::from_slice(bytes)
        .map_err(|e| KintoError::invalid_data("body", format!("not a JSON Patch: {e}")))?;
    // Principals are members of sets: Kinto addresses them as object keys. Every
    // permission is there, empty when nobody holds it, so that adding the first principal
    // (`/permissions/read/system.Everyone`) needs no parent created first.
    let mut perms: Map<String, Value> = PERMISSION_NAMES
        .iter()
        .map(|name| ((*name).to_owned(), Value::Object(Map::new())))
        .collect();
    for (name, principals) in permissions {
        let members: Map<String, Value> = principals
            .iter()
            .map(|p| (p.clone(), Value::Bool(true)))
            .collect();
        perms.insert(name.clone(), Value::Object(members));
    }
    let mut document = serde_json::json!({ "data": Value::Object(fields.clone()), "permissions": Value::Object(perms) });
    json_patch::patch(&mut document, &patch)
        .map_err(|e| KintoError::invalid_data("body", e.to_string()))?;
    let data = match document.get("data") {
        Some(Value::Object(map)) => map.clone(),
        _ => return Err(KintoError::invalid_data("data", "must stay an object")),
    };
    let mut result = Permissions::new();
    if let Some(Value::Object(perms)) = document.get("permissions") {
        for (name, members) in perms {
            if !PERMISSION_NAMES.contains(&name.as_str()) {
                return Err(KintoError::invalid_data(
                    &format!("permissions.{name}"),
                    "unknown permission",
                ));
            }
            let set: BTreeSet<String> = match members {
                Value::Object(map) => map.keys().cloned().collect(),
                Value::Array(list) => list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => BTreeSet::new(),
            };
            if !set.is_empty() || permissions.contains_key(name) {
                result.insert(name.clone(), set);
            }
        }
    }
    Ok((data, result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn patches() {
        let mut shallow = map(json!({"a": {"x": 1, "y": 2}, "b": 1}));
        apply_patch(
            &mut shallow,
            map(json!({"a": {"x": 5}, "b": null})),
            PatchKind::Shallow,
        );
        assert_eq!(Value::Object(shallow), json!({"a": {"x": 5}, "b": null}));
        let mut merge = map(json!({"a": {"x": 1, "y": 2}, "b": 1}));
        apply_patch(
            &mut merge,
            map(json!({"a": {"x": 5}, "b": null})),
            PatchKind::MergePatch,
        );
        assert_eq!(Value::Object(merge), json!({"a": {"x": 5, "y": 2}}));
    }

    #[test]
    fn json_patches_fields_and_permissions() {
        let fields = map(json!({"a": 1, "list": [1]}));
        let mut perms = Permissions::new();
        perms.insert(
            "write".into(),
            ["account:a".to_owned()].into_iter().collect(),
        );
        let patch = Bytes::from(
            r#"[{"op": "replace", "path": "/data/a", "value": 2},
                {"op": "add", "path": "/data/list/-", "value": 2},
                {"op": "add", "path": "/permissions/read", "value": {}},
                {"op": "add", "path": "/permissions/read/system.Everyone", "value": true}]"#,
        );
        let (data, perms) = apply_json_patch(&fields, &perms, &patch).unwrap();
        assert_eq!(Value::Object(data), json!({"a": 2, "list": [1, 2]}));
        assert!(perms["read"].contains("system.Everyone"));
        let bad = Bytes::from(r#"[{"op": "remove", "path": "/data/missing"}]"#);
        assert!(apply_json_patch(&fields, &Permissions::new(), &bad).is_err());
    }

    #[test]
    fn parses_bodies() {
        let headers = HeaderMap::new();
        let body = parse(
            &headers,
            &Bytes::from(r#"{"data": {"a": 1}, "permissions": {"read": ["system.Everyone"]}}"#),
        )
        .unwrap();
        assert_eq!(body.data.unwrap()["a"], 1);
        assert!(body.permissions.unwrap()["read"].contains("system.Everyone"));
        assert!(parse(&headers, &Bytes::from("{nope")).is_err());
        assert!(parse(&headers, &Bytes::from(r#"{"data": 5}"#)).is_err());
        assert!(parse(&headers, &Bytes::from(r#"{"permissions": {"delete": []}}"#)).is_err());
        assert!(parse(&headers, &Bytes::from(r#"{"other": 1}"#)).is_err());
    }
}
