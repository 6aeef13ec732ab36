//! The `Store` conformance suite: every backend must pass every check here.
//!
//! Each check runs against SQLite (a fresh temporary file) and, when
//! `SYNCSTACK_TEST_POSTGRES_URL` names a PostgreSQL database, against PostgreSQL (a fresh
//! schema per check, dropped at its end). Without that variable the PostgreSQL runs are
//! skipped, so a bare `cargo test` needs no server. Checks speak only the trait, so a new
//! backend gets the whole suite by adding it to `backends_with()`.
//!
//! `main.rs` holds the checks every backend passes, `batch_races.rs` those of a batch commit
//! racing the same user's other steps; `multi_node.rs` holds what only a backend shared by
//! several processes can be asked (PostgreSQL).

mod batch_races;
mod multi_node;

use std::sync::Arc;
use std::time::Duration;

use postgres_support::TestSchema;
use sync_proto::{BsoUpdate, Patch, SyncTimestamp};
use syncstorage_store::postgres::{PostgresOptions, PostgresStore};
use syncstorage_store::sqlite::{SqliteOptions, SqliteStore};
use syncstorage_store::{BsoQuery, Cursor, Precondition, Sort, Store, StoreError, WriteBsos};

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    schema: Option<TestSchema>,
}

impl Backend {
    /// Closes the store and drops its PostgreSQL schema. (A check that panics leaves its
    /// schema behind; schemas are named `t_<random>` and harmless.)
    async fn finish(self) {
        self.store.close().await;
        if let Some(schema) = self.schema {
            schema.drop_schema().await.unwrap();
        }
    }
}

/// Options that change a backend's behaviour in ways the checks observe.
#[derive(Clone, Copy)]
struct Options {
    batch_lifetime: Duration,
    max_page_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        let sqlite = SqliteOptions::default();
        Options {
            batch_lifetime: sqlite.batch_lifetime,
            max_page_bytes: sqlite.max_page_bytes,
        }
    }
}

fn sqlite_with(options: Options) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        batch_lifetime: options.batch_lifetime,
        max_page_bytes: options.max_page_bytes,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("s.db"), options).unwrap();
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        _dir: Some(dir),
        schema: None,
    }
}

/// The PostgreSQL server of the PostgreSQL runs, if configured.
fn postgres_url() -> Option<String> {
    std::env::var("SYNCSTACK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

fn postgres_options(options: Options) -> PostgresOptions {
    PostgresOptions {
        max_connections: 8,
        batch_lifetime: options.batch_lifetime,
        max_page_bytes: options.max_page_bytes,
    }
}

async fn postgres_with(options: Options) -> Option<Backend> {
    let base = postgres_url()?;
    let schema = TestSchema::create(&base).await.unwrap();
    let store = PostgresStore::open(schema.url(), postgres_options(options))
        .await
        .unwrap();
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        _dir: None,
        schema: Some(schema),
    })
}

async fn backends_with(options: Options) -> Vec<Backend> {
    let mut all = vec![sqlite_with(options)];
    all.extend(postgres_with(options).await);
    all
}

async fn backends() -> Vec<Backend> {
    backends_with(Options::default()).await
}

fn set(id: &str, payload: &str) -> BsoUpdate {
    BsoUpdate {
        id: id.into(),
        sortindex: Patch::Keep,
        payload: Patch::Set(payload.into()),
        ttl: Patch::Keep,
    }
}

fn write(user: u64, collection: &str, items: Vec<BsoUpdate>) -> WriteBsos {
    WriteBsos {
        user,
        collection: collection.into(),
        items,
        precondition: Precondition::None,
        quota: None,
    }
}

fn listing(sort: Sort, limit: u32) -> BsoQuery {
    BsoQuery {
        sort,
        limit,
        full: true,
        ..BsoQuery::default()
    }
}

#[tokio::test]
async fn a_write_shares_one_timestamp_and_timestamps_increase() {
    for b in backends().await {
        let s = &b.store;
        let first = s
            .put_bsos(write(1, "tabs", vec![set("a", "1"), set("b", "2")]), false)
            .await
            .unwrap();
        let page = s
            .get_bsos(1, "tabs", listing(Sort::Oldest, 10), Precondition::None)
            .await
            .unwrap();
        assert_eq!(page.last_modified, first.modified, "{}", b.name);
        assert!(
            page.value
                .items
                .iter()
                .all(|bso| bso.modified == first.modified)
        );
        let mut last = first.modified;
        for i in 0..30 {
            let next = s
                .put_bsos(write(1, "tabs", vec![set(&format!("r{i}"), "x")]), false)
                .await
                .unwrap();
            assert!(next.modified > last, "{}", b.name);
            last = next.modified;
        }
        let info = s
            .collection_timestamps(1, Precondition::None)
            .await
            .unwrap();
        assert_eq!(info.value, vec![("tabs".to_owned(), last)]);
        assert_eq!(info.last_modified, last);
        b.finish().await;
    }
}

#[tokio::test]
async fn preconditions_are_checked_in_the_transaction() {
    for b in backends().await {
        let s = &b.store;
        let t = s
            .put_bsos(write(1, "meta", vec![set("global", "v1")]), true)
            .await
            .unwrap()
            .modified;
        let stale = SyncTimestamp::from_millis(t.as_millis() - 10);
        let mut conditional = write(1, "meta", vec![set("global", "v2")]);
        conditional.precondition = Precondition::IfUnmodifiedSince(stale);
        assert_eq!(
            s.put_bsos(conditional, true).await.unwrap_err(),
            StoreError::PreconditionFailed { last_modified: t },
            "{}",
            b.name
        );
        assert_eq!(
            s.get_bso(1, "meta", "global", Precondition::IfModifiedSince(t))
                .await
                .unwrap_err(),
            StoreError::NotModified { last_modified: t }
        );
        assert_eq!(
            s.get_bso(1, "meta", "global", Precondition::None)
                .await
                .unwrap()
                .value
                .payload,
            "v1"
        );
        // A missing record has timestamp 0: "create only if absent".
        let mut create = write(1, "meta", vec![set("other", "x")]);
        create.precondition = Precondition::IfUnmodifiedSince(SyncTimestamp::ZERO);
        assert!(s.put_bsos(create.clone(), true).await.is_ok());
        assert!(matches!(
            s.put_bsos(create, true).await,
            Err(StoreError::PreconditionFailed { .. })
        ));
        b.finish().await;
    }
}

#[tokio::test]
async fn absent_fields_are_kept_and_null_fields_reset() {
    for b in backends().await {
        let s = &b.store;
        let full = BsoUpdate {
            id: "a".into(),
            sortindex: Patch::Set(4),
            payload: Patch::Set("p".into()),
            ttl: Patch::Keep,
        };
        let first = s
            .put_bsos(write(1, "c", vec![full]), true)
            .await
            .unwrap()
            .modified;
        let ttl_only = BsoUpdate {
            id: "a".into(),
            sortindex: Patch::Keep,
            payload: Patch::Keep,
            ttl: Patch::Set(100),
        };
        s.put_bsos(write(1, "c", vec![ttl_only]), true)
            .await
            .unwrap();
        let bso = s
            .get_bso(1, "c", "a", Precondition::None)
            .await
            .unwrap()
            .value;
        assert_eq!(
            (bso.payload.as_str(), bso.sortindex, bso.modified),
            ("p", Some(4), first),
            "{}",
            b.name
        );
        let reset = BsoUpdate {
            id: "a".into(),
            sortindex: Patch::Reset,
            payload: Patch::Reset,
            ttl: Patch::Keep,
        };
        s.put_bsos(write(1, "c", vec![reset]), true).await.unwrap();
        let bso = s
            .get_bso(1, "c", "a", Precondition::None)
            .await
            .unwrap()
            .value;
        assert_eq!((bso.payload.as_str(), bso.sortindex), ("", None));
        b.finish().await;
    }
}

#[tokio::test]
async fn expired_records_vanish_and_are_purged() {
    for b in backends().await {
        let s = &b.store;
        let gone = BsoUpdate {
            ttl: Patch::Set(0),
            ..set("gone", "x")
        };
        s.put_bsos(write(1, "c", vec![gone, set("kept", "y")]), false)
            .await
            .unwrap();
        assert_eq!(
            s.get_bso(1, "c", "gone", Precondition::None)
                .await
                .unwrap_err(),
            StoreError::NotFound
        );
        let counts = s
            .collection_counts(1, Precondition::None)
            .await
            .unwrap()
            .value;
        assert_eq!(counts, vec![("c".to_owned(), 1)], "{}", b.name);
        assert_eq!(
            s.storage_usage(1, Precondition::None).await.unwrap().value,
            1
        );
        assert!(s.purge_expired().await.unwrap() >= 1);
        assert_eq!(s.purge_expired().await.unwrap(), 0);
        // An expired record can be written again from defaults.
        let revived = BsoUpdate {
            id: "gone".into(),
            sortindex: Patch::Set(1),
            payload: Patch::Keep,
            ttl: Patch::Keep,
        };
        s.put_bsos(write(1, "c", vec![revived]), true)
            .await
            .unwrap();
        assert_eq!(
            s.get_bso(1, "c", "gone", Precondition::None)
                .await
                .unwrap()
                .value
                .payload,
            ""
        );
        b.finish().await;
    }
}

#[tokio::test]
async fn deletes_move_the_storage_timestamp_forward() {
    for b in backends().await {
        let s = &b.store;
        let t1 = s
            .put_bsos(write(1, "a", vec![set("x", "1")]), false)
            .await
            .unwrap()
            .modified;
        s.put_bsos(write(1, "b", vec![set("y", "1")]), false)
            .await
            .unwrap();
        let deleted = s
            .delete_collection(1, "a", Precondition::None)
            .await
            .unwrap();
        let info = s
            .collection_timestamps(1, Precondition::None)
            .await
            .unwrap();
        assert_eq!(info.last_modified, deleted, "{}", b.name);
        assert_eq!(info.value.len(), 1);
        let some = s
            .delete_bsos(1, "b", vec!["y".into()], Precondition::None)
            .await
            .unwrap();
        assert!(some > deleted);
        let before = s.delete_storage(1, Precondition::None).await.unwrap();
        assert_eq!(before, some);
        let empty = s
            .collection_timestamps(1, Precondition::None)
            .await
            .unwrap();
        assert_eq!(
            (empty.last_modified, empty.value.len()),
            (SyncTimestamp::ZERO, 0)
        );
        let after = s
            .put_bsos(write(1, "a", vec![set("x", "1")]), false)
            .await
            .unwrap()
            .modified;
        assert!(after > some && after > t1);
        assert_eq!(
            s.delete_bso(1, "a", "nope", Precondition::None)
                .await
                .unwrap_err(),
            StoreError::NotFound
        );
        b.finish().await;
    }
}

#[tokio::test]
async fn listings_filter_sort_and_page_by_cursor() {
    for b in backends().await {
        let s = &b.store;
        let mut stamps = Vec::new();
        for i in 0..6 {
            let item = BsoUpdate {
                sortindex: Patch::Set(i % 3),
                ..set(&format!("r{i}"), "p")
            };
            stamps.push(
                s.put_bsos(write(1, "c", vec![item]), false)
                    .await
                    .unwrap()
                    .modified,
            );
        }
        let ids = |page: &syncstorage_store::BsoPage| {
            page.items.iter().map(|b| b.id.clone()).collect::<Vec<_>>()
        };
        let newer = BsoQuery {
            newer: Some(stamps[3]),
            ..listing(Sort::Oldest, 10)
        };
        assert_eq!(
            ids(&s
                .get_bsos(1, "c", newer, Precondition::None)
                .await
                .unwrap()
                .value),
            ["r4", "r5"],
            "{}",
            b.name
        );
        let by_ids = BsoQuery {
            ids: Some(vec!["r1".into(), "r5".into()]),
            ..listing(Sort::Newest, 10)
        };
        assert_eq!(
            ids(&s
                .get_bsos(1, "c", by_ids, Precondition::None)
                .await
                .unwrap()
                .value),
            ["r5", "r1"]
        );
        let index = s
            .get_bsos(1, "c", listing(Sort::Index, 10), Precondition::None)
            .await
            .unwrap()
            .value;
        assert_eq!(ids(&index), ["r2", "r5", "r1", "r4", "r0", "r3"]);
        for sort in [Sort::Newest, Sort::Oldest, Sort::Index] {
            let mut seen = Vec::new();
            let mut cursor: Option<Cursor> = None;
            loop {
                let query = BsoQuery {
                    cursor: cursor.clone(),
                    ..listing(sort, 4)
                };
                let page = s
                    .get_bsos(1, "c", query, Precondition::None)
                    .await
                    .unwrap()
                    .value;
                seen.extend(ids(&page));
                match page.next {
                    Some(next) => cursor = Some(next.to_string().parse().unwrap()),
                    None => break,
                }
            }
            let all = s
                .get_bsos(1, "c", listing(sort, 100), Precondition::None)
                .await
                .unwrap()
                .value;
            assert_eq!(seen, ids(&all), "{sort:?}");
        }
        let skip = BsoQuery {
            cursor: Some(Cursor::Skip(4)),
            ..listing(Sort::Oldest, 10)
        };
        assert_eq!(
            ids(&s
                .get_bsos(1, "c", skip, Precondition::None)
                .await
                .unwrap()
                .value),
            ["r4", "r5"]
        );
        b.finish().await;
    }
}

#[tokio::test]
async fn batches_stage_merge_and_commit_atomically() {
    for b in backends().await {
        let s = &b.store;
        let first = BsoUpdate {
            sortindex: Patch::Set(7),
            ..set("a", "old")
        };
        let opened = s
            .create_batch(write(1, "c", vec![first, set("b", "b")]), 100)
            .await
            .unwrap();
        let batch = opened.value;
        assert!(
            s.get_bsos(1, "c", listing(Sort::Oldest, 10), Precondition::None)
                .await
                .unwrap()
                .value
                .items
                .is_empty()
        );
        s.append_batch(&batch, write(1, "c", vec![set("a", "new")]), 100)
            .await
            .unwrap();
        assert_eq!(
            s.append_batch(&batch, write(2, "c", vec![]), 100)
                .await
                .unwrap_err(),
            StoreError::BatchNotFound
        );
        assert_eq!(
            s.append_batch(&batch, write(1, "d", vec![]), 100)
                .await
                .unwrap_err(),
            StoreError::BatchNotFound
        );
        assert_eq!(
            s.append_batch(
                &batch,
                write(
                    1,
                    "c",
                    (0..200).map(|i| set(&format!("x{i}"), "")).collect()
                ),
                100
            )
            .await
            .unwrap_err(),
            StoreError::BatchTooLarge,
            "{}",
            b.name
        );
        let (outcome, ids) = s
            .commit_batch(&batch, write(1, "c", vec![set("c", "c")]))
            .await
            .unwrap();
        assert_eq!(ids.len(), 3);
        let a = s
            .get_bso(1, "c", "a", Precondition::None)
            .await
            .unwrap()
            .value;
        assert_eq!(
            (a.payload.as_str(), a.sortindex, a.modified),
            ("new", Some(7), outcome.modified)
        );
        assert_eq!(
            s.commit_batch(&batch, write(1, "c", vec![]))
                .await
                .unwrap_err(),
            StoreError::BatchNotFound
        );
        b.finish().await;
    }
}

#[tokio::test]
async fn batches_expire() {
    let options = Options {
        batch_lifetime: Duration::from_millis(20),
        ..Options::default()
    };
    for b in backends_with(options).await {
        let batch = b
            .store
            .create_batch(write(1, "c", vec![set("a", "x")]), 100)
            .await
            .unwrap()
            .value;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            b.store
                .commit_batch(&batch, write(1, "c", vec![]))
                .await
                .unwrap_err(),
            StoreError::BatchNotFound,
            "{}",
            b.name
        );
        assert!(b.store.purge_expired().await.unwrap() >= 1, "{}", b.name);
        b.finish().await;
    }
}

#[tokio::test]
async fn quota_refuses_writes_once_reached() {
    for b in backends().await {
        let s = &b.store;
        let mut first = write(1, "c", vec![set("a", &"x".repeat(600))]);
        first.quota = Some(1000);
        assert_eq!(
            s.put_bsos(first.clone(), false).await.unwrap().usage_bytes,
            Some(600)
        );
        let mut second = write(1, "c", vec![set("b", &"x".repeat(600))]);
        second.quota = Some(1000);
        assert_eq!(
            s.put_bsos(second.clone(), false).await.unwrap().usage_bytes,
            Some(1200)
        );
        assert_eq!(
            s.put_bsos(second, false).await.unwrap_err(),
            StoreError::QuotaExceeded,
            "{}",
            b.name
        );
        b.finish().await;
    }
}

#[tokio::test]
async fn data_survives_close_and_reopen_and_a_closed_store_refuses_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    store
        .put_bsos(write(1, "c", vec![set("a", "kept")]), false)
        .await
        .unwrap();
    let staged = store
        .create_batch(write(1, "c", vec![set("b", "staged")]), 10)
        .await
        .unwrap()
        .value;
    store.close().await;
    assert!(matches!(store.check().await, Err(StoreError::Backend(_))));
    let reopened = SqliteStore::open(
        &path,
        SqliteOptions {
            create: false,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        reopened
            .get_bso(1, "c", "a", Precondition::None)
            .await
            .unwrap()
            .value
            .payload,
        "kept"
    );
    let (_, ids) = reopened
        .commit_batch(&staged, write(1, "c", vec![]))
        .await
        .unwrap();
    assert_eq!(
        ids,
        ["b"],
        "a batch staged before the restart commits after it"
    );
    let missing = SqliteStore::open(
        &dir.path().join("typo.db"),
        SqliteOptions {
            create: false,
            ..SqliteOptions::default()
        },
    );
    assert!(missing.is_err());
}

/// The PostgreSQL counterpart: a second store on the same database sees what the first
/// committed, a closed store refuses work, and a mistyped database is an error at open
/// rather than a new, empty database.
#[tokio::test]
async fn postgres_data_survives_close_and_reopen_and_a_closed_store_refuses_work() {
    let Some(base) = postgres_url() else { return };
    let schema = TestSchema::create(&base).await.unwrap();
    let options = PostgresOptions::default();
    let store = PostgresStore::open(schema.url(), options.clone())
        .await
        .unwrap();
    store
        .put_bsos(write(1, "c", vec![set("a", "kept")]), false)
        .await
        .unwrap();
    let staged = store
        .create_batch(write(1, "c", vec![set("b", "staged")]), 10)
        .await
        .unwrap()
        .value;
    store.close().await;
    assert!(matches!(store.check().await, Err(StoreError::Backend(_))));
    let reopened = PostgresStore::open(schema.url(), options.clone())
        .await
        .unwrap();
    assert_eq!(
        reopened
            .get_bso(1, "c", "a", Precondition::None)
            .await
            .unwrap()
            .value
            .payload,
        "kept"
    );
    let (_, ids) = reopened
        .commit_batch(&staged, write(1, "c", vec![]))
        .await
        .unwrap();
    assert_eq!(
        ids,
        ["b"],
        "a batch staged before the restart commits after it"
    );
    reopened.close().await;
    let (server, _) = base.rsplit_once('/').unwrap();
    let missing = PostgresStore::open(&format!("{server}/syncstack_no_such_db"), options).await;
    assert!(matches!(missing, Err(StoreError::Backend(_))));
    schema.drop_schema().await.unwrap();
}

/// Many writes at once, some of which fail their precondition: each gets its own answer,
/// the failures change nothing, and a user's successful writes all have distinct
/// timestamps (the SQLite backend commits queued writes together, each in a savepoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_fail_or_succeed_on_their_own() {
    for b in backends().await {
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let store = b.store.clone();
            tasks.push(tokio::spawn(async move {
                let mut request = write(1 + i % 2, "c", vec![set(&format!("r{i}"), "x")]);
                if i % 5 == 0 {
                    request.precondition = Precondition::IfUnmodifiedSince(SyncTimestamp::ZERO);
                }
                (i, store.put_bsos(request, false).await)
            }));
        }
        let mut stamps = std::collections::HashMap::<u64, Vec<SyncTimestamp>>::new();
        let mut refused = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (i, Ok(outcome)) => stamps.entry(1 + i % 2).or_default().push(outcome.modified),
                (i, Err(StoreError::PreconditionFailed { .. })) => refused.push(i),
                (i, Err(other)) => panic!("{}: write {i} failed: {other}", b.name),
            }
        }
        for user in [1, 2] {
            let mut user_stamps = stamps.remove(&user).unwrap_or_default();
            let written = user_stamps.len();
            user_stamps.sort();
            user_stamps.dedup();
            assert_eq!(
                user_stamps.len(),
                written,
                "{}: user {user} got a timestamp twice",
                b.name
            );
            let page = b
                .store
                .get_bsos(user, "c", listing(Sort::Oldest, 100), Precondition::None)
                .await
                .unwrap();
            assert_eq!(page.value.items.len(), written);
        }
        for i in refused {
            let user = 1 + i % 2;
            let found = b
                .store
                .get_bso(user, "c", &format!("r{i}"), Precondition::None)
                .await;
            assert_eq!(
                found.unwrap_err(),
                StoreError::NotFound,
                "a refused write left data behind"
            );
        }
        b.finish().await;
    }
}

/// Record ids order by their bytes, as in SQLite, whatever the database's locale: a cursor
/// compares ids, and a locale order ("_" < "a" < "B") would make pages skip or repeat.
#[tokio::test]
async fn ids_order_by_bytes_within_one_timestamp() {
    for b in backends().await {
        let s = &b.store;
        let ids = ["b", "B", "_", "a", "Z", "0", "a-b", "a_b", "ab"];
        s.put_bsos(
            write(1, "c", ids.iter().map(|id| set(id, "x")).collect()),
            false,
        )
        .await
        .unwrap();
        let mut sorted: Vec<&str> = ids.to_vec();
        sorted.sort_unstable();
        for (sort, expect) in [
            (Sort::Oldest, sorted.clone()),
            (Sort::Newest, sorted.iter().rev().copied().collect()),
            (Sort::Index, sorted.clone()),
        ] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let query = BsoQuery {
                    cursor,
                    ..listing(sort, 2)
                };
                let page = s
                    .get_bsos(1, "c", query, Precondition::None)
                    .await
                    .unwrap()
                    .value;
                seen.extend(page.items.into_iter().map(|bso| bso.id));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen, expect, "{}: {sort:?}", b.name);
        }
        b.finish().await;
    }
}

/// Records written together share a timestamp, and within it order by id: pages of every
/// size, cut inside or between such runs, list every record once in that order (the
/// SQLite backend sorts short runs itself and leaves long ones to SQLite).
#[tokio::test]
async fn runs_of_one_timestamp_page_in_id_order() {
    for b in backends().await {
        let s = &b.store;
        let uploads = [["m", "c", "x"], ["b", "z", "k"], ["q", "a", "f"]];
        let mut oldest = Vec::new();
        for upload in uploads {
            s.put_bsos(
                write(1, "c", upload.iter().map(|id| set(id, "x")).collect()),
                false,
            )
            .await
            .unwrap();
            let mut run = upload.to_vec();
            run.sort_unstable();
            oldest.extend(run);
        }
        let newest: Vec<&str> = oldest.iter().rev().copied().collect();
        for (sort, expect) in [(Sort::Oldest, &oldest), (Sort::Newest, &newest)] {
            for limit in 1..=10 {
                let mut seen = Vec::new();
                let mut cursor = None;
                loop {
                    let query = BsoQuery {
                        cursor,
                        ..listing(sort, limit)
                    };
                    let page = s
                        .get_bsos(1, "c", query, Precondition::None)
                        .await
                        .unwrap()
                        .value;
                    assert!(page.items.len() <= limit as usize);
                    seen.extend(page.items.into_iter().map(|bso| bso.id));
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                assert_eq!(&seen, expect, "{}: {sort:?}, limit {limit}", b.name);
            }
        }
        b.finish().await;
    }
}

/// Payloads come back byte for byte, including characters some databases refuse in text.
#[tokio::test]
async fn payloads_round_trip_exactly() {
    for b in backends().await {
        let s = &b.store;
        let payload = "nul \u{0} é 😀 \"quoted\" \\".to_owned();
        s.put_bsos(write(1, "c", vec![set("a", &payload)]), false)
            .await
            .unwrap();
        let stored = s.get_bso(1, "c", "a", Precondition::None).await.unwrap();
        assert_eq!(stored.value.payload, payload, "{}", b.name);
        let usage = s.storage_usage(1, Precondition::None).await.unwrap().value;
        assert_eq!(usage, payload.len() as u64, "{}", b.name);
        b.finish().await;
    }
}

/// A write that names one id twice applies both, in order, like two writes would.
#[tokio::test]
async fn one_write_naming_an_id_twice_applies_both_in_order() {
    for b in backends().await {
        let s = &b.store;
        let first = BsoUpdate {
            sortindex: Patch::Set(5),
            ..set("a", "first")
        };
        let second = BsoUpdate {
            id: "a".into(),
            sortindex: Patch::Keep,
            payload: Patch::Set("second".into()),
            ttl: Patch::Keep,
        };
        s.put_bsos(write(1, "c", vec![first, set("b", "b"), second]), false)
            .await
            .unwrap();
        let a = s
            .get_bso(1, "c", "a", Precondition::None)
            .await
            .unwrap()
            .value;
        assert_eq!(
            (a.payload.as_str(), a.sortindex),
            ("second", Some(5)),
            "{}",
            b.name
        );
        let counts = s.collection_counts(1, Precondition::None).await.unwrap();
        assert_eq!(counts.value, vec![("c".to_owned(), 2)], "{}", b.name);
        b.finish().await;
    }
}

#[tokio::test]
async fn pages_end_early_when_they_hold_too_many_bytes() {
    let options = Options {
        max_page_bytes: 2500,
        ..Options::default()
    };
    for b in backends_with(options).await {
        let records: Vec<_> = (0..10)
            .map(|i| set(&format!("r{i}"), &"x".repeat(1000)))
            .collect();
        b.store
            .put_bsos(write(1, "c", records), false)
            .await
            .unwrap();
        let mut seen = 0;
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let query = BsoQuery {
                cursor,
                ..listing(Sort::Oldest, 100)
            };
            let page = b
                .store
                .get_bsos(1, "c", query, Precondition::None)
                .await
                .unwrap()
                .value;
            assert!(
                page.items.len() <= 3,
                "a page passed the byte budget: {}",
                page.items.len()
            );
            seen += page.items.len();
            pages += 1;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!((seen, pages), (10, 4), "{}", b.name);
        b.finish().await;
    }
}
