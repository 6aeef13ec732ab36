//! The state every handler shares.

use std::sync::Arc;

use syncstorage_store::Store;

use crate::auth::NonceCache;
use crate::metrics::Metrics;
use crate::settings::NodeSettings;

/// Shared by all requests: the store, the settings, the nonce cache and the metrics.
#[derive(Clone)]
pub struct AppState {
    /// Where records live.
    pub store: Arc<dyn Store>,
    /// Run-time settings.
    pub settings: Arc<NodeSettings>,
    /// Replay protection.
    pub nonces: Arc<NonceCache>,
    /// Request and pool metrics.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State for a node serving `store` with `settings`.
    pub fn new(store: Arc<dyn Store>, settings: NodeSettings) -> Self {
        let nonces = NonceCache::new(settings.hawk_skew * 2, settings.nonce_cache_capacity);
        AppState {
            store,
            settings: Arc::new(settings),
            nonces: Arc::new(nonces),
            metrics: Arc::new(Metrics::new()),
        }
    }
}
