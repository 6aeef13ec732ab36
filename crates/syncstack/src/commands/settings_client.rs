//! `syncstack settings sync|get|status|attachment`: the Remote Settings client
//! (`settings-client`) on the command line.
//!
//! The server and the pinned root come from `[remote_settings_client]`, overridden by `--server`
//! and `--root-hash`; on the machine that ran `settings pki init`, the root defaults to
//! the one it wrote, so a local setup needs no flags at all.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use settings_client::{Client, ClientConfig, CollectionKey, Filter, GetOptions, SyncOutcome};

use crate::cli::{SettingsCommand, SettingsSource};
use crate::config::Settings;

/// Runs a client command.
pub async fn run(settings: &Settings, command: SettingsCommand) -> anyhow::Result<()> {
    match command {
        SettingsCommand::Sync { collection, source } => {
            let client = open(settings, &source)?;
            match collection {
                Some(collection) => sync_one(&client, &parse_key(&collection)?).await,
                None => sync_all(&client, settings.remote_settings_client.include_preview).await,
            }
        }
        SettingsCommand::Get {
            collection,
            filters,
            order,
            strict,
            verify,
            no_sync,
            source,
        } => {
            let client = open(settings, &source)?;
            let options = GetOptions {
                filters: parse_filters(&filters)?,
                order,
                fail_if_sync_failed: strict,
                verify,
                sync_if_empty: !no_sync,
            };
            let key = parse_key(&collection)?;
            let records = client.get(&key, &options).await?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)?;
            // Without --strict the records are printed anyway; say when they may be stale
            // or when an empty list means "never synced" rather than "empty".
            let last = client
                .history(&key, 100)?
                .into_iter()
                .find(|e| e.status != settings_client::SyncStatus::DumpLoaded);
            match last {
                Some(entry) if !entry.status.is_success() => eprintln!(
                    "warning: the last sync of {key} failed ({}); these are the last verified records (use --strict to fail instead)",
                    entry.status
                ),
                None if client.local().collection(&key)?.is_none() => {
                    eprintln!("warning: {key} has never been synced")
                }
                _ => {}
            }
            Ok(())
        }
        SettingsCommand::Status {
            collection,
            history,
            source,
        } => status(&open(settings, &source)?, collection.as_deref(), history),
        SettingsCommand::Attachment {
            collection,
            id,
            out,
            source,
        } => {
            let client = open(settings, &source)?;
            let key = parse_key(&collection)?;
            let records = client.get(&key, &GetOptions::default()).await?;
            let record = records
                .iter()
                .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()))
                .with_context(|| format!("{key} holds no record {id}"))?;
            let bytes = client.attachment(record).await?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} bytes written to {} (size and SHA-256 verified)",
                bytes.len(),
                out.display()
            );
            Ok(())
        }
        SettingsCommand::Pki { .. } => bail!("the pki commands are not client commands"),
    }
}

/// The client of the configuration and flags.
fn open(settings: &Settings, source: &SettingsSource) -> anyhow::Result<Client> {
    let configured = &settings.remote_settings_client;
    let server = match source
        .server
        .clone()
        .or_else(|| configured.server_url.clone())
    {
        Some(url) => url,
        None => format!(
            "{}/v1",
            settings.public_url()?.as_str().trim_end_matches('/')
        ),
    };
    let server_url: url::Url = server
        .parse()
        .with_context(|| format!("remote_settings_client.server_url {server:?}"))?;
    let root_sha256 = match source
        .root_hash
        .clone()
        .or_else(|| configured.root_hash.clone())
    {
        Some(text) => content_signature::fingerprint::parse(&text)
            .with_context(|| format!("remote_settings_client.root_hash {text:?}"))?,
        None => local_root(settings)?,
    };
    let database = configured
        .database
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("settings-client.db"));
    let mut config = ClientConfig::new(server_url, root_sha256, database);
    config.signer_name = configured.signer_name.clone();
    config.dumps_dir = configured.dumps_dir.clone();
    Ok(Client::open(config)?)
}

/// The SHA-256 of the root `settings pki init` wrote into the data directory.
fn local_root(settings: &Settings) -> anyhow::Result<[u8; 32]> {
    let path = super::settings::default_dir(&settings.data_dir).join("root.pem");
    let pem = std::fs::read(&path).with_context(|| {
        format!(
            "no root to pin: set remote_settings_client.root_hash (or --root-hash) to the server's root SHA-256, or run `syncstack settings pki init` here ({} is missing)",
            path.display()
        )
    })?;
    let der =
        <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::from_pem_slice(
            &pem,
        )
        .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
    Ok(content_signature::fingerprint::sha256(&der))
}

fn parse_key(text: &str) -> anyhow::Result<CollectionKey> {
    CollectionKey::parse(text).with_context(|| format!("{text:?} is not bucket/collection"))
}

/// `field=value` pairs; a value is JSON when it parses as JSON (`n=3`, `on=true`), else a
/// string. Repeated fields accept any of their values.
fn parse_filters(pairs: &[String]) -> anyhow::Result<Vec<Filter>> {
    let mut filters: Vec<Filter> = Vec::new();
    for pair in pairs {
        let (field, value) = pair
            .split_once('=')
            .with_context(|| format!("filter {pair:?} is not FIELD=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        let path: Vec<String> = field.split('.').map(str::to_owned).collect();
        match filters.iter_mut().find(|f| f.path == path) {
            Some(filter) => filter.values.push(value),
            None => filters.push(Filter::new(field, vec![value])),
        }
    }
    Ok(filters)
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template"));
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn describe(key: &CollectionKey, outcome: &SyncOutcome) -> String {
    let mut text = format!("{key}: {} at {}", outcome.status, outcome.timestamp);
    if outcome.status == settings_client::SyncStatus::Success {
        text.push_str(&format!(", {} records", outcome.records));
    }
    if let Some(reason) = &outcome.recovered_from {
        text.push_str(&format!(" (first attempt refused: {reason})"));
    }
    text
}

async fn sync_one(client: &Client, key: &CollectionKey) -> anyhow::Result<()> {
    let bar = spinner(format!("syncing {key}"));
    let result = client.sync_one(key).await;
    bar.finish_and_clear();
    let outcome = result.with_context(|| format!("{key}: the local data was kept"))?;
    println!("{}", describe(key, &outcome));
    Ok(())
}

async fn sync_all(client: &Client, include_preview: bool) -> anyhow::Result<()> {
    let bar = spinner("polling for changes".into());
    let result = client
        .poll(|key| include_preview || !key.bucket.ends_with("-preview"))
        .await;
    bar.finish_and_clear();
    let report = result.context("polling monitor/changes")?;
    let mut failed = 0;
    for (key, result) in &report.synced {
        match result {
            Ok(outcome) => println!("{}", describe(key, outcome)),
            Err(error) => {
                failed += 1;
                println!(
                    "{key}: {} ({error}); the local data was kept",
                    error.status()
                );
            }
        }
    }
    println!(
        "{} synced, {} failed, {} up to date or not selected",
        report.synced.len() - failed,
        failed,
        report.skipped
    );
    if failed > 0 {
        bail!("{failed} collection(s) failed to sync");
    }
    Ok(())
}

fn status(client: &Client, only: Option<&str>, history: usize) -> anyhow::Result<()> {
    let only = only.map(parse_key).transpose()?;
    if let Some(until) = client.backoff_until()? {
        println!(
            "backing off for {} s more, as the server asked",
            until.saturating_sub(now_ms()) / 1000
        );
    }
    let collections = client.local().collections()?;
    let mut shown = 0;
    for (key, state, count) in collections {
        if only.as_ref().is_some_and(|o| *o != key) {
            continue;
        }
        shown += 1;
        let source = match state.source {
            settings_client::local::Source::Sync => "verified",
            settings_client::local::Source::Dump => "packaged dump",
        };
        println!("{key}: {count} records at {} ({source})", state.timestamp);
        print_history(client, &key, history)?;
    }
    if let Some(key) = only
        && shown == 0
    {
        // Never synced successfully, but the history tells why.
        println!("{key}: no local data");
        print_history(client, &key, history)?;
    } else if shown == 0 {
        println!("no collections synced yet");
    }
    Ok(())
}

/// The last `count` history entries of a collection, newest first, one per line.
fn print_history(client: &Client, key: &CollectionKey, count: usize) -> anyhow::Result<()> {
    for entry in client.history(key, count.max(1))? {
        let ago = now_ms().saturating_sub(entry.at_ms) / 1000;
        let detail = entry
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        println!("  {} {ago} s ago{detail}", entry.status);
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
