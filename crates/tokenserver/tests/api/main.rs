//! The token server over a real socket: every rule, error body and assignment path.
//!
//! `issuer` signs arbitrary access tokens with its own RSA key (so tests can make expired,
//! wrongly scoped or wrongly signed ones); `server` runs the token server on port 0 over a
//! temporary SQLite store; `remote` runs a fake Mozilla accounts `/v1/verify` beside it.

mod issuer;
mod server;

mod assignment;
mod errors;
mod remote;
mod tokens;
