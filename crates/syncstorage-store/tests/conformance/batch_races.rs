//! A batch's commit racing the same user's other batch steps and deletes, or abandoned by
//! its caller half-way, and what deletes do to open batches. On PostgreSQL a commit is one
//! transaction; on SQLite it spans the staging file and the store's (ADR 0015), and these
//! checks hold it to the same outcome: whatever the order, an acknowledged append is
//! committed, a deleted collection stays deleted, and a commit is applied at most once.

use super::*;

/// Rounds per check: each round races two operations once; the window they can hit is a
/// few hundred microseconds wide, so a few dozen rounds find it if it is open.
const ROUNDS: usize = 40;

/// Opens a batch holding `request`'s records; its id.
async fn open_batch(store: &Arc<dyn Store>, request: WriteBsos) -> String {
    store.create_batch(request, 100).await.unwrap().value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_deleted_while_a_batch_commits_stays_deleted() {
    for b in backends().await {
        for round in 0..ROUNDS {
            let collection = format!("c{round}");
            b.store
                .put_bsos(write(1, &collection, vec![set("before", "x")]), false)
                .await
                .unwrap();
            let batch = open_batch(&b.store, write(1, &collection, vec![set("staged", "x")])).await;
            let commit = {
                let (store, collection) = (b.store.clone(), collection.clone());
                tokio::spawn(async move {
                    store
                        .commit_batch(&batch, write(1, &collection, vec![set("own", "x")]))
                        .await
                })
            };
            let delete = {
                let (store, collection) = (b.store.clone(), collection.clone());
                tokio::spawn(async move {
                    store
                        .delete_collection(1, &collection, Precondition::None)
                        .await
                })
            };
            match commit.await.unwrap() {
                Ok(_) | Err(StoreError::BatchNotFound) => {}
                Err(other) => panic!("{}: the commit failed: {other}", b.name),
            }
            delete.await.unwrap().unwrap();
            let left = b
                .store
                .get_bsos(
                    1,
                    &collection,
                    listing(Sort::Oldest, 10),
                    Precondition::None,
                )
                .await
                .unwrap()
                .value
                .items;
            assert!(
                left.is_empty(),
                "{}: round {round}: records came back after the delete: {:?}",
                b.name,
                left.iter().map(|bso| &bso.id).collect::<Vec<_>>()
            );
        }
        b.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_racing_the_commit_is_committed_or_refused() {
    for b in backends().await {
        for round in 0..ROUNDS {
            let batch = open_batch(
                &b.store,
                write(1, "c", vec![set(&format!("first{round}"), "x")]),
            )
            .await;
            let late = format!("late{round}");
            let append = {
                let (store, batch, late) = (b.store.clone(), batch.clone(), late.clone());
                tokio::spawn(async move {
                    store
                        .append_batch(&batch, write(1, "c", vec![set(&late, "x")]), 100)
                        .await
                })
            };
            let commit = {
                let store = b.store.clone();
                tokio::spawn(async move { store.commit_batch(&batch, write(1, "c", vec![])).await })
            };
            let (_, ids) = commit.await.unwrap().unwrap();
            let appended = append.await.unwrap();
            let committed = b
                .store
                .get_bso(1, "c", &late, Precondition::None)
                .await
                .is_ok();
            match appended {
                Ok(_) => assert!(
                    committed && ids.contains(&late),
                    "{}: round {round}: an acknowledged append was lost",
                    b.name
                ),
                Err(StoreError::BatchNotFound) => assert!(
                    !committed,
                    "{}: round {round}: a refused append was committed",
                    b.name
                ),
                Err(other) => panic!("{}: the append failed: {other}", b.name),
            }
        }
        b.finish().await;
    }
}

/// A client that goes away drops its request's future; whatever of the delete had run must
/// then either be all of it or none of it. On PostgreSQL the transaction rolls back; on
/// SQLite the delete's steps run on to their end. What must never be seen: the records
/// gone and the batch still there, to bring its records back at a later commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_caller_stops_waiting_is_all_or_nothing() {
    for b in backends().await {
        b.store
            .put_bsos(write(1, "c", vec![set("before", "x")]), false)
            .await
            .unwrap();
        let batch = open_batch(&b.store, write(1, "c", vec![set("staged", "x")])).await;
        {
            let delete = b.store.delete_collection(1, "c", Precondition::None);
            tokio::pin!(delete);
            tokio::select! {
                biased;
                _ = &mut delete => {}
                _ = std::future::ready(()) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let deleted = b
            .store
            .get_bso(1, "c", "before", Precondition::None)
            .await
            .is_err();
        let committed = b.store.commit_batch(&batch, write(1, "c", vec![])).await;
        if deleted {
            assert_eq!(
                committed.map(|(_, ids)| ids).unwrap_err(),
                StoreError::BatchNotFound,
                "{}: the records went and the batch stayed",
                b.name
            );
        } else {
            committed.unwrap();
        }
        b.finish().await;
    }
}

/// A commit whose caller stops waiting while the records are being written: if they were
/// written, the batch is gone, so that a retried commit cannot write its records again over
/// what another device wrote since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_caller_stops_waiting_is_not_applied_twice() {
    for b in backends().await {
        let batch = open_batch(&b.store, write(1, "c", vec![set("r", "old")])).await;
        // Another user's large write keeps the store busy while the commit waits.
        let big = (0..30_000)
            .map(|i| set(&format!("big{i}"), "payload"))
            .collect();
        let busy = {
            let store = b.store.clone();
            tokio::spawn(async move { store.put_bsos(write(9, "z", big), false).await })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        let _ = tokio::time::timeout(
            Duration::from_millis(20),
            b.store.commit_batch(&batch, write(1, "c", vec![])),
        )
        .await;
        busy.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let applied = b
            .store
            .get_bso(1, "c", "r", Precondition::None)
            .await
            .is_ok();
        b.store
            .put_bsos(write(1, "c", vec![set("r", "newer")]), false)
            .await
            .unwrap();
        let again = b.store.commit_batch(&batch, write(1, "c", vec![])).await;
        if applied {
            assert_eq!(
                again.map(|(_, ids)| ids).unwrap_err(),
                StoreError::BatchNotFound,
                "{}: a commit that took effect was applied again",
                b.name
            );
        } else {
            again.unwrap();
        }
        b.finish().await;
    }
}

/// Deleting a collection the user never wrote to deletes nothing, and leaves the user's
/// open batches in it as they were (both backends alike).
#[tokio::test]
async fn deleting_a_collection_never_written_keeps_its_batches() {
    for b in backends().await {
        b.store
            .put_bsos(write(2, "c", vec![set("other user", "x")]), false)
            .await
            .unwrap();
        let batch = open_batch(&b.store, write(1, "c", vec![set("staged", "x")])).await;
        b.store
            .delete_collection(1, "c", Precondition::None)
            .await
            .unwrap();
        let (_, ids) = b
            .store
            .commit_batch(&batch, write(1, "c", vec![]))
            .await
            .unwrap_or_else(|e| panic!("{}: the batch went with the delete: {e}", b.name));
        assert_eq!(ids, ["staged"]);
        b.finish().await;
    }
}
