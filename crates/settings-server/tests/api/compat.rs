//! What kinto-http (Python and JS) and Kinto Admin rely on, each answered as Kinto 26.5
//! answers the same request (checked side by side with a Kinto server).

use reqwest::Method;
use serde_json::{Value, json};

use crate::kinto::Server;

#[tokio::test]
async fn an_account_is_created_with_the_credentials_it_is_about_to_have() {
    let server = Server::start().await;
    // kinto-http.py's `create_account` sends the new account's own Basic credentials.
    let created = server
        .put(
            "/v1/accounts/neo",
            Some("neo"),
            json!({"data": {"password": "neo-password"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let hello = server.get("/v1/", Some("neo")).await;
    assert_eq!(hello.body["user"]["id"], "account:neo");
}

#[tokio::test]
async fn paths_without_the_version_prefix_are_redirected_keeping_the_method() {
    let server = Server::start().await;
    let redirect = server
        .call(Method::POST, "/__flush__", None, None, &[])
        .await;
    assert_eq!(redirect.status, 307);
    assert_eq!(redirect.headers["location"], "/v1/__flush__");
    // A client that follows it sends the POST again, to the prefixed path.
    let followed = reqwest::Client::new()
        .post(format!("{}/__flush__", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 202);
    let put = reqwest::Client::new()
        .put(format!("{}/accounts/zoe", server.url))
        .json(&json!({"data": {"password": "zoe-password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
}

#[tokio::test]
async fn trailing_slashes_wrong_methods_and_bad_bodies_are_answered_as_kinto() {
    let server = Server::start().await;
    server.account("alice").await;
    let slash = server.get("/v1/buckets/?_limit=2", Some("alice")).await;
    assert_eq!(slash.status, 307);
    assert_eq!(slash.headers["location"], "/v1/buckets?_limit=2");
    for (method, path) in [
        (Method::PUT, "/v1/"),
        (Method::POST, "/v1/buckets/b/collections/c/records/r"),
    ] {
        let refused = server.call(method, path, Some("alice"), None, &[]).await;
        refused.assert_error(405, 115);
        assert!(refused.headers.contains_key("allow"));
    }
    let not_json = server
        .http
        .put(format!("{}/v1/buckets/b", server.url))
        .basic_auth("alice", Some("alice-password"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(
        (body["errno"].as_u64(), &body["details"][0]["location"]),
        (Some(107), &json!("body"))
    );
    let bad_batch = server
        .call(
            Method::POST,
            "/v1/batch",
            Some("alice"),
            Some(json!({"requests": [], "unknown": 1})),
            &[],
        )
        .await;
    bad_batch.assert_error(400, 107);
}

#[tokio::test]
async fn authorization_that_does_not_authenticate_is_anonymous() {
    let server = Server::start().await;
    server.account("alice").await;
    // Kinto Admin sends `Authorization: undefined` while logged out.
    for value in ["undefined", "Bearer abc", "Basic !!!"] {
        let hello = server
            .call(Method::GET, "/v1/", None, None, &[("authorization", value)])
            .await;
        assert_eq!(hello.status, 200, "{value}");
        assert!(hello.body.get("user").is_none());
        assert!(hello.body["capabilities"]["accounts"].is_object());
        let buckets = server
            .call(
                Method::GET,
                "/v1/buckets",
                None,
                None,
                &[("authorization", value)],
            )
            .await;
        buckets.assert_error(401, 104);
        assert_eq!(buckets.headers["www-authenticate"], "Basic realm=\"Realm\"");
    }
}

#[tokio::test]
async fn refusals_ask_anonymous_callers_to_log_in() {
    let server = Server::start().await;
    server.account("alice").await;
    server.account("bob").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    server
        .put(
            "/v1/buckets/b/collections/c/records/r",
            Some("alice"),
            json!({}),
        )
        .await;
    for path in [
        "/v1/buckets",
        "/v1/buckets/b/collections/c/records",
        "/v1/buckets/b/collections/c/records/r",
        "/v1/buckets/b/collections/c/records/missing",
        "/v1/accounts",
    ] {
        server.get(path, None).await.assert_error(401, 104);
    }
    // Authenticated callers are refused with 403, or shown what is theirs.
    server
        .get("/v1/buckets/b/collections/c/records", Some("bob"))
        .await
        .assert_error(403, 121);
    let none = server.get("/v1/buckets", Some("bob")).await;
    assert_eq!(
        (none.status.as_u16(), &none.body["data"]),
        (200, &json!([]))
    );
    let own = server.get("/v1/accounts", Some("bob")).await;
    assert_eq!(own.body["data"][0]["id"], "bob");
    assert_eq!(own.body["data"].as_array().unwrap().len(), 1);
    // A record shared with bob makes the list readable to him, with only that record.
    server
        .put(
            "/v1/buckets/b/collections/c/records/shared",
            Some("alice"),
            json!({"permissions": {"read": ["account:bob"]}}),
        )
        .await;
    let shared = server
        .get("/v1/buckets/b/collections/c/records", Some("bob"))
        .await;
    assert_eq!(shared.status, 200);
    assert_eq!(shared.body["data"], json!([shared.body["data"][0].clone()]));
    assert_eq!(shared.body["data"][0]["id"], "shared");
}

#[tokio::test]
async fn missing_objects_and_unknown_paths_get_kintos_404s() {
    let server = Server::start().await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    let missing = server
        .get("/v1/buckets/b/collections/nope", Some("alice"))
        .await;
    missing.assert_error(404, 110);
    assert_eq!(
        missing.body["details"],
        json!({"id": "nope", "resource_name": "collection"})
    );
    let records = server
        .get("/v1/buckets/b/collections/nope/records", Some("alice"))
        .await;
    assert_eq!(records.body["details"]["resource_name"], "collection");
    for path in ["/v1/nothing/here", "/v1/buckets/b/whatever"] {
        let unknown = server.get(path, Some("alice")).await;
        unknown.assert_error(404, 111);
        assert_eq!(unknown.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn deleting_the_bucket_list_deletes_the_callers_buckets() {
    let server = Server::start().await;
    server.account("alice").await;
    server.account("bob").await;
    for bucket in ["a1", "a2"] {
        server
            .put(&format!("/v1/buckets/{bucket}"), Some("alice"), json!({}))
            .await;
    }
    server.put("/v1/buckets/b1", Some("bob"), json!({})).await;
    server
        .call(Method::DELETE, "/v1/buckets", None, None, &[])
        .await
        .assert_error(401, 104);
    let deleted = server
        .call(Method::DELETE, "/v1/buckets", Some("alice"), None, &[])
        .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    let mut ids: Vec<&str> = deleted.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["deleted"], true);
            t["id"].as_str().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(server.get("/v1/buckets/b1", Some("bob")).await.status, 200);
    assert_eq!(
        server.get("/v1/buckets", Some("alice")).await.body["data"],
        json!([])
    );
}

#[tokio::test]
async fn json_patch_operations_carry_only_their_own_members() {
    let server = Server::start().await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    server
        .put(
            "/v1/buckets/b/collections/c/records/r",
            Some("alice"),
            json!({"data": {"a": 1, "b": 2}, "permissions": {"read": ["account:x"]}}),
        )
        .await;
    let patched = server
        .call(
            Method::PATCH,
            "/v1/buckets/b/collections/c/records/r",
            Some("alice"),
            Some(json!([
                {"op": "remove", "path": "/data/a"},
                {"op": "remove", "path": "/permissions/read/account:x"},
                {"op": "move", "from": "/data/b", "path": "/data/c"},
            ])),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert!(patched.body["data"].get("a").is_none());
    assert_eq!(patched.body["data"]["c"], 2);
    assert_eq!(patched.body["permissions"]["read"], json!([]));
    // The first principal of a permission nobody holds needs no parent created first.
    let collection = server
        .call(
            Method::PATCH,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            Some(json!([
                {"op": "add", "path": "/permissions/record:create/account:y", "value": true},
            ])),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(collection.status, 200, "{:?}", collection.body);
    assert_eq!(
        collection.body["permissions"]["record:create"],
        json!(["account:y"])
    );
    assert!(collection.body["permissions"].get("read").is_none());
    // In a batch, a subrequest keeps its own Content-Type (kinto-http sends JSON Patches so).
    let batch = server
        .call(
            Method::POST,
            "/v1/batch",
            Some("alice"),
            Some(json!({"requests": [{
                "method": "PATCH",
                "path": "/buckets/b/collections/c/records/r",
                "headers": {"Content-Type": "application/json-patch+json"},
                "body": [{"op": "remove", "path": "/data/c"}],
            }]})),
            &[],
        )
        .await;
    let answer = &batch.body["responses"][0];
    assert_eq!(answer["status"], 200, "{answer:?}");
    assert!(answer["body"]["data"].get("c").is_none());
}

#[tokio::test]
async fn reads_are_never_cached_and_empty_lists_have_a_current_date() {
    let server = Server::start().await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    let path = "/v1/buckets/b/collections/c/records";
    let empty = server.get(path, Some("alice")).await;
    assert_eq!(empty.headers["cache-control"], "no-cache, no-store");
    let etag = empty.etag();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now_ms - 60_000..=now_ms).contains(&etag),
        "the ETag of an empty list is a recent time, not {etag}"
    );
    let date = empty.headers["last-modified"].to_str().unwrap();
    assert!(!date.contains("1970"), "{date}");
    // Whatever is written next is newer than that ETag.
    server
        .put(&format!("{path}/r"), Some("alice"), json!({}))
        .await;
    let since = server
        .get(&format!("{path}?_since={etag}"), Some("alice"))
        .await;
    assert_eq!(since.body["data"][0]["id"], "r");
    assert!(since.etag() > etag);
    let object = server.get(&format!("{path}/r"), Some("alice")).await;
    assert_eq!(object.headers["cache-control"], "no-cache, no-store");
    // Writes and the polled changesets keep their own caching.
    let write = server
        .put(&format!("{path}/r"), Some("alice"), json!({}))
        .await;
    assert!(write.headers.get("cache-control").is_none());
}

#[tokio::test]
async fn batch_limits_are_kintos() {
    let server = Server::start().await;
    let empty = server
        .call(
            Method::POST,
            "/v1/batch",
            None,
            Some(json!({"requests": []})),
            &[],
        )
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, json!({"responses": []}));
    let requests: Vec<Value> = (0..26).map(|_| json!({"path": "/buckets"})).collect();
    let too_many = server
        .call(
            Method::POST,
            "/v1/batch",
            None,
            Some(json!({ "requests": requests })),
            &[],
        )
        .await;
    too_many.assert_error(400, 107);
    assert_eq!(too_many.body["details"][0]["name"], "requests");
    assert_eq!(too_many.body["details"][0]["location"], "body");
}

#[tokio::test]
async fn the_permissions_endpoint_is_announced_and_answers_in_kintos_shape() {
    let server = Server::start_with(|s| s.experimental_permissions_endpoint = true).await;
    let hello = server.get("/v1/", None).await;
    assert!(hello.body["capabilities"]["permissions_endpoint"].is_object());
    assert!(hello.body["capabilities"]["flush_endpoint"].is_object());
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    server
        .put("/v1/buckets/b/groups/g", Some("alice"), json!({}))
        .await;
    let listed = server.get("/v1/permissions", Some("alice")).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let entries = listed.body["data"].as_array().unwrap();
    let find = |uri: &str| {
        entries
            .iter()
            .find(|e| e["uri"] == uri)
            .unwrap_or_else(|| panic!("{uri} in {entries:?}"))
    };
    let root = find("/");
    assert_eq!(root["resource_name"], "root");
    assert_eq!(
        root["permissions"],
        json!(["bucket:create", "account:create"])
    );
    let bucket = find("/buckets/b");
    assert_eq!(
        (&bucket["id"], &bucket["bucket_id"]),
        (&json!("b"), &json!("b"))
    );
    for implied in [
        "read",
        "read:attributes",
        "collection:create",
        "group:create",
    ] {
        assert!(
            bucket["permissions"]
                .as_array()
                .unwrap()
                .contains(&json!(implied)),
            "{implied} in {bucket}"
        );
    }
    let collection = find("/buckets/b/collections/c");
    assert_eq!(collection["collection_id"], "c");
    assert!(
        collection["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("record:create"))
    );
    assert_eq!(find("/buckets/b/groups/g")["group_id"], "g");
    assert_eq!(find("/accounts/alice")["account_id"], "alice");
    let filtered = server
        .get(
            "/v1/permissions?exclude_resource_name=root,group,account",
            Some("alice"),
        )
        .await;
    let names: Vec<&Value> = filtered.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource_name"])
        .collect();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|n| *n == "bucket" || *n == "collection"),
        "{names:?}"
    );
}

#[tokio::test]
async fn attachments_take_permissions_and_leave_null_when_deleted() {
    let server = Server::start().await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    let record = "/v1/buckets/b/collections/c/records/r";
    let form = reqwest::multipart::Form::new()
        .part(
            "attachment",
            reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("hello.txt"),
        )
        .text("data", r#"{"title": "greeting"}"#)
        .text("permissions", r#"{"read": ["system.Everyone"]}"#);
    let uploaded = server
        .http
        .post(format!("{}{record}/attachment", server.url))
        .basic_auth("alice", Some("alice-password"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    assert_eq!(uploaded.headers()["location"], record);
    let public = server.get(record, None).await;
    assert_eq!(public.status, 200, "the permissions part applies");
    assert_eq!(public.body["data"]["title"], "greeting");
    assert_eq!(public.body["data"]["attachment"]["size"], 5);
    for _ in 0..2 {
        let deleted = server
            .call(
                Method::DELETE,
                &format!("{record}/attachment"),
                Some("alice"),
                None,
                &[],
            )
            .await;
        assert_eq!(deleted.status, 204);
        let after = server.get(record, Some("alice")).await;
        assert_eq!(after.body["data"]["attachment"], Value::Null);
        assert!(
            after.body["data"]
                .as_object()
                .unwrap()
                .contains_key("attachment")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_the_same_credentials_check_the_password_once() {
    let server = Server::start().await;
    server.account("alice").await;
    assert_eq!(server.state.auth_cache.checks(), 0);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url) = (server.http.clone(), server.url.clone());
        requests.spawn(async move {
            let reply = http
                .get(format!("{url}/v1/"))
                .basic_auth("alice", Some("alice-password"))
                .send()
                .await
                .unwrap();
            reply.json::<Value>().await.unwrap()
        });
    }
    while let Some(body) = requests.join_next().await {
        assert_eq!(body.unwrap()["user"]["id"], "account:alice");
    }
    assert_eq!(server.state.auth_cache.checks(), 1);
    // A wrong password is checked (and refused) but never remembered.
    let wrong = server
        .http
        .get(format!("{}/v1/", server.url))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    let body: Value = wrong.json().await.unwrap();
    assert!(body.get("user").is_none());
    assert_eq!(server.state.auth_cache.checks(), 2);
    server.get("/v1/", Some("alice")).await;
    assert_eq!(server.state.auth_cache.checks(), 2);
}

#[tokio::test]
async fn a_cached_list_is_never_served_after_its_list_changed() {
    let server = Server::start().await;
    server.account("alice").await;
    server
        .put(
            "/v1/buckets/b",
            Some("alice"),
            json!({"permissions": {"read": ["system.Everyone"]}}),
        )
        .await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    let path = "/v1/buckets/b/collections/c/records";
    server
        .put(
            &format!("{path}/r1"),
            Some("alice"),
            json!({"data": {"n": 1}}),
        )
        .await;
    let first = server.get(path, None).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(server.get(path, None).await.body, first.body);
    // A write straight to the store, as another process sharing the database makes it.
    let write = settings_store::Write {
        kind: settings_store::Kind::Record,
        parent: "/buckets/b/collections/c".into(),
        id: "r2".into(),
        data: json!({"n": 2}).as_object().unwrap().clone(),
        permissions: None,
        precondition: settings_store::Precondition::None,
        forced_timestamp: None,
    };
    server.state.store.put(write).await.unwrap();
    let second = server.get(path, None).await;
    let ids: Vec<&str> = second.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r2", "r1"]);
    assert!(second.etag() > first.etag());
    // Those who see only part of a list are never answered from the whole list's body.
    server
        .call(
            Method::PATCH,
            "/v1/buckets/b",
            Some("alice"),
            Some(json!({"permissions": {"read": []}})),
            &[],
        )
        .await;
    server.get(path, None).await.assert_error(401, 104);
}
