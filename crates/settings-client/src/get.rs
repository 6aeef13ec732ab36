//! Reading a collection, as Firefox's `RemoteSettingsClient.get()` offers: equality
//! filters, ordering, and the choices of ADR 0009: fail when the last sync failed
//! (instead of answering possibly stale or empty data), and verify the local data
//! against its stored signature before answering it.

use std::cmp::Ordering;

use serde_json::Value;

use crate::client::{Client, now_ms};
use crate::local::{CollectionKey, HistoryEntry, LocalError, Source, SyncStatus};
use crate::verify::{IntegrityError, verify_collection};

/// How far back `fail_if_sync_failed` looks past `dump_loaded` entries for the last sync.
const HISTORY_LOOKBACK: usize = 100;

/// Options of [`Client::get`].
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Keep records whose field at each filter's path equals one of its values.
    pub filters: Vec<Filter>,
    /// Sort by this dotted field path; a leading `-` sorts descending.
    pub order: Option<String>,
    /// Fail with [`GetError::LastSyncFailed`] when the collection's last sync failed, and
    /// with [`GetError::NeverSynced`] when the client holds nothing of it.
    pub fail_if_sync_failed: bool,
    /// Verify the local data against its stored signature before answering.
    pub verify: bool,
    /// Sync first when the client holds nothing of the collection.
    pub sync_if_empty: bool,
}

/// An equality filter: the value at `path` (dotted) must equal one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The field path, e.g. `["attachment", "mimetype"]`.
    pub path: Vec<String>,
    /// Accepted values (more than one: any of them).
    pub values: Vec<Value>,
}

impl Filter {
    /// A filter on a dotted path.
    pub fn new(path: &str, values: Vec<Value>) -> Self {
        Self {
            path: path.split('.').map(str::to_owned).collect(),
            values,
        }
    }

    fn matches(&self, record: &Value) -> bool {
        lookup(record, &self.path).is_some_and(|v| self.values.contains(v))
    }
}

/// Why `get` did not answer records.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The last sync of the collection failed (asked for with `fail_if_sync_failed`).
    #[error("the last sync of {key} failed ({}): {}", entry.status, entry.detail.as_deref().unwrap_or(""))]
    LastSyncFailed {
        /// The collection.
        key: CollectionKey,
        /// The failed sync.
        entry: HistoryEntry,
    },
    /// The client holds nothing of the collection (asked for with
    /// `fail_if_sync_failed`).
    #[error("{0} has never been synced")]
    NeverSynced(CollectionKey),
    /// The local data does not verify against its stored signature (asked for with
    /// `verify`). The next sync replaces it.
    #[error("the local data of {key} does not verify: {error}")]
    Corrupted {
        /// The collection.
        key: CollectionKey,
        /// Why.
        error: IntegrityError,
    },
    /// `verify` was asked for data that came from a packaged dump, which carries no
    /// signature until a sync has verified the collection.
    #[error("the local data of {0} comes from a packaged dump and has not been verified yet")]
    Unverifiable(CollectionKey),
    /// The local database failed.
    #[error("{0}")]
    Local(#[from] LocalError),
}

impl Client {
    /// The records of a collection, filtered and sorted; see [`GetOptions`].
    pub async fn get(
        &self,
        key: &CollectionKey,
        options: &GetOptions,
    ) -> Result<Vec<Value>, GetError> {
        self.consider_dump(key)?;
        if options.sync_if_empty && self.local.collection(key)?.is_none() {
            // The outcome is in the history, which the checks below read.
            let _ = self.sync_one(key).await;
        }
        if options.fail_if_sync_failed {
            // A dump loaded after a failed sync does not make the sync a success.
            let last_sync = self
                .local
                .history(key, HISTORY_LOOKBACK)?
                .into_iter()
                .find(|entry| entry.status != SyncStatus::DumpLoaded);
            match last_sync {
                Some(entry) if !entry.status.is_success() => {
                    return Err(GetError::LastSyncFailed {
                        key: key.clone(),
                        entry,
                    });
                }
                _ if self.local.collection(key)?.is_none() => {
                    return Err(GetError::NeverSynced(key.clone()));
                }
                _ => {}
            }
        }
        let records = match self.local.snapshot(key)? {
            Some((state, records)) => {
                if options.verify {
                    self.verify_local(key, &state, &records).await?;
                }
                records
            }
            None => crate::local::Records::new(),
        };
        let mut selected: Vec<Value> = records
            .into_values()
            .filter(|r| options.filters.iter().all(|f| f.matches(r)))
            .collect();
        if let Some(order) = &options.order {
            let (descending, field) = match order.strip_prefix('-') {
                Some(field) => (true, field),
                None => (false, order.as_str()),
            };
            let path: Vec<String> = field.split('.').map(str::to_owned).collect();
            selected.sort_by(|a, b| {
                let ordering = compare(lookup(a, &path), lookup(b, &path));
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        Ok(selected)
    }

    /// Verifies records and the state they were read with (one snapshot, so a sync
    /// committing meanwhile cannot make valid data look corrupt).
    async fn verify_local(
        &self,
        key: &CollectionKey,
        state: &crate::local::LocalCollection,
        records: &crate::local::Records,
    ) -> Result<(), GetError> {
        let metadata = match (&state.metadata, state.source) {
            (Some(metadata), Source::Sync) => metadata,
            _ => return Err(GetError::Unverifiable(key.clone())),
        };
        let verified = verify_collection(
            &self.remote,
            &self.local,
            &self.trust(&key.bucket),
            records,
            state.timestamp,
            metadata,
            now_ms() / 1000,
        )
        .await;
        if let Err(error) = verified {
            tracing::error!(collection = %key, reason = error.reason(), "local data does not verify");
            self.local.record(
                key,
                &HistoryEntry {
                    at_ms: now_ms(),
                    status: SyncStatus::CorruptionError,
                    detail: Some(error.to_string()),
                    local_timestamp: Some(state.timestamp),
                    remote_timestamp: None,
                    duration_ms: 0,
                },
            )?;
            return Err(GetError::Corrupted {
                key: key.clone(),
                error,
            });
        }
        Ok(())
    }
}

fn lookup<'a>(record: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(record, |value, segment| value.get(segment.as_str()))
}

/// Orders JSON values: numbers numerically, strings and booleans naturally, values of
/// different kinds by kind, missing values last.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match (a, b) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_follow_dotted_paths_and_accept_any_listed_value() {
        let record = json!({"id": "a", "attachment": {"mimetype": "text/plain"}, "n": 2});
        assert!(Filter::new("attachment.mimetype", vec![json!("text/plain")]).matches(&record));
        assert!(Filter::new("n", vec![json!(1), json!(2)]).matches(&record));
        assert!(!Filter::new("n", vec![json!("2")]).matches(&record));
        assert!(!Filter::new("missing.path", vec![json!(null)]).matches(&record));
    }

    #[test]
    fn ordering_is_numeric_for_numbers_and_puts_missing_last() {
        let (two, ten) = (json!(2), json!(10));
        assert_eq!(compare(Some(&two), Some(&ten)), Ordering::Less);
        assert_eq!(compare(None, Some(&two)), Ordering::Greater);
        assert_eq!(
            compare(Some(&json!("b")), Some(&json!("a"))),
            Ordering::Greater
        );
    }
}
