//! Packaged dumps: collections shipped with an application so it has data before its
//! first sync. A dump carries no signature and is trusted as shipped; it is loaded only
//! when it is newer than the local data, so it never replaces newer verified data, and the
//! next sync verifies the collection it became.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, now_ms};
use crate::local::{CollectionKey, HistoryEntry, LocalError, Records, SyncStatus};

/// The file format: Firefox's `services/settings/dumps/{bucket}/{collection}.json`.
#[derive(Deserialize)]
struct Dump {
    data: Vec<Value>,
    timestamp: u64,
}

impl Client {
    /// The dump file of a collection, if dumps are configured.
    fn dump_path(&self, key: &CollectionKey) -> Option<PathBuf> {
        let dir = self.config.dumps_dir.as_ref()?;
        Some(
            dir.join(&key.bucket)
                .join(format!("{}.json", key.collection)),
        )
    }

    /// [`load_dump_if_newer`](Self::load_dump_if_newer), the first time this client is
    /// asked about the collection only.
    pub(crate) fn consider_dump(&self, key: &CollectionKey) -> Result<(), LocalError> {
        if self.config.dumps_dir.is_none() {
            return Ok(());
        }
        let first_time = self
            .dumps_considered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        if first_time {
            self.load_dump_if_newer(key)?;
        }
        Ok(())
    }

    /// Loads the collection's packaged dump if there is one newer than the local data.
    /// Returns whether it did. A dump that cannot be read is logged and ignored: it must
    /// never stop a sync from bringing verified data.
    pub fn load_dump_if_newer(&self, key: &CollectionKey) -> Result<bool, LocalError> {
        let Some(path) = self.dump_path(key) else {
            return Ok(false);
        };
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the packaged dump");
                return Ok(false);
            }
        };
        let dump: Dump = match serde_json::from_slice(&text) {
            Ok(dump) => dump,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "the packaged dump is not valid");
                return Ok(false);
            }
        };
        if self
            .local
            .collection(key)?
            .is_some_and(|local| local.timestamp >= dump.timestamp)
        {
            return Ok(false);
        }
        let mut records = Records::new();
        for record in dump.data {
            if record.get("deleted").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            match record.get("id").and_then(Value::as_str) {
                Some(id) => {
                    records.insert(id.to_owned(), record.clone());
                }
                None => {
                    tracing::warn!(path = %path.display(), "the packaged dump has a record without an id");
                    return Ok(false);
                }
            }
        }
        let entry = HistoryEntry {
            at_ms: now_ms(),
            status: SyncStatus::DumpLoaded,
            detail: Some(path.display().to_string()),
            local_timestamp: None,
            remote_timestamp: Some(dump.timestamp),
            duration_ms: 0,
        };
        let loaded = self
            .local
            .load_dump(key, dump.timestamp, &records, &entry)?;
        if loaded {
            tracing::info!(collection = %key, timestamp = dump.timestamp, records = records.len(), "packaged dump loaded");
        }
        Ok(loaded)
    }
}
