//! The pairing code the receiver shows and the sender types (§8.1).
//!
//! The code is the 8-character J-PAKE secret followed by the channel id (4 characters on
//! the reference server), shown in groups of four: `abcd-efgh-wxyz`. Both parts use the
//! 32-character alphabet of digits and lowercase letters without `0`, `1`, `l` and `o`, so
//! that nothing in it can be misread. Only the secret enters J-PAKE; the channel id only
//! routes messages.

use rand::RngCore;

use super::JPakeError;

/// The characters of secrets and channel ids: `0-9a-z` without `0`, `1`, `l` and `o`.
pub const SECRET_ALPHABET: &str = "23456789abcdefghijkmnpqrstuvwxyz";

/// The length of the J-PAKE secret in a code.
pub const SECRET_LEN: usize = 8;

/// The shortest channel id a code may carry (the reference server's `cid_len`).
const MIN_CHANNEL_LEN: usize = 4;

/// A fresh 8-character secret: each character is `alphabet[byte * 32 / 256]` of one random
/// byte, 40 bits in all, exactly as Firefox and Android draw it.
pub fn random_secret() -> String {
    let mut bytes = [0u8; SECRET_LEN];
    rand::rng().fill_bytes(&mut bytes);
    let alphabet = SECRET_ALPHABET.as_bytes();
    bytes
        .iter()
        .map(|&b| char::from(alphabet[usize::from(b) * alphabet.len() / 256]))
        .collect()
}

/// Splits a typed code into `(secret, channel id)`.
///
/// Dashes and whitespace are ignored and letters are folded to lowercase, so
/// `"ABCD-EFGH-WXYZ"` and `"abcd efgh wxyz"` both give `("abcdefgh", "wxyz")`. The code
/// must have at least 12 characters, all from [`SECRET_ALPHABET`]; the first 8 are the
/// secret and the rest the channel id.
pub fn split_code(code: &str) -> Result<(String, String), JPakeError> {
    let mut cleaned = String::with_capacity(code.len());
    for c in code.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = c.to_ascii_lowercase();
        if !SECRET_ALPHABET.contains(c) {
            return Err(JPakeError::InvalidCode);
        }
        cleaned.push(c);
    }
    if cleaned.len() < SECRET_LEN + MIN_CHANNEL_LEN {
        return Err(JPakeError::InvalidCode);
    }
    let channel = cleaned.split_off(SECRET_LEN);
    Ok((cleaned, channel))
}

/// Joins a secret and a channel id into the code shown to the user: groups of four
/// characters separated by `-` (`abcd-efgh-wxyz`).
pub fn format_code(secret: &str, channel: &str) -> String {
    let chars: Vec<char> = secret.chars().chain(channel.chars()).collect();
    chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet() {
        assert_eq!(SECRET_ALPHABET.len(), 32);
        for c in ['0', '1', 'l', 'o'] {
            assert!(!SECRET_ALPHABET.contains(c));
        }
        let mut sorted: Vec<char> = SECRET_ALPHABET.chars().collect();
        sorted.dedup();
        assert_eq!(sorted.len(), 32);
    }

    #[test]
    fn random_secrets() {
        let a = random_secret();
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| SECRET_ALPHABET.contains(c)));
        assert_ne!(a, random_secret(), "40 random bits should not repeat");
    }

    #[test]
    fn split_and_format() {
        let want = ("abcdefgh".to_owned(), "wxyz".to_owned());
        for code in [
            "abcdefghwxyz",
            "abcd-efgh-wxyz",
            "ABCD-EFGH-WXYZ",
            " abcd efgh\twxyz ",
            "AbCd-eFgH wXyZ",
        ] {
            assert_eq!(split_code(code).unwrap(), want, "{code:?}");
        }
        assert_eq!(
            split_code("abcdefgh23456").unwrap(),
            ("abcdefgh".to_owned(), "23456".to_owned())
        );
        assert_eq!(format_code("abcdefgh", "wxyz"), "abcd-efgh-wxyz");
        assert_eq!(format_code("abcdefgh", "23456"), "abcd-efgh-2345-6");
        let secret = random_secret();
        let code = format_code(&secret, "k7mn");
        assert_eq!(split_code(&code).unwrap(), (secret, "k7mn".to_owned()));
    }

    #[test]
    fn bad_codes_are_refused() {
        for code in [
            "",
            "abcd-efgh-wxy",  // too short
            "abcd-efgh-wxy0", // 0 is not in the alphabet
            "abcd-efgh-wxy1",
            "abcd-efgl-wxyz",
            "abcd-efgo-wxyz",
            "abcd_efgh_wxyz",
            "abcd-efgh-wxyé",
        ] {
            assert_eq!(split_code(code), Err(JPakeError::InvalidCode), "{code:?}");
        }
    }
}
