//! The web pages Firefox opens at the accounts origin (`identity.fxaccounts.remote.root`):
//! sign in, sign up, the signed-in page and the account page, plus a short answer for every
//! other path Firefox may open (`pair`, `connect_another_device`, …).
//!
//! The pages are one HTML shell (`shell.html`) with one view per path, and three assets
//! embedded in the binary: `style.css`, `onepw.js` (the browser side of onepw, the oldsync
//! scoped key and the `keys_jwe` for Firefox, all in WebCrypto) and `app.js` (the forms,
//! the API calls and Firefox's `account_updates` WebChannel). No framework, no build step.
//!
//! The password never leaves the page: it is stretched there into `authPW` (sent) and
//! `unwrapBKey` (kept), and kB is rebuilt there from the key bundle. Every page is served
//! with a Content-Security-Policy that allows only this origin's scripts, styles and API,
//! and `Referrer-Policy: no-referrer`, since Firefox's query carries the OAuth state.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AccountsService;
use crate::service::now_ms;

/// Where the pages' assets are served, under the public URL.
pub(crate) const ASSETS: &str = "/accounts-assets";

const SHELL: &str = include_str!("shell.html");
const STYLE: &str = include_str!("style.css");
const ONEPW_JS: &str = include_str!("onepw.js");
const APP_JS: &str = include_str!("app.js");
const ICON: &str = include_str!("icon.svg");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// A view of the shell: what the page shows first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// Sign in (Firefox's entry URL, `/`, `/signin`, `/oauth`, …).
    SignIn,
    /// Create an account.
    SignUp,
    /// The account: address, devices, sign out.
    Settings,
    /// How to sign in on another device.
    ConnectAnotherDevice,
    /// Pairing by QR code, which this server does not offer.
    Pair,
    /// A path this server has no page for.
    NotFound,
}

impl View {
    /// The view for a path (without the public URL's prefix or a trailing slash).
    pub(crate) fn for_path(path: &str) -> View {
        match path.trim_matches('/') {
            "" | "signin" | "oauth" | "oauth/signin" | "email" | "force_auth" => View::SignIn,
            "signup" | "oauth/signup" => View::SignUp,
            "connect_another_device" => View::ConnectAnotherDevice,
            "pair" | "pair/supp" => View::Pair,
            path if path == "settings" || path.starts_with("settings/") => View::Settings,
            path if path.starts_with("post_verify/") => View::Settings,
            _ => View::NotFound,
        }
    }

    fn name(self) -> &'static str {
        match self {
            View::SignIn => "signin",
            View::SignUp => "signup",
            View::Settings => "settings",
            View::ConnectAnotherDevice => "connect",
            View::Pair => "pair",
            View::NotFound => "notfound",
        }
    }

    fn title(self) -> &'static str {
        match self {
            View::SignIn => "Sign in",
            View::SignUp => "Create an account",
            View::Settings => "Your account",
            View::ConnectAnotherDevice => "Connect another device",
            View::Pair => "Pairing",
            View::NotFound => "Page not found",
        }
    }
}

/// The pages' routes (merged into [`crate::router`]).
pub(crate) fn routes() -> Router<AccountsService> {
    let mut router = Router::new()
        .route("/", get(page_root))
        .route(&format!("{ASSETS}/{{file}}"), get(asset))
        .route("/metrics-flow", get(metrics_flow));
    for path in [
        "/signin",
        "/signup",
        "/oauth",
        "/oauth/signin",
        "/oauth/signup",
        "/email",
        "/force_auth",
        "/settings",
        "/settings/{*rest}",
        "/connect_another_device",
        "/pair",
        "/pair/{*rest}",
        "/post_verify/{*rest}",
    ] {
        router = router.route(path, get(page));
    }
    router
}

async fn page_root(State(service): State<AccountsService>) -> Response {
    render(&service, View::SignIn).await
}

async fn page(State(service): State<AccountsService>, uri: axum::http::Uri) -> Response {
    render(&service, View::for_path(uri.path())).await
}

/// The shell with its placeholders filled: the view, the API's path, whether sign-up is
/// open.
pub(crate) async fn render(service: &AccountsService, view: View) -> Response {
    let sign_up = match service.sign_up_open().await {
        Ok(open) => open,
        Err(error) => {
            tracing::error!(%error, "accounts page: reading the sign-up policy");
            false
        }
    };
    let html = fill(
        SHELL,
        &service.inner.public_url,
        view,
        if sign_up { "open" } else { "closed" },
    );
    let status = if view == View::NotFound {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let mut headers = security_headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (status, headers, html).into_response()
}

/// The shell text for `view`, under the public URL `public_url`.
pub(crate) fn fill(shell: &str, public_url: &url::Url, view: View, sign_up: &str) -> String {
    let prefix = public_url.path().trim_end_matches('/');
    shell
        .replace("{{TITLE}}", view.title())
        .replace("{{VIEW}}", view.name())
        .replace("{{SIGNUP}}", sign_up)
        .replace("{{API}}", &escape(&format!("{prefix}/auth/v1")))
        .replace("{{ASSETS}}", &escape(&format!("{prefix}{ASSETS}")))
        .replace("{{ROOT}}", &escape(&format!("{prefix}/")))
        .replace(
            "{{ORIGIN}}",
            &escape(public_url.as_str().trim_end_matches('/')),
        )
}

/// `&`, `<`, `>` and `"` as HTML entities (for attribute values and text).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn security_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
}

/// `GET /accounts-assets/{file}`: the stylesheet, the two scripts and the icon.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "onepw.js" => (ONEPW_JS, "text/javascript; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut headers = security_headers();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // They change with the binary: revalidate rather than cache across an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, body).into_response()
}

/// `GET /metrics-flow`: Firefox asks for a flow id before some sign-ins; there are no
/// metrics here, so it gets a fresh random one.
async fn metrics_flow() -> axum::Json<serde_json::Value> {
    let flow: [u8; 32] = rand::random();
    axum::Json(serde_json::json!({
        "flowId": hex::encode(flow),
        "flowBeginTime": now_ms(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_firefox_opens_has_a_view() {
        assert_eq!(View::for_path("/"), View::SignIn);
        assert_eq!(View::for_path("/signin"), View::SignIn);
        assert_eq!(View::for_path("/oauth/"), View::SignIn);
        assert_eq!(View::for_path("/signup"), View::SignUp);
        assert_eq!(View::for_path("/settings"), View::Settings);
        assert_eq!(View::for_path("/settings/clients"), View::Settings);
        assert_eq!(View::for_path("/settings/avatar/change"), View::Settings);
        assert_eq!(
            View::for_path("/post_verify/third_party_auth/set_password"),
            View::Settings
        );
        assert_eq!(
            View::for_path("/connect_another_device"),
            View::ConnectAnotherDevice
        );
        assert_eq!(View::for_path("/pair"), View::Pair);
        assert_eq!(View::for_path("/settingsx"), View::NotFound);
    }

    #[test]
    fn the_shell_names_the_api_under_the_public_path() {
        let url = url::Url::parse("https://example.org/sync/").unwrap();
        let html = fill(
            "{{API}} {{ASSETS}} {{ROOT}} {{VIEW}} {{SIGNUP}} {{ORIGIN}}",
            &url,
            View::SignUp,
            "closed",
        );
        assert_eq!(
            html,
            "/sync/auth/v1 /sync/accounts-assets /sync/ signup closed https://example.org/sync"
        );
    }

    #[test]
    fn the_shell_has_no_unfilled_placeholder() {
        let url = url::Url::parse("http://127.0.0.1:8000/").unwrap();
        let html = fill(SHELL, &url, View::SignIn, "open");
        assert!(!html.contains("{{"), "{html}");
        assert!(html.contains("src=\"/accounts-assets/app.js\""));
        assert!(html.contains("data-api=\"/auth/v1\""));
    }

    #[test]
    fn escaping_covers_attribute_breakers() {
        assert_eq!(escape("a\"<b>&"), "a&quot;&lt;b&gt;&amp;");
    }
}
