//! The accounts table on SQLite: plain queries, no policy.
//!
//! Account management is rare and tiny, so one connection behind a mutex is enough. The
//! CLI and a running server may open the same file, so WAL and a busy timeout let them
//! take turns instead of failing. The file holds password hashes, so it is created 0600;
//! SQLite gives its `-wal` and `-shm` files the same mode.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Account, IdentityError, schema};

/// The columns every account query selects, in `account_from_row` order.
const COLUMNS: &str = "name, uid, generation, password_hash, created_at";

/// An account with its password hash, which never leaves the crate.
pub(crate) struct StoredAccount {
    pub(crate) account: Account,
    pub(crate) password_hash: Option<String>,
}

/// The accounts database.
pub(crate) struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens or creates the database at `path` and brings its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Self, IdentityError> {
        let context = |error: &dyn std::fmt::Display| {
            IdentityError::Storage(format!("{}: {error}", path.display()))
        };
        // Create the file ourselves so that it starts out private; an existing file keeps
        // whatever mode the operator gave it.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|error| context(&error))?;
        let mut conn = Connection::open(path).map_err(|error| context(&error))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(|error| context(&error))?;
        schema::migrate(&mut conn).map_err(|error| context(&error))?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    /// Inserts a new account; `AccountExists` if the name is taken.
    pub(crate) fn insert(
        &self,
        account: &Account,
        password_hash: Option<&str>,
    ) -> Result<(), IdentityError> {
        let inserted = self.conn().execute(
            "INSERT INTO accounts (name, uid, generation, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![
                account.name,
                account.uid,
                account.generation,
                password_hash,
                account.created_at
            ],
        )?;
        if inserted == 0 {
            return Err(IdentityError::AccountExists(account.name.clone()));
        }
        Ok(())
    }

    /// The named account with its password hash.
    pub(crate) fn get(&self, name: &str) -> Result<Option<StoredAccount>, IdentityError> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE name = ?1");
        let stored = self
            .conn()
            .query_row(&sql, [name], stored_from_row)
            .optional()?;
        Ok(stored)
    }

    /// Every account, by name.
    pub(crate) fn list(&self) -> Result<Vec<Account>, IdentityError> {
        let sql = format!("SELECT {COLUMNS} FROM accounts ORDER BY name");
        let conn = self.conn();
        let mut statement = conn.prepare(&sql)?;
        let accounts = statement
            .query_map([], |row| stored_from_row(row).map(|stored| stored.account))?
            .collect::<Result<_, _>>()?;
        Ok(accounts)
    }

    /// Deletes the named account; false if there was none.
    pub(crate) fn delete(&self, name: &str) -> Result<bool, IdentityError> {
        let deleted = self
            .conn()
            .execute("DELETE FROM accounts WHERE name = ?1", [name])?;
        Ok(deleted > 0)
    }

    /// Replaces the password hash; false if there is no such account.
    pub(crate) fn set_password_hash(&self, name: &str, hash: &str) -> Result<bool, IdentityError> {
        let updated = self.conn().execute(
            "UPDATE accounts SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )?;
        Ok(updated > 0)
    }

    /// Moves the generation to `now_ms`, or one past its current value if that is not
    /// earlier, so that it always increases. Returns the updated account.
    pub(crate) fn bump_generation(
        &self,
        name: &str,
        now_ms: u64,
    ) -> Result<Option<Account>, IdentityError> {
        let sql = format!(
            "UPDATE accounts SET generation = MAX(?2, generation + 1) WHERE name = ?1
             RETURNING {COLUMNS}"
        );
        let account = self
            .conn()
            .query_row(&sql, params![name, now_ms], |row| {
                stored_from_row(row).map(|stored| stored.account)
            })
            .optional()?;
        Ok(account)
    }

    /// The connection. A panic while it was held cannot leave it mid-transaction (an open
    /// transaction rolls back on drop), so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn stored_from_row(row: &Row<'_>) -> rusqlite::Result<StoredAccount> {
    let password_hash: Option<String> = row.get(3)?;
    Ok(StoredAccount {
        account: Account {
            name: row.get(0)?,
            uid: row.get(1)?,
            generation: row.get(2)?,
            has_password: password_hash.is_some(),
            created_at: row.get(4)?,
        },
        password_hash,
    })
}
