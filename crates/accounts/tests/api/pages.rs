//! The accounts pages over a real socket: every path Firefox may open answers a page with
//! the right view, the sign-up policy and the security headers; the assets are served with
//! their types. (What the pages do in a browser is checked with Firefox itself, in
//! `tests/firefox/accounts_signin.py`.)

use std::net::SocketAddr;
use std::sync::Arc;

use accounts::store::sqlite::SqliteAccountStore;
use accounts::{AccountsService, AccountsSettings, router};
use identity::IdentityProvider;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};

struct Server {
    base: String,
    service: AccountsService,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let idp = IdentityProvider::open(dir.path(), "syncstack-local").unwrap();
    let store = SqliteAccountStore::open(&dir.path().join("fxa-accounts.db"), true).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = AccountsService::new(
        Arc::new(store),
        idp,
        AccountsSettings::default(),
        &url::Url::parse(&base).unwrap(),
    )
    .unwrap();
    let app = router(service.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        base,
        service,
        _dir: dir,
        task,
    }
}

async fn get(server: &Server, path: &str) -> reqwest::Response {
    reqwest::get(format!("{}{path}", server.base))
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn every_path_firefox_opens_answers_its_view_and_the_sign_up_policy() {
    let server = start().await;
    let firefox_entry = "/?context=oauth_webchannel_v1&action=email&service=sync\
        &client_id=5882386c6d801776&state=abc&code_challenge_method=S256";
    for (path, view) in [
        (firefox_entry, "signin"),
        ("/signin", "signin"),
        ("/oauth", "signin"),
        ("/signup", "signup"),
        ("/settings?entrypoint=x&uid=1&email=a", "settings"),
        ("/settings/clients", "settings"),
        ("/connect_another_device", "connect"),
        ("/pair", "pair"),
    ] {
        let response = get(&server, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(&response, CONTENT_TYPE),
            "text/html; charset=utf-8",
            "{path}"
        );
        let csp = header(&response, CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header(&response, REFERRER_POLICY), "no-referrer");
        assert_eq!(header(&response, CACHE_CONTROL), "no-store");
        let html = response.text().await.unwrap();
        assert!(html.contains(&format!("data-view=\"{view}\"")), "{path}");
        // No account yet: sign-up is open (the default policy).
        assert!(html.contains("data-signup=\"open\""), "{path}");
        assert!(html.contains("data-api=\"/auth/v1\""), "{path}");
    }

    server
        .service
        .add_account("first@example.org", "a long enough password", None)
        .await
        .unwrap();
    let html = get(&server, "/signup").await.text().await.unwrap();
    assert!(html.contains("data-signup=\"closed\""));
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_nothing_else_is() {
    let server = start().await;
    for (file, content_type, needle) in [
        (
            "app.js",
            "text/javascript; charset=utf-8",
            "WebChannelMessageToChrome",
        ),
        (
            "onepw.js",
            "text/javascript; charset=utf-8",
            "quickStretch:",
        ),
        ("style.css", "text/css; charset=utf-8", "color-scheme"),
        ("icon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = get(&server, &format!("/accounts-assets/{file}")).await;
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(header(&response, CONTENT_TYPE), content_type, "{file}");
        assert!(response.text().await.unwrap().contains(needle), "{file}");
    }
    assert_eq!(
        get(&server, "/accounts-assets/../Cargo.toml")
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&server, "/accounts-assets/secret.js").await.status(),
        404
    );

    let flow: serde_json::Value = get(&server, "/metrics-flow").await.json().await.unwrap();
    assert_eq!(flow["flowId"].as_str().map(str::len), Some(64));
}
