//! Extension points around writes, as Kinto's event listeners: a plugin (the review
//! workflow and signer) can refuse a write before it happens and act after it happened.
//!
//! Handlers call [`Hooks::check`] before every object write or delete and [`Hooks::written`]
//! after it committed. A server without plugins uses [`NoHooks`].

use async_trait::async_trait;
use serde_json::{Map, Value};
use settings_store::Object;

use crate::auth::Caller;
use crate::error::KintoError;
use crate::resource::Resource;
use crate::state::SettingsState;

/// A write about to happen.
pub struct PendingWrite<'a> {
    /// Who writes.
    pub caller: &'a Caller,
    /// The object written.
    pub resource: &'a Resource,
    /// The object before the write, if it existed.
    pub before: Option<&'a Object>,
    /// Its new fields; None for a delete.
    pub data: Option<&'a Map<String, Value>>,
}

/// A write that committed.
pub struct WriteEvent<'a> {
    /// Who wrote.
    pub caller: &'a Caller,
    /// The object written.
    pub resource: &'a Resource,
    /// The object before the write, if it existed.
    pub before: Option<&'a Object>,
    /// The object after the write (a tombstone for a delete).
    pub after: &'a Object,
}

/// What a plugin can do around writes.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// Refuses a write before anything is stored.
    async fn check(
        &self,
        _state: &SettingsState,
        _write: &PendingWrite<'_>,
    ) -> Result<(), KintoError> {
        Ok(())
    }

    /// Acts on a committed write (e.g. copy and sign on approval).
    async fn written(
        &self,
        _state: &SettingsState,
        _event: &WriteEvent<'_>,
    ) -> Result<(), KintoError> {
        Ok(())
    }

    /// Extra routes the plugin serves (e.g. certificate chains).
    fn routes(&self) -> axum::Router<SettingsState> {
        axum::Router::new()
    }

    /// Named checks for `__heartbeat__` (false makes it answer 503).
    async fn health(&self, _state: &SettingsState) -> Vec<(String, bool)> {
        Vec::new()
    }

    /// Capabilities announced by the root URL, by name.
    fn capabilities(&self) -> Vec<(String, Value)> {
        Vec::new()
    }
}

/// No plugin.
pub struct NoHooks;

impl Hooks for NoHooks {}
