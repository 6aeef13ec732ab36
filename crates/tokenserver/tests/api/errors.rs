//! Every refusal, with the reference's status and body, and nothing changed in the database.

use serde_json::json;

use crate::issuer::{Issuer, SCOPE};
use crate::server::TestTokenServer;

const EMAIL: &str = "acct1@api.accounts.firefox.com";

async fn server(issuer: &Issuer) -> TestTokenServer {
    TestTokenServer::start(issuer, &[("http://node-a.test", 100)]).await
}

#[tokio::test]
async fn authorization_header_problems() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = server(&issuer).await;
    let path = "/1.0/sync/1.5";
    server
        .get(path, &[("x-keyid", "1-qqo")])
        .await
        .assert_error(401, "error", "body", "", "Unauthorized");
    server
        .get(
            path,
            &[
                ("authorization", "Basic dXNlcjpwdw=="),
                ("x-keyid", "1-qqo"),
            ],
        )
        .await
        .assert_error(401, "error", "body", "", "Unsupported");
    server
        .get(path, &[("authorization", "Bearer"), ("x-keyid", "1-qqo")])
        .await
        .assert_error(401, "error", "body", "", "Unauthorized");
}

#[tokio::test]
async fn bad_access_tokens_are_invalid_credentials() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = server(&issuer).await;
    let stranger = Issuer::new("https://idp.test", "k1");
    let other_issuer = Issuer::new("https://evil.test", "k1");
    let cases = [
        ("garbage", "not.a.jwt".to_owned()),
        (
            "signed by another key with the same kid",
            stranger.token("acct1", 1),
        ),
        ("another issuer", other_issuer.token("acct1", 1)),
        (
            "unknown kid",
            Issuer::new("https://idp.test", "k2").token("acct1", 1),
        ),
        (
            "expired",
            issuer.token_with("acct1", |c| c["exp"] = json!(Issuer::expired_by(600))),
        ),
        (
            "no Sync scope",
            issuer.token_with("acct1", |c| c["scope"] = json!("profile")),
        ),
        (
            "scope that only looks like Sync's",
            issuer.token_with("acct1", |c| c["scope"] = json!(format!("{SCOPE}x"))),
        ),
        (
            "wrong audience",
            issuer.token_with("acct1", |c| c["aud"] = json!("someone-else")),
        ),
        (
            "wrong issuer claim",
            issuer.token_with("acct1", |c| c["iss"] = json!("https://evil.test")),
        ),
        (
            "no expiry",
            issuer.token_with("acct1", |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
    ];
    for (what, bearer) in cases {
        let reply = server.request(&bearer, 1, "aaaa").await;
        assert_eq!(reply.status, 401, "{what}: {reply:?}");
        reply.assert_error(401, "invalid-credentials", "body", "", "Unauthorized");
    }
    assert!(
        server.store.get_user(EMAIL).await.unwrap().is_none(),
        "no user was created"
    );
}

#[tokio::test]
async fn key_header_problems() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = server(&issuer).await;
    let bearer = format!("Bearer {}", issuer.token("acct1", 1));
    let path = "/1.0/sync/1.5";
    server
        .get(path, &[("authorization", &bearer)])
        .await
        .assert_error(
            401,
            "invalid-key-id",
            "header",
            "",
            "Missing X-KeyID header",
        );
    for bad in ["1234", "abc-qqo", "12-%%%"] {
        server
            .get(path, &[("authorization", &bearer), ("x-keyid", bad)])
            .await
            .assert_error(401, "invalid-credentials", "body", "", "Unauthorized");
    }
    server
        .get(
            path,
            &[
                ("authorization", &bearer),
                ("x-keyid", "1-qqo"),
                ("x-client-state", "not hex!"),
            ],
        )
        .await
        .assert_error(
            400,
            "error",
            "header",
            "X-Client-State",
            "Invalid client state value",
        );
    server
        .get(
            path,
            &[
                ("authorization", &bearer),
                ("x-keyid", "1-qqo"),
                ("x-client-state", "bbbb"),
            ],
        )
        .await
        .assert_error(401, "invalid-client-state", "body", "", "Unauthorized");
    assert!(server.store.get_user(EMAIL).await.unwrap().is_none());
    // Agreeing headers are fine.
    let ok = server
        .get(
            path,
            &[
                ("authorization", &bearer),
                ("x-keyid", "1-qqo"),
                ("x-client-state", "aaaa"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test]
async fn values_going_backwards_are_refused_and_change_nothing() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = server(&issuer).await;
    assert_eq!(
        server
            .request(&issuer.token("acct1", 100), 100, "aaaa")
            .await
            .status,
        200
    );
    let before = server.store.get_user(EMAIL).await.unwrap().unwrap();

    server
        .request(&issuer.token("acct1", 99), 100, "aaaa")
        .await
        .assert_error(401, "invalid-generation", "body", "", "Unauthorized");
    server
        .request(&issuer.token("acct1", 100), 99, "aaaa")
        .await
        .assert_error(401, "invalid-keysChangedAt", "body", "", "Unauthorized");
    server
        .request(&issuer.token("acct1", 150), 200, "bbbb")
        .await
        .assert_error(401, "invalid-keysChangedAt", "body", "", "Unauthorized");
    server
        .request(&issuer.token("acct1", 100), 100, "bbbb")
        .await
        .assert_error(
            401,
            "invalid-client-state",
            "header",
            "X-Client-State",
            "Unacceptable client-state value new value with no generation change",
        );
    server
        .request(&issuer.token("acct1", 200), 100, "bbbb")
        .await
        .assert_error(
            401,
            "invalid-client-state",
            "header",
            "X-Client-State",
            "Unacceptable client-state value new value with no keys_changed_at change",
        );
    server
        .request(&issuer.token("acct1", 200), 200, "")
        .await
        .assert_error(
            401,
            "invalid-client-state",
            "header",
            "X-Client-State",
            "Unacceptable client-state value empty string",
        );

    let after = server.store.get_user(EMAIL).await.unwrap().unwrap();
    assert_eq!(after, before, "refused requests changed the record");
}

#[tokio::test]
async fn unknown_applications_and_versions_are_404() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = server(&issuer).await;
    let bearer = format!("Bearer {}", issuer.token("acct1", 1));
    let headers = [("authorization", bearer.as_str()), ("x-keyid", "1-qqo")];
    server.get("/1.0/xmpp/1.5", &headers).await.assert_error(
        404,
        "error",
        "url",
        "application",
        "Unsupported application",
    );
    server.get("/1.0/sync/1.1", &headers).await.assert_error(
        404,
        "error",
        "url",
        "1.1",
        "Unsupported application version",
    );
}

#[tokio::test]
async fn new_users_can_be_turned_away() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start_with(&issuer, &[("http://node-a.test", 100)], |s| {
        s.allow_new_users = false
    })
    .await;
    server
        .request(&issuer.token("acct1", 1), 1, "aaaa")
        .await
        .assert_error(
            403,
            "new-users-disabled",
            "body",
            "",
            "New users are not allowed",
        );
    assert!(server.store.get_user(EMAIL).await.unwrap().is_none());
}

#[tokio::test]
async fn no_node_is_503() {
    let issuer = Issuer::new("https://idp.test", "k1");
    let server = TestTokenServer::start(&issuer, &[]).await;
    server
        .request(&issuer.token("acct1", 1), 1, "aaaa")
        .await
        .assert_error(503, "internal-error", "internal", "", "Server error");
}
