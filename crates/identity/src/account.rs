//! What an account is, and which names are allowed.
//!
//! Names are what people type at the CLI and into Basic auth, so they are restricted to
//! characters that need no quoting in a shell, a URL or a log line. They are matched
//! exactly, case included.

use crate::IdentityError;

/// Longest allowed account name, in characters.
const MAX_NAME_LEN: usize = 64;

/// A local account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name, unique.
    pub name: String,
    /// The stable account id: 32 lowercase hex characters, the JWT `sub`. It is what the
    /// token server keys users on, so it never changes, even if the name could.
    pub uid: String,
    /// Milliseconds since the Unix epoch of the last credential change, the JWT
    /// `fxa-generation`. The token server refuses tokens older than the newest generation it
    /// has seen.
    pub generation: u64,
    /// Whether the account can sign in with a password over HTTP.
    pub has_password: bool,
    /// Seconds since the Unix epoch when the account was created.
    pub created_at: u64,
}

/// Checks that `name` is 1 to 64 characters of `A-Z a-z 0-9 . _ @ -`.
pub(crate) fn validate_name(name: &str) -> Result<(), IdentityError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(IdentityError::InvalidName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_allowed_names() {
        for name in [
            "a",
            "alice",
            "Alice.Smith",
            "bob_2",
            "carol@example.org",
            "x-y",
            "0",
        ] {
            assert!(validate_name(name).is_ok(), "{name:?} should be allowed");
        }
        assert!(validate_name(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_other_names() {
        let too_long = "a".repeat(65);
        for name in [
            "",
            too_long.as_str(),
            "has space",
            "colon:name",
            "slash/name",
            "tab\tname",
            "new\nline",
            "é",
            "quote\"",
            "semi;colon",
        ] {
            assert!(
                matches!(validate_name(name), Err(IdentityError::InvalidName(_))),
                "{name:?} should be refused"
            );
        }
    }
}
