//! Attachments: downloaded from the server's attachment base URL, checked against the
//! size and SHA-256 their record declares, and cached by hash. A cached file is checked
//! again every time it is read and never served if it does not match.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::client::{Client, SyncError};
use crate::remote::{RemoteError, parse};

/// Why an attachment could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// The record has no `attachment`, or one without `location`, `hash` and `size`.
    #[error("the record has no usable attachment: {0}")]
    NoAttachment(String),
    /// The download failed.
    #[error("{0}")]
    Download(#[from] SyncError),
    /// The downloaded file is not the one the record declares.
    #[error(
        "attachment {location}: expected {expected_size} bytes with SHA-256 {expected_hash}, got {actual_size} bytes with {actual_hash}"
    )]
    Mismatch {
        /// Its location.
        location: String,
        /// The declared size.
        expected_size: u64,
        /// The declared SHA-256, hex.
        expected_hash: String,
        /// The size received.
        actual_size: u64,
        /// The SHA-256 received, hex.
        actual_hash: String,
    },
    /// The cache directory could not be written.
    #[error("attachment cache: {0}")]
    Cache(String),
}

/// What a record declares of its attachment.
struct Declared {
    location: String,
    hash: String,
    size: u64,
}

fn declared(record: &Value) -> Result<Declared, AttachmentError> {
    let attachment = record
        .get("attachment")
        .filter(|a| a.is_object())
        .ok_or_else(|| AttachmentError::NoAttachment("no attachment field".into()))?;
    let field = |name: &str| {
        attachment
            .get(name)
            .ok_or_else(|| AttachmentError::NoAttachment(format!("no {name}")))
    };
    let location = field("location")?
        .as_str()
        .ok_or_else(|| AttachmentError::NoAttachment("location is not a string".into()))?
        .trim_start_matches('/')
        .to_owned();
    let hash = field("hash")?
        .as_str()
        .map(str::to_ascii_lowercase)
        .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| AttachmentError::NoAttachment("hash is not a SHA-256 hex".into()))?;
    let size = field("size")?
        .as_u64()
        .ok_or_else(|| AttachmentError::NoAttachment("size is not a number".into()))?;
    Ok(Declared {
        location,
        hash,
        size,
    })
}

fn check(declared: &Declared, bytes: &[u8]) -> Result<(), AttachmentError> {
    let actual_hash = hex::encode(Sha256::digest(bytes));
    let actual_size = bytes.len() as u64;
    if actual_size == declared.size && actual_hash == declared.hash {
        return Ok(());
    }
    Err(AttachmentError::Mismatch {
        location: declared.location.clone(),
        expected_size: declared.size,
        expected_hash: declared.hash.clone(),
        actual_size,
        actual_hash,
    })
}

impl Client {
    fn attachments_dir(&self) -> PathBuf {
        self.config.attachments_dir.clone().unwrap_or_else(|| {
            self.config
                .database
                .parent()
                .map(|p| p.join("attachments"))
                .unwrap_or_else(|| PathBuf::from("attachments"))
        })
    }

    /// The attachment of `record`: from the cache if the cached file still matches the
    /// record's size and hash, else downloaded, checked and cached.
    pub async fn attachment(&self, record: &Value) -> Result<Vec<u8>, AttachmentError> {
        let declared = declared(record)?;
        let path = self.attachments_dir().join(&declared.hash);
        match std::fs::read(&path) {
            Ok(bytes) => match check(&declared, &bytes) {
                Ok(()) => return Ok(bytes),
                Err(error) => {
                    tracing::warn!(%error, "cached attachment does not match its record; downloading it again");
                    let _ = std::fs::remove_file(&path);
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, "cannot read the cached attachment"),
        }
        let url = self
            .attachments_base()
            .await?
            .join(&declared.location)
            .map_err(|e| {
                AttachmentError::NoAttachment(format!("location {}: {e}", declared.location))
            })?;
        self.check_backoff()?;
        let fetched = match self.remote.get_limited(url, declared.size).await {
            Ok(fetched) => {
                self.note_backoff(fetched.backoff_secs)
                    .map_err(SyncError::from)?;
                fetched
            }
            Err(failure) => {
                self.note_backoff(failure.backoff_secs)
                    .map_err(SyncError::from)?;
                return Err(SyncError::Remote(failure.error).into());
            }
        };
        check(&declared, &fetched.body)?;
        self.cache(&path, &fetched.body)?;
        Ok(fetched.body)
    }

    /// Writes a verified attachment into the cache by write-and-rename, so a crash never
    /// leaves half a file under a hash name.
    fn cache(&self, path: &std::path::Path, bytes: &[u8]) -> Result<(), AttachmentError> {
        let cache_error = |e: std::io::Error| AttachmentError::Cache(e.to_string());
        let dir = self.attachments_dir();
        std::fs::create_dir_all(&dir).map_err(cache_error)?;
        let temporary = dir.join(format!(
            ".{}.partial",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("download")
        ));
        std::fs::write(&temporary, bytes).map_err(cache_error)?;
        std::fs::rename(&temporary, path).map_err(cache_error)
    }

    /// `capabilities.attachments.base_url` of the server root, read once.
    async fn attachments_base(&self) -> Result<&Url, AttachmentError> {
        self.attachments_base
            .get_or_try_init(|| async {
                let body = self.fetch(self.remote.base().clone()).await?;
                let root: Value = parse(&body, "server root")?;
                let base = root
                    .pointer("/capabilities/attachments/base_url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        SyncError::Remote(RemoteError::Parse(
                            "the server announces no attachments base_url".into(),
                        ))
                    })?;
                let base = if base.ends_with('/') {
                    base.to_owned()
                } else {
                    format!("{base}/")
                };
                Url::parse(&base)
                    .map_err(|e| SyncError::Remote(RemoteError::Parse(format!("base_url: {e}"))))
            })
            .await
            .map_err(AttachmentError::Download)
    }
}
