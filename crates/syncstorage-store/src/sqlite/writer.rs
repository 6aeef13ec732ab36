//! The single writer: one thread owns the write connection and commits queued writes in
//! groups.
//!
//! SQLite has one writer at a time, and most of a small write's cost is its commit (the WAL
//! frames of the pages it touched, the `fsync`, now and then a checkpoint). When writes queue
//! up, the thread takes every queued write (up to [`MAX_GROUP`]), runs each inside its own
//! savepoint, and commits them together: one commit pays for the group. A write that fails
//! rolls back to its savepoint without touching the others. Nobody is answered before the
//! group's commit succeeds, so an acknowledged write is a committed write.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::{Inner, backend};
use crate::StoreError;

/// Most writes committed together.
const MAX_GROUP: usize = 64;

/// A write waiting for the writer thread.
trait WriteJob: Send {
    /// Runs inside the group's transaction; returns whether it succeeded.
    fn run(&mut self, tx: &Transaction<'_>, inner: &Inner) -> bool;
    /// Answers the caller once the group's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>, &Inner) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>, inner: &Inner) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| work(tx, inner))).unwrap_or_else(|_| {
            tracing::error!("a storage write panicked; it was rolled back");
            Err(StoreError::Backend("storage write panicked".into()))
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (self.result, commit) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(commit)) => Err(commit),
            (None, Ok(())) => Err(StoreError::Backend("write was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

enum Message {
    Write(Box<dyn WriteJob>),
    Close(oneshot::Sender<()>),
}

/// Handle to the writer thread.
pub(super) struct Writer {
    queue: Mutex<Option<mpsc::Sender<Message>>>,
    waiting: Arc<AtomicU32>,
}

/// Which file a writer writes, for its thread's name (`sqlite-<name>`) and its log lines.
#[derive(Debug, Clone, Copy)]
pub(super) enum WriterName {
    /// The store's own file: records and timestamps.
    Writer,
    /// The batch staging file (see `staging`).
    Staging,
}

impl WriterName {
    fn as_str(self) -> &'static str {
        match self {
            WriterName::Writer => "writer",
            WriterName::Staging => "staging",
        }
    }
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub fn start(conn: Connection, inner: Arc<Inner>, name: WriterName) -> Writer {
        let (sender, receiver) = mpsc::channel();
        let waiting = Arc::new(AtomicU32::new(0));
        let counter = waiting.clone();
        std::thread::Builder::new()
            .name(format!("sqlite-{}", name.as_str()))
            .spawn(move || run(conn, inner, name, receiver, counter))
            .expect("spawning a SQLite writer thread");
        Writer {
            queue: Mutex::new(Some(sender)),
            waiting,
        }
    }

    /// Queues `work` and waits until it is committed (or has failed).
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            result: None,
            reply,
        };
        self.send(Message::Write(Box::new(job)))?;
        self.waiting.fetch_add(1, Ordering::Relaxed);
        answer
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer stopped".into()))?
    }

    /// Writes waiting for the writer.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Finishes queued writes, checkpoints the WAL and closes the connection.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.send(Message::Close(done)).is_ok() {
            let _ = finished.await;
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn send(&self, message: Message) -> Result<(), StoreError> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue
            .as_ref()
            .ok_or_else(|| StoreError::Backend("store is closed".into()))?
            .send(message)
            .map_err(|_| StoreError::Backend("the SQLite writer stopped".into()))
    }
}

fn run(
    mut conn: Connection,
    inner: Arc<Inner>,
    name: WriterName,
    queue: mpsc::Receiver<Message>,
    waiting: Arc<AtomicU32>,
) {
    let mut closing = None;
    while closing.is_none() {
        let Ok(first) = queue.recv() else { break };
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Write(job) => group.push(job),
                Message::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if group.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        waiting.fetch_sub(group.len() as u32, Ordering::Relaxed);
        if !group.is_empty() {
            commit_group(&mut conn, &inner, name, group);
        }
    }
    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(%error, "WAL checkpoint on close failed");
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(%error, "closing the SQLite writer failed");
    }
    tracing::info!(writer = name.as_str(), path = %inner.path.display(), "closed SQLite writer");
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs a statement without parameters from the connection's statement cache: the
/// savepoint statements run two or three times per write, and need no parsing after the first.
fn run_cached(tx: &Transaction<'_>, sql: &str) -> Result<(), StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(backend)
}

fn commit_group(
    conn: &mut Connection,
    inner: &Inner,
    name: WriterName,
    mut group: Vec<Box<dyn WriteJob>>,
) {
    let started = Instant::now();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            let error = backend(error);
            group
                .into_iter()
                .for_each(|job| job.finish(Err(error.clone())));
            return;
        }
    };
    for job in &mut group {
        let outcome = run_cached(&tx, "SAVEPOINT write").and_then(|()| {
            if !job.run(&tx, inner) {
                run_cached(&tx, "ROLLBACK TO write")?;
            }
            run_cached(&tx, "RELEASE write")
        });
        if let Err(error) = outcome {
            // The transaction is in an unknown state: give it up, and the whole group with it.
            drop(tx);
            group
                .into_iter()
                .for_each(|job| job.finish(Err(error.clone())));
            return;
        }
    }
    let ran = started.elapsed();
    let committed = tx.commit().map_err(backend);
    // How long writes wait behind each other: `scripts/bench-storage-cpu` summarizes these.
    tracing::trace!(
        writer = name.as_str(),
        writes = group.len(),
        run_us = ran.as_micros() as u64,
        commit_us = (started.elapsed() - ran).as_micros() as u64,
        "group committed"
    );
    if let Err(error) = &committed {
        tracing::error!(%error, writer = name.as_str(), writes = group.len(), "committing a group of writes failed");
    }
    group
        .into_iter()
        .for_each(|job| job.finish(committed.clone()));
}
