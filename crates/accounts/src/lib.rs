//! syncstack's accounts service: the subset of Mozilla accounts' API that Firefox's
//! sign-in (OAuth flow, ESR 140 and 153) and PyFxA 0.9 use, so that a self-hoster's
//! Firefox signs in to syncstack itself and nothing leaves their network.
//!
//! - Accounts and keys by Mozilla's onepw protocol ([`onepw`]): the server receives
//!   `authPW`, never the password, and stores an argon2id-based verifier and a wrapped
//!   `wrapKb`, never kB.
//! - Tokens (session, key fetch, password change) authenticate by Hawk with the MAC
//!   verified, timestamp window and nonce cache included (Mozilla's server skips all
//!   three), or by the `Bearer fxs_…`/`fxk_…` scheme newer clients send.
//! - OAuth: authorization codes bound to a PKCE S256 challenge carrying the client's
//!   `keys_jwe` untouched, the `authorization_code`, `fxa-credentials` and `refresh_token`
//!   grants, and RS256 `at+JWT` access tokens signed with the built-in identity provider's
//!   key, which the token server already trusts.
//! - Devices, attached clients and the profile, as far as Firefox reads them; push and
//!   device commands are refused with a clear error and no `Retry-After`.
//!
//! Routes live under `/auth/v1` (Mozilla's auth and OAuth servers in one) and
//! `/profile/v1`, plus the two `/.well-known` documents at the root; see [`router`].
//! The web pages Firefox opens (sign in, sign up, the account) are in `pages`: they
//! run onepw in the browser and complete Firefox's WebChannel flow.
//!
//! **Boundary:** knows nothing of Sync storage or the token server; the signed access
//! token and the JWKS are the whole contract, as for any other issuer.

#![deny(missing_docs)]

mod auth;
mod error;
mod limits;
pub mod onepw;
mod pages;
mod routes;
mod service;
mod settings;
pub mod store;
mod tokens;

pub use error::ApiError;
pub use routes::router;
pub use service::{AccountsService, NewAccount};
pub use settings::AccountsSettings;
pub use tokens::{FIREFOX_CLIENT_ID, OLDSYNC_SCOPE, PROFILE_SCOPE};
