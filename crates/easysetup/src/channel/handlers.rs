//! The relay's handlers and the guard middleware in front of them. Channel bodies pass
//! through untouched and are never logged.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;
use tracing::Instrument;

use super::ChannelServer;
use super::error::{ChannelError, FailedRequest};
use super::extract::{
    ClientAddr, OnChannel, X_KEYEXCHANGE_CHANNEL, X_KEYEXCHANGE_CID, X_KEYEXCHANGE_LOG, client_id,
    read_limited,
};
use super::ids::{ChannelId, ETag};
use super::store::{PutCondition, Read, ReportDeletion};

/// Largest report body, as in the reference server. Longer reports are refused rather
/// than truncated, so that nothing past the limit is ever read.
const MAX_REPORT_BYTES: usize = 2000;

/// Runs every request inside a span naming the client address, refuses blocked addresses,
/// and counts refusals marked [`FailedRequest`] toward the failure limit (the request that
/// goes over it is answered 403 instead).
pub(crate) async fn guard(
    State(server): State<Arc<ChannelServer>>,
    ClientAddr(client): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let span = tracing::info_span!(
        "easysetup",
        %client,
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        if let Err(blocked) = server.limiter.check(client, Instant::now()) {
            return blocked.into_response();
        }
        let response = next.run(request).await;
        if response.extensions().get::<FailedRequest>().is_some()
            && let Err(blocked) = server.limiter.record_failure(client, Instant::now())
        {
            return blocked.into_response();
        }
        response
    }
    .instrument(span)
    .await
}

/// `GET /easysetup/new_channel`: a channel with the caller as its first client. The id is
/// both the JSON string body and the `X-KeyExchange-Channel` header.
pub(crate) async fn new_channel(
    State(server): State<Arc<ChannelServer>>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
) -> Result<Response, ChannelError> {
    let client = client_id(&headers).ok_or(ChannelError::BadClientId {
        channel_deleted: false,
    })?;
    let now = Instant::now();
    server.limiter.record_creation(address, now)?;
    let id = server.channels.create(client, now)?;
    tracing::debug!(channel = %id, "channel created");
    let value = HeaderValue::from_str(id.as_str()).expect("alphabet characters are header-safe");
    Ok(([(X_KEYEXCHANGE_CHANNEL, value)], Json(id.as_str())).into_response())
}

/// `GET /easysetup/{cid}`: the body verbatim, or 304 if `If-None-Match` names it.
pub(crate) async fn get(
    State(server): State<Arc<ChannelServer>>,
    channel: OnChannel,
    headers: HeaderMap,
) -> Result<Response, ChannelError> {
    let if_none_match = header_str(&headers, &header::IF_NONE_MATCH);
    let read = server
        .channels
        .read(&channel.id, &channel.client, if_none_match, Instant::now())?;
    Ok(match read {
        Read::NotModified(etag) => (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag.header_value())],
        )
            .into_response(),
        Read::Body { body, etag } => {
            let mut response = (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    // Polling clients must see each new body; no cache may answer for us.
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                body,
            )
                .into_response();
            if let Some(etag) = etag {
                response
                    .headers_mut()
                    .insert(header::ETAG, etag.header_value());
            }
            response
        }
    })
}

/// `PUT /easysetup/{cid}`: replaces the body if the conditional headers allow it. The
/// body must be a JSON object; it is stored byte for byte.
pub(crate) async fn put(
    State(server): State<Arc<ChannelServer>>,
    channel: OnChannel,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ChannelError> {
    let body = read_limited(body, server.settings.max_body_bytes).await?;
    ensure_json_object(&body)?;
    let condition = match (
        header_str(&headers, &header::IF_MATCH),
        header_str(&headers, &header::IF_NONE_MATCH),
    ) {
        (Some(tags), _) => PutCondition::IfMatch(tags),
        (None, Some(tags)) => PutCondition::IfNoneMatch(tags),
        (None, None) => PutCondition::None,
    };
    let etag = ETag::of(&body);
    let etag = server.channels.write(
        &channel.id,
        &channel.client,
        condition,
        body,
        etag,
        Instant::now(),
    )?;
    Ok((StatusCode::OK, [(header::ETAG, etag.header_value())]).into_response())
}

/// `DELETE /easysetup/{cid}`: one of the channel's clients ends it early.
pub(crate) async fn delete(
    State(server): State<Arc<ChannelServer>>,
    channel: OnChannel,
) -> Result<StatusCode, ChannelError> {
    server
        .channels
        .delete(&channel.id, &channel.client, Instant::now())?;
    tracing::debug!(channel = %channel.id, "channel deleted by a client");
    Ok(StatusCode::OK)
}

/// `POST /easysetup/report`: a client's failure report, logged. With `X-KeyExchange-Cid`
/// and the id of a client registered on that channel, the channel is deleted: this is
/// how desktop clients abort.
pub(crate) async fn report(
    State(server): State<Arc<ChannelServer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ChannelError> {
    let body = read_limited(body, MAX_REPORT_BYTES).await?;
    let log_line = headers
        .get(&X_KEYEXCHANGE_LOG)
        .map(|value| truncated(value.as_bytes()));
    // Debug formatting escapes control characters, so a report cannot forge log lines.
    tracing::info!(log = ?log_line, report = ?truncated(&body).trim(), "client report");

    let named = header_str(&headers, &X_KEYEXCHANGE_CID)
        .and_then(|raw| ChannelId::parse(raw, server.settings.channel_id_length));
    if let (Some(id), Some(client)) = (named, client_id(&headers)) {
        match server
            .channels
            .delete_reported(&id, &client, Instant::now())
        {
            ReportDeletion::Deleted => {
                tracing::info!(channel = %id, "channel deleted by report");
            }
            ReportDeletion::NotRegistered => {
                tracing::info!(channel = %id, "report from a client not on the channel; ignored");
            }
            ReportDeletion::Unknown => {}
        }
    }
    Ok(StatusCode::OK)
}

/// Refuses anything but a JSON object: the document must parse (into [`IgnoredAny`], which
/// checks the syntax fully without building it) and start with `{`.
fn ensure_json_object(body: &Bytes) -> Result<(), ChannelError> {
    let starts_as_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    if starts_as_object && serde_json::from_slice::<IgnoredAny>(body).is_ok() {
        Ok(())
    } else {
        Err(ChannelError::NotAnObject)
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &header::HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Client-supplied text for the log: lossy UTF-8, at most [`MAX_REPORT_BYTES`] bytes.
fn truncated(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_REPORT_BYTES)]).into_owned()
}
