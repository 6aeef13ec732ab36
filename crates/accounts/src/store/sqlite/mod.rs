//! The SQLite backend: one database file, one connection behind a mutex, used from
//! blocking threads.
//!
//! Sign-ins and token exchanges are rare (a few per device per day), so one connection
//! suffices, and every write is a `BEGIN IMMEDIATE` transaction, which takes the file's
//! write lock first: a key fetch token or a code taken by one request is gone for any
//! other, even in another process (the CLI) sharing the file. The file holds password
//! verifiers and Hawk keys, so it is created mode 0600.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    AccountRecord, AccountStore, CodeRecord, DeviceRecord, RefreshRecord, StoreError, TokenRecord,
};
use crate::onepw::{StoredKind, TokenKind, Verifier};

mod rows;

use rows::{
    ACCOUNT_COLUMNS, DEVICE_COLUMNS, MIGRATIONS, TOKEN_COLUMNS, account_from_row, code_from_row,
    device_from_row, refresh_from_row, token_from_row,
};

/// An [`AccountStore`] on one SQLite file.
#[derive(Clone)]
pub struct SqliteAccountStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteAccountStore {
    /// Opens the database at `path`, creating it (mode 0600) when `create` is set, and
    /// brings its schema up to date.
    pub fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        if create && !path.exists() {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|error| StoreError::Backend(format!("{}: {error}", path.display())))?;
        }
        let conn = sqlite_support::open_migrated(path, create, MIGRATIONS, "accounts service")
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(backend)?;
        Ok(SqliteAccountStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` on the connection on a blocking thread.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut conn)
        })
        .await
        .map_err(|error| StoreError::Backend(format!("database task failed: {error}")))?
    }

    /// Runs `work` in one immediate transaction.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let out = work(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn insert_tokens(tx: &rusqlite::Transaction<'_>, tokens: &[TokenRecord]) -> Result<(), StoreError> {
    let mut statement = tx
        .prepare_cached(&format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))
        .map_err(backend)?;
    for token in tokens {
        statement
            .execute(params![
                token.id_hash,
                token.kind.db_name(),
                token.uid,
                token.auth_key,
                token.key_bundle,
                token.created_at,
                token.user_agent
            ])
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteAccountStore {
    async fn create_account(
        &self,
        account: &AccountRecord,
        tokens: &[TokenRecord],
        first_only: bool,
    ) -> Result<(), StoreError> {
        let account = account.clone();
        let tokens = tokens.to_vec();
        self.write(move |tx| {
            if first_only {
                let count: i64 = tx
                    .query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))
                    .map_err(backend)?;
                if count > 0 {
                    return Err(StoreError::NotFirst);
                }
            }
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                         ON CONFLICT DO NOTHING"
                    ),
                    params![
                        account.uid,
                        account.email,
                        account.normalized_email,
                        account.verifier.salt,
                        account.verifier.cost.encode(),
                        account.verifier.verify_hash,
                        account.verifier.wrap_wrap_kb,
                        account.ka,
                        account.generation,
                        account.keys_changed_at,
                        account.created_at,
                        account.display_name
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AccountExists);
            }
            insert_tokens(tx, &tokens)
        })
        .await
    }

    async fn account_by_email(
        &self,
        normalized: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let normalized = normalized.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE normalized_email = ?1"),
                [normalized],
                account_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn account_by_uid(&self, uid: &str) -> Result<Option<AccountRecord>, StoreError> {
        let uid = uid.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE uid = ?1"),
                [uid],
                account_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.run(|conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY normalized_email"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map([], account_from_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        self.run(|conn| {
            conn.query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn delete_account(&self, uid: &str) -> Result<bool, StoreError> {
        let uid = uid.to_owned();
        self.write(move |tx| {
            let deleted = tx
                .execute("DELETE FROM accounts WHERE uid = ?1", [uid])
                .map_err(backend)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn change_password(
        &self,
        uid: &str,
        verifier: &Verifier,
        generation: i64,
        keys_changed: bool,
        tokens: &[TokenRecord],
    ) -> Result<(), StoreError> {
        let uid = uid.to_owned();
        let verifier = verifier.clone();
        let tokens = tokens.to_vec();
        self.write(move |tx| {
            tx.execute(
                "UPDATE accounts SET auth_salt = ?2, stretch_cost = ?3, verify_hash = ?4, \
                 wrap_wrap_kb = ?5, generation = MAX(?6, generation + 1), \
                 keys_changed_at = CASE WHEN ?7 THEN MAX(?6, generation + 1) \
                 ELSE keys_changed_at END WHERE uid = ?1",
                params![
                    uid,
                    verifier.salt,
                    verifier.cost.encode(),
                    verifier.verify_hash,
                    verifier.wrap_wrap_kb,
                    generation,
                    keys_changed
                ],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM devices WHERE uid = ?1 AND session_id_hash IS NOT NULL",
                [&uid],
            )
            .map_err(backend)?;
            tx.execute("DELETE FROM tokens WHERE uid = ?1", [&uid])
                .map_err(backend)?;
            insert_tokens(tx, &tokens)
        })
        .await
    }

    async fn set_generation(&self, uid: &str, generation: i64) -> Result<(), StoreError> {
        let uid = uid.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE accounts SET generation = ?2, \
                 keys_changed_at = MIN(keys_changed_at, ?2) WHERE uid = ?1",
                params![uid, generation],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        let tokens = tokens.to_vec();
        self.write(move |tx| insert_tokens(tx, &tokens)).await
    }

    async fn token(
        &self,
        id_hash: &[u8; 32],
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let id_hash = *id_hash;
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id_hash = ?1 AND kind = ?2"),
                params![id_hash, kind.db_name()],
                token_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn take_token(
        &self,
        id_hash: &[u8; 32],
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let id_hash = *id_hash;
        self.write(move |tx| {
            tx.query_row(
                &format!(
                    "DELETE FROM tokens WHERE id_hash = ?1 AND kind = ?2 RETURNING {TOKEN_COLUMNS}"
                ),
                params![id_hash, kind.db_name()],
                token_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_token(&self, id_hash: &[u8; 32], kind: TokenKind) -> Result<bool, StoreError> {
        let id_hash = *id_hash;
        self.write(move |tx| {
            tx.execute("DELETE FROM devices WHERE session_id_hash = ?1", [id_hash])
                .map_err(backend)?;
            let deleted = tx
                .execute(
                    "DELETE FROM tokens WHERE id_hash = ?1 AND kind = ?2",
                    params![id_hash, kind.db_name()],
                )
                .map_err(backend)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn sessions(&self, uid: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let uid = uid.to_owned();
        self.run(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE uid = ?1 AND kind = ?2 \
                     ORDER BY created_at"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map(params![uid, TokenKind::Session.db_name()], token_from_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn purge_expired(&self, created_before: i64, now: i64) -> Result<u64, StoreError> {
        self.write(move |tx| {
            let tokens = tx
                .execute(
                    "DELETE FROM tokens WHERE kind != ?1 AND created_at < ?2",
                    params![TokenKind::Session.db_name(), created_before],
                )
                .map_err(backend)?;
            let codes = tx
                .execute("DELETE FROM codes WHERE expires_at < ?1", [now])
                .map_err(backend)?;
            Ok((tokens + codes) as u64)
        })
        .await
    }

    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        let code = code.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO codes (code_hash, uid, client_id, scope, code_challenge, keys_jwe, \
                 offline, auth_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    code.code_hash,
                    code.uid,
                    code.client_id,
                    code.scope,
                    code.code_challenge,
                    code.keys_jwe,
                    code.offline,
                    code.auth_at,
                    code.expires_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_code(&self, code_hash: &[u8; 32]) -> Result<Option<CodeRecord>, StoreError> {
        let code_hash = *code_hash;
        self.write(move |tx| {
            tx.query_row(
                "DELETE FROM codes WHERE code_hash = ?1 RETURNING code_hash, uid, client_id, \
                 scope, code_challenge, keys_jwe, offline, auth_at, expires_at",
                [code_hash],
                code_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, uid, client_id, scope, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.token_hash,
                    token.uid,
                    token.client_id,
                    token.scope,
                    token.created_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn refresh(&self, token_hash: &[u8; 32]) -> Result<Option<RefreshRecord>, StoreError> {
        let token_hash = *token_hash;
        self.run(move |conn| {
            conn.query_row(
                "SELECT token_hash, uid, client_id, scope, created_at FROM refresh_tokens \
                 WHERE token_hash = ?1",
                [token_hash],
                refresh_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_refresh(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let token_hash = *token_hash;
        self.write(move |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM refresh_tokens WHERE token_hash = ?1",
                    [token_hash],
                )
                .map_err(backend)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn refresh_tokens(&self, uid: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        let uid = uid.to_owned();
        self.run(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT token_hash, uid, client_id, scope, created_at FROM refresh_tokens \
                     WHERE uid = ?1 ORDER BY created_at",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([uid], refresh_from_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn upsert_device(&self, device: &DeviceRecord) -> Result<DeviceRecord, StoreError> {
        let device = device.clone();
        self.write(move |tx| {
            // The session's existing device keeps its id and creation time.
            let existing: Option<(String, i64)> = tx
                .query_row(
                    "SELECT id, created_at FROM devices WHERE uid = ?1 \
                     AND (id = ?2 OR (session_id_hash IS NOT NULL AND session_id_hash = ?3))",
                    params![device.uid, device.id, device.session_id_hash],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let (id, created_at) = existing.unwrap_or((device.id.clone(), device.created_at));
            tx.execute(
                &format!(
                    "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                     ON CONFLICT (id) DO UPDATE SET session_id_hash = excluded.session_id_hash, \
                     name = excluded.name, device_type = excluded.device_type, \
                     push_callback = excluded.push_callback, \
                     push_public_key = excluded.push_public_key, \
                     push_auth_key = excluded.push_auth_key, \
                     available_commands = excluded.available_commands, \
                     last_access_at = excluded.last_access_at"
                ),
                params![
                    id,
                    device.uid,
                    device.session_id_hash,
                    device.name,
                    device.device_type,
                    device.push_callback,
                    device.push_public_key,
                    device.push_auth_key,
                    device.available_commands,
                    created_at,
                    device.last_access_at
                ],
            )
            .map_err(backend)?;
            tx.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                [id],
                device_from_row,
            )
            .map_err(backend)
        })
        .await
    }

    async fn devices(&self, uid: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        let uid = uid.to_owned();
        self.run(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE uid = ?1 ORDER BY created_at"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map([uid], device_from_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn delete_device(&self, uid: &str, id: &str) -> Result<bool, StoreError> {
        let uid = uid.to_owned();
        let id = id.to_owned();
        self.write(move |tx| {
            let session: Option<Option<Vec<u8>>> = tx
                .query_row(
                    "DELETE FROM devices WHERE uid = ?1 AND id = ?2 RETURNING session_id_hash",
                    params![uid, id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(Some(session)) = &session {
                tx.execute("DELETE FROM tokens WHERE id_hash = ?1", [session])
                    .map_err(backend)?;
            }
            Ok(session.is_some())
        })
        .await
    }
}
