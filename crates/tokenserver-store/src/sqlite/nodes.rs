//! Statements on the `nodes` table, and the choice of a node for a new user (the rule is
//! described in `rules`).

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{Ctx, backend, is_unique_violation};
use crate::rules::{Candidate, RELEASE_ROUNDS, pick};
use crate::{Node, NodeChange, TokenStoreError};

/// Chooses the best node, releasing capacity when every node has spent its budget. Runs in
/// the caller's write transaction, so the choice and the slot taken on it commit together.
pub fn best_node(tx: &Transaction<'_>, ctx: Ctx) -> Result<Candidate, TokenStoreError> {
    for _ in 0..RELEASE_ROUNDS {
        if let Some(best) = pick(candidates(tx, ctx)?) {
            return Ok(best);
        }
        if release_capacity(tx, ctx)? == 0 {
            break;
        }
    }
    tracing::warn!("no storage node can take a new user");
    Err(TokenStoreError::NoNodeAvailable)
}

/// Takes one slot on the chosen node.
pub fn take_slot(tx: &Transaction<'_>, node_id: i64) -> Result<(), TokenStoreError> {
    tx.prepare_cached(
        "UPDATE nodes SET current_load = current_load + 1, available = MAX(available - 1, 0) \
         WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute([node_id]))
    .map_err(backend)?;
    Ok(())
}

/// Nodes that may take a new user now.
fn candidates(tx: &Transaction<'_>, ctx: Ctx) -> Result<Vec<Candidate>, TokenStoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, node, current_load, capacity FROM nodes \
             WHERE service = ?1 AND available > 0 AND capacity > current_load \
               AND downed = 0 AND backoff = 0",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([ctx.service], |row| {
            Ok(Candidate {
                id: row.get(0)?,
                url: row.get(1)?,
                current_load: row.get(2)?,
                capacity: row.get(3)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// Gives each node that spent its budget and still has room (and is not down) a slice of
/// its capacity back. Returns how many nodes were refilled.
fn release_capacity(tx: &Transaction<'_>, ctx: Ctx) -> Result<usize, TokenStoreError> {
    // `+ 0.5` then CAST rounds to nearest, as storing the value in an integer column does on
    // MySQL and PostgreSQL. `MAX(.., 1)` is this backend's floor (see the module docs).
    let refilled = tx
        .prepare_cached(
            "UPDATE nodes \
             SET available = MIN(MAX(CAST(capacity * ?2 + 0.5 AS INTEGER), 1), \
                                 capacity - current_load) \
             WHERE service = ?1 AND available <= 0 AND capacity > current_load AND downed = 0",
        )
        .and_then(|mut stmt| stmt.execute(params![ctx.service, ctx.release_rate]))
        .map_err(backend)?;
    if refilled > 0 {
        tracing::info!(nodes = refilled, "released node capacity");
    }
    Ok(refilled)
}

/// Adds a node; its whole capacity is available.
pub fn add(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    capacity: i64,
) -> Result<Node, TokenStoreError> {
    tx.prepare_cached(
        "INSERT INTO nodes (service, node, available, current_load, capacity, downed, backoff) \
         VALUES (?1, ?2, ?3, 0, ?3, 0, 0)",
    )
    .and_then(|mut stmt| stmt.execute(params![ctx.service, url, capacity]))
    .map_err(|e| {
        if is_unique_violation(&e) {
            TokenStoreError::NodeExists
        } else {
            backend(e)
        }
    })?;
    find(tx, ctx, url)?.ok_or(TokenStoreError::NodeNotFound)
}

/// Adds a node unless one with this URL exists. An existing node is returned as it is: its
/// capacity is not changed, so that a restart with a different setting does not undo an
/// operator's change.
pub fn ensure(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    capacity: i64,
) -> Result<Node, TokenStoreError> {
    tx.prepare_cached(
        "INSERT INTO nodes (service, node, available, current_load, capacity, downed, backoff) \
         VALUES (?1, ?2, ?3, 0, ?3, 0, 0) ON CONFLICT (service, node) DO NOTHING",
    )
    .and_then(|mut stmt| stmt.execute(params![ctx.service, url, capacity]))
    .map_err(backend)?;
    find(tx, ctx, url)?.ok_or(TokenStoreError::NodeNotFound)
}

/// All nodes of the service, by URL.
pub fn list(conn: &Connection, ctx: Ctx) -> Result<Vec<Node>, TokenStoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, node, capacity, available, current_load, downed, backoff \
             FROM nodes WHERE service = ?1 ORDER BY node",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([ctx.service], node_from_row)
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// Changes the fields `change` names and returns the node as it is now.
pub fn update(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    change: &NodeChange,
) -> Result<Node, TokenStoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE nodes SET \
               capacity = COALESCE(?3, capacity), \
               available = COALESCE(?4, available), \
               current_load = COALESCE(?5, current_load), \
               downed = COALESCE(?6, downed), \
               backoff = COALESCE(?7, backoff) \
             WHERE service = ?1 AND node = ?2",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                ctx.service,
                url,
                change.capacity,
                change.available,
                change.current_load,
                change.downed.map(i64::from),
                change.backoff.map(i64::from),
            ])
        })
        .map_err(backend)?;
    if changed == 0 {
        return Err(TokenStoreError::NodeNotFound);
    }
    find(tx, ctx, url)?.ok_or(TokenStoreError::NodeNotFound)
}

/// Deletes the node and marks its users replaced. The user rows stay: the purge still needs
/// them, and a user's next token request finds no node and allocates a new one.
pub fn remove(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    now_ms: i64,
) -> Result<u64, TokenStoreError> {
    let node = find(tx, ctx, url)?.ok_or(TokenStoreError::NodeNotFound)?;
    tx.prepare_cached("DELETE FROM nodes WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([node.id]))
        .map_err(backend)?;
    let unassigned = unassign_users(tx, node.id, now_ms)?;
    tracing::info!(node = url, users = unassigned, "removed node");
    Ok(unassigned)
}

/// Marks every current user of the node replaced, leaving the node in place. The node's
/// load is left alone, as the reference does: the users' old rows still count against it
/// until they are purged.
pub fn unassign(
    tx: &Transaction<'_>,
    ctx: Ctx,
    url: &str,
    now_ms: i64,
) -> Result<u64, TokenStoreError> {
    let node = find(tx, ctx, url)?.ok_or(TokenStoreError::NodeNotFound)?;
    let unassigned = unassign_users(tx, node.id, now_ms)?;
    tracing::info!(node = url, users = unassigned, "unassigned node's users");
    Ok(unassigned)
}

/// Rows already replaced keep their `replaced_at`, so the purge's clock for them does not
/// restart.
fn unassign_users(tx: &Transaction<'_>, node_id: i64, now_ms: i64) -> Result<u64, TokenStoreError> {
    let count = tx
        .prepare_cached(
            "UPDATE users SET replaced_at = ?1 WHERE nodeid = ?2 AND replaced_at IS NULL",
        )
        .and_then(|mut stmt| stmt.execute(params![now_ms, node_id]))
        .map_err(backend)?;
    Ok(count as u64)
}

fn find(conn: &Connection, ctx: Ctx, url: &str) -> Result<Option<Node>, TokenStoreError> {
    conn.prepare_cached(
        "SELECT id, node, capacity, available, current_load, downed, backoff \
         FROM nodes WHERE service = ?1 AND node = ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![ctx.service, url], node_from_row)
            .optional()
    })
    .map_err(backend)
}

fn node_from_row(row: &Row<'_>) -> rusqlite::Result<Node> {
    Ok(Node {
        id: row.get(0)?,
        url: row.get(1)?,
        capacity: row.get(2)?,
        available: row.get(3)?,
        current_load: row.get(4)?,
        downed: row.get::<_, i64>(5)? != 0,
        backoff: row.get::<_, i64>(6)? != 0,
    })
}
