//! Collection listings and deletes: every query parameter, both output formats, paging.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{SyncClient, TestNode};

/// Writes records `r0..r{n}` one request each (so each has its own timestamp), with
/// sortindex equal to their number; returns their timestamps in ms.
async fn fill(client: &SyncClient, collection: &str, n: usize) -> Vec<u64> {
    let mut stamps = Vec::new();
    for i in 0..n {
        let reply = client
            .put(
                &format!("/storage/{collection}/r{i}"),
                json!({"payload": format!("p{i}"), "sortindex": i}),
            )
            .await;
        assert_eq!(reply.status, 200);
        stamps.push(reply.ts_header("x-last-modified"));
    }
    stamps
}

fn ids(reply: &Value) -> Vec<String> {
    reply
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn secs(ms: u64) -> String {
    format!("{}.{:02}", ms / 1000, (ms % 1000) / 10)
}

#[tokio::test]
async fn a_never_written_collection_is_empty() {
    let node = TestNode::start().await;
    let reply = node.client(1).get("/storage/nothing").await;
    assert_eq!((reply.status, reply.json()), (200, json!([])));
    assert_eq!(reply.header("x-last-modified"), Some("0.00"));
    assert_eq!(reply.header("x-weave-records"), Some("0"));
}

#[tokio::test]
async fn lists_ids_or_full_records_in_every_order() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let stamps = fill(&client, "history", 4).await;
    let reply = client.get("/storage/history").await;
    assert_eq!(ids(&reply.json()), ["r3", "r2", "r1", "r0"]);
    assert_eq!(reply.header("x-weave-records"), Some("4"));
    assert_eq!(reply.ts_header("x-last-modified"), stamps[3]);

    assert_eq!(
        ids(&client.get("/storage/history?sort=oldest").await.json()),
        ["r0", "r1", "r2", "r3"]
    );
    assert_eq!(
        ids(&client.get("/storage/history?sort=newest").await.json()),
        ["r3", "r2", "r1", "r0"]
    );
    client
        .put("/storage/history/r0", json!({"sortindex": 10}))
        .await;
    assert_eq!(
        ids(&client.get("/storage/history?sort=index").await.json()),
        ["r0", "r3", "r2", "r1"]
    );

    let full = client
        .get("/storage/history?full=1&sort=oldest")
        .await
        .json();
    // r0 was just rewritten, so it is now the newest.
    assert_eq!(
        full[0],
        json!({"id": "r1", "modified": full[0]["modified"], "payload": "p1", "sortindex": 1})
    );
    // `full` counts by presence, whatever its value.
    assert!(client.get("/storage/history?full=").await.json()[0].is_object());
}

#[tokio::test]
async fn filters_by_ids_newer_and_older() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let stamps = fill(&client, "forms", 5).await;
    let reply = client
        .get("/storage/forms?ids=r1,r3,missing&sort=oldest")
        .await
        .json();
    assert_eq!(ids(&reply), ["r1", "r3"]);
    let reply = client
        .get("/storage/forms?ids=r1%2Cr2&sort=oldest")
        .await
        .json();
    assert_eq!(ids(&reply), ["r1", "r2"]);
    let newer = client
        .get(&format!(
            "/storage/forms?newer={}&sort=oldest",
            secs(stamps[2])
        ))
        .await;
    assert_eq!(ids(&newer.json()), ["r3", "r4"]);
    let older = client
        .get(&format!(
            "/storage/forms?older={}&sort=oldest",
            secs(stamps[2])
        ))
        .await;
    assert_eq!(ids(&older.json()), ["r0", "r1"]);
    let between = client
        .get(&format!(
            "/storage/forms?newer={}&older={}",
            secs(stamps[0]),
            secs(stamps[4])
        ))
        .await;
    assert_eq!(ids(&between.json()), ["r3", "r2", "r1"]);
    let unknown = client.get("/storage/forms?ids=r0&whatever=1").await;
    assert_eq!(ids(&unknown.json()), ["r0"]);
}

#[tokio::test]
async fn pages_with_limit_and_offset() {
    let node = TestNode::start().await;
    let client = node.client(1);
    fill(&client, "bookmarks", 7).await;
    for sort in ["oldest", "newest", "index"] {
        let mut seen = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut path = format!("/storage/bookmarks?limit=3&sort={sort}&full=1");
            if let Some(offset) = &offset {
                path.push_str(&format!("&offset={offset}"));
            }
            let reply = client.get(&path).await;
            assert_eq!(reply.status, 200);
            let page = ids(&reply.json());
            assert!(page.len() <= 3);
            assert_eq!(
                reply.header("x-weave-records"),
                Some(page.len().to_string().as_str())
            );
            seen.extend(page);
            match reply.header("x-weave-next-offset") {
                Some(next) => offset = Some(next.to_owned()),
                None => break,
            }
        }
        let expected: Vec<String> = match sort {
            "oldest" => (0..7).map(|i| format!("r{i}")).collect(),
            _ => (0..7).rev().map(|i| format!("r{i}")).collect(),
        };
        assert_eq!(seen, expected, "sort={sort}");
    }
    // A page that holds everything has no next offset.
    assert!(
        client
            .get("/storage/bookmarks?limit=7")
            .await
            .header("x-weave-next-offset")
            .is_none()
    );
}

#[tokio::test]
async fn the_page_size_is_capped_by_max_total_records() {
    let node = TestNode::start_with(|s| s.limits.max_total_records = 2).await;
    let client = node.client(1);
    fill(&client, "tabs", 3).await;
    let reply = client.get("/storage/tabs").await;
    assert_eq!(ids(&reply.json()).len(), 2);
    assert!(reply.header("x-weave-next-offset").is_some());
}

#[tokio::test]
async fn newline_output() {
    let node = TestNode::start().await;
    let client = node.client(1);
    client
        .put("/storage/tabs/a", json!({"payload": "line1\nline2"}))
        .await;
    client.put("/storage/tabs/b", json!({"payload": "x"})).await;
    let call = client
        .call(Method::GET, "/storage/tabs?full=1&sort=oldest")
        .header("accept", "application/newlines");
    let reply = client.send(call).await;
    assert_eq!(reply.header("content-type"), Some("application/newlines"));
    let lines: Vec<&str> = reply.body.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2, "{:?}", reply.body);
    assert!(lines[0].contains("line1\\nline2"));
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["payload"], "line1\nline2");
    let ids_only = client
        .send(
            client
                .call(Method::GET, "/storage/tabs?sort=oldest")
                .header("accept", "application/newlines"),
        )
        .await;
    assert_eq!(ids_only.body, "\"a\"\n\"b\"\n");
}

#[tokio::test]
async fn unsupported_accept_is_406() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .send(
            client
                .call(Method::GET, "/storage/tabs")
                .header("accept", "x/yy"),
        )
        .await;
    reply.assert_weave(406, 0);
    let wildcard = client
        .send(
            client
                .call(Method::GET, "/storage/tabs")
                .header("accept", "*/*"),
        )
        .await;
    assert_eq!(wildcard.status, 200);
}

#[tokio::test]
async fn bad_query_values_are_400() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let many = (0..101)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for query in [
        "newer=abc".to_owned(),
        "older=-2".to_owned(),
        "limit=-1".to_owned(),
        "limit=ten".to_owned(),
        "offset=nonsense.%21".to_owned(),
        "sort=random".to_owned(),
        format!("ids={many}"),
    ] {
        client
            .get(&format!("/storage/tabs?{query}"))
            .await
            .assert_weave(400, 0);
    }
    let hundred = (0..100)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        client
            .get(&format!("/storage/tabs?ids={hundred}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn delete_collection_and_some_records() {
    let node = TestNode::start().await;
    let client = node.client(1);
    fill(&client, "history", 3).await;
    client.put("/storage/tabs/t", json!({"payload": "x"})).await;
    let before = client
        .get("/info/collections")
        .await
        .ts_header("x-last-modified");

    let some = client.delete("/storage/history?ids=r0,r2").await;
    assert_eq!(some.status, 200);
    let stamp = some.json().as_f64().unwrap();
    assert_eq!(ids(&client.get("/storage/history").await.json()), ["r1"]);
    assert_eq!(
        client.get("/info/collections").await.json()["history"].as_f64(),
        Some(stamp)
    );

    let all = client.delete("/storage/history").await;
    assert_eq!(all.status, 200);
    let storage_ts = (all.json().as_f64().unwrap() * 1000.0).round() as u64;
    assert!(storage_ts > before);
    let info = client.get("/info/collections").await;
    assert!(info.json().get("history").is_none());
    assert_eq!(
        info.ts_header("x-last-modified"),
        storage_ts,
        "the storage timestamp moves on a delete"
    );
    assert_eq!(client.get("/storage/history").await.json(), json!([]));
    // Deleting what does not exist is not an error.
    assert_eq!(client.delete("/storage/never").await.status, 200);
}

#[tokio::test]
async fn delete_all_storage() {
    let node = TestNode::start().await;
    let client = node.client(1);
    fill(&client, "history", 2).await;
    let other = node.client(2);
    fill(&other, "history", 1).await;
    for path in ["/storage", ""] {
        client.put("/storage/tabs/t", json!({"payload": "x"})).await;
        let reply = client.delete(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "null"));
        let info = client.get("/info/collections").await;
        assert_eq!(info.json(), json!({}));
        assert_eq!(info.header("x-last-modified"), Some("0.00"));
    }
    assert_eq!(
        ids(&other.get("/storage/history").await.json()),
        ["r0"],
        "other users keep their data"
    );
    // Timestamps keep increasing after a full delete.
    let after = client
        .put("/storage/tabs/t", json!({"payload": "x"}))
        .await
        .ts_header("x-last-modified");
    let again = client
        .put("/storage/tabs/u", json!({"payload": "x"}))
        .await
        .ts_header("x-last-modified");
    assert!(again > after);
}

#[tokio::test]
async fn users_do_not_see_each_other() {
    let node = TestNode::start().await;
    node.client(1)
        .put("/storage/passwords/secret", json!({"payload": "x"}))
        .await;
    let other = node.client(2);
    assert_eq!(other.get("/storage/passwords").await.json(), json!([]));
    other
        .get("/storage/passwords/secret")
        .await
        .assert_weave(404, 0);
}
