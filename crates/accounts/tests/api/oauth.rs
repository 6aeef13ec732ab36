//! OAuth codes with PKCE and `keys_jwe`, the three grants, verify, the profile, devices.

use accounts::{FIREFOX_CLIENT_ID, OLDSYNC_SCOPE};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity::AccessTokenClaims;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Server, Token, start, start_with};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const KEYS_JWE: &str = "eyJhbGciOiJFQ0RILUVTIn0..aXY.Y2lwaGVy.dGFn";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn session(server: &Server) -> (String, Token) {
    let created = server.sign_up("grace@example.org", "grace's pw").await;
    let session = Token::new(created["sessionToken"].as_str().unwrap(), "sessionToken");
    (created["uid"].as_str().unwrap().to_owned(), session)
}

/// Asks for a code as Firefox's sign-in page does.
async fn code(server: &Server, session: &Token, scope: &str) -> String {
    let body = json!({
        "client_id": FIREFOX_CLIENT_ID,
        "state": "st+te/=",
        "scope": scope,
        "access_type": "offline",
        "response_type": "code",
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
        "keys_jwe": KEYS_JWE,
    });
    let answer = server
        .hawk_call(
            session,
            Method::POST,
            "/auth/v1/oauth/authorization",
            Some(body),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["state"], "st+te/=");
    let code = answer.body["code"].as_str().unwrap().to_owned();
    let redirect = url::Url::parse(answer.body["redirect"].as_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = redirect.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("code".into(), code.clone())));
    assert!(pairs.contains(&("state".into(), "st+te/=".into())));
    code
}

async fn exchange(server: &Server, code: &str, verifier: &str) -> crate::support::Answer {
    server
        .post(
            "/auth/v1/oauth/token",
            json!({"grant_type": "authorization_code", "client_id": FIREFOX_CLIENT_ID,
                   "code": code, "code_verifier": verifier}),
        )
        .await
}

fn decode(server: &Server, token: &str) -> AccessTokenClaims {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = &server.idp.jwks().keys[0];
    assert_eq!(header.kid.as_deref(), Some(jwk.kid.as_str()));
    let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_code_with_pkce_becomes_tokens_and_keys_jwe_comes_back_untouched() {
    let server = start().await;
    let (uid, session) = session(&server).await;
    let code = code(&server, &session, &format!("{OLDSYNC_SCOPE} profile")).await;
    let tokens = exchange(&server, &code, VERIFIER).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["keys_jwe"], KEYS_JWE);
    assert_eq!(tokens.body["token_type"], "bearer");
    assert!(
        tokens.body["scope"]
            .as_str()
            .unwrap()
            .contains(OLDSYNC_SCOPE)
    );
    assert!(tokens.body["refresh_token"].is_string());
    assert!(tokens.body["auth_at"].as_i64().unwrap() > 0);

    let access = tokens.body["access_token"].as_str().unwrap();
    let claims = decode(&server, access);
    assert_eq!(claims.sub, uid);
    assert_eq!(
        claims.aud, server.base,
        "oldsync tokens name the token server"
    );
    assert_eq!(claims.iss, server.base);
    assert_eq!(claims.client_id, FIREFOX_CLIENT_ID);
    assert_eq!(claims.exp - claims.iat, 21_600);
    assert_eq!(claims.jti.len(), 32);
    let account = server
        .service
        .account("grace@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.fxa_generation, account.generation as u64);

    let verified = server
        .post("/auth/v1/verify", json!({"token": access}))
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert_eq!(verified.body["user"], uid.as_str());
    assert_eq!(verified.body["client_id"], FIREFOX_CLIENT_ID);
    assert!(
        verified.body["scope"]
            .as_array()
            .unwrap()
            .contains(&json!(OLDSYNC_SCOPE))
    );

    let twice = exchange(&server, &code, VERIFIER).await;
    assert_eq!((twice.status.as_u16(), twice.errno()), (400, 105));

    // The refresh token mints narrower tokens until it is destroyed.
    let refresh = tokens.body["refresh_token"].as_str().unwrap();
    let grant = |scope: &str| {
        json!({"grant_type": "refresh_token", "client_id": FIREFOX_CLIENT_ID,
               "refresh_token": refresh, "scope": scope})
    };
    let narrower = server.post("/auth/v1/oauth/token", grant("profile")).await;
    assert_eq!(narrower.status, 200, "{}", narrower.body);
    assert_eq!(
        decode(&server, narrower.body["access_token"].as_str().unwrap()).aud,
        FIREFOX_CLIENT_ID
    );
    let wider = server
        .post("/auth/v1/oauth/token", grant("profile:email profile"))
        .await;
    assert_eq!(wider.status, 200, "profile covers its sub-scopes");
    let destroyed = server
        .post(
            "/auth/v1/oauth/destroy",
            json!({"client_id": FIREFOX_CLIENT_ID, "token": refresh}),
        )
        .await;
    assert_eq!(
        (destroyed.status.as_u16(), destroyed.body.clone()),
        (200, json!({}))
    );
    let gone = server.post("/auth/v1/oauth/token", grant("profile")).await;
    assert_eq!(gone.errno(), 122);
}

#[tokio::test]
async fn pkce_is_required_and_a_wrong_verifier_burns_the_code() {
    let server = start().await;
    let (_, session) = session(&server).await;
    let code = code(&server, &session, OLDSYNC_SCOPE).await;
    let wrong = exchange(&server, &code, &VERIFIER.replace('d', "e")).await;
    assert_eq!((wrong.status.as_u16(), wrong.errno()), (400, 117));
    let right = exchange(&server, &code, VERIFIER).await;
    assert_eq!(
        right.errno(),
        105,
        "the code was spent by the failed attempt"
    );

    let without = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/oauth/authorization",
            Some(json!({"client_id": FIREFOX_CLIENT_ID, "state": "s", "scope": OLDSYNC_SCOPE})),
        )
        .await;
    assert_eq!(without.errno(), 118);
    let unknown_client = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/oauth/authorization",
            Some(
                json!({"client_id": "0123456789abcdef", "state": "s", "scope": OLDSYNC_SCOPE,
                        "code_challenge": challenge(VERIFIER), "code_challenge_method": "S256"}),
            ),
        )
        .await;
    assert_eq!(unknown_client.errno(), 101);
    let bad_scope = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/oauth/authorization",
            Some(
                json!({"client_id": FIREFOX_CLIENT_ID, "state": "s", "scope": "openid",
                        "code_challenge": challenge(VERIFIER), "code_challenge_method": "S256"}),
            ),
        )
        .await;
    assert_eq!(bad_scope.errno(), 114);
    let bad_grant = server
        .post(
            "/auth/v1/oauth/token",
            json!({"grant_type": "password", "client_id": FIREFOX_CLIENT_ID}),
        )
        .await;
    assert_eq!(bad_grant.errno(), 121);
}

#[tokio::test]
async fn fxa_credentials_gives_sync_and_profile_tokens_to_a_session() {
    let server = start().await;
    let (uid, session) = session(&server).await;
    let grant = |scope: &str, ttl: u64| {
        json!({"grant_type": "fxa-credentials", "client_id": FIREFOX_CLIENT_ID,
               "scope": scope, "ttl": ttl})
    };
    let sync = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/oauth/token",
            Some(grant(OLDSYNC_SCOPE, 3600)),
        )
        .await;
    assert_eq!(sync.status, 200, "{}", sync.body);
    assert_eq!(sync.body["expires_in"], 3600);
    assert!(sync.body.get("refresh_token").is_none());
    let profile = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/oauth/token",
            Some(grant("profile", 999_999)),
        )
        .await;
    assert_eq!(
        profile.body["expires_in"], 21_600,
        "capped at the configured lifetime"
    );

    let server = &server;
    let read_profile = |token: &Value| {
        let token = token.as_str().unwrap().to_owned();
        async move {
            server
                .call(
                    Method::GET,
                    "/profile/v1/profile",
                    None,
                    Some(format!("Bearer {token}")),
                )
                .await
        }
    };
    let answer = read_profile(&profile.body["access_token"]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["uid"], uid.as_str());
    assert_eq!(answer.body["email"], "grace@example.org");
    let refused = read_profile(&sync.body["access_token"]).await;
    assert_eq!((refused.status.as_u16(), refused.errno()), (401, 110));
    let garbage = read_profile(&json!("not-a-token")).await;
    assert_eq!((garbage.status.as_u16(), garbage.errno()), (401, 110));

    let unauthenticated = server
        .post("/auth/v1/oauth/token", grant(OLDSYNC_SCOPE, 60))
        .await;
    assert_eq!(unauthenticated.errno(), 110);
}

#[tokio::test]
async fn expired_and_foreign_tokens_do_not_verify() {
    let server = start().await;
    let (uid, _) = session(&server).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = AccessTokenClaims {
        iss: server.base.clone(),
        sub: uid,
        aud: server.base.clone(),
        client_id: FIREFOX_CLIENT_ID.into(),
        iat: now - 100,
        exp: now + 100,
        jti: "00".repeat(16),
        scope: OLDSYNC_SCOPE.into(),
        fxa_generation: 1,
    };
    let server = &server;
    let verify = |claims: AccessTokenClaims| {
        let token = server.idp.sign_claims(&claims).unwrap();
        async move {
            server
                .post("/auth/v1/verify", json!({"token": token}))
                .await
        }
    };
    assert_eq!(verify(claims.clone()).await.status, 200);
    let expired = verify(AccessTokenClaims {
        exp: now - 1,
        ..claims.clone()
    })
    .await;
    assert_eq!((expired.status.as_u16(), expired.errno()), (400, 115));
    let foreign = verify(AccessTokenClaims {
        aud: "https://tokenserver.elsewhere.example".into(),
        ..claims.clone()
    })
    .await;
    assert_eq!((foreign.status.as_u16(), foreign.errno()), (400, 108));
    let other_issuer = verify(AccessTokenClaims {
        iss: "syncstack-local".into(),
        ..claims
    })
    .await;
    assert_eq!(other_issuer.errno(), 108);
    let garbage = server
        .post("/auth/v1/verify", json!({"token": "abc"}))
        .await;
    assert_eq!(garbage.errno(), 108);
}

#[tokio::test]
async fn devices_register_list_and_push_is_refused_without_retry_after() {
    let server = start().await;
    let (_, session) = session(&server).await;
    let register = |body: Value| {
        server.hawk_call(
            &session,
            Method::POST,
            "/auth/v1/account/device",
            Some(body),
        )
    };
    let first = register(json!({"name": "Laptop", "type": "desktop",
        "availableCommands": {"https://identity.mozilla.com/cmd/open-uri": "x"}}))
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let id = first.body["id"].as_str().unwrap().to_owned();
    let renamed = register(json!({"name": "Work laptop"})).await;
    assert_eq!(renamed.body["id"], id.as_str(), "one device per session");
    assert_eq!(renamed.body["type"], "desktop");
    let unknown = register(json!({"id": "ab".repeat(16), "name": "x"})).await;
    assert_eq!(unknown.errno(), 123);

    let list = server
        .hawk_call(&session, Method::GET, "/auth/v1/account/devices", None)
        .await;
    let devices = list.body.as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["name"], "Work laptop");
    assert_eq!(devices[0]["isCurrentDevice"], true);
    let attached = server
        .hawk_call(
            &session,
            Method::GET,
            "/auth/v1/account/attached_clients",
            None,
        )
        .await;
    assert!(
        attached
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["deviceId"] == id.as_str() && c["isCurrentSession"] == true)
    );

    for (method, path) in [
        (Method::GET, "/auth/v1/account/device/commands"),
        (Method::POST, "/auth/v1/account/devices/notify"),
        (Method::POST, "/auth/v1/account/devices/invoke_command"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let answer = server.hawk_call(&session, method, path, body).await;
        assert_eq!(
            (answer.status.as_u16(), answer.errno()),
            (403, 202),
            "{path}"
        );
        assert!(!answer.retry_after, "{path}");
    }

    let gone = server
        .hawk_call(
            &session,
            Method::POST,
            "/auth/v1/account/device/destroy",
            Some(json!({"id": id})),
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let after = server
        .hawk_call(&session, Method::GET, "/auth/v1/account/devices", None)
        .await;
    assert_eq!(
        after.errno(),
        110,
        "destroying a device signs its session out"
    );
}

#[tokio::test]
async fn well_known_documents_point_at_this_origin() {
    let server = start().await;
    let config = server
        .call(
            Method::GET,
            "/.well-known/fxa-client-configuration",
            None,
            None,
        )
        .await;
    assert_eq!(
        config.body["auth_server_base_url"],
        format!("{}/auth", server.base)
    );
    assert_eq!(
        config.body["oauth_server_base_url"],
        format!("{}/auth", server.base)
    );
    assert_eq!(
        config.body["profile_server_base_url"],
        format!("{}/profile", server.base)
    );
    assert_eq!(
        config.body["sync_tokenserver_base_url"],
        server.base.as_str()
    );
    let openid = server
        .call(Method::GET, "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(openid.body["issuer"], server.base.as_str());
    let jwks = server.call(Method::GET, "/auth/v1/jwks", None, None).await;
    assert_eq!(jwks.body["keys"][0]["kid"], server.idp.kid());
    let client = server
        .call(
            Method::GET,
            &format!("/auth/v1/client/{FIREFOX_CLIENT_ID}"),
            None,
            None,
        )
        .await;
    assert_eq!(client.body["name"], "Firefox");

    // Unknown paths and methods still answer Mozilla's JSON envelope.
    let unknown = server
        .call(Method::GET, "/auth/v1/recovery_key/exists", None, None)
        .await;
    assert_eq!((unknown.status.as_u16(), unknown.errno()), (404, 116));
    let wrong_method = server
        .call(Method::GET, "/auth/v1/account/login", None, None)
        .await;
    assert_eq!(wrong_method.errno(), 116);
    let bad_uid = server
        .call(Method::GET, "/auth/v1/account/status?uid=xyz", None, None)
        .await;
    assert_eq!((bad_uid.status.as_u16(), bad_uid.errno()), (400, 107));
}

#[tokio::test]
async fn an_expired_code_is_107_and_an_expired_key_fetch_token_110() {
    let server = start_with(accounts::AccountsSettings {
        code_ttl_secs: 0,
        one_time_token_ttl_secs: 0,
        ..Default::default()
    })
    .await;
    let created = server.sign_up("hal@example.org", "hal's pw").await;
    let session = Token::new(created["sessionToken"].as_str().unwrap(), "sessionToken");
    let code = code(&server, &session, OLDSYNC_SCOPE).await;
    let expired = exchange(&server, &code, VERIFIER).await;
    assert_eq!((expired.status.as_u16(), expired.errno()), (400, 107));
    let fetch = Token::new(created["keyFetchToken"].as_str().unwrap(), "keyFetchToken");
    let keys = server
        .hawk_call(&fetch, Method::GET, "/auth/v1/account/keys", None)
        .await;
    assert_eq!((keys.status.as_u16(), keys.errno()), (401, 110));
}
