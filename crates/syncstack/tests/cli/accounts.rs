//! The accounts service in `syncstack serve`: an account the operator adds with the CLI
//! signs in by onepw as Firefox's page would, and its access token gets a storage token
//! from the same process's token server, as the same user as the CLI's own token.

use accounts::onepw::{ClientKeys, KEYS_NAMESPACE, TokenKeys, TokenKind, unbundle};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::process::{Node, run_ok};

const EMAIL: &str = "ann@example.org";
const PASSWORD: &str = "ann's long password";

async fn post(url: String, auth: Option<String>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn bearer(token: &str, kind: TokenKind) -> String {
    let raw: [u8; 32] = hex::decode(token).unwrap().try_into().unwrap();
    let id = hex::encode(TokenKeys::derive(&raw, kind).id);
    format!("Bearer {}_{id}", kind.bearer_prefix())
}

/// What a sign-in by onepw yields, fetched here with `Bearer` tokens (not the Hawk the
/// Sync client signs with), as a second opinion on the CLI's keys.
pub struct AccountKeys {
    pub kb: Vec<u8>,
    /// keys_changed_at of the oldsync key, ms.
    pub rotated: i64,
    pub session: String,
}

/// Logs in to the accounts service at `url` and unwraps kB.
pub async fn sign_in(url: &str, email: &str, password: &str) -> AccountKeys {
    let keys = ClientKeys::derive(email, password);
    let (status, login) = post(
        format!("{url}/auth/v1/account/login?keys=true"),
        None,
        json!({"email": email, "authPW": hex::encode(keys.auth_pw)}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let session = login["sessionToken"].as_str().unwrap();
    let fetch = login["keyFetchToken"].as_str().unwrap();

    let response = reqwest::Client::new()
        .get(format!("{url}/auth/v1/account/keys"))
        .header("authorization", bearer(fetch, TokenKind::KeyFetch))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let raw: [u8; 32] = hex::decode(fetch).unwrap().try_into().unwrap();
    let bundle_key = TokenKeys::derive(&raw, TokenKind::KeyFetch).bundle_key;
    let bundle = hex::decode(body["bundle"].as_str().unwrap()).unwrap();
    let plain = unbundle(&bundle_key, KEYS_NAMESPACE, &bundle).unwrap();
    let kb: Vec<u8> = plain[32..]
        .iter()
        .zip(keys.unwrap_b_key)
        .map(|(a, b)| a ^ b)
        .collect();

    let oldsync = "https://identity.mozilla.com/apps/oldsync";
    let (_, key_data) = post(
        format!("{url}/auth/v1/account/scoped-key-data"),
        Some(bearer(session, TokenKind::Session)),
        json!({"client_id": "5882386c6d801776", "scope": oldsync}),
    )
    .await;
    AccountKeys {
        kb,
        rotated: key_data[oldsync]["keyRotationTimestamp"].as_i64().unwrap(),
        session: session.to_owned(),
    }
}

#[tokio::test]
async fn an_account_added_by_the_cli_signs_in_by_onepw_and_is_one_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    let added = run_ok(
        dir.path(),
        &["accounts", "add", EMAIL, "--password-stdin"],
        &[],
        &format!("{PASSWORD}\n"),
    );
    assert!(added.contains("Firefox can sign in"), "{added}");

    let keys = ClientKeys::derive(EMAIL, PASSWORD);
    let signed = sign_in(&server.url, EMAIL, PASSWORD).await;
    let (kb, rotated, session) = (signed.kb, signed.rotated, signed.session.as_str());
    let oldsync = "https://identity.mozilla.com/apps/oldsync";
    let key_id = format!(
        "{rotated}-{}",
        URL_SAFE_NO_PAD.encode(&Sha256::digest(&kb)[..16])
    );
    let (status, granted) = post(
        format!("{}/auth/v1/oauth/token", server.url),
        Some(bearer(session, TokenKind::Session)),
        json!({"grant_type": "fxa-credentials", "client_id": "5882386c6d801776",
               "scope": oldsync, "ttl": 21600}),
    )
    .await;
    assert_eq!(status, 200, "{granted}");
    let (status, firefox) = server
        .token_for(granted["access_token"].as_str().unwrap(), &key_id)
        .await;
    assert_eq!(status, 200, "{firefox}");

    // The CLI's own token for the same account lands on the same Sync user.
    let cli_token = run_ok(dir.path(), &["accounts", "token", EMAIL], &[], "");
    let (status, cli) = server.token_for(cli_token.trim(), &key_id).await;
    assert_eq!(status, 200, "{cli}");
    assert_eq!(cli["uid"], firefox["uid"]);
    assert_eq!(cli["api_endpoint"], firefox["api_endpoint"]);

    // A CLI password change moves both generations: the CLI's new token raises the
    // user's generation at the token server, and Firefox's next token still passes.
    run_ok(
        dir.path(),
        &["accounts", "passwd", EMAIL],
        &[],
        "another password\n",
    );
    let cli_token = run_ok(dir.path(), &["accounts", "token", EMAIL], &[], "");
    let (status, after) = server.token_for(cli_token.trim(), &key_id).await;
    assert_eq!(status, 200, "{after}");
    let (_, regranted) = post(
        format!("{}/auth/v1/oauth/token", server.url),
        Some(bearer(session, TokenKind::Session)),
        json!({"grant_type": "fxa-credentials", "client_id": "5882386c6d801776",
               "scope": oldsync}),
    )
    .await;
    let (status, again) = server
        .token_for(regranted["access_token"].as_str().unwrap(), &key_id)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["uid"], firefox["uid"]);
    let (status, stale) = server
        .token_for(granted["access_token"].as_str().unwrap(), &key_id)
        .await;
    assert_eq!(
        status, 401,
        "tokens from before the change are refused: {stale}"
    );

    let listed = run_ok(dir.path(), &["accounts", "list"], &[], "");
    assert!(listed.contains("firefox"), "{listed}");
    run_ok(dir.path(), &["accounts", "remove", EMAIL], &[], "");
    let (status, refused) = post(
        format!("{}/auth/v1/account/login", server.url),
        None,
        json!({"email": EMAIL, "authPW": hex::encode(keys.auth_pw)}),
    )
    .await;
    assert_eq!((status, refused["errno"].as_u64()), (400, Some(102)));
    server.stop().await;
}

/// An account signed up from Firefox (sign-up is open until the first account exists) is
/// listed and removed by the CLI like any other.
#[tokio::test]
async fn an_account_signed_up_over_http_is_listed_and_removed_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start_in(dir.path(), &[], &[]).await;
    let keys = ClientKeys::derive("bea@example.org", PASSWORD);
    let (status, created) = post(
        format!("{}/auth/v1/account/create", server.url),
        None,
        json!({"email": "bea@example.org", "authPW": hex::encode(keys.auth_pw)}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let listed = run_ok(dir.path(), &["accounts", "list"], &[], "");
    assert!(
        listed.contains("bea@example.org") && listed.contains("firefox only"),
        "{listed}"
    );
    let (status, closed) = post(
        format!("{}/auth/v1/account/create", server.url),
        None,
        json!({"email": "cid@example.org", "authPW": hex::encode(keys.auth_pw)}),
    )
    .await;
    assert_eq!((status, closed["errno"].as_u64()), (403, Some(202)));
    run_ok(
        dir.path(),
        &["accounts", "remove", "bea@example.org"],
        &[],
        "",
    );
    let listed = run_ok(dir.path(), &["accounts", "list"], &[], "");
    assert!(listed.starts_with("no accounts"), "{listed}");
    server.stop().await;
}
