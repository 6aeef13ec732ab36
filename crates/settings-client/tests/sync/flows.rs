//! What must keep working: polling, incremental syncs, reading with filters and order,
//! backoff, packaged dumps and attachments.

use serde_json::json;
use settings_client::{
    AttachmentError, Client, CollectionKey, Filter, GetOptions, SyncError, SyncStatus,
};

use crate::harness::{SIGNER_NAME, Stack, Tamper, WORKSPACE, now, records};

fn cfr() -> CollectionKey {
    CollectionKey::new("main", "cfr")
}

#[tokio::test]
async fn poll_syncs_what_changed_and_then_asks_only_for_newer_changes() {
    let stack = Stack::start().await;
    let published = stack.publish_records(&records(0..5, "v1")).await;
    let client = stack.client("client");
    let report = client.poll(|_| true).await.unwrap();
    let synced: Vec<_> = report.synced.iter().map(|(k, _)| k.clone()).collect();
    assert!(synced.contains(&cfr()), "{synced:?}");
    assert!(report.all_ok());
    assert_eq!(
        client
            .get(&cfr(), &GetOptions::default())
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        client.history(&cfr(), 1).unwrap()[0].remote_timestamp,
        Some(published)
    );

    // Nothing changed: the next poll sends _since and syncs nothing.
    let report = client.poll(|_| true).await.unwrap();
    assert!(report.synced.is_empty());
    let monitor_requests: Vec<_> = stack
        .proxy
        .hits()
        .into_iter()
        .filter(|h| h.contains("/monitor/"))
        .collect();
    assert!(monitor_requests.last().unwrap().contains("_since"));

    // A change: only the difference is fetched (with _since) and applied.
    stack.delete_record("r004").await;
    stack.publish_records(&records(1..2, "v2")).await;
    let report = client.poll(|_| true).await.unwrap();
    assert!(report.all_ok());
    let last_changeset = stack
        .proxy
        .hits()
        .into_iter()
        .rfind(|h| h.contains("/buckets/main/collections/cfr/changeset"))
        .unwrap();
    assert!(
        last_changeset.contains(&format!("_since=%22{published}%22")),
        "{last_changeset}"
    );
    let held = client.get(&cfr(), &GetOptions::default()).await.unwrap();
    assert_eq!(held.len(), 4);
    assert_eq!(held[1]["tag"], "v2");
}

#[tokio::test]
async fn get_filters_and_orders_like_firefox() {
    let stack = Stack::start().await;
    stack
        .publish_records(&[
            json!({"id": "a", "n": 10, "kind": {"name": "x"}}),
            json!({"id": "b", "n": 2, "kind": {"name": "y"}}),
            json!({"id": "c", "n": 33, "kind": {"name": "x"}}),
            json!({"id": "d", "kind": {"name": "z"}}),
        ])
        .await;
    let client = stack.client("client");
    client.sync_one(&cfr()).await.unwrap();
    let ids = |records: Vec<serde_json::Value>| -> Vec<String> {
        records
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_kind = GetOptions {
        filters: vec![Filter::new("kind.name", vec![json!("x")])],
        order: Some("-n".into()),
        ..GetOptions::default()
    };
    assert_eq!(ids(client.get(&cfr(), &by_kind).await.unwrap()), ["c", "a"]);
    let ordered = GetOptions {
        order: Some("n".into()),
        ..GetOptions::default()
    };
    assert_eq!(
        ids(client.get(&cfr(), &ordered).await.unwrap()),
        ["b", "a", "c", "d"]
    );
    let any_of = GetOptions {
        filters: vec![Filter::new("kind.name", vec![json!("y"), json!("z")])],
        ..GetOptions::default()
    };
    assert_eq!(ids(client.get(&cfr(), &any_of).await.unwrap()), ["b", "d"]);
}

#[tokio::test]
async fn get_syncs_an_empty_collection_when_asked() {
    let stack = Stack::start().await;
    stack.publish_records(&records(0..2, "v1")).await;
    let client = stack.client("client");
    let options = GetOptions {
        sync_if_empty: true,
        fail_if_sync_failed: true,
        ..GetOptions::default()
    };
    assert_eq!(client.get(&cfr(), &options).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_backoff_header_stops_requests_for_its_duration() {
    let stack = Stack::start().await;
    stack.publish_records(&records(0..2, "v1")).await;
    let client = stack.client("client");
    stack.proxy.times(
        "/collections/cfr/changeset",
        1,
        Tamper::Header("Backoff", "60".into()),
    );
    client.sync_one(&cfr()).await.unwrap();
    let requests = stack.proxy.hits().len();
    match client.sync_one(&cfr()).await {
        Err(SyncError::Backoff { until_ms }) => {
            let expected = now() * 1000 + 60_000;
            assert!(
                until_ms.abs_diff(expected) < 5_000,
                "{until_ms} vs {expected}"
            );
        }
        other => panic!("expected Backoff, got {other:?}"),
    }
    assert_eq!(
        stack.proxy.hits().len(),
        requests,
        "no request during the backoff"
    );
    assert_eq!(
        client.history(&cfr(), 1).unwrap()[0].status,
        SyncStatus::Backoff
    );
    // Another process with the same database honours it too.
    let again = Client::open(stack.client_config("client")).unwrap();
    assert!(again.backoff_until().unwrap().is_some());
    // The data synced before the backoff is still answered.
    assert_eq!(
        client
            .get(&cfr(), &GetOptions::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_503_with_retry_after_is_a_server_error_then_a_backoff() {
    let stack = Stack::start().await;
    stack.publish_records(&records(0..2, "v1")).await;
    let client = stack.client("client");
    stack.proxy.always(
        "/collections/cfr/changeset",
        Tamper::Respond {
            status: 503,
            headers: vec![
                ("Retry-After", "30".into()),
                ("Content-Type", "application/json".into()),
            ],
            body:
                r#"{"code":503,"errno":201,"error":"Service Unavailable","message":"maintenance"}"#
                    .into(),
        },
    );
    match client.sync_one(&cfr()).await {
        Err(error) => {
            assert_eq!(error.status(), SyncStatus::ServerError);
            assert!(error.to_string().contains("maintenance"), "{error}");
        }
        Ok(outcome) => panic!("expected a server error, got {outcome:?}"),
    }
    assert!(matches!(
        client.sync_one(&cfr()).await,
        Err(SyncError::Backoff { .. })
    ));
}

#[tokio::test]
async fn a_resignature_without_new_data_is_applied() {
    let stack = Stack::start().await;
    let published = stack.publish_records(&records(0..2, "v1")).await;
    let client = stack.client("client");
    client.sync_one(&cfr()).await.unwrap();
    let old_x5u = stack.x5u().await;
    stack.rotate(SIGNER_NAME, now() - 60, now() + 86_400).await;
    let new_x5u = stack.x5u().await;
    assert_ne!(old_x5u, new_x5u);
    assert_eq!(stack.published_timestamp().await, published);
    // Same records timestamp, new metadata: the client keeps its data and takes the new
    // signature when it syncs without an expected timestamp.
    client.sync(&cfr(), None).await.unwrap();
    let verified = GetOptions {
        verify: true,
        ..GetOptions::default()
    };
    assert_eq!(client.get(&cfr(), &verified).await.unwrap().len(), 2);
    let stored = client.local().collection(&cfr()).unwrap().unwrap();
    assert_eq!(
        stored.metadata.unwrap()["signature"]["x5u"],
        new_x5u.as_str()
    );
}

#[tokio::test]
async fn a_packaged_dump_is_used_only_when_newer() {
    let stack = Stack::start().await;
    let published = stack.publish_records(&records(0..3, "v1")).await;
    let dumps = stack.dir.path().join("dumps");
    std::fs::create_dir_all(dumps.join("main")).unwrap();
    let write_dump = |timestamp: u64, tag: &str| {
        let data = records(0..2, tag);
        std::fs::write(
            dumps.join("main/cfr.json"),
            serde_json::to_vec(&json!({"data": data, "timestamp": timestamp})).unwrap(),
        )
        .unwrap();
    };

    // A fresh client answers the dump before any network request.
    write_dump(published - 1, "dump");
    let mut config = stack.client_config("fresh");
    config.dumps_dir = Some(dumps.clone());
    let client = Client::open(config.clone()).unwrap();
    let held = client.get(&cfr(), &GetOptions::default()).await.unwrap();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0]["tag"], "dump");
    assert_eq!(
        client.history(&cfr(), 1).unwrap()[0].status,
        SyncStatus::DumpLoaded
    );
    // Dump data cannot be verified on read until a sync has checked the collection...
    let verified = GetOptions {
        verify: true,
        ..GetOptions::default()
    };
    assert!(client.get(&cfr(), &verified).await.is_err());
    // ...which replaces it with the newer, signed data.
    client.sync_one(&cfr()).await.unwrap();
    assert_eq!(client.get(&cfr(), &verified).await.unwrap().len(), 3);

    // An older dump never replaces newer verified data; a newer one does.
    write_dump(published - 10, "old dump");
    assert!(!client.load_dump_if_newer(&cfr()).unwrap());
    assert_eq!(client.get(&cfr(), &verified).await.unwrap()[0]["tag"], "v1");
    write_dump(published + 10, "new dump");
    assert!(client.load_dump_if_newer(&cfr()).unwrap());
    assert_eq!(
        client.get(&cfr(), &GetOptions::default()).await.unwrap()[0]["tag"],
        "new dump"
    );
}

#[tokio::test]
async fn attachments_are_verified_and_cached() {
    let stack = Stack::start().await;
    let content = b"attachment bytes, twenty-something".to_vec();
    let form = reqwest::multipart::Form::new().part(
        "attachment",
        reqwest::multipart::Part::bytes(content.clone())
            .file_name("list.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let response = reqwest::Client::new()
        .post(format!(
            "{}{WORKSPACE}/records/with-file/attachment",
            stack.upstream
        ))
        .basic_auth("admin", Some("admin-password"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    stack.publish().await;
    let client = stack.client("client");
    client.sync_one(&cfr()).await.unwrap();
    let record = client.get(&cfr(), &GetOptions::default()).await.unwrap()[0].clone();
    let downloads = || {
        stack
            .proxy
            .hits()
            .iter()
            .filter(|h| h.starts_with("/attachments/"))
            .count()
    };

    assert_eq!(client.attachment(&record).await.unwrap(), content);
    assert_eq!(downloads(), 1);
    assert_eq!(client.attachment(&record).await.unwrap(), content);
    assert_eq!(downloads(), 1, "served from the cache");

    // A cached file that no longer matches is never served: it is downloaded again.
    let hash = record["attachment"]["hash"].as_str().unwrap();
    let cached = stack.dir.path().join("client/attachments").join(hash);
    std::fs::write(&cached, b"tampered").unwrap();
    assert_eq!(client.attachment(&record).await.unwrap(), content);
    assert_eq!(downloads(), 2);
    assert_eq!(std::fs::read(&cached).unwrap(), content);

    // A download that does not match is refused and not cached.
    std::fs::remove_file(&cached).unwrap();
    let mut evil = content.clone();
    evil[0] ^= 1;
    stack.proxy.always("/attachments/", Tamper::Body(evil));
    assert!(matches!(
        client.attachment(&record).await,
        Err(AttachmentError::Mismatch { .. })
    ));
    assert!(!cached.exists());
    // A body longer than the declared size is cut off, not read whole.
    stack.proxy.clear();
    stack
        .proxy
        .always("/attachments/", Tamper::Body(vec![b'x'; content.len() * 4]));
    assert!(matches!(
        client.attachment(&record).await,
        Err(AttachmentError::Download(SyncError::Remote(
            settings_client::remote::RemoteError::TooLarge(_)
        )))
    ));
    assert!(!cached.exists());
}
