//! Successful token requests: fields, headers, the minted token, and returning users.

use sync_proto::token::{self, MasterSecret};

use crate::issuer::Issuer;
use crate::server::{SECRET, TestTokenServer};

#[tokio::test]
async fn a_new_user_gets_a_token_for_a_node() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(&issuer, &[("http://node-a.test", 100)]).await;
    let reply = server
        .request(&issuer.token("acct1", 1234), 1234, "aaaa")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.body.as_object().unwrap();
    let mut keys: Vec<_> = body.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "api_endpoint",
            "duration",
            "hashalg",
            "hashed_fxa_uid",
            "id",
            "key",
            "node_type",
            "uid"
        ]
    );
    let uid = reply.uid();
    assert_eq!(reply.endpoint(), format!("http://node-a.test/1.5/{uid}"));
    assert_eq!(reply.body["duration"], 3600);
    assert_eq!(reply.body["hashalg"], "sha256");
    assert_eq!(reply.body["hashed_fxa_uid"].as_str().unwrap().len(), 32);
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    let stamp: u64 = reply.headers["x-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(stamp > 1_700_000_000);

    // The token is what a node sharing the secret accepts.
    let (claims, key) = token::verify(
        &MasterSecret::new(SECRET),
        reply.body["id"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(key, reply.body["key"].as_str().unwrap());
    assert_eq!(
        (claims.uid, claims.node.as_str()),
        (uid, "http://node-a.test")
    );
    assert_eq!(claims.fxa_uid.as_deref(), Some("acct1"));
    assert_eq!(claims.fxa_kid.as_deref(), Some("0000000001234-qqo"));
    assert_eq!(
        claims.hashed_fxa_uid.as_deref(),
        reply.body["hashed_fxa_uid"].as_str()
    );
}

#[tokio::test]
async fn a_returning_user_keeps_uid_and_node() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(
        &issuer,
        &[("http://node-a.test", 100), ("http://node-b.test", 100)],
    )
    .await;
    let first = server.request(&issuer.token("acct1", 10), 10, "aaaa").await;
    let again = server.request(&issuer.token("acct1", 10), 10, "aaaa").await;
    assert_eq!(first.uid(), again.uid());
    assert_eq!(first.endpoint(), again.endpoint());
    // A newer generation is recorded, and the user stays put.
    let newer = server.request(&issuer.token("acct1", 20), 10, "aaaa").await;
    assert_eq!(newer.uid(), first.uid());
    let user = server
        .store
        .get_user("acct1@api.accounts.firefox.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.current.generation, user.current.keys_changed_at),
        (20, Some(10))
    );
}

#[tokio::test]
async fn a_new_client_state_with_new_keys_means_a_new_uid() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(&issuer, &[("http://node-a.test", 100)]).await;
    let first = server
        .request(&issuer.token("acct1", 10), 10, "aaaa")
        .await
        .uid();
    let moved = server.request(&issuer.token("acct1", 20), 20, "bbbb").await;
    assert_ne!(moved.uid(), first);
    let (claims, _) = token::verify(
        &MasterSecret::new(SECRET),
        moved.body["id"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(claims.fxa_kid.as_deref(), Some("0000000000020-u7s"));
    // The old uid is replaced, waiting for the purge.
    let replaced = server.store.replaced_users(i64::MAX, 10).await.unwrap();
    assert_eq!(replaced.iter().map(|r| r.uid).collect::<Vec<_>>(), [first]);
    // Going back to the old keys is refused from now on.
    server
        .request(&issuer.token("acct1", 30), 30, "aaaa")
        .await
        .assert_error(
            401,
            "invalid-client-state",
            "header",
            "X-Client-State",
            "Unacceptable client-state value stale value",
        );
}

#[tokio::test]
async fn the_duration_parameter_can_only_shorten() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(&issuer, &[("http://node-a.test", 100)]).await;
    for (query, expected) in [
        ("?duration=12", 12),
        ("?duration=4000", 3600),
        ("?duration=lolwut", 3600),
        ("?duration=-1", 3600),
    ] {
        let bearer = format!("Bearer {}", issuer.token("acct1", 1));
        let reply = server
            .get(
                &format!("/1.0/sync/1.5{query}"),
                &[("authorization", &bearer), ("x-keyid", "1-qqo")],
            )
            .await;
        assert_eq!(reply.body["duration"], expected, "{query}");
    }
}

#[tokio::test]
async fn generation_may_come_from_keys_changed_at_when_the_token_has_none() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(&issuer, &[("http://node-a.test", 100)]).await;
    let no_generation = issuer.token_with("acct9", |_| {});
    assert_eq!(
        server.request(&no_generation, 500, "aaaa").await.status,
        200
    );
    let user = server
        .store
        .get_user("acct9@api.accounts.firefox.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.current.generation, user.current.keys_changed_at),
        (0, Some(500))
    );
    assert_eq!(
        server.request(&no_generation, 600, "aaaa").await.status,
        200
    );
    let user = server
        .store
        .get_user("acct9@api.accounts.firefox.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.current.generation, user.current.keys_changed_at),
        (600, Some(600))
    );
}
