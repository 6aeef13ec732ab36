//! The Remote Settings client scenario: a full sync of a large signed collection into an
//! empty local database, then polls that find nothing new, timed, with the process's
//! peak memory during each phase.
//!
//! Setup publishes `--records` records to `main/cfr` through the review workflow, so the
//! server (started with self-approval and no review step, see `scripts/bench-settings`)
//! signs them with its real PKI and the client verifies the real signature against
//! `--root-hash`.
//!
//! Peak memory is the kernel's high-water mark of this process's resident set
//! (`VmHWM`), reset before each phase through `/proc/self/clear_refs`, so a phase's
//! figure is the most it held at once: the baseline of the process plus what the phase
//! added. The baseline (`VmRSS` before the phase) is reported beside it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use settings_client::{Client, ClientConfig, CollectionKey};

/// Options of the Remote Settings client scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Base URL of the server, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// SHA-256 of the root the server's signer chains to, as `settings pki init` prints it.
    #[arg(long)]
    root_hash: String,
    /// Records in the collection.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Full syncs into a fresh database (the median is reported).
    #[arg(long, default_value_t = 3)]
    full_syncs: usize,
    /// No-change polls.
    #[arg(long, default_value_t = 50)]
    polls: usize,
}

const USER: &str = "bench-publisher";
const PASSWORD: &str = "bench-publisher-password";

async fn publish(http: &reqwest::Client, base: &str, records: usize) -> anyhow::Result<()> {
    let send = |method: &str, path: &str, body: Value| {
        http.request(method.parse().expect("method"), format!("{base}{path}"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&body)
            .send()
    };
    let account = http
        .put(format!("{base}/accounts/{USER}"))
        .json(&json!({"data": {"password": PASSWORD}}))
        .send()
        .await?;
    if !account.status().is_success() {
        bail!("creating the account answered {}", account.status());
    }
    for (method, path, body) in [
        ("PUT", "/buckets/main-workspace", json!({})),
        ("PUT", "/buckets/main-workspace/collections/cfr", json!({})),
        (
            "PATCH",
            "/buckets/main-workspace/groups/cfr-reviewers",
            json!({"data": {"members": [format!("account:{USER}")]}}),
        ),
    ] {
        let reply = send(method, path, body).await?;
        if !reply.status().is_success() {
            bail!("{method} {path} answered {}", reply.status());
        }
    }
    let all: Vec<usize> = (0..records).collect();
    for chunk in all.chunks(500) {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|n| {
                json!({
                    "method": "PUT",
                    "path": format!("/buckets/main-workspace/collections/cfr/records/r{n:06}"),
                    "body": {"data": {
                        "n": n,
                        "name": format!("record number {n}"),
                        "enabled": n % 3 != 0,
                        "tags": ["bench", "remote-settings"],
                        "filter_expression": "env.version|versionCompare('130.0') >= 0",
                    }},
                })
            })
            .collect();
        let reply = send("POST", "/batch", json!({"requests": requests})).await?;
        if !reply.status().is_success() {
            bail!("batch answered {}", reply.status());
        }
    }
    let reply = send(
        "PATCH",
        "/buckets/main-workspace/collections/cfr",
        json!({"data": {"status": "to-sign"}}),
    )
    .await?;
    if !reply.status().is_success() {
        bail!(
            "publishing answered {}: {}",
            reply.status(),
            reply.text().await?
        );
    }
    Ok(())
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/self/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("malformed status line")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak-RSS mark; returns the resident set now.
fn reset_peak() -> anyhow::Result<u64> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
    Ok(memory()?.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// Runs the scenario and prints a markdown table.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let base = format!("{}/v1", options.url.trim_end_matches('/'));
    let root = content_signature::fingerprint::parse(&options.root_hash)
        .map_err(|e| anyhow::anyhow!("--root-hash: {e}"))?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    publish(&http, &base, options.records).await?;
    eprintln!(
        "published {} records in {:.1} s",
        options.records,
        started.elapsed().as_secs_f64()
    );
    let key = CollectionKey::new("main", "cfr");
    let dir = tempfile_dir()?;

    let mut full = Vec::new();
    let mut full_peak = 0;
    let mut full_base = 0;
    let mut db_size = 0;
    for run in 0..options.full_syncs.max(1) {
        let database = dir.join(format!("full-{run}.db"));
        let client = Client::open(ClientConfig::new(base.parse()?, root, database.clone()))?;
        let baseline = reset_peak()?;
        let started = Instant::now();
        let outcome = client.sync_one(&key).await?;
        full.push(started.elapsed());
        let (_, peak) = memory()?;
        if outcome.records != options.records {
            bail!(
                "synced {} records, expected {}",
                outcome.records,
                options.records
            );
        }
        full_peak = full_peak.max(peak);
        full_base = baseline;
        db_size = std::fs::metadata(&database)?.len()
            + std::fs::metadata(database.with_extension("db-wal")).map_or(0, |m| m.len());
    }
    full.sort();

    let client = Client::open(ClientConfig::new(
        base.parse()?,
        root,
        dir.join("full-0.db"),
    ))?;
    client.poll(|_| true).await?;
    let poll_base = reset_peak()?;
    let mut polls = Vec::new();
    for _ in 0..options.polls.max(1) {
        let started = Instant::now();
        let report = client.poll(|_| true).await?;
        polls.push(started.elapsed());
        if !report.synced.is_empty() {
            bail!(
                "a no-change poll synced {} collections",
                report.synced.len()
            );
        }
    }
    let (_, poll_peak) = memory()?;
    polls.sort();
    let _ = std::fs::remove_dir_all(&dir);

    println!("| phase | runs | median | max | process RSS before | peak RSS during |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| full sync of {} records into an empty database (fetch, verify, write) | {} | {} | {} | {} | {} |",
        options.records,
        full.len(),
        ms(full[full.len() / 2]),
        ms(*full.last().expect("one run")),
        mib(full_base),
        mib(full_peak)
    );
    println!(
        "| no-change poll (monitor/changes with _since, nothing to sync) | {} | {} | {} | {} | {} |",
        polls.len(),
        ms(polls[polls.len() / 2]),
        ms(*polls.last().expect("one poll")),
        mib(poll_base),
        mib(poll_peak)
    );
    println!();
    println!(
        "Local database after a full sync: {:.1} MiB.",
        db_size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("syncstack-bench-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
