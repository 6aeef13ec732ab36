//! The HTTP layers every service shares when `serve` runs them: CORS, response compression,
//! and keeping kept-alive connections usable ([`drain`]). Each service's own router knows
//! nothing of them; they wrap the merged router once.

pub mod drain;

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

/// Cross-origin access for web clients (extensions, web apps, Kinto Admin on another origin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call the services from a browser: `["*"]` for any (the default of
    /// Mozilla's storage server and of Kinto), `[]` for none, or exact origins
    /// (`https://admin.example.org`). From the environment, one string of origins
    /// separated by spaces or commas, as Kinto reads `cors_origins`.
    #[serde(deserialize_with = "settings_server::settings::principals")]
    pub allowed_origins: Vec<String>,
    /// How long, in seconds, a browser may keep a preflight's answer.
    pub max_age: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: vec!["*".into()],
            max_age: 3600,
        }
    }
}

/// Response headers that the services' browser clients read, exposed to scripts.
/// Kinto's clients read the first group, Sync's the second.
const EXPOSED_HEADERS: [&str; 16] = [
    "etag",
    "last-modified",
    "next-page",
    "total-objects",
    "total-records",
    "backoff",
    "retry-after",
    "alert",
    "content-length",
    "x-last-modified",
    "x-weave-timestamp",
    "x-weave-records",
    "x-weave-next-offset",
    "x-weave-quota-remaining",
    "x-weave-backoff",
    "x-weave-alert",
];

/// Bodies smaller than this are sent as they are: compressing them saves nothing.
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// The CORS layer from the configuration; `None` when no origin is allowed.
pub fn cors_layer(config: &CorsConfig) -> anyhow::Result<Option<CorsLayer>> {
    if config.allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = config
            .allowed_origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                    anyhow::anyhow!("cors.allowed_origins: {origin:?} is not an origin")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let exposed: Vec<HeaderName> = EXPOSED_HEADERS
        .iter()
        .map(|name| HeaderName::from_static(name))
        .collect();
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            // Every service authenticates by header (Hawk, Bearer, Basic), never by cookie,
            // so any header a client asks for may be sent.
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(ExposeHeaders::list(exposed))
            .max_age(Duration::from_secs(config.max_age)),
    ))
}

/// gzip or brotli, as the client asks (`Accept-Encoding`), for bodies worth compressing.
pub fn compression_layer() -> CompressionLayer<impl Predicate> {
    let worth_it = SizeAbove::new(COMPRESS_ABOVE_BYTES)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(worth_it)
}
