//! The workflow's own writes, announced afterwards as writes of the plugin user.
//!
//! Kinto's review plugin writes through the storage layer, then notifies each write as a
//! resource event of its user `plugin:remote-settings`, so every other listener sees it:
//! the history plugin records the published copies, the signatures and the source's status
//! and tracking fields (Kinto Admin's history tabs and "latest approvals" show them; its
//! "show signer plugin" filter hides them by that user id). The plugin's own listeners
//! ignore that user, which keeps a plugin write from starting the workflow again.
//!
//! [`Journal`] is a store that notes every write made through it, with the object before
//! and after; [`Workflow::announce`](super::Workflow) hands them to the server's hooks.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use settings_store::{
    Kind, Object, Permissions, Precondition, RawObject, SettingsStore, StoreError, StoreLock, Write,
};

use crate::auth::{Caller, EVERYONE};
use crate::resource::Resource;

/// One write the plugin made.
#[derive(Debug)]
pub(super) struct PluginWrite {
    /// The object written.
    pub resource: Resource,
    /// It before the write, if it existed.
    pub before: Option<Object>,
    /// It after the write (a tombstone for a delete).
    pub after: Object,
}

/// A store that passes every call through and notes the writes.
pub(super) struct Journal {
    store: Arc<dyn SettingsStore>,
    written: Mutex<Vec<PluginWrite>>,
}

impl Journal {
    /// A journal over `store`, with nothing noted yet.
    pub fn new(store: Arc<dyn SettingsStore>) -> Self {
        Journal {
            store,
            written: Mutex::new(Vec::new()),
        }
    }

    /// The writes noted so far, in the order they were made.
    pub fn take(&self) -> Vec<PluginWrite> {
        std::mem::take(&mut *self.written.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn note(&self, kind: Kind, parent: &str, before: Option<Object>, after: Object) {
        let resource = Resource {
            kind,
            parent: parent.to_owned(),
            id: Some(after.id.clone()),
        };
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PluginWrite {
                resource,
                before,
                after,
            });
    }
}

/// The caller the plugin's writes are announced as: `user_id` alone.
pub(super) fn plugin_caller(user_id: &str) -> Caller {
    Caller {
        user_id: Some(user_id.to_owned()),
        principals: vec![EVERYONE.to_owned(), user_id.to_owned()],
    }
}

#[async_trait]
impl SettingsStore for Journal {
    async fn get(&self, kind: Kind, parent: &str, id: &str) -> Result<Option<Object>, StoreError> {
        self.store.get(kind, parent, id).await
    }

    async fn list(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<Object>, StoreError> {
        self.store.list(kind, parent, include_deleted).await
    }

    async fn list_raw(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<RawObject>, StoreError> {
        self.store.list_raw(kind, parent, include_deleted).await
    }

    async fn timestamp(&self, kind: Kind, parent: &str) -> Result<i64, StoreError> {
        self.store.timestamp(kind, parent).await
    }

    async fn put(&self, write: Write) -> Result<(Object, bool), StoreError> {
        let (kind, parent) = (write.kind, write.parent.clone());
        let before = self.store.get(kind, &parent, &write.id).await?;
        let (after, created) = self.store.put(write).await?;
        self.note(kind, &parent, before.filter(|_| !created), after.clone());
        Ok((after, created))
    }

    async fn delete(
        &self,
        kind: Kind,
        parent: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<Object, StoreError> {
        let before = self.store.get(kind, parent, id).await?;
        let tombstone = self.store.delete(kind, parent, id, precondition).await?;
        self.note(kind, parent, before, tombstone.clone());
        Ok(tombstone)
    }

    async fn delete_many(
        &self,
        kind: Kind,
        parent: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<Object>, StoreError> {
        let mut live: std::collections::HashMap<String, Object> = self
            .store
            .list(kind, parent, false)
            .await?
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect();
        let tombstones = self.store.delete_many(kind, parent, ids).await?;
        for tombstone in &tombstones {
            self.note(kind, parent, live.remove(&tombstone.id), tombstone.clone());
        }
        Ok(tombstones)
    }

    async fn permissions(&self, uri: &str) -> Result<Permissions, StoreError> {
        self.store.permissions(uri).await
    }

    async fn permissions_of(
        &self,
        principals: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.store.permissions_of(principals).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.store.flush().await
    }

    async fn lock(&self, name: &str) -> Result<StoreLock, StoreError> {
        self.store.lock(name).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.store.check().await
    }
}
