//! The SQLite schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` records how many have run. Shipped migrations are never edited,
//! only appended to, so that every existing database upgrades by the same steps.

use rusqlite::Connection;

/// Each entry moves the schema one version forward.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE collections (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    INSERT INTO collections (id, name) VALUES
        (1, 'clients'), (2, 'crypto'), (3, 'forms'), (4, 'history'), (5, 'keys'),
        (6, 'meta'), (7, 'bookmarks'), (8, 'prefs'), (9, 'tabs'), (10, 'passwords'),
        (11, 'addons'), (12, 'addresses'), (13, 'creditcards');

    -- The last timestamp given to a user's write: it survives a delete of all storage so
    -- that timestamps keep increasing.
    CREATE TABLE users (
        user_id    INTEGER PRIMARY KEY,
        last_write INTEGER NOT NULL
    );

    -- Collection timestamps. collection_id 0 is the tombstone row, bumped when a collection
    -- is deleted so that the storage timestamp still moves forward.
    CREATE TABLE user_collections (
        user_id       INTEGER NOT NULL,
        collection_id INTEGER NOT NULL,
        modified      INTEGER NOT NULL,
        PRIMARY KEY (user_id, collection_id)
    ) WITHOUT ROWID;

    CREATE TABLE bsos (
        user_id       INTEGER NOT NULL,
        collection_id INTEGER NOT NULL,
        id            TEXT NOT NULL,
        sortindex     INTEGER,
        payload       TEXT NOT NULL,
        payload_size  INTEGER NOT NULL,
        modified      INTEGER NOT NULL,
        expiry        INTEGER NOT NULL,
        UNIQUE (user_id, collection_id, id)
    );
    CREATE INDEX bsos_by_modified ON bsos (user_id, collection_id, modified);
    CREATE INDEX bsos_by_expiry ON bsos (expiry);

    CREATE TABLE batches (
        id            TEXT PRIMARY KEY,
        user_id       INTEGER NOT NULL,
        collection_id INTEGER NOT NULL,
        expiry        INTEGER NOT NULL
    );
    CREATE INDEX batches_by_expiry ON batches (expiry);

    -- Staged records. *_op is 0 keep, 1 reset, 2 set (see `Patch`).
    CREATE TABLE batch_items (
        batch_id     TEXT NOT NULL,
        id           TEXT NOT NULL,
        sortindex_op INTEGER NOT NULL,
        sortindex    INTEGER,
        payload_op   INTEGER NOT NULL,
        payload      TEXT,
        ttl_op       INTEGER NOT NULL,
        ttl          INTEGER,
        UNIQUE (batch_id, id)
    );
    "#,
    // 2: only records with a TTL are in the expiry index. Most Sync records never expire
    // (expiry = i64::MAX, `write::NEVER`), and indexing them made every write of a record
    // update one more b-tree for nothing; the purge, the index's only user, names the same
    // bound so that SQLite can use the partial index. (Also measured, and not taken because
    // they moved work onto the one writer: records clustered by key in a WITHOUT ROWID
    // table, and the id in the modified index to spare listings their sort of ties.)
    r#"
    DROP INDEX bsos_by_expiry;
    CREATE INDEX bsos_by_expiry ON bsos (expiry) WHERE expiry < 9223372036854775807;
    "#,
    // 3: batches are staged in a file of their own (`staging`, ADR 0015). Batches open at
    // the upgrade are lost; their clients get "batch not found" and upload again.
    r#"
    DROP TABLE batch_items;
    DROP TABLE batches;
    "#,
];

/// Brings the database to the newest schema (see `sqlite_support::migrate`).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    sqlite_support::migrate(conn, MIGRATIONS, "storage")
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    #[test]
    fn the_purge_finds_expired_records_through_the_partial_expiry_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                super::super::write::PURGE_RECORDS
            ))
            .unwrap()
            .query_map([0, 10], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("INDEX bsos_by_expiry (expiry<?)")),
            "{plan:?}"
        );
    }
}
