//! The SQLite schema and the conversion of its rows.

use rusqlite::Row;

use crate::onepw::{StoredKind, StretchCost, TokenKind, Verifier};
use crate::store::{AccountRecord, CodeRecord, DeviceRecord, RefreshRecord, TokenRecord};

/// Each entry moves the schema one version forward; never edit a shipped one.
pub(super) const MIGRATIONS: &[&str] = &[r#"
    -- Times are milliseconds since the Unix epoch unless named otherwise.
    CREATE TABLE accounts (
        uid              TEXT PRIMARY KEY,
        email            TEXT NOT NULL,
        normalized_email TEXT NOT NULL UNIQUE,
        auth_salt        BLOB NOT NULL,
        stretch_cost     TEXT NOT NULL,
        verify_hash      BLOB NOT NULL,
        wrap_wrap_kb     BLOB NOT NULL,
        ka               BLOB NOT NULL,
        generation       INTEGER NOT NULL,
        keys_changed_at  INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        display_name     TEXT
    );
    -- Sessions, key fetch and password change tokens, by SHA-256 of their id.
    CREATE TABLE tokens (
        id_hash    BLOB PRIMARY KEY,
        kind       TEXT NOT NULL,
        uid        TEXT NOT NULL REFERENCES accounts (uid) ON DELETE CASCADE,
        auth_key   BLOB NOT NULL,
        key_bundle BLOB,
        created_at INTEGER NOT NULL,
        user_agent TEXT
    );
    CREATE INDEX tokens_by_uid ON tokens (uid);
    CREATE TABLE codes (
        code_hash      BLOB PRIMARY KEY,
        uid            TEXT NOT NULL REFERENCES accounts (uid) ON DELETE CASCADE,
        client_id      TEXT NOT NULL,
        scope          TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        keys_jwe       TEXT,
        offline        INTEGER NOT NULL,
        auth_at        INTEGER NOT NULL, -- seconds
        expires_at     INTEGER NOT NULL
    );
    CREATE TABLE refresh_tokens (
        token_hash BLOB PRIMARY KEY,
        uid        TEXT NOT NULL REFERENCES accounts (uid) ON DELETE CASCADE,
        client_id  TEXT NOT NULL,
        scope      TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX refresh_tokens_by_uid ON refresh_tokens (uid);
    CREATE TABLE devices (
        id                 TEXT PRIMARY KEY,
        uid                TEXT NOT NULL REFERENCES accounts (uid) ON DELETE CASCADE,
        session_id_hash    BLOB UNIQUE,
        name               TEXT NOT NULL,
        device_type        TEXT NOT NULL,
        push_callback      TEXT,
        push_public_key    TEXT,
        push_auth_key      TEXT,
        available_commands TEXT NOT NULL,
        created_at         INTEGER NOT NULL,
        last_access_at     INTEGER NOT NULL
    );
    CREATE INDEX devices_by_uid ON devices (uid);
"#];

pub(super) const ACCOUNT_COLUMNS: &str = "uid, email, normalized_email, auth_salt, stretch_cost, \
    verify_hash, wrap_wrap_kb, ka, generation, keys_changed_at, created_at, display_name";
pub(super) const TOKEN_COLUMNS: &str =
    "id_hash, kind, uid, auth_key, key_bundle, created_at, user_agent";
pub(super) const DEVICE_COLUMNS: &str = "id, uid, session_id_hash, name, device_type, push_callback, \
    push_public_key, push_auth_key, available_commands, created_at, last_access_at";

pub(super) fn key32(bytes: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            bytes.len(),
            rusqlite::types::Type::Blob,
            "expected 32 bytes".into(),
        )
    })
}

pub(super) fn conversion(message: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, message.into())
}

pub(super) fn account_from_row(row: &Row<'_>) -> rusqlite::Result<AccountRecord> {
    let cost: String = row.get(4)?;
    Ok(AccountRecord {
        uid: row.get(0)?,
        email: row.get(1)?,
        normalized_email: row.get(2)?,
        verifier: Verifier {
            salt: key32(row.get(3)?)?,
            cost: StretchCost::decode(&cost).ok_or_else(|| conversion("stretch cost"))?,
            verify_hash: key32(row.get(5)?)?,
            wrap_wrap_kb: key32(row.get(6)?)?,
        },
        ka: key32(row.get(7)?)?,
        generation: row.get(8)?,
        keys_changed_at: row.get(9)?,
        created_at: row.get(10)?,
        display_name: row.get(11)?,
    })
}

pub(super) fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let kind: String = row.get(1)?;
    Ok(TokenRecord {
        id_hash: key32(row.get(0)?)?,
        kind: TokenKind::from_db_name(&kind).ok_or_else(|| conversion("token kind"))?,
        uid: row.get(2)?,
        auth_key: key32(row.get(3)?)?,
        key_bundle: row.get(4)?,
        created_at: row.get(5)?,
        user_agent: row.get(6)?,
    })
}

pub(super) fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let session: Option<Vec<u8>> = row.get(2)?;
    Ok(DeviceRecord {
        id: row.get(0)?,
        uid: row.get(1)?,
        session_id_hash: session.map(key32).transpose()?,
        name: row.get(3)?,
        device_type: row.get(4)?,
        push_callback: row.get(5)?,
        push_public_key: row.get(6)?,
        push_auth_key: row.get(7)?,
        available_commands: row.get(8)?,
        created_at: row.get(9)?,
        last_access_at: row.get(10)?,
    })
}

pub(super) fn code_from_row(row: &Row<'_>) -> rusqlite::Result<CodeRecord> {
    Ok(CodeRecord {
        code_hash: key32(row.get(0)?)?,
        uid: row.get(1)?,
        client_id: row.get(2)?,
        scope: row.get(3)?,
        code_challenge: row.get(4)?,
        keys_jwe: row.get(5)?,
        offline: row.get(6)?,
        auth_at: row.get(7)?,
        expires_at: row.get(8)?,
    })
}

pub(super) fn refresh_from_row(row: &Row<'_>) -> rusqlite::Result<RefreshRecord> {
    Ok(RefreshRecord {
        token_hash: key32(row.get(0)?)?,
        uid: row.get(1)?,
        client_id: row.get(2)?,
        scope: row.get(3)?,
        created_at: row.get(4)?,
    })
}
