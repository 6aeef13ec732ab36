//! The crate's one error type.
//!
//! Messages are written for the operator running the CLI; the HTTP layer never shows them
//! to a client as they are, because they can name accounts.

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `add_account` with a name that is already taken.
    #[error("an account named {0:?} already exists")]
    AccountExists(String),
    /// The named account does not exist.
    #[error("no account named {0:?}")]
    NoSuchAccount(String),
    /// The name is not 1 to 64 characters of `A-Z a-z 0-9 . _ @ -`.
    #[error(
        "invalid account name {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@', '-'"
    )]
    InvalidName(String),
    /// An empty password was given; use no password instead.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// The scope is empty or is not a space-separated list of OAuth scope tokens.
    #[error("invalid scope {0:?}: expected space-separated scope tokens")]
    InvalidScope(String),
    /// A token lifetime under one second.
    #[error("the token lifetime must be at least one second")]
    InvalidDuration,
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Password(String),
    /// The accounts database could not be opened, migrated, read or written.
    #[error("accounts database: {0}")]
    Storage(String),
    /// The signing key could not be loaded, created or used.
    #[error("signing key: {0}")]
    Key(String),
}

impl From<rusqlite::Error> for IdentityError {
    fn from(error: rusqlite::Error) -> Self {
        IdentityError::Storage(error.to_string())
    }
}
