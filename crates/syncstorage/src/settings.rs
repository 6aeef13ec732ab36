//! What a storage node needs to know at run time. The binary builds this from its layered
//! configuration; tests build it directly.

use std::time::Duration;

use sync_proto::ServerLimits;
use sync_proto::token::MasterSecret;
use url::Url;

/// A storage node's run-time settings.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The URL clients use to reach this node, which tokens must name. Its path is the
    /// prefix under which a reverse proxy publishes the node.
    pub public_url: Url,
    /// The secret shared with the token server.
    pub master_secret: MasterSecret,
    /// Limits published in `info/configuration` and enforced on requests.
    pub limits: ServerLimits,
    /// Largest difference allowed between a Hawk timestamp and the server's clock.
    pub hawk_skew: Duration,
    /// Most nonces remembered for replay detection.
    pub nonce_cache_capacity: usize,
    /// Whether `max_quota_limit` is enforced.
    pub quota_enabled: bool,
    /// How long after expiry a token is still accepted for `info/collections` (Mozilla's
    /// servers accept an expired token there, so that a client can check for changes
    /// before it fetches a new token).
    pub expired_token_grace: Duration,
}

impl NodeSettings {
    /// Settings with the defaults of Mozilla's server, for a node at `public_url`.
    pub fn new(public_url: Url, master_secret: MasterSecret) -> Self {
        NodeSettings {
            public_url,
            master_secret,
            limits: ServerLimits::default(),
            hawk_skew: Duration::from_secs(120),
            nonce_cache_capacity: 1_000_000,
            quota_enabled: false,
            expired_token_grace: Duration::from_secs(2 * 60 * 60),
        }
    }
}
