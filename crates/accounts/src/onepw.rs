//! Mozilla's onepw key-stretching and token protocol, both halves.
//!
//! The client half ([`ClientKeys`]) is what Firefox's sign-in page and PyFxA run: the
//! password is stretched with PBKDF2 (salted with the email as typed at sign-up) and split
//! by HKDF into `authPW`, which travels, and `unwrapBKey`, which never leaves the client.
//! The CLI uses it to create accounts, and it is the reference the tests check.
//!
//! The server half keeps onepw's layering with argon2id in place of scrypt:
//! `argon2id(authPW, salt)` is split by HKDF into `verifyHash`, the only thing compared at
//! login, and `wrapWrapKey`, which wraps the stored `wrapKb` once more. So the database
//! alone yields neither a password check nor `wrapKb`, and `kB = wrapKb ⊕ unwrapBKey`
//! needs the password itself: the server never sees or stores a password or kB.
//!
//! Tokens (session, key fetch, password change) are 32 random bytes given to the client
//! once. Both sides derive `id ‖ authKey ‖ bundleKey` from them by HKDF; the server keeps
//! only `SHA-256(id)` (its lookup key) and the keys, so a copy of the database holds no
//! usable Bearer credential.

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

    /// The name stored in the database.
    pub(crate) fn db_name(self) -> &'static str {
        self.hkdf_name()
    }

    /// The kind a stored name stands for.
    pub(crate) fn from_db_name(name: &str) -> Option<Self> {
        [Self::Session, Self::KeyFetch, Self::PasswordChange]
            .into_iter()
            .find(|kind| kind.db_name() == name)
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

/// The lookup key of a token id: what the server stores instead of the id.
pub fn id_hash(id: &[u8]) -> [u8; 32] {
    Sha256::digest(id).into()
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

/// The argon2id cost of the server-side stretch. Stored with each account, so a change of
/// defaults leaves existing accounts verifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StretchCost {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for StretchCost {
    /// The `argon2` crate's defaults (OWASP's recommendation): 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        StretchCost {
            m_kib: Params::DEFAULT_M_COST,
            t: Params::DEFAULT_T_COST,
            p: Params::DEFAULT_P_COST,
        }
    }
}

impl StretchCost {
    /// `m=…,t=…,p=…`, as stored.
    pub fn encode(&self) -> String {
        format!("m={},t={},p={}", self.m_kib, self.t, self.p)
    }

    /// Parses [`encode`](Self::encode)'s output.
    pub fn decode(text: &str) -> Option<Self> {
        let mut fields = text.split(',').map(|field| field.split_once('='));
        let mut next = |name: &str| match fields.next() {
            Some(Some((key, value))) if key == name => value.parse().ok(),
            _ => None,
        };
        Some(StretchCost {
            m_kib: next("m")?,
            t: next("t")?,
            p: next("p")?,
        })
    }
}

/// What the server stores to check `authPW` and to hand back `wrapKb`.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    /// Random salt of the argon2id stretch.
    pub salt: [u8; 32],
    /// Its cost.
    pub cost: StretchCost,
    /// `HKDF(argon2id(authPW), "verifyHash")`.
    pub verify_hash: [u8; 32],
    /// `wrapKb ⊕ HKDF(argon2id(authPW), "wrapwrapKey")`.
    pub wrap_wrap_kb: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

/// The two keys the server derives from `authPW`.
struct Stretched {
    verify_hash: [u8; 32],
    wrap_wrap_key: [u8; 32],
}

fn stretch(auth_pw: &[u8], salt: &[u8; 32], cost: StretchCost) -> Result<Stretched, String> {
    let params = Params::new(cost.m_kib, cost.t, cost.p, Some(32)).map_err(|e| e.to_string())?;
    let mut raw = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(auth_pw, salt, &mut raw)
        .map_err(|e| e.to_string())?;
    Ok(Stretched {
        verify_hash: derive(&raw, "verifyHash"),
        wrap_wrap_key: derive(&raw, "wrapwrapKey"),
    })
}

impl Verifier {
    /// A verifier for `auth_pw` that hands back `wrap_kb`, with a fresh salt.
    pub fn new(auth_pw: &[u8], wrap_kb: &[u8; 32], cost: StretchCost) -> Result<Self, String> {
        let salt: [u8; 32] = rand::random();
        let stretched = stretch(auth_pw, &salt, cost)?;
        Ok(Verifier {
            salt,
            cost,
            verify_hash: stretched.verify_hash,
            wrap_wrap_kb: xor32(wrap_kb, &stretched.wrap_wrap_key),
        })
    }

    /// `wrapKb` if `auth_pw` is right (compared in constant time), else `None`.
    pub fn check(&self, auth_pw: &[u8]) -> Result<Option<[u8; 32]>, String> {
        let stretched = stretch(auth_pw, &self.salt, self.cost)?;
        if bool::from(stretched.verify_hash.ct_eq(&self.verify_hash)) {
            Ok(Some(xor32(&self.wrap_wrap_kb, &stretched.wrap_wrap_key)))
        } else {
            Ok(None)
        }
    }

    /// Spends the time a check would, for a login that fails anyway (unknown account), so
    /// that timing does not tell which addresses have accounts.
    pub fn burn(auth_pw: &[u8], cost: StretchCost) {
        let _ = stretch(auth_pw, &rand::random(), cost);
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
    fn verifier_checks_auth_pw_and_unwraps_wrap_kb() {
        let cost = StretchCost {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let wrap_kb = [9u8; 32];
        let verifier = Verifier::new(b"right", &wrap_kb, cost).unwrap();
        assert_ne!(verifier.wrap_wrap_kb, wrap_kb, "stored wrapped once more");
        assert_eq!(verifier.check(b"right").unwrap(), Some(wrap_kb));
        assert_eq!(verifier.check(b"wrong").unwrap(), None);
        let again = Verifier::new(b"right", &wrap_kb, cost).unwrap();
        assert_ne!(again.salt, verifier.salt);
        assert_ne!(again.verify_hash, verifier.verify_hash);
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
            assert_eq!(TokenKind::from_db_name(kind.db_name()), Some(kind));
        }
        let cost = StretchCost::default();
        assert_eq!(StretchCost::decode(&cost.encode()), Some(cost));
        assert_eq!(StretchCost::decode("m=1,t=2"), None);
    }
}
