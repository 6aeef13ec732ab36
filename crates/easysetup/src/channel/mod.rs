//! The Easy Setup channel relay (Key Exchange API v1.0, spec §8.2): a tiny in-memory
//! mailbox through which two devices swap the J-PAKE messages that move Sync credentials.
//!
//! The relay never sees a secret: every message is protected by J-PAKE, so the relay's job
//! is to be a dumb, short-lived, bounded mailbox and to make tampering fail loudly. Hence:
//! - a channel has at most two clients, and a third client id destroys it, so that the
//!   devices fail clearly instead of talking through an intruder;
//! - channels live `channel_ttl_secs` from creation and serve `max_gets` reads;
//! - memory is bounded (`max_channels`, `max_body_bytes`, `max_tracked_clients`);
//! - per-address limits on creations and failed requests make guessing the 20-bit
//!   channel ids slow, and over a limit an address is refused for `block_secs`.
//!
//! # Serving
//! [`router`] needs the peer address for its rate limits, so it must be served with
//! `into_make_service_with_connect_info::<SocketAddr>()`; otherwise every request is
//! answered 500. Behind a reverse proxy, set `trust_forwarded_for` (see
//! [`ChannelSettings`]).
//!
//! ```no_run
//! # async fn serve() -> std::io::Result<()> {
//! use std::net::SocketAddr;
//! use easysetup::channel::{ChannelServer, ChannelSettings, router};
//!
//! let app = router(ChannelServer::new(ChannelSettings::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```
//!
//! # Routes (under `/easysetup`)
//! | Route | Success | Refusals |
//! |---|---|---|
//! | `GET /new_channel` | 200, JSON string id + `X-KeyExchange-Channel` | 400, 403, 503 |
//! | `GET /{cid}` | 200 body + `ETag` (none while fresh); 304 | 400, 403, 404 |
//! | `PUT /{cid}` | 200 + `ETag` | 400, 403, 404, 412 (+ `ETag`), 413 |
//! | `DELETE /{cid}` | 200 | 400, 403, 404 |
//! | `POST /report` | 200 | 403, 413 |
//!
//! Refusals have the body `{"error": "<reason>"}` (see [`ChannelError`]).

mod error;
mod extract;
mod handlers;
mod ids;
mod limiter;
mod settings;
mod store;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use error::ChannelError;
pub use ids::ETag;
pub use settings::ChannelSettings;

use limiter::RateLimiter;
use store::Channels;

/// The relay's state: the live channels and the rate limiter, each behind its own mutex.
pub struct ChannelServer {
    settings: ChannelSettings,
    channels: Channels,
    limiter: RateLimiter,
}

impl ChannelServer {
    /// A relay with no channels. A `channel_id_length` or `max_tracked_clients` of 0 is
    /// raised to 1.
    pub fn new(mut settings: ChannelSettings) -> Arc<Self> {
        settings.channel_id_length = settings.channel_id_length.max(1);
        settings.max_tracked_clients = settings.max_tracked_clients.max(1);
        Arc::new(ChannelServer {
            channels: Channels::new(&settings),
            limiter: RateLimiter::new(&settings),
            settings,
        })
    }

    /// The limits this relay enforces.
    pub fn settings(&self) -> &ChannelSettings {
        &self.settings
    }
}

/// The relay's route table, under `/easysetup`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` (see the module docs).
pub fn router(server: Arc<ChannelServer>) -> Router {
    Router::new()
        .route("/easysetup/new_channel", get(handlers::new_channel))
        .route("/easysetup/report", post(handlers::report))
        .route(
            "/easysetup/{cid}",
            get(handlers::get)
                .put(handlers::put)
                .delete(handlers::delete),
        )
        .layer(from_fn_with_state(server.clone(), handlers::guard))
        .with_state(server)
}
