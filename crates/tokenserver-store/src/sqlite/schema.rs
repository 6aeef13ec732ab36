//! The SQLite schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` records how many have run. Shipped migrations are never edited,
//! only appended to, so that every existing database upgrades by the same steps.
//!
//! The tables mirror Mozilla's tokenserver schema, column for column and in the same order,
//! so that an operator who knows that schema (or a script that `SELECT *`s it) finds what
//! it expects. As there, there are no foreign keys: a user row outlives the node row it
//! points at (a removed node leaves its users with no node until they are reassigned).

/// Each entry moves the schema one version forward.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE services (
        id      INTEGER PRIMARY KEY,
        service TEXT UNIQUE,
        pattern TEXT
    );
    INSERT INTO services (service, pattern) VALUES ('sync-1.5', '{node}/1.5/{uid}');

    -- `node` is the node's public URL without a trailing slash. `available` is the budget of
    -- new users the node may still take before capacity is released again (see the module
    -- docs of `sqlite`); `downed` and `backoff` are 0 or 1.
    CREATE TABLE nodes (
        id           INTEGER PRIMARY KEY,
        service      INTEGER NOT NULL,
        node         TEXT NOT NULL,
        available    INTEGER NOT NULL,
        current_load INTEGER NOT NULL,
        capacity     INTEGER NOT NULL,
        downed       INTEGER NOT NULL,
        backoff      INTEGER NOT NULL,
        UNIQUE (service, node)
    );

    -- One row per (account, client state, node assignment). AUTOINCREMENT so that a uid is
    -- never handed out twice, even after the purge deleted the highest one: the uid names
    -- the user's data on the storage node.
    CREATE TABLE users (
        uid             INTEGER PRIMARY KEY AUTOINCREMENT,
        service         INTEGER NOT NULL,
        email           TEXT NOT NULL,
        generation      INTEGER NOT NULL,
        client_state    TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        replaced_at     INTEGER,
        nodeid          INTEGER NOT NULL,
        keys_changed_at INTEGER
    );
    CREATE INDEX lookup_idx ON users (email, service, created_at);
    CREATE INDEX replaced_at_idx ON users (service, replaced_at);
    CREATE INDEX node_idx ON users (nodeid);
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
