//! Incremental sync of one collection against a local store.
//!
//! The loop of every Sync engine: download what changed since the last sync (`newer=`),
//! let the local side reconcile it, upload the local changes with `X-If-Unmodified-Since`
//! set to the collection time just seen, and move the engine's clock to the server's answer.
//! A 412 means another client wrote in between: download again, reconcile again, retry (a
//! few times). Tombstones travel as `{"id", "deleted": true}` records like any other.

use async_trait::async_trait;
use serde_json::Value;
use sync_proto::SyncTimestamp;

use crate::error::ClientError;
use crate::session::{Record, Session};

/// Attempts before a collection that keeps changing under the upload is given up for now.
const MAX_ATTEMPTS: usize = 3;

/// The local side of an engine.
#[async_trait]
pub trait LocalStore: Send {
    /// Merges records that changed on the server (tombstones included). The local side
    /// decides conflicts; a record it wants to override stays in its outgoing changes.
    async fn apply_incoming(&mut self, records: Vec<Record>) -> Result<(), ClientError>;

    /// Local changes to upload: cleartext objects with their `id` (tombstones as
    /// `{"id", "deleted": true}`).
    async fn outgoing(&mut self) -> Result<Vec<Value>, ClientError>;

    /// These ids were stored on the server at `modified`: no longer outgoing.
    async fn uploaded(
        &mut self,
        ids: &[String],
        modified: SyncTimestamp,
    ) -> Result<(), ClientError>;
}

/// An engine's position: the collection time of its last sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineState {
    /// Server time of the collection when this engine last synced.
    pub last_sync: SyncTimestamp,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Records downloaded and applied.
    pub downloaded: usize,
    /// Records uploaded.
    pub uploaded: usize,
    /// Times the upload met a 412 and the engine merged again.
    pub conflicts: usize,
}

/// Syncs `collection` with `local`, moving `state` forward.
pub async fn sync_collection(
    session: &Session,
    collection: &str,
    state: &mut EngineState,
    local: &mut dyn LocalStore,
) -> Result<SyncOutcome, ClientError> {
    let mut outcome = SyncOutcome::default();
    for attempt in 0..MAX_ATTEMPTS {
        let newer = (state.last_sync > SyncTimestamp::ZERO).then_some(state.last_sync);
        let (raw, collection_ts) = session.storage().get_records(collection, newer).await?;
        let mut incoming = Vec::with_capacity(raw.len());
        for bso in &raw {
            incoming.push(session.decrypt(collection, bso).await?);
        }
        outcome.downloaded += incoming.len();
        local.apply_incoming(incoming).await?;
        if collection_ts > state.last_sync {
            state.last_sync = collection_ts;
        }

        let changes = local.outgoing().await?;
        if changes.is_empty() {
            return Ok(outcome);
        }
        let mut bsos = Vec::with_capacity(changes.len());
        for cleartext in &changes {
            bsos.push(session.encrypt(collection, cleartext).await?);
        }
        let unmodified_since = Some(state.last_sync);
        match session
            .storage()
            .post_records(collection, &bsos, unmodified_since)
            .await
        {
            Ok(posted) => {
                let stored: Vec<String> = bsos
                    .iter()
                    .map(|b| b.id.clone())
                    .filter(|id| !posted.failed.contains_key(id))
                    .collect();
                local.uploaded(&stored, posted.modified).await?;
                outcome.uploaded += stored.len();
                state.last_sync = posted.modified;
                if !posted.failed.is_empty() {
                    tracing::warn!(collection, failed = ?posted.failed, "the server refused some records; they stay outgoing");
                }
                return Ok(outcome);
            }
            Err(ClientError::Conflict) => {
                outcome.conflicts += 1;
                tracing::info!(
                    collection,
                    attempt,
                    "412: another client wrote; merging again"
                );
            }
            Err(other) => return Err(other),
        }
    }
    Err(ClientError::Conflict)
}
