//! Opening a database file the way the token and settings stores need it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// How long a statement waits for another process's write lock before failing.
pub const BUSY_TIMEOUT_MS: u32 = 5000;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file is missing and creating it was not asked for.
    #[error(
        "{database} database file {} does not exist (add ?mode=rwc to the URL to create it)",
        path.display()
    )]
    Missing {
        /// Which database (for the message).
        database: String,
        /// The path that was given.
        path: PathBuf,
    },
    /// SQLite failed to open, configure or migrate it.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens the database at `path` in WAL mode with full durability and the busy timeout, and
/// brings it to the newest of `migrations`. With `create` off, a missing file is an error
/// instead of a new, empty database, so a mistyped path cannot silently serve nothing.
pub fn open_migrated(
    path: &Path,
    create: bool,
    migrations: &[&str],
    database: &str,
) -> Result<Connection, OpenError> {
    if !create && !path.exists() {
        return Err(OpenError::Missing {
            database: database.to_owned(),
            path: path.to_owned(),
        });
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout={BUSY_TIMEOUT_MS};"
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    crate::migrate(&mut conn, migrations, database)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_created_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let steps = ["CREATE TABLE t (x INTEGER);"];
        let error = open_migrated(&path, false, &steps, "test").unwrap_err();
        assert!(
            error.to_string().starts_with("test database file"),
            "{error}"
        );
        assert!(!path.exists());
        let conn = open_migrated(&path, true, &steps, "test").unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        open_migrated(&path, false, &steps, "test").unwrap();
    }
}
