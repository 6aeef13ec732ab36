//! Kinto's history plugin: `/v1/buckets/{bid}/history`, as Kinto Admin reads it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::kinto::Server;

fn actions(reply: &Value) -> Vec<(String, String)> {
    reply["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["uri"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_write_leaves_an_entry_in_its_buckets_history() {
    let server = Server::start().await;
    let hello = server.get("/v1/", None).await;
    assert!(hello.body["capabilities"]["history"].is_object());
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put(
            "/v1/buckets/b/collections/c",
            Some("alice"),
            json!({"data": {"status": "work-in-progress"}}),
        )
        .await;
    server
        .put("/v1/buckets/b/groups/g", Some("alice"), json!({}))
        .await;
    let record = "/v1/buckets/b/collections/c/records/r";
    server
        .put(record, Some("alice"), json!({"data": {"v": 1}}))
        .await;
    server
        .call(
            Method::PATCH,
            record,
            Some("alice"),
            Some(json!({"data": {"v": 2}})),
            &[],
        )
        .await;
    server
        .call(Method::DELETE, record, Some("alice"), None, &[])
        .await;
    let all = server.get("/v1/buckets/b/history", Some("alice")).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(all.headers["cache-control"], "no-cache, no-store");
    let r = "/buckets/b/collections/c/records/r".to_owned();
    assert_eq!(
        actions(&all.body),
        [
            ("delete".to_owned(), r.clone()),
            ("update".to_owned(), r.clone()),
            ("create".to_owned(), r.clone()),
            ("create".to_owned(), "/buckets/b/groups/g".to_owned()),
            ("create".to_owned(), "/buckets/b/collections/c".to_owned()),
            ("create".to_owned(), "/buckets/b".to_owned()),
        ]
    );
    let update = &all.body["data"][1];
    assert_eq!(update["resource_name"], "record");
    assert_eq!(update["collection_id"], "c");
    assert_eq!(update["record_id"], "r");
    assert_eq!(update["user_id"], "account:alice");
    assert_eq!(update["target"]["data"]["v"], 2);
    assert_eq!(
        update["target"]["permissions"]["write"],
        json!(["account:alice"])
    );
    assert!(update["date"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(all.body["data"][5]["bucket_id"], "b");

    // Kinto Admin's filters: one collection's records, an action, a field of the target,
    // what changed since a time, a page at a time.
    let filtered = server
        .get(
            "/v1/buckets/b/history?resource_name=record&collection_id=c&action=update",
            Some("alice"),
        )
        .await;
    assert_eq!(actions(&filtered.body), [("update".to_owned(), r.clone())]);
    let by_target = server
        .get(
            "/v1/buckets/b/history?target.data.status=work-in-progress",
            Some("alice"),
        )
        .await;
    assert_eq!(by_target.body["data"][0]["resource_name"], "collection");
    let since = all.body["data"][2]["last_modified"].as_i64().unwrap();
    let newer = server
        .get(
            &format!("/v1/buckets/b/history?_since={since}&exclude_action=delete"),
            Some("alice"),
        )
        .await;
    assert_eq!(actions(&newer.body), [("update".to_owned(), r.clone())]);
    let page = server
        .get("/v1/buckets/b/history?_limit=2", Some("alice"))
        .await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 2);
    assert!(page.headers.contains_key("next-page"));

    // Entries are listed and purged, never written by clients.
    let posted = server
        .call(
            Method::POST,
            "/v1/buckets/b/history",
            Some("alice"),
            Some(json!({"data": {}})),
            &[],
        )
        .await;
    assert_eq!(posted.status, 405);
    let purged = server
        .call(
            Method::DELETE,
            "/v1/buckets/b/history",
            Some("alice"),
            None,
            &[],
        )
        .await;
    assert_eq!(purged.status, 200);
    let after = server.get("/v1/buckets/b/history", Some("alice")).await;
    assert_eq!(after.body["data"], json!([]));
}

#[tokio::test]
async fn entries_are_readable_by_who_could_read_what_they_record() {
    let server = Server::start().await;
    server.account("alice").await;
    server.account("editor").await;
    server.account("stranger").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put(
            "/v1/buckets/b/collections/shared",
            Some("alice"),
            json!({"permissions": {"write": ["account:editor"]}}),
        )
        .await;
    server
        .put(
            "/v1/buckets/b/collections/private",
            Some("alice"),
            json!({}),
        )
        .await;
    server
        .put(
            "/v1/buckets/b/collections/shared/records/r",
            Some("editor"),
            json!({}),
        )
        .await;
    server
        .put(
            "/v1/buckets/b/collections/private/records/p",
            Some("alice"),
            json!({}),
        )
        .await;
    let seen = server.get("/v1/buckets/b/history", Some("editor")).await;
    assert_eq!(seen.status, 200, "{:?}", seen.body);
    let uris: Vec<String> = actions(&seen.body).into_iter().map(|(_, u)| u).collect();
    assert_eq!(
        uris,
        [
            "/buckets/b/collections/shared/records/r",
            "/buckets/b/collections/shared"
        ]
    );
    server
        .get("/v1/buckets/b/history", Some("stranger"))
        .await
        .assert_error(403, 121);
    server
        .get("/v1/buckets/b/history", None)
        .await
        .assert_error(401, 104);
    // Only the bucket's writers purge it.
    server
        .call(
            Method::DELETE,
            "/v1/buckets/b/history",
            Some("editor"),
            None,
            &[],
        )
        .await
        .assert_error(403, 121);
    assert_eq!(
        server
            .get("/v1/buckets/b/history", Some("alice"))
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn history_can_be_turned_off() {
    let server = Server::start_with(|s| s.history_enabled = false).await;
    let hello = server.get("/v1/", None).await;
    assert!(hello.body["capabilities"].get("history").is_none());
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .get("/v1/buckets/b/history", Some("alice"))
        .await
        .assert_error(404, 111);
}

#[tokio::test]
async fn a_snapshot_rebuilds_a_collection_as_it_was() {
    let server = Server::start().await;
    server.account("alice").await;
    server.account("stranger").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    let records = "/v1/buckets/b/collections/c/records";
    let write = |id: &'static str, v: i64| {
        let server = &server;
        async move {
            let reply = server
                .put(
                    &format!("{records}/{id}"),
                    Some("alice"),
                    json!({"data": {"v": v}}),
                )
                .await;
            assert!(reply.status.is_success(), "{:?}", reply.body);
            reply.body["data"]["last_modified"].as_i64().unwrap()
        }
    };
    write("r1", 1).await;
    let then = write("r2", 1).await;
    write("r1", 2).await;
    server
        .call(
            Method::DELETE,
            &format!("{records}/r2"),
            Some("alice"),
            None,
            &[],
        )
        .await;
    write("r3", 1).await;

    let snapshot = |at: i64| {
        let server = &server;
        async move {
            let reply = server
                .get(
                    &format!("/v1/buckets/b/snapshot/collections/c@{at}"),
                    Some("alice"),
                )
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            reply.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap().to_owned(),
                        r["v"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // Updated and deleted since: their versions then; created since: absent. Newest first.
    assert_eq!(
        snapshot(then).await,
        [("r2".to_owned(), 1), ("r1".to_owned(), 1)]
    );
    assert_eq!(snapshot(then - 1).await, [("r1".to_owned(), 1)]);
    let now = i64::MAX / 2;
    assert_eq!(
        snapshot(now).await,
        [("r3".to_owned(), 1), ("r1".to_owned(), 2)]
    );

    // Who may read the collection may ask; others are refused as Kinto refuses them.
    let path = format!("/v1/buckets/b/snapshot/collections/c@{then}");
    server
        .get(&path, Some("stranger"))
        .await
        .assert_error(403, 121);
    server.get(&path, None).await.assert_error(401, 104);
    server
        .get(
            "/v1/buckets/b/snapshot/collections/c@yesterday",
            Some("alice"),
        )
        .await
        .assert_error(400, 107);
    server
        .get("/v1/buckets/b/snapshot/collections/c!@1", Some("alice"))
        .await
        .assert_error(404, 111);
}
