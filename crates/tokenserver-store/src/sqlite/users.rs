//! Statements on the `users` table.
//!
//! An account has one row per client state and node assignment; the newest (by generation,
//! then creation time) is current and the others are marked replaced. Rows are never
//! updated in place except for the forward-only `generation` / `keys_changed_at` update and
//! `replaced_at`, so a uid always names the same storage bucket.

use std::sync::LazyLock;

use rusqlite::{Connection, Row, Transaction, params};
use sqlite_support::limit_clause;

use super::{Ctx, backend, begin_write, nodes};
use crate::rules::{reusable, summarize};
use crate::{TokenStoreError, UserKeys, UserRecord, UserState};

/// How many of an account's rows are read to find its current one and its old client
/// states (as in the reference).
const RECENT_ROWS: u64 = 20;

/// An account's newest rows; built once, since every token request runs it.
static RECENT_ROWS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT users.uid, users.email, users.generation, users.client_state, \
                users.keys_changed_at, users.created_at, users.replaced_at, \
                nodes.node, users.nodeid \
         FROM users LEFT JOIN nodes ON nodes.id = users.nodeid \
         WHERE users.email = ?1 AND users.service = ?2 \
         ORDER BY users.created_at DESC, users.uid DESC{}",
        limit_clause(RECENT_ROWS)
    )
});

/// The user's current record and old client states; older rows that a race left
/// unreplaced are marked replaced at `now_ms`.
///
/// The first read takes no lock. Only when a repair is needed are the rows read again
/// inside a write transaction, so that what is repaired is what is locked.
pub fn get_user(
    conn: &mut Connection,
    ctx: Ctx,
    email: &str,
    now_ms: i64,
) -> Result<Option<UserState>, TokenStoreError> {
    let Some(summary) = summarize(recent_rows(conn, ctx, email)?) else {
        return Ok(None);
    };
    if summary.unreplaced.is_empty() {
        return Ok(Some(summary.state));
    }
    let tx = begin_write(conn)?;
    let Some(summary) = summarize(recent_rows(&tx, ctx, email)?) else {
        return Ok(None);
    };
    for uid in &summary.unreplaced {
        tx.prepare_cached(
            "UPDATE users SET replaced_at = ?1 WHERE uid = ?2 AND replaced_at IS NULL",
        )
        .and_then(|mut stmt| stmt.execute(params![now_ms, *uid as i64]))
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    tracing::info!(
        rows = summary.unreplaced.len(),
        "marked a user's older rows replaced"
    );
    Ok(Some(summary.state))
}

/// The account's newest rows, with their node's URL (None when the node row is gone).
fn recent_rows(
    conn: &Connection,
    ctx: Ctx,
    email: &str,
) -> Result<Vec<UserRecord>, TokenStoreError> {
    let mut stmt = conn.prepare_cached(&RECENT_ROWS_SQL).map_err(backend)?;
    let rows = stmt
        .query_map(params![email, ctx.service], user_from_row)
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// Creates a row for `keys` on the best node and marks every other unreplaced row of the
/// account replaced, all in the caller's write transaction, unless a concurrent request
/// already made the row (`rules::reusable`): then that row is returned, moved forward.
/// The immediate transaction holds the file's write lock, so the account's rows cannot
/// change between this read and the insert.
pub fn allocate_user(
    tx: &Transaction<'_>,
    ctx: Ctx,
    keys: &UserKeys,
    now_ms: i64,
) -> Result<UserRecord, TokenStoreError> {
    if let Some(summary) = summarize(recent_rows(tx, ctx, &keys.email)?)
        && let Some(record) = reusable(&summary.state, keys)
    {
        update_user(tx, record.uid, keys.generation, keys.keys_changed_at)?;
        tracing::info!(uid = record.uid, "allocation joined a concurrent one");
        return Ok(record);
    }
    let node = nodes::best_node(tx, ctx)?;
    nodes::take_slot(tx, node.id)?;
    tx.prepare_cached(
        "INSERT INTO users (service, email, generation, client_state, created_at, \
                            replaced_at, nodeid, keys_changed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            ctx.service,
            keys.email,
            keys.generation,
            keys.client_state,
            now_ms,
            node.id,
            keys.keys_changed_at,
        ])
    })
    .map_err(backend)?;
    let uid = tx.last_insert_rowid();
    let replaced = tx
        .prepare_cached(
            "UPDATE users SET replaced_at = ?1 \
             WHERE service = ?2 AND email = ?3 AND replaced_at IS NULL AND uid <> ?4",
        )
        .and_then(|mut stmt| stmt.execute(params![now_ms, ctx.service, keys.email, uid]))
        .map_err(backend)?;
    tracing::info!(
        uid,
        node = %node.url,
        replaced,
        "allocated user to node"
    );
    Ok(UserRecord {
        uid: uid as u64,
        email: keys.email.clone(),
        generation: keys.generation,
        client_state: keys.client_state.clone(),
        keys_changed_at: keys.keys_changed_at,
        created_at: now_ms,
        replaced_at: None,
        node: Some(node.url),
        node_id: node.id,
    })
}

/// Moves `generation` and `keys_changed_at` forward, never back, and only on a current row.
/// `keys_changed_at` stays NULL when neither the row nor the request has one. A uid that is
/// unknown or replaced (a concurrent request changed the client state) is left alone, as
/// the reference does: the request that replaced it carried newer values.
pub fn update_user(
    tx: &Transaction<'_>,
    uid: u64,
    generation: i64,
    keys_changed_at: Option<i64>,
) -> Result<(), TokenStoreError> {
    tx.prepare_cached(
        "UPDATE users SET \
           generation = MAX(generation, ?2), \
           keys_changed_at = CASE \
             WHEN keys_changed_at IS NULL AND ?3 IS NULL THEN NULL \
             ELSE MAX(COALESCE(keys_changed_at, 0), COALESCE(?3, 0)) \
           END \
         WHERE uid = ?1 AND replaced_at IS NULL",
    )
    .and_then(|mut stmt| stmt.execute(params![uid as i64, generation, keys_changed_at]))
    .map_err(backend)?;
    Ok(())
}

/// Rows replaced before `before_ms`, oldest replacement first.
pub fn replaced_users(
    conn: &Connection,
    ctx: Ctx,
    before_ms: i64,
    limit: u32,
) -> Result<Vec<UserRecord>, TokenStoreError> {
    let sql = format!(
        "SELECT users.uid, users.email, users.generation, users.client_state, \
                users.keys_changed_at, users.created_at, users.replaced_at, \
                nodes.node, users.nodeid \
         FROM users LEFT JOIN nodes ON nodes.id = users.nodeid \
         WHERE users.service = ?1 AND users.replaced_at < ?2 \
         ORDER BY users.replaced_at, users.uid{}",
        limit_clause(limit.into())
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params![ctx.service, before_ms], user_from_row)
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// Deletes one row. Deleting a row that is already gone succeeds, so a purge that is
/// interrupted and run again does not fail on it.
pub fn delete_user_record(tx: &Transaction<'_>, uid: u64) -> Result<(), TokenStoreError> {
    tx.prepare_cached("DELETE FROM users WHERE uid = ?1")
        .and_then(|mut stmt| stmt.execute([uid as i64]))
        .map_err(backend)?;
    Ok(())
}

/// Reads the columns `recent_rows` and `replaced_users` select, in their order.
fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        uid: row.get::<_, i64>(0)? as u64,
        email: row.get(1)?,
        generation: row.get(2)?,
        client_state: row.get(3)?,
        keys_changed_at: row.get(4)?,
        created_at: row.get(5)?,
        replaced_at: row.get(6)?,
        node: row.get(7)?,
        node_id: row.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenStore;
    use crate::sqlite::SqliteTokenStore;

    fn keys(email: &str, generation: i64, client_state: &str) -> UserKeys {
        UserKeys {
            email: email.into(),
            generation,
            client_state: client_state.into(),
            keys_changed_at: None,
        }
    }

    /// Two rows both left unreplaced (as a race between two processes could leave them)
    /// are repaired by the next lookup. The trait cannot produce this state, so the test
    /// makes it by hand.
    #[tokio::test]
    async fn get_user_marks_rows_a_race_left_unreplaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteTokenStore::open(&dir.path().join("t.db"), true).unwrap();
        store.add_node("https://n1", 10).await.unwrap();
        let old = store
            .allocate_user(&keys("a@x", 1, "aa"), 1000)
            .await
            .unwrap();
        let new = store
            .allocate_user(&keys("a@x", 2, "bb"), 2000)
            .await
            .unwrap();
        {
            let conn = store.conn.lock().unwrap();
            conn.execute("UPDATE users SET replaced_at = NULL", [])
                .unwrap();
        }
        let state = store.get_user("a@x").await.unwrap().unwrap();
        assert_eq!(state.current.uid, new.uid);
        assert_eq!(state.current.replaced_at, None);
        assert_eq!(state.old_client_states, vec!["aa"]);
        let conn = store.conn.lock().unwrap();
        let replaced: Option<i64> = conn
            .query_row(
                "SELECT replaced_at FROM users WHERE uid = ?1",
                [old.uid as i64],
                |row| row.get(0),
            )
            .unwrap();
        assert!(replaced.is_some());
    }
}
