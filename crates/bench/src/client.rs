//! The Sync client scenario: how fast the client library encrypts and uploads, and
//! downloads and decrypts, a collection of realistic records.
//!
//! It runs the real `sync-client` code (Tier 1 client, key bundle from a random kB, the
//! storage client's batching) against a node that shares `--secret`, with credentials it
//! mints itself. Encryption and decryption are also timed alone, so the table shows how
//! much of each round trip is crypto and how much is the network and the server.

use std::time::{Duration, Instant};

use rand::RngCore;
use serde_json::{Value, json};
use sync_client::auth::NodeToken;
use sync_client::crypto;
use sync_client::keys::KeyBundle;
use sync_client::storage::{NodeCredentials, StorageClient};
use sync_client::tier::Tier1Client;
use sync_proto::token::{self, MasterSecret, TokenPayload};

/// Options of the client scenario.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Base URL of the storage node, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// Master secret shared with the node.
    #[arg(long, env = "SYNCSTACK_BENCH_SECRET", hide_env_values = true)]
    secret: String,
    /// The uid to use (its storage is wiped first).
    #[arg(long, default_value_t = 2_000_000)]
    uid: u64,
    /// Records in the collection.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
}

fn history_record(i: usize) -> Value {
    json!({
        "id": format!("h{i:011}"),
        "histUri": format!("https://example.com/articles/{i}/a-page-with-a-reasonably-long-address"),
        "title": format!("Article number {i}: a title of the length titles usually have"),
        "visits": (0..5).map(|v| json!({"date": 1_700_000_000_000_000u64 + (i * 10 + v) as u64, "type": 1})).collect::<Vec<_>>(),
    })
}

struct Row {
    phase: &'static str,
    records: usize,
    elapsed: Duration,
}

/// Runs the scenario and prints a Markdown table.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let node = options.url.trim_end_matches('/').to_owned();
    let minted = token::mint(
        &MasterSecret::new(options.secret.as_bytes()),
        &TokenPayload::new(options.uid, &node, 3600),
    );
    let node_token = NodeToken {
        id: minted.id,
        key: minted.key,
        uid: options.uid,
        api_endpoint: format!("{node}/1.5/{}", options.uid),
        duration: 3600,
        fetched: Instant::now(),
    };
    let mut kb = [0u8; 32];
    rand::rng().fill_bytes(&mut kb);
    let client = Tier1Client::new(
        StorageClient::new(NodeCredentials::Fixed(node_token)),
        KeyBundle::from_kb(&kb),
    );
    client.reset_server().await?;
    let records: Vec<Value> = (0..options.records).map(history_record).collect();
    let cleartext_bytes: usize = records.iter().map(|r| r.to_string().len()).sum();
    let mut rows = Vec::new();

    // Crypto alone, with the collection's bulk key.
    let bundle = client
        .collection_keys()
        .await
        .expect("keys after a fresh start")
        .default
        .clone();
    let started = Instant::now();
    let payloads: Vec<String> = records
        .iter()
        .map(|r| crypto::encrypt_record(&bundle, r["id"].as_str().unwrap_or(""), r))
        .collect::<Result<_, _>>()?;
    rows.push(Row {
        phase: "encrypt only",
        records: payloads.len(),
        elapsed: started.elapsed(),
    });
    let started = Instant::now();
    for (record, payload) in records.iter().zip(&payloads) {
        crypto::decrypt_record(&bundle, record["id"].as_str().unwrap_or(""), payload)?;
    }
    rows.push(Row {
        phase: "decrypt only",
        records: payloads.len(),
        elapsed: started.elapsed(),
    });

    // Encrypt and upload (batched POSTs within the node's limits).
    let started = Instant::now();
    let mut bsos = Vec::with_capacity(records.len());
    for record in &records {
        bsos.push(client.encrypt("history", record).await?);
    }
    let outcome = client
        .storage()
        .post_records("history", &bsos, None)
        .await?;
    if !outcome.failed.is_empty() {
        anyhow::bail!("the node refused {} records", outcome.failed.len());
    }
    rows.push(Row {
        phase: "encrypt + upload",
        records: bsos.len(),
        elapsed: started.elapsed(),
    });

    // Download and decrypt (paged GETs).
    let started = Instant::now();
    let downloaded = client.get_all("history").await?;
    rows.push(Row {
        phase: "download + decrypt",
        records: downloaded.len(),
        elapsed: started.elapsed(),
    });
    if downloaded.len() != records.len() {
        anyhow::bail!(
            "uploaded {} records, downloaded {}",
            records.len(),
            downloaded.len()
        );
    }

    println!(
        "{} history records, {:.0} bytes of cleartext each on average\n",
        records.len(),
        cleartext_bytes as f64 / records.len() as f64
    );
    println!("| phase | records | seconds | records/s |\n|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.3} | {:.0} |",
            row.phase,
            row.records,
            row.elapsed.as_secs_f64(),
            row.records as f64 / row.elapsed.as_secs_f64()
        );
    }
    Ok(())
}
