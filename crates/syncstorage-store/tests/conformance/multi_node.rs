//! Several storage nodes on one database: what PostgreSQL must guarantee that a single
//! SQLite process gets for free. Two `PostgresStore`s, each with its own pool, stand for
//! two processes. Skipped unless `SYNCSTACK_TEST_POSTGRES_URL` is set.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres_support::TestSchema;
use sync_proto::SyncTimestamp;
use syncstorage_store::postgres::{PostgresOptions, PostgresStore};
use syncstorage_store::{Precondition, Sort, Store, StoreError};

use super::{listing, postgres_url, set, write};

/// Two nodes on one fresh schema.
async fn two_nodes() -> Option<(TestSchema, Arc<PostgresStore>, Arc<PostgresStore>)> {
    let base = postgres_url()?;
    let schema = TestSchema::create(&base).await.unwrap();
    let options = PostgresOptions {
        max_connections: 6,
        ..PostgresOptions::default()
    };
    let a = PostgresStore::open(schema.url(), options.clone())
        .await
        .unwrap();
    let b = PostgresStore::open(schema.url(), options).await.unwrap();
    Some((schema, Arc::new(a), Arc::new(b)))
}

/// Both nodes write the same user's same (new) collection at once, some writes carrying
/// several records. Every write is acknowledged, every acknowledged record is there with
/// the timestamp its write was given, no two writes share a timestamp, and the
/// collection's timestamp is the newest of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_writing_one_user_never_fail_and_never_share_a_timestamp() {
    let Some((schema, a, b)) = two_nodes().await else {
        return;
    };
    let mut tasks = Vec::new();
    for task in 0..8u32 {
        let node: Arc<dyn Store> = if task.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut previous = SyncTimestamp::ZERO;
            for i in 0..15u32 {
                let ids: Vec<String> = (0..=i % 3).map(|k| format!("t{task}w{i}r{k}")).collect();
                let items = ids.iter().map(|id| set(id, id)).collect();
                let outcome = node
                    .put_bsos(write(7, "fresh", items), false)
                    .await
                    .unwrap_or_else(|e| panic!("task {task} write {i} failed: {e}"));
                // One task's writes follow each other, so their timestamps must increase.
                assert!(outcome.modified > previous, "task {task} went back in time");
                previous = outcome.modified;
                acknowledged.push((outcome.modified, ids));
            }
            acknowledged
        }));
    }
    let mut stamps = Vec::new();
    let mut expected = HashMap::new();
    for task in tasks {
        for (stamp, ids) in task.await.unwrap() {
            stamps.push(stamp);
            for id in ids {
                expected.insert(id, stamp);
            }
        }
    }
    let distinct: HashSet<_> = stamps.iter().collect();
    assert_eq!(
        distinct.len(),
        stamps.len(),
        "two writes shared a timestamp"
    );

    let page = a
        .get_bsos(7, "fresh", listing(Sort::Oldest, 1000), Precondition::None)
        .await
        .unwrap();
    let found: HashMap<_, _> = page
        .value
        .items
        .iter()
        .map(|bso| (bso.id.clone(), bso.modified))
        .collect();
    assert_eq!(
        found, expected,
        "a record is missing or has another timestamp"
    );
    assert_eq!(page.last_modified, *stamps.iter().max().unwrap());
    schema.drop_schema().await.unwrap();
}

/// Writes that alternate between the nodes, each after the previous one was acknowledged:
/// the timestamps strictly increase across both, as a client switching nodes would see.
#[tokio::test]
async fn timestamps_increase_across_nodes_in_acknowledgement_order() {
    let Some((schema, a, b)) = two_nodes().await else {
        return;
    };
    let mut previous = SyncTimestamp::ZERO;
    for i in 0..40 {
        let node: &PostgresStore = if i % 2 == 0 { &a } else { &b };
        let stamp = if i % 7 == 6 {
            node.delete_bsos(7, "c", vec![format!("r{}", i - 1)], Precondition::None)
                .await
                .unwrap()
        } else {
            node.put_bsos(write(7, "c", vec![set(&format!("r{i}"), "x")]), false)
                .await
                .unwrap()
                .modified
        };
        assert!(stamp > previous, "write {i} did not move time forward");
        previous = stamp;
    }
    schema.drop_schema().await.unwrap();
}

/// Conditional writes racing from both nodes with the same `X-If-Unmodified-Since`: the
/// check and the write are one step under the user's lock, so exactly one wins and the
/// others are told the resource changed (412), never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_writes_let_exactly_one_through() {
    let Some((schema, a, b)) = two_nodes().await else {
        return;
    };
    let base = a
        .put_bsos(write(7, "meta", vec![set("global", "v0")]), false)
        .await
        .unwrap()
        .modified;
    let mut tasks = Vec::new();
    for task in 0..12u32 {
        let node: Arc<dyn Store> = if task.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut request = write(7, "meta", vec![set("global", &format!("v{task}"))]);
            request.precondition = Precondition::IfUnmodifiedSince(base);
            (task, node.put_bsos(request, false).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (task, Ok(outcome)) => winners.push((task, outcome.modified)),
            (_, Err(StoreError::PreconditionFailed { last_modified })) => {
                assert!(last_modified > base);
            }
            (task, Err(other)) => panic!("task {task}: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, stamp) = winners[0];
    let stored = b
        .get_bso(7, "meta", "global", Precondition::None)
        .await
        .unwrap()
        .value;
    assert_eq!(
        (stored.payload, stored.modified),
        (format!("v{winner}"), stamp)
    );
    schema.drop_schema().await.unwrap();
}

/// Staging a batch changes no record, so it does not wait for the user's lock (ADR 0010,
/// addendum): while another node holds the lock, opening a batch and appending to it
/// finish, and the commit, which writes records, waits until the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staging_a_batch_does_not_wait_for_the_users_other_writes() {
    let Some((schema, a, _b)) = two_nodes().await else {
        return;
    };
    a.put_bsos(write(7, "c", vec![set("before", "x")]), false)
        .await
        .unwrap();
    let (holder, connection) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; SELECT 1 FROM storage_users WHERE user_id = 7 FOR UPDATE")
        .await
        .unwrap();

    let within = std::time::Duration::from_secs(5);
    let batch = tokio::time::timeout(
        within,
        a.create_batch(write(7, "c", vec![set("s1", "x")]), 100),
    )
    .await
    .expect("opening a batch waited for the user's lock")
    .unwrap()
    .value;
    tokio::time::timeout(
        within,
        a.append_batch(&batch, write(7, "c", vec![set("s2", "x")]), 100),
    )
    .await
    .expect("appending to a batch waited for the user's lock")
    .unwrap();

    let committing = {
        let (a, batch) = (a.clone(), batch.clone());
        tokio::spawn(async move { a.commit_batch(&batch, write(7, "c", vec![])).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !committing.is_finished(),
        "the commit wrote records while another writer held the user's lock"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    let (_, ids) = tokio::time::timeout(within, committing)
        .await
        .expect("the commit never finished")
        .unwrap()
        .unwrap();
    assert_eq!(ids, ["s1", "s2"]);
    drop(holder);
    schema.drop_schema().await.unwrap();
}

/// Staged records have no foreign key to their batch (storage schema migration 3), so every
/// way a batch goes (commit, delete of its collection or of all storage, purge) must take
/// its records with it, including those an append on another node staged while the delete
/// waited for the batch: none may be left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_never_leaves_its_staged_records_behind() {
    let Some((schema, a, _b)) = two_nodes().await else {
        return;
    };
    let (raw, connection) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let staged = || async {
        let row = raw
            .query_one("SELECT COUNT(*) FROM storage_batch_items", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let open = |user: u64, collection: &'static str| {
        let a = a.clone();
        async move {
            a.create_batch(write(user, collection, vec![set("r", "x")]), 100)
                .await
                .unwrap()
                .value
        }
    };

    let committed = open(1, "c").await;
    a.commit_batch(&committed, write(1, "c", vec![]))
        .await
        .unwrap();
    open(2, "c").await;
    open(2, "d").await;
    a.delete_collection(2, "c", Precondition::None)
        .await
        .unwrap();
    a.delete_storage(2, Precondition::None).await.unwrap();
    let expired = open(3, "c").await;
    raw.execute(
        "UPDATE storage_batches SET expiry = 0 WHERE id = $1",
        &[&expired],
    )
    .await
    .unwrap();
    // A record an older build left without its batch (it relied on the foreign key).
    raw.execute(
        "INSERT INTO storage_batch_items (batch_id, id, sortindex_op, payload_op, ttl_op) \
         VALUES ('gone', 'orphan', 0, 0, 0)",
        &[],
    )
    .await
    .unwrap();
    a.purge_expired().await.unwrap();
    assert_eq!(staged().await, 0, "a batch that went left records behind");

    // An append in flight elsewhere holds the batch's row while the delete starts.
    let appended = open(4, "c").await;
    a.put_bsos(write(4, "c", vec![set("kept", "x")]), false)
        .await
        .unwrap();
    raw.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM storage_batches WHERE id = '{appended}' FOR UPDATE; \
         INSERT INTO storage_batch_items (batch_id, id, sortindex_op, payload_op, ttl_op) \
         VALUES ('{appended}', 'late', 0, 0, 0)"
    ))
    .await
    .unwrap();
    let deleting = {
        let a = a.clone();
        tokio::spawn(async move { a.delete_collection(4, "c", Precondition::None).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    raw.batch_execute("COMMIT").await.unwrap();
    deleting.await.unwrap().unwrap();
    assert_eq!(
        staged().await,
        0,
        "records staged while the delete waited were left behind"
    );
    drop(raw);
    schema.drop_schema().await.unwrap();
}
