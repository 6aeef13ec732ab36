//! Tier 1 and Tier 2 clients ("Crypto Record Semantics" of Mozilla's Sync document).
//!
//! A Tier 1 client manages keys: it provisions an empty server (fresh start), resets it,
//! rotates keys and re-encrypts the data. A Tier 2 client only consumes keys. The difference
//! is in the types: only [`Tier1Client`] has the methods that write `meta/global` and
//! `crypto/keys`, and only its constructor enables crypto writes on its storage client, so
//! a [`Tier2Client`] cannot write `crypto` even by calling the storage client directly (the
//! storage client's guard refuses it).

use std::ops::Deref;

use serde_json::Value;
use sync_proto::SyncTimestamp;

use crate::error::ClientError;
use crate::keys::KeyBundle;
use crate::records::{CollectionKeys, MetaGlobal};
use crate::session::{KEYS, META, RemoteSetup, Session};
use crate::storage::{CRYPTO_COLLECTION, OutgoingBso, StorageClient};

/// Collections that hold the setup rather than data.
const SETUP_COLLECTIONS: [&str; 2] = [META.0, CRYPTO_COLLECTION];

/// A client that may manage keys.
pub struct Tier1Client {
    session: Session,
}

/// A client that only consumes keys.
pub struct Tier2Client {
    session: Session,
}

impl Deref for Tier1Client {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Deref for Tier2Client {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Tier2Client {
    /// A Tier 2 client; its storage client keeps the crypto guard on.
    pub fn new(storage: StorageClient, sync_key: KeyBundle) -> Self {
        Tier2Client {
            session: Session::new(storage, sync_key),
        }
    }

    /// Checks that the server is set up. When it is not (no `meta/global`, an old storage
    /// version, no keys, keys that do not decrypt), returns [`ClientError::NotReady`] and
    /// changes nothing: setting the server up is a Tier 1 client's job.
    pub async fn ensure_ready(&self) -> Result<(), ClientError> {
        match self.session.check_remote_setup().await {
            Ok(RemoteSetup::Ready) => Ok(()),
            Ok(RemoteSetup::NeedsFreshStart(why)) => Err(ClientError::NotReady(why)),
            Ok(RemoteSetup::NeedsKeys) => {
                Err(ClientError::NotReady("crypto/keys is missing".into()))
            }
            Err(ClientError::WrongKey) => Err(ClientError::NotReady(
                "crypto/keys does not decrypt with this account's key".into(),
            )),
            Err(other) => Err(other),
        }
    }
}

impl Tier1Client {
    /// A Tier 1 client: its storage client may write `crypto`.
    pub fn new(mut storage: StorageClient, sync_key: KeyBundle) -> Self {
        storage.allow_crypto_writes();
        Tier1Client {
            session: Session::new(storage, sync_key),
        }
    }

    /// Makes the server usable: a fresh start when `meta/global` is missing or outdated,
    /// new keys when only they are missing. Keys that exist but do not decrypt are an error
    /// ([`ClientError::WrongKey`]), never a reason to replace them: that would lock out
    /// every other device.
    pub async fn ensure_ready(&self) -> Result<(), ClientError> {
        match self.session.check_remote_setup().await? {
            RemoteSetup::Ready => Ok(()),
            RemoteSetup::NeedsFreshStart(why) => {
                tracing::info!(%why, "fresh start");
                self.fresh_start().await
            }
            RemoteSetup::NeedsKeys => {
                tracing::info!("crypto/keys is missing: generating keys");
                self.session
                    .upload_keys(&CollectionKeys::random(), Some(SyncTimestamp::ZERO))
                    .await?;
                self.reload().await
            }
        }
    }

    async fn reload(&self) -> Result<(), ClientError> {
        self.session.forget_setup().await;
        match self.session.check_remote_setup().await? {
            RemoteSetup::Ready => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "the server is not set up after setting it up: {other:?}"
            ))),
        }
    }

    /// Wipes the server and provisions it: a new `meta/global` and new keys, both written
    /// only if absent (`X-If-Unmodified-Since: 0`, so a racing client gets 412, not an
    /// overwrite), then reads the keys back.
    pub async fn fresh_start(&self) -> Result<(), ClientError> {
        self.session.forget_setup().await;
        self.storage.delete_storage().await?;
        let meta = MetaGlobal::fresh();
        let bso = OutgoingBso {
            id: META.1.into(),
            payload: meta.to_payload(),
            sortindex: None,
            ttl: None,
        };
        self.storage
            .put_record(META.0, &bso, Some(SyncTimestamp::ZERO))
            .await?;
        self.session
            .upload_keys(&CollectionKeys::random(), Some(SyncTimestamp::ZERO))
            .await?;
        self.reload().await
    }

    /// Deletes everything on the server and provisions it again.
    pub async fn reset_server(&self) -> Result<(), ClientError> {
        self.fresh_start().await
    }

    /// Data collections on the server (everything but `meta` and `crypto`).
    async fn data_collections(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .session
            .collections()
            .await?
            .into_keys()
            .filter(|name| !SETUP_COLLECTIONS.contains(&name.as_str()))
            .collect())
    }

    /// Replaces every key with a new random one and re-encrypts every data collection.
    ///
    /// All data is downloaded and decrypted first, so a record that does not decrypt stops
    /// the rotation before anything is changed. The new keys are written with
    /// `X-If-Unmodified-Since` set to the old keys' time, so a concurrent rotation makes this
    /// one fail rather than both half-succeed. Returns how many records were re-encrypted.
    pub async fn rotate_keys(&self) -> Result<usize, ClientError> {
        self.ensure_ready().await?;
        let old = self
            .session
            .collection_keys()
            .await
            .expect("ready means keys are cached");
        let collections = self.data_collections().await?;
        let mut plaintext = Vec::new();
        for collection in &collections {
            plaintext.push((collection.clone(), self.session.get_all(collection).await?));
        }
        let mut new_keys = CollectionKeys::random();
        for name in old.collections.keys() {
            new_keys
                .collections
                .insert(name.clone(), KeyBundle::random());
        }
        let keys_ts = self.keys_timestamp().await?;
        self.session.upload_keys(&new_keys, Some(keys_ts)).await?;
        self.reload().await?;
        self.reupload(plaintext).await
    }

    /// Gives `collection` its own key (instead of the default bundle) and re-encrypts it.
    pub async fn set_collection_key(&self, collection: &str) -> Result<usize, ClientError> {
        self.ensure_ready().await?;
        let mut keys = self
            .session
            .collection_keys()
            .await
            .expect("ready means keys are cached");
        let records = self.session.get_all(collection).await?;
        keys.collections
            .insert(collection.to_owned(), KeyBundle::random());
        let keys_ts = self.keys_timestamp().await?;
        self.session.upload_keys(&keys, Some(keys_ts)).await?;
        self.reload().await?;
        self.reupload(vec![(collection.to_owned(), records)]).await
    }

    async fn keys_timestamp(&self) -> Result<SyncTimestamp, ClientError> {
        self.session
            .collections()
            .await?
            .get(KEYS.0)
            .copied()
            .ok_or_else(|| ClientError::Protocol("crypto vanished during a key change".into()))
    }

    async fn reupload(
        &self,
        collections: Vec<(String, Vec<crate::session::Record>)>,
    ) -> Result<usize, ClientError> {
        let mut count = 0;
        for (collection, records) in collections {
            let mut outgoing = Vec::with_capacity(records.len());
            for record in &records {
                let mut bso = self.session.encrypt(&collection, &record.cleartext).await?;
                bso.sortindex = record.sortindex;
                outgoing.push(bso);
            }
            if outgoing.is_empty() {
                continue;
            }
            let outcome = self
                .storage
                .post_records(&collection, &outgoing, None)
                .await?;
            if !outcome.failed.is_empty() {
                return Err(ClientError::Protocol(format!(
                    "{} records of {collection} were refused while re-encrypting: {:?}",
                    outcome.failed.len(),
                    outcome.failed
                )));
            }
            count += outgoing.len();
        }
        Ok(count)
    }
}

/// Either tier, for code that only reads and writes data.
pub enum AnyClient {
    /// A Tier 1 client.
    Tier1(Tier1Client),
    /// A Tier 2 client.
    Tier2(Tier2Client),
}

impl AnyClient {
    /// Makes sure the server is usable, each tier in its own way.
    pub async fn ensure_ready(&self) -> Result<(), ClientError> {
        match self {
            AnyClient::Tier1(client) => client.ensure_ready().await,
            AnyClient::Tier2(client) => client.ensure_ready().await,
        }
    }
}

impl Deref for AnyClient {
    type Target = Session;
    fn deref(&self) -> &Session {
        match self {
            AnyClient::Tier1(client) => client,
            AnyClient::Tier2(client) => client,
        }
    }
}

/// The cleartext of a tombstone.
pub fn tombstone(id: &str) -> Value {
    serde_json::json!({"id": id, "deleted": true})
}
