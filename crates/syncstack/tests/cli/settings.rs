//! Remote Settings in `syncstack serve`: the Kinto API under /v1, configured with Kinto's
//! setting names.

use serde_json::{Value, json};

use crate::process::Node;

#[tokio::test]
async fn the_kinto_api_is_served_and_configured_by_kinto_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(
        dir.path(),
        &[],
        &[
            ("SYNCSTACK_SETTINGS_PAGINATE_BY", "2"),
            // Principals as Kinto operators write them.
            (
                "SYNCSTACK_SETTINGS_ACCOUNT_CREATE_PRINCIPALS",
                "system.Everyone",
            ),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("{}/v1", server.url);
    let put = |path: &str, body: Value| {
        http.put(format!("{base}{path}"))
            .basic_auth("ops", Some("long password"))
            .json(&body)
            .send()
    };
    let account = http
        .put(format!("{base}/accounts/ops"))
        .json(&json!({"data": {"password": "long password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 201);
    assert_eq!(put("/buckets/main", json!({})).await.unwrap().status(), 201);
    let collection = json!({"permissions": {"read": ["system.Everyone"]}});
    assert_eq!(
        put("/buckets/main/collections/cfr", collection)
            .await
            .unwrap()
            .status(),
        201
    );
    for i in 0..3 {
        let record = put(
            &format!("/buckets/main/collections/cfr/records/r{i}"),
            json!({"data": {"n": i}}),
        )
        .await
        .unwrap();
        assert_eq!(record.status(), 201);
    }
    let page = http
        .get(format!("{base}/buckets/main/collections/cfr/records"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers().contains_key("next-page"),
        "paginate_by from SYNCSTACK_SETTINGS_PAGINATE_BY"
    );
    let body: Value = page.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let hello: Value = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hello["http_api_version"], "1.23");
    // Beside the other services, an unknown path under /v1 still gets Kinto's 404.
    let unknown = http.get(format!("{base}/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["errno"], 111);
    server.stop().await;
}

/// `settings pki init` writes keys that `serve` signs with; the printed pin verifies what
/// clients fetch; a renewed certificate is used after a restart, under the same root.
#[tokio::test]
async fn pki_init_keys_sign_what_serve_publishes() {
    use std::os::unix::fs::PermissionsExt;

    use crate::process::run_syncstack;

    const NAME: &str = "remote-settings.content-signature.mozilla.org";
    let dir = tempfile::tempdir().unwrap();
    let init = run_syncstack(
        dir.path(),
        &["settings", "pki", "init", "--days", "30"],
        &[],
    );
    assert!(init.status.success(), "{init:?}");
    let stdout = String::from_utf8(init.stdout).unwrap();
    let pin = stdout.lines().last().unwrap().trim().to_owned();
    let pin_bytes = content_signature::fingerprint::parse(&pin)
        .unwrap_or_else(|_| panic!("the last line is the pin:\n{stdout}"));
    let signer_dir = dir.path().join("syncstack-data/signer");
    for (file, mode) in [
        ("root.pem", 0o644),
        ("intermediate.pem", 0o644),
        ("intermediate-key.pem", 0o600),
        ("signer.pem", 0o644),
        ("signer-key.pem", 0o600),
        ("chain.pem", 0o644),
    ] {
        let metadata = std::fs::metadata(signer_dir.join(file)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, mode, "{file}");
    }
    let again = run_syncstack(dir.path(), &["settings", "pki", "init"], &[]);
    assert!(
        !again.status.success(),
        "a second init would replace the pinned root"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("pki renew"));

    let server = Node::start_in(dir.path(), &["--services", "settings"], &[]).await;
    let http = reqwest::Client::new();
    let base = format!("{}/v1", server.url);
    let send = |method: reqwest::Method, path: &str, user: Option<&str>, body: Value| {
        let mut request = http.request(method, format!("{base}{path}")).json(&body);
        if let Some(user) = user {
            request = request.basic_auth(user, Some(format!("{user} password")));
        }
        request.send()
    };
    for user in ["admin", "editor", "reviewer"] {
        let body = json!({"data": {"password": format!("{user} password")}});
        let reply = send(
            reqwest::Method::PUT,
            &format!("/accounts/{user}"),
            None,
            body,
        );
        assert_eq!(reply.await.unwrap().status(), 201);
    }
    let source = "/buckets/main-workspace/collections/cfr";
    let steps = [
        ("PUT", "/buckets/main-workspace", "admin", json!({})),
        ("PUT", source, "admin", json!({})),
        (
            "PATCH",
            "/buckets/main-workspace/groups/cfr-editors",
            "admin",
            json!({"data": {"members": ["account:editor"]}}),
        ),
        (
            "PATCH",
            "/buckets/main-workspace/groups/cfr-reviewers",
            "admin",
            json!({"data": {"members": ["account:reviewer"]}}),
        ),
        (
            "PUT",
            "/buckets/main-workspace/collections/cfr/records/r1",
            "editor",
            json!({"data": {"title": "hello"}}),
        ),
        (
            "PATCH",
            source,
            "editor",
            json!({"data": {"status": "to-review"}}),
        ),
        (
            "PATCH",
            source,
            "reviewer",
            json!({"data": {"status": "to-sign"}}),
        ),
    ];
    for (method, path, user, body) in steps {
        let reply = send(method.parse().unwrap(), path, Some(user), body)
            .await
            .unwrap();
        assert!(
            reply.status().is_success(),
            "{method} {path}: {:?}",
            reply.text().await
        );
    }

    // What an anonymous client fetches verifies against the printed pin.
    let verify = |changeset: Value| {
        let http = http.clone();
        async move {
            let signature = &changeset["metadata"]["signature"];
            let x5u = signature["x5u"].as_str().unwrap().to_owned();
            let chain = http.get(&x5u).send().await.unwrap().text().await.unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            content_signature::verify(
                changeset["changes"].as_array().unwrap(),
                changeset["timestamp"].as_u64().unwrap(),
                signature["signature"].as_str().unwrap(),
                &chain,
                &pin_bytes,
                NAME,
                now,
            )
            .unwrap();
            x5u
        }
    };
    let changeset = |http: reqwest::Client, url: String| async move {
        http.get(format!(
            "{url}/v1/buckets/main/collections/cfr/changeset?_expected=0"
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
    };
    let published = changeset(http.clone(), server.url.clone()).await;
    assert_eq!(published["changes"][0]["title"], "hello");
    let first_x5u = verify(published).await;
    assert!(
        first_x5u.starts_with(&format!("{}/v1/__certs__/", server.url)),
        "{first_x5u}"
    );
    let hello: Value = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        hello["capabilities"]["signer"]["plugin_userid"],
        "plugin:remote-settings"
    );
    server.stop().await;

    // A renewed signer: after a restart, everything is signed with it, same root.
    let renew = run_syncstack(
        dir.path(),
        &["settings", "pki", "renew", "--days", "60"],
        &[],
    );
    assert!(renew.status.success(), "{renew:?}");
    let server = Node::start_in(dir.path(), &["--services", "settings"], &[]).await;
    let renewed = changeset(http.clone(), server.url.clone()).await;
    let renewed_x5u = renewed["metadata"]["signature"]["x5u"].as_str().unwrap();
    assert_ne!(
        renewed_x5u.rsplit('/').next(),
        first_x5u.rsplit('/').next(),
        "re-signed at start with the renewed certificate"
    );
    verify(renewed).await;
    server.stop().await;
}
