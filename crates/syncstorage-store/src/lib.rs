//! The storage node's data layer: the [`Store`] trait, its plain data types, its semantic
//! errors, and the backends that implement it.
//!
//! **Invariant:** the trait and its types name no database driver and no HTTP type. The
//! HTTP layer (`syncstorage`) branches on [`StoreError`] variants to pick a status code;
//! each backend ([`sqlite`], [`postgres`]) converts its own driver errors into those
//! variants. This keeps a new backend a matter of adding a module, never of changing a
//! handler.
//!
//! Every read and every change of records is one transaction: preconditions
//! (`X-If-Modified-Since`, `X-If-Unmodified-Since`) are evaluated inside the same
//! transaction as the read or write they guard, so that no other writer can slip in between
//! the check and the change. (On SQLite, batches are staged in a file of their own, ADR
//! 0015: opening or appending to a batch changes no record and checks its precondition
//! against the collection as last committed; the commit checks it again in the transaction
//! that writes the records.)
#![deny(missing_docs)]

mod batch;
mod cursor;
mod page;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use sync_proto::{BsoUpdate, SyncTimestamp};

use batch::{merge_updates, new_batch_id, patch_from, patch_op};
pub use cursor::{Cursor, InvalidCursor};

/// A user's numeric id on this node (the `uid` of the token and the URL).
pub type UserId = u64;

/// A value together with the timestamp of the resource it was read from, which becomes the
/// response's `X-Last-Modified`.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// Last-modified time of the resource (0 when it was never written).
    pub last_modified: SyncTimestamp,
    /// The value read.
    pub value: T,
}

/// A conditional-request header, evaluated against the resource's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// No condition.
    #[default]
    None,
    /// Proceed only if the resource changed after this time; otherwise
    /// [`StoreError::NotModified`].
    IfModifiedSince(SyncTimestamp),
    /// Proceed only if the resource did not change after this time; otherwise
    /// [`StoreError::PreconditionFailed`].
    IfUnmodifiedSince(SyncTimestamp),
}

impl Precondition {
    /// Checks the condition against a resource's timestamp.
    pub fn check(self, resource: SyncTimestamp) -> Result<(), StoreError> {
        match self {
            Precondition::IfModifiedSince(since) if resource <= since => {
                Err(StoreError::NotModified {
                    last_modified: resource,
                })
            }
            Precondition::IfUnmodifiedSince(since) if resource > since => {
                Err(StoreError::PreconditionFailed {
                    last_modified: resource,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The order of a collection listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most recently modified first (also the default).
    #[default]
    Newest,
    /// Least recently modified first.
    Oldest,
    /// Highest sortindex first.
    Index,
}

/// Which records of a collection to list, and how.
#[derive(Debug, Clone, Default)]
pub struct BsoQuery {
    /// Only these ids.
    pub ids: Option<Vec<String>>,
    /// Only records modified strictly after this time.
    pub newer: Option<SyncTimestamp>,
    /// Only records modified strictly before this time.
    pub older: Option<SyncTimestamp>,
    /// The order.
    pub sort: Sort,
    /// At most this many records; more are reported through a cursor.
    pub limit: u32,
    /// Where the previous page stopped.
    pub cursor: Option<Cursor>,
    /// Whether to return whole records or only their ids.
    pub full: bool,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bso {
    /// The record id.
    pub id: String,
    /// When it was last written.
    pub modified: SyncTimestamp,
    /// Its payload (empty in id-only listings).
    pub payload: String,
    /// Its sortindex, if it has one.
    pub sortindex: Option<i32>,
}

/// A page of a collection listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BsoPage {
    /// The records of this page.
    pub items: Vec<Bso>,
    /// The cursor of the next page, when there are more records.
    pub next: Option<Cursor>,
}

/// A write of records to one collection.
#[derive(Debug, Clone)]
pub struct WriteBsos {
    /// Whose storage.
    pub user: UserId,
    /// Which collection (created on first write).
    pub collection: String,
    /// The validated records.
    pub items: Vec<BsoUpdate>,
    /// The request's condition.
    pub precondition: Precondition,
    /// The user's quota in bytes, when quotas are enforced.
    pub quota: Option<u64>,
}

/// The result of a committed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The write's timestamp (the new `X-Last-Modified`).
    pub modified: SyncTimestamp,
    /// Bytes the user stores after the write, when quotas are enforced.
    pub usage_bytes: Option<u64>,
}

/// Per-collection figures of `info/*`.
pub type CollectionFigures<T> = Vec<(String, T)>;

/// Health of the connection pool, for metrics and `__lbheartbeat__`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolState {
    /// Connections open.
    pub connections: u32,
    /// Connections idle.
    pub idle: u32,
    /// Requests waiting for the writer.
    pub waiting_writers: u32,
}

/// What can go wrong, in terms the HTTP layer can map to the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `X-If-Modified-Since` held: the resource did not change.
    #[error("not modified since the given time")]
    NotModified {
        /// The resource's timestamp.
        last_modified: SyncTimestamp,
    },
    /// `X-If-Unmodified-Since` failed: the resource changed.
    #[error("modified since the given time")]
    PreconditionFailed {
        /// The resource's timestamp.
        last_modified: SyncTimestamp,
    },
    /// The record does not exist (or has expired).
    #[error("record not found")]
    NotFound,
    /// The batch does not exist, has expired, or belongs to another user or collection.
    #[error("batch not found")]
    BatchNotFound,
    /// The batch would hold more records than allowed.
    #[error("batch holds too many records")]
    BatchTooLarge,
    /// The user is over quota.
    #[error("over quota")]
    QuotaExceeded,
    /// A concurrent write got in the way; the client should retry.
    #[error("conflicting concurrent write")]
    Conflict,
    /// The database failed. The text is for logs, never for clients.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// The storage node's data, whichever database holds it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Last-modified time of every collection that has one (`info/collections`).
    async fn collection_timestamps(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<SyncTimestamp>>, StoreError>;

    /// Number of live records per collection (`info/collection_counts`).
    async fn collection_counts(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<u64>>, StoreError>;

    /// Payload bytes per collection (`info/collection_usage`).
    async fn collection_usage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<CollectionFigures<u64>>, StoreError>;

    /// Payload bytes over all collections (`info/quota`).
    async fn storage_usage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<Versioned<u64>, StoreError>;

    /// Deletes everything the user stores; returns the storage timestamp before deletion.
    async fn delete_storage(
        &self,
        user: UserId,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError>;

    /// Lists a collection; `last_modified` is the collection's timestamp.
    async fn get_bsos(
        &self,
        user: UserId,
        collection: &str,
        query: BsoQuery,
        precondition: Precondition,
    ) -> Result<Versioned<BsoPage>, StoreError>;

    /// Reads one record; `last_modified` is the record's timestamp.
    async fn get_bso(
        &self,
        user: UserId,
        collection: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<Versioned<Bso>, StoreError>;

    /// Writes records (PUT or a plain POST) in one transaction. The precondition is checked
    /// against the record's timestamp when `items` holds exactly one record and
    /// `per_record_precondition` is set, else against the collection's.
    async fn put_bsos(
        &self,
        write: WriteBsos,
        per_record_precondition: bool,
    ) -> Result<WriteOutcome, StoreError>;

    /// Deletes a whole collection; returns the new storage timestamp.
    async fn delete_collection(
        &self,
        user: UserId,
        collection: &str,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError>;

    /// Deletes some records of a collection; returns the collection's new timestamp.
    async fn delete_bsos(
        &self,
        user: UserId,
        collection: &str,
        ids: Vec<String>,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError>;

    /// Deletes one record; returns the collection's new timestamp.
    async fn delete_bso(
        &self,
        user: UserId,
        collection: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError>;

    /// Opens a batch holding `write.items`; returns its id and the collection's timestamp.
    async fn create_batch(
        &self,
        write: WriteBsos,
        max_records: u64,
    ) -> Result<Versioned<String>, StoreError>;

    /// Adds records to an open batch; returns the collection's timestamp.
    async fn append_batch(
        &self,
        batch: &str,
        write: WriteBsos,
        max_records: u64,
    ) -> Result<SyncTimestamp, StoreError>;

    /// Writes every staged record plus `write.items` in one transaction, and closes the
    /// batch (on SQLite, just after that transaction: ADR 0015). Returns the write's timestamp and the ids written, staged ones included.
    async fn commit_batch(
        &self,
        batch: &str,
        write: WriteBsos,
    ) -> Result<(WriteOutcome, Vec<String>), StoreError>;

    /// Removes expired records and batches; returns how many rows went.
    async fn purge_expired(&self) -> Result<u64, StoreError>;

    /// Checks that the database answers (`__heartbeat__`).
    async fn check(&self) -> Result<(), StoreError>;

    /// Current pool figures.
    fn pool_state(&self) -> PoolState;

    /// Flushes and closes the database; later calls fail.
    async fn close(&self);
}
