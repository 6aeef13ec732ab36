//! The Remote Settings server's data: Kinto's object tree and its permissions.
//!
//! Kinto stores every object the same way: a kind (bucket, group, collection, record,
//! account), the URI of its parent (`""` for buckets and accounts, `/buckets/b` for a
//! bucket's collections and groups, `/buckets/b/collections/c` for records), an id, a
//! `last_modified` and a JSON object. Deleting leaves a tombstone with the deletion time.
//! Permissions are sets of principals per permission name, attached to an object's URI.
//!
//! Timestamps are the store's job because they must strictly increase per parent list
//! *across concurrent writers* (Kinto's `max(now, previous + 1)`): every write takes the
//! next timestamp of its (kind, parent) list inside its own transaction.
//!
//! **Invariant:** nothing here names an HTTP type or knows what a permission means; the
//! server decides who may do what.
#![deny(missing_docs)]

pub mod postgres;
mod rules;
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde_json::{Map, Value};

/// The kinds of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/buckets/{id}`.
    Bucket,
    /// `/buckets/{b}/groups/{id}`.
    Group,
    /// `/buckets/{b}/collections/{id}`.
    Collection,
    /// `/buckets/{b}/collections/{c}/records/{id}`.
    Record,
    /// `/accounts/{id}`.
    Account,
    /// `/buckets/{b}/history/{id}`: an entry of the bucket's history (Kinto's history
    /// plugin), one per write of an object in the bucket.
    History,
}

impl Kind {
    /// The name stored in the database and used in URIs (`buckets`, `records`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Bucket => "buckets",
            Kind::Group => "groups",
            Kind::Collection => "collections",
            Kind::Record => "records",
            Kind::Account => "accounts",
            Kind::History => "history",
        }
    }
}

/// A stored object, or the tombstone of a deleted one.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The object's id.
    pub id: String,
    /// When it was last written (ms; a revision number, strictly increasing per list).
    pub last_modified: i64,
    /// Its fields, without `id` and `last_modified` (empty for a tombstone).
    pub data: Map<String, Value>,
    /// Whether this is a tombstone.
    pub deleted: bool,
}

impl Object {
    /// The object as the API shows it: its fields plus `id`, `last_modified` (and `deleted`
    /// for a tombstone, with no other field).
    pub fn to_json(&self) -> Value {
        let mut map = if self.deleted {
            Map::new()
        } else {
            self.data.clone()
        };
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert("last_modified".into(), Value::from(self.last_modified));
        if self.deleted {
            map.insert("deleted".into(), Value::Bool(true));
        }
        Value::Object(map)
    }
}

/// A stored object whose fields are left as the JSON text the database holds: a list that
/// is answered as stored (no filter or sort on its fields) is copied through without
/// parsing and re-serialising every object, which is most of what a large list costs.
#[derive(Debug, Clone, PartialEq)]
pub struct RawObject {
    /// The object's id.
    pub id: String,
    /// When it was last written.
    pub last_modified: i64,
    /// Its fields as a JSON object's text, without `id` and `last_modified` (`{}` for a
    /// tombstone).
    pub data: String,
    /// Whether this is a tombstone.
    pub deleted: bool,
}

impl RawObject {
    /// Appends the object as the API shows it (what [`Object::to_json`] gives, serialised)
    /// to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let fields = self.data.trim();
        let inner = fields
            .strip_prefix('{')
            .and_then(|f| f.strip_suffix('}'))
            .map(str::trim)
            .unwrap_or("");
        out.push(b'{');
        if self.deleted {
            out.extend_from_slice(b"\"deleted\":true,");
        } else if !inner.is_empty() {
            out.extend_from_slice(inner.as_bytes());
            out.push(b',');
        }
        // Straight into `out`: a list writes thousands of these, and a string allocated
        // per id and per timestamp was a good part of its cost.
        out.extend_from_slice(b"\"id\":");
        serde_json::to_writer(&mut *out, &self.id).expect("a string serialises");
        write!(out, ",\"last_modified\":{}}}", self.last_modified).expect("a Vec takes bytes");
    }

    /// The object parsed.
    pub fn parse(self) -> Result<Object, StoreError> {
        let data = if self.deleted {
            Map::new()
        } else {
            serde_json::from_str(&self.data).map_err(|e| {
                StoreError::Backend(format!("object {:?} has invalid stored data: {e}", self.id))
            })?
        };
        Ok(Object {
            id: self.id,
            last_modified: self.last_modified,
            data,
            deleted: self.deleted,
        })
    }
}

/// Permission name → principals.
pub type Permissions = BTreeMap<String, BTreeSet<String>>;

/// A condition on the current object, checked inside the write's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// None.
    #[default]
    None,
    /// `If-Match: "<ts>"`: the object exists with this `last_modified`.
    IfMatch(i64),
    /// `If-Match: *`: the object exists.
    IfExists,
    /// `If-None-Match: *`: the object does not exist.
    IfAbsent,
}

/// A write of one object.
#[derive(Debug, Clone)]
pub struct Write {
    /// The kind.
    pub kind: Kind,
    /// The parent URI.
    pub parent: String,
    /// The id.
    pub id: String,
    /// The object's new fields (replacing the old ones entirely).
    pub data: Map<String, Value>,
    /// Permissions to store with it (replacing the old ones), if any.
    pub permissions: Option<Permissions>,
    /// The condition on the current object.
    pub precondition: Precondition,
    /// A `last_modified` the client asked for; used only if it is newer than the list's.
    pub forced_timestamp: Option<i64>,
}

/// A lock taken with [`SettingsStore::lock`], released when this value is dropped.
pub struct StoreLock {
    _held: Box<dyn Send + Sync>,
}

impl StoreLock {
    /// Wraps whatever keeps a backend's lock held (a mutex guard, a connection).
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        StoreLock {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

/// What can go wrong, for the server to map to Kinto's errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("object not found")]
    NotFound,
    /// The precondition failed; `existing` is the current object (if any).
    #[error("precondition failed")]
    PreconditionFailed {
        /// The object as it is now.
        existing: Option<Object>,
    },
    /// A concurrent write got in the way; retry.
    #[error("conflicting concurrent write")]
    Conflict,
    /// The database failed (for the log, never for clients).
    #[error("settings backend error: {0}")]
    Backend(String),
}

/// Kinto's object tree and permissions, whichever database holds them.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// One live object (tombstones are not returned).
    async fn get(&self, kind: Kind, parent: &str, id: &str) -> Result<Option<Object>, StoreError>;

    /// Every object of a list, tombstones included when asked, in no particular order
    /// (filters, sorting and pagination are the caller's).
    async fn list(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<Object>, StoreError>;

    /// The same objects as [`SettingsStore::list`], their fields left as stored JSON text.
    async fn list_raw(
        &self,
        kind: Kind,
        parent: &str,
        include_deleted: bool,
    ) -> Result<Vec<RawObject>, StoreError> {
        Ok(self
            .list(kind, parent, include_deleted)
            .await?
            .into_iter()
            .map(|o| RawObject {
                data: serde_json::to_string(&o.data).expect("JSON serialises"),
                id: o.id,
                last_modified: o.last_modified,
                deleted: o.deleted,
            })
            .collect())
    }

    /// The list's timestamp: the highest `last_modified` it ever had (objects and
    /// tombstones), which does not go back when objects are deleted; 0 for a list never
    /// written.
    async fn timestamp(&self, kind: Kind, parent: &str) -> Result<i64, StoreError>;

    /// Creates or replaces an object (and its permissions) at the list's next timestamp.
    /// Returns the stored object and whether it was created.
    async fn put(&self, write: Write) -> Result<(Object, bool), StoreError>;

    /// Deletes an object, leaving a tombstone at the list's next timestamp, and removes its
    /// permissions and everything under its URI (children, their tombstones, permissions).
    async fn delete(
        &self,
        kind: Kind,
        parent: &str,
        id: &str,
        precondition: Precondition,
    ) -> Result<Object, StoreError>;

    /// Deletes the given live objects of a list (all when `ids` is None) in one transaction,
    /// each at its own new timestamp; returns the tombstones.
    async fn delete_many(
        &self,
        kind: Kind,
        parent: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<Object>, StoreError>;

    /// The permissions stored on an object URI (e.g. `/buckets/b/collections/c`).
    async fn permissions(&self, uri: &str) -> Result<Permissions, StoreError>;

    /// Every (object URI, permission) whose principals include one of `principals`.
    async fn permissions_of(
        &self,
        principals: &[String],
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Deletes everything (the test-only flush endpoint).
    async fn flush(&self) -> Result<(), StoreError>;

    /// Waits for the lock named `name` and holds it until the returned [`StoreLock`] is
    /// dropped. It is what keeps a multi-write operation (a review workflow step: copy,
    /// sign, update the source) from interleaving with another one, since the trait has no
    /// transaction spanning several calls. It excludes every holder using the same
    /// database: every process on PostgreSQL (an advisory lock), this process on SQLite
    /// (which is served by one process). Not reentrant: a holder that asks again waits
    /// forever.
    async fn lock(&self, name: &str) -> Result<StoreLock, StoreError>;

    /// Checks that the database answers.
    async fn check(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_objects_write_what_objects_show() {
        let object = |data: &str, deleted: bool| RawObject {
            id: "a\"b".into(),
            last_modified: 7,
            data: data.into(),
            deleted,
        };
        for (raw, deleted) in [
            (r#"{"x":[1,{"y":null}],"s":"}"}"#, false),
            ("{}", false),
            ("{ }", false),
            (r#"{"k": 1}"#, false),
            ("{}", true),
        ] {
            let raw = object(raw, deleted);
            let mut out = Vec::new();
            raw.write_json(&mut out);
            let written: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(written, raw.clone().parse().unwrap().to_json(), "{raw:?}");
        }
    }
}
