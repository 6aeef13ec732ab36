//! Opening the databases named by database URLs.
//!
//! Backends are chosen at run time from the URL's scheme, every backend compiled in:
//! `sqlite:` for every database, and `postgres://` (or `postgresql://`) for the storage
//! node's, the token server's and Remote Settings'; any other scheme is refused with the
//! list of supported ones. A default database (no URL
//! configured) is created in the data directory; a configured path must already exist unless
//! the URL says `?mode=rwc`, so that a typo never starts an empty database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use postgres_support::is_postgres_url;
use settings_store::postgres::PostgresSettingsStore;
use syncstorage_store::Store;
use syncstorage_store::postgres::{PostgresOptions, PostgresStore};
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

/// Opens the storage node's database as configured: PostgreSQL for a `postgres://` URL
/// (the database must exist; its tables are created or migrated), else SQLite.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let batch_lifetime = Duration::from_secs(settings.storage.batch_lifetime_secs);
    let url = match &settings.storage.database_url {
        Some(url) if postgres_support::is_postgres_url(url) => {
            let options = PostgresOptions {
                max_connections: settings.storage.max_connections.max(1) as usize,
                batch_lifetime,
                ..PostgresOptions::default()
            };
            let store = PostgresStore::open(url, options)
                .await
                .context("opening the storage database (storage.database_url)")?;
            return Ok(Arc::new(store));
        }
        Some(url) => DatabaseUrl::parse(url)
            .context("storage.database_url takes sqlite:PATH or postgres://...")?,
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
                batch_lifetime,
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
            .context("opening the token database (tokenserver.database_url)")?;
        return Ok(Arc::new(store.with_release_rate(rate)));
    }
    let url = match &config.database_url {
        Some(url) => DatabaseUrl::parse(url)
            .context("tokenserver.database_url takes sqlite:PATH or postgres://...")?,
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
            .context("opening the Remote Settings database (settings.storage_url)")?;
        return Ok(Arc::new(store));
    }
    let url = match &kinto.storage_url {
        Some(url) => DatabaseUrl::parse(url)
            .context("settings.storage_url takes sqlite:PATH or postgres://...")?,
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

    #[tokio::test]
    async fn a_storage_url_of_another_scheme_names_both_backends() {
        let mut settings = Settings::default();
        settings.storage.database_url = Some("mysql://db/sync".into());
        let error = format!("{:#}", open_storage(&settings).await.err().unwrap());
        assert!(
            error.contains("postgres://") && error.contains("sqlite:"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn token_and_settings_urls_of_another_scheme_name_both_backends() {
        let mut settings = Settings::default();
        settings.tokenserver.database_url = Some("mysql://db/tokens".into());
        settings.settings.storage_url = Some("mysql://db/settings".into());
        let errors = [
            format!("{:#}", open_token_store(&settings).await.err().unwrap()),
            format!("{:#}", open_settings_store(&settings).await.err().unwrap()),
        ];
        for error in errors {
            assert!(
                error.contains("postgres://") && error.contains("sqlite:"),
                "{error}"
            );
        }
    }

    /// Runs where `SYNCSTACK_TEST_POSTGRES_URL` names a server (CI sets it): the token and
    /// settings URLs open PostgreSQL stores, which write to that schema.
    #[tokio::test]
    async fn postgres_urls_open_postgresql_token_and_settings_stores() {
        let Ok(base) = std::env::var("SYNCSTACK_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = postgres_support::TestSchema::create(&base).await.unwrap();
        // A data directory that cannot exist: nothing may fall back to SQLite files.
        let mut settings = Settings {
            data_dir: PathBuf::from("/nonexistent/syncstack-data"),
            ..Settings::default()
        };
        settings.tokenserver.database_url = Some(schema.url().to_owned());
        settings.settings.storage_url = Some(schema.url().to_owned());
        let tokens = open_token_store(&settings).await.unwrap();
        tokens.add_node("https://n.example", 5).await.unwrap();
        let kinto = open_settings_store(&settings).await.unwrap();
        kinto.flush().await.unwrap();
        let pool = postgres_support::connect(schema.url(), 1).await.unwrap();
        let client = pool.get().await.unwrap();
        let names: Vec<String> = client
            .query(
                "SELECT name FROM syncstack_schema_versions ORDER BY name",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(names, ["settings", "token"]);
        let nodes: i64 = client
            .query_one("SELECT COUNT(*) FROM nodes", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(nodes, 1);
        drop(client);
        schema.drop_schema().await.unwrap();
    }

    /// Runs where `SYNCSTACK_TEST_POSTGRES_URL` names a server (CI sets it).
    #[tokio::test]
    async fn a_postgres_url_opens_postgresql_storage() {
        let Ok(base) = std::env::var("SYNCSTACK_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = postgres_support::TestSchema::create(&base).await.unwrap();
        let mut settings = Settings::default();
        settings.storage.database_url = Some(schema.url().to_owned());
        let store = open_storage(&settings).await.unwrap();
        let written = store
            .put_bsos(
                syncstorage_store::WriteBsos {
                    user: 1,
                    collection: "tabs".into(),
                    items: Vec::new(),
                    precondition: syncstorage_store::Precondition::None,
                    quota: None,
                },
                false,
            )
            .await
            .unwrap();
        let last_write = last_write_in_postgres(schema.url()).await;
        assert_eq!(last_write, written.modified.as_millis() as i64);
        store.close().await;
        schema.drop_schema().await.unwrap();
    }

    /// The last write time PostgreSQL holds for user 1: proof that the write went there.
    async fn last_write_in_postgres(url: &str) -> i64 {
        let pool = postgres_support::connect(url, 1).await.unwrap();
        let client = pool.get().await.unwrap();
        client
            .query_one(
                "SELECT last_write FROM storage_users WHERE user_id = 1",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }
}
