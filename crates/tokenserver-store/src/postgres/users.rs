//! Statements on the `users` table (see the SQLite backend's `users` for the row model).

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::{Ctx, execute, nodes, query};
use crate::rules::{Summary, reusable, summarize};
use crate::{TokenStoreError, UserKeys, UserRecord, UserState};

/// How many of an account's rows are read to find its current one and its old client
/// states (as in the reference).
const RECENT_ROWS: i64 = 20;

const USER_COLUMNS: &str = "users.uid, users.email, users.generation, users.client_state, \
     users.keys_changed_at, users.created_at, users.replaced_at, nodes.node, users.nodeid";

/// What the account's newest rows say, without locking anything.
pub async fn read(
    client: &impl GenericClient,
    ctx: Ctx,
    email: &str,
) -> Result<Option<Summary>, TokenStoreError> {
    let rows = query(
        client,
        &format!(
            "SELECT {USER_COLUMNS} \
             FROM users LEFT JOIN nodes ON nodes.id = users.nodeid \
             WHERE users.email = $1 AND users.service = $2 \
             ORDER BY users.created_at DESC, users.uid DESC \
             LIMIT $3"
        ),
        &[&email, &ctx.service, &RECENT_ROWS],
    )
    .await?;
    Ok(summarize(rows.iter().map(user_from_row).collect()))
}

/// Serializes the transactions that create or repair an account's rows, across processes,
/// until the caller's transaction ends. Different accounts rarely share a key (a 64-bit
/// hash of the service and email), and when they do they only wait for each other.
async fn lock_account(tx: &Transaction<'_>, ctx: Ctx, email: &str) -> Result<(), TokenStoreError> {
    query(
        tx,
        "SELECT pg_advisory_xact_lock(hashtext('syncstack-token-user') # $1::INT, hashtext($2))",
        &[&(ctx.service as i32), &email],
    )
    .await?;
    Ok(())
}

/// Marks rows that a race left unreplaced, under the account's lock, and returns the state.
pub async fn repair(
    tx: &Transaction<'_>,
    ctx: Ctx,
    email: &str,
    now_ms: i64,
) -> Result<Option<UserState>, TokenStoreError> {
    lock_account(tx, ctx, email).await?;
    let Some(summary) = read(tx, ctx, email).await? else {
        return Ok(None);
    };
    for uid in &summary.unreplaced {
        execute(
            tx,
            "UPDATE users SET replaced_at = $1 WHERE uid = $2 AND replaced_at IS NULL",
            &[&now_ms, &(*uid as i64)],
        )
        .await?;
    }
    if !summary.unreplaced.is_empty() {
        tracing::info!(
            rows = summary.unreplaced.len(),
            "marked a user's older rows replaced"
        );
    }
    Ok(Some(summary.state))
}

/// Creates a row for `keys` on the best node and marks the account's other rows replaced,
/// or returns the row a concurrent allocation made (`rules::reusable`).
pub async fn allocate(
    tx: &Transaction<'_>,
    ctx: Ctx,
    keys: &UserKeys,
    now_ms: i64,
) -> Result<UserRecord, TokenStoreError> {
    lock_account(tx, ctx, &keys.email).await?;
    if let Some(summary) = read(tx, ctx, &keys.email).await?
        && let Some(record) = reusable(&summary.state, keys)
    {
        update(tx, record.uid, keys.generation, keys.keys_changed_at).await?;
        tracing::info!(uid = record.uid, "allocation joined a concurrent one");
        return Ok(record);
    }
    let node = nodes::best_node(tx, ctx).await?;
    nodes::take_slot(tx, node.id).await?;
    // Replaced first, so the new row is the account's only unreplaced one when inserted
    // (the partial unique index would refuse a second).
    let replaced = execute(
        tx,
        "UPDATE users SET replaced_at = $1 \
         WHERE service = $2 AND email = $3 AND replaced_at IS NULL",
        &[&now_ms, &ctx.service, &keys.email],
    )
    .await?;
    let rows = query(
        tx,
        "INSERT INTO users (service, email, generation, client_state, created_at, \
                            replaced_at, nodeid, keys_changed_at) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6, $7) RETURNING uid",
        &[
            &ctx.service,
            &keys.email,
            &keys.generation,
            &keys.client_state,
            &now_ms,
            &node.id,
            &keys.keys_changed_at,
        ],
    )
    .await
    .map_err(|error| match error {
        // Only a writer that skipped the account lock could get here first.
        TokenStoreError::Backend(text) if text.contains("current_user_idx") => {
            TokenStoreError::Conflict
        }
        other => other,
    })?;
    let uid: i64 = rows
        .first()
        .ok_or_else(|| TokenStoreError::Backend("INSERT returned no uid".into()))?
        .get(0);
    tracing::info!(uid, node = %node.url, replaced, "allocated user to node");
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

/// Moves `generation` and `keys_changed_at` forward, never back, on a current row only
/// (one statement, so concurrent updates cannot undo each other).
pub async fn update(
    client: &impl GenericClient,
    uid: u64,
    generation: i64,
    keys_changed_at: Option<i64>,
) -> Result<(), TokenStoreError> {
    execute(
        client,
        "UPDATE users SET \
           generation = GREATEST(generation, $2), \
           keys_changed_at = CASE \
             WHEN keys_changed_at IS NULL AND $3::BIGINT IS NULL THEN NULL \
             ELSE GREATEST(COALESCE(keys_changed_at, 0), COALESCE($3::BIGINT, 0)) \
           END \
         WHERE uid = $1 AND replaced_at IS NULL",
        &[&(uid as i64), &generation, &keys_changed_at],
    )
    .await?;
    Ok(())
}

/// Rows replaced before `before_ms`, oldest replacement first.
pub async fn replaced(
    client: &impl GenericClient,
    ctx: Ctx,
    before_ms: i64,
    limit: u32,
) -> Result<Vec<UserRecord>, TokenStoreError> {
    let rows = query(
        client,
        &format!(
            "SELECT {USER_COLUMNS} \
             FROM users LEFT JOIN nodes ON nodes.id = users.nodeid \
             WHERE users.service = $1 AND users.replaced_at < $2 \
             ORDER BY users.replaced_at, users.uid \
             LIMIT $3"
        ),
        &[&ctx.service, &before_ms, &i64::from(limit)],
    )
    .await?;
    Ok(rows.iter().map(user_from_row).collect())
}

fn user_from_row(row: &Row) -> UserRecord {
    UserRecord {
        uid: row.get::<_, i64>(0) as u64,
        email: row.get(1),
        generation: row.get(2),
        client_state: row.get(3),
        keys_changed_at: row.get(4),
        created_at: row.get(5),
        replaced_at: row.get(6),
        node: row.get(7),
        node_id: row.get(8),
    }
}
