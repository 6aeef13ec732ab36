//! Kinto's history plugin, which Remote Settings runs: every write of a bucket, group,
//! collection or record leaves an entry in its bucket's history, listed (and purged) at
//! `/v1/buckets/{bid}/history` with the usual list filters. Kinto Admin's history tabs and
//! its "latest approvals" read it.
//!
//! An entry is what Kinto writes: `action` (`create`, `update`, `delete`), `uri`,
//! `resource_name`, the object's ids (`collection_id`, `record_id`, ...), `user_id`,
//! `date`, and `target` (the object and its permissions after the write). Entries are
//! objects of kind `History` under the bucket, so the list endpoints serve them; each
//! entry is readable by whoever could read the bucket, the collection or the object when
//! it was written (Kinto's explicit permissions on entries), and the bucket's readers see
//! them all.
//!
//! Deleting a bucket deletes its history with everything else in it, and leaves no entry.
//! The review workflow's own writes (published copies, signatures, the source's status and
//! tracking fields) are recorded too, as Kinto's are: the workflow announces them as writes
//! of its plugin user (`plugin:remote-settings`), after the editor's or reviewer's write
//! that caused them.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use settings_store::{Kind, Permissions, Precondition, Write};

use crate::auth::EVERYONE;
use crate::error::KintoError;
use crate::hooks::{Hooks, PendingWrite, WriteEvent};
use crate::state::SettingsState;

/// The hooks of a server with history: records every write, then lets `inner` (the review
/// workflow, or nothing) act.
pub struct Recorder {
    inner: Arc<dyn Hooks>,
}

impl Recorder {
    /// History around `inner`.
    pub fn around(inner: Arc<dyn Hooks>) -> Self {
        Recorder { inner }
    }
}

#[async_trait]
impl Hooks for Recorder {
    async fn check(
        &self,
        state: &SettingsState,
        write: &PendingWrite<'_>,
    ) -> Result<(), KintoError> {
        self.inner.check(state, write).await
    }

    async fn written(
        &self,
        state: &SettingsState,
        event: &WriteEvent<'_>,
    ) -> Result<(), KintoError> {
        // The write committed: its entry is recorded whatever the plugin then does.
        record(state, event).await?;
        self.inner.written(state, event).await
    }

    fn routes(&self) -> axum::Router<SettingsState> {
        self.inner.routes()
    }

    async fn health(&self, state: &SettingsState) -> Vec<(String, bool)> {
        self.inner.health(state).await
    }

    fn capabilities(&self) -> Vec<(String, Value)> {
        let mut capabilities = self.inner.capabilities();
        capabilities.push((
            "history".to_owned(),
            json!({
                "description": "Track changes on data.",
                "url": "http://kinto.readthedocs.io/en/latest/api/1.x/history.html",
            }),
        ));
        capabilities
    }
}

/// The bucket id and the entry's id fields of an object URI, or None for what has no
/// history (accounts, history entries themselves).
fn ids_of(kind: Kind, uri: &str) -> Option<(String, Vec<(&'static str, String)>)> {
    let parts: Vec<&str> = uri.trim_start_matches('/').split('/').collect();
    match (kind, parts.as_slice()) {
        (Kind::Bucket, ["buckets", b]) => Some((b.to_string(), vec![("bucket_id", b.to_string())])),
        (Kind::Collection, ["buckets", b, "collections", c]) => {
            Some((b.to_string(), vec![("collection_id", c.to_string())]))
        }
        (Kind::Group, ["buckets", b, "groups", g]) => {
            Some((b.to_string(), vec![("group_id", g.to_string())]))
        }
        (Kind::Record, ["buckets", b, "collections", c, "records", r]) => Some((
            b.to_string(),
            vec![
                ("collection_id", c.to_string()),
                ("record_id", r.to_string()),
            ],
        )),
        _ => None,
    }
}

/// Who may read an entry: whoever may read the bucket, the collection (for a record) or
/// the object itself.
fn readers(sources: &[&Permissions]) -> BTreeSet<String> {
    sources
        .iter()
        .flat_map(|permissions| ["read", "write"].map(|name| permissions.get(name)))
        .flatten()
        .flatten()
        .cloned()
        .collect()
}

/// Writes the history entry of one committed write.
async fn record(state: &SettingsState, event: &WriteEvent<'_>) -> Result<(), KintoError> {
    let resource = event.resource.with_id(&event.after.id);
    let uri = resource.uri();
    let Some((bucket, ids)) = ids_of(resource.kind, &uri) else {
        return Ok(());
    };
    let action = match (event.before, event.after.deleted) {
        (_, true) => "delete",
        (None, false) => "create",
        (Some(_), false) => "update",
    };
    if resource.kind == Kind::Bucket && action == "delete" {
        // Its history went with it.
        return Ok(());
    }
    let store = state.store.as_ref();
    let bucket_uri = format!("/buckets/{bucket}");
    let own = store.permissions(&uri).await?;
    let bucket_permissions = store.permissions(&bucket_uri).await?;
    let collection_permissions = match resource.kind {
        Kind::Record => store.permissions(&resource.parent).await?,
        _ => Permissions::new(),
    };
    let target_permissions: Map<String, Value> = own
        .iter()
        .map(|(name, principals)| (name.clone(), json!(principals)))
        .collect();
    let mut entry = Map::new();
    entry.insert("action".into(), action.into());
    entry.insert("uri".into(), uri.clone().into());
    entry.insert("resource_name".into(), resource.kind_name().into());
    entry.insert(
        "user_id".into(),
        event.caller.user_id.as_deref().unwrap_or(EVERYONE).into(),
    );
    entry.insert(
        "date".into(),
        crate::dates::iso8601(std::time::SystemTime::now()).into(),
    );
    for (name, id) in ids {
        entry.insert(name.into(), id.into());
    }
    entry.insert(
        "target".into(),
        json!({"data": event.after.to_json(), "permissions": target_permissions}),
    );
    let mut permissions = Permissions::new();
    permissions.insert(
        "read".into(),
        readers(&[&bucket_permissions, &collection_permissions, &own]),
    );
    store
        .put(Write {
            kind: Kind::History,
            parent: bucket_uri,
            id: entry_id(),
            data: entry,
            permissions: Some(permissions),
            precondition: Precondition::None,
            forced_timestamp: None,
        })
        .await?;
    Ok(())
}

/// A random UUID (version 4), as Kinto's entry ids.
fn entry_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_the_objects_ids() {
        let (bucket, ids) = ids_of(Kind::Record, "/buckets/b/collections/c/records/r").unwrap();
        assert_eq!(bucket, "b");
        assert_eq!(
            ids,
            [
                ("collection_id", "c".to_owned()),
                ("record_id", "r".to_owned())
            ]
        );
        assert_eq!(
            ids_of(Kind::Bucket, "/buckets/b").unwrap().1,
            [("bucket_id", "b".to_owned())]
        );
        assert!(ids_of(Kind::Account, "/accounts/a").is_none());
        assert_eq!(entry_id().len(), 36);
    }
}
