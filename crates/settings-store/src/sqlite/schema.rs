//! The SQLite schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` records how many have run. Shipped migrations are never edited,
//! only appended to, so that every existing database upgrades by the same steps.
//!
//! Three tables hold all of Kinto's state, as its own SQL backend does: one for every
//! object of every kind, one for the list timestamps, one for the permissions. Object trees
//! are expressed by the `parent` URI, not by foreign keys, so that deleting a subtree is a
//! few range deletes (see `objects::purge_under`).
//!
//! **Invariant:** every (kind, parent) that has a row in `objects` has one in `timestamps`
//! (each write takes its timestamp there first, and the two are only deleted together).
//! Subtree deletes rely on it to find the lists under a URI.

/// Each entry moves the schema one version forward.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    -- Objects and tombstones. `kind` is the plural name (`buckets`, `records`, ...);
    -- `parent` the parent's URI ('' for buckets and accounts); `data` a JSON object without
    -- `id` and `last_modified` ('{}' for a tombstone); `deleted` 0 or 1. Not WITHOUT ROWID:
    -- records can be large, and such tables want small rows.
    CREATE TABLE objects (
        kind          TEXT NOT NULL,
        parent        TEXT NOT NULL,
        id            TEXT NOT NULL,
        last_modified INTEGER NOT NULL,
        data          TEXT NOT NULL,
        deleted       INTEGER NOT NULL CHECK (deleted IN (0, 1)),
        PRIMARY KEY (kind, parent, id)
    );

    -- The timestamp of each list: the highest `last_modified` it ever had. It is kept when
    -- every object of the list is deleted, so that it never goes back.
    CREATE TABLE timestamps (
        kind          TEXT NOT NULL,
        parent        TEXT NOT NULL,
        last_modified INTEGER NOT NULL,
        PRIMARY KEY (kind, parent)
    ) WITHOUT ROWID;
    -- Finds the lists under a URI when it is deleted. Writes only change `last_modified`,
    -- so they never touch this index.
    CREATE INDEX timestamps_parent ON timestamps (parent);

    -- One row per (object URI, permission, principal).
    CREATE TABLE permissions (
        uri        TEXT NOT NULL,
        permission TEXT NOT NULL,
        principal  TEXT NOT NULL,
        PRIMARY KEY (uri, permission, principal)
    ) WITHOUT ROWID;
    -- For "what may these principals do" (`permissions_of`).
    CREATE INDEX permissions_principal ON permissions (principal);
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
