//! Content-signature verification of a whole collection: the signatures of its metadata
//! tried in turn (key agility), each chain fetched from its x5u, cached once it has
//! verified, and validated against the pinned root with the `content-signature` crate.

use content_signature::VerifyError;
use serde_json::{Map, Value};
use url::Url;

use crate::local::{LocalError, LocalStore, Records};
use crate::remote::{Remote, RemoteError};

/// Why a collection's data is not trusted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntegrityError {
    /// The metadata carries no signature (an unsigned server, or a stripped response).
    #[error("the collection metadata carries no signature")]
    MissingSignature,
    /// The x5u chain could not be fetched.
    #[error("certificate chain {x5u}: {error}")]
    ChainFetch {
        /// Where it was fetched from.
        x5u: String,
        /// What failed.
        error: RemoteError,
    },
    /// The chain or the signature was refused.
    #[error("{0}")]
    Refused(#[from] VerifyError),
    /// The local database failed while reading or caching the chain.
    #[error("{0}")]
    Local(String),
}

impl IntegrityError {
    /// A short stable label (`bad_signature`, `expired_cert`, `missing_signature`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            IntegrityError::MissingSignature => "missing_signature",
            IntegrityError::ChainFetch { .. } => "chain_fetch",
            IntegrityError::Refused(error) => error.reason(),
            IntegrityError::Local(_) => "local_error",
        }
    }
}

impl From<LocalError> for IntegrityError {
    fn from(error: LocalError) -> Self {
        IntegrityError::Local(error.to_string())
    }
}

/// What a signature is checked against.
#[derive(Debug, Clone)]
pub struct Trust {
    /// SHA-256 of the root certificate's DER.
    pub root_sha256: [u8; 32],
    /// The signer name the end entity must carry.
    pub signer_name: String,
}

/// One `{x5u, signature}` of the metadata.
struct SignatureRef {
    x5u: String,
    signature: String,
}

/// The most signatures tried for one collection: key agility needs two or three, and each
/// may cost a chain download, so a tampered list cannot make the client fetch without end.
pub const MAX_SIGNATURES: usize = 4;

/// The signatures to try: `signatures` (the key-agility list) if present, else
/// `signature`; at most [`MAX_SIGNATURES`].
fn signature_refs(metadata: &Map<String, Value>) -> Vec<SignatureRef> {
    let read = |value: &Value| {
        Some(SignatureRef {
            x5u: value.get("x5u")?.as_str()?.to_owned(),
            signature: value.get("signature")?.as_str()?.to_owned(),
        })
    };
    let list: Vec<SignatureRef> = metadata
        .get("signatures")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter_map(read).take(MAX_SIGNATURES).collect())
        .unwrap_or_default();
    if !list.is_empty() {
        return list;
    }
    metadata
        .get("signature")
        .and_then(read)
        .into_iter()
        .collect()
}

/// Verifies `records` at `timestamp` against the signatures of `metadata`. Succeeds when
/// one signature verifies; otherwise returns the first failure.
pub async fn verify_collection(
    remote: &Remote,
    local: &LocalStore,
    trust: &Trust,
    records: &Records,
    timestamp: u64,
    metadata: &Map<String, Value>,
    now_unix_secs: u64,
) -> Result<(), IntegrityError> {
    let payload = content_signature::signed_payload_of(records.values(), timestamp)
        .map_err(content_signature::VerifyError::from)?;
    let message = content_signature::signed_message(&payload);
    drop(payload);
    let refs = signature_refs(metadata);
    let mut first_error = None;
    for signature in &refs {
        match verify_one(remote, local, trust, &message, signature, now_unix_secs).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::debug!(x5u = %signature.x5u, reason = error.reason(), "signature refused");
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(IntegrityError::MissingSignature))
}

/// One signature: with the cached chain if it still validates, else (none cached, or the
/// cached one expired or was damaged) with a freshly fetched chain, cached only once it
/// has validated. When the signature does not match a cached chain, the chain is fetched
/// once more in case it was replaced at the same URL; if it is the same, the refusal
/// stands.
async fn verify_one(
    remote: &Remote,
    local: &LocalStore,
    trust: &Trust,
    message: &[u8],
    signature: &SignatureRef,
    now: u64,
) -> Result<(), IntegrityError> {
    let check = |pem: &str| -> Result<(), IntegrityError> {
        let leaf =
            content_signature::verify_chain(pem, &trust.root_sha256, &trust.signer_name, now)?;
        leaf.verify_signature(message, &signature.signature)?;
        Ok(())
    };
    let cached = local.chain(&signature.x5u)?;
    if let Some(pem) = &cached {
        match check(pem) {
            Ok(()) => return Ok(()),
            Err(error) => tracing::debug!(
                reason = error.reason(),
                "cached chain refused; fetching it again"
            ),
        }
    }
    let pem = fetch_chain(remote, &signature.x5u).await?;
    if cached.as_deref() == Some(pem.as_str()) {
        // Same chain: its verdict stands; it stays cached only if it still validates.
        if content_signature::verify_chain(&pem, &trust.root_sha256, &trust.signer_name, now)
            .is_err()
        {
            local.drop_chain(&signature.x5u)?;
        }
        return check(&pem);
    }
    match check(&pem) {
        Ok(()) => {
            local.set_chain(&signature.x5u, &pem)?;
            Ok(())
        }
        Err(error) => Err(error),
    }
}

async fn fetch_chain(remote: &Remote, x5u: &str) -> Result<String, IntegrityError> {
    let fetch_error = |error| IntegrityError::ChainFetch {
        x5u: x5u.to_owned(),
        error,
    };
    let url = Url::parse(x5u)
        .or_else(|_| remote.base().join(x5u))
        .map_err(|e| fetch_error(RemoteError::Parse(format!("x5u: {e}"))))?;
    let fetched = remote.get(url).await.map_err(|f| fetch_error(f.error))?;
    String::from_utf8(fetched.body)
        .map_err(|_| fetch_error(RemoteError::Parse("the chain is not text".into())))
}
