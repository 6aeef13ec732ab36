//! An in-memory local side for engines: id → (cleartext, when, changed), where incoming
//! records and tombstones are applied unless the local copy is newer.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use async_trait::async_trait;
use serde_json::Value;
use sync_client::ClientError;
use sync_client::engine::{EngineState, LocalStore, SyncOutcome, sync_collection};
use sync_client::session::{Record, Session};
use sync_client::tier::tombstone;
use sync_proto::SyncTimestamp;

/// One local item (a tombstone when deleted).
#[derive(Debug, Clone)]
struct Item {
    cleartext: Value,
    /// Server time for synced items, local time of the edit for local changes.
    modified: SyncTimestamp,
    /// Still to upload.
    changed: bool,
}

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
pub struct MemoryStore {
    items: BTreeMap<String, Item>,
    /// Run once, when the engine asks for the outgoing changes (after it read the server).
    before_upload: Option<Hook>,
}

impl MemoryStore {
    /// A local creation or change (`cleartext` carries its `id`).
    pub fn edit(&mut self, cleartext: Value) {
        let id = cleartext["id"]
            .as_str()
            .expect("a record has an id")
            .to_owned();
        self.items.insert(
            id,
            Item {
                cleartext,
                modified: SyncTimestamp::now(),
                changed: true,
            },
        );
    }

    /// A local deletion: a tombstone to upload.
    pub fn delete(&mut self, id: &str) {
        self.edit(tombstone(id));
    }

    /// The live items (tombstones left out), by id.
    pub fn live(&self) -> BTreeMap<String, Value> {
        self.items
            .iter()
            .filter(|(_, item)| {
                !item
                    .cleartext
                    .get("deleted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .map(|(id, item)| (id.clone(), item.cleartext.clone()))
            .collect()
    }

    /// Ids still to upload.
    pub fn pending(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|(_, item)| item.changed)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Runs `hook` once, between the engine's download and its upload.
    pub fn before_upload(&mut self, hook: impl Future<Output = ()> + Send + 'static) {
        self.before_upload = Some(Box::pin(hook));
    }
}

#[async_trait]
impl LocalStore for MemoryStore {
    async fn apply_incoming(&mut self, records: Vec<Record>) -> Result<(), ClientError> {
        for record in records {
            let local_is_newer = self
                .items
                .get(&record.id)
                .is_some_and(|local| local.changed && local.modified > record.modified);
            if !local_is_newer {
                let item = Item {
                    cleartext: record.cleartext,
                    modified: record.modified,
                    changed: false,
                };
                self.items.insert(record.id, item);
            }
        }
        Ok(())
    }

    async fn outgoing(&mut self) -> Result<Vec<Value>, ClientError> {
        if let Some(hook) = self.before_upload.take() {
            hook.await;
        }
        Ok(self
            .items
            .values()
            .filter(|item| item.changed)
            .map(|item| item.cleartext.clone())
            .collect())
    }

    async fn uploaded(
        &mut self,
        ids: &[String],
        modified: SyncTimestamp,
    ) -> Result<(), ClientError> {
        for id in ids {
            if let Some(item) = self.items.get_mut(id) {
                item.changed = false;
                item.modified = modified;
            }
        }
        Ok(())
    }
}

/// A device: a client, its local store and its engine state for one collection.
pub struct Peer<C> {
    pub client: C,
    pub collection: &'static str,
    pub store: MemoryStore,
    pub state: EngineState,
}

impl<C: Deref<Target = Session>> Peer<C> {
    pub fn new(client: C, collection: &'static str) -> Self {
        Peer {
            client,
            collection,
            store: MemoryStore::default(),
            state: EngineState::default(),
        }
    }

    pub async fn sync(&mut self) -> SyncOutcome {
        sync_collection(
            &self.client,
            self.collection,
            &mut self.state,
            &mut self.store,
        )
        .await
        .unwrap_or_else(|error| panic!("syncing {} failed: {error}", self.collection))
    }
}
