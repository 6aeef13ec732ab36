//! Latency recording and the results table.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies and outcomes of one operation.
pub struct OpStats {
    latency_us: Histogram<u64>,
    errors: u64,
    retries: u64,
}

impl OpStats {
    fn new() -> Self {
        OpStats {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3)
                .expect("valid histogram bounds"),
            errors: 0,
            retries: 0,
        }
    }
}

/// All operations' figures.
#[derive(Default)]
pub struct Recorder {
    ops: BTreeMap<&'static str, OpStats>,
}

impl Recorder {
    /// Records one request of `op` that took `elapsed`; `ok` is whether it got the expected
    /// status.
    pub fn record(&mut self, op: &'static str, elapsed: Duration, ok: bool) {
        let stats = self.ops.entry(op).or_insert_with(OpStats::new);
        let _ = stats.latency_us.record((elapsed.as_micros() as u64).max(1));
        if !ok {
            stats.errors += 1;
        }
    }

    /// Counts `count` requests of `op` sent again because the server said when to retry
    /// (503 or 429 with `Retry-After`), as real clients do.
    pub fn record_retries(&mut self, op: &'static str, count: u64) {
        self.ops.entry(op).or_insert_with(OpStats::new).retries += count;
    }

    /// Adds another recorder's figures.
    pub fn merge(&mut self, other: Recorder) {
        for (op, stats) in other.ops {
            let mine = self.ops.entry(op).or_insert_with(OpStats::new);
            let _ = mine.latency_us.add(&stats.latency_us);
            mine.errors += stats.errors;
            mine.retries += stats.retries;
        }
    }

    /// One row per operation over a run of `elapsed`, without the `all` row (for runs
    /// whose operations were measured one after another, each over its own time).
    pub fn operation_rows(&self, elapsed: Duration) -> Vec<Row> {
        let secs = elapsed.as_secs_f64();
        self.ops
            .iter()
            .map(|(op, stats)| row(op, stats, secs))
            .collect()
    }

    /// The summary over a run of `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Vec<Row> {
        let secs = elapsed.as_secs_f64();
        let mut rows = self.operation_rows(elapsed);
        let mut all = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
        let (mut errors, mut retries) = (0, 0);
        for stats in self.ops.values() {
            let _ = all.add(&stats.latency_us);
            errors += stats.errors;
            retries += stats.retries;
        }
        let all = OpStats {
            latency_us: all,
            errors,
            retries,
        };
        rows.push(row("all", &all, secs));
        rows
    }
}

fn row(op: &str, stats: &OpStats, secs: f64) -> Row {
    let histogram = &stats.latency_us;
    Row {
        operation: op.to_owned(),
        requests: histogram.len(),
        errors: stats.errors,
        retries: stats.retries,
        requests_per_sec: histogram.len() as f64 / secs,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: histogram.max() as f64 / 1000.0,
    }
}

/// One line of the results.
#[derive(Debug, Serialize)]
pub struct Row {
    operation: String,
    requests: u64,
    errors: u64,
    retries: u64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Renders rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| operation | requests | errors | retries | req/s | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} |\n",
            r.operation,
            r.requests,
            r.errors,
            r.retries,
            r.requests_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.max_ms
        ));
    }
    out
}
