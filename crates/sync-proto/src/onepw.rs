//! Mozilla's onepw protocol as both ends compute it: the client's password stretch, the
//! keys every token derives, and the `account/keys` bundle.
//!
//! The client half ([`ClientKeys`]) is what Firefox's sign-in page and PyFxA run: the
//! password is stretched with PBKDF2 (salted with the email as typed at sign-up) and split
//! by HKDF into `authPW`, which travels, and `unwrapBKey`, which never leaves the client;
//! `kB = wrapKb ⊕ unwrapBKey`. Tokens (session, key fetch, password change) are 32 random
//! bytes; both sides derive `id ‖ authKey ‖ bundleKey` from them by HKDF ([`TokenKeys`]).
//! The accounts service (its server half, the argon2id verifier, is in `accounts::onepw`),
//! the Sync client's sign-in and the tests all use this one copy.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every HKDF info string and PBKDF2 salt of the protocol.
pub const NAMESPACE: &str = "identity.mozilla.com/picl/v1/";

/// The HKDF name of the `account/keys` bundle.
pub const KEYS_NAMESPACE: &str = "account/keys";

/// PBKDF2 rounds of the v1 quick stretch.
const QUICK_STRETCH_ROUNDS: u32 = 1000;

/// The kinds of token the protocol hands out; each derives its keys under its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A signed-in session (`sessionToken`).
    Session,
    /// A single-use right to fetch the key bundle (`keyFetchToken`).
    KeyFetch,
    /// A single-use right to finish a password change (`passwordChangeToken`).
    PasswordChange,
}

impl TokenKind {
    /// The HKDF name of the token kind, as the protocol spells it.
    pub fn hkdf_name(self) -> &'static str {
        match self {
            TokenKind::Session => "sessionToken",
            TokenKind::KeyFetch => "keyFetchToken",
            TokenKind::PasswordChange => "passwordChangeToken",
        }
    }

    /// The prefix of the `Bearer <prefix>_<id>` scheme of newer clients.
    pub fn bearer_prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "fxs",
            TokenKind::KeyFetch => "fxk",
            TokenKind::PasswordChange => "fxpc",
        }
    }

    /// The kind a name of [`TokenKind::hkdf_name`] stands for.
    pub fn from_hkdf_name(name: &str) -> Option<Self> {
        [Self::Session, Self::KeyFetch, Self::PasswordChange]
            .into_iter()
            .find(|kind| kind.hkdf_name() == name)
    }
}

/// HKDF-SHA256 with an empty salt and `NAMESPACE + name` as info, `N` bytes long.
pub fn derive<const N: usize>(ikm: &[u8], name: &str) -> [u8; N] {
    let mut out = [0u8; N];
    derive_into(ikm, name, &mut out);
    out
}

/// As [`derive`], into a buffer of any length (at most 8160 bytes).
pub fn derive_into(ikm: &[u8], name: &str, out: &mut [u8]) {
    let info = format!("{NAMESPACE}{name}");
    Hkdf::<Sha256>::new(Some(&[]), ikm)
        .expand(info.as_bytes(), out)
        .expect("HKDF output lengths used here are far below the limit");
}

/// The keys both sides derive from a token.
pub struct TokenKeys {
    /// The public id (hex in headers); the server looks tokens up by its SHA-256.
    pub id: [u8; 32],
    /// The Hawk MAC key.
    pub auth_key: [u8; 32],
    /// The key of encrypted response bundles.
    pub bundle_key: [u8; 32],
}

impl TokenKeys {
    /// Derives the keys of `token` of kind `kind`.
    pub fn derive(token: &[u8; 32], kind: TokenKind) -> Self {
        let material: [u8; 96] = derive(token, kind.hkdf_name());
        let part = |i: usize| -> [u8; 32] {
            material[i * 32..(i + 1) * 32]
                .try_into()
                .expect("32-byte slice")
        };
        TokenKeys {
            id: part(0),
            auth_key: part(1),
            bundle_key: part(2),
        }
    }
}

/// Encrypts `payload` for the holder of `bundle_key`: XOR with HKDF output, then an
/// HMAC-SHA256 over the ciphertext (onepw's `account/keys` bundle).
pub fn bundle(bundle_key: &[u8], namespace: &str, payload: &[u8]) -> Vec<u8> {
    let mut material = vec![0u8; 32 + payload.len()];
    derive_into(bundle_key, namespace, &mut material);
    let (mac_key, xor_key) = material.split_at(32);
    let mut out: Vec<u8> = payload.iter().zip(xor_key).map(|(a, b)| a ^ b).collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(mac_key).expect("HMAC takes any key");
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    out
}

/// Decrypts a [`bundle`]; `None` if it is too short or its HMAC (checked in constant time)
/// does not match.
pub fn unbundle(bundle_key: &[u8], namespace: &str, bundle: &[u8]) -> Option<Vec<u8>> {
    let split = bundle.len().checked_sub(32)?;
    let (ciphertext, tag) = bundle.split_at(split);
    let mut material = vec![0u8; 32 + ciphertext.len()];
    derive_into(bundle_key, namespace, &mut material);
    let (mac_key, xor_key) = material.split_at(32);
    let mut mac = Hmac::<Sha256>::new_from_slice(mac_key).expect("HMAC takes any key");
    mac.update(ciphertext);
    mac.verify_slice(tag).ok()?;
    Some(ciphertext.iter().zip(xor_key).map(|(a, b)| a ^ b).collect())
}

/// XOR of two 32-byte keys.
pub fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// What a client derives from an email and password (onepw v1).
#[derive(Clone)]
pub struct ClientKeys {
    /// Sent to the server in place of the password.
    pub auth_pw: [u8; 32],
    /// Unwraps `wrapKb` into kB; never sent.
    pub unwrap_b_key: [u8; 32],
}

impl ClientKeys {
    /// Stretches `password` for `email` exactly as Firefox and PyFxA do.
    pub fn derive(email: &str, password: &str) -> Self {
        let salt = format!("{NAMESPACE}quickStretch:{email}");
        let mut quick = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            password.as_bytes(),
            salt.as_bytes(),
            QUICK_STRETCH_ROUNDS,
            &mut quick,
        );
        ClientKeys {
            auth_pw: derive(&quick, "authPW"),
            unwrap_b_key: derive(&quick, "unwrapBkey"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The onepw example (email `andré@example.org`, password `pässwörd`), whose values
    /// Mozilla's clients test against (PyFxA `test_crypto.py`).
    #[test]
    fn client_keys_match_the_protocol_example() {
        let keys = ClientKeys::derive("andr\u{e9}@example.org", "p\u{e4}ssw\u{f6}rd");
        assert_eq!(
            hex::encode(keys.auth_pw),
            "247b675ffb4c46310bc87e26d712153abe5e1c90ef00a4784594f97ef54f2375"
        );
        assert_eq!(
            hex::encode(keys.unwrap_b_key),
            "de6a2648b78284fcb9ffa81ba95803309cfba7af583c01a8a1a63e567234dd28"
        );
    }

    #[test]
    fn bundles_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let payload = [1u8; 64];
        let mut sealed = bundle(&key, "account/keys", &payload);
        assert_eq!(sealed.len(), 96);
        assert_eq!(
            unbundle(&key, "account/keys", &sealed).as_deref(),
            Some(&payload[..])
        );
        assert_eq!(unbundle(&[8u8; 32], "account/keys", &sealed), None);
        assert_eq!(unbundle(&key, "other", &sealed), None);
        sealed[3] ^= 1;
        assert_eq!(unbundle(&key, "account/keys", &sealed), None);
        assert_eq!(unbundle(&key, "account/keys", &[0u8; 10]), None);
    }

    #[test]
    fn token_kinds_derive_distinct_keys() {
        let token = [3u8; 32];
        let session = TokenKeys::derive(&token, TokenKind::Session);
        let fetch = TokenKeys::derive(&token, TokenKind::KeyFetch);
        assert_ne!(session.id, fetch.id);
        assert_ne!(session.id, session.auth_key);
        assert_ne!(session.auth_key, session.bundle_key);
        for kind in [
            TokenKind::Session,
            TokenKind::KeyFetch,
            TokenKind::PasswordChange,
        ] {
            assert_eq!(TokenKind::from_hkdf_name(kind.hkdf_name()), Some(kind));
        }
    }
}
