//! The Remote Settings server's route table.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::changes::{collection_changeset, monitor_changeset, monitor_records};
use crate::handlers::{delete_object, get_object, patch_object, post_list, put_object};
use crate::lists::{delete_list, get_list, head_list};
use crate::root::{flush, heartbeat, hello, lbheartbeat, redirect_to_v1, version};
use crate::state::SettingsState;

/// The Kinto-compatible API under `/v1`, and redirects to it from the same paths without
/// the prefix.
pub fn router(state: SettingsState) -> Router {
    let api = routes(state.clone());
    let max = state.settings.batch_max_requests;
    let target = api.clone();
    api.route(
        "/v1/batch",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                crate::batch::run(target.clone(), max, headers, body)
            },
        ),
    )
}

/// Every route but `/v1/batch` (which runs its subrequests through these).
fn routes(state: SettingsState) -> Router {
    let list = || {
        get(get_list)
            .head(head_list)
            .post(post_list)
            .delete(delete_list)
    };
    let object = || {
        get(get_object)
            .put(put_object)
            .patch(patch_object)
            .delete(delete_object)
    };
    // Entries are written by the server only: they are listed and purged, never posted; the
    // snapshot rebuilds a collection from them.
    let history = if state.settings.history_enabled {
        Router::new()
            .route(
                "/v1/buckets/{bucket}/history",
                get(get_list).head(head_list).delete(delete_list),
            )
            .route(
                "/v1/buckets/{bucket}/snapshot/collections/{at}",
                get(crate::snapshot::get),
            )
    } else {
        Router::new()
    };
    Router::new()
        .route("/v1/", get(hello))
        .route("/v1", get(hello))
        .route("/v1/__heartbeat__", get(heartbeat))
        .route("/v1/__lbheartbeat__", get(lbheartbeat))
        .route("/v1/__version__", get(version))
        .route("/v1/__flush__", post(flush))
        .route(
            "/v1/buckets/monitor/collections/changes/changeset",
            get(monitor_changeset),
        )
        .route(
            "/v1/buckets/monitor/collections/changes/records",
            get(monitor_records),
        )
        .route(
            "/v1/buckets/{bucket}/collections/{collection}/changeset",
            get(collection_changeset),
        )
        .route("/v1/buckets", list())
        .route("/v1/buckets/{bucket}", object())
        .route("/v1/buckets/{bucket}/collections", list())
        .route("/v1/buckets/{bucket}/collections/{collection}", object())
        .route("/v1/buckets/{bucket}/groups", list())
        .route("/v1/buckets/{bucket}/groups/{group}", object())
        .route(
            "/v1/buckets/{bucket}/collections/{collection}/records",
            list(),
        )
        .route(
            "/v1/buckets/{bucket}/collections/{collection}/records/{record}",
            object(),
        )
        .route("/v1/permissions", get(crate::permissions::list))
        .route(
            "/v1/buckets/{bucket}/collections/{collection}/records/{record}/attachment",
            post(crate::attachments::upload)
                .delete(crate::attachments::delete)
                .layer(DefaultBodyLimit::max(state.settings.attachment_max_bytes)),
        )
        .route("/attachments/{*location}", get(crate::attachments::serve))
        .route("/v1/accounts", list())
        .route("/v1/accounts/{account}", object())
        .route("/buckets", any(redirect_to_v1))
        .route("/buckets/{*rest}", any(redirect_to_v1))
        .route("/accounts", any(redirect_to_v1))
        .route("/accounts/{*rest}", any(redirect_to_v1))
        .route("/batch", any(redirect_to_v1))
        .route("/permissions", any(redirect_to_v1))
        .route("/__flush__", any(redirect_to_v1))
        // Kinto's own 404 for any other path under `/v1`, rather than whichever fallback
        // the server merging this router has (the storage node's is Sync-shaped).
        .route("/v1/{*rest}", any(unknown_path))
        .merge(history)
        .merge(crate::admin::routes(&state))
        .merge(state.hooks.routes())
        .layer(DefaultBodyLimit::max(state.settings.max_request_bytes))
        .layer(from_fn_with_state(state.clone(), invalidate_after_writes))
        .layer(from_fn_with_state(state.clone(), backoff_headers))
        .layer(axum::middleware::from_fn(no_store))
        .layer(axum::middleware::from_fn(method_not_allowed))
        .with_state(state)
}

/// Kinto's load-shedding headers: `Backoff` on every answer while `backoff` is set (clients
/// then wait that many seconds before their next sync), and `Retry-After` on every 503.
async fn backoff_headers(
    State(state): State<SettingsState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(seconds) = state.settings.backoff {
        response
            .headers_mut()
            .insert("backoff", HeaderValue::from(seconds));
    }
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(state.settings.retry_after_seconds),
        );
    }
    response
}

/// Kinto's `Cache-Control: no-cache, no-store` on what the API reads, unless an endpoint
/// chose its own (the polled changesets): objects and lists change at any write, and a
/// browser that cached one (Kinto Admin) would show it stale after the next write.
async fn no_store(request: Request, next: Next) -> Response {
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let api = request.uri().path().starts_with("/v1");
    let mut response = next.run(request).await;
    if read && api && !response.headers().contains_key(header::CACHE_CONTROL) {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store"),
        );
    }
    response
}

/// Kinto's answer to a path under `/v1` that no route serves: the same path without its
/// trailing slash when it has one (a redirect), else a 404 with errno 111.
async fn unknown_path(OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    if path.len() > "/v1/".len() && path.ends_with('/') {
        let target = match uri.query() {
            Some(query) => format!("{}?{query}", path.trim_end_matches('/')),
            None => path.trim_end_matches('/').to_owned(),
        };
        return axum::response::Redirect::temporary(&target).into_response();
    }
    crate::error::KintoError::unknown_path().into_response()
}

/// Kinto's body on a 405 (a method a known path does not serve), where the router answers
/// an empty one.
async fn method_not_allowed(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut refused = crate::error::KintoError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            crate::error::Errno::MethodNotAllowed,
            "Method not allowed on this endpoint.",
        )
        .into_response();
        if let Some(allow) = allow {
            refused.headers_mut().insert(header::ALLOW, allow);
        }
        return refused;
    }
    response
}

/// Every successful write makes the cached read bodies stale: one place sees them all.
async fn invalidate_after_writes(
    State(state): State<SettingsState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        state.changes.invalidate();
    }
    response
}
