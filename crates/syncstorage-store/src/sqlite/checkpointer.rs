//! Copies the WAL back into the database file on a thread of its own, so that the writer
//! thread does not spend its time on it.
//!
//! A checkpoint writes the newest copy of every page the WAL holds into the database file
//! and syncs that file: under the benchmark's mix it was about a third of the writer's time,
//! disk waits included, and every write queued behind it waited too. This thread runs a
//! passive checkpoint (it never waits for, nor blocks, the writer or the readers) soon after
//! each write ([`BUSY_INTERVAL`]), and backs off while nothing is written. The writer keeps
//! its own automatic checkpoint (`wal_autocheckpoint` in `CHECKPOINTS`): SQLite only starts
//! the WAL over from its beginning when a write begins after a checkpoint has copied all of
//! it, which under a steady load only the writer's own checkpoint, right after its commit,
//! can arrange. By then this thread has copied all but the last moments, so the writer's
//! checkpoint copies little and the WAL stays bounded.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How soon the WAL is copied back after a write. Measured under the benchmark's mix (15 s,
/// 16 requests in flight): every 500 ms left the writer's own checkpoints copying half the
/// pages and stalling writes for up to 58 ms (p99 of all requests 88 ms); every 10 ms left
/// them little to copy (longest commit 22 ms, p99 67 ms) at the same throughput.
const BUSY_INTERVAL: Duration = Duration::from_millis(10);

/// The longest pause while nothing is written, so that an idle node is not woken a hundred
/// times a second for nothing.
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// Handle to the checkpoint thread; stopping it waits for a checkpoint in progress.
pub(super) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the thread on `conn`, a read-write connection to the store's database.
    pub fn start(conn: Connection) -> Checkpointer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, &signal))
            .expect("spawning the SQLite checkpoint thread");
        Checkpointer {
            stop,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Stops the thread (blocking: at most one checkpoint's time).
    pub fn stop(&self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("the SQLite checkpoint thread panicked");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: Connection, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let mut interval = BUSY_INTERVAL;
    let mut last_frames = 0i64;
    loop {
        let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, interval, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        if *guard {
            break;
        }
        drop(guard);
        // Busy (the writer's own checkpoint is running) is not an error: the next round
        // copies what this one would have. The second column is the WAL's length in frames.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        }) {
            Ok(frames) => {
                interval = if frames == last_frames {
                    (interval * 2).min(IDLE_INTERVAL)
                } else {
                    BUSY_INTERVAL
                };
                last_frames = frames;
            }
            Err(error) => tracing::warn!(%error, "background WAL checkpoint failed"),
        }
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "closing the SQLite checkpoint connection failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// With the writer's own checkpoints off, only this thread can move the WAL's pages
    /// into the database file: the file grows once it runs, and stopping it returns.
    #[test]
    fn copies_the_wal_into_the_database_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; \
                 CREATE TABLE t (x TEXT); \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
                 INSERT INTO t SELECT printf('%0500d', i) FROM n;",
            )
            .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        assert!(before < 100_000, "the writes are still in the WAL");

        let checkpointer = Checkpointer::start(
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            size() > 1_000_000,
            "the WAL was not copied back: {} bytes",
            size()
        );
        checkpointer.stop();
        checkpointer.stop();
    }
}
