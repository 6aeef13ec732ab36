//! Password hashing with argon2id.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=…`), which carry their own salt and
//! parameters, so stronger defaults in a later release still verify old hashes. The
//! defaults are the `argon2` crate's: argon2id, 19 MiB, 2 passes, 1 lane (the OWASP
//! recommendation).
//!
//! A login for an unknown account, or one without a password, still runs a full
//! verification against a dummy hash, so that response times do not reveal which names
//! exist.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::IdentityError;

/// Hash of a random password nobody knows, with the default parameters, for `burn`.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let secret: [u8; 32] = rand::random();
    hash(&hex::encode(secret)).unwrap_or_default()
});

/// Hashes `password` with a fresh random salt, as a PHC string.
pub(crate) fn hash(password: &str) -> Result<String, IdentityError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| IdentityError::Password(error.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A hash that does not parse matches
/// nothing.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(error) => {
            tracing::error!(%error, "stored password hash does not parse; refusing the login");
            burn(password);
            false
        }
    }
}

/// Spends the time a real verification would, for a login that must fail anyway.
pub(crate) fn burn(password: &str) {
    // The dummy hash always parses; if it somehow did not, `verify` would come back here.
    if let Ok(parsed) = PasswordHash::new(&DUMMY_HASH) {
        let _ = Argon2::default().verify_password(password.as_bytes(), &parsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_salted_argon2id_without_the_password() {
        let first = hash("correct horse").unwrap();
        let second = hash("correct horse").unwrap();
        assert!(first.starts_with("$argon2id$v=19$"), "{first}");
        assert!(!first.contains("correct horse"));
        assert_ne!(first, second, "each hash has its own salt");
    }

    #[test]
    fn verifies_only_the_right_password() {
        let phc = hash("s3cret").unwrap();
        assert!(verify("s3cret", &phc));
        assert!(!verify("s3cret ", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn malformed_hash_matches_nothing() {
        assert!(!verify("anything", "not a phc string"));
        assert!(!verify("", ""));
    }

    #[test]
    fn dummy_hash_is_real() {
        assert!(DUMMY_HASH.starts_with("$argon2id$"));
        burn("whatever");
    }
}
