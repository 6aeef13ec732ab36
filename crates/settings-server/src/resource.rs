//! Where an object lives: its kind, its parent's URI and its id, parsed from the URL.

use settings_store::Kind;

use crate::error::{Errno, KintoError};

/// An object (or a list, when `id` is None) in Kinto's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The kind of the object or of the list's objects.
    pub kind: Kind,
    /// The URI of the parent (`""` for buckets and accounts).
    pub parent: String,
    /// The object's id; None for a list.
    pub id: Option<String>,
}

/// Whether `id` is a valid bucket, collection, group or record id.
pub fn is_valid_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && id.len() <= 256
}

/// Account ids are a little wider (they are user names).
pub fn is_valid_account_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

/// Kinto's `resource_name` of a kind: the singular of its plural.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bucket => "bucket",
        Kind::Group => "group",
        Kind::Collection => "collection",
        Kind::Record => "record",
        Kind::Account => "account",
        Kind::History => "history",
    }
}

impl Resource {
    /// Parses a path below `/v1` (e.g. `/buckets/b/collections/c/records`).
    pub fn parse(path: &str) -> Result<Resource, KintoError> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let bad_id = |id: &str| {
            KintoError::new(
                axum::http::StatusCode::NOT_FOUND,
                Errno::InvalidResourceId,
                format!("Invalid id {id:?}"),
            )
        };
        let checked = |id: &str| {
            if is_valid_id(id) {
                Ok(id.to_owned())
            } else {
                Err(bad_id(id))
            }
        };
        let resource = match segments.as_slice() {
            ["buckets"] => Resource {
                kind: Kind::Bucket,
                parent: String::new(),
                id: None,
            },
            ["buckets", b] => Resource {
                kind: Kind::Bucket,
                parent: String::new(),
                id: Some(checked(b)?),
            },
            ["buckets", b, "collections"] => Resource {
                kind: Kind::Collection,
                parent: format!("/buckets/{}", checked(b)?),
                id: None,
            },
            ["buckets", b, "collections", c] => Resource {
                kind: Kind::Collection,
                parent: format!("/buckets/{}", checked(b)?),
                id: Some(checked(c)?),
            },
            ["buckets", b, "groups"] => Resource {
                kind: Kind::Group,
                parent: format!("/buckets/{}", checked(b)?),
                id: None,
            },
            ["buckets", b, "groups", g] => Resource {
                kind: Kind::Group,
                parent: format!("/buckets/{}", checked(b)?),
                id: Some(checked(g)?),
            },
            ["buckets", b, "collections", c, "records"] => Resource {
                kind: Kind::Record,
                parent: format!("/buckets/{}/collections/{}", checked(b)?, checked(c)?),
                id: None,
            },
            ["buckets", b, "collections", c, "records", r] => Resource {
                kind: Kind::Record,
                parent: format!("/buckets/{}/collections/{}", checked(b)?, checked(c)?),
                id: Some(checked(r)?),
            },
            ["buckets", b, "history"] => Resource {
                kind: Kind::History,
                parent: format!("/buckets/{}", checked(b)?),
                id: None,
            },
            ["accounts"] => Resource {
                kind: Kind::Account,
                parent: String::new(),
                id: None,
            },
            ["accounts", a] if is_valid_account_id(a) => Resource {
                kind: Kind::Account,
                parent: String::new(),
                id: Some((*a).to_owned()),
            },
            ["accounts", a] => return Err(bad_id(a)),
            _ => return Err(KintoError::unknown_path()),
        };
        Ok(resource)
    }

    /// The object's URI (`/buckets/b/collections/c`), or the list's (`.../records`).
    pub fn uri(&self) -> String {
        match &self.id {
            Some(id) => format!("{}/{}/{id}", self.parent, self.kind.plural()),
            None => format!("{}/{}", self.parent, self.kind.plural()),
        }
    }

    /// Kinto's `resource_name` of the object's kind (`bucket`, `record`, ...).
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind)
    }

    /// The same list's object with `id`.
    pub fn with_id(&self, id: &str) -> Resource {
        Resource {
            id: Some(id.to_owned()),
            ..self.clone()
        }
    }

    /// The parent object, as a resource (None for top-level kinds).
    pub fn parent_resource(&self) -> Option<Resource> {
        Resource::parse(&self.parent)
            .ok()
            .filter(|_| !self.parent.is_empty())
    }

    /// The URIs whose permissions apply to this object: itself (if an object) and every
    /// ancestor, nearest first.
    pub fn permission_chain(&self) -> Vec<String> {
        let mut chain = Vec::new();
        if self.id.is_some() {
            chain.push(self.uri());
        }
        let mut parent = self.parent.clone();
        while !parent.is_empty() {
            chain.push(parent.clone());
            // Strip "/<plural>/<id>" from the end.
            let parts: Vec<String> = parent.rsplitn(3, '/').map(str::to_owned).collect();
            if parts.len() < 3 {
                break;
            }
            parent = parts[2].clone();
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let r = Resource::parse("/buckets/main/collections/cfr/records/abc").unwrap();
        assert_eq!(
            (r.kind, r.parent.as_str(), r.id.as_deref()),
            (Kind::Record, "/buckets/main/collections/cfr", Some("abc"))
        );
        assert_eq!(r.uri(), "/buckets/main/collections/cfr/records/abc");
        assert_eq!(
            r.permission_chain(),
            [
                "/buckets/main/collections/cfr/records/abc",
                "/buckets/main/collections/cfr",
                "/buckets/main"
            ]
        );
        let list = Resource::parse("/buckets/main/collections").unwrap();
        assert_eq!((list.kind, list.id.clone()), (Kind::Collection, None));
        assert_eq!(list.permission_chain(), ["/buckets/main"]);
        assert_eq!(
            Resource::parse("/buckets/b").unwrap().permission_chain(),
            ["/buckets/b"]
        );
        assert!(Resource::parse("/buckets/-bad").is_err());
        assert!(Resource::parse("/nothing").is_err());
        assert_eq!(
            Resource::parse("/accounts/alice@example.com").unwrap().kind,
            Kind::Account
        );
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("a1_b-c"));
        assert!(!is_valid_id("_a"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a b"));
    }
}
