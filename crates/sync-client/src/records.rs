//! The two records every Sync client reads before any engine runs: `meta/global` and
//! `crypto/keys`.
//!
//! `meta/global` is the only unencrypted record. It pins the storage format version
//! ([`STORAGE_VERSION`]), the account-wide sync id, and each engine's version and sync id;
//! a change to any sync id tells the other clients to drop their cached state.
//! [`MetaGlobal::fresh`] writes every engine Firefox knows, including ones this client
//! does not implement, because other clients disable any engine missing from the record.
//!
//! `crypto/keys` holds the bulk [`KeyBundle`]s, encrypted with the Sync Key Bundle derived
//! in [`crate::keys`]. The cleartext helpers here never put key material into an error
//! message, which is why `crypto/keys` is read by hand rather than through serde: serde's
//! "invalid type" messages quote the offending value.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::crypto::{self, CryptoError};
use crate::keys::{KeyBundle, KeyError};

/// The storage format version this client reads and writes.
pub const STORAGE_VERSION: u32 = 5;

/// The engines and versions a fresh `meta/global` lists (the app-services defaults).
pub const DEFAULT_ENGINES: &[(&str, u32)] = &[
    ("passwords", 1),
    ("clients", 1),
    ("addons", 1),
    ("addresses", 1),
    ("bookmarks", 2),
    ("creditcards", 1),
    ("forms", 1),
    ("history", 1),
    ("prefs", 2),
    ("tabs", 1),
];

/// Why `meta/global` or `crypto/keys` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The `meta/global` payload is not JSON of the expected shape (for instance it lacks
    /// `syncID` or `storageVersion`, which calls for a fresh start).
    #[error("malformed meta/global: {0}")]
    MetaGlobal(#[source] serde_json::Error),
    /// The `crypto/keys` cleartext has no `default` bundle. Firefox keeps its old keys in
    /// this case rather than installing a partial set.
    #[error("crypto/keys has no default key bundle")]
    MissingDefault,
    /// The `crypto/keys` cleartext has the wrong shape; the text says which part.
    #[error("malformed crypto/keys: {0}")]
    MalformedKeys(String),
    /// A key in `crypto/keys` is not 32 bytes of base64.
    #[error("bad key in crypto/keys ({location}): {source}")]
    BadKey {
        /// `default`, or the collection name.
        location: String,
        /// What was wrong with the key.
        source: KeyError,
    },
    /// The `crypto/keys` payload failed verification or decryption.
    #[error("cannot decrypt crypto/keys: {0}")]
    Crypto(#[from] CryptoError),
}

/// A new record or sync id: 12 base64url characters from 9 random bytes.
pub fn new_guid() -> String {
    let mut bytes = [0; 9];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The cleartext of `meta/global`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaGlobal {
    /// The account-wide sync id; when it changes, every client resets its local state.
    #[serde(rename = "syncID")]
    pub sync_id: String,
    /// The storage format version. Old clients wrote it as a string, so a numeric string
    /// is accepted when reading; it is always written as a number.
    #[serde(rename = "storageVersion", deserialize_with = "lenient_u32")]
    pub storage_version: u32,
    /// Each enabled engine's version and sync id.
    #[serde(default)]
    pub engines: BTreeMap<String, EngineInfo>,
    /// Engines the user has declined on some device.
    #[serde(default)]
    pub declined: Vec<String>,
}

/// One engine's entry in `meta/global`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// The engine's record format version; a client that only knows an older version
    /// must not sync the engine.
    #[serde(deserialize_with = "lenient_u32")]
    pub version: u32,
    /// The engine's sync id; when it changes, clients reset that engine.
    #[serde(rename = "syncID")]
    pub sync_id: String,
}

impl MetaGlobal {
    /// A new record for a fresh start: new sync ids everywhere, storage version 5, every
    /// default engine, nothing declined.
    pub fn fresh() -> Self {
        MetaGlobal {
            sync_id: new_guid(),
            storage_version: STORAGE_VERSION,
            engines: DEFAULT_ENGINES
                .iter()
                .map(|&(name, version)| {
                    let info = EngineInfo {
                        version,
                        sync_id: new_guid(),
                    };
                    (name.to_owned(), info)
                })
                .collect(),
            declined: Vec::new(),
        }
    }

    /// Reads the BSO `payload` string of `meta/global`.
    pub fn parse(payload: &str) -> Result<Self, RecordError> {
        serde_json::from_str(payload).map_err(RecordError::MetaGlobal)
    }

    /// The BSO `payload` string to upload.
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).expect("meta/global always serializes")
    }
}

/// The bulk keys from `crypto/keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionKeys {
    /// The bundle for every collection without its own entry.
    pub default: KeyBundle,
    /// Per-collection bundles. Firefox writes none, but honours any it finds.
    pub collections: BTreeMap<String, KeyBundle>,
}

impl CollectionKeys {
    /// A new random default bundle and no per-collection bundles, as a fresh start makes.
    pub fn random() -> Self {
        CollectionKeys {
            default: KeyBundle::random(),
            collections: BTreeMap::new(),
        }
    }

    /// The bundle that protects `collection`.
    pub fn bundle_for(&self, collection: &str) -> &KeyBundle {
        self.collections.get(collection).unwrap_or(&self.default)
    }

    /// The `crypto/keys` cleartext:
    /// `{"id":"keys","collection":"crypto","default":[enc,hmac],"collections":{..}}`.
    pub fn to_cleartext(&self) -> Value {
        let cleartext = KeysCleartext {
            id: "keys",
            collection: "crypto",
            default: self.default.to_base64_pair(),
            collections: self
                .collections
                .iter()
                .map(|(name, bundle)| (name.as_str(), bundle.to_base64_pair()))
                .collect(),
        };
        serde_json::to_value(cleartext).expect("crypto/keys always serializes")
    }

    /// Reads a `crypto/keys` cleartext. A missing `default` is an error; a missing
    /// `collections` means none.
    pub fn from_cleartext(cleartext: &Value) -> Result<Self, RecordError> {
        let object = cleartext
            .as_object()
            .ok_or_else(|| RecordError::MalformedKeys("not a JSON object".to_owned()))?;
        let default = match object.get("default") {
            None | Some(Value::Null) => return Err(RecordError::MissingDefault),
            Some(pair) => bundle_from_pair(pair, "default")?,
        };
        let collections = match object.get("collections") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(entries)) => collections_from_map(entries)?,
            Some(_) => {
                return Err(RecordError::MalformedKeys(
                    "collections is not an object".to_owned(),
                ));
            }
        };
        Ok(CollectionKeys {
            default,
            collections,
        })
    }

    /// The encrypted `crypto/keys` BSO payload, under the Sync Key Bundle.
    pub fn to_payload(&self, sync_key_bundle: &KeyBundle) -> String {
        crypto::encrypt_record(sync_key_bundle, "keys", &self.to_cleartext())
            .expect("the crypto/keys cleartext is an object with id \"keys\"")
    }

    /// Verifies, decrypts and reads the `crypto/keys` BSO payload with the Sync Key
    /// Bundle. An HMAC mismatch here means the Sync Key or kB is wrong.
    pub fn from_payload(sync_key_bundle: &KeyBundle, payload: &str) -> Result<Self, RecordError> {
        let cleartext = crypto::decrypt_record(sync_key_bundle, "keys", payload)?;
        Self::from_cleartext(&cleartext)
    }
}

/// The wire form of the `crypto/keys` cleartext.
#[derive(Serialize)]
struct KeysCleartext<'a> {
    id: &'static str,
    collection: &'static str,
    default: [String; 2],
    collections: BTreeMap<&'a str, [String; 2]>,
}

fn collections_from_map(
    entries: &Map<String, Value>,
) -> Result<BTreeMap<String, KeyBundle>, RecordError> {
    entries
        .iter()
        .map(|(name, pair)| Ok((name.clone(), bundle_from_pair(pair, name)?)))
        .collect()
}

/// Reads one `[enc, hmac]` pair; `location` names it in errors.
fn bundle_from_pair(pair: &Value, location: &str) -> Result<KeyBundle, RecordError> {
    let (enc, hmac) = match pair.as_array().map(Vec::as_slice) {
        Some([Value::String(enc), Value::String(hmac)]) => (enc, hmac),
        _ => {
            return Err(RecordError::MalformedKeys(format!(
                "{location} is not a pair of base64 strings"
            )));
        }
    };
    KeyBundle::from_base64_pair(enc, hmac).map_err(|source| RecordError::BadKey {
        location: location.to_owned(),
        source,
    })
}

/// A `u32` written as a JSON number (integral, non-negative) or as a string holding one,
/// as clients before Sync 1.5 sometimes wrote `storageVersion`.
fn lenient_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::Error;

    let value = Value::deserialize(deserializer)?;
    let parsed = match &value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
        }
        _ => None,
    };
    parsed
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a version number, found {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guids_are_12_base64url_characters() {
        let guid = new_guid();
        assert_eq!(guid.len(), 12);
        assert!(
            guid.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(new_guid(), guid);
    }

    #[test]
    fn fresh_meta_global_has_the_default_engines() {
        let meta = MetaGlobal::fresh();
        assert_eq!(meta.storage_version, 5);
        assert_eq!(meta.sync_id.len(), 12);
        assert!(meta.declined.is_empty());
        assert_eq!(meta.engines.len(), DEFAULT_ENGINES.len());
        assert_eq!(meta.engines["bookmarks"].version, 2);
        assert_eq!(meta.engines["prefs"].version, 2);
        assert_eq!(meta.engines["history"].version, 1);
        assert_eq!(meta.engines["tabs"].version, 1);
        for info in meta.engines.values() {
            assert_eq!(info.sync_id.len(), 12);
            assert_ne!(info.sync_id, meta.sync_id);
        }
    }

    #[test]
    fn meta_global_round_trips_with_wire_names() {
        let meta = MetaGlobal::fresh();
        let payload = meta.to_payload();
        let json: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(json["storageVersion"], json!(5));
        assert_eq!(json["syncID"], json!(meta.sync_id));
        assert_eq!(
            json["engines"]["bookmarks"]["syncID"],
            json!(meta.engines["bookmarks"].sync_id)
        );
        assert_eq!(json["declined"], json!([]));
        assert_eq!(MetaGlobal::parse(&payload).unwrap(), meta);
    }

    #[test]
    fn meta_global_accepts_a_string_storage_version() {
        let meta = MetaGlobal::parse(
            r#"{"syncID":"abcdefghijkl","storageVersion":"5",
                "engines":{"history":{"version":"1","syncID":"mnopqrstuvwx"}}}"#,
        )
        .unwrap();
        assert_eq!(meta.storage_version, 5);
        assert_eq!(meta.engines["history"].version, 1);
        assert!(meta.declined.is_empty());
        // Written back as a number.
        assert!(meta.to_payload().contains(r#""storageVersion":5"#));
        assert_eq!(
            MetaGlobal::parse(r#"{"syncID":"a","storageVersion":5.0}"#)
                .unwrap()
                .storage_version,
            5
        );
    }

    #[test]
    fn malformed_meta_global_is_refused() {
        for payload in [
            "",
            "[]",
            r#"{"storageVersion":5}"#,
            r#"{"syncID":"abcdefghijkl"}"#,
            r#"{"syncID":"abcdefghijkl","storageVersion":"five"}"#,
            r#"{"syncID":"abcdefghijkl","storageVersion":5.5}"#,
            r#"{"syncID":"abcdefghijkl","storageVersion":-5}"#,
            r#"{"syncID":"abcdefghijkl","storageVersion":null}"#,
            r#"{"syncID":"abcdefghijkl","storageVersion":99999999999}"#,
        ] {
            assert!(
                matches!(MetaGlobal::parse(payload), Err(RecordError::MetaGlobal(_))),
                "{payload}"
            );
        }
    }

    #[test]
    fn meta_global_keeps_declined() {
        let meta = MetaGlobal::parse(
            r#"{"syncID":"abcdefghijkl","storageVersion":5,"engines":{},"declined":["tabs"]}"#,
        )
        .unwrap();
        assert_eq!(meta.declined, ["tabs"]);
    }

    #[test]
    fn collection_keys_cleartext_round_trip() {
        let mut keys = CollectionKeys::random();
        keys.collections
            .insert("bookmarks".to_owned(), KeyBundle::random());
        let cleartext = keys.to_cleartext();
        assert_eq!(cleartext["id"], "keys");
        assert_eq!(cleartext["collection"], "crypto");
        assert_eq!(cleartext["default"][0], keys.default.to_base64_pair()[0]);
        assert_eq!(CollectionKeys::from_cleartext(&cleartext).unwrap(), keys);
    }

    #[test]
    fn bundle_for_falls_back_to_default() {
        let mut keys = CollectionKeys::random();
        let bookmarks = KeyBundle::random();
        keys.collections
            .insert("bookmarks".to_owned(), bookmarks.clone());
        assert_eq!(keys.bundle_for("bookmarks"), &bookmarks);
        assert_eq!(keys.bundle_for("history"), &keys.default);
    }

    #[test]
    fn crypto_keys_without_default_is_refused() {
        for cleartext in [
            json!({"id": "keys", "collection": "crypto", "collections": {}}),
            json!({"id": "keys", "default": null}),
        ] {
            assert!(matches!(
                CollectionKeys::from_cleartext(&cleartext),
                Err(RecordError::MissingDefault)
            ));
        }
    }

    #[test]
    fn malformed_crypto_keys_is_refused_without_quoting_keys() {
        let good = KeyBundle::random().to_base64_pair();
        let secret = good[0].clone();
        let cases = [
            json!("keys"),
            json!({"default": [secret]}),
            json!({"default": [secret, 5]}),
            json!({"default": secret}),
            json!({"default": good, "collections": [secret]}),
            json!({"default": good, "collections": {"tabs": [secret, "short"]}}),
        ];
        for cleartext in cases {
            let err = CollectionKeys::from_cleartext(&cleartext).unwrap_err();
            assert!(!err.to_string().contains(&secret), "{err}");
        }
        let err = CollectionKeys::from_cleartext(
            &json!({"default": good, "collections": {"tabs": [secret, "short"]}}),
        )
        .unwrap_err();
        assert!(matches!(err, RecordError::BadKey { ref location, .. } if location == "tabs"));
    }

    #[test]
    fn crypto_keys_payload_round_trip() {
        let sync_key_bundle = KeyBundle::random();
        let keys = CollectionKeys::random();
        let payload = keys.to_payload(&sync_key_bundle);
        assert_eq!(
            CollectionKeys::from_payload(&sync_key_bundle, &payload).unwrap(),
            keys
        );
        assert!(matches!(
            CollectionKeys::from_payload(&KeyBundle::random(), &payload),
            Err(RecordError::Crypto(CryptoError::HmacMismatch))
        ));
    }
}
