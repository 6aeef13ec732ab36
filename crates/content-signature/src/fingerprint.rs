//! Root pins as written in Mozilla's configuration: the SHA-256 of a certificate's DER, as
//! upper-case hex bytes separated by colons (`3C:01:44:…:C7:45`).
//!
//! Clients pin the content-signing root by this hash instead of shipping the certificate,
//! and operators copy it between the server's output and client settings, so the exact
//! text form matters.

use sha2::{Digest, Sha256};

use crate::VerifyError;

/// SHA-256 of `der`.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Formats a hash as colon-separated upper-case hex (`3C:01:…`).
pub fn format(hash: &[u8; 32]) -> String {
    let mut out = String::with_capacity(32 * 3 - 1);
    for (i, byte) in hash.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// Parses a colon-separated hex SHA-256 (either case). Fails with
/// [`VerifyError::Malformed`] unless it is exactly 32 two-digit bytes.
pub fn parse(text: &str) -> Result<[u8; 32], VerifyError> {
    let malformed = || VerifyError::Malformed(format!("root hash {text:?} is not 32 hex bytes"));
    let mut hash = [0u8; 32];
    let mut parts = text.trim().split(':');
    for byte in hash.iter_mut() {
        let part = parts.next().ok_or_else(malformed)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| malformed())?;
    }
    if parts.next().is_some() {
        return Err(malformed());
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONPROD: &str = "3C:01:44:6A:BE:90:36:CE:A9:A0:9A:CA:A3:A5:20:AC:62:8F:20:A7:AE:32:CE:86:1C:B2:EF:B7:0F:A0:C7:45";

    #[test]
    fn round_trip() {
        let hash = parse(NONPROD).unwrap();
        assert_eq!(hash[0], 0x3C);
        assert_eq!(hash[31], 0x45);
        assert_eq!(format(&hash), NONPROD);
        assert_eq!(parse(&NONPROD.to_lowercase()).unwrap(), hash);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "meh!",
            "3C:rr:44",
            &NONPROD[3..],
            &format!("{NONPROD}:00"),
            "3C01",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
