//! Statements on the `nodes` table, and the choice of a node for a new user (the rule is in
//! the crate docs; the choice itself is `rules::pick`, shared with SQLite).

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::{Ctx, backend, execute, is_unique_violation, query};
use crate::rules::{Candidate, RELEASE_ROUNDS, pick};
use crate::{Node, NodeChange, TokenStoreError};

const NODE_COLUMNS: &str = "id, node, capacity, available, current_load, downed, backoff";

/// Chooses the best node, releasing capacity when every node has spent its budget, with the
/// candidates locked until the caller's transaction ends.
pub async fn best_node(tx: &Transaction<'_>, ctx: Ctx) -> Result<Candidate, TokenStoreError> {
    for _ in 0..RELEASE_ROUNDS {
        if let Some(best) = pick(candidates(tx, ctx).await?) {
            return Ok(best);
        }
        if release_capacity(tx, ctx).await? == 0 {
            break;
        }
    }
    tracing::warn!("no storage node can take a new user");
    Err(TokenStoreError::NoNodeAvailable)
}

/// Takes one slot on the chosen node (locked by `best_node`).
pub async fn take_slot(tx: &Transaction<'_>, node_id: i64) -> Result<(), TokenStoreError> {
    execute(
        tx,
        "UPDATE nodes SET current_load = current_load + 1, \
                          available = GREATEST(available - 1, 0) \
         WHERE id = $1",
        &[&node_id],
    )
    .await?;
    Ok(())
}

/// Nodes that may take a new user now, locked in id order (one order for every
/// transaction, so two allocations cannot deadlock on them). A transaction that waited for
/// a lock sees the committed row and drops it if it no longer qualifies.
async fn candidates(tx: &Transaction<'_>, ctx: Ctx) -> Result<Vec<Candidate>, TokenStoreError> {
    let rows = query(
        tx,
        "SELECT id, node, current_load, capacity FROM nodes \
         WHERE service = $1 AND available > 0 AND capacity > current_load \
           AND NOT downed AND NOT backoff \
         ORDER BY id FOR UPDATE",
        &[&ctx.service],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Candidate {
            id: row.get(0),
            url: row.get(1),
            current_load: row.get(2),
            capacity: row.get(3),
        })
        .collect())
}

/// Gives each node that spent its budget and still has room (and is not down) a slice of
/// its capacity back: the SQLite backend's statement, rounding half up as it does.
async fn release_capacity(tx: &Transaction<'_>, ctx: Ctx) -> Result<u64, TokenStoreError> {
    let refilled = execute(
        tx,
        "UPDATE nodes \
         SET available = LEAST(GREATEST(FLOOR(capacity * $2::FLOAT8 + 0.5)::BIGINT, 1), \
                               capacity - current_load) \
         WHERE service = $1 AND available <= 0 AND capacity > current_load AND NOT downed",
        &[&ctx.service, &ctx.release_rate],
    )
    .await?;
    if refilled > 0 {
        tracing::info!(nodes = refilled, "released node capacity");
    }
    Ok(refilled)
}

/// Adds a node; its whole capacity is available.
pub async fn add(
    client: &impl GenericClient,
    ctx: Ctx,
    url: &str,
    capacity: i64,
) -> Result<Node, TokenStoreError> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO nodes (service, node, available, current_load, capacity, downed, backoff) \
             VALUES ($1, $2, $3, 0, $3, FALSE, FALSE) RETURNING {NODE_COLUMNS}"
        ))
        .await
        .map_err(backend)?;
    match client
        .query_one(&statement, &[&ctx.service, &url, &capacity])
        .await
    {
        Ok(row) => Ok(node_from_row(&row)),
        Err(error) if is_unique_violation(&error) => Err(TokenStoreError::NodeExists),
        Err(error) => Err(backend(error)),
    }
}

/// Adds a node unless one with this URL exists, which is returned as it is.
pub async fn ensure(
    client: &impl GenericClient,
    ctx: Ctx,
    url: &str,
    capacity: i64,
) -> Result<Node, TokenStoreError> {
    execute(
        client,
        "INSERT INTO nodes (service, node, available, current_load, capacity, downed, backoff) \
         VALUES ($1, $2, $3, 0, $3, FALSE, FALSE) ON CONFLICT (service, node) DO NOTHING",
        &[&ctx.service, &url, &capacity],
    )
    .await?;
    find(client, ctx, url)
        .await?
        .ok_or(TokenStoreError::NodeNotFound)
}

/// All nodes of the service, by URL. `COLLATE "C"` orders bytewise, as SQLite does,
/// whatever the database's collation.
pub async fn list(client: &impl GenericClient, ctx: Ctx) -> Result<Vec<Node>, TokenStoreError> {
    let rows = query(
        client,
        &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE service = $1 ORDER BY node COLLATE \"C\""),
        &[&ctx.service],
    )
    .await?;
    Ok(rows.iter().map(node_from_row).collect())
}

/// Changes the fields `change` names and returns the node as it is now (one statement).
pub async fn update(
    client: &impl GenericClient,
    ctx: Ctx,
    url: &str,
    change: &NodeChange,
) -> Result<Node, TokenStoreError> {
    let rows = query(
        client,
        &format!(
            "UPDATE nodes SET \
               capacity = COALESCE($3, capacity), \
               available = COALESCE($4, available), \
               current_load = COALESCE($5, current_load), \
               downed = COALESCE($6, downed), \
               backoff = COALESCE($7, backoff) \
             WHERE service = $1 AND node = $2 RETURNING {NODE_COLUMNS}"
        ),
        &[
            &ctx.service,
            &url,
            &change.capacity,
            &change.available,
            &change.current_load,
            &change.downed,
            &change.backoff,
        ],
    )
    .await?;
    rows.first()
        .map(node_from_row)
        .ok_or(TokenStoreError::NodeNotFound)
}

/// Deletes the node and marks its users replaced (the rows stay for the purge).
pub async fn remove(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    now_ms: i64,
) -> Result<u64, TokenStoreError> {
    let rows = query(
        tx,
        "DELETE FROM nodes WHERE service = $1 AND node = $2 RETURNING id",
        &[&ctx.service, &url],
    )
    .await?;
    let node_id: i64 = rows.first().ok_or(TokenStoreError::NodeNotFound)?.get(0);
    let unassigned = unassign_users(tx, node_id, now_ms).await?;
    tracing::info!(node = url, users = unassigned, "removed node");
    Ok(unassigned)
}

/// Marks every current user of the node replaced, leaving the node (and its load) alone.
pub async fn unassign(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    now_ms: i64,
) -> Result<u64, TokenStoreError> {
    let node = find(tx, ctx, url)
        .await?
        .ok_or(TokenStoreError::NodeNotFound)?;
    let unassigned = unassign_users(tx, node.id, now_ms).await?;
    tracing::info!(node = url, users = unassigned, "unassigned node's users");
    Ok(unassigned)
}

/// Rows already replaced keep their `replaced_at`.
async fn unassign_users(
    tx: &Transaction<'_>,
    node_id: i64,
    now_ms: i64,
) -> Result<u64, TokenStoreError> {
    execute(
        tx,
        "UPDATE users SET replaced_at = $1 WHERE nodeid = $2 AND replaced_at IS NULL",
        &[&now_ms, &node_id],
    )
    .await
}

async fn find(
    client: &impl GenericClient,
    ctx: Ctx,
    url: &str,
) -> Result<Option<Node>, TokenStoreError> {
    let rows = query(
        client,
        &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE service = $1 AND node = $2"),
        &[&ctx.service, &url],
    )
    .await?;
    Ok(rows.first().map(node_from_row))
}

fn node_from_row(row: &Row) -> Node {
    Node {
        id: row.get(0),
        url: row.get(1),
        capacity: row.get(2),
        available: row.get(3),
        current_load: row.get(4),
        downed: row.get(5),
        backoff: row.get(6),
    }
}
