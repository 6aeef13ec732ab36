//! The accounts service's settings (`[accounts]` in the configuration file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the accounts service behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsSettings {
    /// Database URL: `sqlite:PATH` or `postgres://...`; default
    /// `sqlite:<data_dir>/fxa-accounts.db`, created if missing.
    pub database_url: Option<String>,
    /// Most connections to a PostgreSQL database per process (not used for SQLite).
    pub database_pool_max_size: usize,
    /// Whether anyone may create an account over HTTP. Unset: open until the first account
    /// exists, then closed (the operator adds more with `syncstack accounts add`).
    pub allow_sign_up: Option<bool>,
    /// The token server's base URL, which Firefox is told and oldsync access tokens name
    /// as their `aud`. Default: this process's public URL.
    pub tokenserver_url: Option<String>,
    /// Longest lifetime of an access token, in seconds; clients may ask for less.
    pub access_token_ttl_secs: u64,
    /// Lifetime of an OAuth authorization code, in seconds.
    pub code_ttl_secs: u64,
    /// Lifetime of key fetch and password change tokens, in seconds.
    pub one_time_token_ttl_secs: u64,
    /// Largest accepted difference between a Hawk timestamp and the server clock, seconds.
    pub hawk_skew_secs: u64,
    /// Failed password checks allowed per client address within the window.
    pub login_failures_per_address: u32,
    /// Failed password checks allowed per account within the window.
    pub login_failures_per_account: u32,
    /// The rate limits' window, in seconds.
    pub login_failure_window_secs: u64,
    /// Take the client address from the first `X-Forwarded-For` entry: only behind a proxy
    /// that overwrites that header.
    pub trust_forwarded_for: bool,
}

impl Default for AccountsSettings {
    fn default() -> Self {
        AccountsSettings {
            database_url: None,
            database_pool_max_size: 10,
            allow_sign_up: None,
            tokenserver_url: None,
            access_token_ttl_secs: 21_600,
            code_ttl_secs: 600,
            one_time_token_ttl_secs: 600,
            hawk_skew_secs: 120,
            login_failures_per_address: 30,
            login_failures_per_account: 10,
            login_failure_window_secs: 900,
            trust_forwarded_for: false,
        }
    }
}

impl AccountsSettings {
    /// The rate limits' window.
    pub(crate) fn window(&self) -> Duration {
        Duration::from_secs(self.login_failure_window_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults_and_unknown_keys_are_refused() {
        let parsed: AccountsSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, AccountsSettings::default());
        assert_eq!(parsed.allow_sign_up, None, "open until the first account");
        assert!(serde_json::from_str::<AccountsSettings>(r#"{"allow_signup": true}"#).is_err());
    }
}
