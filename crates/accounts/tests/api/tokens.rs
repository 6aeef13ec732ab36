//! Token authentication: Hawk with the MAC checked, and Bearer; forged, replayed, stale
//! and destroyed credentials.

use reqwest::Method;
use serde_json::json;

use crate::support::{Server, Token, start};

async fn signed_in(server: &Server) -> (String, Token) {
    let created = server.sign_up("frank@example.org", "frank's pw").await;
    let session = Token::new(created["sessionToken"].as_str().unwrap(), "sessionToken");
    (created["uid"].as_str().unwrap().to_owned(), session)
}

#[tokio::test]
async fn hawk_and_bearer_both_authenticate_a_session() {
    let server = start().await;
    let (uid, session) = signed_in(&server).await;
    let hawk = server
        .hawk_call(&session, Method::GET, "/auth/v1/session/status", None)
        .await;
    assert_eq!(hawk.status, 200, "{}", hawk.body);
    assert_eq!(hawk.body["uid"], uid.as_str());
    let bearer = server
        .call(
            Method::GET,
            "/auth/v1/session/status",
            None,
            Some(session.bearer()),
        )
        .await;
    assert_eq!(bearer.body["uid"], uid.as_str());
    let wrong_kind = server
        .call(
            Method::GET,
            "/auth/v1/session/status",
            None,
            Some(format!("Bearer fxk_{}", session.id)),
        )
        .await;
    assert_eq!((wrong_kind.status.as_u16(), wrong_kind.errno()), (401, 110));
    let none = server
        .call(Method::GET, "/auth/v1/session/status", None, None)
        .await;
    assert_eq!(none.errno(), 110);
    let unknown = Token::new(&"11".repeat(32), "sessionToken");
    let answer = server
        .hawk_call(&unknown, Method::GET, "/auth/v1/session/status", None)
        .await;
    assert_eq!(answer.errno(), 110);
}

#[tokio::test]
async fn a_forged_mac_or_an_altered_body_is_109() {
    let server = start().await;
    let (_, session) = signed_in(&server).await;
    let forged = Token {
        auth_key: vec![0u8; 32],
        ..session.clone()
    };
    let answer = server
        .hawk_call(&forged, Method::GET, "/auth/v1/session/status", None)
        .await;
    assert_eq!((answer.status.as_u16(), answer.errno()), (401, 109));

    // Signed for one body, sent with another: the payload hash gives it away.
    let signed_body = json!({"name": "laptop", "type": "desktop"});
    let header = server.hawk(
        &session,
        "POST",
        "/auth/v1/account/device",
        Some(&signed_body),
    );
    let answer = server
        .call(
            Method::POST,
            "/auth/v1/account/device",
            Some(json!({"name": "evil", "type": "desktop"})),
            Some(header),
        )
        .await;
    assert_eq!((answer.status.as_u16(), answer.errno()), (401, 109));
    // Signed for another path.
    let header = server.hawk(&session, "GET", "/auth/v1/account/devices", None);
    let answer = server
        .call(Method::GET, "/auth/v1/session/status", None, Some(header))
        .await;
    assert_eq!(answer.errno(), 109);
}

#[tokio::test]
async fn a_replayed_request_is_115_and_a_stale_one_111() {
    let server = start().await;
    let (_, session) = signed_in(&server).await;
    let header = server.hawk(&session, "GET", "/auth/v1/session/status", None);
    let first = server
        .call(
            Method::GET,
            "/auth/v1/session/status",
            None,
            Some(header.clone()),
        )
        .await;
    assert_eq!(first.status, 200);
    let replay = server
        .call(Method::GET, "/auth/v1/session/status", None, Some(header))
        .await;
    assert_eq!((replay.status.as_u16(), replay.errno()), (401, 115));

    let url = url::Url::parse(&server.base).unwrap();
    let target = sync_proto::hawk::RequestTarget {
        method: "GET",
        path_and_query: "/auth/v1/session/status",
        host: url.host_str().unwrap(),
        port: url.port().unwrap(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stale = sync_proto::hawk::sign_request_at(
        &session.id,
        &session.auth_key,
        &target,
        None,
        now - 3600,
    );
    let answer = server
        .call(Method::GET, "/auth/v1/session/status", None, Some(stale))
        .await;
    assert_eq!((answer.status.as_u16(), answer.errno()), (401, 111));
    assert!(answer.body["serverTime"].as_u64().unwrap().abs_diff(now) < 60);
}

#[tokio::test]
async fn a_destroyed_session_is_110_and_the_account_still_exists() {
    let server = start().await;
    let (uid, session) = signed_in(&server).await;
    let destroyed = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/session/destroy",
            Some(json!({})),
        )
        .await;
    assert_eq!(destroyed.status, 200, "{}", destroyed.body);
    for path in ["/auth/v1/session/status", "/auth/v1/account/devices"] {
        let answer = server.hawk_call(&session, Method::GET, path, None).await;
        assert_eq!(
            (answer.status.as_u16(), answer.errno()),
            (401, 110),
            "{path}"
        );
    }
    let status = server
        .call(
            Method::GET,
            &format!("/auth/v1/account/status?uid={uid}"),
            None,
            None,
        )
        .await;
    assert_eq!(status.body["exists"], true);
    let other = server
        .call(
            Method::GET,
            &format!("/auth/v1/account/status?uid={}", "0".repeat(32)),
            None,
            None,
        )
        .await;
    assert_eq!(other.body["exists"], false);
}
