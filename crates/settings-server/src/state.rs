//! What every request shares.

use std::sync::Arc;

use settings_store::SettingsStore;

use crate::auth::AuthCache;
use crate::changes::ChangesCache;
use crate::history::Recorder;
use crate::hooks::{Hooks, NoHooks};
use crate::list_cache::ListCache;
use crate::settings::KintoSettings;

/// Shared state of the server.
#[derive(Clone)]
pub struct SettingsState {
    /// Objects and permissions.
    pub store: Arc<dyn SettingsStore>,
    /// Kinto settings.
    pub settings: Arc<KintoSettings>,
    /// Recently verified credentials.
    pub auth_cache: Arc<AuthCache>,
    /// Cached bodies of the read endpoints, invalidated by every write.
    pub changes: Arc<ChangesCache>,
    /// Bodies of lists read whole, while the list is unchanged.
    pub lists: Arc<ListCache>,
    /// Plugins around writes (the review workflow).
    pub hooks: Arc<dyn Hooks>,
}

impl SettingsState {
    /// State over `store` with `settings`.
    pub fn new(store: Arc<dyn SettingsStore>, settings: KintoSettings) -> Self {
        SettingsState {
            store,
            settings: Arc::new(settings),
            auth_cache: Arc::new(AuthCache::default()),
            changes: Arc::new(ChangesCache::default()),
            lists: Arc::new(ListCache::default()),
            hooks: Arc::new(NoHooks),
        }
        .with_hooks(Arc::new(NoHooks))
    }

    /// The same state with `hooks` around writes (and the history plugin around them, when
    /// `history_enabled`).
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = if self.settings.history_enabled {
            Arc::new(Recorder::around(hooks))
        } else {
            hooks
        };
        self
    }
}
