//! `syncstack settings pki ...`: the content-signing PKI of the Remote Settings server.
//!
//! `init` mints a root, a name-constrained intermediate and a signer certificate
//! (`content_signature::init_dev_pki`) into `<data_dir>/signer/`, where `serve` finds
//! them; `renew` issues a new signer from the same intermediate, so clients keep the root
//! they pinned. Private keys are written with mode 0600, every file by write-and-rename so
//! a running server never reads half a key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use settings_server::workflow::SignerSettings;
use settings_server::workflow::signer::{now_unix, utc_date};

use crate::cli::{PkiCommand, SettingsCommand};
use crate::config::Settings;

/// The root CA certificate.
const ROOT: &str = "root.pem";
/// The intermediate CA certificate.
const INTERMEDIATE: &str = "intermediate.pem";
/// The intermediate CA's key (needed by `renew`; keep it offline otherwise).
const INTERMEDIATE_KEY: &str = "intermediate-key.pem";
/// The signer certificate.
const SIGNER: &str = "signer.pem";
/// The signer's key, which `serve` signs with.
const SIGNER_KEY: &str = "signer-key.pem";
/// The x5u chain: signer, intermediate, root.
const CHAIN: &str = "chain.pem";

/// Runs a `settings` command.
pub fn run(settings: &Settings, command: SettingsCommand) -> anyhow::Result<()> {
    match command {
        SettingsCommand::Pki {
            command:
                PkiCommand::Init {
                    signer_name,
                    days,
                    out,
                    force,
                },
        } => init(settings, signer_name, days, out, force),
        SettingsCommand::Pki {
            command:
                PkiCommand::Renew {
                    signer_name,
                    days,
                    out,
                },
        } => renew(settings, signer_name, days, out),
        other => anyhow::bail!("not a PKI command: {other:?}"),
    }
}

/// The directory of the PKI `serve` uses by default.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("signer")
}

/// The signer settings `serve` runs with: the configured key and chain files, else those
/// of `<data_dir>/signer/` when both exist.
pub fn resolved_signer(settings: &Settings) -> SignerSettings {
    let mut signer = settings.signer.clone();
    if signer.key_file.is_none() && signer.chain_file.is_none() {
        let dir = default_dir(&settings.data_dir);
        let (key, chain) = (dir.join(SIGNER_KEY), dir.join(CHAIN));
        if key.exists() && chain.exists() {
            signer.key_file = Some(key);
            signer.chain_file = Some(chain);
        }
    }
    signer
}

fn init(
    settings: &Settings,
    signer_name: Option<String>,
    days: u64,
    out: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<()> {
    let name = signer_name.unwrap_or_else(|| settings.signer.signer_name.clone());
    let dir = out.unwrap_or_else(|| default_dir(&settings.data_dir));
    let files = [
        ROOT,
        INTERMEDIATE,
        INTERMEDIATE_KEY,
        SIGNER,
        SIGNER_KEY,
        CHAIN,
    ];
    if !force && let Some(existing) = files.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        anyhow::bail!(
            "{} exists: a new root would make clients that pinned the old one refuse every \
             signature. Use `syncstack settings pki renew` for a new signer certificate, or \
             --force to start over",
            existing.display()
        );
    }
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let pki = content_signature::init_dev_pki(
        &name,
        Duration::from_secs(days.saturating_mul(86_400)),
        now_unix() as u64,
    )?;
    create_dir(&dir)?;
    write_file(&dir.join(ROOT), &pki.root_pem, false)?;
    write_file(&dir.join(INTERMEDIATE), &pki.intermediate_pem, false)?;
    write_file(&dir.join(INTERMEDIATE_KEY), &pki.intermediate_key_pem, true)?;
    write_file(&dir.join(SIGNER_KEY), &pki.signer_key_pem, true)?;
    write_file(&dir.join(SIGNER), &pki.signer_cert_pem, false)?;
    write_file(&dir.join(CHAIN), &pki.chain_pem, false)?;
    println!(
        "Wrote a content-signing PKI for {name} to {}:",
        dir.display()
    );
    println!(
        "  {ROOT}, {INTERMEDIATE}, {INTERMEDIATE_KEY} (mode 0600; only `pki renew` needs it), \
         {SIGNER}, {SIGNER_KEY} (mode 0600), {CHAIN}"
    );
    println!(
        "The signer certificate is valid until {}; renew it before with `syncstack settings pki renew`.",
        utc_date(now_unix() + (days as i64).saturating_mul(86_400))
    );
    println!("Root SHA-256, the value clients pin:");
    println!("{}", pki.root_sha256);
    Ok(())
}

fn renew(
    settings: &Settings,
    signer_name: Option<String>,
    days: u64,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let name = signer_name.unwrap_or_else(|| settings.signer.signer_name.clone());
    let dir = out.unwrap_or_else(|| default_dir(&settings.data_dir));
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file)).with_context(|| {
            format!(
                "reading {} (created by `syncstack settings pki init`)",
                dir.join(file).display()
            )
        })
    };
    let (root, intermediate, intermediate_key) =
        (read(ROOT)?, read(INTERMEDIATE)?, read(INTERMEDIATE_KEY)?);
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let now = now_unix() as u64;
    let not_before = now.saturating_sub(content_signature::pki::CLOCK_SKEW.as_secs());
    let not_after = now + days.saturating_mul(86_400);
    let (cert, key) = content_signature::issue_signer(
        &intermediate,
        &intermediate_key,
        &name,
        not_before,
        not_after,
    )?;
    // Key first and chain last: a server reloading in between sees the old chain and
    // keeps the old key, or both new ones.
    write_file(&dir.join(SIGNER_KEY), &key, true)?;
    write_file(&dir.join(SIGNER), &cert, false)?;
    write_file(
        &dir.join(CHAIN),
        &format!("{cert}{intermediate}{root}"),
        false,
    )?;
    println!(
        "Issued a new signer certificate for {name}, valid until {}, in {}.",
        utc_date(not_after as i64),
        dir.display()
    );
    println!(
        "A running server signs with it at its next re-signature (signer.resign_interval_secs) or restart."
    );
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

/// Writes `path` through a temporary file and a rename; private files get mode 0600.
fn write_file(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    let temporary = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}
