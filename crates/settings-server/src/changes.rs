//! Remote Settings' read endpoints: `monitor/changes` (what changed, across collections)
//! and each collection's `changeset` (its records and metadata, or what changed since a
//! time). These are what clients poll, usually through a CDN, so their bodies are cached
//! here too: a write anywhere bumps a generation counter, and a cached body is served only
//! while its generation is current and for at most [`CACHE_TTL`], which bounds staleness
//! when another process writes to the same database.
//!
//! Several processes on one PostgreSQL database (behind a load balancer) each keep their
//! own cache, and a write through one process does not invalidate the others': they may
//! answer for up to [`CACHE_TTL`] (2 s) with the body from before it. That is the same
//! order as the `Cache-Control` a CDN in front is allowed, and clients poll: they see the
//! change on a later poll. A client sent to another process may be shown a body up to 2 s
//! older than the one it just got; its `_since` / `_expected` logic tolerates that. Checking the
//! database on every hit instead (a query for the newest list timestamp) would cost a round
//! trip per poll, which is what this cache exists to avoid (ADR 0011).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use serde_json::Value;
use settings_store::Kind;
use sha2::{Digest, Sha256};

use crate::access::{Action, allowed};
use crate::auth::{Caller, authenticate};
use crate::error::{Details, Errno, Invalid, KintoError};
use crate::resource::Resource;
use crate::state::SettingsState;

/// The largest `_since` accepted (1 January 2100, as the reference).
const MAX_TIMESTAMP: i64 = 4_102_444_800_000;
/// `_since` older than this is dropped with a redirect (the reference's default 21 days).
const SINCE_MAX_AGE_MS: i64 = 21 * 24 * 3600 * 1000;
/// Cached bodies kept at most.
const CACHE_ENTRIES: usize = 1024;
/// How long a cached body is served at most (writes by this process invalidate it sooner).
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Cached bodies of the read endpoints, valid for one write generation.
#[derive(Default)]
pub struct ChangesCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, (u64, std::time::Instant, CachedBody)>>,
}

#[derive(Clone)]
struct CachedBody {
    body: Bytes,
    last_modified: Option<i64>,
}

impl ChangesCache {
    /// Forgets every cached body (called after every write).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn get(&self, key: &str) -> Option<CachedBody> {
        let generation = self.generation.load(Ordering::Acquire);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(g, stored, _)| *g == generation && stored.elapsed() < CACHE_TTL)
            .map(|(_, _, body)| body.clone())
    }

    fn put(&self, key: String, generation: u64, body: CachedBody) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, std::time::Instant::now(), body));
    }
}

#[derive(Serialize)]
struct MonitorChanges {
    metadata: MonitorMetadata,
    timestamp: i64,
    changes: Vec<Change>,
}

#[derive(Serialize)]
struct MonitorMetadata {
    bucket: &'static str,
}

#[derive(Serialize)]
struct Change {
    id: String,
    last_modified: i64,
    bucket: String,
    collection: String,
    host: String,
}

#[derive(Serialize)]
struct Records {
    data: Vec<Change>,
}

fn parse_ts(name: &str, text: &str) -> Result<i64, KintoError> {
    text.trim_matches('"')
        .parse::<i64>()
        .ok()
        .filter(|v| (0..=MAX_TIMESTAMP).contains(v))
        .ok_or_else(|| {
            KintoError::invalid_parameter("querystring", name, "must be an integer timestamp")
        })
}

struct ChangesQuery {
    expected: Option<String>,
    since: Option<i64>,
    limit: Option<usize>,
    bucket: Option<String>,
    collection: Option<String>,
}

fn parse_query(query: &str) -> Result<ChangesQuery, KintoError> {
    let mut parsed = ChangesQuery {
        expected: None,
        since: None,
        limit: None,
        bucket: None,
        collection: None,
    };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "_expected" => parsed.expected = Some(value.into_owned()),
            "_since" if value.trim_matches('"') != "null" => {
                parsed.since = Some(parse_ts("_since", &value)?)
            }
            "_limit" => {
                parsed.limit = Some(value.parse().map_err(|_| {
                    KintoError::invalid_parameter(
                        "querystring",
                        "_limit",
                        "must be a positive integer",
                    )
                })?)
            }
            "bucket" => parsed.bucket = Some(value.into_owned()),
            "collection" => parsed.collection = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(parsed)
}

/// The reference's cache lifetimes: `_expected=0` (or a `9999…` cache-bust) gets the short
/// one, a real timestamp the long one (its content can never change).
fn cache_control(state: &SettingsState, expected: Option<&str>) -> HeaderValue {
    let settings = &state.settings;
    let seconds = match expected {
        Some(e) if e == "0" || e.starts_with("9999") => {
            settings.record_cache_minimum_expires_seconds
        }
        Some(_) => settings.record_cache_maximum_expires_seconds,
        None => settings.record_cache_minimum_expires_seconds,
    };
    HeaderValue::from_str(&format!("max-age={seconds}")).expect("a number is a header value")
}

fn json_response(body: Bytes, cache: HeaderValue, last_modified: Option<i64>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, cache);
    if let Some(ts) = last_modified {
        if let Ok(value) = HeaderValue::from_str(&format!("\"{ts}\"")) {
            headers.insert(header::ETAG, value);
        }
        if let Some(date) = crate::handlers::http_date(ts) {
            headers.insert(header::LAST_MODIFIED, date);
        }
    }
    response
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A deterministic UUID for a monitored collection (the same on every read).
fn change_id(host: &str, bucket: &str, collection: &str) -> String {
    let digest = Sha256::digest(format!("{host}/{bucket}/{collection}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Every publicly readable collection with its records timestamp, newest first. Collections
/// only some people may read (a review workflow's workspace and preview, say) are left out,
/// so the public list does not disclose them.
async fn all_changes(state: &SettingsState, host: &str) -> Result<Vec<Change>, KintoError> {
    let store = state.store.as_ref();
    let anonymous = Caller::anonymous();
    let mut changes = Vec::new();
    for bucket in store.list(Kind::Bucket, "", false).await? {
        let bucket_uri = format!("/buckets/{}", bucket.id);
        for collection in store.list(Kind::Collection, &bucket_uri, false).await? {
            let records = format!("{bucket_uri}/collections/{}", collection.id);
            let resource = Resource::parse(&records)?;
            if !allowed(
                store,
                &anonymous,
                &resource.permission_chain(),
                Action::Read,
            )
            .await?
            {
                continue;
            }
            let last_modified = store.timestamp(Kind::Record, &records).await?;
            changes.push(Change {
                id: change_id(host, &bucket.id, &collection.id),
                last_modified,
                bucket: bucket.id.clone(),
                collection: collection.id.clone(),
                host: host.to_owned(),
            });
        }
    }
    changes.sort_by_key(|c| std::cmp::Reverse(c.last_modified));
    Ok(changes)
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

/// `GET /v1/buckets/monitor/collections/changes/changeset`.
pub async fn monitor_changeset(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let raw_query = uri.query().unwrap_or("");
    let query = parse_query(raw_query)?;
    // A quoted `_expected` is redirected to the unquoted form, so a CDN caches one key.
    if let Some(expected) = &query.expected
        && expected.starts_with('"')
    {
        let pairs = url::form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| {
            if k == "_expected" {
                (k.into_owned(), v.trim_matches('"').to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        });
        let fixed = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        return Ok(Redirect::temporary(&format!("{}?{fixed}", uri.path())).into_response());
    }
    let expected = query
        .expected
        .as_deref()
        .map(|e| e.parse::<i64>().unwrap_or(0))
        .unwrap_or(0);
    if let Some(since) = query.since {
        if expected > 0 && expected < since {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if since < now_ms() - SINCE_MAX_AGE_MS {
            let pairs =
                url::form_urlencoded::parse(raw_query.as_bytes()).filter(|(k, _)| k != "_since");
            let fixed = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            return Ok(Redirect::temporary(&format!("{}?{fixed}", uri.path())).into_response());
        }
    }
    let cache_key = format!("monitor?{raw_query}#{}", host_of(&headers));
    let control = cache_control(&state, query.expected.as_deref());
    if let Some(cached) = state.changes.get(&cache_key) {
        return Ok(json_response(cached.body, control, cached.last_modified));
    }
    let generation = state.changes.generation.load(Ordering::Acquire);
    let mut changes = all_changes(&state, &host_of(&headers)).await?;
    let timestamp = changes
        .first()
        .map(|c| c.last_modified)
        .unwrap_or_else(now_ms);
    changes.retain(|c| {
        query.since.is_none_or(|since| c.last_modified > since)
            && query.bucket.as_ref().is_none_or(|b| &c.bucket == b)
            && query
                .collection
                .as_ref()
                .is_none_or(|name| &c.collection == name)
    });
    if let Some(limit) = query.limit {
        changes.truncate(limit);
    }
    let body = Bytes::from(
        serde_json::to_vec(&MonitorChanges {
            metadata: MonitorMetadata { bucket: "monitor" },
            timestamp,
            changes,
        })
        .expect("serializes"),
    );
    state.changes.put(
        cache_key,
        generation,
        CachedBody {
            body: body.clone(),
            last_modified: Some(timestamp),
        },
    );
    Ok(json_response(body, control, Some(timestamp)))
}

/// `GET /v1/buckets/monitor/collections/changes/records` (Firefox before 88): always 200,
/// because CDNs do not cache 304s.
pub async fn monitor_records(
    State(state): State<SettingsState>,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let changes = all_changes(&state, &host_of(&headers)).await?;
    let timestamp = changes
        .first()
        .map(|c| c.last_modified)
        .unwrap_or_else(now_ms);
    let body = Bytes::from(serde_json::to_vec(&Records { data: changes }).expect("serializes"));
    Ok(json_response(
        body,
        cache_control(&state, None),
        Some(timestamp),
    ))
}

/// `GET /v1/buckets/{bid}/collections/{cid}/changeset`: the collection's metadata, its
/// records timestamp (what the signature covers) and its records, newest first; with
/// `_since`, only what changed after it, tombstones included.
pub async fn collection_changeset(
    State(state): State<SettingsState>,
    Path((bucket, collection)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let raw_query = uri.query().unwrap_or("");
    let query = parse_query(raw_query)?;
    if query.expected.is_none() {
        return Err(KintoError {
            details: Some(Details::Validation([Invalid {
                location: "querystring".into(),
                name: "_expected".into(),
                description: "_expected in querystring: Required".into(),
            }])),
            ..KintoError::new(
                StatusCode::BAD_REQUEST,
                Errno::InvalidParameter,
                "Invalid parameters",
            )
        });
    }
    let resource = Resource::parse(&format!("/buckets/{bucket}/collections/{collection}"))?;
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, &headers).await?;
    let store = state.store.as_ref();
    let Some(metadata) = store
        .get(Kind::Collection, &resource.parent, &collection)
        .await?
    else {
        return Err(crate::access::missing_or_forbidden(store, &caller, &resource).await);
    };
    if !allowed(store, &caller, &resource.permission_chain(), Action::Read).await? {
        return Err(KintoError::denied(&caller));
    }
    let control = cache_control(&state, query.expected.as_deref());
    let cache_key = format!("{}?{raw_query}", uri.path());
    let anonymous = caller.user_id.is_none();
    if anonymous && let Some(cached) = state.changes.get(&cache_key) {
        return Ok(json_response(cached.body, control, cached.last_modified));
    }
    let generation = state.changes.generation.load(Ordering::Acquire);
    let records_uri = resource.uri();
    let timestamp = store.timestamp(Kind::Record, &records_uri).await?;
    // The records are copied into the answer as stored, never parsed.
    let mut records = store
        .list_raw(Kind::Record, &records_uri, query.since.is_some())
        .await?;
    if let Some(since) = query.since {
        records.retain(|r| r.last_modified > since);
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.last_modified));
    if let Some(limit) = query.limit {
        records.truncate(limit);
    }
    let mut meta = metadata.to_json();
    if let Value::Object(map) = &mut meta {
        map.insert("bucket".into(), Value::String(bucket.clone()));
    }
    let size: usize = records.iter().map(|r| r.data.len() + 64).sum();
    let mut body = Vec::with_capacity(size + 1024);
    body.extend_from_slice(b"{\"metadata\":");
    serde_json::to_writer(&mut body, &meta).expect("JSON serialises");
    body.extend_from_slice(format!(",\"timestamp\":{timestamp},\"changes\":[").as_bytes());
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        record.write_json(&mut body);
    }
    body.extend_from_slice(b"]}");
    let body = Bytes::from(body);
    if anonymous {
        state.changes.put(
            cache_key,
            generation,
            CachedBody {
                body: body.clone(),
                last_modified: Some(metadata.last_modified),
            },
        );
    }
    Ok(json_response(body, control, Some(metadata.last_modified)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_are_stable_uuids() {
        let a = change_id("h", "main", "cfr");
        assert_eq!(a, change_id("h", "main", "cfr"));
        assert_ne!(a, change_id("h", "main", "other"));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn timestamps_in_queries() {
        assert_eq!(parse_ts("_since", "\"123\"").unwrap(), 123);
        assert!(parse_ts("_since", "-1").is_err());
        assert!(parse_ts("_since", "4102444800001").is_err());
        assert!(parse_ts("_since", "abc").is_err());
    }
}
