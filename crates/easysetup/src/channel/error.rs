//! The relay's one error type and the one place it becomes a response.
//!
//! Bodies are a small `{"error": "<reason>"}` with a stable snake_case reason; the longer
//! `Display` text goes to the log only. Every refusal is logged here, at info (error for
//! a 500), and never with a channel body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ids::ETag;

/// Why the relay refused a request.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// 400: `X-KeyExchange-Id` missing or not 256 lowercase hex characters. On a channel
    /// path the channel is deleted as well (`channel_deleted`), as the reference does.
    #[error("missing or malformed X-KeyExchange-Id (channel deleted: {channel_deleted})")]
    BadClientId {
        /// Whether a live channel was deleted because of it.
        channel_deleted: bool,
    },
    /// 400: a third client id used a channel; the channel has been deleted.
    #[error("a third client id used the channel; channel deleted")]
    ThirdClient,
    /// 400: a PUT body that is not a JSON object.
    #[error("PUT body is not a JSON object")]
    NotAnObject,
    /// 400: the request body could not be read.
    #[error("request body could not be read")]
    UnreadableBody,
    /// 403: the client address is over a limit and blocked.
    #[error("client address blocked: {reason}")]
    Blocked {
        /// Which limit, for the log.
        reason: &'static str,
        /// Seconds until the block ends.
        retry_after_secs: u64,
    },
    /// 404: no such channel, or it expired or was deleted.
    #[error("unknown or expired channel")]
    UnknownChannel,
    /// 412: the PUT's `If-Match` / `If-None-Match` did not hold. Carries the ETag of the
    /// body the client tried to PUT, so that a retried PUT that had already landed can be
    /// recognised as success.
    #[error("PUT precondition failed")]
    PreconditionFailed {
        /// ETag of the refused body.
        attempted: ETag,
    },
    /// 413: a body over the configured limit.
    #[error("body over {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 503: `max_channels` channels are alive.
    #[error("channel limit reached")]
    Full,
    /// 503: no unused channel id was found in 100 draws.
    #[error("no free channel id after 100 tries")]
    NoFreeId,
    /// 500: the router was served without `ConnectInfo<SocketAddr>`, so the rate limits
    /// cannot tell clients apart. A deployment bug, never the client's fault.
    #[error("no peer address: serve with into_make_service_with_connect_info::<SocketAddr>()")]
    NoPeerAddress,
}

/// Marks a response that counts toward `failed_requests_per_minute`; the guard middleware
/// looks for it instead of guessing from status codes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailedRequest;

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
}

impl ChannelError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ChannelError::BadClientId { .. }
            | ChannelError::ThirdClient
            | ChannelError::NotAnObject
            | ChannelError::UnreadableBody => StatusCode::BAD_REQUEST,
            ChannelError::Blocked { .. } => StatusCode::FORBIDDEN,
            ChannelError::UnknownChannel => StatusCode::NOT_FOUND,
            ChannelError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ChannelError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ChannelError::Full | ChannelError::NoFreeId => StatusCode::SERVICE_UNAVAILABLE,
            ChannelError::NoPeerAddress => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable reason written in the body.
    fn reason(&self) -> &'static str {
        match self {
            ChannelError::BadClientId { .. } => "bad_client_id",
            ChannelError::ThirdClient => "too_many_clients",
            ChannelError::NotAnObject => "body_not_a_json_object",
            ChannelError::UnreadableBody => "unreadable_body",
            ChannelError::Blocked { .. } => "blocked",
            ChannelError::UnknownChannel => "unknown_channel",
            ChannelError::PreconditionFailed { .. } => "precondition_failed",
            ChannelError::BodyTooLarge { .. } => "body_too_large",
            ChannelError::Full => "server_full",
            ChannelError::NoFreeId => "no_free_channel_id",
            ChannelError::NoPeerAddress => "internal_error",
        }
    }

    /// Whether this refusal counts toward `failed_requests_per_minute`: the answers a
    /// channel-id guesser or a misbehaving client collects (404, 400, 412).
    fn counts_as_failure(&self) -> bool {
        matches!(
            self.status(),
            StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED
        )
    }
}

impl IntoResponse for ChannelError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, ChannelError::Full | ChannelError::NoFreeId)
        {
            tracing::error!(status = status.as_u16(), reason = %self, "easysetup request failed");
        } else {
            tracing::info!(status = status.as_u16(), reason = %self, "easysetup request refused");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.reason(),
            }),
        )
            .into_response();
        match &self {
            ChannelError::PreconditionFailed { attempted } => {
                response
                    .headers_mut()
                    .insert(header::ETAG, attempted.header_value());
            }
            ChannelError::Blocked {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        if self.counts_as_failure() {
            response.extensions_mut().insert(FailedRequest);
        }
        response
    }
}
