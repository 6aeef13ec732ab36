//! Who may do what: Kinto's permission rules.
//!
//! Permissions are attached to objects and inherited downwards: `read` or `write` on a
//! bucket applies to everything in it. `write` implies `read`. Creating an object needs
//! `write` or `<kind>:create` on the container (buckets: the `bucket_create_principals`
//! setting). To avoid telling strangers what exists, a missing object is a 404 only for a
//! caller who may read its container, a 403 otherwise (401 when anonymous, as Kinto).

use settings_store::{Kind, Permissions, SettingsStore};

use crate::auth::Caller;
use crate::error::KintoError;
use crate::resource::Resource;

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read.
    Read,
    /// Change or delete.
    Write,
    /// Create an object of this kind in the container.
    Create(Kind),
}

/// The permission name that lets a principal create `kind` objects.
pub fn create_permission(kind: Kind) -> &'static str {
    match kind {
        Kind::Bucket => "bucket:create",
        Kind::Group => "group:create",
        Kind::Collection => "collection:create",
        Kind::Record => "record:create",
        Kind::Account => "account:create",
        // Entries are written by the server only.
        Kind::History => "history:create",
    }
}

fn grants(permissions: &Permissions, caller: &Caller, names: &[&str]) -> bool {
    names
        .iter()
        .filter_map(|name| permissions.get(*name))
        .any(|principals| caller.is_any_of(principals))
}

/// Whether `caller` may do `action` on the URIs of `chain` (the object and its ancestors,
/// nearest first).
pub async fn allowed(
    store: &dyn SettingsStore,
    caller: &Caller,
    chain: &[String],
    action: Action,
) -> Result<bool, KintoError> {
    let names: Vec<&str> = match action {
        Action::Read => vec!["read", "write"],
        Action::Write => vec!["write"],
        Action::Create(kind) => vec!["write", create_permission(kind)],
    };
    for uri in chain {
        if grants(&store.permissions(uri).await?, caller, &names) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `caller` may read the list `resource` belongs to (its container).
pub async fn can_read_container(
    store: &dyn SettingsStore,
    caller: &Caller,
    resource: &Resource,
) -> Result<bool, KintoError> {
    let container = Resource {
        id: None,
        ..resource.clone()
    };
    allowed(store, caller, &container.permission_chain(), Action::Read).await
}

/// The error for an object the caller cannot see or that does not exist: Kinto's 404
/// (errno 110, naming the object) for a caller who may read its container, else a refusal
/// (401 to an anonymous caller, 403 otherwise).
pub async fn missing_or_forbidden(
    store: &dyn SettingsStore,
    caller: &Caller,
    resource: &Resource,
) -> KintoError {
    match can_read_container(store, caller, resource).await {
        Ok(true) => KintoError::missing(
            resource.kind_name(),
            resource.id.as_deref().unwrap_or_default(),
        ),
        Ok(false) => KintoError::denied(caller),
        Err(error) => error,
    }
}
