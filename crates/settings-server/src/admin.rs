//! Kinto Admin served from this server's own origin, at `/v1/admin/`, as Kinto's admin
//! plugin serves it.
//!
//! Kinto Admin's built files are published in no package, so the operator builds them
//! (`npm run build:kinto-single` in its repository: assets under `/v1/admin/`, and the API
//! taken from the page's own URL) and names the directory in `admin_dir`. Served from the
//! API's origin, the console needs no CORS and no server URL typed at login. The files
//! are answered by tower-http's `ServeDir` (no path escapes the directory; conditional
//! and range requests), always revalidated (`no-cache`), so an upgraded build shows at
//! once.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::error::KintoError;
use crate::state::SettingsState;

/// Where the console is served.
const PREFIX: &str = "/v1/admin";

/// Checks that `dir` holds a built console (its `index.html`), so that a mistyped path
/// stops the server at start instead of serving 404s.
pub fn check_dir(dir: &str) -> Result<(), String> {
    let index = Path::new(dir).join("index.html");
    if index.is_file() {
        Ok(())
    } else {
        Err(format!(
            "settings.admin_dir: {} does not exist; build Kinto Admin with `npm run build:kinto-single` and give its build directory",
            index.display()
        ))
    }
}

/// The console's routes, when `admin_dir` is set: the files under `/v1/admin/`, and
/// `/v1/admin` redirected there (the console finds the API by cutting its own URL at
/// `/admin/`).
pub fn routes(state: &SettingsState) -> Router<SettingsState> {
    if state.settings.admin_dir.is_none() {
        return Router::new();
    }
    Router::new()
        // Relative, so that it holds behind a proxy that publishes /v1 under a prefix.
        .route(PREFIX, get(|| async { Redirect::temporary("admin/") }))
        .route(&format!("{PREFIX}/"), get(file).head(file))
        .route(&format!("{PREFIX}/{{*path}}"), get(file).head(file))
}

/// The root URL's `admin` capability, as Kinto announces it, when the console is served.
pub async fn capability(state: &SettingsState) -> Option<Value> {
    let dir = state.settings.admin_dir.as_deref()?;
    // Kinto Admin's build writes its version beside index.html.
    let version = tokio::fs::read_to_string(Path::new(dir).join("VERSION"))
        .await
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    Some(json!({
        "description": "Serves the admin console.",
        "url": "https://github.com/Kinto/kinto-admin/",
        "version": version,
    }))
}

/// One file of the console, `index.html` for the directory itself.
async fn file(State(state): State<SettingsState>, request: Request) -> Response {
    let Some(dir) = state.settings.admin_dir.as_deref() else {
        return KintoError::unknown_path().into_response();
    };
    let (mut parts, body) = request.into_parts();
    let inner = match parts.uri.path().strip_prefix(PREFIX) {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => "/".to_owned(),
    };
    parts.uri = match Uri::try_from(inner) {
        Ok(uri) => uri,
        Err(_) => return KintoError::unknown_path().into_response(),
    };
    let served = ServeDir::new(dir)
        .oneshot(Request::from_parts(parts, body))
        .await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        return KintoError::unknown_path().into_response();
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
