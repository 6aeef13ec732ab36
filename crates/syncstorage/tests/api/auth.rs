//! Hawk authentication: tokens, MACs, freshness, nodes, uids and reverse-proxy prefixes.

use reqwest::Method;
use sync_proto::hawk::{self, RequestTarget};
use sync_proto::token::{self, MasterSecret, TokenPayload};
use url::Url;

use crate::common::{SECRET, SyncClient, TestNode, mint};

fn url_of(client: &SyncClient, rest: &str) -> Url {
    Url::parse(&format!("{}{}", client.base, client.path(rest))).unwrap()
}

fn target<'a>(method: &'a str, url: &'a Url, path: &'a str) -> RequestTarget<'a> {
    RequestTarget {
        method,
        path_and_query: path,
        host: url.host_str().unwrap(),
        port: url.port_or_known_default().unwrap(),
    }
}

#[tokio::test]
async fn a_signed_request_is_accepted() {
    let node = TestNode::start().await;
    assert_eq!(node.client(7).get("/info/collections").await.status, 200);
}

#[tokio::test]
async fn missing_or_malformed_credentials_are_401() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let url = url_of(&client, "/info/collections");
    for header in [
        None,
        Some("Basic Zm9vOmJhcg=="),
        Some("Hawk id=\"x\""),
        Some("Hawk garbage"),
    ] {
        let call = client.call(Method::GET, "/info/collections");
        let reply = client.send_to(call, &url, header.map(str::to_owned)).await;
        reply.assert_weave(401, 0);
        assert!(reply.header("x-weave-timestamp").is_some());
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_401() {
    let node = TestNode::start().await;
    let forged = token::mint(
        &MasterSecret::new("not-the-secret"),
        &TokenPayload::new(1, &node.url, 60),
    );
    let client = SyncClient::new(&node.url, 1, forged);
    client.get("/info/collections").await.assert_weave(401, 0);
}

#[tokio::test]
async fn a_wrong_key_fails_the_mac() {
    let node = TestNode::start().await;
    let mut client = node.client(1);
    client.token.key = mint(1, &node.url, 60).key;
    client.get("/info/collections").await.assert_weave(401, 0);
}

#[tokio::test]
async fn a_tampered_request_fails_the_mac() {
    let node = TestNode::start().await;
    let client = node.client(1);
    // Signed for one path, sent to another.
    let signed_for = url_of(&client, "/info/collections");
    let call = client.call(Method::GET, "/info/collections");
    let authorization = client.authorization(&call, &signed_for);
    let other = url_of(&client, "/info/quota");
    let reply = client
        .send_to(
            client.call(Method::GET, "/info/quota"),
            &other,
            Some(authorization),
        )
        .await;
    reply.assert_weave(401, 0);
}

#[tokio::test]
async fn an_expired_token_is_401_except_for_info_collections() {
    let node = TestNode::start().await;
    let mut payload = TokenPayload::new(3, &node.url, 0);
    payload.expires -= 60.0;
    let expired = token::mint(&MasterSecret::new(SECRET), &payload);
    let client = SyncClient::new(&node.url, 3, expired);
    client.get("/info/quota").await.assert_weave(401, 0);
    client.get("/storage/bookmarks").await.assert_weave(401, 0);
    // Mozilla's servers let a recently expired token read info/collections.
    assert_eq!(client.get("/info/collections").await.status, 200);

    let mut payload = TokenPayload::new(3, &node.url, 0);
    payload.expires -= 3.0 * 3600.0;
    let long_expired = token::mint(&MasterSecret::new(SECRET), &payload);
    SyncClient::new(&node.url, 3, long_expired)
        .get("/info/collections")
        .await
        .assert_weave(401, 0);
}

#[tokio::test]
async fn a_token_for_another_node_is_401() {
    let node = TestNode::start().await;
    let other_node = TestNode::start().await;
    let token = mint(5, &other_node.url, 60);
    SyncClient::new(&node.url, 5, token.clone())
        .get("/info/collections")
        .await
        .assert_weave(401, 0);
    assert_eq!(
        SyncClient::new(&other_node.url, 5, token)
            .get("/info/collections")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_token_for_another_user_is_400() {
    let node = TestNode::start().await;
    let mut client = node.client(1);
    client.token = mint(2, &node.url, 60);
    client.get("/info/collections").await.assert_weave(400, 0);
}

#[tokio::test]
async fn a_replayed_request_is_401() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let url = url_of(&client, "/info/collections");
    let authorization = client.authorization(&client.call(Method::GET, "/info/collections"), &url);
    let first = client
        .send_to(
            client.call(Method::GET, "/info/collections"),
            &url,
            Some(authorization.clone()),
        )
        .await;
    assert_eq!(first.status, 200);
    let replay = client
        .send_to(
            client.call(Method::GET, "/info/collections"),
            &url,
            Some(authorization),
        )
        .await;
    replay.assert_weave(401, 0);
}

#[tokio::test]
async fn a_stale_timestamp_is_401_with_the_server_time() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let url = url_of(&client, "/info/collections");
    let path = client.path("/info/collections");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for skew in [-600i64, 600] {
        let ts = (now as i64 + skew) as u64;
        let header = hawk::sign_request_at(
            &client.token.id,
            client.token.key.as_bytes(),
            &target("GET", &url, &path),
            None,
            ts,
        );
        let reply = client
            .send_to(
                client.call(Method::GET, "/info/collections"),
                &url,
                Some(header),
            )
            .await;
        reply.assert_weave(401, 0);
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Hawk ts=\""), "{challenge}");
        let server_ts: u64 = challenge.split('"').nth(1).unwrap().parse().unwrap();
        assert!(server_ts.abs_diff(now) < 60);
        assert!(challenge.contains(&hawk::timestamp_mac(client.token.key.as_bytes(), server_ts)));
    }
    // Within the window (default 120 s) is fine.
    let header = hawk::sign_request_at(
        &client.token.id,
        client.token.key.as_bytes(),
        &target("GET", &url, &path),
        None,
        now - 60,
    );
    let reply = client
        .send_to(
            client.call(Method::GET, "/info/collections"),
            &url,
            Some(header),
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_payload_hash_is_checked_when_sent() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let body = serde_json::json!([{"id": "a", "payload": "x"}]);
    let call = client
        .call(Method::POST, "/storage/forms")
        .json(&body)
        .with_payload_hash();
    assert_eq!(client.send(call).await.status, 200);

    // The hash covers one body, another is sent.
    let url = url_of(&client, "/storage/forms");
    let signed = client
        .call(Method::POST, "/storage/forms")
        .json(&body)
        .with_payload_hash();
    let authorization = client.authorization(&signed, &url);
    let tampered = client
        .call(Method::POST, "/storage/forms")
        .json(&serde_json::json!([{"id": "a", "payload": "evil"}]));
    client
        .send_to(tampered, &url, Some(authorization))
        .await
        .assert_weave(401, 0);
    let stored = client.get("/storage/forms/a").await.json();
    assert_eq!(stored["payload"], "x");
}

#[tokio::test]
async fn info_configuration_needs_no_credentials() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let reply = client
        .send(client.call(Method::GET, "/info/configuration").unsigned())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["max_post_records"], 100);
}

#[tokio::test]
async fn a_non_numeric_uid_is_404() {
    let node = TestNode::start().await;
    let client = node.client(1);
    let url = Url::parse(&format!("{}/1.5/abc/info/collections", node.url)).unwrap();
    let reply = client
        .send_to(client.call(Method::GET, "/info/collections"), &url, None)
        .await;
    reply.assert_weave(404, 0);
}

/// A reverse proxy publishes the node at `http://host:port/sync`. Whether the proxy strips
/// the prefix or forwards it, the MAC the client computed over `/sync/1.5/...` verifies
/// (syncstorage-rs issue #1217).
#[tokio::test]
async fn works_under_a_path_prefix_whether_or_not_the_proxy_strips_it() {
    let node = TestNode::start_at("/sync", |_| {}).await;
    let client = node.client(9);
    let public = url_of(&client, "/storage/prefs");
    assert!(public.path().starts_with("/sync/1.5/9/"));
    let body = serde_json::json!([{"id": "p", "payload": "v"}]);

    // Forwarded as is.
    let call = client.call(Method::POST, "/storage/prefs").json(&body);
    assert_eq!(client.send(call).await.status, 200);

    // Stripped by the proxy: the node sees /1.5/..., the client signed /sync/1.5/....
    let call = client.call(Method::GET, "/storage/prefs?full=1");
    let signed_url = url_of(&client, "/storage/prefs?full=1");
    let authorization = client.authorization(&call, &signed_url);
    let stripped = Url::parse(&format!("http://{}/1.5/9/storage/prefs?full=1", node.addr)).unwrap();
    let reply = client.send_to(call, &stripped, Some(authorization)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()[0]["payload"], "v");
}

/// The proxy forwards to a different port than the public one: the MAC is computed over the
/// public URL's host and port, which is what the client signed.
#[tokio::test]
async fn works_behind_a_proxy_on_another_port() {
    let node = TestNode::start_with(|settings| {
        settings.public_url = Url::parse("https://sync.example.com/").unwrap();
    })
    .await;
    let token = mint(4, "https://sync.example.com", 60);
    let client = SyncClient::new("https://sync.example.com", 4, token);
    let call = client.call(Method::GET, "/info/collections");
    let signed_url = url_of(&client, "/info/collections");
    let authorization = client.authorization(&call, &signed_url);
    let direct = Url::parse(&format!("http://{}/1.5/4/info/collections", node.addr)).unwrap();
    let reply = client.send_to(call, &direct, Some(authorization)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}
