//! `syncstack-bench`: a load generator for SyncStorage 1.5 nodes and token servers.
//!
//! For storage nodes, it mints its own tokenlib-format tokens from a master secret and a
//! node URL, so it can drive any node that shares that secret (syncstack's, or Mozilla's
//! syncstorage-rs for a side-by-side run). Every request is signed afresh (new nonce and
//! timestamp), as a real client's would be, so a node with replay protection sees no
//! replays.
//!
//! Run with: `cargo run --release -p bench -- storage --url http://127.0.0.1:8000 --secret S`
//!
//! For token servers, it is its own identity provider: `tokenserver --write-issuer DIR`
//! writes a key and its JWKS for the server to trust, then `tokenserver --url URL
//! --issuer-key DIR/issuer.pem --issuer NAME` measures new and returning users
//! (`scripts/bench-tokenserver` does both around a fresh `syncstack serve`).
//!
//! For the Sync client library, `client --url URL --secret S` times encrypting and
//! uploading, then downloading and decrypting, 10,000 records (`scripts/bench-client`).
//!
//! For Remote Settings, `settings --url URL` creates an account and a collection, then
//! measures `changeset` and `monitor/changes` polls and record writes
//! (`scripts/bench-settings`); `settings-client --url URL --root-hash PIN` times the
//! Remote Settings client's full sync of 10,000 signed records and its no-change polls,
//! with peak memory (`scripts/bench-settings-client`).
//!
//! For the accounts service, `accounts --url URL --email E --password P` measures onepw
//! logins (argon2id-bound) and OAuth token issuance (RSA-bound) (`scripts/bench-accounts`).

mod accounts;
mod client;
mod report;
mod settings;
mod settings_client;
mod storage;
mod tokenserver;

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
    /// Drive a token server (`GET /1.0/sync/1.5`) with new and returning users.
    Tokenserver(tokenserver::Options),
    /// Time the Sync client: encrypt and upload, download and decrypt a collection.
    Client(client::Options),
    /// Drive a Remote Settings server: what clients poll and what editors write.
    Settings(settings::Options),
    /// Time the Remote Settings client: a full verified sync, then no-change polls.
    SettingsClient(settings_client::Options),
    /// Drive the accounts service: onepw logins and OAuth token issuance.
    Accounts(accounts::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Storage(options) => storage::run(options).await,
        Command::Tokenserver(options) => tokenserver::run(options).await,
        Command::Client(options) => client::run(options).await,
        Command::Settings(options) => settings::run(options).await,
        Command::SettingsClient(options) => settings_client::run(options).await,
        Command::Accounts(options) => accounts::run(options).await,
    }
}
