//! `syncstack-bench`: a load generator for SyncStorage 1.5 nodes.
//!
//! It mints its own tokenlib-format tokens from a master secret and a node URL, so it can
//! drive any node that shares that secret (syncstack's, or Mozilla's syncstorage-rs for a
//! side-by-side run). Every request is signed afresh (new nonce and timestamp), as a real
//! client's would be, so a node with replay protection sees no replays.
//!
//! Run with: `cargo run --release -p bench -- storage --url http://127.0.0.1:8000 --secret S`

mod report;
mod storage;

use clap::{Parser, Subcommand};

/// Load generator for syncstack's HTTP services.
#[derive(Debug, Parser)]
#[command(name = "syncstack-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a SyncStorage 1.5 node with a realistic client mix.
    Storage(storage::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Storage(options) => storage::run(options).await,
    }
}
