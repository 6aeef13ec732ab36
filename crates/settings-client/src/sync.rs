//! Syncing a collection, the decision of ADR 0009: the new state is computed in memory
//! (local records plus the changeset), verified, and written in one transaction only if
//! its signature verifies. A refused incremental sync is retried once with the full
//! changeset; if that is refused too, nothing is written and the failure is recorded.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::Value;

use crate::client::{Client, SyncError, now_ms};
use crate::local::{
    Change, CollectionKey, HistoryEntry, LocalCollection, LocalError, Records, Source, SyncStatus,
};
use crate::remote::{Changeset, MonitorChanges, RemoteError, parse};
use crate::verify::{IntegrityError, verify_collection};

/// What a successful sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// `Success` or `UpToDate`.
    pub status: SyncStatus,
    /// The records timestamp the local data is now at.
    pub timestamp: u64,
    /// How many records the collection holds now.
    pub records: usize,
    /// Set when the incremental sync was refused and the full changeset verified: why
    /// the first attempt failed.
    pub recovered_from: Option<String>,
}

/// The outcome of polling `monitor/changes` and syncing what changed.
#[derive(Debug, Default)]
pub struct PollReport {
    /// The collections synced, each with its result.
    pub synced: Vec<(CollectionKey, Result<SyncOutcome, SyncError>)>,
    /// How many listed collections were already up to date or not selected.
    pub skipped: usize,
}

impl PollReport {
    /// Whether every selected collection is now up to date.
    pub fn all_ok(&self) -> bool {
        self.synced.iter().all(|(_, result)| result.is_ok())
    }
}

/// How one attempt failed: integrity failures are retried, the others are not.
enum AttemptError {
    Integrity(IntegrityError),
    Other(SyncError),
}

impl<E: Into<SyncError>> From<E> for AttemptError {
    fn from(error: E) -> Self {
        AttemptError::Other(error.into())
    }
}

impl Client {
    /// Syncs one collection up to `expected` (the timestamp `monitor/changes` listed; None
    /// when unknown) and records the outcome in its history.
    pub async fn sync(
        &self,
        key: &CollectionKey,
        expected: Option<u64>,
    ) -> Result<SyncOutcome, SyncError> {
        let started = Instant::now();
        if !key.is_valid() {
            return Err(SyncError::UnknownCollection(key.clone()));
        }
        self.consider_dump(key)?;
        let local = self.local.collection(key)?;
        let result = self.sync_from(key, expected, local.as_ref(), started).await;
        let entry = |status, detail: Option<String>, remote| HistoryEntry {
            at_ms: now_ms(),
            status,
            detail,
            local_timestamp: local.as_ref().map(|l| l.timestamp),
            remote_timestamp: remote,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        match &result {
            // A success was recorded in the transaction that wrote it.
            Ok(outcome) if outcome.status == SyncStatus::Success => {}
            Ok(outcome) => {
                self.local
                    .record(key, &entry(outcome.status, None, Some(outcome.timestamp)))?;
            }
            Err(error) => {
                let remote = match error {
                    SyncError::Stale { remote, .. } => Some(*remote),
                    _ => None,
                };
                tracing::warn!(collection = %key, status = %error.status(), %error, "sync failed; local data kept");
                self.local
                    .record(key, &entry(error.status(), Some(error.to_string()), remote))?;
            }
        }
        result
    }

    async fn sync_from(
        &self,
        key: &CollectionKey,
        expected: Option<u64>,
        local: Option<&LocalCollection>,
        started: Instant,
    ) -> Result<SyncOutcome, SyncError> {
        if let (Some(expected), Some(local)) = (expected, local)
            && local.timestamp == expected
            && self.trusted(key, local)?
        {
            return Ok(SyncOutcome {
                status: SyncStatus::UpToDate,
                timestamp: expected,
                records: 0,
                recovered_from: None,
            });
        }
        match self.attempt(key, expected, local, false, started).await {
            Ok(outcome) => Ok(outcome),
            Err(AttemptError::Other(error)) => Err(error),
            // An unreachable chain says nothing about the data: a network or server error,
            // not retried with the full changeset.
            Err(AttemptError::Integrity(IntegrityError::ChainFetch { error, .. })) => {
                Err(SyncError::Remote(error))
            }
            Err(AttemptError::Integrity(first)) => {
                tracing::warn!(collection = %key, reason = first.reason(), %first, "refused; retrying with the full changeset");
                match self.attempt(key, expected, local, true, started).await {
                    Ok(mut outcome) => {
                        outcome.recovered_from = Some(format!("{}: {first}", first.reason()));
                        Ok(outcome)
                    }
                    Err(AttemptError::Other(error)) => Err(error),
                    Err(AttemptError::Integrity(IntegrityError::ChainFetch { error, .. })) => {
                        Err(SyncError::Remote(error))
                    }
                    Err(AttemptError::Integrity(retry)) => {
                        Err(SyncError::Integrity { first, retry })
                    }
                }
            }
        }
    }

    /// One attempt: incremental (`_since` the local timestamp) unless `full`.
    async fn attempt(
        &self,
        key: &CollectionKey,
        expected: Option<u64>,
        local: Option<&LocalCollection>,
        full: bool,
        started: Instant,
    ) -> Result<SyncOutcome, AttemptError> {
        let local_timestamp = local.map(|l| l.timestamp);
        let incremental = !full && local.is_some();
        let since = if incremental { local_timestamp } else { None };
        let changeset = self
            .fetch_changeset(key, expected.unwrap_or(0), since)
            .await?;
        // Older than what the client holds (a rollback), or than what monitor/changes
        // announced (a stale cache): refused, so the poll asks again next time.
        let floor = local_timestamp.max(expected);
        if let Some(floor) = floor
            && changeset.timestamp < floor
        {
            return Err(SyncError::Stale {
                local: floor,
                remote: changeset.timestamp,
            }
            .into());
        }
        let Changeset {
            metadata,
            timestamp,
            changes,
        } = changeset;
        let change_count = changes.len();

        // The new state, in memory: the local records (none for a full changeset), then
        // each change in order. Only this final state is verified and written.
        let mut records = if incremental {
            self.local.records(key)?
        } else {
            Records::new()
        };
        let mut touched = BTreeSet::new();
        for change in changes {
            let id = change
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| RemoteError::Parse("a change without an id".into()))?
                .to_owned();
            if change.get("deleted").and_then(Value::as_bool) == Some(true) {
                records.remove(&id);
            } else {
                records.insert(id.clone(), change);
            }
            touched.insert(id);
        }

        verify_collection(
            &self.remote,
            &self.local,
            &self.trust(&key.bucket),
            &records,
            timestamp,
            &metadata,
            now_ms() / 1000,
        )
        .await
        .map_err(AttemptError::Integrity)?;

        let change = if incremental {
            Change::Diff {
                records: &records,
                touched: &touched,
            }
        } else {
            Change::Full(&records)
        };
        let entry = HistoryEntry {
            at_ms: now_ms(),
            status: SyncStatus::Success,
            detail: full.then(|| "full changeset after a refused incremental sync".to_owned()),
            local_timestamp,
            remote_timestamp: Some(timestamp),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        match self
            .local
            .commit(key, local_timestamp, timestamp, &metadata, change, &entry)
        {
            Ok(()) => {}
            // Another process synced this collection meanwhile. If it reached this
            // version or a newer one, the collection is up to date; otherwise it is an
            // apply error and the next poll tries again.
            Err(LocalError::Concurrent) => {
                let now = self.local.collection(key)?.map(|c| c.timestamp);
                return match now {
                    Some(now) if now >= timestamp => Ok(SyncOutcome {
                        status: SyncStatus::UpToDate,
                        timestamp: now,
                        records: 0,
                        recovered_from: None,
                    }),
                    _ => Err(SyncError::Local(LocalError::Concurrent).into()),
                };
            }
            Err(error) => return Err(error.into()),
        }
        tracing::info!(collection = %key, timestamp, records = records.len(), changes = change_count, "synced");
        Ok(SyncOutcome {
            status: SyncStatus::Success,
            timestamp,
            records: records.len(),
            recovered_from: None,
        })
    }

    /// Whether the local copy can be taken as up to date without asking the server: it
    /// came from a verified sync and nothing has failed since (a failed read-time
    /// verification, for one, must lead to a full sync that repairs it).
    fn trusted(&self, key: &CollectionKey, local: &LocalCollection) -> Result<bool, SyncError> {
        let last_ok = self
            .local
            .history(key, 1)?
            .first()
            .is_none_or(|entry| entry.status.is_success());
        Ok(local.source == Source::Sync && last_ok)
    }

    async fn fetch_changeset(
        &self,
        key: &CollectionKey,
        expected: u64,
        since: Option<u64>,
    ) -> Result<Changeset, SyncError> {
        let url = self
            .remote
            .changeset_url(&key.bucket, &key.collection, expected, since)?;
        let body = match self.fetch(url).await {
            Err(SyncError::Remote(RemoteError::Status {
                status: 401 | 403 | 404,
                ..
            })) => return Err(SyncError::UnknownCollection(key.clone())),
            other => other?,
        };
        Ok(parse(&body, "changeset")?)
    }

    /// Polls `monitor/changes` and syncs every listed collection that `select` accepts
    /// and whose timestamp differs from the local one. The poll's timestamp is kept (and
    /// sent as `_since` next time) only when every selected collection synced.
    pub async fn poll(
        &self,
        select: impl Fn(&CollectionKey) -> bool,
    ) -> Result<PollReport, SyncError> {
        let since = self
            .local
            .state(MONITOR_TIMESTAMP)?
            .and_then(|v| v.parse().ok());
        let monitor = match self.monitor(since).await {
            Ok(monitor) => monitor,
            Err(error) => {
                // The collections held can no longer be said to be current.
                self.record_for_held(&select, &error)?;
                return Err(error);
            }
        };
        let mut report = PollReport::default();
        for entry in &monitor.changes {
            let key = CollectionKey::new(&entry.bucket, &entry.collection);
            if !key.is_valid() {
                tracing::warn!(bucket = %entry.bucket, collection = %entry.collection, "monitor/changes lists an invalid collection name; ignored");
                report.skipped += 1;
                continue;
            }
            let current = self.local.collection(&key)?;
            let current_and_trusted = match &current {
                Some(c) => c.timestamp == entry.last_modified && self.trusted(&key, c)?,
                None => false,
            };
            if !select(&key) || current_and_trusted {
                report.skipped += 1;
                continue;
            }
            let result = self.sync(&key, Some(entry.last_modified)).await;
            report.synced.push((key, result));
        }
        if report.all_ok() {
            self.local
                .set_state(MONITOR_TIMESTAMP, Some(&monitor.timestamp.to_string()))?;
        }
        Ok(report)
    }

    /// Syncs one collection, asking `monitor/changes` first for the timestamp to expect
    /// (so the changeset request hits the CDN's long-lived cache entry).
    pub async fn sync_one(&self, key: &CollectionKey) -> Result<SyncOutcome, SyncError> {
        let expected = match self.monitor(None).await {
            Ok(monitor) => monitor
                .changes
                .iter()
                .find(|e| e.bucket == key.bucket && e.collection == key.collection)
                .map(|e| e.last_modified),
            Err(error @ SyncError::Backoff { .. }) => {
                let entry = HistoryEntry {
                    at_ms: now_ms(),
                    status: error.status(),
                    detail: Some(error.to_string()),
                    local_timestamp: self.local.collection(key)?.map(|c| c.timestamp),
                    remote_timestamp: None,
                    duration_ms: 0,
                };
                self.local.record(key, &entry)?;
                return Err(error);
            }
            // A collection that is not publicly listed can still be synced directly.
            Err(_) => None,
        };
        self.sync(key, expected).await
    }

    /// Records a failed poll in the history of every held collection `select` accepts.
    fn record_for_held(
        &self,
        select: &impl Fn(&CollectionKey) -> bool,
        error: &SyncError,
    ) -> Result<(), SyncError> {
        for (key, state, _) in self.local.collections()? {
            if select(&key) {
                let entry = HistoryEntry {
                    at_ms: now_ms(),
                    status: error.status(),
                    detail: Some(format!("polling monitor/changes: {error}")),
                    local_timestamp: Some(state.timestamp),
                    remote_timestamp: None,
                    duration_ms: 0,
                };
                self.local.record(&key, &entry)?;
            }
        }
        Ok(())
    }

    async fn monitor(&self, since: Option<u64>) -> Result<MonitorChanges, SyncError> {
        let body = self.fetch(self.remote.monitor_url(since)?).await?;
        Ok(parse(&body, "monitor/changes")?)
    }
}

/// The state key of the last fully synced monitor timestamp.
const MONITOR_TIMESTAMP: &str = "monitor_timestamp";
