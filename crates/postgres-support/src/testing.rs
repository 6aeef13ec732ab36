//! Throwaway schemas, so each conformance test runs on an empty database while sharing the
//! one PostgreSQL server and database that CI provides.

use rand::Rng;
use tokio_postgres::NoTls;

/// A schema created for one test and dropped by [`TestSchema::drop_schema`] or when it
/// goes out of scope. Its
/// [`url`](TestSchema::url) points connections at it through `search_path`, so the code
/// under test runs unchanged.
pub struct TestSchema {
    base_url: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// Creates a fresh schema in the database at `base_url`.
    pub async fn create(base_url: &str) -> Result<Self, tokio_postgres::Error> {
        let name = format!("t_{:016x}", rand::rng().random::<u64>());
        let client = connect(base_url).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-csearch_path%3D{name}");
        Ok(Self {
            base_url: base_url.to_owned(),
            name,
            url,
        })
    }

    /// The URL whose connections see only this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(mut self) -> Result<(), tokio_postgres::Error> {
        let result = drop_schema(&self.base_url, &self.name).await;
        self.name.clear();
        result
    }
}

impl Drop for TestSchema {
    /// A schema not dropped explicitly (a test that held it in a struct, or panicked) is
    /// dropped here. `Drop` cannot await, so a thread with its own runtime does it; a
    /// failure only leaves a schema behind, which is not worth a panic.
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let (base_url, name) = (self.base_url.clone(), std::mem::take(&mut self.name));
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(drop_schema(&base_url, &name)).ok()
        })
        .join();
    }
}

async fn drop_schema(base_url: &str, name: &str) -> Result<(), tokio_postgres::Error> {
    let client = connect(base_url).await?;
    client
        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
        .await
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "test schema connection ended");
        }
    });
    Ok(client)
}
