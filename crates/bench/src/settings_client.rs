//! The Remote Settings client scenario: a full sync of a large signed collection into an
//! empty local database, then polls that find nothing new, timed, with the process's
//! peak memory during each phase.
//!
//! Setup publishes `--records` records to `main/cfr` through the review workflow, so the
//! server (started with self-approval and no review step, see `scripts/bench-settings`)
//! signs them with its real PKI and the client verifies the real signature against
//! `--root-hash`.
//!
//! Each measured phase runs in a fresh child process (this binary, with the hidden
//! `--phase`), so its peak memory is its own: the kernel's high-water mark of the child's
//! resident set (`VmHWM`) over its whole life, reported beside its resident set just before
//! the phase began (runtime and client set up).

use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Internal: run one measured phase in this process (the parent starts children).
    #[arg(long, value_enum, hide = true, requires = "database")]
    phase: Option<Phase>,
    /// Internal: the client database of the measured phase.
    #[arg(long, hide = true)]
    database: Option<PathBuf>,
}

/// A measured phase.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Phase {
    /// One full sync into an empty database.
    Full,
    /// `--polls` polls that find nothing new.
    Polls,
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

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

/// What a measuring child process reports, as one JSON line on standard output.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PhaseReport {
    /// Duration of each timed operation, in microseconds.
    micros: Vec<u64>,
    /// The child's resident set before the phase began (runtime and client set up), KiB.
    rss_before_kib: u64,
    /// The child's peak resident set over its whole life (for the polls: since the
    /// warm-up poll, the high-water mark being reset after it), KiB.
    peak_kib: u64,
}

/// The measured part, run in a fresh child process so its peak memory is its own and not
/// inflated by the publishing the parent did.
async fn measure(options: &Options, phase: Phase, database: &Path) -> anyhow::Result<()> {
    let base = format!("{}/v1", options.url.trim_end_matches('/'));
    let root = content_signature::fingerprint::parse(&options.root_hash)
        .map_err(|e| anyhow::anyhow!("--root-hash: {e}"))?;
    let client = Client::open(ClientConfig::new(base.parse()?, root, database.to_owned()))?;
    let key = CollectionKey::new("main", "cfr");
    let mut micros = Vec::new();
    let rss_before_kib;
    match phase {
        Phase::Full => {
            rss_before_kib = memory()?.0;
            let started = Instant::now();
            let outcome = client.sync_one(&key).await?;
            micros.push(elapsed_micros(started));
            if outcome.records != options.records {
                bail!(
                    "synced {} records, expected {}",
                    outcome.records,
                    options.records
                );
            }
        }
        Phase::Polls => {
            // The full sync took main/cfr only; the first poll takes what else is listed
            // (main-preview/cfr) and records the poll's timestamp. Not timed.
            client.poll(|_| true).await?;
            // From here on, the peak is the polls' own: reset the high-water mark.
            std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
            rss_before_kib = memory()?.0;
            for _ in 0..options.polls.max(1) {
                let started = Instant::now();
                let report = client.poll(|_| true).await?;
                micros.push(elapsed_micros(started));
                if !report.synced.is_empty() {
                    bail!(
                        "a no-change poll synced {} collections",
                        report.synced.len()
                    );
                }
            }
        }
    }
    let (_, peak_kib) = memory()?;
    println!(
        "{}",
        serde_json::to_string(&PhaseReport {
            micros,
            rss_before_kib,
            peak_kib,
        })?
    );
    Ok(())
}

fn elapsed_micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Runs one phase in a child process (this binary) and reads its report.
fn child(options: &Options, phase: &str, database: &Path) -> anyhow::Result<PhaseReport> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args([
            "settings-client",
            "--url",
            &options.url,
            "--root-hash",
            &options.root_hash,
        ])
        .args(["--records", &options.records.to_string()])
        .args(["--polls", &options.polls.to_string()])
        .args(["--phase", phase, "--database"])
        .arg(database)
        .output()?;
    if !output.status.success() {
        bail!(
            "the {phase} phase failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Runs the scenario and prints a markdown table.
pub async fn run(options: Options) -> anyhow::Result<()> {
    if let (Some(phase), Some(database)) = (options.phase, &options.database) {
        return measure(&options, phase, database).await;
    }
    let base = format!("{}/v1", options.url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let started = Instant::now();
    publish(&http, &base, options.records).await?;
    eprintln!(
        "published {} records in {:.1} s",
        options.records,
        started.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("syncstack-bench-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let mut full = Vec::new();
    let mut full_reports = Vec::new();
    for run in 0..options.full_syncs.max(1) {
        let report = child(&options, "full", &dir.join(format!("full-{run}.db")))?;
        full.extend(&report.micros);
        full_reports.push(report);
    }
    full.sort();
    let database = dir.join("full-0.db");
    let db_size = std::fs::metadata(&database)?.len()
        + std::fs::metadata(database.with_extension("db-wal")).map_or(0, |m| m.len());
    let polls_report = child(&options, "polls", &database)?;
    let mut polls = polls_report.micros.clone();
    polls.sort();
    let _ = std::fs::remove_dir_all(&dir);

    let full_before = full_reports
        .iter()
        .map(|r| r.rss_before_kib)
        .max()
        .unwrap_or(0);
    let full_peak = full_reports.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    println!(
        "| phase (each in a fresh process) | runs | median | max | RSS before the phase | peak RSS of the process |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| full sync of {} records into an empty database (fetch, verify, write) | {} | {} | {} | {} | {} |",
        options.records,
        full.len(),
        ms(full[full.len() / 2]),
        ms(*full.last().expect("one run")),
        mib(full_before),
        mib(full_peak)
    );
    println!(
        "| no-change poll (monitor/changes with _since, nothing to sync) | {} | {} | {} | {} | {} |",
        polls.len(),
        ms(polls[polls.len() / 2]),
        ms(*polls.last().expect("one poll")),
        mib(polls_report.rss_before_kib),
        mib(polls_report.peak_kib)
    );
    println!();
    println!(
        "Local database after a full sync: {:.1} MiB.",
        db_size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
