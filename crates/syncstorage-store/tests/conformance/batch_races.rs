//! A batch's commit racing the same user's other batch steps and deletes. On PostgreSQL a
//! commit is one transaction; on SQLite it spans the staging file and the store's
//! (ADR 0015), and these checks hold it to the same outcome: whatever the order, an
//! acknowledged append is committed, and a deleted collection stays deleted.

use super::*;

/// Rounds per check: each round races two operations once; the window they can hit is a
/// few hundred microseconds wide, so a few dozen rounds find it if it is open.
const ROUNDS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_deleted_while_a_batch_commits_stays_deleted() {
    for b in backends().await {
        for round in 0..ROUNDS {
            let collection = format!("c{round}");
            b.store
                .put_bsos(write(1, &collection, vec![set("before", "x")]), false)
                .await
                .unwrap();
            let batch = b
                .store
                .create_batch(write(1, &collection, vec![set("staged", "x")]), 100)
                .await
                .unwrap()
                .value;
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
            let batch = b
                .store
                .create_batch(write(1, "c", vec![set(&format!("first{round}"), "x")]), 100)
                .await
                .unwrap()
                .value;
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
