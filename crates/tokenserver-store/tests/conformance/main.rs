//! The `TokenStore` conformance suite: every backend must pass every check here.
//!
//! Each check runs against every backend `backends()` returns: SQLite on a fresh temporary
//! file always, and PostgreSQL, each test in its own throwaway schema, when
//! `SYNCSTACK_TEST_POSTGRES_URL` names a server (without it the PostgreSQL half is skipped,
//! so a bare `cargo test` needs no server). Checks speak only the trait, so a new backend
//! gets the whole suite by adding one line to `backends()`. "Several processes" runs two
//! store instances on one database (two connections or pools, as two processes have). The
//! checks at the end, under "SQLite only", are about the database file itself.
//!
//! Every backend starts from an empty store with the default release rate (0.1).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres_support::TestSchema;
use tokenserver_store::postgres::PostgresTokenStore;
use tokenserver_store::sqlite::SqliteTokenStore;
use tokenserver_store::{Node, NodeChange, TokenStore, TokenStoreError, UserKeys};

struct Backend {
    name: &'static str,
    store: Arc<dyn TokenStore>,
    /// A second instance on the same database, as a second process would have.
    other: Arc<dyn TokenStore>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL schema, dropped with the backend.
    schema: Option<TestSchema>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let store = SqliteTokenStore::open(&path, true).unwrap();
    let other = SqliteTokenStore::open(&path, false).unwrap();
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        other: Arc::new(other),
        _dir: Some(dir),
        schema: None,
    }
}

/// A fresh schema on the server `SYNCSTACK_TEST_POSTGRES_URL` names, if it names one.
async fn postgres() -> Option<Backend> {
    let base = std::env::var("SYNCSTACK_TEST_POSTGRES_URL").ok()?;
    let schema = TestSchema::create(&base).await.unwrap();
    let store = PostgresTokenStore::open(schema.url(), 4).await.unwrap();
    let other = PostgresTokenStore::open(schema.url(), 4).await.unwrap();
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        other: Arc::new(other),
        _dir: None,
        schema: Some(schema),
    })
}

async fn backends() -> Vec<Backend> {
    let mut all = vec![sqlite()];
    all.extend(postgres().await);
    all
}

fn keys(email: &str, generation: i64, client_state: &str, kca: Option<i64>) -> UserKeys {
    UserKeys {
        email: email.into(),
        generation,
        client_state: client_state.into(),
        keys_changed_at: kca,
    }
}

fn user(n: usize) -> UserKeys {
    keys(&format!("user{n}@accounts.example"), 1, "aaaa", Some(1))
}

async fn node(s: &dyn TokenStore, url: &str) -> Node {
    s.list_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.url == url)
        .unwrap_or_else(|| panic!("no node {url}"))
}

fn change() -> NodeChange {
    NodeChange::default()
}

/// The assignment rule, restated independently of any backend: the candidate with the
/// lowest `ln(load) / ln(capacity)` (an empty node first), ties to the lowest id.
fn expected_choice(nodes: &[Node]) -> Option<String> {
    let fullness = |n: &Node| {
        if n.current_load == 0 {
            -1.0
        } else {
            (n.current_load as f64).ln() / (n.capacity as f64).ln()
        }
    };
    nodes
        .iter()
        .filter(|n| n.available > 0 && n.capacity > n.current_load && !n.downed && !n.backoff)
        .min_by(|a, b| fullness(a).total_cmp(&fullness(b)).then(a.id.cmp(&b.id)))
        .map(|n| n.url.clone())
}

#[tokio::test]
async fn new_users_spread_over_nodes_by_log_fullness() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://small.example", 100).await.unwrap();
        s.add_node("https://big.example", 300).await.unwrap();
        for i in 0..400 {
            let want = expected_choice(&s.list_nodes().await.unwrap());
            let got = s.allocate_user(&user(i), 1000 + i as i64).await.unwrap();
            assert_eq!(got.node, want, "{}: allocation {i}", b.name);
            if i == 99 {
                // Not proportional at first: the big node is less full (23% against 31%).
                assert_eq!(node(s, "https://small.example").await.current_load, 31);
                assert_eq!(node(s, "https://big.example").await.current_load, 69);
            }
        }
        // Both fill up together: after exactly their total capacity, both are full.
        let small = node(s, "https://small.example").await;
        let big = node(s, "https://big.example").await;
        assert_eq!(
            (small.current_load, small.available),
            (100, 0),
            "{}",
            b.name
        );
        assert_eq!((big.current_load, big.available), (300, 0), "{}", b.name);
        assert_eq!(
            s.allocate_user(&user(400), 5000).await.unwrap_err(),
            TokenStoreError::NoNodeAvailable,
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn an_empty_node_is_preferred() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://old.example", 1_000_000).await.unwrap();
        for i in 0..3 {
            s.allocate_user(&user(i), 1000).await.unwrap();
        }
        // A node with one user out of a million is barely used, but an empty node wins.
        s.add_node("https://new.example", 10).await.unwrap();
        let got = s.allocate_user(&user(3), 2000).await.unwrap();
        assert_eq!(
            got.node.as_deref(),
            Some("https://new.example"),
            "{}",
            b.name
        );
        let new = node(s, "https://new.example").await;
        assert_eq!((new.current_load, new.available), (1, 9));
        assert_eq!(got.node_id, new.id);
    }
}

#[tokio::test]
async fn downed_and_backoff_nodes_get_no_new_users() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://down.example", 100).await.unwrap();
        s.add_node("https://backoff.example", 100).await.unwrap();
        s.add_node("https://up.example", 100).await.unwrap();
        let down = NodeChange {
            downed: Some(true),
            ..change()
        };
        let backoff = NodeChange {
            backoff: Some(true),
            ..change()
        };
        assert!(
            s.update_node("https://down.example", down)
                .await
                .unwrap()
                .downed
        );
        assert!(
            s.update_node("https://backoff.example", backoff)
                .await
                .unwrap()
                .backoff
        );
        for i in 0..20 {
            let got = s.allocate_user(&user(i), 1000).await.unwrap();
            assert_eq!(
                got.node.as_deref(),
                Some("https://up.example"),
                "{}",
                b.name
            );
        }
        assert_eq!(node(s, "https://down.example").await.current_load, 0);
        assert_eq!(node(s, "https://backoff.example").await.current_load, 0);
    }
}

#[tokio::test]
async fn spent_budgets_are_refilled_at_the_release_rate() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://a.example", 100).await.unwrap();
        s.add_node("https://nearly-full.example", 100)
            .await
            .unwrap();
        s.add_node("https://backoff.example", 100).await.unwrap();
        s.add_node("https://down.example", 100).await.unwrap();
        let spent = |load: i64| NodeChange {
            available: Some(0),
            current_load: Some(load),
            ..change()
        };
        s.update_node("https://a.example", spent(50)).await.unwrap();
        s.update_node("https://nearly-full.example", spent(97))
            .await
            .unwrap();
        let backoff = NodeChange {
            backoff: Some(true),
            ..spent(0)
        };
        s.update_node("https://backoff.example", backoff)
            .await
            .unwrap();
        let down = NodeChange {
            downed: Some(true),
            ..spent(0)
        };
        s.update_node("https://down.example", down).await.unwrap();

        // No node has budget left, so each that has room and is not down gets
        // MIN(capacity * 0.1, capacity - load) back; then the least full takes the user.
        let got = s.allocate_user(&user(0), 1000).await.unwrap();
        assert_eq!(got.node.as_deref(), Some("https://a.example"), "{}", b.name);
        let a = node(s, "https://a.example").await;
        assert_eq!((a.current_load, a.available), (51, 9), "{}", b.name);
        let nearly_full = node(s, "https://nearly-full.example").await;
        assert_eq!(
            nearly_full.available, 3,
            "{}: capped by the room left",
            b.name
        );
        // Backing-off nodes are refilled but still get no user; downed ones are not.
        let backoff = node(s, "https://backoff.example").await;
        assert_eq!((backoff.current_load, backoff.available), (0, 10));
        assert_eq!(node(s, "https://down.example").await.available, 0);
    }
}

#[tokio::test]
async fn no_node_available_when_all_are_full_down_or_absent() {
    for b in backends().await {
        let s = &*b.store;
        assert_eq!(
            s.allocate_user(&user(0), 1000).await.unwrap_err(),
            TokenStoreError::NoNodeAvailable,
            "{}: no nodes at all",
            b.name
        );
        s.add_node("https://full.example", 2).await.unwrap();
        s.allocate_user(&user(1), 1000).await.unwrap();
        s.allocate_user(&user(2), 1000).await.unwrap();
        s.add_node("https://down.example", 100).await.unwrap();
        let down = NodeChange {
            downed: Some(true),
            ..change()
        };
        s.update_node("https://down.example", down.clone())
            .await
            .unwrap();
        assert_eq!(
            s.allocate_user(&user(3), 1000).await.unwrap_err(),
            TokenStoreError::NoNodeAvailable,
            "{}",
            b.name
        );
        // Room left only on a backing-off node that spent its budget: the release refills
        // it, the next round still finds no candidate and the next release changes nothing.
        s.add_node("https://backoff.example", 100).await.unwrap();
        let backoff = NodeChange {
            backoff: Some(true),
            available: Some(0),
            ..change()
        };
        s.update_node("https://backoff.example", backoff)
            .await
            .unwrap();
        assert_eq!(
            s.allocate_user(&user(4), 1000).await.unwrap_err(),
            TokenStoreError::NoNodeAvailable,
            "{}",
            b.name
        );
        // A failed allocation leaves no row behind.
        assert_eq!(s.get_user(&user(3).email).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_client_state_change_replaces_older_rows() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://n.example/", 100).await.unwrap();
        let email = "a@accounts.example";
        let first = s
            .allocate_user(&keys(email, 10, "aaaa", Some(10)), 1000)
            .await
            .unwrap();
        assert_eq!(
            first.node.as_deref(),
            Some("https://n.example"),
            "{}",
            b.name
        );
        let state = s.get_user(email).await.unwrap().unwrap();
        assert_eq!(state.current, first, "{}", b.name);
        assert!(state.old_client_states.is_empty());

        let second = s
            .allocate_user(&keys(email, 20, "bbbb", Some(20)), 2000)
            .await
            .unwrap();
        let third = s
            .allocate_user(&keys(email, 30, "cccc", Some(30)), 3000)
            .await
            .unwrap();
        assert!(
            first.uid < second.uid && second.uid < third.uid,
            "{}",
            b.name
        );
        let state = s.get_user(email).await.unwrap().unwrap();
        assert_eq!(state.current, third, "{}", b.name);
        assert_eq!(state.old_client_states, vec!["bbbb", "aaaa"], "{}", b.name);

        // The older rows were replaced when the newer ones were made.
        let replaced = s.replaced_users(i64::MAX, 10).await.unwrap();
        let when: Vec<_> = replaced.iter().map(|u| (u.uid, u.replaced_at)).collect();
        assert_eq!(
            when,
            vec![(first.uid, Some(2000)), (second.uid, Some(3000))],
            "{}",
            b.name
        );
        // Another account is untouched.
        assert_eq!(s.get_user("b@accounts.example").await.unwrap(), None);
    }
}

#[tokio::test]
async fn reallocating_a_replaced_user_keeps_its_keys() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://n.example", 100).await.unwrap();
        let email = "a@accounts.example";
        let k = keys(email, 7, "aaaa", Some(5));
        let first = s.allocate_user(&k, 1000).await.unwrap();
        assert_eq!(s.unassign_node("https://n.example", 1500).await.unwrap(), 1);
        let state = s.get_user(email).await.unwrap().unwrap();
        assert_eq!(state.current.replaced_at, Some(1500), "{}", b.name);
        assert_eq!(state.current.node.as_deref(), Some("https://n.example"));

        let again = s.allocate_user(&k, 2000).await.unwrap();
        assert_ne!(again.uid, first.uid);
        let state = s.get_user(email).await.unwrap().unwrap();
        assert_eq!(state.current, again, "{}", b.name);
        assert!(
            state.old_client_states.is_empty(),
            "{}: same client state",
            b.name
        );
    }
}

#[tokio::test]
async fn update_user_never_moves_backwards() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://n.example", 100).await.unwrap();
        let email = "a@accounts.example";
        let u = s
            .allocate_user(&keys(email, 10, "aaaa", Some(100)), 1000)
            .await
            .unwrap();
        let current = || async {
            let c = s.get_user(email).await.unwrap().unwrap().current;
            (c.generation, c.keys_changed_at)
        };

        s.update_user(u.uid, 5, Some(50)).await.unwrap();
        assert_eq!(current().await, (10, Some(100)), "{}: older values", b.name);
        s.update_user(u.uid, 20, None).await.unwrap();
        assert_eq!(
            current().await,
            (20, Some(100)),
            "{}: no kca keeps it",
            b.name
        );
        s.update_user(u.uid, 15, Some(200)).await.unwrap();
        assert_eq!(
            current().await,
            (20, Some(200)),
            "{}: each field alone",
            b.name
        );
        s.update_user(u.uid, 30, Some(300)).await.unwrap();
        assert_eq!(current().await, (30, Some(300)), "{}", b.name);

        // An unknown keys_changed_at stays unknown until one is given.
        let other = "b@accounts.example";
        let v = s
            .allocate_user(&keys(other, 0, "", None), 1000)
            .await
            .unwrap();
        s.update_user(v.uid, 3, None).await.unwrap();
        let c = s.get_user(other).await.unwrap().unwrap().current;
        assert_eq!((c.generation, c.keys_changed_at), (3, None), "{}", b.name);
        s.update_user(v.uid, 3, Some(4)).await.unwrap();
        let c = s.get_user(other).await.unwrap().unwrap().current;
        assert_eq!(c.keys_changed_at, Some(4), "{}", b.name);

        // A replaced row is not updated; neither is an unknown uid (no error either).
        let w = s
            .allocate_user(&keys(email, 40, "bbbb", Some(400)), 2000)
            .await
            .unwrap();
        s.update_user(u.uid, 99, Some(999)).await.unwrap();
        s.update_user(w.uid + 1000, 99, Some(999)).await.unwrap();
        let old = s.replaced_users(i64::MAX, 10).await.unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!((old[0].generation, old[0].keys_changed_at), (30, Some(300)));
        assert_eq!(current().await, (40, Some(400)), "{}", b.name);
    }
}

#[tokio::test]
async fn removing_a_node_unassigns_its_users() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://gone.example", 100).await.unwrap();
        let a = s.allocate_user(&user(0), 1000).await.unwrap();
        let c = s.allocate_user(&user(1), 1000).await.unwrap();
        // One of the node's rows is already replaced: it is not counted again and keeps
        // its time.
        let newer = UserKeys {
            client_state: "bbbb".into(),
            generation: 2,
            ..user(1)
        };
        s.allocate_user(&newer, 1100).await.unwrap();
        s.add_node("https://other.example", 100).await.unwrap();
        let stays = s.allocate_user(&user(2), 1000).await.unwrap();
        assert_eq!(stays.node.as_deref(), Some("https://other.example"));

        assert_eq!(
            s.remove_node("https://gone.example/", 2000).await.unwrap(),
            2
        );
        assert_eq!(
            s.list_nodes().await.unwrap().len(),
            1,
            "{}: node row deleted",
            b.name
        );
        let state = s.get_user(&user(0).email).await.unwrap().unwrap();
        assert_eq!(state.current.uid, a.uid);
        assert_eq!(state.current.node, None, "{}", b.name);
        assert_eq!(state.current.replaced_at, Some(2000), "{}", b.name);
        let replaced = s.replaced_users(i64::MAX, 10).await.unwrap();
        let when: Vec<_> = replaced.iter().map(|u| (u.uid, u.replaced_at)).collect();
        assert!(when.contains(&(c.uid, Some(1100))), "{}: {when:?}", b.name);
        // Users of other nodes are untouched.
        let state = s.get_user(&user(2).email).await.unwrap().unwrap();
        assert_eq!(state.current, stays, "{}", b.name);

        // The next allocation puts the user on a remaining node.
        let moved = s.allocate_user(&user(0), 3000).await.unwrap();
        assert_eq!(moved.node.as_deref(), Some("https://other.example"));
        let state = s.get_user(&user(0).email).await.unwrap().unwrap();
        assert_eq!(state.current, moved, "{}", b.name);

        for missing in [
            s.remove_node("https://gone.example", 4000).await,
            s.unassign_node("https://gone.example", 4000).await,
        ] {
            assert_eq!(missing.unwrap_err(), TokenStoreError::NodeNotFound);
        }
    }
}

#[tokio::test]
async fn the_purge_finds_replaced_rows_and_deletes_them() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://n.example", 100).await.unwrap();
        let email = "a@accounts.example";
        let mut rows = Vec::new();
        for (i, state) in ["aa", "bb", "cc", "dd"].into_iter().enumerate() {
            let t = 1000 * (i as i64 + 1);
            rows.push(
                s.allocate_user(&keys(email, i as i64, state, None), t)
                    .await
                    .unwrap(),
            );
        }
        // Replaced at 2000, 3000 and 4000; the current row is never listed.
        let due = s.replaced_users(3500, 10).await.unwrap();
        let uids: Vec<_> = due.iter().map(|u| u.uid).collect();
        assert_eq!(
            uids,
            vec![rows[0].uid, rows[1].uid],
            "{}: oldest first",
            b.name
        );
        assert_eq!(due[0].node.as_deref(), Some("https://n.example"));
        assert_eq!(due[0].client_state, "aa");
        assert_eq!(s.replaced_users(i64::MAX, 1).await.unwrap().len(), 1);
        assert_eq!(s.replaced_users(2000, 10).await.unwrap(), vec![]);

        for row in &due {
            s.delete_user_record(row.uid).await.unwrap();
        }
        // Deleting again succeeds, so an interrupted purge can run again.
        s.delete_user_record(rows[0].uid).await.unwrap();
        let left = s.replaced_users(i64::MAX, 10).await.unwrap();
        assert_eq!(left.len(), 1, "{}", b.name);
        assert_eq!(left[0].uid, rows[2].uid);
        let state = s.get_user(email).await.unwrap().unwrap();
        assert_eq!(state.current.uid, rows[3].uid);
        assert_eq!(state.old_client_states, vec!["cc"], "{}", b.name);
    }
}

#[tokio::test]
async fn uids_are_never_reused() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://n.example", 100).await.unwrap();
        let first = s.allocate_user(&user(0), 1000).await.unwrap();
        s.delete_user_record(first.uid).await.unwrap();
        let next = s.allocate_user(&user(1), 2000).await.unwrap();
        assert!(next.uid > first.uid, "{}", b.name);
    }
}

#[tokio::test]
async fn node_management() {
    for b in backends().await {
        let s = &*b.store;
        let added = s.add_node("https://b.example/", 50).await.unwrap();
        assert_eq!(added.url, "https://b.example", "{}", b.name);
        assert_eq!(
            (added.capacity, added.available, added.current_load),
            (50, 50, 0)
        );
        assert!(!added.downed && !added.backoff);
        for duplicate in ["https://b.example", "https://b.example/"] {
            assert_eq!(
                s.add_node(duplicate, 10).await.unwrap_err(),
                TokenStoreError::NodeExists,
                "{}",
                b.name
            );
        }

        // ensure_node adds once, then returns the node as it is.
        let ensured = s.ensure_node("https://a.example", 30).await.unwrap();
        assert_eq!(ensured.capacity, 30);
        assert_eq!(
            s.ensure_node("https://a.example/", 99).await.unwrap(),
            ensured,
            "{}",
            b.name
        );
        assert_eq!(s.ensure_node("https://b.example", 99).await.unwrap(), added);
        let urls: Vec<_> = s
            .list_nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.url)
            .collect();
        assert_eq!(urls, vec!["https://a.example", "https://b.example"]);

        // update_node changes only the named fields.
        let updated = s
            .update_node(
                "https://a.example",
                NodeChange {
                    capacity: Some(40),
                    backoff: Some(true),
                    ..change()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            updated,
            Node {
                capacity: 40,
                backoff: true,
                ..ensured.clone()
            },
            "{}",
            b.name
        );
        let cleared = s
            .update_node(
                "https://a.example/",
                NodeChange {
                    backoff: Some(false),
                    ..change()
                },
            )
            .await
            .unwrap();
        assert!(!cleared.backoff);
        assert_eq!(
            s.update_node("https://a.example", change()).await.unwrap(),
            cleared
        );
        assert_eq!(
            s.update_node("https://missing.example", change())
                .await
                .unwrap_err(),
            TokenStoreError::NodeNotFound
        );
        s.check().await.unwrap();
    }
}

#[tokio::test]
async fn allocating_the_current_client_state_again_returns_the_current_row() {
    for b in backends().await {
        let s = &*b.store;
        s.add_node("https://n.example", 100).await.unwrap();
        let email = "a@accounts.example";
        let first = s
            .allocate_user(&keys(email, 5, "aaaa", Some(50)), 1000)
            .await
            .unwrap();
        // What a second device of the same new user sends a moment later: same client
        // state, a newer generation. It joins the row, moved forward; no slot is taken.
        let second = s
            .allocate_user(&keys(email, 6, "aaaa", Some(40)), 1001)
            .await
            .unwrap();
        assert_eq!(second.uid, first.uid, "{}", b.name);
        assert_eq!(
            (second.generation, second.keys_changed_at, second.created_at),
            (6, Some(50), 1000),
            "{}",
            b.name
        );
        let state = s.get_user(email).await.unwrap().unwrap();
        assert_eq!(state.current, second, "{}", b.name);
        assert_eq!(node(s, "https://n.example").await.current_load, 1);
        assert_eq!(s.replaced_users(i64::MAX, 10).await.unwrap(), vec![]);
    }
}

/// Many new users ask at once through two store instances (two processes) for more slots
/// than the nodes have, each user from two devices at once, one per instance. No node may
/// take more users than its capacity, each user must end with one row (both devices get
/// the same uid), and every node's load must equal the users assigned to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_processes_allocating_at_once_never_over_assign() {
    for b in backends().await {
        let n = b.name;
        b.store.add_node("https://a.example", 20).await.unwrap();
        b.store.add_node("https://b.example", 30).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..80 {
            for store in [b.store.clone(), b.other.clone()] {
                tasks.push(tokio::spawn(async move {
                    (i, store.allocate_user(&user(i), 1000 + i as i64).await)
                }));
            }
        }
        let mut uids: HashMap<usize, HashSet<u64>> = HashMap::new();
        let mut per_node: HashMap<String, HashSet<u64>> = HashMap::new();
        for task in tasks {
            match task.await.unwrap() {
                (i, Ok(record)) => {
                    uids.entry(i).or_default().insert(record.uid);
                    per_node
                        .entry(record.node.clone().unwrap())
                        .or_default()
                        .insert(record.uid);
                }
                (_, Err(TokenStoreError::NoNodeAvailable)) => {}
                (i, Err(other)) => panic!("{n}: user {i}: {other:?}"),
            }
        }
        assert!(
            uids.values().all(|set| set.len() == 1),
            "{n}: a user got two uids: {uids:?}"
        );
        assert_eq!(uids.len(), 50, "{n}: users placed");
        for node_row in b.store.list_nodes().await.unwrap() {
            let assigned = per_node.get(&node_row.url).map_or(0, HashSet::len) as i64;
            assert_eq!(
                node_row.current_load, node_row.capacity,
                "{n}: {node_row:?}"
            );
            assert_eq!(node_row.current_load, assigned, "{n}: {node_row:?}");
        }
        assert_eq!(
            b.other.replaced_users(i64::MAX, 1000).await.unwrap(),
            vec![],
            "{n}: a second row replaced a first"
        );
        for (i, set) in &uids {
            let state = b.other.get_user(&user(*i).email).await.unwrap().unwrap();
            assert!(set.contains(&state.current.uid), "{n}");
        }
    }
}

/// A configured release rate applies on every backend.
async fn check_release_rate(s: &dyn TokenStore) {
    s.add_node("https://n.example", 100).await.unwrap();
    s.add_node("https://tiny.example", 1).await.unwrap();
    let spent = |load| NodeChange {
        available: Some(0),
        current_load: Some(load),
        ..NodeChange::default()
    };
    s.update_node("https://n.example", spent(10)).await.unwrap();
    s.update_node("https://tiny.example", spent(0))
        .await
        .unwrap();
    let got = s.allocate_user(&user(0), 1000).await.unwrap();
    assert_eq!(got.node.as_deref(), Some("https://tiny.example"));
    assert_eq!(node(s, "https://n.example").await.available, 25);
    // 1 * 0.25 rounds to 0, but a node with room gets at least one slot back, so the
    // empty tiny node takes the user.
    let tiny = node(s, "https://tiny.example").await;
    assert_eq!((tiny.current_load, tiny.available), (1, 0));
}

#[tokio::test]
async fn release_rate_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteTokenStore::open(&dir.path().join("tokens.db"), true)
        .unwrap()
        .with_release_rate(0.25);
    check_release_rate(&s).await;
    if let Some(mut b) = postgres().await {
        let url = b.schema.as_ref().unwrap().url().to_owned();
        let s = PostgresTokenStore::open(&url, 2)
            .await
            .unwrap()
            .with_release_rate(0.25);
        check_release_rate(&s).await;
        b.store = Arc::new(s);
    }
}

// ---- SQLite only: the database file ----

#[tokio::test]
async fn sqlite_refuses_to_create_a_file_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let error = SqliteTokenStore::open(&path, false).err().unwrap();
    match error {
        TokenStoreError::Backend(text) => assert!(text.contains("?mode=rwc"), "{text}"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(!path.exists());
    SqliteTokenStore::open(&path, true).unwrap();
    SqliteTokenStore::open(&path, false).unwrap();
}

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let (node_before, state_before) = {
        let s = SqliteTokenStore::open(&path, true).unwrap();
        s.add_node("https://n.example", 10).await.unwrap();
        s.allocate_user(&keys("a@x", 1, "aa", Some(1)), 1000)
            .await
            .unwrap();
        s.allocate_user(&keys("a@x", 2, "bb", Some(2)), 2000)
            .await
            .unwrap();
        (
            s.list_nodes().await.unwrap(),
            s.get_user("a@x").await.unwrap(),
        )
    };
    let s = SqliteTokenStore::open(&path, false).unwrap();
    assert_eq!(s.list_nodes().await.unwrap(), node_before);
    assert_eq!(s.get_user("a@x").await.unwrap(), state_before);
    assert_eq!(s.path(), path);
    // Migrations already applied are not applied again, and the store still writes.
    s.allocate_user(&keys("b@x", 1, "aa", None), 3000)
        .await
        .unwrap();
    assert_eq!(s.list_nodes().await.unwrap()[0].current_load, 3);
}
