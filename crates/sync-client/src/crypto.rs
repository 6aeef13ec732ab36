//! Record encryption as Storage Format 5 defines it (encrypt-then-MAC, AES-256-CBC).
//!
//! Every BSO payload except `meta/global` is the JSON text of an [`EncryptedPayload`]:
//!
//! - `ciphertext`: standard base64 of AES-256-CBC with PKCS#7 padding over the UTF-8
//!   cleartext;
//! - `IV`: standard base64 of the 16 random bytes of the CBC IV;
//! - `hmac`: lowercase hex of HMAC-SHA256 over the ASCII bytes of the *base64 ciphertext
//!   text* (not the raw ciphertext bytes, and not the IV).
//!
//! [`decrypt`] checks the HMAC before it decodes anything else, compares it in constant
//! time, and never decrypts a payload that fails the check: a padding error that depended
//! on attacker-chosen ciphertext would otherwise be a padding oracle.
//!
//! The format's MAC does not cover the IV, so whoever can write to the server can flip
//! bits in the first 16 bytes of a record's cleartext without the HMAC noticing. That is a
//! property of the format, kept for compatibility with every other Sync client. The
//! record-level check in [`decrypt_record`], that the decrypted `id` equals the BSO id,
//! catches the most useful such substitution (the id sits at the start of the JSON).

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{KeyBundle, STANDARD_LENIENT, hmac_sha256};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// The AES block size, which is also the IV length.
const BLOCK_LEN: usize = 16;

/// The wire form of an encrypted BSO payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedPayload {
    /// Standard base64 of the AES-256-CBC ciphertext.
    pub ciphertext: String,
    /// Standard base64 of the 16-byte IV. The wire name is upper-case `IV`.
    #[serde(rename = "IV")]
    pub iv: String,
    /// Hex of HMAC-SHA256 over the `ciphertext` text. Writers use lowercase; readers accept
    /// either case.
    pub hmac: String,
}

/// Why a payload or record could not be decrypted (or, for [`encrypt_record`], encrypted).
///
/// No variant carries cleartext: a message that quoted decrypted content could put user
/// data into logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The HMAC is wrong, or not even well-formed hex: the key is not the one the record
    /// was written with, or the record was altered. Nothing was decrypted.
    #[error("HMAC mismatch: wrong key or altered record")]
    HmacMismatch,
    /// The ciphertext is not valid base64.
    #[error("ciphertext is not valid base64")]
    BadBase64,
    /// The IV is not valid base64 of exactly 16 bytes.
    #[error("IV is not 16 bytes of valid base64")]
    BadIv,
    /// The ciphertext is not a positive whole number of AES blocks, so it cannot be
    /// AES-CBC output.
    #[error("ciphertext length is not a positive multiple of 16 bytes")]
    Decrypt,
    /// The decrypted data does not end in valid PKCS#7 padding.
    #[error("decrypted data has invalid PKCS#7 padding")]
    BadPadding,
    /// The payload is not the JSON of an object with `ciphertext`, `IV` and `hmac` strings.
    #[error("payload is not a JSON encrypted payload")]
    BadPayload,
    /// The decrypted cleartext is not UTF-8 JSON.
    #[error("decrypted cleartext is not JSON")]
    NotJson,
    /// The cleartext is JSON but not an object.
    #[error("cleartext is not a JSON object")]
    NotAnObject,
    /// The cleartext's `id` is missing, not a string, or not the BSO id.
    #[error("record id mismatch: BSO id {expected:?}, cleartext id {found:?}")]
    IdMismatch {
        /// The id of the BSO that carried the payload.
        expected: String,
        /// The cleartext's `id`, when it is a string.
        found: Option<String>,
    },
}

/// Encrypts `cleartext` under `bundle` with a fresh random IV.
pub fn encrypt(bundle: &KeyBundle, cleartext: &[u8]) -> EncryptedPayload {
    let mut iv = [0; BLOCK_LEN];
    rand::rng().fill_bytes(&mut iv);
    encrypt_with_iv(bundle, cleartext, iv)
}

/// Encrypts `cleartext` under `bundle` with the given IV.
///
/// Reusing an IV under one key leaks whether two cleartexts share a prefix: outside known
/// answer tests, use [`encrypt`].
pub fn encrypt_with_iv(bundle: &KeyBundle, cleartext: &[u8], iv: [u8; 16]) -> EncryptedPayload {
    let raw = Aes256CbcEnc::new(&bundle.enc.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(cleartext);
    let ciphertext = STANDARD.encode(raw);
    let hmac = hex::encode(ciphertext_hmac(bundle, &ciphertext).finalize().into_bytes());
    EncryptedPayload {
        ciphertext,
        iv: STANDARD.encode(iv),
        hmac,
    }
}

/// Verifies and decrypts `payload`, returning the cleartext bytes.
///
/// The HMAC is checked first, in constant time; on a mismatch nothing else about the
/// payload is looked at, so a wrong key always reports [`CryptoError::HmacMismatch`].
pub fn decrypt(bundle: &KeyBundle, payload: &EncryptedPayload) -> Result<Vec<u8>, CryptoError> {
    // `hex` accepts either case, as app-services does.
    let tag = hex::decode(&payload.hmac).map_err(|_| CryptoError::HmacMismatch)?;
    ciphertext_hmac(bundle, &payload.ciphertext)
        .verify_slice(&tag)
        .map_err(|_| CryptoError::HmacMismatch)?;

    let iv = STANDARD_LENIENT
        .decode(&payload.iv)
        .map_err(|_| CryptoError::BadIv)?;
    let iv: [u8; BLOCK_LEN] = iv.try_into().map_err(|_| CryptoError::BadIv)?;
    let raw = STANDARD_LENIENT
        .decode(&payload.ciphertext)
        .map_err(|_| CryptoError::BadBase64)?;
    if raw.is_empty() || raw.len() % BLOCK_LEN != 0 {
        return Err(CryptoError::Decrypt);
    }
    Aes256CbcDec::new(&bundle.enc.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&raw)
        .map_err(|_| CryptoError::BadPadding)
}

/// Encrypts a record's cleartext and returns the BSO `payload` string.
///
/// The cleartext must be a JSON object. Its `id` is set to `id` when absent; an `id` that
/// is present and differs is refused, since readers would reject the record.
pub fn encrypt_record(
    bundle: &KeyBundle,
    id: &str,
    cleartext_json: &Value,
) -> Result<String, CryptoError> {
    let object = cleartext_json.as_object().ok_or(CryptoError::NotAnObject)?;
    let text = match object.get("id") {
        Some(Value::String(found)) if found == id => serde_json::to_vec(object),
        None => {
            let mut with_id = object.clone();
            with_id.insert("id".to_owned(), Value::String(id.to_owned()));
            serde_json::to_vec(&with_id)
        }
        Some(other) => {
            return Err(CryptoError::IdMismatch {
                expected: id.to_owned(),
                found: other.as_str().map(str::to_owned),
            });
        }
    }
    .expect("a JSON object always serializes");
    let payload = encrypt(bundle, &text);
    Ok(serde_json::to_string(&payload).expect("three strings always serialize"))
}

/// Parses, verifies and decrypts a BSO `payload` string, and checks that the cleartext
/// is a JSON object whose `id` is `bso_id`.
pub fn decrypt_record(
    bundle: &KeyBundle,
    bso_id: &str,
    payload_str: &str,
) -> Result<Value, CryptoError> {
    let payload: EncryptedPayload =
        serde_json::from_str(payload_str).map_err(|_| CryptoError::BadPayload)?;
    let cleartext = decrypt(bundle, &payload)?;
    let value: Value = serde_json::from_slice(&cleartext).map_err(|_| CryptoError::NotJson)?;
    let object = value.as_object().ok_or(CryptoError::NotAnObject)?;
    match object.get("id") {
        Some(Value::String(found)) if found == bso_id => Ok(value),
        other => Err(CryptoError::IdMismatch {
            expected: bso_id.to_owned(),
            found: other.and_then(Value::as_str).map(str::to_owned),
        }),
    }
}

/// The HMAC over the base64 ciphertext text, ready to finalize or verify.
fn ciphertext_hmac(bundle: &KeyBundle, ciphertext_b64: &str) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = hmac_sha256(&bundle.hmac);
    mac.update(ciphertext_b64.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Re-MACs an altered ciphertext so that the later checks are reached.
    fn with_valid_hmac(bundle: &KeyBundle, ciphertext: &str, iv: &str) -> EncryptedPayload {
        EncryptedPayload {
            ciphertext: ciphertext.to_owned(),
            iv: iv.to_owned(),
            hmac: hex::encode(ciphertext_hmac(bundle, ciphertext).finalize().into_bytes()),
        }
    }

    #[test]
    fn round_trip() {
        let bundle = KeyBundle::random();
        for len in [0, 1, 15, 16, 17, 1000] {
            let cleartext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let payload = encrypt(&bundle, &cleartext);
            assert_eq!(decrypt(&bundle, &payload).unwrap(), cleartext, "len {len}");
            assert_eq!(payload.hmac, payload.hmac.to_lowercase());
        }
    }

    #[test]
    fn encrypt_uses_a_fresh_iv_each_time() {
        let bundle = KeyBundle::random();
        let a = encrypt(&bundle, b"same");
        let b = encrypt(&bundle, b"same");
        assert_ne!(a.iv, b.iv);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn payload_json_uses_upper_case_iv() {
        let payload = encrypt(&KeyBundle::random(), b"x");
        let json: Value = serde_json::to_value(&payload).unwrap();
        let object = json.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["IV", "ciphertext", "hmac"]);
    }

    #[test]
    fn tampered_ciphertext_is_an_hmac_mismatch() {
        let bundle = KeyBundle::random();
        let mut payload = encrypt(&bundle, b"a cleartext long enough for two blocks");
        // Swap one base64 character for another valid one.
        let mut chars: Vec<char> = payload.ciphertext.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        payload.ciphertext = chars.into_iter().collect();
        assert_eq!(decrypt(&bundle, &payload), Err(CryptoError::HmacMismatch));
    }

    #[test]
    fn hmac_is_checked_before_anything_is_decoded() {
        let bundle = KeyBundle::random();
        let good = encrypt(&bundle, b"x");
        // Neither field is valid base64; had decoding come first, this would be BadBase64
        // or BadIv.
        let payload = EncryptedPayload {
            ciphertext: "!!! not base64 !!!".to_owned(),
            iv: "also not base64".to_owned(),
            hmac: good.hmac.clone(),
        };
        assert_eq!(decrypt(&bundle, &payload), Err(CryptoError::HmacMismatch));
        // A malformed hmac field is a mismatch too, not a separate parse error.
        for hmac in ["", "zz", &good.hmac[..62]] {
            let payload = EncryptedPayload {
                hmac: hmac.to_owned(),
                ..good.clone()
            };
            assert_eq!(decrypt(&bundle, &payload), Err(CryptoError::HmacMismatch));
        }
    }

    #[test]
    fn wrong_key_is_an_hmac_mismatch() {
        let payload = encrypt(&KeyBundle::random(), b"secret");
        assert_eq!(
            decrypt(&KeyBundle::random(), &payload),
            Err(CryptoError::HmacMismatch)
        );
        // The right HMAC key with a wrong encryption key passes the HMAC and then fails
        // on the padding (or, rarely, yields garbage), never on the HMAC.
        let bundle = KeyBundle::random();
        let payload = encrypt(&bundle, b"secret");
        let other_enc = KeyBundle {
            enc: KeyBundle::random().enc,
            hmac: bundle.hmac,
        };
        assert_ne!(
            decrypt(&other_enc, &payload),
            Err(CryptoError::HmacMismatch)
        );
    }

    #[test]
    fn upper_case_hmac_is_accepted() {
        let bundle = KeyBundle::random();
        let mut payload = encrypt(&bundle, b"hello");
        payload.hmac = payload.hmac.to_uppercase();
        assert_eq!(decrypt(&bundle, &payload).unwrap(), b"hello");
    }

    #[test]
    fn distinct_errors_after_the_hmac() {
        let bundle = KeyBundle::random();
        let good = encrypt(&bundle, b"hello");

        let bad_b64 = with_valid_hmac(&bundle, "not*base64", &good.iv);
        assert_eq!(decrypt(&bundle, &bad_b64), Err(CryptoError::BadBase64));

        let short_iv = with_valid_hmac(&bundle, &good.ciphertext, &STANDARD.encode([1u8; 8]));
        assert_eq!(decrypt(&bundle, &short_iv), Err(CryptoError::BadIv));
        let garbage_iv = with_valid_hmac(&bundle, &good.ciphertext, "#");
        assert_eq!(decrypt(&bundle, &garbage_iv), Err(CryptoError::BadIv));

        let empty = with_valid_hmac(&bundle, "", &good.iv);
        assert_eq!(decrypt(&bundle, &empty), Err(CryptoError::Decrypt));
        let ragged = with_valid_hmac(&bundle, &STANDARD.encode([0u8; 17]), &good.iv);
        assert_eq!(decrypt(&bundle, &ragged), Err(CryptoError::Decrypt));

        // A block whose last byte decrypts to 0 can never be valid PKCS#7.
        let zero_pad = Aes256CbcEnc::new(&bundle.enc.into(), &[0u8; 16].into())
            .encrypt_padded_vec_mut::<aes::cipher::block_padding::NoPadding>(&[0u8; 16]);
        let bad_pad = with_valid_hmac(
            &bundle,
            &STANDARD.encode(zero_pad),
            &STANDARD.encode([0u8; 16]),
        );
        assert_eq!(decrypt(&bundle, &bad_pad), Err(CryptoError::BadPadding));
    }

    #[test]
    fn record_round_trip() {
        let bundle = KeyBundle::random();
        let cleartext = json!({"id": "abcdefghijkl", "title": "Ünïcödé €", "n": 3});
        let payload = encrypt_record(&bundle, "abcdefghijkl", &cleartext).unwrap();
        assert_eq!(
            decrypt_record(&bundle, "abcdefghijkl", &payload).unwrap(),
            cleartext
        );
    }

    #[test]
    fn encrypt_record_adds_a_missing_id() {
        let bundle = KeyBundle::random();
        let payload = encrypt_record(&bundle, "abcdefghijkl", &json!({"deleted": true})).unwrap();
        assert_eq!(
            decrypt_record(&bundle, "abcdefghijkl", &payload).unwrap(),
            json!({"id": "abcdefghijkl", "deleted": true})
        );
    }

    #[test]
    fn encrypt_record_refuses_a_conflicting_id_or_a_non_object() {
        let bundle = KeyBundle::random();
        assert_eq!(
            encrypt_record(&bundle, "aaaaaaaaaaaa", &json!({"id": "bbbbbbbbbbbb"})),
            Err(CryptoError::IdMismatch {
                expected: "aaaaaaaaaaaa".to_owned(),
                found: Some("bbbbbbbbbbbb".to_owned()),
            })
        );
        assert_eq!(
            encrypt_record(&bundle, "aaaaaaaaaaaa", &json!([1, 2])),
            Err(CryptoError::NotAnObject)
        );
    }

    #[test]
    fn id_mismatch_is_refused() {
        let bundle = KeyBundle::random();
        let payload = encrypt_record(&bundle, "aaaaaaaaaaaa", &json!({"x": 1})).unwrap();
        assert_eq!(
            decrypt_record(&bundle, "bbbbbbbbbbbb", &payload),
            Err(CryptoError::IdMismatch {
                expected: "bbbbbbbbbbbb".to_owned(),
                found: Some("aaaaaaaaaaaa".to_owned()),
            })
        );
    }

    #[test]
    fn records_without_a_string_id_are_refused() {
        let bundle = KeyBundle::random();
        for cleartext in [json!({"x": 1}), json!({"id": 5})] {
            let payload =
                serde_json::to_string(&encrypt(&bundle, cleartext.to_string().as_bytes())).unwrap();
            assert_eq!(
                decrypt_record(&bundle, "aaaaaaaaaaaa", &payload),
                Err(CryptoError::IdMismatch {
                    expected: "aaaaaaaaaaaa".to_owned(),
                    found: None,
                })
            );
        }
    }

    #[test]
    fn non_json_payloads_and_cleartexts_are_refused() {
        let bundle = KeyBundle::random();
        for payload in [
            "",
            "not json",
            "{}",
            r#"{"ciphertext":"x","IV":"y"}"#,
            "[1]",
        ] {
            assert_eq!(
                decrypt_record(&bundle, "id", payload),
                Err(CryptoError::BadPayload),
                "{payload:?}"
            );
        }
        let not_json = serde_json::to_string(&encrypt(&bundle, b"{not json")).unwrap();
        assert_eq!(
            decrypt_record(&bundle, "id", &not_json),
            Err(CryptoError::NotJson)
        );
        let not_utf8 = serde_json::to_string(&encrypt(&bundle, &[0xff, 0xfe])).unwrap();
        assert_eq!(
            decrypt_record(&bundle, "id", &not_utf8),
            Err(CryptoError::NotJson)
        );
        let array = serde_json::to_string(&encrypt(&bundle, b"[\"id\"]")).unwrap();
        assert_eq!(
            decrypt_record(&bundle, "id", &array),
            Err(CryptoError::NotAnObject)
        );
    }

    #[test]
    fn a_wrong_key_on_a_record_is_an_hmac_mismatch() {
        let payload =
            encrypt_record(&KeyBundle::random(), "aaaaaaaaaaaa", &json!({"a": 1})).unwrap();
        assert_eq!(
            decrypt_record(&KeyBundle::random(), "aaaaaaaaaaaa", &payload),
            Err(CryptoError::HmacMismatch)
        );
    }
}
