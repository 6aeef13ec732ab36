//! The token server's records: users, the storage nodes they are assigned to, and the
//! node-assignment rule.
//!
//! **Invariant:** the trait and its types name no database driver and no HTTP type. Each
//! backend converts its driver errors into [`TokenStoreError`] itself. Times are
//! milliseconds since the epoch, as in Mozilla's schema.
//!
//! The shape follows Mozilla's tokenserver (its `users` and `nodes` tables and its
//! `get_or_create_user` / `allocate_user` / `get_best_node` logic), so that operators who
//! know that schema find the same columns and the same behaviour.
//!
//! # Node assignment
//!
//! [`TokenStore::allocate_user`] puts a user on the best node, as Mozilla's `get_best_node`
//! does:
//!
//! 1. Candidates are the nodes with `available > 0`, `capacity > current_load`, not downed
//!    and not backing off.
//! 2. An empty node comes first. Among the others, the lowest `ln(current_load) /
//!    ln(capacity)` wins: how full the node is, on a log scale. A bigger node therefore takes
//!    a bigger share of new users, though not a proportional one at first, and every node
//!    reaches its capacity at about the same time. Ties go to the lowest node id, so the
//!    choice is deterministic. This order is computed in Rust over the candidate rows (there
//!    are few, and not every SQLite build has `LN`), by the same code for every backend.
//! 3. If there is no candidate, capacity is released. Each node that has spent its budget
//!    (`available <= 0`), still has room and is not down gets back a slice of its capacity,
//!    `available = MIN(capacity × release rate, capacity - current_load)`. Backing-off nodes
//!    are refilled too, so they are ready when the backoff ends, but they are still not
//!    chosen. Then the choice is made again. If a release changes no row, or five rounds
//!    pass without a candidate, the result is [`TokenStoreError::NoNodeAvailable`].
//! 4. The chosen node's `current_load` goes up by one and its `available` down by one (not
//!    below 0).
//!
//! `available` is a budget an operator can lower to throttle a node. Releasing capacity a
//! slice at a time lets nodes with very different loads share new users again once every
//! budget is spent.
//!
//! **Difference from the reference:** MySQL and PostgreSQL round `capacity × rate` to the
//! nearest integer when storing it. Both backends here round it the same way (half up), but
//! the slice is at least 1. Without that floor, a node with capacity under 5 (at the default rate 0.1) would
//! get 0 back and never take another user once its budget was spent, even with room left.
//!
//! # Concurrent allocations
//!
//! Both backends make an allocation atomic: the choice of a node, the slot taken on it, the
//! new row and the replacement of the account's older rows commit together, and two
//! allocations never read the same load. Two allocations for one account (two devices of a
//! new user asking at once) give one row: the second finds the row the first made and
//! returns it (see [`TokenStore::allocate_user`]).
#![deny(missing_docs)]

pub mod postgres;
mod rules;
pub mod sqlite;

use async_trait::async_trait;

/// A storage node known to the token server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Row id.
    pub id: i64,
    /// The node's public URL (what tokens name), without a trailing slash.
    pub url: String,
    /// Most users the node should hold.
    pub capacity: i64,
    /// Users that may still be assigned before capacity is released again.
    pub available: i64,
    /// Users assigned now.
    pub current_load: i64,
    /// Down: gets no new users.
    pub downed: bool,
    /// Backing off: gets no new users until capacity is released.
    pub backoff: bool,
}

/// One row of the users table: a user's assignment to a node under one client state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The uid (row id), which is the uid on the storage node.
    pub uid: u64,
    /// The account's identity (`<account uid>@<domain>`).
    pub email: String,
    /// The account's generation (0 when unknown).
    pub generation: i64,
    /// The client state, lowercase hex (empty when unknown).
    pub client_state: String,
    /// When the account's keys last changed (None when unknown).
    pub keys_changed_at: Option<i64>,
    /// When this row was created.
    pub created_at: i64,
    /// When this row was replaced by a newer one (None while current).
    pub replaced_at: Option<i64>,
    /// The node's URL, None when the node was removed.
    pub node: Option<String>,
    /// The node's row id.
    pub node_id: i64,
}

/// A user's current record and what is known of their past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    /// The current record (highest generation, then newest).
    pub current: UserRecord,
    /// Client states of older records, which the user may not go back to.
    pub old_client_states: Vec<String>,
}

/// The values that identify a user's keys at the time of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeys {
    /// The account's identity.
    pub email: String,
    /// Generation (0 when unknown).
    pub generation: i64,
    /// Client state, lowercase hex.
    pub client_state: String,
    /// When the keys last changed.
    pub keys_changed_at: Option<i64>,
}

/// Changes to a node's settings; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// New capacity.
    pub capacity: Option<i64>,
    /// New available slots.
    pub available: Option<i64>,
    /// New current load.
    pub current_load: Option<i64>,
    /// New downed flag.
    pub downed: Option<bool>,
    /// New backoff flag.
    pub backoff: Option<bool>,
}

/// What can go wrong, in terms the token server can map to its protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenStoreError {
    /// No node can take a new user (all full, down or backing off): 503.
    #[error("no storage node can take a new user")]
    NoNodeAvailable,
    /// The node does not exist.
    #[error("node not found")]
    NodeNotFound,
    /// A node with this URL exists already.
    #[error("node already exists")]
    NodeExists,
    /// The user's record changed under a concurrent request; the caller may retry.
    #[error("concurrent update of the user's record")]
    Conflict,
    /// The database failed. The text is for logs, never for clients.
    #[error("token store backend error: {0}")]
    Backend(String),
}

/// The token server's data, whichever database holds it.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The user's current record and older client states, or None for a new user. Older
    /// records left unreplaced by a race are marked replaced on the way (as the reference
    /// does).
    async fn get_user(&self, email: &str) -> Result<Option<UserState>, TokenStoreError>;

    /// Creates a record for `keys` on the best node (see the crate docs for the rule) and
    /// takes a slot on it. Used for a new user, for a user whose record was replaced or whose node
    /// was removed, and for a client-state change (then every older record of the email is
    /// marked replaced in the same transaction).
    ///
    /// When the account's current row is unreplaced, on a node and has `keys`' client
    /// state, no row is created: a concurrent request for the same account made it after
    /// the caller read the account, and it is returned with its generation and
    /// keys_changed_at moved forward to `keys`' (no slot is taken).
    async fn allocate_user(
        &self,
        keys: &UserKeys,
        now_ms: i64,
    ) -> Result<UserRecord, TokenStoreError>;

    /// Moves the current record's generation and keys_changed_at forward, never back (the
    /// update is guarded so that a concurrent older request cannot undo a newer one).
    async fn update_user(
        &self,
        uid: u64,
        generation: i64,
        keys_changed_at: Option<i64>,
    ) -> Result<(), TokenStoreError>;

    /// Records replaced before `before_ms` (oldest first, at most `limit`), for the purge.
    async fn replaced_users(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<UserRecord>, TokenStoreError>;

    /// Deletes one user record (after its data was deleted from its node).
    async fn delete_user_record(&self, uid: u64) -> Result<(), TokenStoreError>;

    /// Adds a node with `capacity` (available = capacity, load 0).
    async fn add_node(&self, url: &str, capacity: i64) -> Result<Node, TokenStoreError>;

    /// Adds the node if it is not there yet; returns it either way.
    async fn ensure_node(&self, url: &str, capacity: i64) -> Result<Node, TokenStoreError>;

    /// All nodes, by URL.
    async fn list_nodes(&self) -> Result<Vec<Node>, TokenStoreError>;

    /// Changes a node's settings.
    async fn update_node(&self, url: &str, change: NodeChange) -> Result<Node, TokenStoreError>;

    /// Removes a node and marks every user on it replaced, so they get a new node on their
    /// next token request. Returns how many users were unassigned.
    async fn remove_node(&self, url: &str, now_ms: i64) -> Result<u64, TokenStoreError>;

    /// Marks every user on a node replaced without removing the node.
    async fn unassign_node(&self, url: &str, now_ms: i64) -> Result<u64, TokenStoreError>;

    /// Checks that the database answers.
    async fn check(&self) -> Result<(), TokenStoreError>;
}
