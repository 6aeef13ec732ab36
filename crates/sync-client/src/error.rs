//! What can go wrong for a Sync client, in terms a caller can act on.

use crate::crypto::CryptoError;

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The network failed or the server could not be reached.
    #[error("network error: {0}")]
    Network(String),
    /// The token server refused to issue a token (its `status` string, e.g.
    /// `invalid-generation`).
    #[error("the token server refused: {status} ({http})")]
    TokenServer {
        /// HTTP status.
        http: u16,
        /// The body's `status`.
        status: String,
    },
    /// The identity provider refused the login.
    #[error("login refused: {0}")]
    Login(String),
    /// The storage node answered with an unexpected status.
    #[error("storage node answered {status} to {what}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The request, for the message.
        what: String,
    },
    /// Another client wrote first (412): re-download, merge and retry.
    #[error("the collection changed on the server since it was read")]
    Conflict,
    /// The server asked clients to back off; retry after this many seconds.
    #[error("the server asked to back off for {0} s")]
    Backoff(u64),
    /// A Tier 2 client cannot go on now: keys or meta/global are missing or unusable.
    /// Nothing was changed on the server; retry later (after a Tier 1 client set it up).
    #[error("not ready, retry later: {0}")]
    NotReady(String),
    /// The server's storage format is newer than this client understands.
    #[error("the server uses storage version {0}; this client needs an upgrade")]
    UpgradeRequired(u32),
    /// `crypto/keys` does not decrypt with this account's key: the wrong key (kB), not
    /// something to repair by generating new keys.
    #[error("crypto/keys does not decrypt with this account's key (wrong kB?)")]
    WrongKey,
    /// A record failed its HMAC or could not be decrypted.
    #[error("record {id} of {collection}: {error}")]
    Record {
        /// The collection.
        collection: String,
        /// The record id.
        id: String,
        /// Why.
        error: CryptoError,
    },
    /// A Tier 2 client tried to write the `crypto` collection.
    #[error("a Tier 2 client never writes the crypto collection")]
    CryptoWriteForbidden,
    /// Something the server sent was not what the protocol says.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        ClientError::Network(error.to_string())
    }
}
