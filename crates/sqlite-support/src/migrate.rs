//! Numbered SQL migrations for syncstack's SQLite databases.
//!
//! Each database keeps its migrations as a list of SQL scripts; the number applied is
//! `PRAGMA user_version`. Shipped scripts are never edited, only appended to. Every
//! database (storage, tokens, accounts, settings) migrates through [`migrate`], so they all
//! get the same guarantee: each step runs in one immediate transaction that reads the
//! version first, so two processes opening a new file at once cannot both apply a step.

use rusqlite::{Connection, TransactionBehavior};

/// Applies the scripts of `migrations` the database has not had yet, one transaction each.
/// `database` names it in logs. A database newer than this build is left as it is, with a
/// warning: the scripts it knows are a prefix of what it has.
pub fn migrate(conn: &mut Connection, migrations: &[&str], database: &str) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let Some(sql) = migrations.get(current) else {
            if current > migrations.len() {
                tracing::warn!(
                    database,
                    version = current,
                    known = migrations.len(),
                    "database schema is newer than this build"
                );
            }
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
        tracing::info!(database, version = current + 1, "applied schema migration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[&str] = &[
        "CREATE TABLE a (x INTEGER);",
        "ALTER TABLE a ADD COLUMN y INTEGER;",
    ];

    fn version(conn: &Connection) -> usize {
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn applies_each_step_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &STEPS[..1], "test").unwrap();
        assert_eq!(version(&conn), 1);
        migrate(&mut conn, STEPS, "test").unwrap();
        migrate(&mut conn, STEPS, "test").unwrap();
        assert_eq!(version(&conn), 2);
        conn.execute("INSERT INTO a (x, y) VALUES (1, 2)", [])
            .unwrap();
    }

    #[test]
    fn a_newer_database_is_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, STEPS, "test").unwrap();
        migrate(&mut conn, &STEPS[..1], "test").unwrap();
        assert_eq!(version(&conn), 2);
    }

    #[test]
    fn a_failing_step_leaves_the_previous_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let broken = [STEPS[0], "NOT SQL"];
        assert!(migrate(&mut conn, &broken, "test").is_err());
        assert_eq!(version(&conn), 1);
    }

    #[test]
    fn two_processes_opening_a_new_file_apply_each_step_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut conn = Connection::open(&path).unwrap();
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .unwrap();
                    migrate(&mut conn, STEPS, "test").unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn), 2);
    }
}
