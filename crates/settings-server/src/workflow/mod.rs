//! The Remote Settings review workflow and content signer, as a
//! [`Hooks`](crate::hooks::Hooks) plugin (the reference's `kinto-remote-settings` signer).
//!
//! People edit records in a *source* collection (`main-workspace/cfr`). An editor asks for
//! a review (`status: to-review`): the records are copied to the *preview* collection
//! (`main-preview/cfr`) and signed there, so reviewers and preview clients can look. A
//! reviewer who is not the requester approves (`to-sign`): the records are copied to the
//! *destination* (`main/cfr`), which clients read, and signed; the source becomes `signed`.
//! Any record change puts the source back to `work-in-progress`; `to-rollback` drops the
//! changes; `to-resign` signs the published data again. The allowed moves and their
//! refusals are in [`status`]; what happens at each move in `transitions`; the plugin
//! interface (refusals, actions, the chain route, heartbeat, capability) in `plugin`.
//!
//! The signature covers the destination's live records and records timestamp
//! ([`content_signature::signed_payload`]) and is stored in the destination's metadata as
//! `signature` and `signatures`, with the `x5u` URL of the certificate chain, which this
//! plugin serves under `/v1/__certs__/`. Certificates are short-lived, so
//! [`Workflow::resign_all`] re-signs everything periodically ([`Workflow::spawn_resign_job`]).
//!
//! **Consistency:** the store has no multi-object transaction, so one plugin operation
//! (copy, sign, update the source) is several writes. Plugin operations and the
//! `work-in-progress` reset are serialized by one lock ([`Workflow::serialize`]), so a
//! record edited during an approval always leaves the source in `work-in-progress`; if an
//! operation fails half way the source's status is put back and the error returned. The
//! lock is the store's ([`SettingsStore::lock`]): on PostgreSQL it holds across every
//! process serving the database, so servers behind a load balancer cannot interleave two
//! publishes either.

mod journal;
mod plugin;
pub mod publish;
pub mod settings;
pub mod signer;
pub mod status;
mod transitions;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use settings_store::{Kind, SettingsStore, StoreError, StoreLock};

use crate::error::KintoError;
use crate::state::SettingsState;
pub use publish::Location;
pub use settings::{SignedResource, SignerSettings};
pub use signer::{ChainSigner, SignerError};
use status::ReviewRules;

/// Where the x5u chains are served, below the server root.
pub const CERTS_PATH: &str = "/v1/__certs__/";

/// The review workflow and signer.
pub struct Workflow {
    settings: SignerSettings,
    x5u_base: String,
    signer: RwLock<Option<Arc<ChainSigner>>>,
    /// Every chain this process signed with, by file name (old signatures stay checkable).
    chains: Arc<RwLock<HashMap<String, String>>>,
    /// This process's half of [`Workflow::serialize`].
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("settings", &self.settings)
            .field("x5u_base", &self.x5u_base)
            .field("signer", &self.current_signer())
            .finish_non_exhaustive()
    }
}

/// The name of the store lock that serializes the workflow's operations.
const WORKFLOW_LOCK: &str = "remote-settings-workflow";

/// Held while one workflow operation runs; see [`Workflow::serialize`]. The store's lock is
/// released first (fields drop in order), then this process's.
struct Serialized<'a> {
    _store: StoreLock,
    _process: tokio::sync::MutexGuard<'a, ()>,
}

/// The stages of one source collection.
#[derive(Debug, Clone)]
struct Stages {
    source: Location,
    preview: Option<Location>,
    destination: Location,
    to_review_enabled: bool,
}

impl Workflow {
    /// A workflow as configured; reads `key_file` and `chain_file` when both are set, and
    /// publishes unsigned collections (with a warning) otherwise. `public_url` is the
    /// server's root URL, under which the chain is served unless `x5u_base_url` says
    /// otherwise.
    pub fn new(settings: SignerSettings, public_url: &str) -> Result<Workflow, SignerError> {
        let keys = match (&settings.key_file, &settings.chain_file) {
            (Some(key), Some(chain)) => Some((read(key)?, read(chain)?)),
            (None, None) => None,
            _ => {
                return Err(SignerError::Invalid(
                    "signer.key_file and signer.chain_file go together".into(),
                ));
            }
        };
        Self::with_keys(
            settings,
            public_url,
            keys.as_ref().map(|(k, c)| (k.as_str(), c.as_str())),
        )
    }

    /// A workflow signing with `keys` (key PEM, chain PEM), or unsigned when None.
    pub fn with_keys(
        settings: SignerSettings,
        public_url: &str,
        keys: Option<(&str, &str)>,
    ) -> Result<Workflow, SignerError> {
        settings.validate().map_err(SignerError::Invalid)?;
        let x5u_base = settings
            .x5u_base_url
            .clone()
            .unwrap_or_else(|| format!("{}{CERTS_PATH}", public_url.trim_end_matches('/')));
        let workflow = Workflow {
            settings,
            x5u_base,
            signer: RwLock::new(None),
            chains: Arc::new(RwLock::new(HashMap::new())),
            lock: tokio::sync::Mutex::new(()),
        };
        match keys {
            Some((key, chain)) => workflow.install_keys(key, chain)?,
            None => tracing::warn!(
                "content signing is disabled (no signer.key_file/chain_file): reviewed collections are published unsigned; `syncstack settings pki init` creates keys"
            ),
        }
        Ok(workflow)
    }

    /// Waits until no other workflow operation runs, in this process or (on PostgreSQL) any
    /// other process on the database. This process's mutex is taken first, so that at most
    /// one of its tasks waits on the store's lock, which holds a database connection while
    /// it waits: many waiters would otherwise take every pooled connection and leave the
    /// holder none to write with.
    async fn serialize(&self, store: &dyn SettingsStore) -> Result<Serialized<'_>, StoreError> {
        let process = self.lock.lock().await;
        let held = store.lock(WORKFLOW_LOCK).await?;
        Ok(Serialized {
            _store: held,
            _process: process,
        })
    }

    /// Signs with a new key and chain from now on (a rotated certificate); the old chain
    /// stays served. Call [`resign_all`](Self::resign_all) to move every signature over.
    pub fn install_keys(&self, key_pem: &str, chain_pem: &str) -> Result<(), SignerError> {
        let loaded = ChainSigner::from_pem(
            key_pem,
            chain_pem,
            &self.settings.signer_name,
            &self.x5u_base,
        )?;
        let days = loaded.expires_in(signer::now_unix()) / 86_400;
        tracing::info!(x5u = %loaded.x5u, days_left = days, "content signing key loaded");
        self.chains
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(loaded.chain_name.clone(), loaded.chain_pem.clone());
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(loaded));
        Ok(())
    }

    /// Reads the configured key and chain files again and installs them if the chain
    /// changed. Returns whether it did.
    pub fn reload_keys(&self) -> Result<bool, SignerError> {
        let (Some(key), Some(chain)) = (&self.settings.key_file, &self.settings.chain_file) else {
            return Ok(false);
        };
        let chain_pem = read(chain)?;
        if self
            .current_signer()
            .is_some_and(|s| s.chain_pem == chain_pem)
        {
            return Ok(false);
        }
        self.install_keys(&read(key)?, &chain_pem)?;
        Ok(true)
    }

    /// The settings.
    pub fn settings(&self) -> &SignerSettings {
        &self.settings
    }

    /// The key signing now, if any.
    pub fn current_signer(&self) -> Option<Arc<ChainSigner>> {
        self.signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-signs every published destination and preview collection (without moving
    /// records), so that no signature outlives its certificate. Returns how many source
    /// collections were re-signed; without a key, none.
    pub async fn resign_all(&self, state: &SettingsState) -> Result<usize, KintoError> {
        self.resign(state, false).await
    }

    /// Re-signs the collections whose signature was not made with the current chain (a
    /// rotated certificate) or that are unsigned while a key is configured.
    pub async fn resign_outdated(&self, state: &SettingsState) -> Result<usize, KintoError> {
        self.resign(state, true).await
    }

    /// Re-signs what another certificate signed (call it at start, before serving, so a
    /// rotated certificate is in use at once); failures are logged, not returned.
    pub async fn resign_at_start(&self, state: &SettingsState) {
        match self.resign_outdated(state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                collections = n,
                "re-signed collections signed with another certificate"
            ),
            Err(error) => tracing::error!(error = %error.message, "re-signing at start failed"),
        }
    }

    /// Starts the periodic re-signature: every `resign_interval_secs`, reloads the key
    /// files (so a renewed certificate is picked up without a restart) and re-signs
    /// everything.
    pub fn spawn_resign_job(self: Arc<Self>, state: SettingsState) -> tokio::task::JoinHandle<()> {
        let every = Duration::from_secs(self.settings.resign_interval_secs.max(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = self.reload_keys() {
                    tracing::error!(%error, "reloading the signing key failed; keeping the current one");
                }
                match self.resign_all(&state).await {
                    Ok(n) => tracing::info!(collections = n, "re-signed published collections"),
                    Err(error) => {
                        tracing::error!(error = %error.message, "periodic re-signature failed")
                    }
                }
            }
        })
    }

    fn rules<'a>(&self, stages: &Stages, groups: &'a (String, String)) -> ReviewRules<'a> {
        ReviewRules {
            to_review_enabled: stages.to_review_enabled,
            allow_self_approval: self.settings.allow_self_approval,
            editors_group: &groups.0,
            reviewers_group: &groups.1,
        }
    }

    /// The editors and reviewers group ids of a source collection.
    fn groups(&self, source: &Location) -> (String, String) {
        let name = |template: &str| template.replace("{collection_id}", &source.collection);
        (
            name(&self.settings.editors_group),
            name(&self.settings.reviewers_group),
        )
    }

    /// The stages of `bucket/collection` if it is a source collection under review.
    fn source_stages(&self, bucket: &str, collection: &str) -> Option<Stages> {
        self.settings
            .resources
            .iter()
            .find(|r| r.source == bucket && r.collection.as_deref().is_none_or(|c| c == collection))
            .map(|r| self.stages(r, collection))
    }

    /// The stages of `bucket/collection` if it is a preview or destination collection.
    fn published_stages(&self, bucket: &str, collection: &str) -> Option<Stages> {
        self.settings
            .resources
            .iter()
            .find(|r| {
                (r.destination == bucket || r.preview.as_deref() == Some(bucket))
                    && r.collection.as_deref().is_none_or(|c| c == collection)
            })
            .map(|r| self.stages(r, collection))
    }

    fn stages(&self, resource: &SignedResource, collection: &str) -> Stages {
        let at = |bucket: &str| Location {
            bucket: bucket.to_owned(),
            collection: collection.to_owned(),
        };
        Stages {
            source: at(&resource.source),
            preview: resource.preview.as_deref().map(at),
            destination: at(&resource.destination),
            to_review_enabled: resource
                .to_review_enabled
                .unwrap_or(self.settings.to_review_enabled),
        }
    }

    /// Re-signs the destination and preview of every source collection (only those not
    /// signed with the current chain when `only_outdated`).
    async fn resign(
        &self,
        state: &SettingsState,
        only_outdated: bool,
    ) -> Result<usize, KintoError> {
        // Without a key, re-signing would only strip signatures that may still be valid.
        let Some(current_x5u) = self.current_signer().map(|s| s.x5u.clone()) else {
            return Ok(0);
        };
        let journal = journal::Journal::new(state.store.clone());
        let result = self
            .resign_through(&journal, &current_x5u, only_outdated)
            .await;
        let announced = self.announce(state, &journal).await;
        let count = result?;
        announced?;
        if count > 0 {
            state.changes.invalidate();
        }
        Ok(count)
    }

    /// [`resign`](Self::resign)'s writes, through `store`; returns how many source
    /// collections were re-signed.
    async fn resign_through(
        &self,
        store: &dyn SettingsStore,
        current_x5u: &str,
        only_outdated: bool,
    ) -> Result<usize, KintoError> {
        let mut count = 0;
        for resource in &self.settings.resources {
            let collections = match &resource.collection {
                Some(collection) => vec![collection.clone()],
                None => store
                    .list(
                        Kind::Collection,
                        &format!("/buckets/{}", resource.source),
                        false,
                    )
                    .await?
                    .into_iter()
                    .map(|o| o.id)
                    .collect(),
            };
            for collection in collections {
                let stages = self.stages(resource, &collection);
                let _guard = self.serialize(store).await?;
                let Some(source) = stages.source.metadata(store).await? else {
                    continue;
                };
                let targets: Vec<&Location> = [Some(&stages.destination), stages.preview.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let mut signed = false;
                for target in targets {
                    let Some(metadata) = target.metadata(store).await? else {
                        continue;
                    };
                    let x5u = metadata
                        .data
                        .get("signature")
                        .and_then(|s| s.get("x5u"))
                        .and_then(Value::as_str);
                    if only_outdated && x5u == Some(current_x5u) {
                        continue;
                    }
                    self.sign(store, target, &source.data).await?;
                    signed = true;
                }
                if signed {
                    publish::update_metadata(
                        store,
                        &stages.source,
                        vec![
                            ("last_signature_by", json!(self.settings.plugin_userid)),
                            ("last_signature_date", json!(signer::now_iso())),
                        ],
                    )
                    .await?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

fn read(path: &std::path::Path) -> Result<String, SignerError> {
    std::fs::read_to_string(path).map_err(|e| SignerError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
