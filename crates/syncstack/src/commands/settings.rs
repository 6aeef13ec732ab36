//! `syncstack settings pki ...`: the content-signing PKI of the Remote Settings server.
//!
//! `init` mints a root, a name-constrained intermediate and a signer certificate
//! (`content_signature::init_dev_pki`) into `<data_dir>/signer/`, where `serve` finds
//! them; or, given an existing CA (`--intermediate-cert`/`--intermediate-key`), copies it
//! there and issues only the signer under it, so the chain ends at a root clients already
//! trust (an organization's, or the local root built into Firefox). `renew` issues a new
//! signer from the same intermediate either way, so clients keep the root they pinned.
//! Private keys are written with mode 0600, every file by write-and-rename so a running
//! server never reads half a key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use content_signature::IssuerChain;
use settings_server::workflow::SignerSettings;
use settings_server::workflow::signer::{now_unix, utc_date};

use crate::cli::{PkiCommand, SettingsCommand};
use crate::config::Settings;

/// The root CA certificate (absent when an external CA was given without its root).
const ROOT: &str = "root.pem";
/// The intermediate CA certificate (then any CA certificates above it, root excluded).
const INTERMEDIATE: &str = "intermediate.pem";
/// The intermediate CA's key (needed by `renew`; keep it offline otherwise).
const INTERMEDIATE_KEY: &str = "intermediate-key.pem";
/// The signer certificate.
const SIGNER: &str = "signer.pem";
/// The signer's key, which `serve` signs with.
const SIGNER_KEY: &str = "signer-key.pem";
/// The x5u chain: signer, intermediate, root.
const CHAIN: &str = "chain.pem";
/// SHA-256 of Firefox's built-in `ContentSignatureLocalRoot`, the root it verifies against
/// when `services.settings.server` is on localhost (see docs/configuration.md).
const FIREFOX_LOCAL_ROOT: &str = "5E:36:F2:14:DE:82:3F:8B:29:96:89:23:5F:03:41:AC:AF:A0:75:AF:82:CB:4C:D4:30:7C:3D:B3:43:39:2A:FE";

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
                    intermediate_cert,
                    intermediate_key,
                },
        } => {
            let under = intermediate_cert.zip(intermediate_key);
            init(settings, signer_name, days, out, force, under)
        }
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
    under: Option<(PathBuf, PathBuf)>,
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
    if let Some((cert_file, key_file)) = under {
        return init_under(&name, days, &dir, &cert_file, &key_file);
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

/// `init` with an existing CA: copies it into `dir` and issues the signer under it.
fn init_under(
    name: &str,
    days: u64,
    dir: &Path,
    cert_file: &Path,
    key_file: &Path,
) -> anyhow::Result<()> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let (cert_text, key_text) = (read(cert_file)?, read(key_file)?);
    let issuer = content_signature::read_issuer_chain(&cert_text)
        .with_context(|| format!("reading {}", cert_file.display()))?;
    // Issue (and check) before writing anything, so a bad CA leaves no half-made directory.
    let issued = issue(&issuer, &key_text, name, days)?;
    create_dir(dir)?;
    match &issuer.root_pem {
        Some(root) => write_file(&dir.join(ROOT), root, false)?,
        None => remove_file(&dir.join(ROOT))?,
    }
    write_file(&dir.join(INTERMEDIATE), &issuer.intermediates_pem, false)?;
    write_file(&dir.join(INTERMEDIATE_KEY), &key_text, true)?;
    issued.write(dir)?;
    println!(
        "Issued a signer certificate for {name} under {} in {}:",
        issuer.subject,
        dir.display()
    );
    println!(
        "  {INTERMEDIATE} and {INTERMEDIATE_KEY} (copies of the CA you gave; mode 0600 for the key, \
         which only `pki renew` needs), {SIGNER}, {SIGNER_KEY} (mode 0600), {CHAIN}{}",
        if issuer.root_pem.is_some() {
            format!(", {ROOT}")
        } else {
            String::new()
        }
    );
    issued.report(&issuer);
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
    let (intermediate, intermediate_key) = (read(INTERMEDIATE)?, read(INTERMEDIATE_KEY)?);
    // An external CA given without its root has no root.pem; the dev PKI always has one.
    let root = if dir.join(ROOT).exists() {
        read(ROOT)?
    } else {
        String::new()
    };
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let issuer = content_signature::read_issuer_chain(&format!("{intermediate}{root}"))
        .with_context(|| format!("reading {}", dir.join(INTERMEDIATE).display()))?;
    let issued = issue(&issuer, &intermediate_key, &name, days)?;
    issued.write(&dir)?;
    println!(
        "Issued a new signer certificate for {name}, valid until {}, in {}.",
        utc_date(issued.not_after as i64),
        dir.display()
    );
    println!(
        "A running server signs with it at its next re-signature (signer.resign_interval_secs) or restart."
    );
    Ok(())
}

/// A signer certificate and key issued under a CA, not yet written.
struct Issued {
    cert: String,
    key: String,
    chain: String,
    not_after: u64,
    /// `days` had to be shortened to the CA's own expiry.
    capped: bool,
}

/// Issues a signer for `name` under `issuer`, valid `days` (at most until the CA expires:
/// a signer outliving its CA only fails later), and checks the new chain up to the root
/// when the root is known, so a signer name outside the CA's name constraints or a key
/// that is not the CA's is refused here, not by every client after publication.
fn issue(issuer: &IssuerChain, key_pem: &str, name: &str, days: u64) -> anyhow::Result<Issued> {
    let now = now_unix() as u64;
    let not_before = now.saturating_sub(content_signature::pki::CLOCK_SKEW.as_secs());
    if issuer.not_after <= now {
        anyhow::bail!(
            "the CA {} expired on {}: no signer it issues can verify",
            issuer.subject,
            utc_date(issuer.not_after as i64)
        );
    }
    let wanted = now.saturating_add(days.saturating_mul(86_400));
    let not_after = wanted.min(issuer.not_after);
    let (cert, key) = content_signature::issue_signer(
        &issuer.intermediates_pem,
        key_pem,
        name,
        not_before,
        not_after,
    )?;
    let chain = format!(
        "{cert}{}{}",
        issuer.intermediates_pem,
        issuer.root_pem.as_deref().unwrap_or_default()
    );
    if let Some(pin) = &issuer.root_sha256 {
        let pin =
            content_signature::fingerprint::parse(pin).expect("formatted by read_issuer_chain");
        content_signature::verify_chain(&chain, &pin, name, now).with_context(|| {
            format!("the new chain for {name} does not verify up to its root (is the name inside the CA's name constraints?)")
        })?;
    }
    Ok(Issued {
        cert,
        key,
        chain,
        not_after,
        capped: not_after < wanted,
    })
}

impl Issued {
    /// Key first and chain last: a server reloading in between sees the old chain and
    /// keeps the old key, or both new ones.
    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        write_file(&dir.join(SIGNER_KEY), &self.key, true)?;
        write_file(&dir.join(SIGNER), &self.cert, false)?;
        write_file(&dir.join(CHAIN), &self.chain, false)
    }

    /// What `init` under an external CA prints: validity, then the pin on the last line.
    fn report(&self, issuer: &IssuerChain) {
        println!(
            "The signer certificate is valid until {}{}; renew it before with `syncstack settings pki renew`.",
            utc_date(self.not_after as i64),
            if self.capped {
                " (when the CA itself expires)"
            } else {
                ""
            }
        );
        match &issuer.root_sha256 {
            Some(pin) => {
                if pin == FIREFOX_LOCAL_ROOT {
                    println!(
                        "This root is Firefox's built-in ContentSignatureLocalRoot: Firefox verifies these \
                         signatures when services.settings.server is http://localhost:<port>/v1 \
                         (with MOZ_REMOTE_SETTINGS_DEVTOOLS=1 on release builds)."
                    );
                }
                println!("Root SHA-256, the value clients pin:");
                println!("{pin}");
            }
            None => println!(
                "The CA file carried no root certificate: clients that pin a root by its hash \
                 (syncstack's own client) need it in the chain; append it to the file and run \
                 init again with --force."
            ),
        }
    }
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
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
