//! `syncstack purge`: delete replaced users' data from their old nodes.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokenserver::purge::{PurgeProgress, purge_replaced};

use crate::backends::open_token_store;
use crate::config::Settings;
use crate::secret::master_secret;

/// Runs the purge with a progress bar.
pub async fn run(settings: &Settings, grace_secs: u64, limit: u32) -> anyhow::Result<()> {
    let store = open_token_store(settings).await?;
    let secret = master_secret(settings, false)?;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(
        "purging {bar:40} {pos}/{len} users {msg}",
    )?);
    let report = purge_replaced(
        store.as_ref(),
        &secret,
        Duration::from_secs(grace_secs),
        limit,
        |event| match event {
            PurgeProgress::Found(count) => bar.set_length(count as u64),
            PurgeProgress::Done(record, _) => {
                bar.inc(1);
                bar.set_message(format!("(uid {})", record.uid));
            }
        },
    )
    .await?;
    bar.finish_and_clear();
    println!(
        "purged {} users' data; {} records of removed nodes dropped; {} kept (node down); {} kept (node did not confirm)",
        report.deleted, report.record_only, report.skipped_downed, report.failed
    );
    if report.failed > 0 {
        anyhow::bail!(
            "{} users could not be purged; run again later (see the log for why)",
            report.failed
        );
    }
    Ok(())
}
