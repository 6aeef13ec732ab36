//! The `SettingsStore` conformance suite: every backend must pass every check here.
//!
//! Each check runs against every backend `backends()` returns: SQLite on a fresh temporary
//! file always, and PostgreSQL, each test in its own throwaway schema, when
//! `SYNCSTACK_TEST_POSTGRES_URL` names a server (without it the PostgreSQL half is skipped,
//! so a bare `cargo test` needs no server). Checks speak only the trait, so a new backend
//! gets the whole suite by adding one line to `backends()`. "Several processes" checks use
//! a second store instance on the same database (its own connections, as a second process
//! has). The checks at the end, under "SQLite only", are about the database file itself.
//!
//! Every backend starts from an empty store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres_support::TestSchema;
use serde_json::{Map, Value, json};
use settings_store::postgres::PostgresSettingsStore;
use settings_store::sqlite::SqliteSettingsStore;
use settings_store::{Kind, Object, Permissions, Precondition, SettingsStore, StoreError, Write};

struct Backend {
    name: &'static str,
    store: Arc<dyn SettingsStore>,
    /// A second instance on the same database, as a second process would have.
    other: Arc<dyn SettingsStore>,
    /// Whether `lock` excludes holders in other instances (processes), not only this one.
    shared_locks: bool,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL schema, dropped with the backend.
    _schema: Option<TestSchema>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.db");
    let store = SqliteSettingsStore::open(&path, true).unwrap();
    let other = SqliteSettingsStore::open(&path, false).unwrap();
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        other: Arc::new(other),
        shared_locks: false,
        _dir: Some(dir),
        _schema: None,
    }
}

/// A fresh schema on the server `SYNCSTACK_TEST_POSTGRES_URL` names, if it names one.
async fn postgres() -> Option<Backend> {
    let base = std::env::var("SYNCSTACK_TEST_POSTGRES_URL").ok()?;
    let schema = TestSchema::create(&base).await.unwrap();
    let store = PostgresSettingsStore::open(schema.url(), 4).await.unwrap();
    let other = PostgresSettingsStore::open(schema.url(), 4).await.unwrap();
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        other: Arc::new(other),
        shared_locks: true,
        _dir: None,
        _schema: Some(schema),
    })
}

async fn backends() -> Vec<Backend> {
    let mut all = vec![sqlite()];
    all.extend(postgres().await);
    all
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const B: &str = "/buckets/main";
const C: &str = "/buckets/main/collections/cfr";

fn data(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn write(kind: Kind, parent: &str, id: &str, value: Value) -> Write {
    Write {
        kind,
        parent: parent.into(),
        id: id.into(),
        data: data(value),
        permissions: None,
        precondition: Precondition::None,
        forced_timestamp: None,
    }
}

/// Permission name → principals, as literals.
type Grants<'a> = &'a [(&'a str, &'a [&'a str])];

fn record(id: &str, value: Value) -> Write {
    write(Kind::Record, C, id, value)
}

fn cond(mut w: Write, precondition: Precondition) -> Write {
    w.precondition = precondition;
    w
}

fn granting(mut w: Write, permissions: Grants) -> Write {
    w.permissions = Some(perms(permissions));
    w
}

fn forced(mut w: Write, ts: i64) -> Write {
    w.forced_timestamp = Some(ts);
    w
}

fn perms(permissions: Grants) -> Permissions {
    permissions
        .iter()
        .map(|(name, principals)| {
            (
                name.to_string(),
                principals.iter().map(|p| p.to_string()).collect(),
            )
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ids(objects: &[Object]) -> Vec<&str> {
    let mut ids: Vec<&str> = objects.iter().map(|o| o.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

async fn put(s: &dyn SettingsStore, w: Write) -> Object {
    s.put(w).await.unwrap().0
}

async fn del(s: &dyn SettingsStore, kind: Kind, parent: &str, id: &str) -> Object {
    s.delete(kind, parent, id, Precondition::None)
        .await
        .unwrap()
}

/// A list, tombstones included, by id (`list` promises no order).
async fn all(s: &dyn SettingsStore, kind: Kind, parent: &str) -> Vec<Object> {
    by_id(s.list(kind, parent, true).await.unwrap())
}

/// A list's live objects, by id.
async fn live(s: &dyn SettingsStore, kind: Kind, parent: &str) -> Vec<Object> {
    by_id(s.list(kind, parent, false).await.unwrap())
}

fn by_id(mut objects: Vec<Object>) -> Vec<Object> {
    objects.sort_by(|a, b| a.id.cmp(&b.id));
    objects
}

async fn get(s: &dyn SettingsStore, kind: Kind, parent: &str, id: &str) -> Option<Object> {
    s.get(kind, parent, id).await.unwrap()
}

async fn ts(s: &dyn SettingsStore, kind: Kind, parent: &str) -> i64 {
    s.timestamp(kind, parent).await.unwrap()
}

async fn perms_at(s: &dyn SettingsStore, uri: &str) -> Permissions {
    s.permissions(uri).await.unwrap()
}

/// Every list and permission the checks below use, to compare a store before and after a
/// write that must change nothing.
async fn snapshot(s: &dyn SettingsStore) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, parent) in [(Kind::Bucket, ""), (Kind::Collection, B), (Kind::Record, C)] {
        out.push(format!("{kind:?} {parent} {}", ts(s, kind, parent).await));
        for o in all(s, kind, parent).await {
            out.push(format!("{kind:?} {parent} {o:?}"));
        }
    }
    for uri in [B, C, &format!("{C}/records/a")] {
        out.push(format!("{uri} {:?}", perms_at(s, uri).await));
    }
    out
}

#[track_caller]
fn assert_precondition_failed<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    existing: Option<&Object>,
    context: &str,
) {
    match result {
        Err(StoreError::PreconditionFailed { existing: got }) => {
            assert_eq!(got.as_ref(), existing, "{context}: existing")
        }
        other => panic!("{context}: expected PreconditionFailed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn put_creates_then_replaces() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        assert_eq!(get(s, Kind::Record, C, "a").await, None);
        let (first, created) = s.put(record("a", json!({"x": 1, "y": 2}))).await.unwrap();
        assert!(created, "{n}");
        assert_eq!((first.id.as_str(), first.deleted), ("a", false));
        assert_eq!(first.data, data(json!({"x": 1, "y": 2})));
        assert_eq!(get(s, Kind::Record, C, "a").await.as_ref(), Some(&first));

        // A replace drops the old fields entirely and moves last_modified forward.
        let (second, created) = s.put(record("a", json!({"z": [true]}))).await.unwrap();
        assert!(!created, "{n}");
        assert!(second.last_modified > first.last_modified, "{n}");
        assert_eq!(second.data, data(json!({"z": [true]})));
        assert_eq!(get(s, Kind::Record, C, "a").await.as_ref(), Some(&second));
        assert_eq!(live(s, Kind::Record, C).await, vec![second.clone()]);
        assert_eq!(ts(s, Kind::Record, C).await, second.last_modified);

        // The same id under another kind or another parent is another object.
        let other = "/buckets/main/collections/other";
        assert_eq!(get(s, Kind::Collection, C, "a").await, None, "{n}");
        assert_eq!(get(s, Kind::Record, other, "a").await, None, "{n}");
        assert_eq!(ts(s, Kind::Record, other).await, 0, "{n}");

        // Every kind round-trips, parentless ones included.
        for (kind, parent) in [
            (Kind::Bucket, ""),
            (Kind::Account, ""),
            (Kind::Group, B),
            (Kind::Collection, B),
        ] {
            let w = write(kind, parent, "k", json!({"members": ["a"]}));
            let (o, created) = s.put(w).await.unwrap();
            assert!(created, "{n} {kind:?}");
            assert_eq!(get(s, kind, parent, "k").await.as_ref(), Some(&o));
            assert_eq!(live(s, kind, parent).await, vec![o.clone()]);
            assert_eq!(ts(s, kind, parent).await, o.last_modified);
        }
    }
}

#[tokio::test]
async fn data_is_stored_without_id_and_last_modified() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        let sent = json!({"id": "zzz", "last_modified": 12, "title": "t", "n": null});
        let o = put(s, record("a", sent)).await;
        let want = data(json!({"title": "t", "n": null}));
        assert_eq!(o.data, want, "{n}");
        assert_eq!(
            get(s, Kind::Record, C, "a").await.unwrap().data,
            want,
            "{n}"
        );
        assert_eq!(live(s, Kind::Record, C).await[0].data, want, "{n}");
        assert_ne!(
            o.last_modified, 12,
            "{n}: a last_modified in data is not forced"
        );
        let shown = json!({"id": "a", "last_modified": o.last_modified, "title": "t", "n": null});
        assert_eq!(o.to_json(), shown);
    }
}

#[tokio::test]
async fn json_values_round_trip() {
    for b in backends().await {
        let s = &*b.store;
        let value = json!({
            "unicode": "é✓😀\u{0}'\"",
            "nested": {"a": [1, 2.5, -3, {"b": null}], "big": 9007199254740993u64},
            "float": 0.1,
            "min": i64::MIN,
            "empty": {},
        });
        put(s, record("a", value.clone())).await;
        let stored = get(s, Kind::Record, C, "a").await.unwrap();
        assert_eq!(stored.data, data(value), "{}", b.name);
    }
}

#[tokio::test]
async fn raw_lists_hold_the_same_objects_as_parsed_ones() {
    for b in backends().await {
        let s = &*b.store;
        put(
            s,
            record("a", json!({"unicode": "é✓\u{0}\"", "n": [1, 2.5]})),
        )
        .await;
        put(s, record("b", json!({}))).await;
        put(s, record("c", json!({"x": 1}))).await;
        del(s, Kind::Record, C, "c").await;
        for include_deleted in [false, true] {
            let parsed = by_id(s.list(Kind::Record, C, include_deleted).await.unwrap());
            let mut raw = s.list_raw(Kind::Record, C, include_deleted).await.unwrap();
            raw.sort_by(|x, y| x.id.cmp(&y.id));
            let written: Vec<Value> = raw
                .iter()
                .map(|o| {
                    let mut out = Vec::new();
                    o.write_json(&mut out);
                    serde_json::from_slice(&out).unwrap()
                })
                .collect();
            let shown: Vec<Value> = parsed.iter().map(Object::to_json).collect();
            assert_eq!(written, shown, "{} {include_deleted}", b.name);
        }
    }
}

#[tokio::test]
async fn put_preconditions() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);

        // On a missing object, If-Match and If-Match: * fail with no existing object.
        for pre in [Precondition::IfMatch(1), Precondition::IfExists] {
            let before = snapshot(s).await;
            let result = s.put(cond(record("a", json!({})), pre)).await;
            assert_precondition_failed(result, None, n);
            assert_eq!(snapshot(s).await, before, "{n}: {pre:?} wrote");
        }
        // If-None-Match: * creates.
        let w = cond(record("a", json!({"v": 1})), Precondition::IfAbsent);
        let (a, created) = s.put(w).await.unwrap();
        assert!(created, "{n}");

        // On an existing object, failures write nothing (permissions included).
        let before = snapshot(s).await;
        let w = cond(record("a", json!({"v": 2})), Precondition::IfAbsent);
        assert_precondition_failed(s.put(w).await, Some(&a), n);
        let w = granting(record("a", json!({"v": 2})), &[("write", &["account:x"])]);
        let w = cond(w, Precondition::IfMatch(a.last_modified - 1));
        assert_precondition_failed(s.put(w).await, Some(&a), n);
        assert_eq!(
            snapshot(s).await,
            before,
            "{n}: a failed precondition wrote"
        );

        let w = cond(
            record("a", json!({"v": 2})),
            Precondition::IfMatch(a.last_modified),
        );
        let (a2, created) = s.put(w).await.unwrap();
        assert!(!created, "{n}");
        assert_eq!(a2.data, data(json!({"v": 2})));
        let w = cond(record("a", json!({"v": 3})), Precondition::IfExists);
        let (a3, created) = s.put(w).await.unwrap();
        assert!(!created, "{n}");
        // The previous timestamp no longer matches.
        let w = cond(
            record("a", json!({"v": 4})),
            Precondition::IfMatch(a2.last_modified),
        );
        assert_precondition_failed(s.put(w).await, Some(&a3), n);

        // A tombstone counts as absent.
        let tomb = del(s, Kind::Record, C, "a").await;
        for pre in [
            Precondition::IfMatch(tomb.last_modified),
            Precondition::IfExists,
        ] {
            let result = s.put(cond(record("a", json!({})), pre)).await;
            assert_precondition_failed(result, None, n);
        }
        let w = cond(record("a", json!({"v": 5})), Precondition::IfAbsent);
        let (back, created) = s.put(w).await.unwrap();
        assert!(created, "{n}: writing over a tombstone creates");
        assert!(back.last_modified > tomb.last_modified, "{n}");
        assert_eq!(all(s, Kind::Record, C).await, vec![back], "{n}");
    }
}

#[tokio::test]
async fn delete_preconditions() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        let a = put(s, record("a", json!({"v": 1}))).await;

        let before = snapshot(s).await;
        for pre in [
            Precondition::IfMatch(a.last_modified + 1),
            Precondition::IfAbsent,
        ] {
            let result = s.delete(Kind::Record, C, "a", pre).await;
            assert_precondition_failed(result, Some(&a), n);
        }
        assert_eq!(
            snapshot(s).await,
            before,
            "{n}: a failed precondition wrote"
        );

        let pre = Precondition::IfMatch(a.last_modified);
        let tomb = s.delete(Kind::Record, C, "a", pre).await.unwrap();
        assert!(tomb.deleted && tomb.last_modified > a.last_modified, "{n}");
        put(s, record("b", json!({}))).await;
        s.delete(Kind::Record, C, "b", Precondition::IfExists)
            .await
            .unwrap();
        assert_eq!(get(s, Kind::Record, C, "b").await, None, "{n}");

        // Missing and already deleted objects are NotFound whatever the precondition
        // (Kinto's DELETE answers 404 before it checks preconditions).
        for id in ["a", "never"] {
            for pre in [
                Precondition::None,
                Precondition::IfMatch(tomb.last_modified),
                Precondition::IfExists,
                Precondition::IfAbsent,
            ] {
                let before = snapshot(s).await;
                let result = s.delete(Kind::Record, C, id, pre).await;
                assert_eq!(result, Err(StoreError::NotFound), "{n}: {id} {pre:?}");
                assert_eq!(snapshot(s).await, before, "{n}: a failed delete wrote");
            }
        }
    }
}

#[tokio::test]
async fn tombstones() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        let a = put(s, record("a", json!({"title": "secret"}))).await;
        let keep = put(s, record("keep", json!({}))).await;
        let tomb = del(s, Kind::Record, C, "a").await;
        assert_eq!((tomb.id.as_str(), tomb.deleted), ("a", true), "{n}");
        assert!(tomb.data.is_empty(), "{n}: a tombstone has no data");
        assert!(tomb.last_modified > keep.last_modified, "{n}");
        assert!(keep.last_modified > a.last_modified, "{n}");
        let shown = json!({"id": "a", "last_modified": tomb.last_modified, "deleted": true});
        assert_eq!(tomb.to_json(), shown);

        assert_eq!(
            get(s, Kind::Record, C, "a").await,
            None,
            "{n}: get hides tombstones"
        );
        assert_eq!(live(s, Kind::Record, C).await, vec![keep.clone()], "{n}");
        assert_eq!(
            all(s, Kind::Record, C).await,
            vec![tomb.clone(), keep],
            "{n}"
        );
        assert_eq!(ts(s, Kind::Record, C).await, tomb.last_modified, "{n}");

        // Deleting the last object: the list is empty, its timestamp stays and rose.
        let tomb2 = del(s, Kind::Record, C, "keep").await;
        assert!(tomb2.last_modified > tomb.last_modified, "{n}");
        assert!(live(s, Kind::Record, C).await.is_empty(), "{n}");
        assert_eq!(
            all(s, Kind::Record, C).await,
            vec![tomb, tomb2.clone()],
            "{n}"
        );
        assert_eq!(ts(s, Kind::Record, C).await, tomb2.last_modified, "{n}");

        // And never goes back: the next write is newer still.
        let c = put(s, record("c", json!({}))).await;
        assert!(c.last_modified > tomb2.last_modified, "{n}");
        assert_eq!(ts(s, Kind::Record, C).await, c.last_modified, "{n}");
    }
}

#[tokio::test]
async fn forced_timestamps() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        let first = put(s, record("a", json!({}))).await;

        // Newer than the list: used as is, and becomes the list's.
        let future = now_ms() + 10_000_000;
        let f = put(s, forced(record("b", json!({})), future)).await;
        assert_eq!(f.last_modified, future, "{n}");
        assert_eq!(ts(s, Kind::Record, C).await, future, "{n}");

        // Not newer (older, or equal): ignored, and the list's timestamp bumped.
        let older = put(s, forced(record("c", json!({})), first.last_modified)).await;
        assert_eq!(older.last_modified, future + 1, "{n}");
        let equal = put(s, forced(record("d", json!({})), future + 1)).await;
        assert_eq!(equal.last_modified, future + 2, "{n}");
        // Unforced writes keep sliding ahead of the clock, deletes too.
        let next = put(s, record("e", json!({}))).await;
        assert_eq!(next.last_modified, future + 3, "{n}");
        assert_eq!(
            del(s, Kind::Record, C, "e").await.last_modified,
            future + 4,
            "{n}"
        );

        // Below the clock but above the list: used (replication).
        let replica = "/buckets/main/collections/replica";
        let r = put(s, forced(write(Kind::Record, replica, "x", json!({})), 42)).await;
        assert_eq!(r.last_modified, 42, "{n}");
        let r2 = put(s, write(Kind::Record, replica, "y", json!({}))).await;
        assert!(
            r2.last_modified >= now_ms() - 60_000,
            "{n}: back on the clock"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timestamps_strictly_increase_under_concurrent_writers() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        // 50 writers of distinct objects of one list.
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = b.store.clone();
                tokio::spawn(async move { s.put(record(&format!("r{i}"), json!({"i": i}))).await })
            })
            .collect();
        let mut stamps = HashSet::new();
        for t in tasks {
            let (o, created) = t.await.unwrap().unwrap();
            assert!(created, "{n}");
            stamps.insert(o.last_modified);
        }
        assert_eq!(stamps.len(), 50, "{n}: repeated timestamps");
        let max = *stamps.iter().max().unwrap();
        assert_eq!(ts(s, Kind::Record, C).await, max, "{n}");
        let listed: HashSet<i64> = live(s, Kind::Record, C)
            .await
            .iter()
            .map(|o| o.last_modified)
            .collect();
        assert_eq!(listed, stamps, "{n}");

        // 50 writers of one object: commit order and timestamp order agree. The first to
        // commit created it and has the smallest timestamp; the last one's write is what
        // remains, with the largest.
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = b.store.clone();
                tokio::spawn(async move { s.put(record("same", json!({"i": i}))).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap().unwrap());
        }
        results.sort_by_key(|(o, _)| o.last_modified);
        let stamps: HashSet<i64> = results.iter().map(|(o, _)| o.last_modified).collect();
        assert_eq!(stamps.len(), 50, "{n}: repeated timestamps");
        assert!(results[0].0.last_modified > max, "{n}: went back");
        let creators: Vec<bool> = results.iter().map(|(_, created)| *created).collect();
        let mut want = vec![false; 50];
        want[0] = true;
        assert_eq!(
            creators, want,
            "{n}: only the first write created the object"
        );
        let last = &results[49].0;
        assert_eq!(
            get(s, Kind::Record, C, "same").await.as_ref(),
            Some(last),
            "{n}"
        );
        assert_eq!(ts(s, Kind::Record, C).await, last.last_modified, "{n}");
    }
}

// ---------------------------------------------------------------------------------------
// Subtrees
// ---------------------------------------------------------------------------------------

const ADMIN: Grants = &[("write", &["account:admin"])];
const EVERYONE: Grants = &[("read", &["system.Everyone"])];
const EDITOR: Grants = &[("write", &["account:e"])];

/// Bucket `bid` with a group and two collections, each with two records and a tombstone,
/// and permissions on each object.
async fn populate(s: &dyn SettingsStore, bid: &str) {
    let bucket = format!("/buckets/{bid}");
    put(s, granting(write(Kind::Bucket, "", bid, json!({})), ADMIN)).await;
    let group = write(
        Kind::Group,
        &bucket,
        "editors",
        json!({"members": ["account:e"]}),
    );
    put(s, granting(group, ADMIN)).await;
    for cid in ["c1", "c2"] {
        put(
            s,
            granting(write(Kind::Collection, &bucket, cid, json!({})), EVERYONE),
        )
        .await;
        let collection = format!("{bucket}/collections/{cid}");
        for rid in ["r1", "r2", "r3"] {
            put(
                s,
                granting(write(Kind::Record, &collection, rid, json!({})), EDITOR),
            )
            .await;
        }
        del(s, Kind::Record, &collection, "r3").await;
    }
}

/// Checks that bucket `bid` is as `populate` left it.
async fn assert_populated(s: &dyn SettingsStore, bid: &str, context: &str) {
    let bucket = format!("/buckets/{bid}");
    assert!(get(s, Kind::Bucket, "", bid).await.is_some(), "{context}");
    assert_eq!(perms_at(s, &bucket).await, perms(ADMIN), "{context}");
    let groups = all(s, Kind::Group, &bucket).await;
    assert_eq!(ids(&groups), ["editors"], "{context}");
    let collections = all(s, Kind::Collection, &bucket).await;
    assert_eq!(ids(&collections), ["c1", "c2"], "{context}");
    for cid in ["c1", "c2"] {
        let collection = format!("{bucket}/collections/{cid}");
        assert_eq!(perms_at(s, &collection).await, perms(EVERYONE), "{context}");
        let records = all(s, Kind::Record, &collection).await;
        assert_eq!(ids(&records), ["r1", "r2", "r3"], "{context}");
        assert!(ts(s, Kind::Record, &collection).await > 0, "{context}");
        let r1 = format!("{collection}/records/r1");
        assert_eq!(perms_at(s, &r1).await, perms(EDITOR), "{context}");
    }
}

/// Checks that nothing is left under bucket `bid` (the bucket's own tombstone aside).
async fn assert_emptied(s: &dyn SettingsStore, bid: &str, context: &str) {
    let bucket = format!("/buckets/{bid}");
    assert!(perms_at(s, &bucket).await.is_empty(), "{context}");
    assert!(all(s, Kind::Group, &bucket).await.is_empty(), "{context}");
    assert!(
        all(s, Kind::Collection, &bucket).await.is_empty(),
        "{context}"
    );
    assert_eq!(ts(s, Kind::Collection, &bucket).await, 0, "{context}");
    let group = format!("{bucket}/groups/editors");
    assert!(perms_at(s, &group).await.is_empty(), "{context}");
    for cid in ["c1", "c2"] {
        let collection = format!("{bucket}/collections/{cid}");
        assert!(perms_at(s, &collection).await.is_empty(), "{context}");
        assert!(
            all(s, Kind::Record, &collection).await.is_empty(),
            "{context}"
        );
        assert_eq!(ts(s, Kind::Record, &collection).await, 0, "{context}");
        let r1 = format!("{collection}/records/r1");
        assert!(perms_at(s, &r1).await.is_empty(), "{context}");
    }
}

#[tokio::test]
async fn deleting_a_bucket_removes_its_subtree() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        // Buckets whose URIs extend the deleted one's ("main-x", "main_x") or sort next to
        // it must survive.
        let siblings = ["main-x", "main_x", "mainx", "mai"];
        populate(s, "main").await;
        for bid in siblings {
            populate(s, bid).await;
        }
        let buckets_ts = ts(s, Kind::Bucket, "").await;

        let tomb = del(s, Kind::Bucket, "", "main").await;
        assert!(tomb.deleted && tomb.last_modified > buckets_ts, "{n}");
        assert_eq!(get(s, Kind::Bucket, "", "main").await, None, "{n}");
        assert!(all(s, Kind::Bucket, "").await.contains(&tomb), "{n}");
        assert_emptied(s, "main", n).await;
        let everyone = s.permissions_of(&["system.Everyone".into()]).await.unwrap();
        assert!(
            everyone
                .iter()
                .all(|(uri, _)| !uri.starts_with("/buckets/main/")),
            "{n}"
        );
        for bid in siblings {
            assert_populated(s, bid, &format!("{n}: sibling {bid}")).await;
        }

        // A recreated bucket starts empty.
        put(s, write(Kind::Bucket, "", "main", json!({}))).await;
        assert_emptied(s, "main", n).await;
    }
}

#[tokio::test]
async fn deleting_a_collection_removes_its_records() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        populate(s, "main").await;
        let c1 = format!("{B}/collections/c1");
        assert!(del(s, Kind::Collection, B, "c1").await.deleted, "{n}");
        assert!(
            all(s, Kind::Record, &c1).await.is_empty(),
            "{n}: no record tombstones"
        );
        assert_eq!(ts(s, Kind::Record, &c1).await, 0, "{n}");
        assert!(perms_at(s, &c1).await.is_empty(), "{n}");
        assert!(
            perms_at(s, &format!("{c1}/records/r1")).await.is_empty(),
            "{n}"
        );
        let collections = all(s, Kind::Collection, B).await;
        assert_eq!(
            ids(&collections),
            ["c1", "c2"],
            "{n}: c1 leaves a tombstone"
        );
        // The bucket, its group and the other collection are untouched.
        assert!(get(s, Kind::Bucket, "", "main").await.is_some(), "{n}");
        assert_eq!(perms_at(s, B).await, perms(ADMIN), "{n}");
        assert!(get(s, Kind::Group, B, "editors").await.is_some(), "{n}");
        let c2 = format!("{B}/collections/c2");
        assert_eq!(
            ids(&all(s, Kind::Record, &c2).await),
            ["r1", "r2", "r3"],
            "{n}"
        );
        assert_eq!(perms_at(s, &c2).await, perms(EVERYONE), "{n}");
    }
}

#[tokio::test]
async fn deleting_an_account_removes_its_permissions() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        for id in ["alice", "alice2"] {
            let principal = format!("account:{id}");
            let w = granting(
                write(Kind::Account, "", id, json!({})),
                &[("write", &[&principal])],
            );
            put(s, w).await;
        }
        assert_eq!(
            perms_at(s, "/accounts/alice").await,
            perms(&[("write", &["account:alice"])])
        );
        del(s, Kind::Account, "", "alice").await;
        assert!(perms_at(s, "/accounts/alice").await.is_empty(), "{n}");
        let kept = perms(&[("write", &["account:alice2"])]);
        assert_eq!(perms_at(s, "/accounts/alice2").await, kept, "{n}");
    }
}

// ---------------------------------------------------------------------------------------
// delete_many
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_many_all() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        for id in ["a", "b", "c", "d"] {
            put(s, granting(record(id, json!({"n": id})), EDITOR)).await;
        }
        let d = del(s, Kind::Record, C, "d").await;

        let tombs = s.delete_many(Kind::Record, C, None).await.unwrap();
        assert_eq!(
            ids(&tombs),
            ["a", "b", "c"],
            "{n}: tombstones are not deleted again"
        );
        assert!(tombs.iter().all(|t| t.deleted && t.data.is_empty()), "{n}");
        let stamps: Vec<i64> = tombs.iter().map(|t| t.last_modified).collect();
        assert!(stamps[0] > d.last_modified, "{n}");
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{n}: {stamps:?}");
        assert_eq!(ts(s, Kind::Record, C).await, stamps[2], "{n}");
        assert!(live(s, Kind::Record, C).await.is_empty(), "{n}");
        let mut listed = all(s, Kind::Record, C).await;
        listed.sort_by_key(|o| o.last_modified);
        let mut want = vec![d];
        want.extend(tombs);
        assert_eq!(listed, want, "{n}");
        for id in ["a", "b", "c"] {
            assert!(
                perms_at(s, &format!("{C}/records/{id}")).await.is_empty(),
                "{n}"
            );
        }

        // Nothing left to delete: nothing happens, the timestamp stays.
        let before = ts(s, Kind::Record, C).await;
        assert!(
            s.delete_many(Kind::Record, C, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ts(s, Kind::Record, C).await, before, "{n}");
        let empty = "/buckets/main/collections/empty";
        assert!(
            s.delete_many(Kind::Record, empty, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ts(s, Kind::Record, empty).await, 0, "{n}");
    }
}

#[tokio::test]
async fn delete_many_some_ids() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        for id in ["a", "b", "c", "d"] {
            put(s, record(id, json!({}))).await;
        }
        let d = del(s, Kind::Record, C, "d").await;

        let asked = ["c", "unknown", "a", "c", "d"].map(String::from).to_vec();
        let tombs = s.delete_many(Kind::Record, C, Some(asked)).await.unwrap();
        let got: Vec<&str> = tombs.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            got,
            ["c", "a"],
            "{n}: unknown, repeated and deleted ids are skipped"
        );
        assert!(tombs[0].last_modified < tombs[1].last_modified, "{n}");
        assert_eq!(ids(&live(s, Kind::Record, C).await), ["b"], "{n}");
        let listed = all(s, Kind::Record, C).await;
        assert!(listed.contains(&d), "{n}: the old tombstone is untouched");

        let before = ts(s, Kind::Record, C).await;
        let unknown = Some(vec!["nope".to_string()]);
        assert!(
            s.delete_many(Kind::Record, C, unknown)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.delete_many(Kind::Record, C, Some(vec![]))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ts(s, Kind::Record, C).await, before, "{n}");
    }
}

#[tokio::test]
async fn delete_many_removes_subtrees() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        for bid in ["main", "other", "kept"] {
            populate(s, bid).await;
        }
        let asked = Some(vec!["main".to_string(), "other".to_string()]);
        let tombs = s.delete_many(Kind::Bucket, "", asked).await.unwrap();
        assert_eq!(ids(&tombs), ["main", "other"], "{n}");
        assert_emptied(s, "main", n).await;
        assert_emptied(s, "other", n).await;
        assert_populated(s, "kept", n).await;
    }
}

// ---------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn permissions_round_trip() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        let uri = format!("{C}/records/a");
        assert!(perms_at(s, &uri).await.is_empty(), "{n}");

        let first: Grants = &[
            ("read", &["system.Everyone"]),
            ("write", &["account:a", "account:b"]),
        ];
        put(s, granting(record("a", json!({})), first)).await;
        assert_eq!(perms_at(s, &uri).await, perms(first), "{n}");

        // None keeps them.
        put(s, record("a", json!({"v": 2}))).await;
        assert_eq!(perms_at(s, &uri).await, perms(first), "{n}");

        // Some replaces them entirely; an empty set reads back as absent.
        let second: Grants = &[("write", &["account:c"]), ("read", &[])];
        put(s, granting(record("a", json!({})), second)).await;
        assert_eq!(
            perms_at(s, &uri).await,
            perms(&[("write", &["account:c"])]),
            "{n}"
        );

        // An empty map clears them.
        put(s, granting(record("a", json!({})), &[])).await;
        assert!(perms_at(s, &uri).await.is_empty(), "{n}");
    }
}

#[tokio::test]
async fn permissions_of_principals() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        let bucket: Grants = &[
            ("write", &["account:admin"]),
            (
                "collection:create",
                &["account:e", "/buckets/main/groups/editors"],
            ),
        ];
        put(
            s,
            granting(write(Kind::Bucket, "", "main", json!({})), bucket),
        )
        .await;
        let collection: Grants = &[
            ("read", &["system.Everyone"]),
            ("write", &["account:e", "account:admin"]),
        ];
        put(
            s,
            granting(write(Kind::Collection, B, "cfr", json!({})), collection),
        )
        .await;
        put(s, granting(record("r", json!({})), EDITOR)).await;

        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect()
        };
        let principals = ["account:e", "account:admin", "nobody"].map(String::from);
        let got = s.permissions_of(&principals).await.unwrap();
        let want = pairs(&[
            (B, "collection:create"),
            (B, "write"),
            (C, "write"),
            ("/buckets/main/collections/cfr/records/r", "write"),
        ]);
        assert_eq!(got, want, "{n}: sorted, each pair once");

        let everyone = s.permissions_of(&["system.Everyone".into()]).await.unwrap();
        assert_eq!(everyone, pairs(&[(C, "read")]), "{n}");
        let group = ["/buckets/main/groups/editors".to_string()];
        let editors = s.permissions_of(&group).await.unwrap();
        assert_eq!(editors, pairs(&[(B, "collection:create")]), "{n}");
        assert!(s.permissions_of(&[]).await.unwrap().is_empty(), "{n}");
        assert!(
            s.permissions_of(&["nobody".into()])
                .await
                .unwrap()
                .is_empty(),
            "{n}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// flush, check
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn flush_deletes_everything() {
    for b in backends().await {
        let (s, n) = (&*b.store, b.name);
        populate(s, "main").await;
        put(s, granting(write(Kind::Account, "", "a", json!({})), ADMIN)).await;
        s.flush().await.unwrap();
        assert!(all(s, Kind::Bucket, "").await.is_empty(), "{n}");
        assert!(all(s, Kind::Account, "").await.is_empty(), "{n}");
        assert_eq!(ts(s, Kind::Bucket, "").await, 0, "{n}");
        assert_eq!(ts(s, Kind::Account, "").await, 0, "{n}");
        assert_emptied(s, "main", n).await;
        let principals = ["account:admin", "account:e", "system.Everyone"].map(String::from);
        assert!(
            s.permissions_of(&principals).await.unwrap().is_empty(),
            "{n}"
        );
        // Still usable.
        put(s, write(Kind::Bucket, "", "main", json!({}))).await;
        s.check().await.unwrap();
    }
}

#[tokio::test]
async fn check_answers() {
    for b in backends().await {
        b.store.check().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Several processes
// ---------------------------------------------------------------------------------------

/// Two instances on one database are two sets of connections, as two server processes
/// have: the database (the file's write lock, PostgreSQL's row locks), not an in-process
/// mutex, must keep their timestamps apart and lose no write. Half the writes go to one
/// object from both instances at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_processes_writing_one_collection() {
    for b in backends().await {
        let n = b.name;
        let stores = [b.store.clone(), b.other.clone()];
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let s = stores[i % 2].clone();
                let id = if i % 4 < 2 {
                    format!("r{i}")
                } else {
                    "same".to_owned()
                };
                tokio::spawn(async move { s.put(record(&id, json!({"i": i}))).await })
            })
            .collect();
        let mut stamps = HashSet::new();
        let mut same = Vec::new();
        for t in tasks {
            let (object, _) = t.await.unwrap().unwrap_or_else(|e| panic!("{n}: {e:?}"));
            stamps.insert(object.last_modified);
            if object.id == "same" {
                same.push(object);
            }
        }
        assert_eq!(
            stamps.len(),
            100,
            "{n}: repeated timestamps across instances"
        );
        let max = *stamps.iter().max().unwrap();
        let last_same = same.iter().max_by_key(|o| o.last_modified).unwrap();
        for s in &stores {
            assert_eq!(ts(&**s, Kind::Record, C).await, max, "{n}");
            let listed = live(&**s, Kind::Record, C).await;
            assert_eq!(listed.len(), 51, "{n}: 50 distinct records and one shared");
            // The shared object holds the write that took the last timestamp.
            assert_eq!(
                get(&**s, Kind::Record, C, "same").await.as_ref(),
                Some(last_same),
                "{n}"
            );
        }
    }
}

/// `lock` keeps a second holder waiting until the first lets go: any other caller of the
/// same instance on every backend, and callers in other instances (processes) where the
/// backend shares its locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_excludes_other_holders_until_released() {
    for b in backends().await {
        let n = b.name;
        let mut rivals = vec![b.store.clone()];
        if b.shared_locks {
            rivals.push(b.other.clone());
        }
        for rival in rivals {
            let held = b.store.lock("review").await.unwrap();
            let waiting = {
                let rival = rival.clone();
                tokio::spawn(async move { rival.lock("review").await })
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!waiting.is_finished(), "{n}: took a held lock");
            // Other names are independent.
            let other_name = tokio::time::timeout(Duration::from_secs(5), rival.lock("other"))
                .await
                .unwrap_or_else(|_| panic!("{n}: an unrelated lock waited"))
                .unwrap();
            drop(other_name);
            drop(held);
            let got = tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .unwrap_or_else(|_| panic!("{n}: the lock was not released"))
                .unwrap()
                .unwrap();
            drop(got);
        }
        // A caller that gives up waiting leaves nothing held behind.
        let held = b.store.lock("review").await.unwrap();
        let gave_up =
            tokio::time::timeout(Duration::from_millis(200), b.store.lock("review")).await;
        assert!(gave_up.is_err(), "{n}");
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), b.other.lock("review")).await;
        assert!(
            again.is_ok(),
            "{n}: lock still held after its waiter gave up"
        );
    }
}

// ---------------------------------------------------------------------------------------
// SQLite only
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.db");
    let (a, tomb, list_ts) = {
        let s = SqliteSettingsStore::open(&path, true).unwrap();
        populate(&s, "main").await;
        let a = put(&s, granting(record("a", json!({"x": 1})), EVERYONE)).await;
        put(&s, record("b", json!({}))).await;
        let tomb = del(&s, Kind::Record, C, "b").await;
        (a, tomb, ts(&s, Kind::Record, C).await)
    };
    let s = SqliteSettingsStore::open(&path, false).unwrap();
    assert_eq!(s.path(), path);
    assert_populated(&s, "main", "reopened").await;
    assert_eq!(all(&s, Kind::Record, C).await, vec![a, tomb]);
    assert_eq!(
        perms_at(&s, &format!("{C}/records/a")).await,
        perms(EVERYONE)
    );
    assert_eq!(ts(&s, Kind::Record, C).await, list_ts);
    assert!(put(&s, record("c", json!({}))).await.last_modified > list_ts);
}

#[tokio::test]
async fn sqlite_open_without_create_fails_on_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    match SqliteSettingsStore::open(&path, false) {
        Err(StoreError::Backend(message)) => assert!(message.contains("?mode=rwc"), "{message}"),
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("opened a missing file"),
    }
    assert!(!path.exists(), "the file was created");
}
