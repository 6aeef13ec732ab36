//! The state every client shares: the storage client, the account's key bundle, and the
//! cached `meta/global` and `crypto/keys`, with the checks of "The Life of a Sync".
//!
//! A [`Session`] only reads the server's setup and reports what it found
//! ([`RemoteSetup`]); deciding what to do about a missing or outdated setup is the tier's
//! job: a Tier 1 client repairs it (fresh start), a Tier 2 client stops and retries later.

use std::collections::BTreeMap;

use serde_json::Value;
use sync_proto::SyncTimestamp;
use tokio::sync::Mutex;

use crate::crypto::{self, CryptoError};
use crate::error::ClientError;
use crate::keys::KeyBundle;
use crate::records::{CollectionKeys, MetaGlobal, STORAGE_VERSION};
use crate::storage::{CRYPTO_COLLECTION, OutgoingBso, RawBso, StorageClient};

/// The collection and id of `meta/global`.
pub const META: (&str, &str) = ("meta", "global");
/// The collection and id of `crypto/keys`.
pub const KEYS: (&str, &str) = (CRYPTO_COLLECTION, "keys");

/// What the server's setup looks like.
#[derive(Debug)]
pub enum RemoteSetup {
    /// Usable `meta/global` and `crypto/keys`.
    Ready,
    /// `meta/global` is missing, lacks a syncID, or has a storage version below 5.
    NeedsFreshStart(String),
    /// `meta/global` is fine but `crypto/keys` is missing.
    NeedsKeys,
}

#[derive(Default)]
struct Cached {
    endpoint: Option<String>,
    meta: Option<(MetaGlobal, SyncTimestamp)>,
    keys: Option<(CollectionKeys, SyncTimestamp)>,
}

/// A connection to one account's storage.
pub struct Session {
    pub(crate) storage: StorageClient,
    sync_key: KeyBundle,
    cached: Mutex<Cached>,
}

/// A decrypted record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record id.
    pub id: String,
    /// When the server stored it.
    pub modified: SyncTimestamp,
    /// The cleartext object.
    pub cleartext: Value,
    /// The sortindex.
    pub sortindex: Option<i32>,
}

impl Record {
    /// Whether this is a tombstone (`{"id": ..., "deleted": true}`).
    pub fn is_tombstone(&self) -> bool {
        self.cleartext
            .get("deleted")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

impl Session {
    /// A session for the account whose Sync key bundle is `sync_key` (derived from kB).
    pub fn new(storage: StorageClient, sync_key: KeyBundle) -> Self {
        Session {
            storage,
            sync_key,
            cached: Mutex::new(Cached::default()),
        }
    }

    /// The storage client.
    pub fn storage(&self) -> &StorageClient {
        &self.storage
    }

    /// Reads `info/collections`, `meta/global` and `crypto/keys` (each only when it changed
    /// since it was cached) and says whether they are usable. Never writes.
    pub async fn check_remote_setup(&self) -> Result<RemoteSetup, ClientError> {
        let endpoint = self.storage.endpoint().await?;
        let mut cached = self.cached.lock().await;
        if cached.endpoint.as_deref() != Some(&endpoint) {
            // A new node (or the first request): nothing cached applies.
            *cached = Cached {
                endpoint: Some(endpoint),
                ..Cached::default()
            };
        }
        let info = self
            .storage
            .info_collections(None)
            .await?
            .unwrap_or_default();
        let meta_ts = info.get(META.0).copied();
        if cached.meta.as_ref().map(|(_, ts)| Some(*ts)) != Some(meta_ts) {
            cached.meta = None;
            cached.keys = None;
            let Some(raw) = self.storage.get_record(META.0, META.1).await? else {
                return Ok(RemoteSetup::NeedsFreshStart(
                    "meta/global is missing".into(),
                ));
            };
            let meta = match MetaGlobal::parse(&raw.payload) {
                Ok(meta) => meta,
                Err(error) => {
                    return Ok(RemoteSetup::NeedsFreshStart(format!(
                        "meta/global is unreadable: {error}"
                    )));
                }
            };
            if meta.storage_version > STORAGE_VERSION {
                return Err(ClientError::UpgradeRequired(meta.storage_version));
            }
            if meta.storage_version < STORAGE_VERSION || meta.sync_id.is_empty() {
                return Ok(RemoteSetup::NeedsFreshStart(format!(
                    "meta/global has storage version {} and syncID {:?}",
                    meta.storage_version, meta.sync_id
                )));
            }
            cached.meta = Some((meta, crate::storage::seconds_to_ts(raw.modified)));
        }
        let keys_ts = info.get(CRYPTO_COLLECTION).copied();
        if keys_ts.is_none() {
            cached.keys = None;
            return Ok(RemoteSetup::NeedsKeys);
        }
        if cached.keys.as_ref().map(|(_, ts)| Some(*ts)) != Some(keys_ts) {
            cached.keys = None;
            let Some(raw) = self.storage.get_record(KEYS.0, KEYS.1).await? else {
                return Ok(RemoteSetup::NeedsKeys);
            };
            let keys = self.decrypt_keys(&raw)?;
            cached.keys = Some((keys, crate::storage::seconds_to_ts(raw.modified)));
        }
        Ok(RemoteSetup::Ready)
    }

    fn decrypt_keys(&self, raw: &RawBso) -> Result<CollectionKeys, ClientError> {
        let cleartext = match crypto::decrypt_record(&self.sync_key, &raw.id, &raw.payload) {
            Ok(cleartext) => cleartext,
            Err(CryptoError::HmacMismatch) => return Err(ClientError::WrongKey),
            Err(error) => {
                return Err(ClientError::Record {
                    collection: KEYS.0.into(),
                    id: raw.id.clone(),
                    error,
                });
            }
        };
        CollectionKeys::from_cleartext(&cleartext)
            .map_err(|e| ClientError::Protocol(format!("crypto/keys: {e}")))
    }

    /// The cached `meta/global` (after a successful [`Session::check_remote_setup`]).
    pub async fn meta_global(&self) -> Option<MetaGlobal> {
        self.cached
            .lock()
            .await
            .meta
            .as_ref()
            .map(|(meta, _)| meta.clone())
    }

    /// The cached collection keys.
    pub async fn collection_keys(&self) -> Option<CollectionKeys> {
        self.cached
            .lock()
            .await
            .keys
            .as_ref()
            .map(|(keys, _)| keys.clone())
    }

    /// Forgets the cached setup (after this client changed it, or a key failure).
    pub async fn forget_setup(&self) {
        let mut cached = self.cached.lock().await;
        cached.meta = None;
        cached.keys = None;
    }

    async fn bundle_for(&self, collection: &str) -> Result<KeyBundle, ClientError> {
        let cached = self.cached.lock().await;
        let keys = cached
            .keys
            .as_ref()
            .ok_or_else(|| ClientError::NotReady("crypto/keys has not been read".into()))?;
        Ok(keys.0.bundle_for(collection).clone())
    }

    /// Decrypts a stored record with the collection's key. An HMAC failure refetches the
    /// keys once (another client may have rotated them) before it is reported.
    pub async fn decrypt(&self, collection: &str, raw: &RawBso) -> Result<Record, ClientError> {
        let attempt = |bundle: KeyBundle| crypto::decrypt_record(&bundle, &raw.id, &raw.payload);
        let cleartext = match attempt(self.bundle_for(collection).await?) {
            Ok(cleartext) => cleartext,
            Err(CryptoError::HmacMismatch) => {
                tracing::info!(collection, id = %raw.id, "HMAC mismatch: fetching the keys again");
                self.forget_setup().await;
                match self.check_remote_setup().await? {
                    RemoteSetup::Ready => {}
                    other => return Err(ClientError::NotReady(format!("{other:?}"))),
                }
                attempt(self.bundle_for(collection).await?).map_err(|error| {
                    ClientError::Record {
                        collection: collection.into(),
                        id: raw.id.clone(),
                        error,
                    }
                })?
            }
            Err(error) => {
                return Err(ClientError::Record {
                    collection: collection.into(),
                    id: raw.id.clone(),
                    error,
                });
            }
        };
        Ok(Record {
            id: raw.id.clone(),
            modified: crate::storage::seconds_to_ts(raw.modified),
            cleartext,
            sortindex: raw.sortindex,
        })
    }

    /// Encrypts a cleartext object (which must carry its `id`) for `collection`. A
    /// collection without its own key uses the default bundle.
    pub async fn encrypt(
        &self,
        collection: &str,
        cleartext: &Value,
    ) -> Result<OutgoingBso, ClientError> {
        let id = cleartext
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Protocol("a record needs a string \"id\"".into()))?
            .to_owned();
        let payload = crypto::encrypt_record(&self.bundle_for(collection).await?, &id, cleartext)
            .map_err(|error| ClientError::Record {
            collection: collection.into(),
            id: id.clone(),
            error,
        })?;
        Ok(OutgoingBso {
            id,
            payload,
            sortindex: None,
            ttl: None,
        })
    }

    /// Every collection's timestamp.
    pub async fn collections(&self) -> Result<BTreeMap<String, SyncTimestamp>, ClientError> {
        Ok(self
            .storage
            .info_collections(None)
            .await?
            .unwrap_or_default())
    }

    /// One decrypted record.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Record>, ClientError> {
        match self.storage.get_record(collection, id).await? {
            Some(raw) => self.decrypt(collection, &raw).await.map(Some),
            None => Ok(None),
        }
    }

    /// Every record of a collection, decrypted; stops at the first that fails.
    pub async fn get_all(&self, collection: &str) -> Result<Vec<Record>, ClientError> {
        let (raw, _) = self.storage.get_records(collection, None).await?;
        let mut records = Vec::with_capacity(raw.len());
        for bso in &raw {
            records.push(self.decrypt(collection, bso).await?);
        }
        Ok(records)
    }

    /// Encrypts and writes one record (create or replace).
    pub async fn put(
        &self,
        collection: &str,
        cleartext: &Value,
    ) -> Result<SyncTimestamp, ClientError> {
        let bso = self.encrypt(collection, cleartext).await?;
        self.storage.put_record(collection, &bso, None).await
    }

    /// Deletes one record.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<(), ClientError> {
        self.storage
            .delete_records(collection, &[id.to_owned()])
            .await
    }

    /// Writes `crypto/keys` encrypted with the account's key bundle (Tier 1 only: the
    /// storage client refuses otherwise).
    pub(crate) async fn upload_keys(
        &self,
        keys: &CollectionKeys,
        unmodified_since: Option<SyncTimestamp>,
    ) -> Result<SyncTimestamp, ClientError> {
        let payload = crypto::encrypt_record(&self.sync_key, KEYS.1, &keys.to_cleartext())
            .map_err(|error| ClientError::Record {
                collection: KEYS.0.into(),
                id: KEYS.1.into(),
                error,
            })?;
        let bso = OutgoingBso {
            id: KEYS.1.into(),
            payload,
            sortindex: None,
            ttl: None,
        };
        self.storage
            .put_record(KEYS.0, &bso, unmodified_since)
            .await
    }
}
