//! The token server's settings and shared state.

use std::sync::Arc;

use sync_proto::token::MasterSecret;
use tokenserver_store::TokenStore;

use crate::verifier::Verifier;

/// Run-time settings of the token server.
#[derive(Debug, Clone)]
pub struct TokenServerSettings {
    /// The secret shared with the storage nodes.
    pub master_secret: MasterSecret,
    /// Token lifetime in seconds (clients may ask for less).
    pub token_duration: u64,
    /// Whether users never seen before get a node.
    pub allow_new_users: bool,
    /// `node_type` of the answer (telemetry only).
    pub node_type: String,
    /// Domain of the `<uid>@<domain>` identity under which users are stored.
    pub email_domain: String,
    /// Key of the metrics hashes of account uids.
    pub metrics_hash_secret: Vec<u8>,
}

impl TokenServerSettings {
    /// The reference's defaults, with the metrics key derived from the master secret.
    pub fn new(master_secret: MasterSecret, metrics_hash_secret: Vec<u8>) -> Self {
        TokenServerSettings {
            master_secret,
            token_duration: 3600,
            allow_new_users: true,
            node_type: "sqlite".into(),
            email_domain: "api.accounts.firefox.com".into(),
            metrics_hash_secret,
        }
    }
}

/// Shared by all requests.
#[derive(Clone)]
pub struct TokenServerState {
    /// Users and nodes.
    pub store: Arc<dyn TokenStore>,
    /// Access-token verification.
    pub verifier: Arc<Verifier>,
    /// Settings.
    pub settings: Arc<TokenServerSettings>,
}
