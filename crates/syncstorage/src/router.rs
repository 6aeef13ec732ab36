//! The storage node's route table: every route in one place.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::require_hawk;
use crate::error::ApiError;
use crate::handlers::{bso, collection, dockerflow, info, storage};
use crate::headers::weave_timestamp;
use crate::metrics;
use crate::state::AppState;

/// The node's HTTP application.
///
/// The SyncStorage routes answer both at the root and under the public URL's path prefix,
/// so the node works whether or not a reverse proxy strips that prefix.
pub fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .route("/1.5/{uid}", axum::routing::delete(storage::delete_all))
        .route(
            "/1.5/{uid}/storage",
            axum::routing::delete(storage::delete_all),
        )
        .route("/1.5/{uid}/info/collections", get(info::collections))
        .route(
            "/1.5/{uid}/info/collection_counts",
            get(info::collection_counts),
        )
        .route(
            "/1.5/{uid}/info/collection_usage",
            get(info::collection_usage),
        )
        .route("/1.5/{uid}/info/quota", get(info::quota))
        .route(
            "/1.5/{uid}/storage/{collection}",
            get(collection::get)
                .post(collection::post)
                .delete(collection::delete),
        )
        .route(
            "/1.5/{uid}/storage/{collection}/{bso}",
            get(bso::get).put(bso::put).delete(bso::delete),
        )
        .route_layer(from_fn_with_state(state.clone(), require_hawk));
    let sync = authenticated
        .route("/1.5/{uid}/info/configuration", get(info::configuration))
        .route_layer(from_fn_with_state(state.clone(), metrics::track));

    let prefix = state
        .settings
        .public_url
        .path()
        .trim_end_matches('/')
        .to_owned();
    let mut app = Router::new()
        .route("/__heartbeat__", get(dockerflow::heartbeat))
        .route("/__lbheartbeat__", get(dockerflow::lbheartbeat))
        .route("/__version__", get(dockerflow::version))
        .merge(sync.clone());
    if !prefix.is_empty() {
        app = app.nest(&prefix, sync);
    }
    app.fallback(not_found)
        .layer(from_fn(weave_timestamp_except_dockerflow))
        .layer(from_fn_with_state(state.clone(), limit_content_length))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn weave_timestamp_except_dockerflow(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/__") {
        return next.run(request).await;
    }
    weave_timestamp(request, next).await
}

/// Refuses a declared body over `max_request_bytes` before reading any of it. Bodies
/// without a length are cut off at the same limit while they are read.
async fn limit_content_length(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.settings.limits.max_request_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => {
            ApiError::payload_too_large(format!("Content-Length {length} over {limit}"))
                .into_response()
        }
        _ => next.run(request).await,
    }
}
