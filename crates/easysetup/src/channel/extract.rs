//! Request validation: who is asking (client address and client id), which channel, and
//! the body. Handlers receive only validated values.

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

use super::ChannelServer;
use super::error::ChannelError;
use super::ids::{ChannelId, ClientId};
use super::limiter::ClientKey;

/// The client's own id, fresh for each exchange.
pub(crate) const X_KEYEXCHANGE_ID: HeaderName = HeaderName::from_static("x-keyexchange-id");
/// The id of a new channel, in the creation response.
pub(crate) const X_KEYEXCHANGE_CHANNEL: HeaderName =
    HeaderName::from_static("x-keyexchange-channel");
/// The channel a report is about.
pub(crate) const X_KEYEXCHANGE_CID: HeaderName = HeaderName::from_static("x-keyexchange-cid");
/// A client's log line, sent with a report.
pub(crate) const X_KEYEXCHANGE_LOG: HeaderName = HeaderName::from_static("x-keyexchange-log");
/// The de-facto proxy header naming the original client.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address the rate limits apply to.
///
/// It comes from `ConnectInfo<SocketAddr>`, so the router must be served with
/// `into_make_service_with_connect_info::<SocketAddr>()`; without it every request is a
/// 500 rather than every client silently sharing one budget. With `trust_forwarded_for`,
/// the first `X-Forwarded-For` entry is used when it parses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) ClientKey);

impl FromRequestParts<Arc<ChannelServer>> for ClientAddr {
    type Rejection = ChannelError;

    async fn from_request_parts(
        parts: &mut Parts,
        server: &Arc<ChannelServer>,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, server)
            .await
            .map_err(|_| ChannelError::NoPeerAddress)?;
        let forwarded = server
            .settings
            .trust_forwarded_for
            .then(|| first_forwarded_for(&parts.headers))
            .flatten();
        Ok(ClientAddr(ClientKey::new(forwarded.unwrap_or(peer.ip()))))
    }
}

fn first_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let first = headers
        .get(&X_FORWARDED_FOR)?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    first
        .parse::<IpAddr>()
        .ok()
        .or_else(|| first.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The client id of a request, if it carries a well-formed one.
pub(crate) fn client_id(headers: &HeaderMap) -> Option<ClientId> {
    ClientId::parse(headers.get(&X_KEYEXCHANGE_ID)?.as_bytes())
}

/// A request on `/easysetup/{cid}` by a client now registered on that live channel.
///
/// Registration happens here, before any body is read, so that a third party is caught
/// (and the channel destroyed) however its request ends. A missing or malformed client id
/// on a channel path destroys the channel too, as in the reference server: a party that
/// knows the channel id but not the protocol is not one of the two devices.
pub(crate) struct OnChannel {
    pub(crate) id: ChannelId,
    pub(crate) client: ClientId,
}

impl FromRequestParts<Arc<ChannelServer>> for OnChannel {
    type Rejection = ChannelError;

    async fn from_request_parts(
        parts: &mut Parts,
        server: &Arc<ChannelServer>,
    ) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, server)
            .await
            .map_err(|_| ChannelError::UnknownChannel)?;
        let id = ChannelId::parse(&raw, server.settings.channel_id_length)
            .ok_or(ChannelError::UnknownChannel)?;
        let Some(client) = client_id(&parts.headers) else {
            let channel_deleted = server.channels.destroy(&id);
            return Err(ChannelError::BadClientId { channel_deleted });
        };
        server.channels.admit(&id, &client, Instant::now())?;
        Ok(OnChannel { id, client })
    }
}

/// Reads at most `limit` bytes of `body`. A declared length over the limit is refused
/// before anything is read; an undeclared one as soon as the limit is passed.
pub(crate) async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ChannelError> {
    let too_large = ChannelError::BodyTooLarge { limit };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large);
    }
    let mut buffer = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| ChannelError::UnreadableBody)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(too_large);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buffer))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_for_takes_the_first_parsable_entry() {
        let mut headers = HeaderMap::new();
        assert_eq!(first_forwarded_for(&headers), None);
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static(" 203.0.113.9 , 10.0.0.1"),
        );
        assert_eq!(
            first_forwarded_for(&headers),
            Some("203.0.113.9".parse().unwrap())
        );
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("[2001:db8::1]:443"),
        );
        assert_eq!(
            first_forwarded_for(&headers),
            Some("2001:db8::1".parse().unwrap())
        );
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("unknown"));
        assert_eq!(first_forwarded_for(&headers), None);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let ok = read_limited(Body::from("12345"), 5).await.unwrap();
        assert_eq!(&ok[..], b"12345");
        let refused = read_limited(Body::from("123456"), 5).await.unwrap_err();
        assert!(matches!(refused, ChannelError::BodyTooLarge { limit: 5 }));
    }
}
