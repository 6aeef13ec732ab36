//! The Kinto-compatible API over a real socket.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use settings_server::{KintoSettings, SettingsState};

pub(crate) use crate::reply::Reply;
use crate::reply::send;

pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    /// The server's state (its caches, for tests that look inside).
    pub(crate) state: SettingsState,
    _dir: tempfile::TempDir,
    _schema: Option<postgres_support::TestSchema>,
}

impl Server {
    pub(crate) async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(configure: impl FnOnce(&mut KintoSettings)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (store, schema) = crate::test_store(dir.path()).await;
        let mut settings = KintoSettings {
            flush_endpoint_enabled: true,
            attachment_base_path: Some(dir.path().join("attachments").display().to_string()),
            ..KintoSettings::default()
        };
        configure(&mut settings);
        let state = SettingsState::new(store, settings);
        let served = state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, settings_server::router(served)).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Server {
            url,
            http,
            state,
            _dir: dir,
            _schema: schema,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        send(&self.http, &self.url, method, path, user, body, headers).await
    }

    pub(crate) async fn get(&self, path: &str, user: Option<&str>) -> Reply {
        self.call(Method::GET, path, user, None, &[]).await
    }

    pub(crate) async fn put(&self, path: &str, user: Option<&str>, body: Value) -> Reply {
        self.call(Method::PUT, path, user, Some(body), &[]).await
    }

    /// Creates an account `name` (password `<name>-password`).
    pub(crate) async fn account(&self, name: &str) {
        let reply = self
            .put(
                &format!("/v1/accounts/{name}"),
                None,
                json!({"data": {"password": format!("{name}-password")}}),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
}

impl Reply {
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, errno: u64) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.body);
        assert_eq!(self.body["code"], status);
        assert_eq!(self.body["errno"], errno, "{:?}", self.body);
        assert!(self.body["error"].is_string() && self.body["message"].is_string());
    }

    pub(crate) fn etag(&self) -> i64 {
        self.headers["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap()
    }
}

#[tokio::test]
async fn root_endpoint_and_redirect() {
    let server = Server::start().await;
    let hello = server.get("/v1/", None).await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.body["http_api_version"], "1.23");
    assert!(hello.body["capabilities"]["accounts"].is_object());
    assert!(hello.body.get("user").is_none());
    server.account("alice").await;
    let hello = server.get("/v1/", Some("alice")).await;
    assert_eq!(hello.body["user"]["id"], "account:alice");
    let redirect = server.get("/buckets?x=1", None).await;
    assert_eq!(redirect.status, 307);
    assert_eq!(redirect.headers["location"], "/v1/buckets?x=1");
    assert_eq!(server.get("/v1/__heartbeat__", None).await.status, 200);
    assert_eq!(server.get("/v1/__lbheartbeat__", None).await.status, 200);
}

#[tokio::test]
async fn accounts_and_authentication() {
    let server = Server::start().await;
    server.account("alice").await;
    let me = server.get("/v1/accounts/alice", Some("alice")).await;
    assert_eq!(me.status, 200);
    assert!(
        me.body["data"].get("password").is_none(),
        "the hash is never shown"
    );
    let wrong = server
        .http
        .get(format!("{}/v1/accounts/alice", server.url))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    // As in Kinto, credentials that do not authenticate make an anonymous caller, who is
    // asked to authenticate (104, with a challenge) where that is not enough.
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"Realm\"");
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["errno"], 104);
    server.account("bob").await;
    server
        .get("/v1/accounts/alice", Some("bob"))
        .await
        .assert_error(403, 121);
    let missing_password = server
        .put("/v1/accounts/carol", None, json!({"data": {}}))
        .await;
    missing_password.assert_error(400, 107);
}

#[tokio::test]
async fn patching_an_account_keeps_or_replaces_its_password() {
    let server = Server::start().await;
    server.account("alice").await;
    let as_alice = |password: &str, body: Option<Value>| {
        let mut request = server
            .http
            .request(
                if body.is_some() {
                    Method::PATCH
                } else {
                    Method::GET
                },
                format!("{}/v1/accounts/alice", server.url),
            )
            .basic_auth("alice", Some(password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let renamed = as_alice("alice-password", Some(json!({"data": {"nickname": "A"}})))
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    // Without a new password the stored hash is kept as it was.
    assert_eq!(
        as_alice("alice-password", None).await.unwrap().status(),
        200
    );
    let changed = as_alice(
        "alice-password",
        Some(json!({"data": {"password": "new-pw"}})),
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(
        as_alice("alice-password", None).await.unwrap().status(),
        401
    );
    assert_eq!(as_alice("new-pw", None).await.unwrap().status(), 200);
}

#[tokio::test]
async fn buckets_collections_records_and_permissions() {
    let server = Server::start().await;
    server.account("alice").await;
    server.account("bob").await;
    server
        .put("/v1/buckets/b", None, json!({}))
        .await
        .assert_error(401, 104);
    let bucket = server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    assert_eq!(bucket.status, 201);
    assert!(
        bucket.body["permissions"]["write"]
            .as_array()
            .unwrap()
            .contains(&json!("account:alice"))
    );
    assert_eq!(
        server
            .put(
                "/v1/buckets/b/collections/c",
                Some("alice"),
                json!({"data": {"x": 1}})
            )
            .await
            .status,
        201
    );
    let record = server
        .put(
            "/v1/buckets/b/collections/c/records/r1",
            Some("alice"),
            json!({"data": {"title": "one"}}),
        )
        .await;
    assert_eq!(record.status, 201);
    assert_eq!(record.body["data"]["title"], "one");
    assert_eq!(record.body["data"]["id"], "r1");
    // Bob can see nothing, and does not learn what exists.
    server
        .get("/v1/buckets/b/collections/c/records/r1", Some("bob"))
        .await
        .assert_error(403, 121);
    server
        .get("/v1/buckets/b/collections/c/records/nope", Some("bob"))
        .await
        .assert_error(403, 121);
    server
        .get("/v1/buckets/b/collections/c/records/nope", Some("alice"))
        .await
        .assert_error(404, 110);
    // Share the collection for reading with everyone.
    let shared = server
        .call(
            Method::PATCH,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            Some(json!({"permissions": {"read": ["system.Everyone"]}})),
            &[],
        )
        .await;
    assert_eq!(shared.status, 200, "{:?}", shared.body);
    assert_eq!(
        server
            .get("/v1/buckets/b/collections/c/records/r1", None)
            .await
            .status,
        200
    );
    server
        .put(
            "/v1/buckets/b/collections/c/records/r2",
            Some("bob"),
            json!({}),
        )
        .await
        .assert_error(403, 121);
    // record:create lets bob add records but not change alice's.
    server
        .call(
            Method::PATCH,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            Some(json!({"permissions": {"record:create": ["account:bob"]}})),
            &[],
        )
        .await;
    assert_eq!(
        server
            .put(
                "/v1/buckets/b/collections/c/records/r2",
                Some("bob"),
                json!({"data": {}})
            )
            .await
            .status,
        201
    );
    server
        .put(
            "/v1/buckets/b/collections/c/records/r1",
            Some("bob"),
            json!({"data": {}}),
        )
        .await
        .assert_error(403, 121);
    // A parent that does not exist.
    server
        .put(
            "/v1/buckets/b/collections/missing/records/r",
            Some("alice"),
            json!({}),
        )
        .await
        .assert_error(404, 110);
}

#[tokio::test]
async fn post_patch_delete_and_tombstones() {
    let server = Server::start().await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    let path = "/v1/buckets/b/collections/c/records";
    let created = server
        .call(
            Method::POST,
            path,
            Some("alice"),
            Some(json!({"data": {"n": 1}})),
            &[],
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    let again = server
        .call(
            Method::POST,
            path,
            Some("alice"),
            Some(json!({"data": {"id": id, "n": 2}})),
            &[],
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), &again.body["data"]["n"]),
        (200, &json!(1)),
        "POST of an existing id answers it"
    );
    let object = format!("{path}/{id}");
    let patched = server
        .call(
            Method::PATCH,
            &object,
            Some("alice"),
            Some(json!({"data": {"extra": {"a": 1, "b": 2}}})),
            &[],
        )
        .await;
    assert_eq!(
        patched.body["data"],
        json!({"id": id, "last_modified": patched.body["data"]["last_modified"], "n": 1, "extra": {"a": 1, "b": 2}})
    );
    let merged = server
        .call(
            Method::PATCH,
            &object,
            Some("alice"),
            Some(json!({"data": {"extra": {"a": null}}})),
            &[("content-type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(merged.body["data"]["extra"], json!({"b": 2}));
    let before_delete = server.get(path, Some("alice")).await.etag();
    let deleted = server
        .call(Method::DELETE, &object, Some("alice"), None, &[])
        .await;
    assert_eq!(deleted.body["data"]["deleted"], true);
    server
        .get(&object, Some("alice"))
        .await
        .assert_error(404, 110);
    let since = server
        .get(&format!("{path}?_since={before_delete}"), Some("alice"))
        .await;
    assert_eq!(
        since.body["data"],
        json!([{"id": id, "last_modified": deleted.body["data"]["last_modified"], "deleted": true}])
    );
    assert!(
        server.get(path, Some("alice")).await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn conditional_requests() {
    let server = Server::start().await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    let created = server
        .put(
            "/v1/buckets/b/collections/c",
            Some("alice"),
            json!({"data": {"v": 1}}),
        )
        .await;
    let ts = created.etag();
    let quoted = format!("\"{ts}\"");
    let unchanged = server
        .call(
            Method::GET,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            None,
            &[("if-none-match", &quoted)],
        )
        .await;
    assert_eq!(unchanged.status, 304);
    let stale = format!("\"{}\"", ts - 1);
    let refused = server
        .call(
            Method::PUT,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            Some(json!({"data": {"v": 2}})),
            &[("if-match", &stale)],
        )
        .await;
    refused.assert_error(412, 114);
    assert_eq!(refused.body["details"]["existing"]["v"], 1);
    let accepted = server
        .call(
            Method::PUT,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            Some(json!({"data": {"v": 2}})),
            &[("if-match", &quoted)],
        )
        .await;
    assert_eq!(accepted.status, 200);
    let exists = server
        .call(
            Method::PUT,
            "/v1/buckets/b/collections/c",
            Some("alice"),
            Some(json!({})),
            &[("if-none-match", "*")],
        )
        .await;
    exists.assert_error(412, 114);
}

#[tokio::test]
async fn lists_filter_sort_and_paginate() {
    let server = Server::start_with(|s| s.paginate_by = Some(2)).await;
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    for i in 0..5 {
        server
            .put(
                &format!("/v1/buckets/b/collections/c/records/r{i}"),
                Some("alice"),
                json!({"data": {"n": i, "even": i % 2 == 0}}),
            )
            .await;
    }
    let path = "/v1/buckets/b/collections/c/records";
    let first = server.get(&format!("{path}?_sort=n"), Some("alice")).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let mut seen: Vec<Value> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].clone())
        .collect();
    let mut next = first
        .headers
        .get("next-page")
        .map(|v| v.to_str().unwrap().to_owned());
    while let Some(url) = next {
        let page = server
            .http
            .get(&url)
            .basic_auth("alice", Some("alice-password"))
            .send()
            .await
            .unwrap();
        let headers = page.headers().clone();
        let body: Value = page.json().await.unwrap();
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["n"].clone()),
        );
        next = headers
            .get("next-page")
            .map(|v| v.to_str().unwrap().to_owned());
    }
    assert_eq!(seen, [json!(0), json!(1), json!(2), json!(3), json!(4)]);
    let filtered = server
        .get(
            &format!("{path}?even=true&min_n=2&_sort=-n&_fields=n"),
            Some("alice"),
        )
        .await;
    let ns: Vec<Value> = filtered.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].clone())
        .collect();
    assert_eq!(ns, [json!(4), json!(2)]);
    assert!(filtered.body["data"][0].get("even").is_none());
    let head = server
        .call(
            Method::HEAD,
            &format!("{path}?even=false"),
            Some("alice"),
            None,
            &[],
        )
        .await;
    assert_eq!(head.headers["total-objects"], "2");
    server
        .get(&format!("{path}?_limit=x"), Some("alice"))
        .await
        .assert_error(400, 107);
    let unchanged = server
        .call(
            Method::GET,
            path,
            Some("alice"),
            None,
            &[("if-none-match", &format!("\"{}\"", first.etag()))],
        )
        .await;
    assert_eq!(unchanged.status, 304);
}

#[tokio::test]
async fn bad_input_gets_kinto_errors() {
    let server = Server::start().await;
    server.account("alice").await;
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
    assert_eq!(not_json.json::<Value>().await.unwrap()["errno"], 107);
    server
        .put("/v1/buckets/b", Some("alice"), json!({"data": []}))
        .await
        .assert_error(400, 107);
    server
        .put("/v1/buckets/b", Some("alice"), json!({"unknown": 1}))
        .await
        .assert_error(400, 107);
    server
        .put("/v1/buckets/-bad", Some("alice"), json!({}))
        .await
        .assert_error(404, 110);
    server
        .put(
            "/v1/buckets/b",
            Some("alice"),
            json!({"permissions": {"delete": ["x"]}}),
        )
        .await
        .assert_error(400, 107);
    assert!(
        server.get("/v1/buckets", Some("alice")).await.body["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn deleting_a_bucket_deletes_everything_in_it() {
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
            json!({}),
        )
        .await;
    assert_eq!(
        server
            .call(Method::DELETE, "/v1/buckets/b", Some("alice"), None, &[])
            .await
            .status,
        200
    );
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .get("/v1/buckets/b/collections/c", Some("alice"))
        .await
        .assert_error(404, 110);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_strictly_increasing_timestamps() {
    let server = Arc::new(Server::start().await);
    server.account("alice").await;
    server.put("/v1/buckets/b", Some("alice"), json!({})).await;
    server
        .put("/v1/buckets/b/collections/c", Some("alice"), json!({}))
        .await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let reply = server
                .put(
                    &format!("/v1/buckets/b/collections/c/records/r{i}"),
                    Some("alice"),
                    json!({"data": {}}),
                )
                .await;
            assert!(reply.status.is_success(), "{:?}", reply.body);
            reply.body["data"]["last_modified"].as_i64().unwrap()
        }));
    }
    let mut stamps = Vec::new();
    for task in tasks {
        stamps.push(task.await.unwrap());
    }
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 30, "every write got its own timestamp");
}

#[tokio::test]
async fn flush_only_when_enabled() {
    let server = Server::start().await;
    server.account("alice").await;
    assert_eq!(
        server
            .call(Method::POST, "/v1/__flush__", None, None, &[])
            .await
            .status,
        202
    );
    let off = Server::start_with(|s| s.flush_endpoint_enabled = false).await;
    off.call(Method::POST, "/v1/__flush__", None, None, &[])
        .await
        .assert_error(404, 111);
}

/// A bucket `main` with a publicly readable collection `cfr` holding records r0..r{n}.
async fn published(server: &Server, n: usize) -> Vec<i64> {
    server.account("editor").await;
    server
        .put("/v1/buckets/main", Some("editor"), json!({}))
        .await;
    server
        .put(
            "/v1/buckets/main/collections/cfr",
            Some("editor"),
            json!({"permissions": {"read": ["system.Everyone"]}}),
        )
        .await;
    let mut stamps = Vec::new();
    for i in 0..n {
        let reply = server
            .put(
                &format!("/v1/buckets/main/collections/cfr/records/r{i}"),
                Some("editor"),
                json!({"data": {"n": i}}),
            )
            .await;
        stamps.push(reply.body["data"]["last_modified"].as_i64().unwrap());
    }
    stamps
}

#[tokio::test]
async fn monitor_changes_lists_collections_by_records_timestamp() {
    let server = Server::start().await;
    let stamps = published(&server, 3).await;
    server
        .put(
            "/v1/buckets/main/collections/empty",
            Some("editor"),
            json!({}),
        )
        .await;
    let path = "/v1/buckets/monitor/collections/changes/changeset?_expected=0";
    let monitor = server.get(path, None).await;
    assert_eq!(monitor.status, 200);
    assert_eq!(monitor.body["metadata"]["bucket"], "monitor");
    assert_eq!(monitor.body["timestamp"], stamps[2]);
    let first = &monitor.body["changes"][0];
    assert_eq!(
        (first["bucket"].as_str(), first["collection"].as_str()),
        (Some("main"), Some("cfr"))
    );
    assert_eq!(first["last_modified"], stamps[2]);
    // A collection anonymous callers cannot read is not disclosed.
    assert_eq!(monitor.body["changes"].as_array().unwrap().len(), 1);
    assert_eq!(monitor.headers["cache-control"], "max-age=60");
    let long = server
        .get(
            &format!(
                "/v1/buckets/monitor/collections/changes/changeset?_expected={}",
                stamps[2]
            ),
            None,
        )
        .await;
    assert_eq!(long.headers["cache-control"], "max-age=3600");
    let since = server
        .get(&format!("{path}&_since={}", stamps[2]), None)
        .await;
    assert!(
        since.body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["collection"] != "cfr")
    );

    // The cached body is dropped by a write.
    let newer = server
        .put(
            "/v1/buckets/main/collections/cfr/records/new",
            Some("editor"),
            json!({"data": {}}),
        )
        .await;
    let after = server.get(path, None).await;
    assert_eq!(after.body["timestamp"], newer.body["data"]["last_modified"]);
}

#[tokio::test]
async fn monitor_changes_guards_as_the_reference() {
    let server = Server::start().await;
    published(&server, 1).await;
    let base = "/v1/buckets/monitor/collections/changes/changeset";
    let quoted = server
        .get(&format!("{base}?_expected=%22123%22"), None)
        .await;
    assert_eq!(quoted.status, 307);
    assert!(
        quoted.headers["location"]
            .to_str()
            .unwrap()
            .contains("_expected=123")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let behind = server
        .get(&format!("{base}?_expected=5&_since={now}"), None)
        .await;
    assert_eq!(behind.status, 204);
    let old = server
        .get(&format!("{base}?_expected=0&_since=1000"), None)
        .await;
    assert_eq!(old.status, 307);
    assert!(!old.headers["location"].to_str().unwrap().contains("_since"));
}

#[tokio::test]
async fn collection_changesets() {
    let server = Server::start().await;
    let stamps = published(&server, 3).await;
    let base = "/v1/buckets/main/collections/cfr/changeset";
    server.get(base, None).await.assert_error(400, 107);
    let full = server.get(&format!("{base}?_expected=0"), None).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body["metadata"]["bucket"], "main");
    assert_eq!(full.body["metadata"]["id"], "cfr");
    assert_eq!(full.body["timestamp"], stamps[2]);
    let ids: Vec<&str> = full.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r2", "r1", "r0"]);
    assert!(full.headers.contains_key("last-modified"));

    let deleted = server
        .call(
            Method::DELETE,
            "/v1/buckets/main/collections/cfr/records/r1",
            Some("editor"),
            None,
            &[],
        )
        .await;
    let since = server
        .get(
            &format!("{base}?_expected=1&_since=\"{}\"", stamps[2]),
            None,
        )
        .await;
    assert_eq!(
        since.body["changes"],
        json!([{"id": "r1", "last_modified": deleted.body["data"]["last_modified"], "deleted": true}])
    );
    assert_eq!(
        since.body["timestamp"],
        deleted.body["data"]["last_modified"]
    );
    let live = server.get(&format!("{base}?_expected=2"), None).await;
    assert_eq!(
        live.body["changes"].as_array().unwrap().len(),
        2,
        "without _since, tombstones are left out"
    );

    server
        .put(
            "/v1/buckets/main/collections/private",
            Some("editor"),
            json!({}),
        )
        .await;
    server
        .get(
            "/v1/buckets/main/collections/private/changeset?_expected=0",
            None,
        )
        .await
        .assert_error(401, 104);
    server
        .get(
            "/v1/buckets/main/collections/nope/changeset?_expected=0",
            Some("editor"),
        )
        .await
        .assert_error(404, 110);
}

#[tokio::test]
async fn batch_runs_each_request_with_the_batch_credentials() {
    let server = Server::start().await;
    server.account("alice").await;
    let batch = json!({
        "defaults": {"method": "PUT"},
        "requests": [
            {"path": "/buckets/b"},
            {"path": "/v1/buckets/b/collections/c", "body": {"data": {"x": 1}}},
            {"path": "/buckets/b/collections/c/records/r", "body": {"data": {"n": 1}}},
            {"method": "GET", "path": "/buckets/b/collections/c/records/r"},
            {"method": "GET", "path": "/buckets/b/collections/c/records/missing"},
        ]
    });
    let reply = server
        .call(Method::POST, "/v1/batch", Some("alice"), Some(batch), &[])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let statuses: Vec<u64> = reply.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 201, 200, 404]);
    assert_eq!(reply.body["responses"][3]["body"]["data"]["n"], 1);
    assert_eq!(reply.body["responses"][0]["path"], "/v1/buckets/b");
    // Anonymous batches act anonymously.
    let anonymous = server
        .call(
            Method::POST,
            "/v1/batch",
            None,
            Some(json!({"requests": [{"method": "PUT", "path": "/buckets/z"}]})),
            &[],
        )
        .await;
    assert_eq!(anonymous.body["responses"][0]["status"], 401);
    let too_many = json!({"requests": (0..26).map(|i| json!({"path": format!("/buckets/b{i}")})).collect::<Vec<_>>()});
    server
        .call(
            Method::POST,
            "/v1/batch",
            Some("alice"),
            Some(too_many),
            &[],
        )
        .await
        .assert_error(400, 107);
}

#[tokio::test]
async fn json_patch_edits_data_and_permissions() {
    let server = Server::start_with(|s| s.experimental_permissions_endpoint = true).await;
    server.account("alice").await;
    server
        .put(
            "/v1/buckets/b",
            Some("alice"),
            json!({"data": {"tags": ["a"]}}),
        )
        .await;
    let patch = json!([
        {"op": "add", "path": "/data/tags/-", "value": "b"},
        {"op": "add", "path": "/permissions/read", "value": {}},
        {"op": "add", "path": "/permissions/read/system.Everyone", "value": true}
    ]);
    let reply = server
        .call(
            Method::PATCH,
            "/v1/buckets/b",
            Some("alice"),
            Some(patch),
            &[("content-type", "application/json-patch+json")],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["data"]["tags"], json!(["a", "b"]));
    assert_eq!(
        server.get("/v1/buckets/b", None).await.status,
        200,
        "now publicly readable"
    );
    let broken = json!([{"op": "remove", "path": "/data/nothing"}]);
    server
        .call(
            Method::PATCH,
            "/v1/buckets/b",
            Some("alice"),
            Some(broken),
            &[("content-type", "application/json-patch+json")],
        )
        .await
        .assert_error(400, 107);
    let listed = server.get("/v1/permissions", Some("alice")).await;
    let entry = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["uri"] == "/buckets/b")
        .cloned()
        .unwrap();
    assert_eq!(
        (entry["resource_name"].as_str(), entry["id"].as_str()),
        (Some("bucket"), Some("b"))
    );
    assert!(
        entry["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("write"))
    );
    let off = Server::start().await;
    off.get("/v1/permissions", None)
        .await
        .assert_error(404, 111);
}

#[tokio::test]
async fn attachments_are_stored_described_served_and_deleted() {
    let server = Server::start_with(|s| s.attachment_keep_old_files = false).await;
    published(&server, 0).await;
    let upload = |id: &str, content: &'static [u8], data: Option<&str>| {
        let mut form = reqwest::multipart::Form::new().part(
            "attachment",
            reqwest::multipart::Part::bytes(content)
                .file_name("logo.PNG")
                .mime_str("image/png")
                .unwrap(),
        );
        if let Some(data) = data {
            form = form.text("data", data.to_owned());
        }
        server
            .http
            .post(format!(
                "{}/v1/buckets/main/collections/cfr/records/{id}/attachment",
                server.url
            ))
            .basic_auth("editor", Some("editor-password"))
            .multipart(form)
            .send()
    };
    let reply = upload("r1", b"first file", Some(r#"{"title": "with a file"}"#))
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let info: Value = reply.json().await.unwrap();
    assert_eq!(info["size"], 10);
    assert_eq!(info["mimetype"], "image/png");
    assert_eq!(info["filename"], "logo.PNG");
    assert_eq!(info["hash"].as_str().unwrap().len(), 64);
    let record = server
        .get("/v1/buckets/main/collections/cfr/records/r1", None)
        .await;
    assert_eq!(record.body["data"]["title"], "with a file");
    assert_eq!(record.body["data"]["attachment"], info);
    let hello = server.get("/v1/", None).await;
    let base = hello.body["capabilities"]["attachments"]["base_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = reqwest::get(format!("{base}{}", info["location"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.unwrap();
    assert_eq!(&bytes[..], b"first file");
    use sha2::Digest;
    assert_eq!(info["hash"], hex::encode(sha2::Sha256::digest(&bytes)));

    // Without keep_old_files, replacing the file deletes the old one, and deleting the
    // record deletes the file.
    let second: Value = upload("r1", b"second", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reqwest::get(format!("{base}{}", info["location"].as_str().unwrap()))
            .await
            .unwrap()
            .status(),
        404
    );
    server
        .call(
            Method::DELETE,
            "/v1/buckets/main/collections/cfr/records/r1",
            Some("editor"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        reqwest::get(format!("{base}{}", second["location"].as_str().unwrap()))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(format!("{}/attachments/../../etc/passwd", server.url))
            .await
            .unwrap()
            .status(),
        404
    );

    // Only writers may upload.
    server.account("stranger").await;
    let refused = server
        .http
        .post(format!(
            "{}/v1/buckets/main/collections/cfr/records/r9/attachment",
            server.url
        ))
        .basic_auth("stranger", Some("stranger-password"))
        .multipart(reqwest::multipart::Form::new().text("attachment", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn attachment_files_are_kept_by_default_for_published_copies() {
    let server = Server::start().await;
    published(&server, 0).await;
    let upload = |content: &'static [u8]| {
        let form = reqwest::multipart::Form::new().part(
            "attachment",
            reqwest::multipart::Part::bytes(content).file_name("a.bin"),
        );
        server
            .http
            .post(format!(
                "{}/v1/buckets/main/collections/cfr/records/r1/attachment",
                server.url
            ))
            .basic_auth("editor", Some("editor-password"))
            .multipart(form)
            .send()
    };
    let first: Value = upload(b"one").await.unwrap().json().await.unwrap();
    upload(b"two").await.unwrap();
    server
        .call(
            Method::DELETE,
            "/v1/buckets/main/collections/cfr/records/r1",
            Some("editor"),
            None,
            &[],
        )
        .await;
    let old = reqwest::get(format!(
        "{}/attachments/{}",
        server.url,
        first["location"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(old.status(), 200);
    assert_eq!(&old.bytes().await.unwrap()[..], b"one");
}

#[tokio::test]
async fn backoff_is_sent_on_every_answer_while_configured() {
    let quiet = Server::start().await;
    assert!(
        quiet
            .get("/v1/", None)
            .await
            .headers
            .get("backoff")
            .is_none()
    );
    let server = Server::start_with(|s| s.backoff = Some(600)).await;
    for path in ["/v1/", "/v1/buckets/nope/collections/c/records"] {
        let reply = server.get(path, None).await;
        assert_eq!(reply.headers["backoff"], "600", "{path}");
    }
}
