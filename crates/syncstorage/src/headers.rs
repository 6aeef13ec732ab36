//! Names of the Sync-specific headers, and the middleware that stamps every response.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sync_proto::SyncTimestamp;

/// Last-modified time of the resource, on every storage response.
pub const X_LAST_MODIFIED: HeaderName = HeaderName::from_static("x-last-modified");
/// The server's time, on every storage response.
pub const X_WEAVE_TIMESTAMP: HeaderName = HeaderName::from_static("x-weave-timestamp");
/// Number of records (or collections) in the response.
pub const X_WEAVE_RECORDS: HeaderName = HeaderName::from_static("x-weave-records");
/// Cursor of the next page.
pub const X_WEAVE_NEXT_OFFSET: HeaderName = HeaderName::from_static("x-weave-next-offset");
/// Kilobytes left in the user's quota.
pub const X_WEAVE_QUOTA_REMAINING: HeaderName = HeaderName::from_static("x-weave-quota-remaining");
/// Declared number of records in this request.
pub const X_WEAVE_RECORDS_IN: HeaderName = X_WEAVE_RECORDS;
/// Declared payload bytes in this request.
pub const X_WEAVE_BYTES: HeaderName = HeaderName::from_static("x-weave-bytes");
/// Declared number of records in the whole batch.
pub const X_WEAVE_TOTAL_RECORDS: HeaderName = HeaderName::from_static("x-weave-total-records");
/// Declared payload bytes in the whole batch.
pub const X_WEAVE_TOTAL_BYTES: HeaderName = HeaderName::from_static("x-weave-total-bytes");
/// Conditional read header.
pub const X_IF_MODIFIED_SINCE: HeaderName = HeaderName::from_static("x-if-modified-since");
/// Conditional write header.
pub const X_IF_UNMODIFIED_SINCE: HeaderName = HeaderName::from_static("x-if-unmodified-since");

/// Adds `X-Weave-Timestamp`. A write that succeeded (200; a batch append, 202, wrote
/// nothing yet) answers the one timestamp it took (the
/// `X-Last-Modified` of its answer and the `modified` its records now carry), so that the
/// header never names a later time than the data; any other answer carries the server's
/// time, or its `X-Last-Modified` when that is later (a client must never see a resource
/// newer than the server's clock).
pub async fn weave_timestamp(request: Request, next: Next) -> Response {
    let is_write = !matches!(*request.method(), Method::GET | Method::HEAD);
    let mut response = next.run(request).await;
    let last_modified = response
        .headers()
        .get(&X_LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| SyncTimestamp::parse_seconds(v).ok());
    let stamp = match last_modified {
        Some(written) if is_write && response.status() == StatusCode::OK => written,
        Some(last_modified) => SyncTimestamp::now().max(last_modified),
        None => SyncTimestamp::now(),
    };
    if let Ok(value) = HeaderValue::from_str(&stamp.to_string()) {
        response.headers_mut().insert(X_WEAVE_TIMESTAMP, value);
    }
    response
}
