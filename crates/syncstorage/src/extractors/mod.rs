//! Extractors: everything a handler needs, validated, or the protocol's refusal.
//!
//! Each extractor owns one part of the request (path, query, a header family, the body)
//! and rejects with [`ApiError`](crate::error::ApiError), so handlers never see unchecked
//! input and never build error bodies themselves.

mod accept;
mod body;
mod path;
mod precondition;
mod query;
mod weave_headers;

pub use accept::OutputFormat;
pub use body::{PostBody, PutBody};
pub use path::{BsoPath, CollectionPath};
pub use precondition::Preconditions;
pub use query::{BatchMode, CollectionQuery, IdsQuery};
pub use weave_headers::DeclaredSizes;
