//! Administrative commands: each opens what it needs from the configuration, does one job,
//! and prints a result a person can read (or, for tokens, one a script can use).

pub mod accounts;
pub mod client;
pub mod nodes;
pub mod pair;
pub mod purge;
pub mod settings;
pub mod settings_client;
pub mod token;
