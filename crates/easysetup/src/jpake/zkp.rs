//! Schnorr zero-knowledge proofs of knowledge of a discrete logarithm, as NSS
//! (`JPAKE_Sign`/`JPAKE_Verify`) and Android (`createZkp`/`checkZkp`) compute them.
//!
//! To prove knowledge of `x` with `gx = base^x`, the prover picks a random `v`, sends
//! `gv = base^v` and `r = (v − x·h) mod q`, where
//!
//! ```text
//! h = SHA-256( L(base) ‖ base ‖ L(gv) ‖ gv ‖ L(gx) ‖ gx ‖ L(id) ‖ id )
//! ```
//!
//! `L` is a 2-byte big-endian length, integers are their minimal unsigned big-endian bytes,
//! and `id` is the prover's signer id in UTF-8. The verifier recomputes `h` and checks
//! `base^r · gx^h ≡ gv (mod p)`. Binding the prover's id into `h` is what stops a party from
//! replaying the other's proofs back at it.

use num_bigint::BigUint;
use sha2::{Digest, Sha256};

use super::group::{GROUP, from_hex, minimal_bytes, to_hex};
use super::{JPakeError, Zkp};

/// The Schnorr challenge `h` for the given public values.
fn challenge(base: &BigUint, gv: &BigUint, gx: &BigUint, id: &str) -> BigUint {
    let mut hasher = Sha256::new();
    for part in [
        minimal_bytes(base),
        minimal_bytes(gv),
        minimal_bytes(gx),
        id.as_bytes().to_vec(),
    ] {
        // Every integer is below p (384 bytes) and ids are capped at construction.
        let len = u16::try_from(part.len()).expect("hash input fits a 2-byte length");
        hasher.update(len.to_be_bytes());
        hasher.update(&part);
    }
    BigUint::from_bytes_be(&hasher.finalize())
}

/// Proves knowledge of `x` such that `gx = base^x (mod p)`, as signer `id`.
pub(crate) fn prove(base: &BigUint, x: &BigUint, gx: &BigUint, id: &str) -> Zkp {
    let group = &*GROUP;
    let v = group.random_scalar();
    let gv = base.modpow(&v, &group.p);
    let h = challenge(base, &gv, gx, id);
    let xh = (x * &h) % &group.q;
    let r = (&v + &group.q - xh) % &group.q;
    Zkp {
        gr: to_hex(&gv),
        b: to_hex(&r),
        id: id.to_owned(),
    }
}

/// The parsed numbers of a proof, read before any of them is checked.
pub(crate) struct ParsedZkp<'a> {
    gv: BigUint,
    r: BigUint,
    id: &'a str,
}

/// Reads a proof's integers; only the encoding is checked here.
pub(crate) fn parse(zkp: &Zkp) -> Result<ParsedZkp<'_>, JPakeError> {
    Ok(ParsedZkp {
        gv: from_hex(&zkp.gr)?,
        r: from_hex(&zkp.b)?,
        id: &zkp.id,
    })
}

impl ParsedZkp<'_> {
    /// Checks that the proof is signed by `expected_id` (the peer), never by `own_id`.
    pub(crate) fn check_signer(&self, expected_id: &str, own_id: &str) -> Result<(), JPakeError> {
        if self.id != expected_id || self.id == own_id {
            return Err(JPakeError::WrongSignerId);
        }
        Ok(())
    }

    /// Verifies the proof that the signer knows `log_base(gx)`.
    ///
    /// The caller must already have checked `gx` with [`super::group::Group::check_element`]
    /// and the signer with [`ParsedZkp::check_signer`]; this checks `r < q` and the Schnorr
    /// equation.
    pub(crate) fn verify(&self, base: &BigUint, gx: &BigUint) -> Result<(), JPakeError> {
        let group = &*GROUP;
        if self.r >= group.q {
            return Err(JPakeError::OutOfRange);
        }
        let h = challenge(base, &self.gv, gx, self.id);
        let lhs = (base.modpow(&self.r, &group.p) * gx.modpow(&h, &group.p)) % &group.p;
        if lhs != self.gv {
            return Err(JPakeError::BadProof);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof() -> (BigUint, Zkp) {
        let x = GROUP.random_nonzero_scalar();
        let gx = GROUP.g.modpow(&x, &GROUP.p);
        (gx.clone(), prove(&GROUP.g, &x, &gx, "sender"))
    }

    fn check(gx: &BigUint, zkp: &Zkp) -> Result<(), JPakeError> {
        let parsed = parse(zkp)?;
        parsed.check_signer("sender", "receiver")?;
        parsed.verify(&GROUP.g, gx)
    }

    #[test]
    fn honest_proof_verifies() {
        let (gx, zkp) = proof();
        assert_eq!(check(&gx, &zkp), Ok(()));
        assert_eq!(zkp.id, "sender");
    }

    #[test]
    fn hash_layout() {
        // h = SHA-256(00 01 02 ‖ 00 01 03 ‖ 00 02 01 00 ‖ 00 01 'a'), computed by hand.
        let h = challenge(
            &BigUint::from(2u32),
            &BigUint::from(3u32),
            &BigUint::from(256u32),
            "a",
        );
        let expected = Sha256::digest([0, 1, 2, 0, 1, 3, 0, 2, 1, 0, 0, 1, b'a']);
        assert_eq!(h, BigUint::from_bytes_be(&expected));
    }

    #[test]
    fn tampering_is_detected() {
        let (gx, zkp) = proof();
        let mut bad = zkp.clone();
        bad.gr = to_hex(&(from_hex(&zkp.gr).unwrap() * 2u32 % &GROUP.p));
        assert_eq!(check(&gx, &bad), Err(JPakeError::BadProof));

        let mut bad = zkp.clone();
        bad.b = to_hex(&((from_hex(&zkp.b).unwrap() + 1u32) % &GROUP.q));
        assert_eq!(check(&gx, &bad), Err(JPakeError::BadProof));

        let mut bad = zkp.clone();
        bad.b = to_hex(&(from_hex(&zkp.b).unwrap() + &GROUP.q));
        assert_eq!(check(&gx, &bad), Err(JPakeError::OutOfRange));

        // A different proven value.
        let other = (&gx * &GROUP.g) % &GROUP.p;
        assert_eq!(check(&other, &zkp), Err(JPakeError::BadProof));
    }

    #[test]
    fn signer_id_is_bound() {
        let (gx, zkp) = proof();
        let mut relabelled = zkp.clone();
        relabelled.id = "mallory".into();
        assert_eq!(check(&gx, &relabelled), Err(JPakeError::WrongSignerId));
        relabelled.id = "receiver".into();
        assert_eq!(check(&gx, &relabelled), Err(JPakeError::WrongSignerId));
        // A proof made for another signer, relabelled as the expected one: the hash differs.
        let x = GROUP.random_nonzero_scalar();
        let gx = GROUP.g.modpow(&x, &GROUP.p);
        let mut forged = prove(&GROUP.g, &x, &gx, "mallory");
        forged.id = "sender".into();
        assert_eq!(check(&gx, &forged), Err(JPakeError::BadProof));
    }
}
