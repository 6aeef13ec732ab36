//! Numbered SQL migrations for syncstack's PostgreSQL databases.
//!
//! The counterpart of `sqlite_support::migrate`: each database keeps its scripts as a list,
//! never edited once shipped, only appended to. The number applied is kept in a one-row
//! table named after the database, so several syncstack services can share one PostgreSQL
//! database (or schema) without their versions colliding. A transaction-scoped advisory
//! lock makes processes starting at once apply each step exactly once.

use tokio_postgres::Client;

/// Applies the scripts of `migrations` that the database has not had yet, all in one
/// transaction under an advisory lock keyed by `database`. A database newer than this
/// build is left as it is, with a warning.
pub async fn migrate(
    client: &mut Client,
    migrations: &[&str],
    database: &str,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('syncstack-migrate'), hashtext($1))",
        &[&database],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS syncstack_schema_versions (
             name TEXT PRIMARY KEY,
             version INTEGER NOT NULL
         )",
    )
    .await?;
    let current: i32 = tx
        .query_opt(
            "SELECT version FROM syncstack_schema_versions WHERE name = $1",
            &[&database],
        )
        .await?
        .map(|row| row.get(0))
        .unwrap_or(0);
    let current = usize::try_from(current).unwrap_or(0);
    if current > migrations.len() {
        tracing::warn!(
            database,
            version = current,
            known = migrations.len(),
            "database schema is newer than this build"
        );
    }
    for (index, sql) in migrations.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await?;
        tracing::info!(database, version = index + 1, "applied schema migration");
    }
    if migrations.len() > current {
        let version = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO syncstack_schema_versions (name, version) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version",
            &[&database, &version],
        )
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestSchema;

    const STEPS: &[&str] = &[
        "CREATE TABLE a (x INTEGER)",
        "ALTER TABLE a ADD COLUMN y INTEGER",
    ];

    /// Runs only where `SYNCSTACK_TEST_POSTGRES_URL` names a server (CI sets it).
    fn server() -> Option<String> {
        std::env::var("SYNCSTACK_TEST_POSTGRES_URL").ok()
    }

    #[tokio::test]
    async fn concurrent_starts_apply_each_step_once() {
        let Some(base) = server() else { return };
        let schema = TestSchema::create(&base).await.unwrap();
        let pool = crate::connect(schema.url(), 4).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                migrate(&mut client, STEPS, "test").await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let client = pool.get().await.unwrap();
        client
            .execute("INSERT INTO a (x, y) VALUES (1, 2)", &[])
            .await
            .unwrap();
        let version: i32 = client
            .query_one(
                "SELECT version FROM syncstack_schema_versions WHERE name = 'test'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, 2);
        drop(client);
        schema.drop_schema().await.unwrap();
    }
}
