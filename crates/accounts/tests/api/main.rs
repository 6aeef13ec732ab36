//! The accounts service over a real socket, driven as Firefox and PyFxA drive it.
//!
//! - `support`: a server per test, and a client written from the protocol's description
//!   (its own onepw stretch, Hawk and Bearer authentication), independent of the server's
//!   code except for Hawk's wire format.
//! - `onepw`: sign-up, sign-in, keys, password change, and their refusals.
//! - `tokens`: Hawk and Bearer authentication and their refusals (forged, replayed,
//!   stale, destroyed).
//! - `oauth`: codes with PKCE and `keys_jwe`, the three grants, verify, profile, devices.

mod oauth;
mod onepw;
mod pages;
mod support;
mod tokens;
