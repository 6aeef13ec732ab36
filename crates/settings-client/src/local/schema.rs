//! The local database's schema, as numbered migrations (`sqlite_support::migrate`).

/// Shipped scripts are never edited, only appended to.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE collections (
    bucket TEXT NOT NULL,
    collection TEXT NOT NULL,
    -- The records timestamp the local data is at.
    timestamp INTEGER NOT NULL,
    -- The collection metadata, signature included, as JSON; NULL for a packaged dump.
    metadata TEXT,
    -- 'sync' (verified changeset) or 'dump' (packaged dump).
    source TEXT NOT NULL,
    PRIMARY KEY (bucket, collection)
);
CREATE TABLE records (
    bucket TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (bucket, collection, id)
) WITHOUT ROWID;
CREATE TABLE sync_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL,
    collection TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    local_timestamp INTEGER,
    remote_timestamp INTEGER,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX sync_history_by_collection ON sync_history (bucket, collection, seq);
CREATE TABLE chains (
    x5u TEXT PRIMARY KEY,
    pem TEXT NOT NULL
);
CREATE TABLE client_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#];
