//! Sign-up, sign-in, keys and password change, and their refusals.

use accounts::AccountsSettings;
use reqwest::Method;
use serde_json::json;

use crate::support::{Token, start, start_with, stretch};

#[tokio::test]
async fn the_key_bundle_unwraps_to_the_same_kb_at_every_sign_in() {
    let server = start().await;
    let email = "alice@example.org";
    let created = server.sign_up(email, "correct horse").await;
    assert_eq!(created["uid"].as_str().unwrap().len(), 32);
    assert_eq!(created["verified"], true);
    let fetch = Token::new(created["keyFetchToken"].as_str().unwrap(), "keyFetchToken");
    let kb_at_sign_up = server.fetch_kb(&fetch, email, "correct horse").await;
    assert_eq!(kb_at_sign_up.len(), 32);

    let (_, kb) = server.login_with_kb(email, "correct horse").await;
    let (_, again) = server.login_with_kb(email, "correct horse").await;
    assert_eq!(kb, kb_at_sign_up);
    assert_eq!(again, kb);

    // Neither the password, nor authPW, nor kB is anywhere in the data directory.
    let auth_pw = hex::decode(stretch(email, "correct horse").auth_pw).unwrap();
    for entry in std::fs::read_dir(server.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for secret in [&b"correct horse"[..], &auth_pw, &kb] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
        }
    }
}

#[tokio::test]
async fn a_key_fetch_token_is_good_for_one_fetch() {
    let server = start().await;
    server.sign_up("bob@example.org", "pw-bob-123").await;
    let answer = server.login("bob@example.org", "pw-bob-123").await;
    let fetch = Token::new(
        answer.body["keyFetchToken"].as_str().unwrap(),
        "keyFetchToken",
    );
    let first = server
        .hawk_call(&fetch, Method::GET, "/auth/v1/account/keys", None)
        .await;
    assert_eq!(first.status, 200);
    let second = server
        .hawk_call(&fetch, Method::GET, "/auth/v1/account/keys", None)
        .await;
    assert_eq!((second.status.as_u16(), second.errno()), (401, 110));
    // Without ?keys=true there is no key fetch token at all.
    let plain = server
        .post(
            "/auth/v1/account/login",
            json!({"email": "bob@example.org", "authPW": stretch("bob@example.org", "pw-bob-123").auth_pw}),
        )
        .await;
    assert_eq!(plain.status, 200);
    assert!(plain.body.get("keyFetchToken").is_none());
}

#[tokio::test]
async fn wrong_passwords_and_unknown_accounts_are_refused_with_mozillas_errnos() {
    let server = start().await;
    server.sign_up("Carol@Example.org", "right password").await;
    let wrong = server.login("Carol@Example.org", "wrong password").await;
    assert_eq!((wrong.status.as_u16(), wrong.errno()), (400, 103));
    assert_eq!(wrong.body["email"], "Carol@Example.org");
    let unknown = server.login("nobody@example.org", "whatever").await;
    assert_eq!((unknown.status.as_u16(), unknown.errno()), (400, 102));
    // Another capitalisation stretches to another authPW: 120 names the right one.
    let case = server.login("carol@example.org", "right password").await;
    assert_eq!((case.status.as_u16(), case.errno()), (400, 120));
    assert_eq!(case.body["email"], "Carol@Example.org");
    let missing = server
        .post(
            "/auth/v1/account/login",
            json!({"email": "carol@example.org"}),
        )
        .await;
    assert_eq!(missing.errno(), 108);
    let not_json = server
        .call(Method::POST, "/auth/v1/account/login", None, None)
        .await;
    assert_eq!(not_json.errno(), 108, "an empty body lacks email");
    let bad_hex = server
        .post(
            "/auth/v1/account/login",
            json!({"email": "carol@example.org", "authPW": "zz"}),
        )
        .await;
    assert_eq!(bad_hex.errno(), 107);
}

#[tokio::test]
async fn sign_up_is_open_until_the_first_account_then_closed() {
    let server = start().await;
    // Two sign-ups racing for the first account: exactly one wins.
    let create = |email: &'static str| {
        server.post(
            "/auth/v1/account/create",
            json!({"email": email, "authPW": stretch(email, "pw-first-1").auth_pw}),
        )
    };
    let (one, two) = tokio::join!(create("first@example.org"), create("rival@example.org"));
    let mut statuses = [one.status.as_u16(), two.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 403], "{} {}", one.body, two.body);
    let (winner, loser) = if one.status == 200 {
        ("first@example.org", "rival@example.org")
    } else {
        ("rival@example.org", "first@example.org")
    };
    assert_eq!(server.login(loser, "pw-first-1").await.errno(), 102);
    let (_, kb) = server.login_with_kb(winner, "pw-first-1").await;
    assert_eq!(kb.len(), 32);
    let dup = server
        .post(
            "/auth/v1/account/create",
            json!({"email": winner.to_uppercase(), "authPW": "00".repeat(32)}),
        )
        .await;
    // Sign-up is closed now; a closed sign-up is refused before anything else.
    assert_eq!((dup.status.as_u16(), dup.errno()), (403, 202));
    assert!(!dup.retry_after);
    let second = server
        .post(
            "/auth/v1/account/create",
            json!({"email": "second@example.org", "authPW": "00".repeat(32)}),
        )
        .await;
    assert_eq!((second.status.as_u16(), second.errno()), (403, 202));
    assert!(server.login("second@example.org", "x").await.errno() == 102);

    let open = start_with(AccountsSettings {
        allow_sign_up: Some(true),
        ..Default::default()
    })
    .await;
    open.sign_up("a@example.org", "pw-a-12345").await;
    open.sign_up("b@example.org", "pw-b-12345").await;
    let dup = open
        .post(
            "/auth/v1/account/create",
            json!({"email": "A@example.org", "authPW": "00".repeat(32)}),
        )
        .await;
    assert_eq!((dup.status.as_u16(), dup.errno()), (400, 101));

    let closed = start_with(AccountsSettings {
        allow_sign_up: Some(false),
        ..Default::default()
    })
    .await;
    let refused = closed
        .post(
            "/auth/v1/account/create",
            json!({"email": "a@example.org", "authPW": "00".repeat(32)}),
        )
        .await;
    assert_eq!(refused.errno(), 202);
    // The operator's path stays open.
    closed
        .service
        .add_account("op@example.org", "operator pw", None)
        .await
        .unwrap();
    let (_, kb) = closed.login_with_kb("op@example.org", "operator pw").await;
    assert_eq!(kb.len(), 32);
}

#[tokio::test]
async fn a_password_change_keeps_kb_and_revokes_every_session() {
    let server = start().await;
    let email = "dave@example.org";
    server.sign_up(email, "old password").await;
    let (session, kb) = server.login_with_kb(email, "old password").await;
    let (other_session, _) = server.login_with_kb(email, "old password").await;
    let generation = server
        .service
        .account(email)
        .await
        .unwrap()
        .unwrap()
        .generation;

    let start = server
        .call(
            Method::POST,
            "/auth/v1/password/change/start",
            Some(json!({"email": email, "oldAuthPW": stretch(email, "old password").auth_pw})),
            Some(session.bearer()),
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let fetch = Token::new(
        start.body["keyFetchToken"].as_str().unwrap(),
        "keyFetchToken",
    );
    assert_eq!(server.fetch_kb(&fetch, email, "old password").await, kb);
    let change = Token::new(
        start.body["passwordChangeToken"].as_str().unwrap(),
        "passwordChangeToken",
    );
    let new = stretch(email, "new password");
    let wrap_kb: Vec<u8> = kb
        .iter()
        .zip(&new.unwrap_b_key)
        .map(|(a, b)| a ^ b)
        .collect();
    let body = json!({"authPW": new.auth_pw, "wrapKb": hex::encode(&wrap_kb)});
    let finish = server
        .hawk_call(
            &change,
            Method::POST,
            "/auth/v1/password/change/finish",
            Some(body.clone()),
        )
        .await;
    assert_eq!(finish.status, 200, "{}", finish.body);
    assert!(finish.body["sessionToken"].is_string());
    let again = server
        .hawk_call(
            &change,
            Method::POST,
            "/auth/v1/password/change/finish",
            Some(body),
        )
        .await;
    assert_eq!(again.errno(), 110, "a password change token is good once");

    for old in [&session, &other_session] {
        let status = server
            .hawk_call(old, Method::GET, "/auth/v1/session/status", None)
            .await;
        assert_eq!((status.status.as_u16(), status.errno()), (401, 110));
    }
    assert_eq!(server.login(email, "old password").await.errno(), 103);
    let (_, kb_after) = server.login_with_kb(email, "new password").await;
    assert_eq!(kb_after, kb, "kB survives the change");
    let after = server.service.account(email).await.unwrap().unwrap();
    assert!(
        after.generation > generation,
        "access tokens issued before are outdated"
    );
    assert_eq!(after.keys_changed_at, after.created_at);
}

/// syncstack's extension for the CLI's migration: `keysChanged` makes the new `wrapKb` a
/// new kB, so keys_changed_at moves with the generation (the token server then accepts the
/// new key's fingerprint).
#[tokio::test]
async fn a_password_change_marked_keys_changed_replaces_kb_and_moves_keys_changed_at() {
    let server = start().await;
    let email = "gil@example.org";
    server.sign_up(email, "the password").await;
    let (session, kb) = server.login_with_kb(email, "the password").await;
    let before = server.service.account(email).await.unwrap().unwrap();
    let keys = stretch(email, "the password");
    let start = server
        .call(
            Method::POST,
            "/auth/v1/password/change/start",
            Some(json!({"email": email, "oldAuthPW": keys.auth_pw})),
            Some(session.bearer()),
        )
        .await;
    let change = Token::new(
        start.body["passwordChangeToken"].as_str().unwrap(),
        "passwordChangeToken",
    );
    let new_kb = [0x5au8; 32];
    assert_ne!(kb, new_kb);
    let wrap_kb: Vec<u8> = new_kb
        .iter()
        .zip(&keys.unwrap_b_key)
        .map(|(a, b)| a ^ b)
        .collect();
    let finish = server
        .hawk_call(
            &change,
            Method::POST,
            "/auth/v1/password/change/finish",
            Some(
                json!({"authPW": keys.auth_pw, "wrapKb": hex::encode(&wrap_kb),
                        "keysChanged": true}),
            ),
        )
        .await;
    assert_eq!(finish.status, 200, "{}", finish.body);
    let (_, kb_after) = server.login_with_kb(email, "the password").await;
    assert_eq!(kb_after, new_kb);
    let after = server.service.account(email).await.unwrap().unwrap();
    assert!(after.generation > before.generation);
    assert_eq!(after.keys_changed_at, after.generation);
    assert!(after.keys_changed_at > before.keys_changed_at);
}

#[tokio::test]
async fn failed_logins_are_limited_per_account() {
    let server = start_with(AccountsSettings {
        login_failures_per_account: 2,
        ..Default::default()
    })
    .await;
    server.sign_up("eve@example.org", "the password").await;
    for _ in 0..2 {
        assert_eq!(server.login("eve@example.org", "guess").await.errno(), 103);
    }
    let blocked = server.login("eve@example.org", "the password").await;
    assert_eq!((blocked.status.as_u16(), blocked.errno()), (429, 114));
    assert!(blocked.retry_after && blocked.body["retryAfter"].as_u64().unwrap() > 0);
    let other = server.login("someone@example.org", "guess").await;
    assert_eq!(other.errno(), 102, "other accounts are not blocked");
}
