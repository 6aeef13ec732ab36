//! Racing writers and paging during writes, on SQLite and (when
//! `SYNCSTACK_TEST_POSTGRES_URL` is set) on PostgreSQL, where the races are between
//! pooled connections rather than queued on one writer.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::json;

use crate::common::TestNode;

/// N clients read the collection timestamp, then all write with `X-If-Unmodified-Since` set
/// to it: exactly one wins, every other gets 412, none gets a 5xx, and the stored record is
/// the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_conditional_writer_wins() {
    exactly_one_conditional_writer_wins_on(TestNode::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_conditional_writer_wins_on_postgres() {
    if let Some(node) = TestNode::start_postgres().await {
        exactly_one_conditional_writer_wins_on(node).await;
    }
}

async fn exactly_one_conditional_writer_wins_on(node: TestNode) {
    let client = node.client(1);
    let start = client
        .put("/storage/clients/seed", json!({"payload": "seed"}))
        .await;
    let stamp = start.header("x-last-modified").unwrap().to_owned();
    for round in 0..3 {
        let mut tasks = Vec::new();
        for writer in 0..16 {
            let client = client.clone();
            let stamp = stamp.clone();
            tasks.push(tokio::spawn(async move {
                let call = client
                    .call(Method::POST, "/storage/clients")
                    .json(&json!([{"id": "shared", "payload": format!("writer {writer}")}]))
                    .header("x-if-unmodified-since", &stamp);
                (writer, client.send(call).await.status)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (writer, status) = task.await.unwrap();
            match status {
                200 => winners.push(writer),
                412 => {}
                other => panic!("round {round}: writer {writer} got {other}"),
            }
        }
        if round == 0 {
            assert_eq!(winners.len(), 1, "winners: {winners:?}");
            let stored = client.get("/storage/clients/shared").await.json();
            assert_eq!(stored["payload"], format!("writer {}", winners[0]));
        } else {
            assert!(
                winners.is_empty(),
                "the stale timestamp must lose every later round"
            );
        }
    }
    node.finish().await;
}

/// Many users write to collections that do not exist yet, all at once: every write
/// succeeds (Mozilla's server answers some of these with 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_writes_to_new_collections_succeed() {
    concurrent_first_writes_to_new_collections_succeed_on(TestNode::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_writes_to_new_collections_succeed_on_postgres() {
    if let Some(node) = TestNode::start_postgres().await {
        concurrent_first_writes_to_new_collections_succeed_on(node).await;
    }
}

async fn concurrent_first_writes_to_new_collections_succeed_on(node: TestNode) {
    let mut tasks = Vec::new();
    for uid in 1..=8u64 {
        for c in 0..8 {
            let client = node.client(uid);
            tasks.push(tokio::spawn(async move {
                let reply = client
                    .post(
                        &format!("/storage/custom{c}"),
                        json!([{"id": "a", "payload": "x"}]),
                    )
                    .await;
                reply.status
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    for uid in 1..=8u64 {
        assert_eq!(
            node.client(uid)
                .get("/info/collections")
                .await
                .json()
                .as_object()
                .unwrap()
                .len(),
            8
        );
    }
    node.finish().await;
}

/// A reader pages through a collection while writers keep adding records: every record
/// that existed before paging began is seen exactly once, in every sort order, and no id is
/// ever repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_during_writes_loses_and_repeats_nothing() {
    paging_during_writes_loses_and_repeats_nothing_on(TestNode::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_during_writes_loses_and_repeats_nothing_on_postgres() {
    if let Some(node) = TestNode::start_postgres().await {
        paging_during_writes_loses_and_repeats_nothing_on(node).await;
    }
}

async fn paging_during_writes_loses_and_repeats_nothing_on(node: TestNode) {
    let client = node.client(1);
    let initial: Vec<String> = (0..240).map(|i| format!("old{i:03}")).collect();
    for chunk in initial.chunks(80) {
        let records: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": id, "payload": "p", "sortindex": i as i64 % 7}))
            .collect();
        assert_eq!(
            client.post("/storage/history", json!(records)).await.status,
            200
        );
    }

    for sort in ["oldest", "newest", "index"] {
        let writer = {
            let client = client.clone();
            let sort = sort.to_owned();
            tokio::spawn(async move {
                for i in 0..40 {
                    let record = json!([{"id": format!("new-{sort}-{i}"), "payload": "p", "sortindex": i % 9}]);
                    assert_eq!(client.post("/storage/history", record).await.status, 200);
                }
            })
        };
        let mut seen = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut path = format!("/storage/history?limit=10&sort={sort}");
            if let Some(offset) = &offset {
                path.push_str(&format!("&offset={offset}"));
            }
            let reply = client.get(&path).await;
            assert_eq!(reply.status, 200);
            seen.extend(
                reply
                    .json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned()),
            );
            match reply.header("x-weave-next-offset") {
                Some(next) => offset = Some(next.to_owned()),
                None => break,
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "sort={sort}: an id was repeated");
        for id in &initial {
            assert!(unique.contains(id), "sort={sort}: {id} was lost");
        }
    }
    node.finish().await;
}

/// Every write has one timestamp: under many concurrent writers, each response's body,
/// `X-Last-Modified` and `X-Weave-Timestamp` agree, and a following read of what it wrote
/// shows the same `modified`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_write_answers_one_timestamp() {
    each_write_answers_one_timestamp_on(TestNode::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_write_answers_one_timestamp_on_postgres() {
    if let Some(node) = TestNode::start_postgres().await {
        each_write_answers_one_timestamp_on(node).await;
    }
}

async fn each_write_answers_one_timestamp_on(node: TestNode) {
    let mut tasks = Vec::new();
    for writer in 0..12u64 {
        // Two users, six writers each, so writes of one user contend.
        let client = node.client(1 + writer % 2);
        tasks.push(tokio::spawn(async move {
            for round in 0..8 {
                let id = format!("w{writer}r{round}");
                let put = client
                    .put(&format!("/storage/bookmarks/{id}"), json!({"payload": "p"}))
                    .await;
                assert_eq!(put.status, 200, "{put:?}");
                let body_ms = (put.json().as_f64().unwrap() * 1000.0).round() as u64;
                let header_ms = put.ts_header("x-last-modified");
                let weave_ms = put.ts_header("x-weave-timestamp");
                assert_eq!((body_ms, weave_ms), (header_ms, header_ms), "PUT {id}");
                let read = client.get(&format!("/storage/bookmarks/{id}")).await;
                let stored_ms = (read.json()["modified"].as_f64().unwrap() * 1000.0).round();
                assert_eq!(stored_ms as u64, header_ms, "GET {id} after PUT");

                let post = client
                    .post(
                        "/storage/history",
                        json!([{"id": id, "payload": "p"}, {"id": format!("{id}b"), "payload": "q"}]),
                    )
                    .await;
                assert_eq!(post.status, 200, "{post:?}");
                let body_ms = (post.json()["modified"].as_f64().unwrap() * 1000.0).round();
                let header_ms = post.ts_header("x-last-modified");
                assert_eq!(body_ms as u64, header_ms, "POST {id}");
                assert_eq!(post.ts_header("x-weave-timestamp"), header_ms, "POST {id}");
                let read = client.get(&format!("/storage/history/{id}b")).await;
                let stored_ms = (read.json()["modified"].as_f64().unwrap() * 1000.0).round();
                assert_eq!(stored_ms as u64, header_ms, "GET {id}b after POST");

                let delete = client.delete(&format!("/storage/bookmarks/{id}")).await;
                assert_eq!(delete.status, 200, "{delete:?}");
                let body_ms = (delete.json()["modified"].as_f64().unwrap() * 1000.0).round();
                let header_ms = delete.ts_header("x-last-modified");
                assert_eq!(body_ms as u64, header_ms, "DELETE {id}");
                assert_eq!(delete.ts_header("x-weave-timestamp"), header_ms, "DELETE {id}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    node.finish().await;
}
