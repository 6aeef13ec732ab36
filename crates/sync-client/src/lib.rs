//! A Firefox Sync client (storage format 5, protocol 1.5).
//!
//! The crypto core sits at the bottom and knows nothing of HTTP:
//!
//! - [`keys`] turns a root secret (an FxA `kB`, or a legacy 26-character Sync Key) into the
//!   Sync Key Bundle, and computes the values that name that key to the token server
//!   (`X-Client-State`, `X-KeyID`, the scoped key's `k`).
//! - [`crypto`] encrypts and verifies record payloads: AES-256-CBC, then HMAC-SHA256 over
//!   the base64 ciphertext text, checked in constant time before anything is decrypted.
//! - [`records`] reads and writes `meta/global` and `crypto/keys`, the two records a
//!   client needs before any engine can run.
//!
//! Everything here is checked against the public Firefox Sync test vectors, so that this
//! client reads what Firefox, Android and application-services wrote, and they read what
//! it writes. Key material never appears in `Debug` output or error messages.
//!
//! Above it: [`accounts`] (signing in to an accounts service as Firefox does, for kB and a
//! refresh token), [`auth`] (access tokens and the token server), [`storage`] (Hawk-signed
//! SyncStorage requests, backoff, batching, and the guard that keeps Tier 2 clients out of
//! the crypto collection), [`session`] (the cached server setup and record encryption),
//! [`tier`] (Tier 1 and Tier 2 clients) and [`engine`] (incremental sync of a collection).
#![deny(missing_docs)]

pub mod accounts;
pub mod auth;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod keys;
pub mod records;
pub mod session;
pub mod storage;
pub mod tier;

pub use error::ClientError;

#[cfg(test)]
mod vectors;
