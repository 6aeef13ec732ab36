//! What the plugin does when a source collection is created, changes status or is
//! deleted, and when one of its records changes: the reference's `sign_collection_data`,
//! `set_work_in_progress_status` and `cleanup_preview_destination`.

use serde_json::{Map, Value, json};
use settings_store::{Kind, SettingsStore};

use super::publish::{self, Location};
use super::signer;
use super::status::{self, Status};
use super::{Stages, Workflow};
use crate::access::{Action, allowed};
use crate::auth::Caller;
use crate::error::KintoError;

impl Workflow {
    /// Signs what `target` holds now.
    pub(super) async fn sign(
        &self,
        store: &dyn SettingsStore,
        target: &Location,
        source_metadata: &Map<String, Value>,
    ) -> Result<(), KintoError> {
        publish::ensure_published_collection(store, target, &self.settings.plugin_userid).await?;
        let signature = match self.current_signer() {
            Some(signer) => {
                let (records, timestamp) = publish::signed_content(store, target).await?;
                let signature = signer.sign(&records, timestamp).map_err(|reason| {
                    status::invalid(format!("{} cannot be signed: {reason}", target.uri()))
                })?;
                Some(signature)
            }
            None => None,
        };
        publish::write_signature(store, target, source_metadata, signature).await?;
        Ok(())
    }

    /// Copies the source's records to `target` and signs it.
    pub(super) async fn publish(
        &self,
        store: &dyn SettingsStore,
        source: &Location,
        target: &Location,
        source_metadata: &Map<String, Value>,
    ) -> Result<usize, KintoError> {
        publish::ensure_published_collection(store, target, &self.settings.plugin_userid).await?;
        let changed = publish::copy_records(store, source, target).await?;
        self.sign(store, target, source_metadata).await?;
        Ok(changed)
    }

    /// A record of a source collection changed: back to work in progress.
    pub(super) async fn record_changed(
        &self,
        store: &dyn SettingsStore,
        stages: &Stages,
        caller: &Caller,
    ) -> Result<(), KintoError> {
        let _guard = self.serialize(store).await?;
        if stages.source.metadata(store).await?.is_none() {
            return Ok(());
        }
        publish::update_metadata(
            store,
            &stages.source,
            vec![
                ("status", json!(Status::WorkInProgress.as_str())),
                ("last_edit_by", user(caller)),
                ("last_edit_date", json!(signer::now_iso())),
            ],
        )
        .await?;
        Ok(())
    }

    /// A source collection was created: its groups, its published copies (empty and
    /// signed), and status `signed`.
    pub(super) async fn source_created(
        &self,
        store: &dyn SettingsStore,
        stages: &Stages,
        caller: &Caller,
        metadata: &Map<String, Value>,
    ) -> Result<(), KintoError> {
        let _guard = self.serialize(store).await?;
        let bucket_uri = stages.source.bucket_uri();
        if let Some(creator) = &caller.user_id
            && allowed(store, caller, &[bucket_uri], Action::Create(Kind::Group)).await?
        {
            let (editors, reviewers) = self.groups(&stages.source);
            publish::create_groups(store, &stages.source, creator, [&editors, &reviewers]).await?;
        }
        if let Some(preview) = &stages.preview {
            self.publish(store, &stages.source, preview, metadata)
                .await?;
        }
        self.publish(store, &stages.source, &stages.destination, metadata)
            .await?;
        let now = json!(signer::now_iso());
        publish::update_metadata(
            store,
            &stages.source,
            vec![
                ("status", json!(Status::Signed.as_str())),
                ("last_signature_by", user(caller)),
                ("last_signature_date", now),
            ],
        )
        .await?;
        Ok(())
    }

    /// A source collection was deleted: its groups go, its published copies are emptied
    /// (leaving tombstones for clients) and signed.
    pub(super) async fn source_deleted(
        &self,
        store: &dyn SettingsStore,
        stages: &Stages,
        before: &Map<String, Value>,
    ) -> Result<(), KintoError> {
        let _guard = self.serialize(store).await?;
        let (editors, reviewers) = self.groups(&stages.source);
        publish::delete_groups(store, &stages.source, [&editors, &reviewers]).await?;
        for target in [stages.preview.as_ref(), Some(&stages.destination)]
            .into_iter()
            .flatten()
        {
            if target.metadata(store).await?.is_none() {
                continue;
            }
            store.delete_many(Kind::Record, &target.uri(), None).await?;
            self.sign(store, target, before).await?;
        }
        Ok(())
    }

    /// The status of a source collection changed (already checked): act on it.
    pub(super) async fn status_changed(
        &self,
        store: &dyn SettingsStore,
        stages: &Stages,
        caller: &Caller,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
    ) -> Result<(), KintoError> {
        let old = before
            .get("status")
            .and_then(Value::as_str)
            .and_then(Status::parse);
        let Some(new) = after
            .get("status")
            .and_then(Value::as_str)
            .and_then(Status::parse)
        else {
            return Ok(());
        };
        let who = user(caller);
        let now = json!(signer::now_iso());
        let source = &stages.source;
        match new {
            Status::ToReview => {
                if let Some(preview) = &stages.preview {
                    self.publish(store, source, preview, after).await?;
                }
                let mut fields = vec![
                    ("last_review_request_by", who),
                    ("last_review_request_date", now),
                ];
                // A new request without a comment does not keep the previous one.
                if before.get("last_editor_comment") == after.get("last_editor_comment") {
                    fields.push(("last_editor_comment", json!("")));
                }
                publish::update_metadata(store, source, fields).await?;
            }
            Status::ToSign => {
                if let Some(preview) = &stages.preview {
                    self.publish(store, source, preview, after).await?;
                }
                self.publish(store, source, &stages.destination, after)
                    .await?;
                let mut fields = vec![("status", json!(Status::Signed.as_str()))];
                if old != Some(Status::Signed) {
                    fields.push(("last_review_by", who.clone()));
                    fields.push(("last_review_date", now.clone()));
                }
                fields.push(("last_signature_by", who));
                fields.push(("last_signature_date", now));
                publish::update_metadata(store, source, fields).await?;
            }
            Status::ToResign => {
                self.sign(store, &stages.destination, after).await?;
                if let Some(preview) = &stages.preview {
                    self.sign(store, preview, after).await?;
                }
                let previous = old
                    .filter(|s| *s != Status::ToResign)
                    .unwrap_or(Status::Signed);
                publish::update_metadata(
                    store,
                    source,
                    vec![
                        ("status", json!(previous.as_str())),
                        ("last_signature_by", who),
                        ("last_signature_date", now),
                    ],
                )
                .await?;
            }
            Status::ToRollback => {
                publish::ensure_published_collection(
                    store,
                    &stages.destination,
                    &self.settings.plugin_userid,
                )
                .await?;
                publish::copy_records(store, &stages.destination, source).await?;
                if let Some(preview) = &stages.preview {
                    self.publish(store, &stages.destination, preview, after)
                        .await?;
                }
                publish::update_metadata(
                    store,
                    source,
                    vec![
                        ("status", json!(Status::Signed.as_str())),
                        ("last_editor_comment", json!("")),
                        ("last_reviewer_comment", json!("")),
                        ("last_edit_by", who),
                        ("last_edit_date", now),
                    ],
                )
                .await?;
            }
            // A decline (to-review → work-in-progress) changes nothing else; `signed` is
            // refused before it is stored.
            Status::WorkInProgress | Status::Signed => {}
        }
        Ok(())
    }

    /// After a failed operation, puts the source's status back to what it was, so the
    /// request can be retried (best effort: the failure is what the client is told).
    pub(super) async fn restore_status(
        &self,
        store: &dyn SettingsStore,
        stages: &Stages,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
        error: &KintoError,
    ) {
        tracing::error!(collection = %stages.source.uri(), status = ?after.get("status"), error = %error.message, "review workflow step failed; restoring the previous status");
        let previous = before.get("status").cloned().unwrap_or(Value::Null);
        if let Err(restore) =
            publish::update_metadata(store, &stages.source, vec![("status", previous)]).await
        {
            tracing::error!(%restore, "restoring the status failed");
        }
    }
}

/// The caller's user id as a tracking field value.
fn user(caller: &Caller) -> Value {
    caller
        .user_id
        .clone()
        .map(Value::String)
        .unwrap_or(Value::Null)
}
