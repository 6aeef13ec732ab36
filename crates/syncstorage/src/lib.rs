//! The SyncStorage 1.5 storage node over HTTP.
//!
//! Request flow: [`router`] matches the route; the Hawk middleware authenticates; the
//! extractors validate path, query, headers and body; a handler makes one call on the
//! [`Store`](syncstorage_store::Store); [`error::ApiError`] is the one place a failure
//! becomes a Weave error body.
//!
//! **Invariant:** nothing here knows which database is behind the store, and the store
//! knows nothing of HTTP.
#![deny(missing_docs)]

pub mod auth;
pub mod error;
mod extractors;
mod handlers;
pub mod headers;
pub mod metrics;
mod router;
pub mod settings;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use router::router;
pub use settings::NodeSettings;
pub use state::AppState;
use syncstorage_store::Store;
use tokio::net::TcpListener;

/// Serves the node on `listener` until `shutdown` resolves, then finishes the requests in
/// flight and closes the store. Returns once the store is closed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    store.close().await;
    result
}

/// Purges expired records and batches every `interval`, until the task is aborted.
pub fn spawn_purge(store: Arc<dyn Store>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match store.purge_expired().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "purged expired records and batches"),
                Err(error) => tracing::warn!(%error, "purging expired records failed"),
            }
        }
    })
}
