//! The Remote Settings scenario: what clients poll (`monitor/changes` and a collection's
//! `changeset`, cold and cached) and what editors do (record writes).
//!
//! Setup creates an account, a bucket and a publicly readable collection of `--records`
//! records. Each phase then runs for `--duration-secs` with `--concurrency` requests in
//! flight. "Cold" requests ask with a different `_expected` each time, so the server's
//! cached body never matches and it recomputes the answer; "cached" requests repeat one
//! query, as clients behind a CDN mostly do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::RngCore;
use serde_json::{Value, json};

use crate::report::{Recorder, markdown};

/// Options of the Remote Settings scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Base URL of the server (the `/v1` API is under it), e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// Records in the collection.
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

struct Setup {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    collection: String,
    timestamp: i64,
}

async fn setup(options: &Options) -> anyhow::Result<Setup> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let base = format!("{}/v1", options.url.trim_end_matches('/'));
    let mut suffix = [0u8; 4];
    rand::rng().fill_bytes(&mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let (user, password) = (format!("bench{suffix}"), format!("bench-password-{suffix}"));
    let account = http
        .put(format!("{base}/accounts/{user}"))
        .json(&json!({"data": {"password": password}}))
        .send()
        .await?;
    if !account.status().is_success() {
        bail!("creating the account answered {}", account.status());
    }
    let bucket = format!("bench{suffix}");
    let collection = format!("{base}/buckets/{bucket}/collections/main");
    for (url, body) in [
        (format!("{base}/buckets/{bucket}"), json!({})),
        (
            collection.clone(),
            json!({"permissions": {"read": ["system.Everyone"]}}),
        ),
    ] {
        let reply = http
            .put(url)
            .basic_auth(&user, Some(&password))
            .json(&body)
            .send()
            .await?;
        if !reply.status().is_success() {
            bail!("setup answered {}", reply.status());
        }
    }
    let bar = indicatif::ProgressBar::new(options.records as u64);
    for chunk in (0..options.records).collect::<Vec<_>>().chunks(25) {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"method": "PUT", "path": format!("/buckets/{bucket}/collections/main/records/r{i:05}"), "body": {"data": record(*i)}}))
            .collect();
        let reply = http
            .post(format!("{base}/batch"))
            .basic_auth(&user, Some(&password))
            .json(&json!({"requests": requests}))
            .send()
            .await?;
        if !reply.status().is_success() {
            bail!("batch answered {}", reply.status());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let changeset: Value = http
        .get(format!("{collection}/changeset?_expected=0"))
        .send()
        .await?
        .json()
        .await?;
    let timestamp = changeset["timestamp"].as_i64().unwrap_or(0);
    if changeset["changes"].as_array().map(Vec::len) != Some(options.records) {
        bail!(
            "the collection does not hold {} records after setup",
            options.records
        );
    }
    Ok(Setup {
        http,
        base,
        user,
        password,
        collection,
        timestamp,
    })
}

fn record(i: usize) -> Value {
    json!({
        "name": format!("setting {i}"),
        "enabled": i.is_multiple_of(2),
        "filter_expression": format!("env.version|versionCompare('{}.0') >= 0", 100 + i % 50),
        "payload": "x".repeat(300),
    })
}

/// Runs one phase with `concurrency` workers for `duration_secs`; `make(setup, n)` builds the
/// n-th request, and an answer counts as a success when its status is in `accepted`.
async fn phase(
    recorder: &mut Recorder,
    name: &'static str,
    setup: &Arc<Setup>,
    options: &Options,
    make: fn(&Setup, u64) -> reqwest::RequestBuilder,
    accepted: &'static [u16],
) {
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.duration_secs);
    let mut workers = Vec::new();
    for _ in 0..options.concurrency {
        let (setup, counter) = (setup.clone(), counter.clone());
        workers.push(tokio::spawn(async move {
            let mut local = Recorder::default();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let began = Instant::now();
                let ok = match make(&setup, n).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        accepted.contains(&status)
                    }
                    Err(_) => false,
                };
                local.record(name, began.elapsed(), ok);
            }
            local
        }));
    }
    for worker in workers {
        if let Ok(local) = worker.await {
            recorder.merge(local);
        }
    }
}

/// Runs the phases and prints a Markdown table.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let setup = Arc::new(setup(&options).await?);
    eprintln!(
        "{} records set up; {} s per phase, {} in flight",
        options.records, options.duration_secs, options.concurrency
    );
    let mut recorder = Recorder::default();
    type Make = fn(&Setup, u64) -> reqwest::RequestBuilder;
    // A record's first write answers 201 and later ones 200: both are successes.
    let phases: [(&'static str, Make, &'static [u16]); 5] = [
        (
            "changeset_cached",
            |s, _| {
                s.http.get(format!(
                    "{}/changeset?_expected={}",
                    s.collection, s.timestamp
                ))
            },
            &[200],
        ),
        (
            "changeset_cold",
            |s, n| {
                s.http.get(format!(
                    "{}/changeset?_expected={}",
                    s.collection,
                    999_999_000_000 + n
                ))
            },
            &[200],
        ),
        (
            "monitor_cached",
            |s, _| {
                s.http.get(format!(
                    "{}/buckets/monitor/collections/changes/changeset?_expected={}",
                    s.base, s.timestamp
                ))
            },
            &[200],
        ),
        (
            "monitor_cold",
            |s, n| {
                s.http.get(format!(
                    "{}/buckets/monitor/collections/changes/changeset?_expected={}",
                    s.base,
                    999_999_000_000 + n
                ))
            },
            &[200],
        ),
        (
            "record_write",
            |s, n| {
                s.http
                    .put(format!("{}/records/w{}", s.collection, n % 1000))
                    .basic_auth(&s.user, Some(&s.password))
                    .json(&json!({"data": {"n": n}}))
            },
            &[200, 201],
        ),
    ];
    for (name, make, accepted) in phases {
        phase(&mut recorder, name, &setup, &options, make, accepted).await;
    }
    let rows = recorder.operation_rows(Duration::from_secs(options.duration_secs));
    println!("{}", markdown(&rows));
    Ok(())
}
