//! `engine::sync_collection` between two devices: both directions, tombstones, the 412
//! race, and the engine clock.

use std::sync::Arc;

use axum::http::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::local::Peer;
use crate::stack::{Stack, collection_ts};

const BOOKMARKS: &str = "bookmarks";

fn bookmark(id: &str, title: &str) -> Value {
    json!({"id": id, "type": "bookmark", "title": title})
}

#[tokio::test]
async fn two_devices_sync_both_ways_and_deletions_travel_as_tombstones() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    let mut a = Peer::new(tier1, BOOKMARKS);
    let mut b = Peer::new(tier2, BOOKMARKS);

    a.store.edit(bookmark("aaaaaaaaaaaa", "A one"));
    a.store.edit(bookmark("aaaaaaaaaaa2", "A two"));
    let outcome = a.sync().await;
    assert_eq!(
        (outcome.downloaded, outcome.uploaded, outcome.conflicts),
        (0, 2, 0)
    );
    assert!(a.store.pending().is_empty());
    assert_eq!(
        Some(a.state.last_sync),
        collection_ts(&a.client, BOOKMARKS).await
    );

    b.store.edit(bookmark("bbbbbbbbbbbb", "B one"));
    let outcome = b.sync().await;
    assert_eq!((outcome.downloaded, outcome.uploaded), (2, 1));
    assert_eq!(
        Some(b.state.last_sync),
        collection_ts(&b.client, BOOKMARKS).await
    );

    let outcome = a.sync().await;
    assert_eq!(
        (outcome.downloaded, outcome.uploaded),
        (1, 0),
        "A gets B's record only"
    );
    assert_eq!(a.store.live().len(), 3);
    assert_eq!(a.store.live(), b.store.live());

    // A deletion is uploaded as a tombstone and removes the item on the other device.
    a.store.delete("aaaaaaaaaaaa");
    assert_eq!(a.sync().await.uploaded, 1);
    let on_server = a
        .client
        .get(BOOKMARKS, "aaaaaaaaaaaa")
        .await
        .unwrap()
        .unwrap();
    assert!(on_server.is_tombstone(), "{:?}", on_server.cleartext);
    assert!(b.store.live().contains_key("aaaaaaaaaaaa"));
    assert_eq!(b.sync().await.downloaded, 1);
    assert!(!b.store.live().contains_key("aaaaaaaaaaaa"));
    assert_eq!(b.store.live().len(), 2);
    assert_eq!(a.store.live(), b.store.live());
    assert_eq!(
        Some(b.state.last_sync),
        collection_ts(&b.client, BOOKMARKS).await
    );

    // Nothing changed anywhere: one incremental GET (`newer=` the engine's clock), nothing
    // downloaded or uploaded, the clock unchanged.
    let clock = b.state.last_sync;
    let requests = stack.faults.storage_count();
    let outcome = b.sync().await;
    assert_eq!(
        (outcome.downloaded, outcome.uploaded, outcome.conflicts),
        (0, 0, 0)
    );
    assert_eq!(b.state.last_sync, clock);
    let seen = &stack.faults.storage_requests()[requests..];
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::GET);
    assert!(
        seen[0].target.contains(&format!("newer={clock}")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_upload_that_meets_412_merges_and_retries() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    let a = Arc::new(Mutex::new(Peer::new(tier1, BOOKMARKS)));
    let mut b = Peer::new(tier2, BOOKMARKS);

    a.lock()
        .await
        .store
        .edit(bookmark("xxxxxxxxxxxx", "original"));
    a.lock().await.sync().await;
    assert_eq!(b.sync().await.downloaded, 1);

    // B edits the shared record and adds one. Between B's download and its upload, A edits
    // the shared record too (later, so A's version wins) and adds one of its own.
    b.store.edit(bookmark("xxxxxxxxxxxx", "B's title"));
    b.store.edit(bookmark("bbbbbbbbbbbb", "B's record"));
    let racer = a.clone();
    b.store.before_upload(async move {
        let mut a = racer.lock().await;
        a.store.edit(bookmark("xxxxxxxxxxxx", "A's title"));
        a.store.edit(bookmark("aaaaaaaaaaaa", "A's record"));
        assert_eq!(a.sync().await.uploaded, 2);
    });
    let outcome = b.sync().await;
    assert!(outcome.conflicts >= 1, "{outcome:?}");
    assert_eq!(outcome.downloaded, 2, "B merged A's two records");
    assert_eq!(
        outcome.uploaded, 1,
        "only B's own record was left to upload"
    );
    assert!(b.store.pending().is_empty());
    assert_eq!(
        Some(b.state.last_sync),
        collection_ts(&b.client, BOOKMARKS).await
    );

    let mut a = a.lock().await;
    assert_eq!(a.sync().await.downloaded, 1);
    assert_eq!(a.store.live(), b.store.live());
    let live = b.store.live();
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "xxxxxxxxxxxx"]
    );
    assert_eq!(live["xxxxxxxxxxxx"]["title"], "A's title");
    assert_eq!(a.state.last_sync, b.state.last_sync);
    let on_server = a
        .client
        .get(BOOKMARKS, "xxxxxxxxxxxx")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_server.cleartext["title"], "A's title");
}
