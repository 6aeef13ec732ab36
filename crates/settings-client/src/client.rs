//! The client: configuration, the local database and the server, and the errors a caller
//! sees. Syncing is in `sync`, reading in `get`, attachments in `attachments`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use crate::local::{CollectionKey, HistoryEntry, LocalError, LocalStore, SyncStatus};
use crate::remote::{Remote, RemoteError};
use crate::verify::{IntegrityError, Trust};

/// The signer name of Mozilla's main signer, the default.
pub const DEFAULT_SIGNER_NAME: &str = "remote-settings.content-signature.mozilla.org";
/// The signer name Firefox expects for the `security-state` buckets.
pub const ONECRL_SIGNER_NAME: &str = "onecrl.content-signature.mozilla.org";

/// How a client is set up.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server's API root, e.g. `https://settings.example.com/v1`.
    pub server_url: Url,
    /// SHA-256 of the DER of the root certificate that signatures must chain to.
    pub root_sha256: [u8; 32],
    /// The signer name the signing certificate must carry. None: Firefox's rule
    /// ([`ONECRL_SIGNER_NAME`] for buckets named `security-state…`, else
    /// [`DEFAULT_SIGNER_NAME`]).
    pub signer_name: Option<String>,
    /// The local SQLite database (created if missing).
    pub database: PathBuf,
    /// Where downloaded attachments are cached. None: `attachments/` beside the database.
    pub attachments_dir: Option<PathBuf>,
    /// Packaged dumps, as `{dir}/{bucket}/{collection}.json` holding
    /// `{"data": [...], "timestamp": N}`. None: no dumps.
    pub dumps_dir: Option<PathBuf>,
    /// Timeout of each HTTP request.
    pub timeout: Duration,
    /// The largest response body read (a changeset, a chain, an attachment).
    pub max_response_bytes: u64,
}

impl ClientConfig {
    /// A configuration with the defaults: Firefox's signer names, 30 s timeout, 64 MiB
    /// responses, attachments beside the database, no dumps.
    ///
    /// 64 MiB is about 25 times the changeset of a 10,000-record collection; parsed, a
    /// response takes several times its size in memory, so the limit is what bounds the
    /// memory a hostile server can make the client use.
    pub fn new(server_url: Url, root_sha256: [u8; 32], database: PathBuf) -> Self {
        Self {
            server_url,
            root_sha256,
            signer_name: None,
            database,
            attachments_dir: None,
            dumps_dir: None,
            timeout: Duration::from_secs(30),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a sync did not bring the collection up to date. Whatever the error, the local
/// data is the last verified state, untouched.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The server asked clients to wait until then (ms since the epoch); nothing was
    /// requested.
    #[error("the server asked to back off until {until_ms} (ms since the epoch)")]
    Backoff {
        /// When requests may resume.
        until_ms: u64,
    },
    /// The server could not be reached, answered an error, or answered nonsense.
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// The server does not have the collection, or does not let us read it.
    #[error("the server has no readable collection {0}")]
    UnknownCollection(CollectionKey),
    /// The data did not verify, incrementally nor with the full changeset.
    #[error("signature verification failed: {first}; retry with the full changeset: {retry}")]
    Integrity {
        /// Why the incremental sync was refused.
        first: IntegrityError,
        /// Why the full changeset was refused.
        retry: IntegrityError,
    },
    /// The server answered older data than the client holds.
    #[error("the server answered timestamp {remote}, older than the local {local}")]
    Stale {
        /// The local timestamp.
        local: u64,
        /// The timestamp answered.
        remote: u64,
    },
    /// The local database failed.
    #[error("{0}")]
    Local(#[from] LocalError),
}

impl SyncError {
    /// The status this error is recorded as.
    pub fn status(&self) -> SyncStatus {
        match self {
            SyncError::Backoff { .. } => SyncStatus::Backoff,
            SyncError::Remote(RemoteError::Network(_)) => SyncStatus::NetworkError,
            SyncError::Remote(RemoteError::Parse(_) | RemoteError::TooLarge(_)) => {
                SyncStatus::ParseError
            }
            SyncError::Remote(RemoteError::Status { .. }) => SyncStatus::ServerError,
            SyncError::UnknownCollection(_) => SyncStatus::UnknownCollection,
            SyncError::Integrity { .. } => SyncStatus::SignRetryError,
            SyncError::Stale { .. } => SyncStatus::StaleData,
            SyncError::Local(_) => SyncStatus::ApplyError,
        }
    }
}

/// A Remote Settings client over one server and one local database.
pub struct Client {
    pub(crate) config: ClientConfig,
    pub(crate) local: LocalStore,
    pub(crate) remote: Remote,
    pub(crate) attachments_base: tokio::sync::OnceCell<Url>,
    /// Collections whose packaged dump this client has already considered: a dump ships
    /// with the application and does not change while it runs, so `get` (the hot read
    /// path) reads and parses a dump file once, not on every call.
    pub(crate) dumps_considered: std::sync::Mutex<std::collections::HashSet<CollectionKey>>,
}

impl Client {
    /// Opens the local database and prepares the HTTP client.
    pub fn open(config: ClientConfig) -> Result<Self, OpenError> {
        if let Some(parent) = config.database.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| OpenError::Io(e.to_string()))?;
        }
        let local = LocalStore::open(&config.database)?;
        let remote = Remote::new(
            config.server_url.clone(),
            config.timeout,
            config.max_response_bytes,
        )
        .map_err(|e| OpenError::Io(e.to_string()))?;
        Ok(Self {
            config,
            local,
            remote,
            attachments_base: tokio::sync::OnceCell::new(),
            dumps_considered: std::sync::Mutex::default(),
        })
    }

    /// The local database (for status displays and tests).
    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    /// The trust settings for a collection of `bucket`.
    pub(crate) fn trust(&self, bucket: &str) -> Trust {
        let signer_name = match &self.config.signer_name {
            Some(name) => name.clone(),
            None if bucket.starts_with("security-state") => ONECRL_SIGNER_NAME.to_owned(),
            None => DEFAULT_SIGNER_NAME.to_owned(),
        };
        Trust {
            root_sha256: self.config.root_sha256,
            signer_name,
        }
    }

    /// The collection's sync history, newest first.
    pub fn history(
        &self,
        key: &CollectionKey,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, LocalError> {
        self.local.history(key, limit)
    }

    /// When requests may resume, if the server asked to back off.
    pub fn backoff_until(&self) -> Result<Option<u64>, LocalError> {
        let until = self
            .local
            .state(BACKOFF_UNTIL)?
            .and_then(|v| v.parse::<u64>().ok());
        Ok(until.filter(|&until| until > now_ms()))
    }

    /// Fails with [`SyncError::Backoff`] while the server's backoff lasts.
    pub(crate) fn check_backoff(&self) -> Result<(), SyncError> {
        match self.backoff_until()? {
            Some(until_ms) => Err(SyncError::Backoff { until_ms }),
            None => Ok(()),
        }
    }

    /// Remembers a backoff the server asked for (persisted, so another run of the CLI
    /// honours it too).
    pub(crate) fn note_backoff(&self, secs: Option<u64>) -> Result<(), LocalError> {
        if let Some(secs) = secs.filter(|&s| s > 0) {
            let until = now_ms().saturating_add(secs.saturating_mul(1000));
            tracing::info!(secs, "server asked clients to back off");
            self.local
                .set_state(BACKOFF_UNTIL, Some(&until.to_string()))?;
        }
        Ok(())
    }

    /// GETs a server URL, honouring and recording backoff.
    pub(crate) async fn fetch(&self, url: Url) -> Result<Vec<u8>, SyncError> {
        self.check_backoff()?;
        match self.remote.get(url).await {
            Ok(fetched) => {
                self.note_backoff(fetched.backoff_secs)?;
                Ok(fetched.body)
            }
            Err(failure) => {
                self.note_backoff(failure.backoff_secs)?;
                Err(SyncError::Remote(failure.error))
            }
        }
    }
}

/// Why a client could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The local database could not be opened or migrated.
    #[error("{0}")]
    Local(#[from] LocalError),
    /// A directory could not be created, or the HTTP client could not be built.
    #[error("{0}")]
    Io(String),
}

/// The state key of the backoff deadline.
const BACKOFF_UNTIL: &str = "backoff_until_ms";

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
