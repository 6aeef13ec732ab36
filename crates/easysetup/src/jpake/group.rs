//! The group J-PAKE runs in, the wire encoding of its integers, and scalar sampling.
//!
//! Easy Setup used a 3072-bit Schnorr group (a prime-order subgroup of Z*p, not an elliptic
//! curve): `p` is a 3072-bit prime, `q` a 256-bit prime dividing `p − 1`, and `g` generates
//! the subgroup of order `q`. These are the constants that Firefox (`nsSyncJPAKE.cpp`) and
//! Android (`JPakeCrypto.java`) share, so the values are not ours to choose.
//!
//! Every integer travels as the hex of its *minimal* unsigned big-endian bytes: no sign
//! byte, no padding to the modulus size, always an even number of digits. Zero is the single
//! byte `00`, which is what NSS (`mp_unsigned_octet_size`) and Java (`toByteArray`) produce.
//! The Schnorr hash is taken over these same minimal bytes, so the encoding is part of the
//! proof, not only of the transport.

use std::sync::LazyLock;

use num_bigint::BigUint;
use rand::RngCore;

use super::JPakeError;

/// `p`, the 3072-bit prime modulus (hex).
const P_HEX: &str = concat!(
    "90066455B5CFC38F9CAA4A48B4281F292C260FEEF01FD61037E56258A7795A1C",
    "7AD46076982CE6BB956936C6AB4DCFE05E6784586940CA544B9B2140E1EB523F",
    "009D20A7E7880E4E5BFA690F1B9004A27811CD9904AF70420EEFD6EA11EF7DA1",
    "29F58835FF56B89FAA637BC9AC2EFAAB903402229F491D8D3485261CD068699B",
    "6BA58A1DDBBEF6DB51E8FE34E8A78E542D7BA351C21EA8D8F1D29F5D5D159394",
    "87E27F4416B0CA632C59EFD1B1EB66511A5A0FBF615B766C5862D0BD8A3FE7A0",
    "E0DA0FB2FE1FCB19E8F9996A8EA0FCCDE538175238FC8B0EE6F29AF7F642773E",
    "BE8CD5402415A01451A840476B2FCEB0E388D30D4B376C37FE401C2A2C2F941D",
    "AD179C540C1C8CE030D460C4D983BE9AB0B20F69144C1AE13F9383EA1C08504F",
    "B0BF321503EFE43488310DD8DC77EC5B8349B8BFE97C2C560EA878DE87C11E3D",
    "597F1FEA742D73EEC7F37BE43949EF1A0D15C3F3E3FC0A8335617055AC91328E",
    "C22B50FC15B941D3D1624CD88BC25F3E941FDDC6200689581BFEC416B4B2CB73",
);

/// `q`, the 256-bit prime order of the subgroup (hex).
const Q_HEX: &str = "CFA0478A54717B08CE64805B76E5B14249A77A4838469DF7F7DC987EFCCFB11D";

/// `g`, a generator of the order-`q` subgroup (hex).
const G_HEX: &str = concat!(
    "5E5CBA992E0A680D885EB903AEA78E4A45A469103D448EDE3B7ACCC54D521E37",
    "F84A4BDD5B06B0970CC2D2BBB715F7B82846F9A0C393914C792E6A923E2117AB",
    "805276A975AADB5261D91673EA9AAFFEECBFA6183DFCB5D3B7332AA19275AFA1",
    "F8EC0B60FB6F66CC23AE4870791D5982AAD1AA9485FD8F4A60126FEB2CF05DB8",
    "A7F0F09B3397F3937F2E90B9E5B9C9B6EFEF642BC48351C46FB171B9BFA9EF17",
    "A961CE96C7E7A7CC3D3D03DFAD1078BA21DA425198F07D2481622BCE45969D9C",
    "4D6063D72AB7A0F08B2F49A7CC6AF335E08C4720E31476B67299E231F8BD90B3",
    "9AC3AE3BE0C6B6CACEF8289A2E2873D58E51E029CAFBD55E6841489AB66B5B4B",
    "9BA6E2F784660896AFF387D92844CCB8B69475496DE19DA2E58259B090489AC8",
    "E62363CDF82CFD8EF2A427ABCD65750B506F56DDE3B988567A88126B914D7828",
    "E2B63A6D7ED0747EC59E0E0A23CE7D8A74C1D2C2A7AFB6A29799620F00E11C33",
    "787F7DED3B30E1A22D09F1FBDA1ABBBFBF25CAE05A13F812E34563F99410E73B",
);

/// Random bytes drawn per scalar: 64 bits more than `q` has, so reducing mod `q` leaves a
/// bias below 2^-64.
const SCALAR_BYTES: usize = 40;

/// The group parameters, parsed once.
pub(crate) struct Group {
    /// The modulus.
    pub(crate) p: BigUint,
    /// `p − 1`, the largest residue, which has order 2 and is never a valid element.
    pub(crate) p_minus_1: BigUint,
    /// The subgroup order.
    pub(crate) q: BigUint,
    /// The subgroup generator.
    pub(crate) g: BigUint,
}

/// The Easy Setup group.
pub(crate) static GROUP: LazyLock<Group> = LazyLock::new(|| {
    let parse = |h: &str| BigUint::parse_bytes(h.as_bytes(), 16).expect("constant is valid hex");
    let p = parse(P_HEX);
    Group {
        p_minus_1: &p - 1u32,
        p,
        q: parse(Q_HEX),
        g: parse(G_HEX),
    }
});

impl Group {
    /// Checks that `x` is a usable group element: `1 < x < p − 1` and `x^q ≡ 1 (mod p)`.
    ///
    /// The range check rejects 0, 1 and `p − 1` (the elements that would make a share or a
    /// key trivial) and anything not reduced mod `p`; the `x^q` test rejects values outside
    /// the order-`q` subgroup, which could otherwise leak the secret exponents modulo small
    /// factors of `p − 1`.
    pub(crate) fn check_element(&self, x: &BigUint) -> Result<(), JPakeError> {
        if *x <= BigUint::from(1u32) || *x >= self.p_minus_1 {
            return Err(JPakeError::OutOfRange);
        }
        if x.modpow(&self.q, &self.p) != BigUint::from(1u32) {
            return Err(JPakeError::NotInSubgroup);
        }
        Ok(())
    }

    /// A uniform-enough scalar in `[0, q)`.
    pub(crate) fn random_scalar(&self) -> BigUint {
        random_below(&self.q)
    }

    /// A uniform-enough scalar in `[1, q)`.
    pub(crate) fn random_nonzero_scalar(&self) -> BigUint {
        random_below(&(&self.q - 1u32)) + 1u32
    }
}

/// Draws [`SCALAR_BYTES`] from the thread-local CSPRNG and reduces them mod `bound`.
fn random_below(bound: &BigUint) -> BigUint {
    let mut buf = [0u8; SCALAR_BYTES];
    rand::rng().fill_bytes(&mut buf);
    let n = BigUint::from_bytes_be(&buf) % bound;
    buf.fill(0);
    n
}

/// The minimal unsigned big-endian bytes of `n` (zero is one `00` byte).
pub(crate) fn minimal_bytes(n: &BigUint) -> Vec<u8> {
    n.to_bytes_be()
}

/// The wire form of `n`: lowercase hex of its minimal bytes, so always of even length.
pub(crate) fn to_hex(n: &BigUint) -> String {
    hex::encode(minimal_bytes(n))
}

/// Reads a wire integer. Either case is accepted; an empty or odd-length string, or any
/// non-hex character, is refused, as NSS refuses them. Leading zero bytes are tolerated:
/// the value, not the spelling, is what is hashed and checked.
pub(crate) fn from_hex(s: &str) -> Result<BigUint, JPakeError> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return Err(JPakeError::BadEncoding);
    }
    let bytes = hex::decode(s).map_err(|_| JPakeError::BadEncoding)?;
    Ok(BigUint::from_bytes_be(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_parameters_are_consistent() {
        let gr = &*GROUP;
        assert_eq!(gr.p.bits(), 3072);
        assert_eq!(gr.q.bits(), 256);
        assert_eq!(
            &gr.p_minus_1 % &gr.q,
            BigUint::from(0u32),
            "q divides p - 1"
        );
        assert_eq!(
            gr.g.modpow(&gr.q, &gr.p),
            BigUint::from(1u32),
            "g has order q"
        );
        assert_ne!(gr.g, BigUint::from(1u32));
        let p = to_hex(&gr.p);
        assert!(p.starts_with("90066455b5cfc38f") && p.ends_with("16b4b2cb73"));
        let g = to_hex(&gr.g);
        assert!(g.starts_with("5e5cba992e0a680d") && g.ends_with("f99410e73b"));
    }

    #[test]
    fn minimal_hex_encoding() {
        assert_eq!(to_hex(&BigUint::from(0u32)), "00");
        assert_eq!(to_hex(&BigUint::from(0x0au32)), "0a");
        assert_eq!(to_hex(&BigUint::from(0xffu32)), "ff");
        assert_eq!(to_hex(&BigUint::from(0x100u32)), "0100");
        // Leading zero bytes never appear in what we write.
        assert_eq!(to_hex(&BigUint::from_bytes_be(&[0, 0, 0x0a, 0xbc])), "0abc");
        assert_eq!(minimal_bytes(&BigUint::from_bytes_be(&[0, 0, 1])), vec![1]);
        for _ in 0..32 {
            let h = to_hex(&GROUP.random_scalar());
            assert!(h.len().is_multiple_of(2));
            assert!(!h.starts_with("00") || h == "00");
            assert_eq!(h, h.to_lowercase());
        }
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(from_hex("0abc").unwrap(), BigUint::from(0xabcu32));
        assert_eq!(from_hex("0ABC").unwrap(), BigUint::from(0xabcu32));
        assert_eq!(from_hex("00").unwrap(), BigUint::from(0u32));
        assert_eq!(from_hex("000abc").unwrap(), BigUint::from(0xabcu32));
        for bad in ["", "abc", "0g", "+1", " 0a", "0x0a"] {
            assert_eq!(from_hex(bad), Err(JPakeError::BadEncoding), "{bad:?}");
        }
    }

    #[test]
    fn element_checks() {
        let gr = &*GROUP;
        let one = BigUint::from(1u32);
        for bad in [
            BigUint::from(0u32),
            one.clone(),
            gr.p_minus_1.clone(),
            gr.p.clone(),
        ] {
            assert_eq!(gr.check_element(&bad), Err(JPakeError::OutOfRange));
        }
        for outside in [BigUint::from(2u32), &gr.p - 2u32] {
            assert_ne!(
                outside.modpow(&gr.q, &gr.p),
                one,
                "test value must be outside"
            );
            assert_eq!(gr.check_element(&outside), Err(JPakeError::NotInSubgroup));
        }
        assert_eq!(gr.check_element(&gr.g), Ok(()));
    }

    #[test]
    fn scalars_are_in_range() {
        for _ in 0..64 {
            assert!(GROUP.random_scalar() < GROUP.q);
            let x = GROUP.random_nonzero_scalar();
            assert!(x >= BigUint::from(1u32) && x < GROUP.q);
        }
    }
}
