//! The PostgreSQL backend: the SQLite backend's tables (prefixed `fxa_`, so they share a
//! database with the other services' tables), for an accounts service run in several
//! processes.
//!
//! Every method is one transaction through `postgres_support::write`, retried when
//! PostgreSQL asks. Single-use rows (key fetch tokens, codes) are taken with
//! `DELETE … RETURNING`, which PostgreSQL lets only one transaction do; the first-account
//! sign-up takes a transaction-scoped advisory lock, so two processes cannot both create
//! the first account.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{
    AccountRecord, AccountStore, CodeRecord, DeviceRecord, RefreshRecord, StoreError, TokenRecord,
};
use crate::onepw::{StoredKind, TokenKind, Verifier};

mod rows;

use rows::{
    ACCOUNT_COLUMNS, CODE_COLUMNS, DEVICE_COLUMNS, MIGRATIONS, REFRESH_COLUMNS, TOKEN_COLUMNS,
    account_from_row, code_from_row, device_from_row, refresh_from_row, token_from_row,
};

/// The advisory lock key of the first-account check.
const FIRST_ACCOUNT_LOCK: i64 = 0x6678_615f_6669_7273;

type TxFuture<'a, T> = postgres_support::TxFuture<'a, T, StoreError>;

/// An [`AccountStore`] on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresAccountStore {
    pool: Pool,
}

impl PostgresAccountStore {
    /// Connects with a pool of at most `max_connections` and brings the schema up to date.
    pub async fn open(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let pool = postgres_support::connect(url, max_connections)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut client = pool.get().await.map_err(pool_error)?;
        postgres_support::migrate(&mut client, MIGRATIONS, "accounts service")
            .await
            .map_err(driver)?;
        Ok(PostgresAccountStore { pool })
    }

    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'a> Fn(&'a Transaction<'a>) -> TxFuture<'a, T> + Send + Sync,
    {
        postgres_support::write(&self.pool, op).await
    }

    async fn read(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        query(&client, sql, params).await
    }
}

impl postgres_support::TxErrors for StoreError {
    fn conflict() -> Self {
        StoreError::Conflict
    }

    fn backend(message: String) -> Self {
        StoreError::Backend(message)
    }

    fn retryable(&self) -> bool {
        matches!(self, StoreError::Conflict)
    }
}

fn driver(error: tokio_postgres::Error) -> StoreError {
    <StoreError as postgres_support::TxErrors>::driver(error)
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    <StoreError as postgres_support::TxErrors>::pool(error)
}

async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(driver)?;
    client.query(&statement, params).await.map_err(driver)
}

async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(driver)?;
    client.execute(&statement, params).await.map_err(driver)
}

fn all<T>(rows: Vec<Row>, f: fn(&Row) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

async fn insert_tokens(tx: &Transaction<'_>, tokens: &[TokenRecord]) -> Result<(), StoreError> {
    let sql =
        format!("INSERT INTO fxa_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
    for token in tokens {
        execute(
            tx,
            &sql,
            &[
                &token.id_hash.as_slice(),
                &token.kind.db_name(),
                &token.uid,
                &token.auth_key.as_slice(),
                &token.key_bundle,
                &token.created_at,
                &token.user_agent,
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl AccountStore for PostgresAccountStore {
    async fn create_account(
        &self,
        account: &AccountRecord,
        tokens: &[TokenRecord],
        first_only: bool,
    ) -> Result<(), StoreError> {
        let (account, tokens) = (account.clone(), tokens.to_vec());
        self.write(move |tx| {
            let (account, tokens) = (account.clone(), tokens.clone());
            Box::pin(async move {
                if first_only {
                    execute(
                        tx,
                        "SELECT pg_advisory_xact_lock($1)",
                        &[&FIRST_ACCOUNT_LOCK],
                    )
                    .await?;
                    let rows = query(tx, "SELECT 1 FROM fxa_accounts LIMIT 1", &[]).await?;
                    if !rows.is_empty() {
                        return Err(StoreError::NotFirst);
                    }
                }
                let sql = format!(
                    "INSERT INTO fxa_accounts ({ACCOUNT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING"
                );
                let inserted = execute(
                    tx,
                    &sql,
                    &[
                        &account.uid,
                        &account.email,
                        &account.normalized_email,
                        &account.verifier.salt.as_slice(),
                        &account.verifier.cost.encode(),
                        &account.verifier.verify_hash.as_slice(),
                        &account.verifier.wrap_wrap_kb.as_slice(),
                        &account.ka.as_slice(),
                        &account.generation,
                        &account.keys_changed_at,
                        &account.created_at,
                        &account.display_name,
                    ],
                )
                .await?;
                if inserted == 0 {
                    return Err(StoreError::AccountExists);
                }
                insert_tokens(tx, &tokens).await
            })
        })
        .await
    }

    async fn account_by_email(
        &self,
        normalized: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM fxa_accounts WHERE normalized_email = $1");
        let rows = self.read(&sql, &[&normalized]).await?;
        rows.first().map(account_from_row).transpose()
    }

    async fn account_by_uid(&self, uid: &str) -> Result<Option<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM fxa_accounts WHERE uid = $1");
        let rows = self.read(&sql, &[&uid]).await?;
        rows.first().map(account_from_row).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM fxa_accounts ORDER BY normalized_email");
        all(self.read(&sql, &[]).await?, account_from_row)
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        let rows = self.read("SELECT COUNT(*) FROM fxa_accounts", &[]).await?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64)
    }

    async fn delete_account(&self, uid: &str) -> Result<bool, StoreError> {
        let uid = uid.to_owned();
        self.write(move |tx| {
            let uid = uid.clone();
            Box::pin(async move {
                Ok(execute(tx, "DELETE FROM fxa_accounts WHERE uid = $1", &[&uid]).await? > 0)
            })
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
        let (uid, verifier, tokens) = (uid.to_owned(), verifier.clone(), tokens.to_vec());
        self.write(move |tx| {
            let (uid, verifier, tokens) = (uid.clone(), verifier.clone(), tokens.clone());
            Box::pin(async move {
                execute(
                    tx,
                    "UPDATE fxa_accounts SET auth_salt = $2, stretch_cost = $3, verify_hash = $4, \
                     wrap_wrap_kb = $5, generation = GREATEST($6, generation + 1), \
                     keys_changed_at = CASE WHEN $7 THEN GREATEST($6, generation + 1) \
                     ELSE keys_changed_at END WHERE uid = $1",
                    &[
                        &uid,
                        &verifier.salt.as_slice(),
                        &verifier.cost.encode(),
                        &verifier.verify_hash.as_slice(),
                        &verifier.wrap_wrap_kb.as_slice(),
                        &generation,
                        &keys_changed,
                    ],
                )
                .await?;
                execute(
                    tx,
                    "DELETE FROM fxa_devices WHERE uid = $1 AND session_id_hash IS NOT NULL",
                    &[&uid],
                )
                .await?;
                execute(tx, "DELETE FROM fxa_tokens WHERE uid = $1", &[&uid]).await?;
                insert_tokens(tx, &tokens).await
            })
        })
        .await
    }

    async fn set_generation(&self, uid: &str, generation: i64) -> Result<(), StoreError> {
        let uid = uid.to_owned();
        self.write(move |tx| {
            let uid = uid.clone();
            Box::pin(async move {
                execute(
                    tx,
                    "UPDATE fxa_accounts SET generation = $2, \
                     keys_changed_at = LEAST(keys_changed_at, $2) WHERE uid = $1",
                    &[&uid, &generation],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        let tokens = tokens.to_vec();
        self.write(move |tx| {
            let tokens = tokens.clone();
            Box::pin(async move { insert_tokens(tx, &tokens).await })
        })
        .await
    }

    async fn token(
        &self,
        id_hash: &[u8; 32],
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM fxa_tokens WHERE id_hash = $1 AND kind = $2");
        let rows = self
            .read(&sql, &[&id_hash.as_slice(), &kind.db_name()])
            .await?;
        rows.first().map(token_from_row).transpose()
    }

    async fn take_token(
        &self,
        id_hash: &[u8; 32],
        kind: TokenKind,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!(
            "DELETE FROM fxa_tokens WHERE id_hash = $1 AND kind = $2 RETURNING {TOKEN_COLUMNS}"
        );
        let id_hash = *id_hash;
        self.write(move |tx| {
            let sql = sql.clone();
            Box::pin(async move {
                let rows = query(tx, &sql, &[&id_hash.as_slice(), &kind.db_name()]).await?;
                rows.first().map(token_from_row).transpose()
            })
        })
        .await
    }

    async fn delete_token(&self, id_hash: &[u8; 32], kind: TokenKind) -> Result<bool, StoreError> {
        let id_hash = *id_hash;
        self.write(move |tx| {
            Box::pin(async move {
                execute(
                    tx,
                    "DELETE FROM fxa_devices WHERE session_id_hash = $1",
                    &[&id_hash.as_slice()],
                )
                .await?;
                let deleted = execute(
                    tx,
                    "DELETE FROM fxa_tokens WHERE id_hash = $1 AND kind = $2",
                    &[&id_hash.as_slice(), &kind.db_name()],
                )
                .await?;
                Ok(deleted > 0)
            })
        })
        .await
    }

    async fn sessions(&self, uid: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM fxa_tokens WHERE uid = $1 AND kind = $2 \
             ORDER BY created_at"
        );
        let rows = self
            .read(&sql, &[&uid, &TokenKind::Session.db_name()])
            .await?;
        all(rows, token_from_row)
    }

    async fn purge_expired(&self, created_before: i64, now: i64) -> Result<u64, StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let tokens = execute(
                    tx,
                    "DELETE FROM fxa_tokens WHERE kind <> $1 AND created_at < $2",
                    &[&TokenKind::Session.db_name(), &created_before],
                )
                .await?;
                let codes =
                    execute(tx, "DELETE FROM fxa_codes WHERE expires_at < $1", &[&now]).await?;
                Ok(tokens + codes)
            })
        })
        .await
    }

    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO fxa_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        let code = code.clone();
        self.write(move |tx| {
            let (sql, code) = (sql.clone(), code.clone());
            Box::pin(async move {
                execute(
                    tx,
                    &sql,
                    &[
                        &code.code_hash.as_slice(),
                        &code.uid,
                        &code.client_id,
                        &code.scope,
                        &code.code_challenge,
                        &code.keys_jwe,
                        &code.offline,
                        &code.auth_at,
                        &code.expires_at,
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn take_code(&self, code_hash: &[u8; 32]) -> Result<Option<CodeRecord>, StoreError> {
        let sql = format!("DELETE FROM fxa_codes WHERE code_hash = $1 RETURNING {CODE_COLUMNS}");
        let code_hash = *code_hash;
        self.write(move |tx| {
            let sql = sql.clone();
            Box::pin(async move {
                let rows = query(tx, &sql, &[&code_hash.as_slice()]).await?;
                rows.first().map(code_from_row).transpose()
            })
        })
        .await
    }

    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO fxa_refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        );
        let token = token.clone();
        self.write(move |tx| {
            let (sql, token) = (sql.clone(), token.clone());
            Box::pin(async move {
                execute(
                    tx,
                    &sql,
                    &[
                        &token.token_hash.as_slice(),
                        &token.uid,
                        &token.client_id,
                        &token.scope,
                        &token.created_at,
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn refresh(&self, token_hash: &[u8; 32]) -> Result<Option<RefreshRecord>, StoreError> {
        let sql = format!("SELECT {REFRESH_COLUMNS} FROM fxa_refresh_tokens WHERE token_hash = $1");
        let rows = self.read(&sql, &[&token_hash.as_slice()]).await?;
        rows.first().map(refresh_from_row).transpose()
    }

    async fn delete_refresh(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let token_hash = *token_hash;
        self.write(move |tx| {
            Box::pin(async move {
                let deleted = execute(
                    tx,
                    "DELETE FROM fxa_refresh_tokens WHERE token_hash = $1",
                    &[&token_hash.as_slice()],
                )
                .await?;
                Ok(deleted > 0)
            })
        })
        .await
    }

    async fn refresh_tokens(&self, uid: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        let sql = format!(
            "SELECT {REFRESH_COLUMNS} FROM fxa_refresh_tokens WHERE uid = $1 ORDER BY created_at"
        );
        all(self.read(&sql, &[&uid]).await?, refresh_from_row)
    }

    async fn upsert_device(&self, device: &DeviceRecord) -> Result<DeviceRecord, StoreError> {
        let device = device.clone();
        self.write(move |tx| {
            let device = device.clone();
            Box::pin(async move {
                let session = device.session_id_hash.as_ref().map(|h| h.as_slice());
                let existing = query(
                    tx,
                    "SELECT id, created_at FROM fxa_devices WHERE uid = $1 \
                     AND (id = $2 OR (session_id_hash IS NOT NULL AND session_id_hash = $3)) \
                     FOR UPDATE",
                    &[&device.uid, &device.id, &session],
                )
                .await?;
                let (id, created_at): (String, i64) = match existing.first() {
                    Some(row) => (row.get(0), row.get(1)),
                    None => (device.id.clone(), device.created_at),
                };
                let sql = format!(
                    "INSERT INTO fxa_devices ({DEVICE_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET session_id_hash = excluded.session_id_hash, \
                     name = excluded.name, device_type = excluded.device_type, \
                     push_callback = excluded.push_callback, \
                     push_public_key = excluded.push_public_key, \
                     push_auth_key = excluded.push_auth_key, \
                     available_commands = excluded.available_commands, \
                     last_access_at = excluded.last_access_at \
                     RETURNING {DEVICE_COLUMNS}"
                );
                let rows = query(
                    tx,
                    &sql,
                    &[
                        &id,
                        &device.uid,
                        &session,
                        &device.name,
                        &device.device_type,
                        &device.push_callback,
                        &device.push_public_key,
                        &device.push_auth_key,
                        &device.available_commands,
                        &created_at,
                        &device.last_access_at,
                    ],
                )
                .await?;
                let row = rows
                    .first()
                    .ok_or_else(|| StoreError::Backend("upsert returned no row".into()))?;
                device_from_row(row)
            })
        })
        .await
    }

    async fn devices(&self, uid: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        let sql =
            format!("SELECT {DEVICE_COLUMNS} FROM fxa_devices WHERE uid = $1 ORDER BY created_at");
        all(self.read(&sql, &[&uid]).await?, device_from_row)
    }

    async fn delete_device(&self, uid: &str, id: &str) -> Result<bool, StoreError> {
        let (uid, id) = (uid.to_owned(), id.to_owned());
        self.write(move |tx| {
            let (uid, id) = (uid.clone(), id.clone());
            Box::pin(async move {
                let rows = query(
                    tx,
                    "DELETE FROM fxa_devices WHERE uid = $1 AND id = $2 RETURNING session_id_hash",
                    &[&uid, &id],
                )
                .await?;
                let Some(row) = rows.first() else {
                    return Ok(false);
                };
                let session: Option<Vec<u8>> = row.get(0);
                if let Some(session) = session {
                    execute(tx, "DELETE FROM fxa_tokens WHERE id_hash = $1", &[&session]).await?;
                }
                Ok(true)
            })
        })
        .await
    }
}
