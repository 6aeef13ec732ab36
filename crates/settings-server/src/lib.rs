//! The Remote Settings server: a Kinto-compatible HTTP API over a `SettingsStore`.
//!
//! Request flow: [`router`] matches the route; [`handlers`] parse the path into a
//! [`resource::Resource`], authenticate the caller ([`auth`]), check Kinto's permission rules
//! ([`access`]), and make the store call; lists go through [`query`] (filters, sorting,
//! pagination). [`error::KintoError`] is the one place a failure becomes Kinto's error body.
//!
//! **Invariant:** the store knows nothing of HTTP or of what permissions mean; nothing here
//! knows which database holds the objects.
#![deny(missing_docs)]

pub mod access;
pub mod admin;
pub mod attachments;
pub mod auth;
mod batch;
mod body;
pub mod changes;
mod dates;
pub mod error;
mod handlers;
pub mod history;
pub mod hooks;
pub mod list_cache;
mod lists;
mod permissions;
pub mod query;
pub mod resource;
mod root;
mod router;
pub mod settings;
mod snapshot;
pub mod state;
pub mod workflow;

pub use router::router;
pub use settings::KintoSettings;
pub use state::SettingsState;
