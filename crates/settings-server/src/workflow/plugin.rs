//! The workflow as a server plugin: refusals before writes, actions after them, the
//! certificate chain route, the heartbeat check and the root URL capability.

use async_trait::async_trait;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use settings_store::Kind;

use super::journal::{Journal, plugin_caller};
use super::status::{self, Requester};
use super::{CERTS_PATH, Workflow, signer};
use crate::error::{Errno, KintoError};
use crate::hooks::{Hooks, PendingWrite, WriteEvent};
use crate::state::SettingsState;

/// The bucket id of a collection's parent URI (`/buckets/b`).
fn bucket_of(parent: &str) -> &str {
    parent.strip_prefix("/buckets/").unwrap_or(parent)
}

/// `(bucket, collection)` of a record's parent URI (`/buckets/b/collections/c`).
fn collection_of(parent: &str) -> Option<(&str, &str)> {
    let rest = parent.strip_prefix("/buckets/")?;
    let (bucket, collection) = rest.split_once("/collections/")?;
    Some((bucket, collection))
}

#[async_trait]
impl Hooks for Workflow {
    async fn check(
        &self,
        state: &SettingsState,
        write: &PendingWrite<'_>,
    ) -> Result<(), KintoError> {
        let resource = write.resource;
        let Some(id) = resource.id.as_deref() else {
            return Ok(());
        };
        match resource.kind {
            Kind::Record => {
                let Some((bucket, collection)) = collection_of(&resource.parent) else {
                    return Ok(());
                };
                if let Some(data) = write.data
                    && !self.settings.allow_floats
                    && self.source_stages(bucket, collection).is_some()
                {
                    status::refuse_floats(data)?;
                }
                Ok(())
            }
            Kind::Collection => {
                let bucket = bucket_of(&resource.parent);
                if let Some(stages) = self.source_stages(bucket, id) {
                    let Some(data) = write.data else {
                        return Ok(());
                    };
                    let groups = self.groups(&stages.source);
                    let group_uri = |g: &str| format!("{}/groups/{g}", stages.source.bucket_uri());
                    let who = Requester {
                        user_id: write.caller.user_id.as_deref(),
                        is_editor: write.caller.principals.contains(&group_uri(&groups.0)),
                        is_reviewer: write.caller.principals.contains(&group_uri(&groups.1)),
                    };
                    status::check_collection_write(
                        write.before.map(|o| &o.data),
                        data,
                        &who,
                        &self.rules(&stages, &groups),
                    )
                } else if let Some(stages) = self.published_stages(bucket, id)
                    && write.data.is_none()
                    && stages
                        .source
                        .metadata(state.store.as_ref())
                        .await?
                        .is_some()
                {
                    Err(status::forbidden("Collection is in use."))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    async fn written(
        &self,
        state: &SettingsState,
        event: &WriteEvent<'_>,
    ) -> Result<(), KintoError> {
        if event.caller.user_id.as_deref() == Some(self.settings.plugin_userid.as_str()) {
            // The plugin's own writes, announced below: acting on them would loop.
            return Ok(());
        }
        let journal = Journal::new(state.store.clone());
        let result = self.act(state, &journal, event).await;
        let announced = self.announce(state, &journal).await;
        result.and(announced)
    }

    fn routes(&self) -> axum::Router<SettingsState> {
        let chains = self.chains.clone();
        axum::Router::new().route(
            &format!("{CERTS_PATH}{{name}}"),
            get(move |Path(name): Path<String>| {
                let chain = chains
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&name)
                    .cloned();
                async move { serve_chain(chain) }
            }),
        )
    }

    async fn health(&self, _state: &SettingsState) -> Vec<(String, bool)> {
        let Some(signer) = self.current_signer() else {
            return Vec::new();
        };
        let left = signer.expires_in(signer::now_unix());
        let margin = self
            .settings
            .resign_before_expiry_days
            .saturating_mul(86_400) as i64;
        let ok = left > margin;
        if !ok {
            tracing::warn!(
                x5u = %signer.x5u,
                days_left = left / 86_400,
                "the content-signing certificate expires soon: renew it (clients refuse signatures from an expired certificate)"
            );
        }
        vec![("signer".to_owned(), ok)]
    }

    fn capabilities(&self) -> Vec<(String, Value)> {
        let location = |bucket: &str, collection: &Option<String>| json!({"bucket": bucket, "collection": collection});
        let resources: Vec<Value> = self
            .settings
            .resources
            .iter()
            .map(|r| {
                let mut entry = Map::new();
                entry.insert("source".into(), location(&r.source, &r.collection));
                if let Some(preview) = &r.preview {
                    entry.insert("preview".into(), location(preview, &r.collection));
                }
                entry.insert(
                    "destination".into(),
                    location(&r.destination, &r.collection),
                );
                if let Some(enabled) = r
                    .to_review_enabled
                    .filter(|e| *e != self.settings.to_review_enabled)
                {
                    entry.insert("to_review_enabled".into(), json!(enabled));
                }
                Value::Object(entry)
            })
            .collect();
        vec![(
            "signer".to_owned(),
            json!({
                "description": "Digital signatures for integrity and authenticity of records.",
                "url": "https://github.com/mozilla/remote-settings/tree/main/kinto-remote-settings",
                "version": env!("CARGO_PKG_VERSION"),
                "resources": resources,
                "editors_group": self.settings.editors_group,
                "reviewers_group": self.settings.reviewers_group,
                "to_review_enabled": self.settings.to_review_enabled,
                "group_check_enabled": true,
                "plugin_userid": self.settings.plugin_userid,
            }),
        )]
    }
}

impl Workflow {
    /// What a committed write makes the workflow do, every write of it going through
    /// `store` (the journal).
    async fn act(
        &self,
        state: &SettingsState,
        store: &Journal,
        event: &WriteEvent<'_>,
    ) -> Result<(), KintoError> {
        let resource = event.resource;
        match resource.kind {
            Kind::Record => {
                if let Some((bucket, collection)) = collection_of(&resource.parent)
                    && let Some(stages) = self.source_stages(bucket, collection)
                {
                    self.record_changed(store, &stages, event.caller).await?;
                }
                Ok(())
            }
            Kind::Collection => {
                let Some(stages) = resource
                    .id
                    .as_deref()
                    .and_then(|id| self.source_stages(bucket_of(&resource.parent), id))
                else {
                    return Ok(());
                };
                let empty = Map::new();
                let before = event.before.map(|o| &o.data);
                if event.after.deleted {
                    return self
                        .source_deleted(store, &stages, before.unwrap_or(&empty))
                        .await;
                }
                let Some(before) = before else {
                    return self
                        .source_created(store, &stages, event.caller, &event.after.data)
                        .await;
                };
                if before.get("status") == event.after.data.get("status") {
                    return Ok(());
                }
                let result = {
                    let _guard = self.serialize(store).await?;
                    self.status_changed(store, &stages, event.caller, before, &event.after.data)
                        .await
                };
                if let Err(error) = &result {
                    self.restore_status(store, &stages, before, &event.after.data, error)
                        .await;
                    // What was published before the failure is live: drop cached bodies
                    // (a successful request does it anyway).
                    state.changes.invalidate();
                }
                result
            }
            _ => Ok(()),
        }
    }

    /// Announces the writes noted in `journal` to the server's hooks as writes of the
    /// plugin user, as Kinto's plugin notifies its own: the history records them, and
    /// [`Hooks::written`] above ignores them.
    pub(super) async fn announce(
        &self,
        state: &SettingsState,
        journal: &Journal,
    ) -> Result<(), KintoError> {
        let caller = plugin_caller(&self.settings.plugin_userid);
        for write in journal.take() {
            let event = WriteEvent {
                caller: &caller,
                resource: &write.resource,
                before: write.before.as_ref(),
                after: &write.after,
            };
            state.hooks.written(state, &event).await?;
        }
        Ok(())
    }
}

fn serve_chain(chain: Option<String>) -> Response {
    match chain {
        Some(pem) => {
            let mut response = (StatusCode::OK, pem).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            );
            // A chain's name changes with its certificate, so its content never does.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            response
        }
        None => KintoError::new(
            StatusCode::NOT_FOUND,
            Errno::MissingResource,
            "certificate chain not found",
        )
        .into_response(),
    }
}
