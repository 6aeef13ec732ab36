//! What the hardware allows, to put the storage figures in proportion.
//!
//! - `bare-node` serves the storage mix's requests from one axum handler that reads each
//!   body and answers a canned body of the right size and shape (200, or 202 with a batch
//!   id; a ~500 KB array for the full download), without Hawk, JSON parsing or a database.
//!   The storage bench against it measures the load generator, HTTP and the loopback on
//!   these cores: a ceiling no real node can pass on the same machine.
//! - `sqlite-inserts` times SQLite alone writing what the mix writes: ~500-byte records
//!   upserted 100 per transaction into a table keyed like the store's, WAL, fsync on
//!   commit.

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// Options of `bare-node`.
#[derive(Debug, clap::Args)]
pub struct BareNodeOptions {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8191")]
    listen: std::net::SocketAddr,
}

/// Options of `sqlite-inserts`.
#[derive(Debug, clap::Args)]
pub struct SqliteOptions {
    /// Records written in all.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Records per transaction (the mix's POSTs carry 100).
    #[arg(long, default_value_t = 100)]
    per_transaction: usize,
    /// `synchronous` pragma: FULL (fsync every commit, as the store's default) or NORMAL.
    #[arg(long, default_value = "FULL")]
    synchronous: String,
}

/// Serves the bare node until interrupted.
pub async fn bare_node(options: BareNodeOptions) -> anyhow::Result<()> {
    let full_body: Bytes = {
        let records: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    r#"{{"id":"h{i:05}","modified":1700000000.00,"payload":"{}","sortindex":{i}}}"#,
                    "x".repeat(500)
                )
            })
            .collect();
        format!("[{}]", records.join(",")).into()
    };
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let full_body = full_body.clone();
        async move { answer(&method, &uri, body, full_body) }
    });
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    eprintln!("bare node on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The canned answer to one request of the storage mix.
fn answer(method: &Method, uri: &Uri, body: Bytes, full_body: Bytes) -> Response {
    let query = uri.query().unwrap_or("");
    let stamp = "1700000000.00";
    let json = |status: StatusCode, body: Bytes| {
        (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::HeaderName::from_static("x-last-modified"), stamp),
                (header::HeaderName::from_static("x-weave-timestamp"), stamp),
            ],
            body,
        )
            .into_response()
    };
    // The request body is read in full (axum's `Bytes`), as a node reads it.
    let _ = body.len();
    match *method {
        Method::GET if uri.path().ends_with("/storage/history") => json(StatusCode::OK, full_body),
        Method::GET if uri.path().ends_with("/info/collections") => json(
            StatusCode::OK,
            Bytes::from_static(br#"{"forms":1700000000.00,"history":1700000000.00}"#),
        ),
        Method::GET => json(StatusCode::OK, Bytes::from_static(b"[]")),
        Method::POST if query.contains("batch=") && !query.contains("commit=true") => json(
            StatusCode::ACCEPTED,
            Bytes::from_static(br#"{"batch":"b1","success":[],"failed":{}}"#),
        ),
        Method::POST => json(
            StatusCode::OK,
            Bytes::from_static(br#"{"modified":1700000000.00,"success":[],"failed":{}}"#),
        ),
        _ => json(
            StatusCode::OK,
            Bytes::from_static(br#"{"modified":1700000000.00}"#),
        ),
    }
}

/// Times SQLite's own upserts and prints records per second.
pub fn sqlite_inserts(options: SqliteOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut conn = rusqlite::Connection::open(dir.path().join("inserts.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", &options.synchronous)?;
    conn.execute_batch(
        "CREATE TABLE bso (userid INTEGER, collection INTEGER, id TEXT, modified INTEGER,
            payload TEXT, sortindex INTEGER, expiry INTEGER,
            PRIMARY KEY (userid, collection, id)) WITHOUT ROWID;
         CREATE INDEX bso_modified ON bso (userid, collection, modified);",
    )?;
    let payload = "x".repeat(500);
    let started = Instant::now();
    let mut written = 0usize;
    let mut transactions = 0u64;
    while written < options.records {
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO bso (userid, collection, id, modified, payload, sortindex, expiry)
                 VALUES (?1, 1, ?2, ?3, ?4, NULL, 0)
                 ON CONFLICT (userid, collection, id) DO UPDATE SET
                   modified = excluded.modified, payload = excluded.payload",
            )?;
            for i in 0..options.per_transaction {
                let id = format!("f{}", (written + i) % 2000);
                upsert.execute(rusqlite::params![
                    (transactions % 20) as i64,
                    id,
                    transactions as i64,
                    payload
                ])?;
            }
        }
        tx.commit()?;
        written += options.per_transaction;
        transactions += 1;
    }
    let elapsed = started.elapsed();
    print_rate(written, transactions, elapsed);
    Ok(())
}

fn print_rate(written: usize, transactions: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{written} records in {transactions} transactions in {secs:.2} s: {:.0} records/s, {:.0} commits/s",
        written as f64 / secs,
        transactions as f64 / secs
    );
}
