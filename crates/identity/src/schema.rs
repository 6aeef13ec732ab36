//! The accounts database schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` records how many have run. Shipped migrations are never edited,
//! only appended to, so that every existing database upgrades by the same steps.

use rusqlite::Connection;

/// Each entry moves the schema one version forward.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    -- generation is in milliseconds, created_at in seconds, both since the Unix epoch.
    -- password_hash is an argon2id PHC string, NULL for accounts that cannot log in over HTTP.
    CREATE TABLE accounts (
        name          TEXT PRIMARY KEY,
        uid           TEXT NOT NULL UNIQUE,
        generation    INTEGER NOT NULL,
        password_hash TEXT,
        created_at    INTEGER NOT NULL
    );
    "#,
];

/// Brings the database to the newest schema (see `sqlite_support::migrate`).
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    sqlite_support::migrate(conn, MIGRATIONS, "accounts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }
}
