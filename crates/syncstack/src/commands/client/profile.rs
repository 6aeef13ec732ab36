//! The client's saved login: where the token server is, how to get access tokens, and the
//! account's key. It holds secrets (kB, a password or access token), so it is written with
//! mode 0600 and never printed.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sync_client::accounts::{AccountsClient, RefreshTokenLogin};
use sync_client::auth::{AccessTokenSource, PasswordLogin, StaticAccessToken, TokenServerClient};
use sync_client::keys::{self, KeyBundle};
use sync_client::storage::{NodeCredentials, StorageClient};
use sync_client::tier::{AnyClient, Tier1Client, Tier2Client};

/// A saved login.
#[derive(Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The token server (its base URL or its `/1.0/sync/1.5` URL).
    pub token_server: String,
    /// How access tokens are obtained.
    pub login: Login,
    /// The account's key kB, hex.
    pub kb: String,
    /// When kB was set, in ms (the keys_changed_at of X-KeyID).
    pub keys_changed_at: u64,
}

/// How access tokens are obtained.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Login {
    /// Log in to syncstack's identity provider with a password each time.
    Password {
        /// Base URL of the identity provider.
        identity_url: String,
        /// Account name.
        account: String,
        /// Password.
        password: String,
    },
    /// Signed in to an accounts service through onepw, as Firefox is: access tokens come
    /// from an offline oldsync grant (a refresh token, revocable, good for nothing else).
    Accounts {
        /// The auth API, e.g. `http://host/auth/v1`.
        accounts_url: String,
        /// The account's address.
        email: String,
        /// The refresh token.
        refresh_token: String,
    },
    /// A given OAuth access token.
    AccessToken {
        /// The token.
        token: String,
    },
}

impl Profile {
    /// The default location: `$XDG_CONFIG_HOME/syncstack/client.json`, else
    /// `~/.config/syncstack/client.json`.
    pub fn default_path() -> PathBuf {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("syncstack").join("client.json")
    }

    /// Reads a saved login.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "no login at {}: run `syncstack client login` first",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a syncstack login", path.display()))
    }

    /// Writes the login with mode 0600 (replacing an older one).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("writing {}", temporary.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }

    /// The base URL of the server the token server runs on (where the pairing relay is too).
    pub fn server_base_url(&self) -> String {
        self.token_server
            .trim_end_matches('/')
            .trim_end_matches("/1.0/sync/1.5")
            .to_owned()
    }

    /// kB as bytes.
    pub fn kb_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let kb = hex::decode(self.kb.trim()).context("kB is not hex")?;
        if kb.len() != 32 {
            anyhow::bail!("kB must be 32 bytes (64 hex characters), not {}", kb.len());
        }
        Ok(kb)
    }

    /// A client for this login, Tier 2 when asked.
    pub fn client(&self, tier2: bool) -> anyhow::Result<AnyClient> {
        let kb = self.kb_bytes()?;
        let http = reqwest::Client::new();
        let source: Box<dyn AccessTokenSource> = match &self.login {
            Login::Password {
                identity_url,
                account,
                password,
            } => Box::new(PasswordLogin {
                url: identity_url.clone(),
                account: account.clone(),
                password: password.clone(),
                http: http.clone(),
            }),
            Login::Accounts {
                accounts_url,
                refresh_token,
                ..
            } => Box::new(RefreshTokenLogin {
                accounts: AccountsClient {
                    auth_url: accounts_url.clone(),
                    http: http.clone(),
                },
                refresh_token: refresh_token.clone(),
            }),
            Login::AccessToken { token } => Box::new(StaticAccessToken(token.clone())),
        };
        let token_server = TokenServerClient {
            url: self.token_server.clone(),
            key_id: keys::key_id(&kb, self.keys_changed_at),
            source,
            http,
        };
        let storage = StorageClient::new(NodeCredentials::TokenServer(token_server));
        let bundle = KeyBundle::from_kb(&kb);
        Ok(if tier2 {
            AnyClient::Tier2(Tier2Client::new(storage, bundle))
        } else {
            AnyClient::Tier1(Tier1Client::new(storage, bundle))
        })
    }
}
