//! The Sync key hierarchy: where the root secret comes from and how it becomes a
//! [`KeyBundle`].
//!
//! Every encrypted thing in Sync is protected by a *key bundle*: a 256-bit AES key plus a
//! 256-bit HMAC-SHA256 key. The root bundle (the "Sync Key Bundle") only ever decrypts
//! `crypto/keys`; the bulk bundles found there protect every other record. This module
//! derives the root bundle from the two root secrets that have existed:
//!
//! - **Firefox Accounts (Sync 1.5).** The 32-byte account key `kB` goes through a full
//!   HKDF-SHA256 (extract *and* expand, no salt) with the info
//!   `identity.mozilla.com/picl/v1/oldsync`. The same 64 bytes, base64url-encoded, are the
//!   `k` of the Sync scoped key, and a hash of `kB` names the key to the token server
//!   ([`client_state`], [`key_id`]).
//! - **Legacy Sync Key (Sync 1.1).** 16 random bytes shown to the user as 26 characters of
//!   "friendly" base32 ([`SyncKey`]). Its derivation is HKDF-*expand* only, with the raw
//!   16 bytes as the PRK and the normalised account name appended to the info. It cannot
//!   go through [`hkdf::Hkdf::from_prk`], which refuses a PRK shorter than the hash, so the
//!   two expand rounds are written out by hand.
//!
//! Key bytes never reach a log: the `Debug` impls of [`KeyBundle`] and [`SyncKey`] print no
//! key material, and no error in this module carries any.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The HKDF info that turns an FxA `kB` into the Sync Key Bundle.
pub const OLDSYNC_INFO: &str = "identity.mozilla.com/picl/v1/oldsync";

/// The prefix of the legacy HKDF info; the normalised username is appended to it.
pub const LEGACY_INFO_PREFIX: &str = "Sync-AES_256_CBC-HMAC256";

/// Standard-alphabet base64 that accepts input with or without `=` padding.
///
/// Every client writes padded keys, but nothing is gained by refusing an unpadded one.
pub(crate) const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why key material could not be read.
///
/// The variants say what was wrong with the input, never what the input was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key is not valid standard base64.
    #[error("key is not valid base64")]
    BadBase64,
    /// A key decoded to the wrong number of bytes.
    #[error("key is {found} bytes long, expected {expected}")]
    WrongLength {
        /// The length the key must have.
        expected: usize,
        /// The length it had.
        found: usize,
    },
    /// A Sync Key is not 26 characters of friendly base32 (dashes aside).
    #[error("not a valid Sync Key: expected 26 characters of friendly base32")]
    BadSyncKey,
}

/// An AES-256 key and an HMAC-SHA256 key that protect records together.
///
/// `Debug` deliberately prints no key bytes. Equality is checked in constant time.
#[derive(Clone)]
pub struct KeyBundle {
    /// The AES-256-CBC encryption key.
    pub enc: [u8; 32],
    /// The HMAC-SHA256 key, applied to the base64 ciphertext text.
    pub hmac: [u8; 32],
}

impl KeyBundle {
    /// A fresh bundle from the thread-local CSPRNG, as a fresh start puts in `crypto/keys`.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        let mut bundle = KeyBundle {
            enc: [0; 32],
            hmac: [0; 32],
        };
        rng.fill_bytes(&mut bundle.enc);
        rng.fill_bytes(&mut bundle.hmac);
        bundle
    }

    /// Reads the `[enc, hmac]` pair of standard base64 strings that `crypto/keys` stores.
    pub fn from_base64_pair(enc: &str, hmac: &str) -> Result<Self, KeyError> {
        Ok(KeyBundle {
            enc: decode_key32(enc)?,
            hmac: decode_key32(hmac)?,
        })
    }

    /// The `[enc, hmac]` pair as `crypto/keys` stores it: standard base64 with padding,
    /// 44 characters each.
    pub fn to_base64_pair(&self) -> [String; 2] {
        [STANDARD.encode(self.enc), STANDARD.encode(self.hmac)]
    }

    /// The Sync Key Bundle of a Firefox Account: HKDF-SHA256 of `kB` with no salt and the
    /// oldsync info, 64 bytes, split into the encryption and HMAC keys.
    pub fn from_kb(kb: &[u8]) -> Self {
        let okm = oldsync_okm(kb);
        let mut bundle = KeyBundle {
            enc: [0; 32],
            hmac: [0; 32],
        };
        bundle.enc.copy_from_slice(&okm[..32]);
        bundle.hmac.copy_from_slice(&okm[32..]);
        bundle
    }

    /// The key bundle of an Easy Setup (J-PAKE) exchange: HKDF-SHA256 with no salt over the
    /// shared secret `K` (minimal-length unsigned big-endian bytes, no leading zeros) and the
    /// info `Sync-AES_256_CBC-HMAC256`, as Firefox (NSS) and Android derive it.
    pub fn from_jpake_secret(k: &[u8]) -> Self {
        let start = k.iter().position(|b| *b != 0).unwrap_or(k.len());
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(None, &k[start..])
            .expand(LEGACY_INFO_PREFIX.as_bytes(), &mut okm)
            .expect("64 bytes is a valid HKDF-SHA256 output length");
        let mut bundle = KeyBundle {
            enc: [0; 32],
            hmac: [0; 32],
        };
        bundle.enc.copy_from_slice(&okm[..32]);
        bundle.hmac.copy_from_slice(&okm[32..]);
        bundle
    }

    /// The Sync Key Bundle of a legacy (Sync 1.1) account.
    ///
    /// `username` goes into the info exactly as given: pass it through
    /// [`normalize_username`] first when starting from an account name or email address.
    pub fn from_legacy_sync_key(key: &SyncKey, username: &str) -> Self {
        let info = [LEGACY_INFO_PREFIX.as_bytes(), username.as_bytes()].concat();

        // HKDF-Expand with PRK = the 16 raw key bytes: T(1) = HMAC(PRK, info || 1),
        // T(2) = HMAC(PRK, T(1) || info || 2). The key is the HMAC *key* in both rounds;
        // an early Firefox swapped key and message, which is why V4c has obsolete values.
        let mut first = hmac_sha256(&key.0);
        first.update(&info);
        first.update(&[0x01]);
        let enc: [u8; 32] = first.finalize().into_bytes().into();

        let mut second = hmac_sha256(&key.0);
        second.update(&enc);
        second.update(&info);
        second.update(&[0x02]);
        let hmac: [u8; 32] = second.finalize().into_bytes().into();

        KeyBundle { enc, hmac }
    }
}

impl fmt::Debug for KeyBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBundle")
            .field("enc", &"<redacted>")
            .field("hmac", &"<redacted>")
            .finish()
    }
}

impl PartialEq for KeyBundle {
    fn eq(&self, other: &Self) -> bool {
        (self.enc.ct_eq(&other.enc) & self.hmac.ct_eq(&other.hmac)).into()
    }
}

impl Eq for KeyBundle {}

/// The `X-Client-State` header for `kB`: lowercase hex of the first 16 bytes of
/// SHA-256(kB), 32 characters.
pub fn client_state(kb: &[u8]) -> String {
    hex::encode(kb_hash_prefix(kb))
}

/// The `X-KeyID` header and scoped-key `kid` for `kB`:
/// `"<keys_changed_at_ms>-<base64url, no padding, of SHA-256(kB)[0:16]>"`.
pub fn key_id(kb: &[u8], keys_changed_at_ms: u64) -> String {
    format!(
        "{keys_changed_at_ms}-{}",
        URL_SAFE_NO_PAD.encode(kb_hash_prefix(kb))
    )
}

/// The `k` of the Sync scoped-key JWK: base64url without padding of the 64 HKDF bytes
/// that [`KeyBundle::from_kb`] splits.
pub fn scoped_key_k(kb: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(oldsync_okm(kb))
}

/// The account name as the legacy derivation and the 1.1 URLs use it.
///
/// A name made only of `[A-Za-z0-9._-]` is lowercased. Anything else (an email address,
/// typically) becomes the lowercase, unpadded base32 of SHA-1 of its lowercased UTF-8
/// form, which is always 32 characters.
pub fn normalize_username(account: &str) -> String {
    let plain = !account.is_empty()
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        return account.to_ascii_lowercase();
    }
    let digest = Sha1::digest(account.to_lowercase().as_bytes());
    data_encoding::BASE32_NOPAD
        .encode(&digest)
        .to_ascii_lowercase()
}

/// A legacy (Sync 1.1) Sync Key: 16 random bytes the user copies between devices.
///
/// Users see it as 26 characters of "friendly" base32: RFC 4648 base32, lowercased,
/// unpadded, with `l` written `8` and `o` written `9` so that neither can be mistaken for
/// a digit. `Debug` prints no key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncKey([u8; 16]);

impl SyncKey {
    /// Wraps 16 raw key bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SyncKey(bytes)
    }

    /// A new random key.
    pub fn random() -> Self {
        let mut bytes = [0; 16];
        rand::rng().fill_bytes(&mut bytes);
        SyncKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Reads the friendly form, with or without the display dashes and in either case.
    ///
    /// Surrounding whitespace is ignored. The two unused bits of the last character must
    /// be zero, as every encoder writes them.
    pub fn parse(friendly: &str) -> Result<Self, KeyError> {
        let rfc: String = friendly
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| match c {
                '8' => 'L',
                '9' => 'O',
                other => other.to_ascii_uppercase(),
            })
            .collect();
        if rfc.len() != 26 {
            return Err(KeyError::BadSyncKey);
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(rfc.as_bytes())
            .map_err(|_| KeyError::BadSyncKey)?;
        let bytes: [u8; 16] = bytes.try_into().map_err(|_| KeyError::BadSyncKey)?;
        Ok(SyncKey(bytes))
    }

    /// The 26-character friendly form without dashes.
    pub fn to_friendly(&self) -> String {
        data_encoding::BASE32_NOPAD
            .encode(&self.0)
            .to_ascii_lowercase()
            .replace('l', "8")
            .replace('o', "9")
    }

    /// The friendly form with dashes after characters 1, 6, 11, 16 and 21, as shown to
    /// users: `y-4nkps-6yxav-i75xn-uv9ds-r472i`.
    pub fn to_display(&self) -> String {
        let friendly = self.to_friendly();
        let mut out = String::with_capacity(31);
        for (i, c) in friendly.chars().enumerate() {
            if i > 0 && (i - 1) % 5 == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }
}

impl FromStr for SyncKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SyncKey::parse(s)
    }
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncKey(<redacted>)")
    }
}

/// HMAC-SHA256 keyed with `key`.
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// The 64 bytes of HKDF-SHA256(IKM = kB, no salt, oldsync info).
fn oldsync_okm(kb: &[u8]) -> [u8; 64] {
    let mut okm = [0; 64];
    Hkdf::<Sha256>::new(None, kb)
        .expand(OLDSYNC_INFO.as_bytes(), &mut okm)
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// SHA-256(kB)[0:16], which names the key to the token server.
fn kb_hash_prefix(kb: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(kb);
    let mut prefix = [0; 16];
    prefix.copy_from_slice(&digest[..16]);
    prefix
}

/// Decodes one base64 key that must be exactly 32 bytes.
fn decode_key32(b64: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD_LENIENT
        .decode(b64)
        .map_err(|_| KeyError::BadBase64)?;
    let found = bytes.len();
    bytes.try_into().map_err(|_| KeyError::WrongLength {
        expected: 32,
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_key_bundle_prints_no_key_material() {
        let bundle = KeyBundle::random();
        let debug = format!("{bundle:?} {bundle:#?}");
        let [enc, hmac] = bundle.to_base64_pair();
        assert!(!debug.contains(&enc) && !debug.contains(&hmac));
        assert!(!debug.contains(&hex::encode(bundle.enc)));
        assert!(!debug.contains(&hex::encode(bundle.hmac)));
        assert!(!debug.contains(&format!("{:?}", bundle.enc)));
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn debug_of_a_sync_key_prints_no_key_material() {
        let key = SyncKey::random();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.to_friendly()));
        assert!(!debug.contains(&hex::encode(key.as_bytes())));
    }

    #[test]
    fn base64_pair_round_trips_and_is_padded() {
        let bundle = KeyBundle::random();
        let [enc, hmac] = bundle.to_base64_pair();
        assert_eq!(enc.len(), 44);
        assert!(enc.ends_with('='));
        assert_eq!(KeyBundle::from_base64_pair(&enc, &hmac).unwrap(), bundle);
        // Unpadded input is accepted too.
        let unpadded =
            KeyBundle::from_base64_pair(enc.trim_end_matches('='), hmac.trim_end_matches('='));
        assert_eq!(unpadded.unwrap(), bundle);
    }

    #[test]
    fn bad_base64_pairs_are_refused() {
        let good = STANDARD.encode([7u8; 32]);
        assert_eq!(
            KeyBundle::from_base64_pair("not base64!", &good),
            Err(KeyError::BadBase64)
        );
        assert_eq!(
            KeyBundle::from_base64_pair(&good, &STANDARD.encode([7u8; 16])),
            Err(KeyError::WrongLength {
                expected: 32,
                found: 16
            })
        );
    }

    #[test]
    fn random_bundles_differ() {
        assert_ne!(KeyBundle::random(), KeyBundle::random());
        let bundle = KeyBundle::random();
        assert_ne!(bundle.enc, bundle.hmac);
    }

    #[test]
    fn sync_key_friendly_round_trip() {
        let key = SyncKey::random();
        let friendly = key.to_friendly();
        assert_eq!(friendly.len(), 26);
        assert!(!friendly.contains(['l', 'o', '=']));
        assert_eq!(SyncKey::parse(&friendly).unwrap(), key);
        assert_eq!(SyncKey::parse(&key.to_display()).unwrap(), key);
        assert_eq!(
            SyncKey::parse(&format!(" {} ", key.to_display().to_uppercase())).unwrap(),
            key
        );
    }

    #[test]
    fn malformed_sync_keys_are_refused() {
        for bad in [
            "",
            "short",
            "y4nkps6yxavi75xnuv9dsr472",   // 25 characters
            "y4nkps6yxavi75xnuv9dsr472ii", // 27 characters
            "y4nkps6yxavi75xnuv9dsr4720",  // `0` is not base32
            "y4nkps6yxavi75xnuv9dsr472€",
        ] {
            assert_eq!(SyncKey::parse(bad), Err(KeyError::BadSyncKey), "{bad:?}");
        }
    }

    #[test]
    fn plain_usernames_are_lowercased() {
        assert_eq!(normalize_username("St3fan"), "st3fan");
        assert_eq!(
            normalize_username("smqvooxj664hmrkrv6bw4r4vkegjhkns"),
            "smqvooxj664hmrkrv6bw4r4vkegjhkns"
        );
        assert_eq!(normalize_username("a.b_c-d"), "a.b_c-d");
    }

    #[test]
    fn other_usernames_become_sha1_base32() {
        // Computed locally (format-and-pairing.md §2.1), not an official vector.
        assert_eq!(
            normalize_username("johndoe@example.com"),
            "v64aw4knp6ittxnarcpmoi7smokoazsr"
        );
        // The account is lowercased before hashing.
        assert_eq!(
            normalize_username("JohnDoe@Example.com"),
            "v64aw4knp6ittxnarcpmoi7smokoazsr"
        );
        assert_eq!(normalize_username("").len(), 32);
    }

    #[test]
    fn key_id_uses_the_timestamp_and_the_hash() {
        let kb = [0u8; 32];
        let kid = key_id(&kb, 42);
        let (ts, hash) = kid.split_once('-').unwrap();
        assert_eq!(ts, "42");
        assert_eq!(
            hex::encode(URL_SAFE_NO_PAD.decode(hash).unwrap()),
            client_state(&kb)
        );
    }
}
