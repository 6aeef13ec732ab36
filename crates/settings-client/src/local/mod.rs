//! The local database: the collections a client holds, their sync history, the cached
//! certificate chains and the client's own state (backoff, last monitor timestamp).
//!
//! **Invariant:** a collection's records, timestamp and metadata change together, in one
//! transaction, and only through [`LocalStore::commit`] (a verified sync) or
//! [`LocalStore::load_dump`] (a packaged dump). A crash mid-write leaves the previous
//! state, because SQLite rolls an unfinished transaction back.

mod history;
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};

pub use history::{HistoryEntry, SyncStatus};

/// A collection's identity: bucket and collection id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionKey {
    /// The bucket id (`main`, `security-state`, ...).
    pub bucket: String,
    /// The collection id.
    pub collection: String,
}

impl CollectionKey {
    /// `bucket/collection`.
    pub fn new(bucket: &str, collection: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            collection: collection.to_owned(),
        }
    }

    /// Parses `bucket/collection`; None unless both are valid ids.
    pub fn parse(text: &str) -> Option<Self> {
        let (bucket, collection) = text.split_once('/')?;
        let key = Self::new(bucket, collection);
        key.is_valid().then_some(key)
    }

    /// Whether both parts are Kinto ids (ASCII letters, digits, `-` and `_`). Names from
    /// the server are checked before they reach a URL or a file path, so a hostile
    /// `monitor/changes` cannot point the client at `..` or an absolute path.
    pub fn is_valid(&self) -> bool {
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 256
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        valid(&self.bucket) && valid(&self.collection)
    }
}

impl std::fmt::Display for CollectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bucket, self.collection)
    }
}

/// Where the local copy of a collection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A changeset whose signature verified.
    Sync,
    /// A packaged dump, trusted as shipped (it carries no signature).
    Dump,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Sync => "sync",
            Source::Dump => "dump",
        }
    }

    fn parse(text: &str) -> Source {
        if text == "dump" {
            Source::Dump
        } else {
            Source::Sync
        }
    }
}

/// What the client holds of one collection, without its records.
#[derive(Debug, Clone)]
pub struct LocalCollection {
    /// The records timestamp the data is at.
    pub timestamp: u64,
    /// The collection metadata that came with the data, signature included (None for a
    /// dump).
    pub metadata: Option<Map<String, Value>>,
    /// Where the data came from.
    pub source: Source,
}

/// The records of a collection by id.
pub type Records = BTreeMap<String, Value>;

/// A verified new state to write: either the whole collection or a diff against the
/// state it was computed from.
pub enum Change<'a> {
    /// Replace every record.
    Full(&'a Records),
    /// Write the `touched` ids as `records` has them: inserted or replaced if present,
    /// deleted if not. Derived from the final, verified state, so the order of the
    /// changeset's entries cannot make the stored state differ from the verified one.
    Diff {
        /// The verified records.
        records: &'a Records,
        /// The ids the changeset named.
        touched: &'a BTreeSet<String>,
    },
}

/// Why the local database failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// SQLite failed (disk full, a locked or corrupt file, ...).
    #[error("local database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Another sync of the same collection committed first; nothing was written.
    #[error("the local collection changed during the sync")]
    Concurrent,
    /// A stored value is not the JSON it should be (the file was edited).
    #[error("local database holds invalid data: {0}")]
    Corrupt(String),
}

/// The client's SQLite database.
pub struct LocalStore {
    conn: Mutex<Connection>,
}

impl LocalStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, LocalError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_millis(u64::from(
            sqlite_support::BUSY_TIMEOUT_MS,
        )))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        sqlite_support::migrate(&mut conn, schema::MIGRATIONS, "settings-client")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The collection's state, or None if the client holds nothing of it.
    pub fn collection(&self, key: &CollectionKey) -> Result<Option<LocalCollection>, LocalError> {
        collection_in(&self.conn(), key)
    }

    /// Every collection the client holds.
    pub fn collections(&self) -> Result<Vec<(CollectionKey, LocalCollection, u64)>, LocalError> {
        let keys: Vec<(CollectionKey, u64)> = {
            let conn = self.conn();
            let mut statement = conn.prepare(
                "SELECT c.bucket, c.collection,
                        (SELECT COUNT(*) FROM records r
                         WHERE r.bucket = c.bucket AND r.collection = c.collection)
                 FROM collections c ORDER BY c.bucket, c.collection",
            )?;
            statement
                .query_map([], |row| {
                    Ok((
                        CollectionKey::new(&row.get::<_, String>(0)?, &row.get::<_, String>(1)?),
                        row.get::<_, i64>(2)?.try_into().unwrap_or(0),
                    ))
                })?
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(keys.len());
        for (key, count) in keys {
            if let Some(state) = self.collection(&key)? {
                out.push((key, state, count));
            }
        }
        Ok(out)
    }

    /// The collection's state and records read in one transaction, so they belong
    /// together even while a sync commits.
    pub fn snapshot(
        &self,
        key: &CollectionKey,
    ) -> Result<Option<(LocalCollection, Records)>, LocalError> {
        // Both reads go through this one connection; holding its lock for both is the
        // transaction (no other writer can use it in between, and another process's
        // commit is invisible inside a read transaction).
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let state = collection_in(&tx, key)?;
        let records = records_in(&tx, key)?;
        tx.commit()?;
        Ok(state.map(|state| (state, records)))
    }

    /// The collection's records by id.
    pub fn records(&self, key: &CollectionKey) -> Result<Records, LocalError> {
        records_in(&self.conn(), key)
    }

    /// Writes a verified state in one transaction, with its history entry, provided the
    /// collection is still at `based_on` (the timestamp the state was computed from; None
    /// for a collection the client did not hold).
    pub fn commit(
        &self,
        key: &CollectionKey,
        based_on: Option<u64>,
        timestamp: u64,
        metadata: &Map<String, Value>,
        change: Change<'_>,
        entry: &HistoryEntry,
    ) -> Result<(), LocalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if stored_timestamp(&tx, key)? != based_on {
            return Err(LocalError::Concurrent);
        }
        write_records(&tx, key, change)?;
        write_collection(
            &tx,
            key,
            timestamp,
            Some(&Value::Object(metadata.clone()).to_string()),
            Source::Sync,
        )?;
        history::insert(&tx, key, entry)?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces the collection with a packaged dump if the dump is newer than what the
    /// client holds; returns whether it did. Checked and written in one transaction, so a
    /// sync committing meanwhile is never overwritten by older data.
    pub fn load_dump(
        &self,
        key: &CollectionKey,
        timestamp: u64,
        records: &Records,
        entry: &HistoryEntry,
    ) -> Result<bool, LocalError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if stored_timestamp(&tx, key)?.is_some_and(|current| current >= timestamp) {
            return Ok(false);
        }
        write_records(&tx, key, Change::Full(records))?;
        write_collection(&tx, key, timestamp, None, Source::Dump)?;
        history::insert(&tx, key, entry)?;
        tx.commit()?;
        Ok(true)
    }

    /// Records the outcome of a sync that wrote nothing.
    pub fn record(&self, key: &CollectionKey, entry: &HistoryEntry) -> Result<(), LocalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        history::insert(&tx, key, entry)?;
        tx.commit()?;
        Ok(())
    }

    /// The collection's sync history, newest first.
    pub fn history(
        &self,
        key: &CollectionKey,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LocalError> {
        history::list(&self.conn(), key, limit)
    }

    /// A value of the client's own state (`backoff_until`, `monitor_timestamp`, ...).
    pub fn state(&self, name: &str) -> Result<Option<String>, LocalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM client_state WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Sets (or with None, clears) a value of the client's own state.
    pub fn set_state(&self, name: &str, value: Option<&str>) -> Result<(), LocalError> {
        let conn = self.conn();
        match value {
            Some(value) => conn.execute(
                "INSERT INTO client_state (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )?,
            None => conn.execute("DELETE FROM client_state WHERE name = ?1", [name])?,
        };
        Ok(())
    }

    /// A cached certificate chain by its x5u URL.
    pub fn chain(&self, x5u: &str) -> Result<Option<String>, LocalError> {
        Ok(self
            .conn()
            .query_row("SELECT pem FROM chains WHERE x5u = ?1", [x5u], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// Caches a chain that verified.
    pub fn set_chain(&self, x5u: &str, pem: &str) -> Result<(), LocalError> {
        self.conn().execute(
            "INSERT INTO chains (x5u, pem) VALUES (?1, ?2)
             ON CONFLICT (x5u) DO UPDATE SET pem = excluded.pem",
            params![x5u, pem],
        )?;
        Ok(())
    }

    /// Forgets a cached chain (it no longer verifies).
    pub fn drop_chain(&self, x5u: &str) -> Result<(), LocalError> {
        self.conn()
            .execute("DELETE FROM chains WHERE x5u = ?1", [x5u])?;
        Ok(())
    }
}

fn collection_in(
    conn: &Connection,
    key: &CollectionKey,
) -> Result<Option<LocalCollection>, LocalError> {
    let row = conn
        .query_row(
            "SELECT timestamp, metadata, source FROM collections
             WHERE bucket = ?1 AND collection = ?2",
            params![key.bucket, key.collection],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    let Some((timestamp, metadata, source)) = row else {
        return Ok(None);
    };
    let metadata = match metadata {
        Some(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Some(map),
            _ => return Err(LocalError::Corrupt(format!("metadata of {key}"))),
        },
        None => None,
    };
    Ok(Some(LocalCollection {
        timestamp: u64::try_from(timestamp).unwrap_or(0),
        metadata,
        source: Source::parse(&source),
    }))
}

fn records_in(conn: &Connection, key: &CollectionKey) -> Result<Records, LocalError> {
    let mut statement =
        conn.prepare_cached("SELECT id, data FROM records WHERE bucket = ?1 AND collection = ?2")?;
    let mut rows = statement.query(params![key.bucket, key.collection])?;
    let mut records = Records::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let text: String = row.get(1)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| LocalError::Corrupt(format!("record {id} of {key}: {e}")))?;
        records.insert(id, value);
    }
    Ok(records)
}

/// The timestamp the collection is stored at, read inside the writing transaction.
fn stored_timestamp(
    tx: &rusqlite::Transaction<'_>,
    key: &CollectionKey,
) -> Result<Option<u64>, LocalError> {
    let timestamp: Option<i64> = tx
        .query_row(
            "SELECT timestamp FROM collections WHERE bucket = ?1 AND collection = ?2",
            params![key.bucket, key.collection],
            |row| row.get(0),
        )
        .optional()?;
    Ok(timestamp.map(|t| u64::try_from(t).unwrap_or(0)))
}

fn write_records(
    tx: &rusqlite::Transaction<'_>,
    key: &CollectionKey,
    change: Change<'_>,
) -> Result<(), LocalError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO records (bucket, collection, id, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (bucket, collection, id) DO UPDATE SET data = excluded.data",
    )?;
    let mut put = |record: &Value| -> Result<(), LocalError> {
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| LocalError::Corrupt("a record without an id".into()))?;
        insert.execute(params![key.bucket, key.collection, id, record.to_string()])?;
        Ok(())
    };
    match change {
        Change::Full(records) => {
            tx.execute(
                "DELETE FROM records WHERE bucket = ?1 AND collection = ?2",
                params![key.bucket, key.collection],
            )?;
            for record in records.values() {
                put(record)?;
            }
        }
        Change::Diff { records, touched } => {
            let mut delete = tx.prepare_cached(
                "DELETE FROM records WHERE bucket = ?1 AND collection = ?2 AND id = ?3",
            )?;
            for id in touched {
                match records.get(id) {
                    Some(record) => put(record)?,
                    None => {
                        delete.execute(params![key.bucket, key.collection, id])?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_collection(
    tx: &rusqlite::Transaction<'_>,
    key: &CollectionKey,
    timestamp: u64,
    metadata: Option<&str>,
    source: Source,
) -> Result<(), LocalError> {
    tx.execute(
        "INSERT INTO collections (bucket, collection, timestamp, metadata, source)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (bucket, collection) DO UPDATE SET
             timestamp = excluded.timestamp, metadata = excluded.metadata,
             source = excluded.source",
        params![
            key.bucket,
            key.collection,
            i64::try_from(timestamp).unwrap_or(i64::MAX),
            metadata,
            source.as_str()
        ],
    )?;
    Ok(())
}
