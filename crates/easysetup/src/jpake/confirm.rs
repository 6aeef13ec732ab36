//! Key confirmation (§8.5, the `receiver3` message).
//!
//! J-PAKE itself never tells a party that the peer typed a different code: both sides
//! simply derive different keys. So the receiver proves its key by sending the AES-256-CBC
//! encryption of the constant [`CONFIRMATION_PLAINTEXT`] under a fresh IV, and the sender
//! re-encrypts the constant with the received IV and compares the base64 ciphertexts. This
//! message has no HMAC; the comparison is the check. A mismatch means a wrong code or an
//! attacker in the channel, and the exchange must be aborted (`jpake.error.keymismatch`).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::RngCore;
use sync_client::crypto::encrypt_with_iv;
use sync_client::keys::KeyBundle;

/// The constant the receiver encrypts to prove it derived the same key.
pub const CONFIRMATION_PLAINTEXT: &[u8] = b"0123456789ABCDEF";

/// Standard-alphabet base64 that accepts the IV with or without `=` padding.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The receiver's confirmation: `(ciphertext, IV)`, both standard base64, the encryption
/// of [`CONFIRMATION_PLAINTEXT`] under `bundle`'s AES key and a fresh random IV.
pub fn confirmation(bundle: &KeyBundle) -> (String, String) {
    let mut iv = [0u8; 16];
    rand::rng().fill_bytes(&mut iv);
    let payload = encrypt_with_iv(bundle, CONFIRMATION_PLAINTEXT, iv);
    (payload.ciphertext, payload.iv)
}

/// The sender's check of a confirmation: re-encrypts [`CONFIRMATION_PLAINTEXT`] with the
/// received IV and compares the base64 ciphertext in constant time. An IV that is not
/// base64 of 16 bytes fails the check.
pub fn check_confirmation(bundle: &KeyBundle, ciphertext_b64: &str, iv_b64: &str) -> bool {
    let Ok(iv) = STANDARD_LENIENT.decode(iv_b64) else {
        return false;
    };
    let Ok(iv) = <[u8; 16]>::try_from(iv.as_slice()) else {
        return false;
    };
    let expected = encrypt_with_iv(bundle, CONFIRMATION_PLAINTEXT, iv);
    constant_time_eq(expected.ciphertext.as_bytes(), ciphertext_b64.as_bytes())
}

/// Byte-string equality whose running time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn round_trip_and_mismatch() {
        let bundle = KeyBundle::random();
        let (ct, iv) = confirmation(&bundle);
        assert_eq!(STANDARD.decode(&ct).unwrap().len(), 32);
        assert_eq!(STANDARD.decode(&iv).unwrap().len(), 16);
        assert!(check_confirmation(&bundle, &ct, &iv));
        assert!(check_confirmation(&bundle, &ct, iv.trim_end_matches('=')));

        let other = KeyBundle::random();
        assert!(!check_confirmation(&other, &ct, &iv));
        let (_, other_iv) = confirmation(&bundle);
        assert!(!check_confirmation(&bundle, &ct, &other_iv));
        assert!(!check_confirmation(&bundle, &ct[..ct.len() - 4], &iv));
        assert!(!check_confirmation(&bundle, &ct, "not base64!"));
        assert!(!check_confirmation(
            &bundle,
            &ct,
            &STANDARD.encode([0u8; 15])
        ));
    }

    #[test]
    fn fresh_iv_each_time() {
        let bundle = KeyBundle::random();
        assert_ne!(confirmation(&bundle), confirmation(&bundle));
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
