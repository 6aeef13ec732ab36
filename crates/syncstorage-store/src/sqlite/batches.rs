//! Batch uploads and deletes on SQLite: records are staged in the staging file
//! (`staging`), and a commit writes them through the store's writer (ADR 0015).
//!
//! Every step that reads or changes a user's staged batches, and every delete that must
//! take them away with the records, holds that user's lock (`user_locks`), and runs on a
//! task of its own that finishes even if the client goes away (`to_the_end`), so that these
//! two-file operations look as atomic to clients as the one-transaction ones of PostgreSQL.

use sync_proto::SyncTimestamp;

use super::{SqliteStore, read, write};
use crate::{Precondition, StoreError, UserId, Versioned, WriteBsos, WriteOutcome, merge_updates};

impl SqliteStore {
    /// Opens a batch holding the request's records, if the precondition holds.
    pub(super) async fn open_batch(
        &self,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<Versioned<String>, StoreError> {
        let user = request.user;
        let collection_id = self.collection_or_create(&request.collection).await?;
        let last_modified = self
            .read(move |tx, _| read::collection_timestamp(tx, user, collection_id))
            .await?;
        request.precondition.check(last_modified)?;
        let id = self
            .staging
            .create(user, collection_id, request.items, max_records)
            .await?;
        Ok(Versioned {
            last_modified,
            value: id,
        })
    }

    /// Adds the request's records to an open batch; answers the collection's timestamp.
    pub(super) async fn stage_in_batch(
        &self,
        batch: String,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<SyncTimestamp, StoreError> {
        self.to_the_end(
            move |store| async move { store.stage_steps(batch, request, max_records).await },
        )
        .await
    }

    async fn stage_steps(
        &self,
        batch: String,
        request: WriteBsos,
        max_records: u64,
    ) -> Result<SyncTimestamp, StoreError> {
        let user = request.user;
        let collection_id = self.batch_collection(&request.collection).await?;
        let _held = self.user_locks.lock(user).await;
        let last_modified = self
            .read(move |tx, _| read::collection_timestamp(tx, user, collection_id))
            .await?;
        self.staging
            .append(
                batch,
                (user, collection_id),
                request.items,
                (request.precondition, last_modified),
                max_records,
            )
            .await?;
        Ok(last_modified)
    }

    /// Writes a batch's staged records with the commit request's own on top, at one
    /// timestamp, then drops the batch. Answers the write and the ids written.
    pub(super) async fn write_batch(
        &self,
        batch: String,
        request: WriteBsos,
    ) -> Result<(WriteOutcome, Vec<String>), StoreError> {
        self.to_the_end(move |store| async move { store.commit_steps(batch, request).await })
            .await
    }

    async fn commit_steps(
        &self,
        batch: String,
        mut request: WriteBsos,
    ) -> Result<(WriteOutcome, Vec<String>), StoreError> {
        let user = request.user;
        let collection_id = self.batch_collection(&request.collection).await?;
        let held = self.user_locks.lock(user).await;
        let mut items = self
            .staging
            .staged(batch.clone(), (user, collection_id))
            .await?;
        items.append(&mut request.items);
        request.items = merge_updates(items);
        let ids = request.items.iter().map(|item| item.id.clone()).collect();
        let outcome = self
            .write(move |tx, _| {
                let last_modified = read::collection_timestamp(tx, user, collection_id)?;
                request.precondition.check(last_modified)?;
                write::store_bsos(tx, &request, collection_id)
            })
            .await?;
        // The records are committed, and the client hears so without waiting for the batch
        // to be dropped: the user's lock is held until it is, so that no append or second
        // commit of this batch can run before. A batch that cannot be dropped (the store
        // closing meanwhile) goes with the purge when it expires.
        let staging = self.staging.clone();
        tokio::spawn(async move {
            if let Err(error) = staging.discard(batch).await {
                tracing::warn!(%error, "a committed batch could not be dropped from staging");
            }
            drop(held);
        });
        Ok((outcome, ids))
    }

    /// Deletes a collection (`Some`) or all of a user's storage (`None`), records first,
    /// then the staged batches that would otherwise bring records back at their commit.
    /// Nothing is deleted when the precondition fails, and a collection the user never
    /// wrote to keeps its batches (as on PostgreSQL: there was nothing to delete).
    pub(super) async fn delete_with_batches(
        &self,
        user: UserId,
        collection: Option<String>,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        self.to_the_end(move |store| async move {
            store.delete_steps(user, collection, precondition).await
        })
        .await
    }

    async fn delete_steps(
        &self,
        user: UserId,
        collection: Option<String>,
        precondition: Precondition,
    ) -> Result<SyncTimestamp, StoreError> {
        let whole_storage = collection.is_none();
        let _held = self.user_locks.lock(user).await;
        let (stamp, emptied) = self
            .write(move |tx, inner| match collection {
                None => Ok((write::delete_storage(tx, user, precondition)?, None)),
                Some(name) => {
                    let id = inner.collection_id_for_write(tx, &name)?;
                    let written = match id {
                        Some(id) => read::collection_timestamp(tx, user, id)? > SyncTimestamp::ZERO,
                        None => false,
                    };
                    let stamp = write::delete_collection(tx, user, id, precondition)?;
                    Ok((stamp, id.filter(|_| written)))
                }
            })
            .await?;
        if whole_storage || emptied.is_some() {
            self.staging.discard_owned(user, emptied).await?;
        }
        Ok(stamp)
    }

    /// Runs `steps` on a task of its own and waits for its answer. A request's future is
    /// dropped when its client goes away, and steps that span both files must not stop
    /// half-way: a delete whose batches stayed could have their records come back at a
    /// later commit, a commit whose batch stayed could be committed again over newer
    /// records. On its own task, each runs to its end whether or not anyone still waits.
    async fn to_the_end<T, F, Steps>(&self, steps: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(SqliteStore) -> Steps,
        Steps: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        tokio::spawn(steps(self.clone()))
            .await
            .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
    }

    /// The id of a collection name that some user wrote to, if any.
    async fn known_collection(&self, name: &str) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.inner.cached_collection(name) {
            return Ok(Some(id));
        }
        let name = name.to_owned();
        self.read(move |tx, inner| inner.collection_id(tx, &name))
            .await
    }

    /// The id of the collection an existing batch must belong to: a collection nobody
    /// wrote to holds no batch.
    async fn batch_collection(&self, name: &str) -> Result<i64, StoreError> {
        self.known_collection(name)
            .await?
            .ok_or(StoreError::BatchNotFound)
    }

    /// The id of a collection name, created (by the store's writer) if it is new.
    async fn collection_or_create(&self, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.known_collection(name).await? {
            return Ok(id);
        }
        let name = name.to_owned();
        self.write(move |tx, inner| inner.collection_id_or_create(tx, &name))
            .await
    }
}
