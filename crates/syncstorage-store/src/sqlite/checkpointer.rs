//! Moves WAL checkpoints off the writer thread.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past 1,000 pages: the
//! writer copies pages back into the database file and fsyncs it while every queued write
//! waits (about a third of the writer's time under the storage benchmark's mix). Here the
//! writer connection never checkpoints (`wal_autocheckpoint=0`); this thread does, on its own
//! connection, with PASSIVE checkpoints that never block the writer or the readers, at most
//! every [`INTERVAL`] and only after commits. A page written many times between two
//! checkpoints is copied once.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// Least time between two checkpoints.
const INTERVAL: Duration = Duration::from_millis(500);
/// WAL pages past which a checkpoint that could not finish is logged (readers keep old
/// snapshots alive).
const WARN_PAGES: i64 = 100_000;

#[derive(Default)]
struct State {
    commits: u64,
    stopping: bool,
}

/// Handle of the checkpoint thread.
pub(super) struct Checkpointer {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens its own connection to `path` and starts the thread.
    pub fn start(path: &Path) -> rusqlite::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA busy_timeout=5000;")?;
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || run(conn, &shared))
                .expect("spawning the SQLite checkpoint thread")
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the thread that a commit added to the WAL.
    pub fn committed(&self) {
        let (state, wake) = &*self.shared;
        state.lock().unwrap_or_else(PoisonError::into_inner).commits += 1;
        wake.notify_one();
    }

    /// Stops the thread after its current checkpoint.
    pub fn stop(&mut self) {
        let (state, wake) = &*self.shared;
        state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopping = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: Connection, shared: &(Mutex<State>, Condvar)) {
    let (state, wake) = shared;
    loop {
        {
            let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
            while guard.commits == 0 && !guard.stopping {
                guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
            if guard.stopping {
                return;
            }
            guard.commits = 0;
        }
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((wal_pages, copied)) if wal_pages > WARN_PAGES && copied < wal_pages => {
                tracing::warn!(
                    wal_pages,
                    copied,
                    "the WAL keeps growing: long reads hold old snapshots"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
        // Let commits accumulate so that pages written again are copied once.
        let guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        if !guard.stopping {
            let _ = wake.wait_timeout(guard, INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn commits_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t (x TEXT);",
            )
            .unwrap();
        let mut checkpointer = Checkpointer::start(&path).unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        writer
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT printf('%.500c', 'x') FROM n",
                [],
            )
            .unwrap();
        assert_eq!(size(), before, "the writer itself must not checkpoint");
        checkpointer.committed();
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() < before + 1_000_000 {
            assert!(Instant::now() < deadline, "no checkpoint within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        checkpointer.stop();
    }
}
