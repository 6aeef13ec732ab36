//! The crate's error types, one per kind of caller.
//!
//! They are kept apart on purpose because each is handled by a different party:
//! [`CanonicalError`] is the server refusing data it could never sign consistently (a
//! client-facing 400), [`VerifyError`] is a client recording *why* a collection failed
//! verification (telemetry and the retry policy both depend on the reason), and
//! [`PkiError`] is an operator's key or certificate material being unusable (a startup
//! failure). Folding them into one enum would force every caller to match on variants
//! that can never occur for it.

use thiserror::Error;

/// A value cannot be written as canonical JSON, or a record set cannot be turned into a
/// signed payload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CanonicalError {
    /// The value contains a floating-point number.
    ///
    /// Remote Settings implementations disagree on how to write floats (the server's
    /// canonicaljson-rs writes `1.5E0`, Firefox writes `1.5`), so a signature over a
    /// float would verify in some clients and not in others. The reference server refuses
    /// floats in records; we do the same.
    #[error("floating-point number {0} is not allowed in signed data")]
    Float(String),
    /// A record is not a JSON object, or has no string `id` to sort it by.
    #[error("invalid record: {0}")]
    BadRecord(String),
}

/// Why a content signature or its certificate chain was refused.
///
/// Each variant is a distinct, stable reason a client can report (see
/// [`VerifyError::reason`]); the ones coming from path validation are mapped from
/// `rustls-webpki` errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// Input that could not be parsed: PEM, DER, base64, lengths, an unsupported key type,
    /// an unusable signer name.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// No certificate of the chain (after the end entity) has the pinned SHA-256.
    #[error("no certificate in the chain matches the pinned root")]
    WrongRoot,
    /// A certificate of the chain expired before the verification time.
    #[error("certificate expired at unix time {not_after}")]
    Expired {
        /// The expired certificate's notAfter, in seconds since the Unix epoch.
        not_after: u64,
    },
    /// A certificate of the chain is not valid yet at the verification time.
    #[error("certificate not valid before unix time {not_before}")]
    NotYetValid {
        /// The certificate's notBefore, in seconds since the Unix epoch.
        not_before: u64,
    },
    /// No path could be built from the end entity to the pinned root (a missing or foreign
    /// intermediate).
    #[error("no chain from the end entity to the pinned root")]
    UnknownIssuer,
    /// A path was found but is invalid for another reason (a bad certificate signature, a
    /// CA used as end entity, a path length violation, an unsupported critical extension…).
    #[error("invalid certificate chain: {0}")]
    BadChain(String),
    /// A certificate of the path lacks the code-signing extended key usage.
    #[error("certificate is not valid for code signing")]
    NotCodeSigning,
    /// The end entity's names fall outside an issuer's name constraints.
    #[error("certificate violates its issuer's name constraints")]
    NameConstraints,
    /// The end entity is not valid for the expected signer name (DNS SAN).
    #[error("certificate is not valid for signer {0}")]
    WrongSignerName(String),
    /// The signature does not match the message and the end entity's key.
    #[error("signature does not match")]
    BadSignature,
    /// The records could not be serialized into the signed payload.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl VerifyError {
    /// A short, stable, machine-readable label for the failure, suitable for metrics and
    /// logs (`expired_cert`, `bad_signature`, …). Unlike the `Display` text it never carries
    /// data.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::WrongRoot => "wrong_root",
            Self::Expired { .. } => "expired_cert",
            Self::NotYetValid { .. } => "cert_not_valid_yet",
            Self::UnknownIssuer => "unknown_issuer",
            Self::BadChain(_) => "bad_chain",
            Self::NotCodeSigning => "not_code_signing",
            Self::NameConstraints => "name_constraints",
            Self::WrongSignerName(_) => "wrong_signer_name",
            Self::BadSignature => "bad_signature",
            Self::Canonical(_) => "bad_data",
        }
    }
}

/// Key or certificate material could not be read or created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PkiError {
    /// A private key could not be parsed, or is not a P-384 key.
    #[error("invalid key: {0}")]
    Key(String),
    /// A certificate could not be parsed or generated.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The signer name is not a valid DNS name.
    #[error("invalid signer name {0:?}")]
    SignerName(String),
    /// The requested validity period is empty or out of range.
    #[error("invalid validity period: {0}")]
    Validity(String),
}
