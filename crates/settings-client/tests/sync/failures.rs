//! Every failure of a sync, each asserting the same three things: what `get` returns, the
//! status recorded in the history, and that the previous valid data is intact and still
//! verifies against its stored signature.

use std::sync::Arc;

use serde_json::{Value, json};
use settings_client::{Client, CollectionKey, GetError, GetOptions, SyncError, SyncStatus};

use crate::harness::{SIGNER_NAME, Stack, Tamper, now, records};

fn cfr() -> CollectionKey {
    CollectionKey::new("main", "cfr")
}

/// A stack with three records published, and a client that synced them.
async fn synced() -> (Stack, Client, Vec<Value>) {
    let stack = Stack::start().await;
    stack.publish_records(&records(0..3, "v1")).await;
    let client = stack.client("client");
    client.sync_one(&cfr()).await.unwrap();
    let held = client.get(&cfr(), &GetOptions::default()).await.unwrap();
    assert_eq!(held.len(), 3);
    (stack, client, held)
}

/// The server publishes a second version: r001 changed, r003 added, r000 deleted.
async fn publish_v2(stack: &Stack) -> u64 {
    stack.delete_record("r000").await;
    stack.publish_records(&records(1..4, "v2")).await
}

/// The previous data is what `get` answers, it verifies, and `get` refuses to answer
/// when asked to fail after a failed sync; the last history entry has `status`.
async fn assert_kept(client: &Client, held: &[Value], status: SyncStatus) {
    let plain = client.get(&cfr(), &GetOptions::default()).await.unwrap();
    assert_eq!(plain, held, "the previous data is what get answers");
    let verified = GetOptions {
        verify: true,
        ..GetOptions::default()
    };
    assert_eq!(
        client.get(&cfr(), &verified).await.unwrap(),
        held,
        "the previous data still verifies"
    );
    let strict = GetOptions {
        fail_if_sync_failed: true,
        ..GetOptions::default()
    };
    match client.get(&cfr(), &strict).await {
        Err(GetError::LastSyncFailed { entry, .. }) => assert_eq!(entry.status, status),
        other => panic!("expected LastSyncFailed, got {other:?}"),
    }
    assert_eq!(client.history(&cfr(), 1).unwrap()[0].status, status);
}

/// A sync refused by verification, both incrementally and with the full changeset.
fn assert_refused(result: Result<settings_client::SyncOutcome, SyncError>, reason: &str) {
    match result {
        Err(SyncError::Integrity { first, retry }) => {
            assert_eq!(first.reason(), reason, "first: {first}");
            assert_eq!(retry.reason(), reason, "retry: {retry}");
        }
        other => panic!("expected a refused signature ({reason}), got {other:?}"),
    }
}

fn changeset_requests(stack: &Stack) -> Vec<String> {
    stack
        .proxy
        .hits()
        .into_iter()
        .filter(|h| h.contains("/collections/cfr/changeset"))
        .collect()
}

#[tokio::test]
async fn a_tampered_record_is_refused_and_retried_in_full() {
    let (stack, client, held) = synced().await;
    publish_v2(&stack).await;
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Json(Arc::new(|body| {
            for change in body["changes"].as_array_mut().unwrap() {
                if change["id"] == "r002" {
                    change["tag"] = json!("evil");
                }
            }
        })),
    );
    let before = changeset_requests(&stack).len();
    assert_refused(client.sync_one(&cfr()).await, "bad_signature");
    let requests = changeset_requests(&stack);
    assert_eq!(
        requests.len(),
        before + 2,
        "one incremental try, one full retry"
    );
    assert!(requests[before].contains("_since"));
    assert!(!requests[before + 1].contains("_since"));
    assert_kept(&client, &held, SyncStatus::SignRetryError).await;

    stack.proxy.clear();
    client.sync_one(&cfr()).await.unwrap();
    assert_eq!(tags(&client).await, v2_tags());
}

/// `(id, tag)` of what the client answers.
async fn tags(client: &Client) -> Vec<(String, String)> {
    client
        .get(&cfr(), &GetOptions::default())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["tag"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn v2_tags() -> Vec<(String, String)> {
    ["r001", "r002", "r003"]
        .iter()
        .map(|id| (id.to_string(), "v2".to_owned()))
        .collect()
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let (stack, client, held) = synced().await;
    publish_v2(&stack).await;
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Json(Arc::new(|body| {
            let metadata = body["metadata"].as_object_mut().unwrap();
            let signature = metadata["signature"]["signature"].as_str().unwrap();
            // Another valid-looking signature: the same bytes with the halves swapped.
            let swapped = format!("{}{}", &signature[64..], &signature[..64]);
            metadata["signature"]["signature"] = json!(swapped);
            metadata.remove("signatures");
        })),
    );
    let result = client.sync_one(&cfr()).await;
    match &result {
        Err(SyncError::Integrity { first, .. }) => {
            assert!(
                matches!(first.reason(), "bad_signature" | "malformed"),
                "{first}"
            )
        }
        other => panic!("expected a refused signature, got {other:?}"),
    }
    assert_kept(&client, &held, SyncStatus::SignRetryError).await;
}

#[tokio::test]
async fn a_missing_signature_is_refused() {
    let (stack, client, held) = synced().await;
    publish_v2(&stack).await;
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Json(Arc::new(|body| {
            let metadata = body["metadata"].as_object_mut().unwrap();
            metadata.remove("signature");
            metadata.remove("signatures");
        })),
    );
    assert_refused(client.sync_one(&cfr()).await, "missing_signature");
    assert_kept(&client, &held, SyncStatus::SignRetryError).await;
}

#[tokio::test]
async fn a_chain_from_another_root_is_refused() {
    let (stack, client, held) = synced().await;
    // The server starts signing with a PKI the client does not pin.
    let foreign =
        content_signature::init_dev_pki(SIGNER_NAME, std::time::Duration::from_secs(86_400), now())
            .unwrap();
    stack
        .workflow
        .install_keys(&foreign.signer_key_pem, &foreign.chain_pem)
        .unwrap();
    publish_v2(&stack).await;
    assert_refused(client.sync_one(&cfr()).await, "wrong_root");
    assert_kept(&client, &held, SyncStatus::SignRetryError).await;
}

/// The server rotates to a valid new certificate (a new x5u), and the proxy answers the
/// new x5u with `chain` instead: the client must refuse it for `reason`.
async fn refuses_served_chain(chain: impl Fn(&Stack) -> String, reason: &str) {
    let (stack, client, held) = synced().await;
    let new_chain = stack.rotate(SIGNER_NAME, now() - 60, now() + 86_400).await;
    publish_v2(&stack).await;
    let x5u = stack.x5u().await;
    let path = x5u.trim_start_matches(&stack.proxy_url).to_owned();
    assert!(path.starts_with("/v1/__certs__/"), "{x5u}");
    let served = chain(&stack);
    assert_ne!(served, new_chain);
    stack.proxy.always(&path, Tamper::Body(served.into_bytes()));
    assert_refused(client.sync_one(&cfr()).await, reason);
    assert_kept(&client, &held, SyncStatus::SignRetryError).await;
    // The refused chain was not cached: once the CDN serves the right one, sync works.
    stack.proxy.clear();
    client.sync_one(&cfr()).await.unwrap();
    assert_eq!(tags(&client).await, v2_tags());
}

/// A chain whose signer certificate is issued by the stack's intermediate with these
/// properties.
fn chain_with_signer(stack: &Stack, name: &str, not_before: u64, not_after: u64) -> String {
    let (cert, _) = content_signature::issue_signer(
        &stack.pki.intermediate_pem,
        &stack.pki.intermediate_key_pem,
        name,
        not_before,
        not_after,
    )
    .unwrap();
    format!("{cert}{}{}", stack.pki.intermediate_pem, stack.pki.root_pem)
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    refuses_served_chain(
        |stack| chain_with_signer(stack, SIGNER_NAME, now() - 90 * 86_400, now() - 86_400),
        "expired_cert",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_refused() {
    refuses_served_chain(
        |stack| chain_with_signer(stack, SIGNER_NAME, now() + 86_400, now() + 90 * 86_400),
        "cert_not_valid_yet",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_for_another_signer_is_refused() {
    refuses_served_chain(
        |stack| {
            chain_with_signer(
                stack,
                "onecrl.content-signature.mozilla.org",
                now() - 60,
                now() + 86_400,
            )
        },
        "wrong_signer_name",
    )
    .await;
}

#[tokio::test]
async fn a_chain_without_its_intermediate_is_refused() {
    refuses_served_chain(
        |stack| {
            let chain = chain_with_signer(stack, SIGNER_NAME, now() - 60, now() + 86_400);
            chain.replace(&stack.pki.intermediate_pem, "")
        },
        "unknown_issuer",
    )
    .await;
}

#[tokio::test]
async fn a_reordered_chain_is_refused() {
    refuses_served_chain(
        |stack| {
            let chain = chain_with_signer(stack, SIGNER_NAME, now() - 60, now() + 86_400);
            let leaf = chain
                .replace(&stack.pki.intermediate_pem, "")
                .replace(&stack.pki.root_pem, "");
            format!("{}{}{leaf}", stack.pki.root_pem, stack.pki.intermediate_pem)
        },
        // The root is first, where the end entity belongs: nothing after the first
        // certificate is the pinned root.
        "wrong_root",
    )
    .await;
}

#[tokio::test]
async fn an_older_collection_is_refused_as_stale() {
    let (stack, client, _) = synced().await;
    let old_body = serde_json::to_vec(&stack.changeset(None).await).unwrap();
    publish_v2(&stack).await;
    client.sync_one(&cfr()).await.unwrap();
    let held = client.get(&cfr(), &GetOptions::default()).await.unwrap();
    // A stale cache (or an attacker) answers the first version, validly signed.
    stack
        .proxy
        .always("/collections/cfr/changeset", Tamper::Body(old_body));
    stack.proxy.always(
        "/monitor/collections/changes/changeset",
        Tamper::Json(Arc::new(|body| {
            body["changes"][0]["last_modified"] = json!(1);
        })),
    );
    match client.sync_one(&cfr()).await {
        Err(SyncError::Stale { local, remote }) => assert!(remote < local),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_kept(&client, &held, SyncStatus::StaleData).await;
}

#[tokio::test]
async fn a_smaller_collection_is_refused() {
    let (stack, client, held) = synced().await;
    publish_v2(&stack).await;
    // Records dropped from the answer without tombstones.
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Json(Arc::new(|body| {
            body["changes"]
                .as_array_mut()
                .unwrap()
                .retain(|c| c["id"] != "r003" && c["id"] != "r002");
        })),
    );
    assert_refused(client.sync_one(&cfr()).await, "bad_signature");
    assert_kept(&client, &held, SyncStatus::SignRetryError).await;
}

#[tokio::test]
async fn a_connection_cut_mid_response_keeps_the_data() {
    let (stack, client, held) = synced().await;
    publish_v2(&stack).await;
    stack
        .proxy
        .times("/collections/cfr/changeset", 1, Tamper::Cut);
    match client.sync_one(&cfr()).await {
        Err(error @ SyncError::Remote(_)) => assert_eq!(error.status(), SyncStatus::NetworkError),
        other => panic!("expected a network error, got {other:?}"),
    }
    assert_kept(&client, &held, SyncStatus::NetworkError).await;
    client.sync_one(&cfr()).await.unwrap();
    assert_eq!(tags(&client).await, v2_tags());
}

#[tokio::test]
async fn a_failed_write_leaves_the_previous_data() {
    let (stack, client, held) = synced().await;
    publish_v2(&stack).await;
    // The disk fails halfway through writing the verified state (ids are written in
    // order: r000 deleted, r001 and r002 replaced, then r003 fails): the transaction
    // rolls back.
    let db = rusqlite::Connection::open(stack.dir.path().join("client/settings.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER fail_midway BEFORE INSERT ON records WHEN NEW.id = 'r003'
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END;",
    )
    .unwrap();
    match client.sync_one(&cfr()).await {
        Err(error @ SyncError::Local(_)) => assert_eq!(error.status(), SyncStatus::ApplyError),
        other => panic!("expected an apply error, got {other:?}"),
    }
    assert_kept(&client, &held, SyncStatus::ApplyError).await;
    db.execute_batch("DROP TRIGGER fail_midway").unwrap();
    client.sync_one(&cfr()).await.unwrap();
    assert_eq!(tags(&client).await, v2_tags());
}

#[tokio::test]
async fn a_tampered_local_database_is_detected_and_repaired() {
    let (stack, client, held) = synced().await;
    let db = rusqlite::Connection::open(stack.dir.path().join("client/settings.db")).unwrap();
    db.execute(
        "UPDATE records SET data = json_set(data, '$.tag', 'evil') WHERE id = 'r001'",
        [],
    )
    .unwrap();
    let verified = GetOptions {
        verify: true,
        ..GetOptions::default()
    };
    match client.get(&cfr(), &verified).await {
        Err(GetError::Corrupted { error, .. }) => assert_eq!(error.reason(), "bad_signature"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert_eq!(
        client.history(&cfr(), 1).unwrap()[0].status,
        SyncStatus::CorruptionError
    );
    // Nothing changed on the server, yet the next sync does not trust the local copy:
    // the incremental state does not verify, and the full changeset replaces it.
    let outcome = client.sync_one(&cfr()).await.unwrap();
    assert!(outcome.recovered_from.is_some());
    assert_eq!(client.get(&cfr(), &verified).await.unwrap(), held);
}

#[tokio::test]
async fn a_tampered_local_database_is_replaced_by_the_next_version() {
    let (stack, client, _) = synced().await;
    let db = rusqlite::Connection::open(stack.dir.path().join("client/settings.db")).unwrap();
    // A record the server never published, which no diff of the server will touch.
    db.execute(
        "INSERT INTO records (bucket, collection, id, data)
         VALUES ('main', 'cfr', 'r999', '{\"id\":\"r999\",\"last_modified\":1}')",
        [],
    )
    .unwrap();
    publish_v2(&stack).await;
    let outcome = client.sync_one(&cfr()).await.unwrap();
    assert!(
        outcome
            .recovered_from
            .as_deref()
            .is_some_and(|r| r.starts_with("bad_signature")),
        "{outcome:?}"
    );
    assert_eq!(tags(&client).await, v2_tags());
}

#[tokio::test]
async fn a_first_sync_that_fails_is_not_an_empty_collection() {
    let stack = Stack::start().await;
    stack.publish_records(&records(0..3, "v1")).await;
    let mut config = stack.client_config("fresh");
    config.root_sha256 = [7; 32];
    let client = Client::open(config).unwrap();
    assert!(client.sync_one(&cfr()).await.is_err());
    // Without the strict option a consumer sees nothing, but can tell why.
    assert!(
        client
            .get(&cfr(), &GetOptions::default())
            .await
            .unwrap()
            .is_empty()
    );
    let strict = GetOptions {
        fail_if_sync_failed: true,
        ..GetOptions::default()
    };
    match client.get(&cfr(), &strict).await {
        Err(GetError::LastSyncFailed { entry, .. }) => {
            assert_eq!(entry.status, SyncStatus::SignRetryError);
            assert!(entry.detail.unwrap().contains("pinned root"));
        }
        other => panic!("expected LastSyncFailed, got {other:?}"),
    }
    // An empty collection that synced is answered as empty, even strictly.
    let empty = Stack::start().await;
    let client = empty.client("empty");
    client.sync_one(&cfr()).await.unwrap();
    assert!(client.get(&cfr(), &strict).await.unwrap().is_empty());
    let never = empty.client("never");
    assert!(matches!(
        never
            .get(&CollectionKey::new("main", "other"), &strict)
            .await,
        Err(GetError::NeverSynced(_))
    ));
}

#[tokio::test]
async fn an_unreachable_chain_is_a_server_error_not_a_refusal() {
    let (stack, client, held) = synced().await;
    stack.rotate(SIGNER_NAME, now() - 60, now() + 86_400).await;
    publish_v2(&stack).await;
    stack.proxy.always(
        "/v1/__certs__/",
        Tamper::Respond {
            status: 404,
            headers: vec![],
            body: "gone".into(),
        },
    );
    let before = changeset_requests(&stack).len();
    match client.sync_one(&cfr()).await {
        Err(error @ SyncError::Remote(_)) => assert_eq!(error.status(), SyncStatus::ServerError),
        other => panic!("expected a server error, got {other:?}"),
    }
    // Nothing says the data is wrong: no retry with the full changeset.
    assert_eq!(changeset_requests(&stack).len(), before + 1);
    assert_kept(&client, &held, SyncStatus::ServerError).await;
}

#[tokio::test]
async fn a_record_added_and_deleted_in_one_changeset_is_not_smuggled_in() {
    let (stack, client, _) = synced().await;
    publish_v2(&stack).await;
    // An unsigned record, added then deleted in the same answer: the final state in
    // memory is the signed one, so it verifies; the stored state must be that one too.
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Json(Arc::new(|body| {
            let changes = body["changes"].as_array_mut().unwrap();
            changes.push(json!({"id": "evil", "last_modified": 1, "tag": "evil"}));
            changes.push(json!({"id": "evil", "last_modified": 2, "deleted": true}));
        })),
    );
    client.sync_one(&cfr()).await.unwrap();
    assert_eq!(tags(&client).await, v2_tags());
    let verified = GetOptions {
        verify: true,
        ..GetOptions::default()
    };
    assert_eq!(client.get(&cfr(), &verified).await.unwrap().len(), 3);

    // The other order (deleted, then added) leaves the record in the final state, which
    // does not verify.
    stack.proxy.clear();
    stack.delete_record("r003").await;
    stack.publish().await;
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Json(Arc::new(|body| {
            let changes = body["changes"].as_array_mut().unwrap();
            changes.push(json!({"id": "evil", "last_modified": 2, "deleted": true}));
            changes.push(json!({"id": "evil", "last_modified": 1, "tag": "evil"}));
        })),
    );
    assert_refused(client.sync_one(&cfr()).await, "bad_signature");
    assert_eq!(tags(&client).await, v2_tags());
}

#[tokio::test]
async fn a_changeset_older_than_announced_is_stale() {
    let (stack, client, held) = synced().await;
    let v1_body = serde_json::to_vec(&stack.changeset(None).await).unwrap();
    publish_v2(&stack).await;
    // monitor/changes announces version 2; a stale cache answers version 1 (validly
    // signed, and not older than what the client holds).
    stack
        .proxy
        .always("/collections/cfr/changeset", Tamper::Body(v1_body));
    let report = client.poll(|key| *key == cfr()).await.unwrap();
    assert!(!report.all_ok());
    assert!(matches!(report.synced[0].1, Err(SyncError::Stale { .. })));
    assert_kept(&client, &held, SyncStatus::StaleData).await;
    // The poll's timestamp was not kept: once the cache is fresh, the next poll syncs.
    stack.proxy.clear();
    let report = client.poll(|key| *key == cfr()).await.unwrap();
    assert!(report.all_ok() && report.synced.len() == 1, "{report:?}");
    assert_eq!(tags(&client).await, v2_tags());
}

#[tokio::test]
async fn a_failed_poll_is_recorded_for_the_collections_held() {
    let (stack, client, held) = synced().await;
    stack.proxy.always(
        "/monitor/collections/changes",
        Tamper::Respond {
            status: 500,
            headers: vec![],
            body: "{}".into(),
        },
    );
    assert!(client.poll(|_| true).await.is_err());
    assert_kept(&client, &held, SyncStatus::ServerError).await;
}

#[tokio::test]
async fn two_processes_syncing_one_database_agree() {
    let stack = Stack::start().await;
    stack.publish_records(&records(0..50, "v1")).await;
    let first = stack.client("shared");
    let second = stack.client("shared");
    let key = cfr();
    let (a, b) = tokio::join!(first.sync_one(&key), second.sync_one(&key));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        [a.status, b.status].contains(&SyncStatus::Success),
        "{a:?} {b:?}"
    );
    let strict = GetOptions {
        fail_if_sync_failed: true,
        verify: true,
        ..GetOptions::default()
    };
    assert_eq!(first.get(&cfr(), &strict).await.unwrap().len(), 50);
    assert_eq!(second.get(&cfr(), &strict).await.unwrap().len(), 50);
}
