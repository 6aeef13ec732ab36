//! What the plugin writes: copies of records between the stages of a resource, signatures
//! in collection metadata, and the source's status and tracking fields.
//!
//! These writes go straight to the store as the plugin, not through the HTTP handlers, so
//! no permission applies and no hook runs again for them. Destination records are written
//! without their source `last_modified`, so the destination's timestamps always increase
//! (clients sync by them).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use settings_store::{Kind, Object, Permissions, Precondition, SettingsStore, StoreError, Write};

use crate::auth::EVERYONE;

/// Source collection fields published with the signature (read by the admin UI and the
/// bundles job), as the reference copies them.
const PUBLISHED_COLLECTION_FIELDS: [&str; 5] =
    ["flags", "attachment", "schema", "sort", "displayFields"];

/// A collection of one stage of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The bucket id.
    pub bucket: String,
    /// The collection id.
    pub collection: String,
}

impl Location {
    /// `/buckets/{bucket}`.
    pub fn bucket_uri(&self) -> String {
        format!("/buckets/{}", self.bucket)
    }

    /// `/buckets/{bucket}/collections/{collection}`, the parent of its records.
    pub fn uri(&self) -> String {
        format!("/buckets/{}/collections/{}", self.bucket, self.collection)
    }

    /// The collection's metadata object, if it exists.
    pub async fn metadata(&self, store: &dyn SettingsStore) -> Result<Option<Object>, StoreError> {
        store
            .get(Kind::Collection, &self.bucket_uri(), &self.collection)
            .await
    }
}

fn write(kind: Kind, parent: String, id: &str, data: Map<String, Value>) -> Write {
    Write {
        kind,
        parent,
        id: id.to_owned(),
        data,
        permissions: None,
        precondition: Precondition::None,
        forced_timestamp: None,
    }
}

fn permissions(entries: &[(&str, &str)]) -> Permissions {
    let mut permissions = Permissions::new();
    for (name, principal) in entries {
        permissions
            .entry((*name).to_owned())
            .or_default()
            .insert((*principal).to_owned());
    }
    permissions
}

/// Creates a preview or destination collection (and its bucket) if missing: readable by
/// everyone, written only by the plugin.
pub async fn ensure_published_collection(
    store: &dyn SettingsStore,
    target: &Location,
    plugin_userid: &str,
) -> Result<(), StoreError> {
    if store.get(Kind::Bucket, "", &target.bucket).await?.is_none() {
        let mut bucket = write(Kind::Bucket, String::new(), &target.bucket, Map::new());
        bucket.permissions = Some(permissions(&[("write", plugin_userid)]));
        bucket.precondition = Precondition::IfAbsent;
        create_ignoring_race(store, bucket).await?;
    }
    if target.metadata(store).await?.is_none() {
        let mut collection = write(
            Kind::Collection,
            target.bucket_uri(),
            &target.collection,
            Map::new(),
        );
        collection.permissions = Some(permissions(&[("read", EVERYONE), ("write", plugin_userid)]));
        collection.precondition = Precondition::IfAbsent;
        create_ignoring_race(store, collection).await?;
    }
    Ok(())
}

/// Creates an object unless someone else just did.
async fn create_ignoring_race(store: &dyn SettingsStore, write: Write) -> Result<(), StoreError> {
    match store.put(write).await {
        Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Makes the records of `to` those of `from`: creates and updates what differs, deletes
/// what `from` no longer has (leaving tombstones). Returns how many records changed.
pub async fn copy_records(
    store: &dyn SettingsStore,
    from: &Location,
    to: &Location,
) -> Result<usize, StoreError> {
    let wanted = store.list(Kind::Record, &from.uri(), false).await?;
    let current: BTreeMap<String, Object> = store
        .list(Kind::Record, &to.uri(), false)
        .await?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let mut changed = 0;
    for record in &wanted {
        if current
            .get(&record.id)
            .is_some_and(|o| o.data == record.data)
        {
            continue;
        }
        store
            .put(write(
                Kind::Record,
                to.uri(),
                &record.id,
                record.data.clone(),
            ))
            .await?;
        changed += 1;
    }
    let keep: BTreeSet<&str> = wanted.iter().map(|o| o.id.as_str()).collect();
    let gone: Vec<String> = current
        .keys()
        .filter(|id| !keep.contains(id.as_str()))
        .cloned()
        .collect();
    if !gone.is_empty() {
        changed += gone.len();
        store
            .delete_many(Kind::Record, &to.uri(), Some(gone))
            .await?;
    }
    Ok(changed)
}

/// The live records of `target` as JSON, and its records timestamp: what is signed.
pub async fn signed_content(
    store: &dyn SettingsStore,
    target: &Location,
) -> Result<(Vec<Value>, i64), StoreError> {
    let records = store.list(Kind::Record, &target.uri(), false).await?;
    let timestamp = store.timestamp(Kind::Record, &target.uri()).await?;
    Ok((records.iter().map(Object::to_json).collect(), timestamp))
}

/// Writes a signature (or removes a stale one) in `target`'s metadata, with the source's
/// published fields.
pub async fn write_signature(
    store: &dyn SettingsStore,
    target: &Location,
    source_metadata: &Map<String, Value>,
    signature: Option<Value>,
) -> Result<(), StoreError> {
    let current = target.metadata(store).await?.ok_or(StoreError::NotFound)?;
    let mut metadata = current.data;
    for field in PUBLISHED_COLLECTION_FIELDS {
        if let Some(value) = source_metadata.get(field) {
            metadata.insert(field.to_owned(), value.clone());
        }
    }
    super::signer::store_signature(&mut metadata, signature);
    store
        .put(write(
            Kind::Collection,
            target.bucket_uri(),
            &target.collection,
            metadata,
        ))
        .await?;
    Ok(())
}

/// Sets fields of the source collection's metadata (status, tracking fields, comments).
pub async fn update_metadata(
    store: &dyn SettingsStore,
    source: &Location,
    fields: Vec<(&str, Value)>,
) -> Result<Map<String, Value>, StoreError> {
    let current = source.metadata(store).await?.ok_or(StoreError::NotFound)?;
    let mut metadata = current.data;
    for (name, value) in fields {
        metadata.insert(name.to_owned(), value);
    }
    let mut update = write(
        Kind::Collection,
        source.bucket_uri(),
        &source.collection,
        metadata,
    );
    update.precondition = Precondition::IfMatch(current.last_modified);
    let (object, _) = store.put(update).await?;
    Ok(object.data)
}

/// Creates the editors and reviewers groups of a new source collection (the creator is
/// its first editor) and lets both groups write the collection.
pub async fn create_groups(
    store: &dyn SettingsStore,
    source: &Location,
    creator: &str,
    groups: [&str; 2],
) -> Result<(), StoreError> {
    for (i, group) in groups.iter().enumerate() {
        let members = if i == 0 {
            vec![Value::String(creator.to_owned())]
        } else {
            Vec::new()
        };
        let mut data = Map::new();
        data.insert("members".into(), Value::Array(members));
        let mut create = write(Kind::Group, source.bucket_uri(), group, data);
        create.permissions = Some(permissions(&[("write", creator)]));
        create.precondition = Precondition::IfAbsent;
        create_ignoring_race(store, create).await?;
    }
    let uri = source.uri();
    let mut current = store.permissions(&uri).await?;
    for group in groups {
        current
            .entry("write".into())
            .or_default()
            .insert(format!("{}/groups/{group}", source.bucket_uri()));
    }
    let metadata = source.metadata(store).await?.ok_or(StoreError::NotFound)?;
    let mut update = write(
        Kind::Collection,
        source.bucket_uri(),
        &source.collection,
        metadata.data,
    );
    update.permissions = Some(current);
    update.precondition = Precondition::IfMatch(metadata.last_modified);
    store.put(update).await?;
    Ok(())
}

/// Deletes the groups of a deleted source collection.
pub async fn delete_groups(
    store: &dyn SettingsStore,
    source: &Location,
    groups: [&str; 2],
) -> Result<(), StoreError> {
    for group in groups {
        match store
            .delete(Kind::Group, &source.bucket_uri(), group, Precondition::None)
            .await
        {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
