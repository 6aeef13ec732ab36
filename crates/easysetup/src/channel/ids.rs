//! The identifiers the relay deals in, each validated where it is parsed: channel ids,
//! client ids and ETags.

use std::fmt;

use axum::http::HeaderValue;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The code alphabet: 0–9a–z without `0`, `1`, `l` and `o`, which users misread. Channel
/// ids use it too because they are typed as the last part of the code.
pub(crate) const ALPHABET: &[u8; 32] = b"23456789abcdefghijkmnpqrstuvwxyz";

/// Length of a client id: 128 random bytes as lowercase hex.
const CLIENT_ID_LEN: usize = 256;

/// Hex digits of SHA-256 kept in an ETag. Opaque to clients; 128 bits is plenty to tell
/// two bodies of one channel apart.
const ETAG_LEN: usize = 32;

/// A channel id: characters of [`ALPHABET`], of the configured length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ChannelId(String);

impl ChannelId {
    /// A random id of `length` characters.
    pub(crate) fn random(length: usize) -> Self {
        let mut rng = rand::rng();
        let id = (0..length)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        ChannelId(id)
    }

    /// `raw` if it could be an id this server issued. Anything else cannot name a channel,
    /// so it never reaches the channel map (and never the log verbatim).
    pub(crate) fn parse(raw: &str, length: usize) -> Option<Self> {
        (raw.len() == length && raw.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| ChannelId(raw.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client id (`X-KeyExchange-Id`), kept decoded: 128 bytes instead of 256 characters.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClientId([u8; CLIENT_ID_LEN / 2]);

impl ClientId {
    /// The id in `raw` if it is exactly 256 lowercase hex characters. Uppercase is refused
    /// because the protocol says lowercase, and accepting both would let one device appear
    /// as two different ids.
    pub(crate) fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() != CLIENT_ID_LEN || !raw.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let mut bytes = [0; CLIENT_ID_LEN / 2];
        hex::decode_to_slice(raw, &mut bytes).ok()?;
        Some(ClientId(bytes))
    }
}

impl fmt::Debug for ClientId {
    /// Only a prefix: enough to tell clients apart in a debugger, no more.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({}…)", hex::encode(&self.0[..4]))
    }
}

/// An opaque entity tag: the first 32 hex digits of the body's SHA-256. Sent quoted, as
/// HTTP requires; compared with or without quotes, because old clients echo it verbatim
/// and the reference server's tags were bare md5 hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(String);

impl ETag {
    /// The tag of `body`.
    pub(crate) fn of(body: &[u8]) -> Self {
        let mut digest = hex::encode(Sha256::digest(body));
        digest.truncate(ETAG_LEN);
        ETag(digest)
    }

    /// The tag itself, without quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `ETag` header value: the tag in double quotes.
    pub(crate) fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("\"{}\"", self.0))
            .expect("hex digits are a valid header value")
    }

    /// Whether an `If-Match` / `If-None-Match` value names this tag. The value is a
    /// comma-separated list; each entry may be quoted and weak (`W/"…"`). `*` is not
    /// handled here: its meaning differs between the two headers.
    pub(crate) fn listed_in(&self, header: &str) -> bool {
        header.split(',').any(|entry| {
            let entry = entry.trim();
            let entry = entry.strip_prefix("W/").unwrap_or(entry);
            let entry = entry
                .strip_prefix('"')
                .and_then(|e| e.strip_suffix('"'))
                .unwrap_or(entry);
            entry == self.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_channel_ids_parse_back() {
        for length in [1, 4, 8] {
            let id = ChannelId::random(length);
            assert_eq!(ChannelId::parse(id.as_str(), length), Some(id));
        }
    }

    #[test]
    fn channel_ids_outside_the_alphabet_or_length_are_refused() {
        assert!(ChannelId::parse("a7id", 4).is_some());
        assert!(
            ChannelId::parse("a1id", 4).is_none(),
            "1 is not in the alphabet"
        );
        assert!(ChannelId::parse("A7ID", 4).is_none());
        assert!(ChannelId::parse("a7i", 4).is_none());
        assert!(ChannelId::parse("a7idd", 4).is_none());
    }

    #[test]
    fn client_ids_must_be_256_lowercase_hex() {
        assert!(ClientId::parse("0a".repeat(128).as_bytes()).is_some());
        assert!(ClientId::parse("0A".repeat(128).as_bytes()).is_none());
        assert!(ClientId::parse("0a".repeat(127).as_bytes()).is_none());
        assert!(ClientId::parse(format!("{}0", "0a".repeat(128)).as_bytes()).is_none());
        assert!(ClientId::parse("zz".repeat(128).as_bytes()).is_none());
    }

    #[test]
    fn etags_match_quoted_bare_weak_and_in_lists() {
        let tag = ETag::of(b"{\"a\":1}");
        assert_eq!(tag.0.len(), 32);
        let bare = tag.0.clone();
        assert!(tag.listed_in(&bare));
        assert!(tag.listed_in(&format!("\"{bare}\"")));
        assert!(tag.listed_in(&format!("W/\"{bare}\"")));
        assert!(tag.listed_in(&format!("\"other\", \"{bare}\"")));
        assert!(!tag.listed_in("\"other\""));
        assert!(!tag.listed_in("*"));
        assert_eq!(tag.header_value().to_str().unwrap(), format!("\"{bare}\""));
    }
}
