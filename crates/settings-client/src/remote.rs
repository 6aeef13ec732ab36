//! The server's side of a sync: the URLs, the responses and what the client reads in
//! their headers. Nothing here writes to the local database; the caller persists the
//! backoff that [`Fetched::backoff_secs`] reports.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

/// What went wrong talking to the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The server could not be reached, or the response broke off.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered an error status.
    #[error("server answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Kinto's `message`, or the start of the body.
        message: String,
    },
    /// The response is not what the protocol says.
    #[error("unexpected response: {0}")]
    Parse(String),
    /// The response is larger than the configured limit.
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
}

/// A successful response.
pub struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// Seconds the server asked clients to wait (`Backoff`, or `Retry-After` on an
    /// error status), if it did.
    pub backoff_secs: Option<u64>,
}

/// A changeset: `GET /buckets/{bid}/collections/{cid}/changeset`.
#[derive(Debug, Deserialize)]
pub struct Changeset {
    /// The collection's metadata, signature included.
    pub metadata: Map<String, Value>,
    /// The records timestamp the signature covers.
    pub timestamp: u64,
    /// Records changed since `_since` (tombstones included), or all live records.
    pub changes: Vec<Value>,
}

/// The list of collections and their timestamps from `monitor/changes`.
#[derive(Debug, Deserialize)]
pub struct MonitorChanges {
    /// The newest timestamp of the list.
    pub timestamp: u64,
    /// One entry per collection.
    pub changes: Vec<MonitorEntry>,
}

/// One collection of `monitor/changes`.
#[derive(Debug, Deserialize)]
pub struct MonitorEntry {
    /// Its bucket.
    pub bucket: String,
    /// Its id.
    pub collection: String,
    /// Its records timestamp.
    pub last_modified: u64,
}

/// An HTTP client for one Remote Settings server.
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    base: Url,
    max_body: u64,
}

/// An error status, with the `Retry-After` it came with.
pub struct StatusFailure {
    /// The error.
    pub error: RemoteError,
    /// `Retry-After` or `Backoff` seconds, if the server sent them.
    pub backoff_secs: Option<u64>,
}

impl Remote {
    /// A client for the server whose API root is `base` (ending in `/v1`).
    pub fn new(base: Url, timeout: Duration, max_body: u64) -> Result<Self, RemoteError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "syncstack-settings-client/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout(timeout)
            .build()
            .map_err(|e| RemoteError::Network(e.to_string()))?;
        let mut base = base;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            http,
            base,
            max_body,
        })
    }

    /// The API root, ending in `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of a path under the API root (`buckets/main/...`).
    pub fn url(&self, path: &str) -> Result<Url, RemoteError> {
        self.base
            .join(path)
            .map_err(|e| RemoteError::Parse(format!("URL {path}: {e}")))
    }

    /// The changeset URL. `_since` is sent quoted, as Firefox sends it.
    pub fn changeset_url(
        &self,
        bucket: &str,
        collection: &str,
        expected: u64,
        since: Option<u64>,
    ) -> Result<Url, RemoteError> {
        let mut url = self.url(&format!(
            "buckets/{bucket}/collections/{collection}/changeset"
        ))?;
        url.query_pairs_mut()
            .append_pair("_expected", &expected.to_string());
        if let Some(since) = since {
            url.query_pairs_mut()
                .append_pair("_since", &format!("\"{since}\""));
        }
        Ok(url)
    }

    /// The `monitor/changes` URL.
    pub fn monitor_url(&self, since: Option<u64>) -> Result<Url, RemoteError> {
        let mut url = self.url("buckets/monitor/collections/changes/changeset")?;
        url.query_pairs_mut().append_pair("_expected", "0");
        if let Some(since) = since {
            url.query_pairs_mut()
                .append_pair("_since", &format!("\"{since}\""));
        }
        Ok(url)
    }

    /// GETs `url`, reading at most the configured number of bytes. An error status comes
    /// back as [`StatusFailure`] so the caller still sees its `Retry-After`.
    pub async fn get(&self, url: Url) -> Result<Fetched, Box<StatusFailure>> {
        self.get_limited(url, self.max_body).await
    }

    /// [`get`](Self::get) with a smaller body limit (an attachment's declared size).
    pub async fn get_limited(
        &self,
        url: Url,
        max_body: u64,
    ) -> Result<Fetched, Box<StatusFailure>> {
        let max_body = max_body.min(self.max_body);
        let fail = |error| {
            Box::new(StatusFailure {
                error,
                backoff_secs: None,
            })
        };
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fail(RemoteError::Network(describe(&e))))?;
        let status = response.status();
        let backoff = header_secs(&response, "Backoff");
        let retry_after = header_secs(&response, "Retry-After");
        if let Some(length) = response.content_length()
            && length > max_body
        {
            return Err(fail(RemoteError::TooLarge(max_body)));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(RemoteError::Network(describe(&e))))?;
            if body.len() as u64 + chunk.len() as u64 > max_body {
                return Err(fail(RemoteError::TooLarge(max_body)));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let wait = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                retry_after.or(backoff)
            } else {
                backoff
            };
            return Err(Box::new(StatusFailure {
                error: RemoteError::Status {
                    status: status.as_u16(),
                    message: error_message(&body),
                },
                backoff_secs: wait,
            }));
        }
        Ok(Fetched {
            body,
            backoff_secs: backoff,
        })
    }
}

/// Parses a JSON body into `T`.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, RemoteError> {
    serde_json::from_slice(body).map_err(|e| RemoteError::Parse(format!("{what}: {e}")))
}

fn header_secs(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Kinto's error `message`, else the start of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body)
        && let Some(Value::String(message)) = map.get("message")
    {
        return message.clone();
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// A reqwest error with its cause, which reqwest's own text leaves out.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
