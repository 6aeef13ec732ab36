//! Wire-level facts of the Sync protocols, shared by every syncstack service and client.
//!
//! This crate owns what crosses the wire and nothing else: timestamps in their exact
//! two-decimal form, the server limits of `info/configuration`, Weave error codes, BSO
//! validation, tokenlib v2 tokens, Hawk request signing and the onepw key derivations of
//! Mozilla accounts. It depends on no HTTP framework
//! and no database driver, so that the storage backends, the token server, the client and
//! the load generator can all share one definition of the protocol.
#![deny(missing_docs)]

pub mod bso;
pub mod hawk;
pub mod limits;
pub mod onepw;
pub mod timestamp;
pub mod token;
pub mod weave;

pub use bso::{BsoUpdate, Patch};
pub use limits::ServerLimits;
pub use timestamp::SyncTimestamp;
pub use weave::WeaveError;
