//! The per-collection sync history: every sync's outcome, kept so a consumer can always
//! tell an empty collection from one whose sync failed (the ADR's Option 3).

use rusqlite::{Connection, Transaction, params};

use super::{CollectionKey, LocalError};

/// How many entries are kept per collection; older ones are pruned on insert.
pub const HISTORY_LIMIT: i64 = 100;

/// The outcome of one sync of one collection. The names follow Firefox's uptake
/// telemetry statuses where one exists, so operators can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// New data was verified and written.
    Success,
    /// The local data was already at the expected timestamp.
    UpToDate,
    /// A packaged dump newer than the local data was loaded.
    DumpLoaded,
    /// The server asked the client to wait (Backoff or Retry-After); nothing was fetched.
    Backoff,
    /// The server could not be reached, or the connection broke mid-response.
    NetworkError,
    /// The server answered 5xx, or an error status the client cannot act on.
    ServerError,
    /// The server's answer is not the JSON a changeset should be.
    ParseError,
    /// The signature did not verify, neither incrementally nor with the full changeset
    /// (the first failure is named in the detail).
    SignRetryError,
    /// The server answered data older than what the client holds (a stale cache or a
    /// rollback); the local data was kept.
    StaleData,
    /// The verified state could not be written (disk, or another sync won the race).
    ApplyError,
    /// The local data did not verify against its stored signature when read.
    CorruptionError,
    /// The collection does not exist on the server, or is not readable.
    UnknownCollection,
}

impl SyncStatus {
    /// The stable name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Success => "success",
            SyncStatus::UpToDate => "up_to_date",
            SyncStatus::DumpLoaded => "dump_loaded",
            SyncStatus::Backoff => "backoff",
            SyncStatus::NetworkError => "network_error",
            SyncStatus::ServerError => "server_error",
            SyncStatus::ParseError => "parse_error",
            SyncStatus::SignRetryError => "sign_retry_error",
            SyncStatus::StaleData => "stale_data",
            SyncStatus::ApplyError => "apply_error",
            SyncStatus::CorruptionError => "corruption_error",
            SyncStatus::UnknownCollection => "unknown_collection",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<SyncStatus> {
        [
            SyncStatus::Success,
            SyncStatus::UpToDate,
            SyncStatus::DumpLoaded,
            SyncStatus::Backoff,
            SyncStatus::NetworkError,
            SyncStatus::ServerError,
            SyncStatus::ParseError,
            SyncStatus::SignRetryError,
            SyncStatus::StaleData,
            SyncStatus::ApplyError,
            SyncStatus::CorruptionError,
            SyncStatus::UnknownCollection,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the client reached the state it was asked to reach.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            SyncStatus::Success | SyncStatus::UpToDate | SyncStatus::DumpLoaded
        )
    }
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sync's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When it ended, ms since the Unix epoch.
    pub at_ms: u64,
    /// The outcome.
    pub status: SyncStatus,
    /// What went wrong, or what recovered (never secrets: URLs and reasons only).
    pub detail: Option<String>,
    /// The local timestamp before the sync.
    pub local_timestamp: Option<u64>,
    /// The timestamp the server answered, if it answered.
    pub remote_timestamp: Option<u64>,
    /// How long the sync took.
    pub duration_ms: u64,
}

pub(super) fn insert(
    tx: &Transaction<'_>,
    key: &CollectionKey,
    entry: &HistoryEntry,
) -> Result<(), LocalError> {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO sync_history
             (bucket, collection, at_ms, status, detail, local_timestamp, remote_timestamp,
              duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        key.bucket,
        key.collection,
        to_i64(entry.at_ms),
        entry.status.as_str(),
        entry.detail,
        entry.local_timestamp.map(to_i64),
        entry.remote_timestamp.map(to_i64),
        to_i64(entry.duration_ms),
    ])?;
    tx.prepare_cached(
        "DELETE FROM sync_history WHERE bucket = ?1 AND collection = ?2 AND seq <=
             (SELECT seq FROM sync_history WHERE bucket = ?1 AND collection = ?2
              ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
    )?
    .execute(params![key.bucket, key.collection, HISTORY_LIMIT])?;
    Ok(())
}

pub(super) fn list(
    conn: &Connection,
    key: &CollectionKey,
    limit: usize,
) -> Result<Vec<HistoryEntry>, LocalError> {
    let mut statement = conn.prepare_cached(
        "SELECT at_ms, status, detail, local_timestamp, remote_timestamp, duration_ms
         FROM sync_history WHERE bucket = ?1 AND collection = ?2
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let from_i64 = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = statement.query_map(
        params![
            key.bucket,
            key.collection,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, Option<i64>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (at_ms, status, detail, local, remote, duration) = row?;
        let status = SyncStatus::parse(&status)
            .ok_or_else(|| LocalError::Corrupt(format!("unknown sync status {status:?}")))?;
        out.push(HistoryEntry {
            at_ms: from_i64(at_ms),
            status,
            detail,
            local_timestamp: local.map(from_i64),
            remote_timestamp: remote.map(from_i64),
            duration_ms: from_i64(duration),
        });
    }
    Ok(out)
}
