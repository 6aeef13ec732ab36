//! What the client does when the node says no: backoff, 401, and the node's POST limits.

use axum::http::Method;
use serde_json::json;
use sync_client::ClientError;
use sync_client::storage::{NodeCredentials, StorageClient};

use crate::assert_err;
use crate::stack::{Stack, collection_ts};

#[tokio::test]
async fn a_503_with_retry_after_is_honoured_without_asking_again() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let tier2 = stack.tier2(&alice);

    stack.faults.unavailable(1, 30);
    let requests = stack.faults.storage_count();
    assert_err!(tier2.ensure_ready().await, ClientError::Backoff(30));
    assert_eq!(stack.faults.storage_count(), requests + 1);

    // The server is fine again, but the client keeps away until the time is up.
    assert_err!(tier2.ensure_ready().await, ClientError::Backoff(seconds) if (1..=30).contains(&seconds));
    assert_err!(tier2.collections().await, ClientError::Backoff(_));
    assert_err!(
        tier2
            .storage()
            .get_record("bookmarks", "aaaaaaaaaaaa")
            .await,
        ClientError::Backoff(_)
    );
    assert_eq!(
        stack.faults.storage_count(),
        requests + 1,
        "a request went out during the backoff"
    );

    // Backoff is per client: another device is unaffected.
    tier1
        .put("bookmarks", &json!({"id": "aaaaaaaaaaaa"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_401_fetches_a_new_token_and_the_request_goes_through() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let record = json!({"id": "aaaaaaaaaaaa", "title": "t"});
    tier1.put("bookmarks", &record).await.unwrap();
    let tokens = stack.faults.token_requests();
    assert_eq!(
        tokens, 1,
        "one token serves every request until it is refused"
    );

    stack.faults.unauthorized_once();
    let requests = stack.faults.storage_count();
    assert_eq!(
        tier1
            .get("bookmarks", "aaaaaaaaaaaa")
            .await
            .unwrap()
            .unwrap()
            .cleartext,
        record
    );
    assert_eq!(stack.faults.token_requests(), tokens + 1);
    let seen = &stack.faults.storage_requests()[requests..];
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.clone(), s.faulted))
            .collect::<Vec<_>>(),
        [(Method::GET, true), (Method::GET, false)]
    );
    assert_eq!(seen[0].target, seen[1].target);

    // A second 401 in a row is final rather than a loop.
    stack.faults.unauthorized_once();
    stack.faults.unauthorized_once();
    assert_err!(
        tier1.get("bookmarks", "aaaaaaaaaaaa").await,
        ClientError::Http { status: 401, .. }
    );
    assert_eq!(stack.faults.token_requests(), tokens + 2);

    // With fixed credentials there is nothing to refetch: the 401 is the answer.
    let token = stack.token_client(&alice).fetch().await.unwrap();
    let fixed = StorageClient::new(NodeCredentials::Fixed(token));
    stack.faults.unauthorized_once();
    assert_err!(
        fixed.get_record("bookmarks", "aaaaaaaaaaaa").await,
        ClientError::Http { status: 401, .. }
    );
    assert!(
        fixed
            .get_record("bookmarks", "aaaaaaaaaaaa")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn after_a_node_reassignment_the_client_follows_the_new_token() {
    let stack = Stack::start().await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    tier1
        .put("bookmarks", &json!({"id": "aaaaaaaaaaaa"}))
        .await
        .unwrap();
    let old_endpoint = tier1.storage().endpoint().await.unwrap();

    // The token server moves the user (a new uid, so an empty bucket), and the node refuses
    // the old token.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        stack.tokens.unassign_node(&stack.url, now).await.unwrap(),
        1
    );
    stack.faults.unauthorized_once();

    assert!(
        tier1.collections().await.unwrap().is_empty(),
        "the new bucket is empty"
    );
    let new_endpoint = tier1.storage().endpoint().await.unwrap();
    assert_ne!(new_endpoint, old_endpoint);
    // The setup cached for the old node does not apply: Tier 1 provisions the new bucket.
    tier1.ensure_ready().await.unwrap();
    let info = tier1.collections().await.unwrap();
    assert_eq!(info.keys().collect::<Vec<_>>(), ["crypto", "meta"]);
    let tier2 = stack.tier2(&alice);
    tier2.ensure_ready().await.unwrap();
    assert_eq!(tier2.storage().endpoint().await.unwrap(), new_endpoint);
    assert_eq!(tier2.collection_keys().await, tier1.collection_keys().await);
}

#[tokio::test]
async fn a_large_upload_is_split_into_one_batch_within_the_node_limits() {
    let stack = Stack::start_with(|node| node.limits.max_post_records = 100).await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let mut records = Vec::new();
    for n in 0..250 {
        records.push(
            tier1
                .encrypt("history", &json!({"id": format!("record{n:06}"), "n": n}))
                .await
                .unwrap(),
        );
    }

    let requests = stack.faults.storage_count();
    let outcome = tier1
        .storage()
        .post_records("history", &records, None)
        .await
        .unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(
        Some(outcome.modified),
        collection_ts(&tier1, "history").await
    );

    let posts: Vec<String> = stack.faults.storage_requests()[requests..]
        .iter()
        .filter(|seen| seen.method == Method::POST)
        .map(|seen| seen.target.clone())
        .collect();
    assert_eq!(posts.len(), 3, "{posts:?}");
    assert!(
        posts[0].ends_with("/storage/history?batch=true"),
        "{posts:?}"
    );
    let batch = posts[1]
        .split_once("?batch=")
        .expect("the second POST appends to the batch")
        .1;
    assert!(!batch.is_empty() && !batch.contains("commit"), "{posts:?}");
    assert!(
        posts[2].ends_with(&format!("?batch={batch}&commit=true")),
        "{posts:?}"
    );

    let stored = tier1.get_all("history").await.unwrap();
    assert_eq!(stored.len(), 250);
    for (n, record) in stored.iter().enumerate() {
        assert_eq!(
            record.cleartext,
            json!({"id": format!("record{n:06}"), "n": n})
        );
    }
}

#[tokio::test]
async fn an_upload_larger_than_one_batch_allows_is_split_into_batches_and_read_back_in_pages() {
    // At most 100 records per batch and per GET page, 40 per POST.
    let stack = Stack::start_with(|node| {
        node.limits.max_total_records = 100;
        node.limits.max_post_records = 40;
    })
    .await;
    let alice = stack.add_account("alice");
    let tier1 = stack.tier1(&alice);
    tier1.ensure_ready().await.unwrap();
    let before = tier1.put("history", &json!({"id": "first"})).await.unwrap();
    let mut records = Vec::new();
    for n in 0..250 {
        records.push(
            tier1
                .encrypt("history", &json!({"id": format!("record{n:06}"), "n": n}))
                .await
                .unwrap(),
        );
    }

    let requests = stack.faults.storage_count();
    let outcome = tier1
        .storage()
        .post_records("history", &records, Some(before))
        .await
        .unwrap();
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(
        Some(outcome.modified),
        collection_ts(&tier1, "history").await
    );
    let posts: Vec<String> = stack.faults.storage_requests()[requests..]
        .iter()
        .filter(|seen| seen.method == Method::POST)
        .map(|seen| seen.target.clone())
        .collect();
    // POSTs of 40 records: batches of 40 + 40, 40 + 40 and 40 + 40 + 10.
    let shape: Vec<&str> = posts
        .iter()
        .map(
            |target| match target.split_once('?').map(|(_, query)| query) {
                Some("batch=true") => "start",
                Some(query) if query.ends_with("&commit=true") => "commit",
                Some(_) => "append",
                None => "plain",
            },
        )
        .collect();
    assert_eq!(
        shape,
        [
            "start", "commit", "start", "commit", "start", "append", "commit"
        ],
        "{posts:?}"
    );

    // Reading it back takes three pages (100, 100, 51), all of the same collection state.
    let requests = stack.faults.storage_count();
    let stored = tier1.get_all("history").await.unwrap();
    assert_eq!(stored.len(), 251);
    assert_eq!(stack.faults.storage_count() - requests, 3);
    let ids: Vec<&str> = stored.iter().map(|record| record.id.as_str()).collect();
    let mut expected = vec!["first".to_owned()];
    expected.extend((0..250).map(|n| format!("record{n:06}")));
    assert_eq!(ids, expected);
}
