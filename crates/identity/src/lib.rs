//! syncstack's built-in identity provider: local accounts that can sign in to Sync without
//! a Mozilla account.
//!
//! Self-hosters have no Mozilla account server, yet the token server needs someone to vouch
//! for a user before it hands out Sync credentials. Rather than give the token server a
//! second, special path for local users, this crate is an ordinary OAuth issuer: it signs
//! RS256 JWT access tokens shaped like Mozilla Accounts' (`typ` `at+jwt`, the same claims,
//! `fxa-generation` included) and publishes its public key as a JWKS. The token server
//! trusts it exactly as it would any other issuer, by fetching the JWKS and verifying
//! signatures, so one verifier serves both local and external accounts.
//!
//! What it owns, all in the data directory: `accounts.db` (names, uids, generations and
//! argon2id password hashes) and `identity-key.pem` (the RSA signing key, mode 0600).
//! [`IdentityProvider`] is the library API the CLI uses to manage accounts; [`router`]
//! serves the JWKS and a password-based token endpoint.
//!
//! **Boundary:** it issues access tokens only. It holds no Sync encryption keys and does
//! not speak the Mozilla accounts sign-in protocol; clients must bring their own keys.
//! It depends on no other syncstack crate, and the token server does not depend on it:
//! the JWT and the JWKS are the whole contract.

#![deny(missing_docs)]

mod account;
mod db;
mod error;
mod http;
mod key;
mod password;
mod provider;
mod schema;
mod token;

pub use account::Account;
pub use error::IdentityError;
pub use http::router;
pub use key::{Jwk, Jwks};
pub use provider::IdentityProvider;
pub use token::{AUDIENCE, AccessTokenClaims, CLIENT_ID, SYNC_SCOPE, TOKEN_TYPE};
