//! Remote Settings content signatures, shared by syncstack's Remote Settings server (which
//! signs) and client (which verifies).
//!
//! A Remote Settings collection is trusted because of a signature over its records, not
//! because of the TLS connection it came over: records may be served from caches and CDNs,
//! and a client must be able to tell that what it holds is exactly what the publisher
//! approved. Both ends therefore have to agree byte for byte on what is signed, which is why
//! the server and the client share this one crate instead of each having its own copy of
//! the rules:
//!
//! - [`canonical`] turns a JSON value into the one canonical text both sides hash;
//! - [`message`] builds the signed payload from a record set and its timestamp, and the
//!   `Content-Signature:\0`-prefixed message that the signature actually covers;
//! - [`sign`] signs that message with an ECDSA P-384 key (the server side);
//! - [`verify`](mod@verify) checks a signature against the end-entity certificate of an x5u chain, and
//!   validates that chain against a root pinned by its SHA-256 (the client side);
//! - [`pki`] mints a development PKI (root, name-constrained intermediate, signer) with the
//!   same profile as Mozilla's, so a self-hosted server can publish a real x5u chain;
//! - [`fingerprint`] reads and writes root pins in the `3C:01:…` form Mozilla's clients use.
//!
//! **Design decision:** no cryptography is written here. Signing and raw-signature
//! verification use RustCrypto's `p384`, path validation (validity dates, code-signing EKU,
//! name constraints, subject name) uses `rustls-webpki`, and certificate generation uses
//! `rcgen`. This crate only composes them into the Remote Settings profile.
//!
//! ```
//! use std::time::Duration;
//! use content_signature::{Signer, init_dev_pki, signed_message, signed_payload, verify};
//! use serde_json::json;
//!
//! let now = 1_750_000_000; // Unix seconds
//! let pki = init_dev_pki(
//!     "remote-settings.content-signature.mozilla.org",
//!     Duration::from_secs(30 * 24 * 3600),
//!     now,
//! )?;
//!
//! // Server: sign the collection.
//! let records = vec![json!({"id": "a", "last_modified": 1, "enabled": true})];
//! let payload = signed_payload(&records, 1)?;
//! let signature = Signer::from_pem(&pki.signer_key_pem)?.sign(&signed_message(&payload));
//!
//! // Client: verify it against the pinned root.
//! verify(
//!     &records,
//!     1,
//!     &signature,
//!     &pki.chain_pem,
//!     &pki.root_sha256_bytes(),
//!     "remote-settings.content-signature.mozilla.org",
//!     now,
//! )?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Boundary:** no I/O. Fetching the x5u chain, reading keys from disk and choosing which
//! root to pin belong to the callers; every function here takes bytes or strings and the
//! current time explicitly, so results are reproducible in tests.

#![deny(missing_docs)]

pub mod canonical;
mod error;
pub mod fingerprint;
pub mod message;
pub mod pki;
pub mod sign;
pub mod verify;

pub use canonical::canonical_json;
pub use error::{CanonicalError, PkiError, VerifyError};
pub use message::{PREFIX, signed_message, signed_payload, signed_payload_of};
pub use pki::{DevPki, IssuerChain, init_dev_pki, issue_signer, read_issuer_chain};
pub use sign::Signer;
pub use verify::{LeafCert, verify, verify_chain, verify_signature};
