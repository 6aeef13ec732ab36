//! A Remote Settings client: it polls `monitor/changes`, fetches changesets, verifies
//! their content signature against a pinned root, and keeps each collection in a local
//! SQLite database.
//!
//! Its one promise (ADR 0009): **invalid data never replaces valid data, and an empty
//! collection can always be told from a failed sync.** A sync computes the new state in
//! memory, verifies it, and writes it in one transaction only if it verified; if not, it
//! retries once with the full changeset, and if that fails too the local data stays as
//! it was and the failure is recorded in the collection's sync history. A consumer reads
//! with [`Client::get`], which can refuse to answer when the last sync failed
//! ([`GetOptions::fail_if_sync_failed`]) or verify the local data before answering
//! ([`GetOptions::verify`]); [`Client::history`] tells what happened. A plain `get` answers
//! the last verified data, which is an empty list for a collection never synced: callers
//! that must not mistake that for an empty collection use `fail_if_sync_failed`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use settings_client::{Client, ClientConfig, CollectionKey, GetOptions};
//!
//! let root = content_signature::fingerprint::parse("3C:01:44:6A:...")?;
//! let config = ClientConfig::new(
//!     "https://settings.example.com/v1".parse()?,
//!     root,
//!     "settings-client.db".into(),
//! );
//! let client = Client::open(config)?;
//! client.poll(|_| true).await?;
//! let key = CollectionKey::new("main", "cfr");
//! let options = GetOptions { fail_if_sync_failed: true, ..GetOptions::default() };
//! let records = client.get(&key, &options).await?;
//! # Ok(()) }
//! ```
//!
//! **Boundary:** the client never writes to the server, and no code path writes records
//! that did not verify (a packaged dump, trusted as shipped, is the one exception, and
//! only when newer than the local data).

#![deny(missing_docs)]

mod attachments;
mod client;
mod dumps;
mod get;
pub mod local;
pub mod remote;
mod sync;
pub mod verify;

pub use attachments::AttachmentError;
pub use client::{
    Client, ClientConfig, DEFAULT_SIGNER_NAME, ONECRL_SIGNER_NAME, OpenError, SyncError,
};
pub use get::{Filter, GetError, GetOptions};
pub use local::{CollectionKey, HistoryEntry, SyncStatus};
pub use sync::{PollReport, SyncOutcome};
