//! A SyncStorage 1.5 client: Hawk-signed requests, token refresh, backoff, paging and
//! batched uploads.
//!
//! The one rule of Tier 2 clients, "never write the crypto collection", is enforced here, in
//! [`StorageClient::guard_write`], which every writing method calls first: a client built
//! with [`StorageClient::new`] cannot write `crypto` (nor wipe the whole storage, which
//! deletes it); only the Tier 1 client turns that on, through a crate-private method.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use sync_proto::hawk::{self, RequestTarget};
use sync_proto::{ServerLimits, SyncTimestamp};

use crate::auth::{NodeToken, TokenServerClient};
use crate::error::ClientError;

/// The collection Tier 2 clients never write.
pub const CRYPTO_COLLECTION: &str = "crypto";
/// Records fetched per page.
const PAGE_SIZE: u32 = 1000;
/// Ids per `DELETE ?ids=` (the server's limit).
const IDS_PER_DELETE: usize = 100;

/// A record as stored (payload still encrypted).
#[derive(Debug, Clone, Deserialize)]
pub struct RawBso {
    /// The record id.
    pub id: String,
    /// When it was written, in seconds.
    #[serde(default)]
    pub modified: f64,
    /// The payload string.
    #[serde(default)]
    pub payload: String,
    /// The sortindex.
    #[serde(default)]
    pub sortindex: Option<i32>,
}

/// A record to write.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingBso {
    /// The record id.
    pub id: String,
    /// The payload string.
    pub payload: String,
    /// The sortindex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sortindex: Option<i32>,
    /// Time to live in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// What a POST (or a whole batch) did.
#[derive(Debug, Clone, Default)]
pub struct PostOutcome {
    /// The collection's new timestamp.
    pub modified: SyncTimestamp,
    /// Records the server refused, with its reasons.
    pub failed: BTreeMap<String, String>,
}

/// An answer's status, Sync headers and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `X-Last-Modified`.
    pub last_modified: Option<SyncTimestamp>,
    /// `X-Weave-Next-Offset`.
    pub next_offset: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Where node tokens come from.
pub enum NodeCredentials {
    /// Fetched (and refetched on 401) from a token server.
    TokenServer(TokenServerClient),
    /// Fixed credentials (e.g. from `syncstack token mint`); a 401 is final.
    Fixed(NodeToken),
}

/// Talks to the user's storage node.
pub struct StorageClient {
    http: reqwest::Client,
    credentials: NodeCredentials,
    token: tokio::sync::Mutex<Option<NodeToken>>,
    crypto_writes: bool,
    backoff_until: Mutex<Option<Instant>>,
    limits: Mutex<Option<ServerLimits>>,
}

impl StorageClient {
    /// A client that may read everything and write data collections, never `crypto`.
    pub fn new(credentials: NodeCredentials) -> Self {
        let token = match &credentials {
            NodeCredentials::Fixed(token) => Some(token.clone()),
            NodeCredentials::TokenServer(_) => None,
        };
        StorageClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("building an HTTP client"),
            credentials,
            token: tokio::sync::Mutex::new(token),
            crypto_writes: false,
            backoff_until: Mutex::new(None),
            limits: Mutex::new(None),
        }
    }

    /// Lets this client write `crypto` and wipe storage: for Tier 1 only.
    pub(crate) fn allow_crypto_writes(&mut self) {
        self.crypto_writes = true;
    }

    /// The single guard of the Tier 2 rule: every write goes through here first.
    fn guard_write(&self, collection: Option<&str>) -> Result<(), ClientError> {
        let touches_crypto = match collection {
            Some(name) => name == CRYPTO_COLLECTION,
            // A write to no single collection (deleting all storage) deletes crypto too.
            None => true,
        };
        if touches_crypto && !self.crypto_writes {
            return Err(ClientError::CryptoWriteForbidden);
        }
        Ok(())
    }

    /// The current node endpoint (`<node>/1.5/<uid>`), fetching a token if needed.
    pub async fn endpoint(&self) -> Result<String, ClientError> {
        Ok(self.current_token().await?.api_endpoint)
    }

    async fn current_token(&self) -> Result<NodeToken, ClientError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && (!token.is_stale() || matches!(self.credentials, NodeCredentials::Fixed(_)))
        {
            return Ok(token.clone());
        }
        let NodeCredentials::TokenServer(server) = &self.credentials else {
            return slot
                .clone()
                .ok_or_else(|| ClientError::Protocol("no credentials".into()));
        };
        let fresh = server.fetch().await?;
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets the token so the next request fetches one (after a 401: the node may have
    /// changed). Returns whether a new one can be fetched.
    async fn drop_token(&self) -> bool {
        if matches!(self.credentials, NodeCredentials::Fixed(_)) {
            return false;
        }
        *self.token.lock().await = None;
        true
    }

    fn check_backoff(&self) -> Result<(), ClientError> {
        let until = *self.backoff_until.lock().unwrap_or_else(|p| p.into_inner());
        match until {
            Some(until) if until > Instant::now() => {
                Err(ClientError::Backoff((until - Instant::now()).as_secs() + 1))
            }
            _ => Ok(()),
        }
    }

    fn back_off(&self, seconds: u64) {
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut slot = self.backoff_until.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none_or(|current| current < until) {
            *slot = Some(until);
        }
        tracing::warn!(seconds, "the server asked to back off");
    }

    /// Sends one request, signed with Hawk; on 401 fetches a new token once and retries.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, String)],
    ) -> Result<Reply, ClientError> {
        self.check_backoff()?;
        let mut retried = false;
        loop {
            let token = self.current_token().await?;
            let url = url::Url::parse(&format!("{}{path}", token.api_endpoint)).map_err(|e| {
                ClientError::Protocol(format!("bad endpoint {}: {e}", token.api_endpoint))
            })?;
            let path_and_query = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            };
            let target = RequestTarget {
                method: method.as_str(),
                path_and_query: &path_and_query,
                host: url.host_str().unwrap_or(""),
                port: url.port_or_known_default().unwrap_or(80),
            };
            let authorization = hawk::sign_request(&token.id, token.key.as_bytes(), &target, None);
            let mut request = self
                .http
                .request(method.clone(), url)
                .header("authorization", authorization);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some((content_type, bytes)) = &body {
                request = request
                    .header("content-type", *content_type)
                    .body(bytes.clone());
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            if let Some(seconds) = header("x-weave-backoff").and_then(|v| v.parse().ok()) {
                self.back_off(seconds);
            }
            if status == 503 {
                let seconds = header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60);
                self.back_off(seconds);
                return Err(ClientError::Backoff(seconds));
            }
            if status == 401 && !retried && self.drop_token().await {
                retried = true;
                tracing::info!("storage node answered 401: fetching a new token");
                continue;
            }
            let last_modified =
                header("x-last-modified").and_then(|v| SyncTimestamp::parse_seconds(&v).ok());
            let next_offset = header("x-weave-next-offset");
            let body = response.bytes().await?.to_vec();
            return Ok(Reply {
                status,
                last_modified,
                next_offset,
                body,
            });
        }
    }

    fn unexpected(reply: &Reply, what: &str) -> ClientError {
        match reply.status {
            412 => ClientError::Conflict,
            status => ClientError::Http {
                status,
                what: what.to_owned(),
            },
        }
    }

    /// `info/collections`: each collection's timestamp; `None` when unchanged since `since`.
    pub async fn info_collections(
        &self,
        since: Option<SyncTimestamp>,
    ) -> Result<Option<BTreeMap<String, SyncTimestamp>>, ClientError> {
        let headers: Vec<(&str, String)> = since
            .map(|ts| vec![("x-if-modified-since", ts.to_string())])
            .unwrap_or_default();
        let reply = self
            .send(Method::GET, "/info/collections", None, &headers)
            .await?;
        match reply.status {
            304 => Ok(None),
            200 => {
                let raw: BTreeMap<String, f64> = serde_json::from_slice(&reply.body)
                    .map_err(|e| ClientError::Protocol(format!("info/collections: {e}")))?;
                Ok(Some(
                    raw.into_iter()
                        .map(|(k, v)| (k, seconds_to_ts(v)))
                        .collect(),
                ))
            }
            _ => Err(Self::unexpected(&reply, "GET info/collections")),
        }
    }

    /// `info/configuration`, cached; the defaults when the server has none.
    pub async fn limits(&self) -> Result<ServerLimits, ClientError> {
        if let Some(limits) = *self.limits.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(limits);
        }
        let reply = self
            .send(Method::GET, "/info/configuration", None, &[])
            .await?;
        let limits = match reply.status {
            200 => serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .map(|value| limits_from(&value))
                .unwrap_or_default(),
            _ => ServerLimits::default(),
        };
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = Some(limits);
        Ok(limits)
    }

    /// One record, or `None` when it does not exist.
    pub async fn get_record(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<RawBso>, ClientError> {
        let path = format!("/storage/{collection}/{}", encode(id));
        let reply = self.send(Method::GET, &path, None, &[]).await?;
        match reply.status {
            200 => serde_json::from_slice(&reply.body)
                .map(Some)
                .map_err(|e| ClientError::Protocol(format!("record {collection}/{id}: {e}"))),
            404 => Ok(None),
            _ => Err(Self::unexpected(&reply, &format!("GET {collection}/{id}"))),
        }
    }

    /// Every record modified after `newer` (all when `None`), oldest first, following
    /// `X-Weave-Next-Offset`. Pages after the first are sent with `X-If-Unmodified-Since`, so
    /// a collection that changes while it is read gives [`ClientError::Conflict`] rather
    /// than a mix. Returns the records and the collection's timestamp.
    pub async fn get_records(
        &self,
        collection: &str,
        newer: Option<SyncTimestamp>,
    ) -> Result<(Vec<RawBso>, SyncTimestamp), ClientError> {
        let mut records = Vec::new();
        let mut offset: Option<String> = None;
        let mut collection_ts: Option<SyncTimestamp> = None;
        loop {
            let mut path = format!("/storage/{collection}?full=1&sort=oldest&limit={PAGE_SIZE}");
            if let Some(newer) = newer {
                path.push_str(&format!("&newer={newer}"));
            }
            if let Some(offset) = &offset {
                path.push_str(&format!("&offset={}", encode(offset)));
            }
            let headers: Vec<(&str, String)> = collection_ts
                .map(|ts| vec![("x-if-unmodified-since", ts.to_string())])
                .unwrap_or_default();
            let reply = self.send(Method::GET, &path, None, &headers).await?;
            if reply.status != 200 {
                return Err(Self::unexpected(&reply, &format!("GET {collection}")));
            }
            collection_ts = collection_ts.or(reply.last_modified);
            let page: Vec<RawBso> = serde_json::from_slice(&reply.body)
                .map_err(|e| ClientError::Protocol(format!("listing of {collection}: {e}")))?;
            records.extend(page);
            match reply.next_offset {
                Some(next) => offset = Some(next),
                None => return Ok((records, collection_ts.unwrap_or_default())),
            }
        }
    }

    /// Writes one record; returns its new timestamp.
    pub async fn put_record(
        &self,
        collection: &str,
        record: &OutgoingBso,
        unmodified_since: Option<SyncTimestamp>,
    ) -> Result<SyncTimestamp, ClientError> {
        self.guard_write(Some(collection))?;
        let path = format!("/storage/{collection}/{}", encode(&record.id));
        let body = serde_json::to_vec(record).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let headers: Vec<(&str, String)> = unmodified_since
            .map(|ts| vec![("x-if-unmodified-since", ts.to_string())])
            .unwrap_or_default();
        let reply = self
            .send(
                Method::PUT,
                &path,
                Some(("application/json", body)),
                &headers,
            )
            .await?;
        match (reply.status, reply.last_modified) {
            (200, Some(ts)) => Ok(ts),
            _ => Err(Self::unexpected(
                &reply,
                &format!("PUT {collection}/{}", record.id),
            )),
        }
    }

    /// Uploads records: one POST when they fit the limits, else a batch (`batch=true`,
    /// appends, `commit=true`), every request carrying `X-If-Unmodified-Since` when given.
    /// More records than one batch may hold (`max_total_records`, `max_total_bytes`) go in
    /// several batches, each expecting the collection time the previous one committed.
    pub async fn post_records(
        &self,
        collection: &str,
        records: &[OutgoingBso],
        unmodified_since: Option<SyncTimestamp>,
    ) -> Result<PostOutcome, ClientError> {
        self.guard_write(Some(collection))?;
        let limits = self.limits().await?;
        let chunks = chunk_for_limits(records, &limits);
        let mut outcome = PostOutcome::default();
        let mut unmodified_since = unmodified_since;
        for batch in group_into_batches(&chunks, &limits) {
            let posted = self.post_batch(collection, batch, unmodified_since).await?;
            outcome.failed.extend(posted.failed);
            outcome.modified = posted.modified;
            // The collection moved only because of this client's own commit.
            unmodified_since = unmodified_since.map(|_| posted.modified);
        }
        Ok(outcome)
    }

    /// Sends POST bodies that fit in one batch: a plain POST for a single body.
    async fn post_batch(
        &self,
        collection: &str,
        chunks: &[Vec<&OutgoingBso>],
        unmodified_since: Option<SyncTimestamp>,
    ) -> Result<PostOutcome, ClientError> {
        let headers: Vec<(&str, String)> = unmodified_since
            .map(|ts| vec![("x-if-unmodified-since", ts.to_string())])
            .unwrap_or_default();
        let mut outcome = PostOutcome::default();
        let mut batch: Option<String> = None;
        let last = chunks.len().saturating_sub(1);
        for (index, chunk) in chunks.iter().enumerate() {
            let query = match (chunks.len(), &batch, index == last) {
                (1, _, _) => String::new(),
                (_, None, _) => "?batch=true".into(),
                (_, Some(id), false) => format!("?batch={}", encode(id)),
                (_, Some(id), true) => format!("?batch={}&commit=true", encode(id)),
            };
            let body =
                serde_json::to_vec(chunk).map_err(|e| ClientError::Protocol(e.to_string()))?;
            let path = format!("/storage/{collection}{query}");
            let reply = self
                .send(
                    Method::POST,
                    &path,
                    Some(("application/json", body)),
                    &headers,
                )
                .await?;
            if !matches!(reply.status, 200 | 202) {
                return Err(Self::unexpected(&reply, &format!("POST {collection}")));
            }
            let answer: serde_json::Value = serde_json::from_slice(&reply.body)
                .map_err(|e| ClientError::Protocol(format!("POST answer: {e}")))?;
            if let Some(failed) = answer["failed"].as_object() {
                for (id, reason) in failed {
                    outcome
                        .failed
                        .insert(id.clone(), reason.as_str().unwrap_or("").to_owned());
                }
            }
            if let Some(id) = answer["batch"].as_str() {
                batch = Some(id.to_owned());
            }
            if let Some(modified) = answer["modified"].as_f64() {
                outcome.modified = seconds_to_ts(modified);
            }
        }
        Ok(outcome)
    }

    /// Deletes some records (in chunks the server accepts).
    pub async fn delete_records(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<(), ClientError> {
        self.guard_write(Some(collection))?;
        for chunk in ids.chunks(IDS_PER_DELETE) {
            let list: Vec<String> = chunk.iter().map(|id| encode(id)).collect();
            let path = format!("/storage/{collection}?ids={}", list.join(","));
            let reply = self.send(Method::DELETE, &path, None, &[]).await?;
            if reply.status != 200 {
                return Err(Self::unexpected(
                    &reply,
                    &format!("DELETE {collection}?ids="),
                ));
            }
        }
        Ok(())
    }

    /// Deletes a whole collection.
    pub async fn delete_collection(&self, collection: &str) -> Result<(), ClientError> {
        self.guard_write(Some(collection))?;
        let reply = self
            .send(Method::DELETE, &format!("/storage/{collection}"), None, &[])
            .await?;
        match reply.status {
            200 | 404 => Ok(()),
            _ => Err(Self::unexpected(&reply, &format!("DELETE {collection}"))),
        }
    }

    /// Deletes everything the user stores (Tier 1 only: it deletes `crypto` too).
    pub async fn delete_storage(&self) -> Result<(), ClientError> {
        self.guard_write(None)?;
        let headers = [("x-confirm-delete", "1".to_owned())];
        let reply = self
            .send(Method::DELETE, "/storage", None, &headers)
            .await?;
        match reply.status {
            200 | 404 => Ok(()),
            _ => Err(Self::unexpected(&reply, "DELETE storage")),
        }
    }
}

/// Splits records into POST bodies within `max_post_records`, `max_post_bytes` and
/// `max_request_bytes` (leaving room for JSON punctuation).
pub fn chunk_for_limits<'a>(
    records: &'a [OutgoingBso],
    limits: &ServerLimits,
) -> Vec<Vec<&'a OutgoingBso>> {
    let mut chunks: Vec<Vec<&OutgoingBso>> = vec![Vec::new()];
    let (mut payload_bytes, mut request_bytes) = (0u64, 2u64);
    for record in records {
        let payload = record.payload.len() as u64;
        let encoded = serde_json::to_vec(record)
            .map(|v| v.len() as u64 + 1)
            .unwrap_or(payload);
        let current = chunks.last().map(Vec::len).unwrap_or(0) as u64;
        let full = current >= limits.max_post_records
            || payload_bytes + payload > limits.max_post_bytes
            || request_bytes + encoded > limits.max_request_bytes;
        if full && current > 0 {
            chunks.push(Vec::new());
            payload_bytes = 0;
            request_bytes = 2;
        }
        payload_bytes += payload;
        request_bytes += encoded;
        chunks
            .last_mut()
            .expect("there is always a chunk")
            .push(record);
    }
    chunks.retain(|chunk| !chunk.is_empty());
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    chunks
}

/// Groups POST bodies into batches within `max_total_records` and `max_total_bytes` (a
/// body that alone exceeds them still gets a batch of its own).
fn group_into_batches<'c, 'a>(
    chunks: &'c [Vec<&'a OutgoingBso>],
    limits: &ServerLimits,
) -> Vec<&'c [Vec<&'a OutgoingBso>]> {
    let mut batches = Vec::new();
    let (mut start, mut records, mut bytes) = (0, 0u64, 0u64);
    for (index, chunk) in chunks.iter().enumerate() {
        let chunk_records = chunk.len() as u64;
        let chunk_bytes: u64 = chunk.iter().map(|record| record.payload.len() as u64).sum();
        let full = records + chunk_records > limits.max_total_records
            || bytes + chunk_bytes > limits.max_total_bytes;
        if full && index > start {
            batches.push(&chunks[start..index]);
            (start, records, bytes) = (index, 0, 0);
        }
        records += chunk_records;
        bytes += chunk_bytes;
    }
    batches.push(&chunks[start..]);
    batches
}

fn limits_from(value: &serde_json::Value) -> ServerLimits {
    let mut limits = ServerLimits::default();
    let get = |key: &str| value.get(key).and_then(|v| v.as_u64());
    if let Some(v) = get("max_post_bytes") {
        limits.max_post_bytes = v;
    }
    if let Some(v) = get("max_post_records") {
        limits.max_post_records = v;
    }
    if let Some(v) = get("max_record_payload_bytes") {
        limits.max_record_payload_bytes = v;
    }
    if let Some(v) = get("max_request_bytes") {
        limits.max_request_bytes = v;
    }
    if let Some(v) = get("max_total_bytes") {
        limits.max_total_bytes = v;
    }
    if let Some(v) = get("max_total_records") {
        limits.max_total_records = v;
    }
    limits
}

/// Seconds (as a JSON number) to a timestamp, rounding away float error.
pub fn seconds_to_ts(seconds: f64) -> SyncTimestamp {
    SyncTimestamp::from_millis((seconds * 1000.0).round().max(0.0) as u64)
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize, size: usize) -> OutgoingBso {
        OutgoingBso {
            id: format!("r{id}"),
            payload: "x".repeat(size),
            sortindex: None,
            ttl: None,
        }
    }

    #[test]
    fn chunks_respect_every_limit() {
        let limits = ServerLimits {
            max_post_records: 3,
            max_post_bytes: 250,
            max_request_bytes: 10_000,
            ..ServerLimits::default()
        };
        let records: Vec<_> = (0..7).map(|i| record(i, 100)).collect();
        let chunks = chunk_for_limits(&records, &limits);
        assert!(
            chunks.iter().all(|c| c.len() <= 2),
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 7);
        let limits = ServerLimits {
            max_post_records: 3,
            ..ServerLimits::default()
        };
        assert_eq!(chunk_for_limits(&records, &limits).len(), 3);
        assert_eq!(chunk_for_limits(&[], &limits).len(), 1);
    }

    #[test]
    fn the_guard_refuses_crypto_writes_unless_allowed() {
        let token = NodeToken {
            id: "i".into(),
            key: "k".into(),
            uid: 1,
            api_endpoint: "http://n/1.5/1".into(),
            duration: 60,
            fetched: Instant::now(),
        };
        let mut client = StorageClient::new(NodeCredentials::Fixed(token));
        assert!(matches!(
            client.guard_write(Some("crypto")),
            Err(ClientError::CryptoWriteForbidden)
        ));
        assert!(matches!(
            client.guard_write(None),
            Err(ClientError::CryptoWriteForbidden)
        ));
        assert!(client.guard_write(Some("bookmarks")).is_ok());
        client.allow_crypto_writes();
        assert!(client.guard_write(Some("crypto")).is_ok());
    }
}
