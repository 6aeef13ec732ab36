//! The Remote Settings server over a real socket, in one test binary: the Kinto-compatible
//! API (`kinto`), the review workflow with its content signer (`workflow`) and what Firefox
//! polls at start-up (`firefox`), Kinto Admin served from the API's origin (`admin`), and
//! the history the workflow leaves (`workflow_history`).
//!
//! The store is SQLite; with `SYNCSTACK_TEST_SETTINGS_ON_POSTGRES=1` and
//! `SYNCSTACK_TEST_POSTGRES_URL` set, every test runs on PostgreSQL instead, each in its own
//! schema (`scripts/test` runs the binary a second time that way when PostgreSQL is there).

mod admin;
mod compat;
mod firefox;
mod history;
mod kinto;
mod reply;
mod workflow;
mod workflow_history;

use std::path::Path;
use std::sync::Arc;

use postgres_support::TestSchema;
use settings_store::SettingsStore;
use settings_store::postgres::PostgresSettingsStore;
use settings_store::sqlite::SqliteSettingsStore;

/// The store a test server runs on, and the schema to drop with it on PostgreSQL.
async fn test_store(dir: &Path) -> (Arc<dyn SettingsStore>, Option<TestSchema>) {
    let on_postgres = std::env::var("SYNCSTACK_TEST_SETTINGS_ON_POSTGRES").as_deref() == Ok("1");
    match std::env::var("SYNCSTACK_TEST_POSTGRES_URL") {
        Ok(base) if on_postgres => {
            let schema = TestSchema::create(&base).await.unwrap();
            let store = PostgresSettingsStore::open(schema.url(), 8).await.unwrap();
            (Arc::new(store), Some(schema))
        }
        _ => {
            let store = SqliteSettingsStore::open(&dir.join("settings.db"), true).unwrap();
            (Arc::new(store), None)
        }
    }
}
