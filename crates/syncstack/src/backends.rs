//! Opening the databases named by database URLs.
//!
//! Backends are chosen at run time from the URL's scheme: `sqlite:` everywhere, and
//! `postgres://` / `postgresql://` for the token server and Remote Settings; any other
//! scheme is refused with the list of supported ones. A default database (no URL
//! configured) is created in the data directory; a configured path must already exist unless
//! the URL says `?mode=rwc`, so that a typo never starts an empty database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use postgres_support::is_postgres_url;
use settings_store::postgres::PostgresSettingsStore;
use syncstorage_store::Store;
use syncstorage_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use tokenserver_store::TokenStore;
use tokenserver_store::postgres::PostgresTokenStore;
use tokenserver_store::sqlite::SqliteTokenStore;

use crate::config::{self, Settings};

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file; `create` when the file may be created.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Whether a missing file is created.
        create: bool,
    },
}

impl DatabaseUrl {
    /// Parses `sqlite:PATH`, `sqlite://PATH` (`sqlite:///abs/path` for absolute paths), with
    /// an optional `?mode=rwc` that allows creating the file.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some((scheme, rest)) = url.split_once(':') else {
            anyhow::bail!("database URL {url:?} has no scheme (expected sqlite:PATH)");
        };
        match scheme {
            "sqlite" => {
                let rest = rest.strip_prefix("//").unwrap_or(rest);
                let (path, query) = match rest.split_once('?') {
                    Some((path, query)) => (path, Some(query)),
                    None => (rest, None),
                };
                if path.is_empty() {
                    anyhow::bail!("database URL {url:?} names no file");
                }
                let create = match query {
                    None => false,
                    Some("mode=rwc") => true,
                    Some("mode=rw") => false,
                    Some(other) => anyhow::bail!(
                        "unsupported SQLite URL option {other:?} (use mode=rwc or mode=rw)"
                    ),
                };
                Ok(DatabaseUrl::Sqlite {
                    path: PathBuf::from(path),
                    create,
                })
            }
            other => anyhow::bail!(
                "unsupported database scheme {other:?} in {url:?}: this build supports sqlite:"
            ),
        }
    }
}

/// Opens the storage node's database as configured.
pub fn open_storage(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = match &settings.storage.database_url {
        Some(url) => DatabaseUrl::parse(url)?,
        None => DatabaseUrl::Sqlite {
            path: settings.data_dir.join("storage.db"),
            create: true,
        },
    };
    match url {
        DatabaseUrl::Sqlite { path, create } => {
            let options = SqliteOptions {
                create,
                readers: settings.storage.readers,
                durability: match settings.storage.durability {
                    config::Durability::Full => Durability::Full,
                    config::Durability::Normal => Durability::Normal,
                },
                batch_lifetime: Duration::from_secs(settings.storage.batch_lifetime_secs),
                ..SqliteOptions::default()
            };
            Ok(Arc::new(SqliteStore::open(&path, options)?))
        }
    }
}

/// Opens the token server's database as configured: PostgreSQL for a `postgres://` URL,
/// SQLite otherwise.
pub async fn open_token_store(settings: &Settings) -> anyhow::Result<Arc<dyn TokenStore>> {
    let config = &settings.tokenserver;
    let rate = config.node_capacity_release_rate;
    if let Some(url) = config
        .database_url
        .as_deref()
        .filter(|u| is_postgres_url(u))
    {
        let store = PostgresTokenStore::open(url, config.database_pool_max_size)
            .await
            .with_context(|| format!("opening {}", config::redact_password(url)))?;
        return Ok(Arc::new(store.with_release_rate(rate)));
    }
    let url = match &config.database_url {
        Some(url) => DatabaseUrl::parse(url)?,
        None => DatabaseUrl::Sqlite {
            path: settings.data_dir.join("tokenserver.db"),
            create: true,
        },
    };
    match url {
        DatabaseUrl::Sqlite { path, create } => {
            let store = SqliteTokenStore::open(&path, create)?.with_release_rate(rate);
            Ok(Arc::new(store))
        }
    }
}

/// Opens the Remote Settings database as configured: PostgreSQL for a `postgres://` URL,
/// SQLite otherwise.
pub async fn open_settings_store(
    settings: &Settings,
) -> anyhow::Result<Arc<dyn settings_store::SettingsStore>> {
    let kinto = &settings.settings;
    if let Some(url) = kinto.storage_url.as_deref().filter(|u| is_postgres_url(u)) {
        let store = PostgresSettingsStore::open(url, kinto.storage_pool_size)
            .await
            .with_context(|| format!("opening {}", config::redact_password(url)))?;
        return Ok(Arc::new(store));
    }
    let url = match &kinto.storage_url {
        Some(url) => DatabaseUrl::parse(url)?,
        None => DatabaseUrl::Sqlite {
            path: settings.data_dir.join("settings.db"),
            create: true,
        },
    };
    match url {
        DatabaseUrl::Sqlite { path, create } => Ok(Arc::new(
            settings_store::sqlite::SqliteSettingsStore::open(&path, create)?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:data/s.db").unwrap(),
            DatabaseUrl::Sqlite {
                path: "data/s.db".into(),
                create: false
            }
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/s.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite {
                path: "/var/s.db".into(),
                create: true
            }
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite:").is_err());
        assert!(DatabaseUrl::parse("s.db").is_err());
        assert!(DatabaseUrl::parse("sqlite:x?mode=bogus").is_err());
    }
}
