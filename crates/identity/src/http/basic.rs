//! HTTP Basic credentials (RFC 7617), read by hand: this is the only header the
//! provider needs to parse, which does not justify a typed-headers dependency.

use std::fmt;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::TokenError;

/// An account name and password from an `Authorization: Basic` header.
pub(super) struct Credentials {
    pub(super) name: String,
    pub(super) password: String,
}

impl Credentials {
    /// Reads the credentials, refusing a missing or malformed header with 401.
    pub(super) fn from_headers(headers: &HeaderMap) -> Result<Self, TokenError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| TokenError::bad_credentials("no Authorization header"))?;
        Self::parse(value.as_bytes())
            .ok_or_else(|| TokenError::bad_credentials("malformed Basic credentials"))
    }

    fn parse(value: &[u8]) -> Option<Self> {
        let value = std::str::from_utf8(value).ok()?;
        let (scheme, encoded) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (name, password) = decoded.split_once(':')?;
        Some(Credentials {
            name: name.to_owned(),
            password: password.to_owned(),
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn reads_name_and_password() {
        let credentials = Credentials::parse(basic("alice:pa:ss word").as_bytes()).unwrap();
        assert_eq!(credentials.name, "alice");
        assert_eq!(
            credentials.password, "pa:ss word",
            "only the first colon splits"
        );
        let lower = format!("basic {}", STANDARD.encode("bob:"));
        let credentials = Credentials::parse(lower.as_bytes()).unwrap();
        assert_eq!(
            (credentials.name.as_str(), credentials.password.as_str()),
            ("bob", "")
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        let bearer = format!("Bearer {}", STANDARD.encode("alice:pw"));
        let no_colon = basic("alice");
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'x']));
        for value in [
            "",
            "Basic",
            "Basic !!!",
            bearer.as_str(),
            no_colon.as_str(),
            not_utf8.as_str(),
        ] {
            assert!(Credentials::parse(value.as_bytes()).is_none(), "{value:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let credentials = Credentials::parse(basic("alice:hunter2").as_bytes()).unwrap();
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
