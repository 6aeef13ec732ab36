//! The server half of Mozilla's onepw protocol; the client half and the token keys are
//! `sync_proto::onepw`, re-exported here.
//!
//! The server keeps onepw's layering with argon2id in place of scrypt:
//! `argon2id(authPW, salt)` is split by HKDF into `verifyHash`, the only thing compared at
//! login, and `wrapWrapKey`, which wraps the stored `wrapKb` once more. So the database
//! alone yields neither a password check nor `wrapKb`, and `kB = wrapKb ⊕ unwrapBKey`
//! needs the password itself: the server never sees or stores a password or kB.
//!
//! Tokens are given to the client once; the server keeps only `SHA-256(id)` (its lookup
//! key) and the keys, so a copy of the database holds no usable Bearer credential.

use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use sync_proto::onepw::{
    ClientKeys, KEYS_NAMESPACE, NAMESPACE, TokenKeys, TokenKind, bundle, derive, derive_into,
    unbundle, xor32,
};

/// How a token kind is named in the database: its HKDF name.
pub(crate) trait StoredKind: Sized {
    /// The name stored in the database.
    fn db_name(self) -> &'static str;
    /// The kind a stored name stands for.
    fn from_db_name(name: &str) -> Option<Self>;
}

impl StoredKind for TokenKind {
    fn db_name(self) -> &'static str {
        self.hkdf_name()
    }

    fn from_db_name(name: &str) -> Option<Self> {
        TokenKind::from_hkdf_name(name)
    }
}

/// The lookup key of a token id: what the server stores instead of the id.
pub fn id_hash(id: &[u8]) -> [u8; 32] {
    Sha256::digest(id).into()
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
    fn stored_names_and_costs_round_trip() {
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
