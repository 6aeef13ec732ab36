//! The master secret: configured, or generated once and kept in the data directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sync_proto::token::MasterSecret;

use crate::config::Settings;

/// File name of the generated secret inside the data directory.
const SECRET_FILE: &str = "master_secret";

/// Where the generated secret is kept.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}

/// The configured secret, else the one in the data directory; with `create`, generates
/// and stores one (mode 0600) when there is none.
pub fn master_secret(settings: &Settings, create: bool) -> anyhow::Result<MasterSecret> {
    if let Some(secret) = &settings.master_secret {
        if secret.is_empty() {
            anyhow::bail!("master_secret is set but empty");
        }
        return Ok(MasterSecret::new(secret.as_bytes()));
    }
    let path = secret_path(&settings.data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                anyhow::bail!("{} is empty", path.display());
            }
            Ok(MasterSecret::new(secret.as_bytes()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
            let secret = MasterSecret::generate();
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated a new master secret");
            Ok(MasterSecret::new(secret.as_bytes()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no master secret: set SYNCSTACK_MASTER_SECRET, or run `syncstack serve` once with \
             this data directory ({}) to generate one",
            settings.data_dir.display()
        ),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}
