//! The one typed configuration of syncstack.
//!
//! Precedence, lowest to highest: built-in defaults, then the TOML file (`--config FILE` or
//! `SYNCSTACK_CONFIG`), then `SYNCSTACK_*` environment variables (`__` separates nested
//! keys: `SYNCSTACK_STORAGE__LIMITS__MAX_POST_RECORDS=50`), then command-line flags.
//! Loading has no side effects; creating the data directory and the secret happens when a
//! command needs them. `syncstack default-config` prints the commented reference, which is
//! kept in `docs/configuration.md` too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use sync_proto::ServerLimits;

/// The commented example configuration, with every key at its default.
pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// A SyncStorage 1.5 storage node.
    Storage,
    /// The token server (`/1.0/sync/1.5`).
    Tokenserver,
    /// The built-in identity provider (`/identity/...`).
    Identity,
    /// The accounts service Firefox signs in to (`/auth/v1/...`, `/profile/v1/...`,
    /// `/.well-known/fxa-client-configuration`).
    Accounts,
    /// The Easy Setup pairing relay (`/easysetup/...`).
    Easysetup,
    /// The Remote Settings server (`/v1/...`).
    Settings,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Commit durability of the SQLite database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Survives power loss (fsync on every commit).
    #[default]
    Full,
    /// Survives a process crash; faster.
    Normal,
}

/// Everything syncstack can be configured with.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the database and the generated secret live.
    pub data_dir: PathBuf,
    /// Address the HTTP services listen on.
    pub listen: SocketAddr,
    /// The URL clients reach this process at (default `http://<listen>`).
    pub public_url: Option<String>,
    /// The secret shared by the token server and the storage nodes. Default: generated
    /// once and kept in `<data_dir>/master_secret`.
    pub master_secret: Option<String>,
    /// Address of the Prometheus metrics listener; none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// Services this process runs.
    pub services: Vec<Service>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Cross-origin access from browsers, for every service.
    pub cors: crate::http::CorsConfig,
    /// Storage node settings.
    pub storage: StorageSettings,
    /// Token server settings.
    pub tokenserver: TokenServerConfig,
    /// Built-in identity provider settings.
    pub identity: IdentityConfig,
    /// Accounts service settings (Firefox sign-in).
    pub accounts: accounts::AccountsSettings,
    /// Easy Setup pairing relay settings.
    pub easysetup: easysetup::channel::ChannelSettings,
    /// Remote Settings server settings, under Kinto's names.
    pub settings: settings_server::KintoSettings,
    /// The Remote Settings review workflow and content signer.
    pub signer: settings_server::workflow::SignerSettings,
    /// The Remote Settings client of `syncstack settings sync|get|status`.
    pub remote_settings_client: SettingsClientConfig,
}

/// Settings of the Remote Settings client commands (`syncstack settings sync|get|status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsClientConfig {
    /// The server's API root (`.../v1`). Default: this process's public URL + `/v1`.
    pub server_url: Option<String>,
    /// SHA-256 of the root certificate signatures must chain to (`3C:01:...`). Default:
    /// the root of `<data_dir>/signer/root.pem` when it exists.
    pub root_hash: Option<String>,
    /// The signer name the signing certificate must carry. Default: Firefox's rule.
    pub signer_name: Option<String>,
    /// The client's database. Default `<data_dir>/settings-client.db`.
    pub database: Option<PathBuf>,
    /// Packaged dumps (`{dir}/{bucket}/{collection}.json`). Default: none.
    pub dumps_dir: Option<PathBuf>,
    /// Whether `sync` without a collection also syncs the `*-preview` buckets.
    pub include_preview: bool,
}

/// Settings of the token server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenServerConfig {
    /// Database URL: `sqlite:PATH` or `postgres://...`; default
    /// `sqlite:<data_dir>/tokenserver.db`, created if missing.
    pub database_url: Option<String>,
    /// Most connections to a PostgreSQL token database per process (not used for SQLite).
    pub database_pool_max_size: usize,
    /// Token lifetime in seconds.
    pub token_duration_secs: u64,
    /// Whether users never seen before get a node.
    pub allow_new_users: bool,
    /// `node_type` reported to clients (telemetry only).
    pub node_type: String,
    /// Domain of the `<account uid>@<domain>` identities users are stored under.
    pub email_domain: String,
    /// Key of the `hashed_fxa_uid` metrics hash; default derived from the master secret.
    pub metrics_hash_secret: Option<String>,
    /// Share of a full node's capacity released when every node is full.
    pub node_capacity_release_rate: f64,
    /// Capacity given to this process's own storage node when it registers itself.
    pub init_node_capacity: i64,
    /// Whether to trust the built-in identity provider of this data directory.
    pub trust_local_identity: bool,
    /// Other issuers whose access tokens are accepted (e.g. Mozilla Accounts).
    pub issuers: Vec<IssuerConfig>,
}

/// An issuer of access tokens that the token server trusts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` claim of its tokens.
    pub issuer: String,
    /// The `aud` its tokens must carry; not checked when absent.
    pub audience: Option<String>,
    /// Where its JWKS is published (fetched at start and every hour).
    pub jwks_url: Option<String>,
    /// A file holding its JWKS.
    pub jwks_file: Option<PathBuf>,
    /// Its JWKS inline, as JSON.
    pub jwks: Option<String>,
    /// Where its opaque (non-JWT) access tokens are verified: Mozilla accounts'
    /// `https://oauth.accounts.firefox.com/v1/verify`. JWTs are never sent there.
    pub verify_url: Option<String>,
    /// Seconds one call to `verify_url` may take before the token is refused (default 5).
    pub verify_timeout_secs: Option<u64>,
    /// Seconds an answer of `verify_url` is reused (default 60; 0 turns the cache off).
    pub verify_cache_secs: Option<u64>,
}

/// Settings of the built-in identity provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The `iss` of the tokens it signs.
    pub issuer: String,
}

impl Default for TokenServerConfig {
    fn default() -> Self {
        TokenServerConfig {
            database_url: None,
            database_pool_max_size: 10,
            token_duration_secs: 3600,
            allow_new_users: true,
            node_type: "sqlite".into(),
            email_domain: "api.accounts.firefox.com".into(),
            metrics_hash_secret: None,
            node_capacity_release_rate: 0.1,
            init_node_capacity: 100_000,
            trust_local_identity: true,
            issuers: Vec::new(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuer: "syncstack-local".into(),
        }
    }
}

/// Settings of the storage node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Database URL; default `sqlite:<data_dir>/storage.db`, created if missing. An explicit
    /// `sqlite:` path must exist unless it ends in `?mode=rwc`. `postgres://` selects
    /// PostgreSQL (the database must exist; its tables are created).
    pub database_url: Option<String>,
    /// Reader connections to SQLite.
    pub readers: u32,
    /// Most pooled connections to PostgreSQL.
    pub max_connections: u32,
    /// Commit durability of SQLite.
    pub durability: Durability,
    /// Largest accepted difference between a Hawk timestamp and the server clock, seconds.
    pub hawk_skew_secs: u64,
    /// Most Hawk nonces remembered for replay detection.
    pub nonce_cache_capacity: usize,
    /// Whether `limits.max_quota_limit` is enforced.
    pub quota_enabled: bool,
    /// Seconds after expiry a token still reads `info/collections`.
    pub expired_token_grace_secs: u64,
    /// Seconds a batch stays open.
    pub batch_lifetime_secs: u64,
    /// Seconds between purges of expired records.
    pub purge_interval_secs: u64,
    /// Limits published in `info/configuration`.
    pub limits: ServerLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("./syncstack-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            public_url: None,
            master_secret: None,
            metrics_listen: None,
            services: vec![
                Service::Storage,
                Service::Tokenserver,
                Service::Identity,
                Service::Accounts,
                Service::Easysetup,
                Service::Settings,
            ],
            log_format: LogFormat::Text,
            cors: crate::http::CorsConfig::default(),
            storage: StorageSettings::default(),
            tokenserver: TokenServerConfig::default(),
            identity: IdentityConfig::default(),
            accounts: accounts::AccountsSettings::default(),
            easysetup: easysetup::channel::ChannelSettings::default(),
            settings: settings_server::KintoSettings::default(),
            signer: settings_server::workflow::SignerSettings::default(),
            remote_settings_client: SettingsClientConfig::default(),
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            database_url: None,
            readers: 4,
            max_connections: 16,
            durability: Durability::Full,
            hawk_skew_secs: 120,
            nonce_cache_capacity: 1_000_000,
            quota_enabled: false,
            expired_token_grace_secs: 2 * 60 * 60,
            batch_lifetime_secs: 2 * 60 * 60,
            purge_interval_secs: 60 * 60,
            limits: ServerLimits::default(),
        }
    }
}

impl std::fmt::Debug for Settings {
    /// Like a derived `Debug`, with the master secret redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field(
                "master_secret",
                &self.master_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("metrics_listen", &self.metrics_listen)
            .field("services", &self.services)
            .field("log_format", &self.log_format)
            .field("cors", &self.cors)
            .field("storage", &RedactedStorage(&self.storage))
            .field("tokenserver", &RedactedTokenServer(&self.tokenserver))
            .field("identity", &self.identity)
            .field("accounts", &self.accounts)
            .field("easysetup", &self.easysetup)
            .field(
                "settings",
                &settings_server::KintoSettings {
                    storage_url: self
                        .settings
                        .storage_url
                        .as_deref()
                        .map(redact_url_password),
                    ..self.settings.clone()
                },
            )
            .field("signer", &self.signer)
            .field("remote_settings_client", &self.remote_settings_client)
            .finish()
    }
}

/// The storage settings with the password of a `postgres://` URL hidden.
struct RedactedStorage<'a>(&'a StorageSettings);

impl std::fmt::Debug for RedactedStorage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut storage = self.0.clone();
        storage.database_url = storage.database_url.as_deref().map(redact_url_password);
        storage.fmt(f)
    }
}

/// A database URL without its password (in the user part or a `password=` parameter).
fn redact_url_password(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return text.to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    if url.query_pairs().any(|(key, _)| key == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if key == "password" {
                    "redacted".into()
                } else {
                    value
                };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

struct RedactedTokenServer<'a>(&'a TokenServerConfig);

impl std::fmt::Debug for RedactedTokenServer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        f.debug_struct("TokenServerConfig")
            .field(
                "database_url",
                &t.database_url.as_deref().map(redact_url_password),
            )
            .field("database_pool_max_size", &t.database_pool_max_size)
            .field("token_duration_secs", &t.token_duration_secs)
            .field("allow_new_users", &t.allow_new_users)
            .field("node_type", &t.node_type)
            .field("email_domain", &t.email_domain)
            .field(
                "metrics_hash_secret",
                &t.metrics_hash_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("node_capacity_release_rate", &t.node_capacity_release_rate)
            .field("init_node_capacity", &t.init_node_capacity)
            .field("trust_local_identity", &t.trust_local_identity)
            .field("issuers", &t.issuers)
            .finish()
    }
}

/// Command-line values that override the configuration; `None` leaves it alone.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--public-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `--metrics-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// `--services`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<Service>>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// The top-level settings an environment variable may set. Other `SYNCSTACK_*` variables
/// (the config file path, test and script switches) are left alone rather than refused.
const SETTING_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "public_url",
    "master_secret",
    "metrics_listen",
    "services",
    "log_format",
    "cors",
    "storage",
    "tokenserver",
    "identity",
    "accounts",
    "easysetup",
    "settings",
    "signer",
    "remote_settings_client",
];

impl Settings {
    /// Layers defaults, the file, the environment and the flags.
    pub fn load(file: Option<&Path>, flags: FlagOverrides) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                anyhow::bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(
                Env::prefixed("SYNCSTACK_")
                    .filter(|key| {
                        let top = key.as_str().split("__").next().unwrap_or("");
                        SETTING_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                    })
                    .split("__"),
            )
            // Kinto operators know `SYNCSTACK_SETTINGS_PAGINATE_BY` better than the nested form.
            .merge(
                Env::prefixed("SYNCSTACK_SETTINGS_")
                    .filter(|key| !key.as_str().starts_with('_'))
                    .map(|key| format!("settings.{}", key.as_str().to_ascii_lowercase()).into()),
            )
            .merge(Serialized::defaults(flags));
        figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }

    /// The public URL: as configured, or `http://<listen>`.
    pub fn public_url(&self) -> anyhow::Result<url::Url> {
        let text = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        let url = url::Url::parse(&text)
            .map_err(|e| anyhow::anyhow!("public_url {text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            anyhow::bail!("public_url {text:?} must be an http:// or https:// URL with a host");
        }
        if url.query().is_some() || url.fragment().is_some() {
            anyhow::bail!("public_url {text:?} must not have a query or fragment");
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_file_parses_to_the_defaults() {
        let parsed: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(DEFAULT_CONFIG))
            .extract()
            .unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Settings::default()));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's `Jail` fixes the closure's error type.
    fn environment_variables_that_are_not_settings_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SYNCSTACK_TEST_POSTGRES_URL", "postgres://x");
            jail.set_env("SYNCSTACK_SKIP_PYTHON", "1");
            jail.set_env("SYNCSTACK_STORAGE__LIMITS__MAX_POST_RECORDS", "7");
            jail.set_env("SYNCSTACK_LISTEN", "127.0.0.1:9");
            jail.set_env("SYNCSTACK_SETTINGS_PAGINATE_BY", "25");
            // Principals as Kinto operators write them: one, or several separated by spaces.
            jail.set_env(
                "SYNCSTACK_SETTINGS_ACCOUNT_CREATE_PRINCIPALS",
                "system.Everyone",
            );
            jail.set_env(
                "SYNCSTACK_SETTINGS_BUCKET_CREATE_PRINCIPALS",
                "system.Authenticated account:admin",
            );
            let settings = Settings::load(None, FlagOverrides::default()).unwrap();
            assert_eq!(
                settings.settings.account_create_principals,
                ["system.Everyone"]
            );
            assert_eq!(
                settings.settings.bucket_create_principals,
                ["system.Authenticated", "account:admin"]
            );
            assert_eq!(settings.storage.limits.max_post_records, 7);
            assert_eq!(settings.listen.port(), 9);
            assert_eq!(
                settings.settings.paginate_by,
                Some(25),
                "Kinto-style setting variables"
            );
            let flags = FlagOverrides {
                listen: Some("127.0.0.1:10".parse().unwrap()),
                ..Default::default()
            };
            assert_eq!(
                Settings::load(None, flags).unwrap().listen.port(),
                10,
                "flags beat the environment"
            );
            Ok(())
        });
    }

    #[test]
    fn the_configuration_reference_shows_the_default_file() {
        let reference = include_str!("../../../docs/configuration.md");
        assert!(
            reference.contains(DEFAULT_CONFIG),
            "docs/configuration.md is out of date"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's `Jail` fixes the closure's error type.
    fn signer_resources_replace_the_default_ones() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "syncstack.toml",
                "[signer]\nto_review_enabled = false\n[[signer.resources]]\nsource = \"staging\"\ndestination = \"blocklists\"\ncollection = \"addons\"\n",
            )?;
            jail.set_env("SYNCSTACK_SIGNER__KEY_FILE", "/keys/signer-key.pem");
            let settings =
                Settings::load(Some(Path::new("syncstack.toml")), FlagOverrides::default())
                    .unwrap();
            assert!(!settings.signer.to_review_enabled);
            assert_eq!(settings.signer.resources.len(), 1);
            assert_eq!(settings.signer.resources[0].source, "staging");
            assert_eq!(settings.signer.resources[0].preview, None);
            assert_eq!(
                settings.signer.key_file.as_deref(),
                Some(Path::new("/keys/signer-key.pem"))
            );
            Ok(())
        });
    }

    #[test]
    fn redacts_the_secret() {
        let settings = Settings {
            master_secret: Some("hunter2".into()),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn redacts_database_passwords() {
        let mut settings = Settings::default();
        settings.tokenserver.database_url = Some("postgres://u:hunter2@db/tokens".into());
        settings.settings.storage_url =
            Some("postgresql://db/settings?user=u&password=hunter3".into());
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
        assert!(shown.contains("postgres://u:redacted@db/tokens"), "{shown}");
        assert_eq!(redact_url_password("sqlite:x.db"), "sqlite:x.db");
    }

    #[test]
    fn redacts_the_storage_database_password() {
        for url in [
            "postgres://sync:hunter3@db:5432/sync",
            "postgresql://db/sync?user=sync&password=hunter3",
        ] {
            let mut settings = Settings::default();
            settings.storage.database_url = Some(url.into());
            let shown = format!("{settings:?}");
            assert!(!shown.contains("hunter3"), "{shown}");
            assert!(
                shown.contains("redacted") && shown.contains("/sync"),
                "{shown}"
            );
        }
    }

    #[test]
    fn derives_the_public_url_from_listen() {
        let settings = Settings::default();
        assert_eq!(
            settings.public_url().unwrap().as_str(),
            "http://127.0.0.1:8000/"
        );
        let bad = Settings {
            public_url: Some("ftp://x".into()),
            ..Settings::default()
        };
        assert!(bad.public_url().is_err());
    }
}
