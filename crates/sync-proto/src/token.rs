//! Tokens in Mozilla's tokenlib v2 format: a signed JSON payload and the Hawk key derived
//! from it.
//!
//! The token server and every storage node share one master secret. The token server signs
//! a payload naming the user and the node; the node checks the signature and derives the
//! same Hawk key, so the two never need to talk to each other. Mozilla's Python tokenlib
//! and syncstorage-rs use exactly this construction, so a node here accepts their tokens
//! and they accept ours.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const SIGNING_INFO: &[u8] = b"services.mozilla.com/tokenlib/v1/signing";
const DERIVE_INFO_PREFIX: &str = "services.mozilla.com/tokenlib/v1/derive/";
const SIGNATURE_LEN: usize = 32;

/// The shared master secret. Its `Debug` form never shows the value.
#[derive(Clone)]
pub struct MasterSecret(Vec<u8>);

impl MasterSecret {
    /// Wraps the secret exactly as configured (its UTF-8 bytes, as tokenlib uses it).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        MasterSecret(secret.into())
    }

    /// A fresh random secret: 32 random bytes written as 64 hex characters.
    pub fn generate() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    /// A key for another purpose, derived from the secret with HKDF under `label`, so that
    /// one configured secret can serve several uses without any of them revealing it.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        hkdf_sha256(&self.0, None, format!("syncstack/{label}").as_bytes())
    }

    fn signing_key(&self) -> [u8; 32] {
        hkdf_sha256(&self.0, None, SIGNING_INFO)
    }
}

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

/// The claims carried by a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPayload {
    /// The storage node URL the token is valid for.
    pub node: String,
    /// The user's numeric id on that node.
    pub uid: u64,
    /// Expiry, in seconds since the epoch (tokenlib writes a float, syncstorage-rs an
    /// integer; a whole number is written as an integer so that both read it).
    #[serde(serialize_with = "serialize_expires")]
    pub expires: f64,
    /// Random hex string that salts the derived key.
    pub salt: String,
    /// The account's uid at the identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fxa_uid: Option<String>,
    /// `<keys_changed_at>-<client state>` of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fxa_kid: Option<String>,
    /// Hash of the account uid, for metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_fxa_uid: Option<String>,
    /// Hash of the device id, for metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_device_id: Option<String>,
    /// Which implementation minted the token: `"python"` or `"rust"`, the only values
    /// Mozilla's storage nodes accept (they refuse a token naming anything else with 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenserver_origin: Option<String>,
}

fn serialize_expires<S: serde::Serializer>(
    expires: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if expires.fract() == 0.0 && (0.0..9.0e15).contains(expires) {
        serializer.serialize_u64(*expires as u64)
    } else {
        serializer.serialize_f64(*expires)
    }
}

/// The `tokenserver_origin` syncstack writes into the tokens it mints.
pub const TOKENSERVER_ORIGIN: &str = "rust";

impl TokenPayload {
    /// A payload for `uid` on `node`, valid for `duration_secs` from now, with a fresh salt.
    pub fn new(uid: u64, node: &str, duration_secs: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut salt = [0u8; 3];
        rand::rng().fill_bytes(&mut salt);
        TokenPayload {
            node: node.to_owned(),
            uid,
            expires: (now + duration_secs) as f64,
            salt: hex::encode(salt),
            fxa_uid: None,
            fxa_kid: None,
            hashed_fxa_uid: None,
            hashed_device_id: None,
            // What Mozilla's Rust token server writes, so that its storage nodes accept
            // tokens minted here (a token server of ours in front of their nodes).
            tokenserver_origin: Some(TOKENSERVER_ORIGIN.to_owned()),
        }
    }
}

/// A minted token: the opaque `id` sent as the Hawk id, and the Hawk `key`.
#[derive(Clone)]
pub struct Token {
    /// The token string (url-safe base64 of payload and signature).
    pub id: String,
    /// The derived Hawk key (url-safe base64); its ASCII bytes are the MAC key.
    pub key: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. Deliberately coarse: a client learns nothing about which part
/// of a forged token was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not url-safe base64, or too short to hold a signature.
    #[error("token is malformed")]
    Malformed,
    /// The signature does not match the master secret.
    #[error("token signature is invalid")]
    BadSignature,
    /// The signed payload is not the expected JSON.
    #[error("token payload is invalid")]
    BadPayload,
}

/// Signs `payload` with the master secret and derives its Hawk key.
pub fn mint(secret: &MasterSecret, payload: &TokenPayload) -> Token {
    let payload_bytes = serde_json::to_vec(payload).expect("token payload serializes");
    let mut raw = payload_bytes.clone();
    raw.extend_from_slice(&sign(secret, &payload_bytes));
    let id = URL_SAFE.encode(raw);
    let key = derive_key(secret, &id, &payload.salt);
    Token { id, key }
}

/// Checks a token's signature and returns its payload and Hawk key. Expiry is checked by the
/// caller, which knows the request time and its own exceptions.
pub fn verify(secret: &MasterSecret, id: &str) -> Result<(TokenPayload, String), TokenError> {
    let raw = URL_SAFE
        .decode(id.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    if raw.len() <= SIGNATURE_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload_bytes, signature) = raw.split_at(raw.len() - SIGNATURE_LEN);
    let mut mac = new_mac(&secret.signing_key());
    mac.update(payload_bytes);
    mac.verify_slice(signature)
        .map_err(|_| TokenError::BadSignature)?;
    let payload: TokenPayload =
        serde_json::from_slice(payload_bytes).map_err(|_| TokenError::BadPayload)?;
    let key = derive_key(secret, id, &payload.salt);
    Ok((payload, key))
}

fn sign(secret: &MasterSecret, payload: &[u8]) -> [u8; 32] {
    let mut mac = new_mac(&secret.signing_key());
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

fn derive_key(secret: &MasterSecret, token_id: &str, salt: &str) -> String {
    let info = format!("{DERIVE_INFO_PREFIX}{token_id}");
    URL_SAFE.encode(hkdf_sha256(
        &secret.0,
        Some(salt.as_bytes()),
        info.as_bytes(),
    ))
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn hkdf_sha256(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_derives_the_same_key() {
        let secret = MasterSecret::new("s3cret");
        let payload = TokenPayload::new(42, "http://node.example:8000", 300);
        let token = mint(&secret, &payload);
        let (parsed, key) = verify(&secret, &token.id).unwrap();
        assert_eq!(parsed, payload);
        assert_eq!(key, token.key);
        assert_eq!(URL_SAFE.decode(&key).unwrap().len(), 32);
    }

    #[test]
    fn refuses_other_secrets_and_tampering() {
        let token = mint(
            &MasterSecret::new("a"),
            &TokenPayload::new(1, "http://n", 60),
        );
        assert_eq!(
            verify(&MasterSecret::new("b"), &token.id).unwrap_err(),
            TokenError::BadSignature
        );
        let mut raw = URL_SAFE.decode(&token.id).unwrap();
        raw[5] ^= 1;
        let tampered = URL_SAFE.encode(raw);
        assert_eq!(
            verify(&MasterSecret::new("a"), &tampered).unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            verify(&MasterSecret::new("a"), "!!!").unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(
            verify(&MasterSecret::new("a"), "AAAA").unwrap_err(),
            TokenError::Malformed
        );
    }

    /// A token laid out byte for byte as Python's tokenlib writes it (`json.dumps` with its
    /// spaces and a float `expires`) verifies: the signature covers the bytes, not a
    /// re-serialization.
    #[test]
    fn accepts_python_style_json() {
        let secret = MasterSecret::new("secret");
        let payload =
            br#"{"uid": 7, "node": "http://n", "expires": 1700000000.5, "salt": "a1b2c3"}"#;
        let mut raw = payload.to_vec();
        raw.extend_from_slice(&sign(&secret, payload));
        let id = URL_SAFE.encode(raw);
        let (parsed, key) = verify(&secret, &id).unwrap();
        assert_eq!(parsed.uid, 7);
        assert_eq!(parsed.expires, 1_700_000_000.5);
        assert_eq!(key, derive_key(&secret, &id, "a1b2c3"));
    }

    #[test]
    fn whole_expiry_times_are_integers() {
        let mut payload = TokenPayload::new(1, "http://n", 60);
        payload.expires = 1_700_000_000.0;
        assert!(
            serde_json::to_string(&payload)
                .unwrap()
                .contains("\"expires\":1700000000,")
        );
        payload.expires = 1_700_000_000.25;
        assert!(
            serde_json::to_string(&payload)
                .unwrap()
                .contains("\"expires\":1700000000.25,")
        );
    }

    #[test]
    fn secrets_are_redacted() {
        assert!(!format!("{:?}", MasterSecret::new("hunter2")).contains("hunter2"));
    }
}

/// Whether two node URLs name the same node: same scheme, host and port (default ports made
/// explicit, case ignored), and the same path prefix (trailing slash ignored).
///
/// A token names the node it is for; a node accepts only tokens naming its own public URL,
/// so that a token stolen from one node cannot be replayed against another that shares the
/// master secret.
pub fn same_node(a: &str, b: &str) -> bool {
    match (normalize_node_url(a), normalize_node_url(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The canonical form of a node URL, or `None` if it is not an http(s) URL.
pub fn normalize_node_url(node: &str) -> Option<String> {
    let url = url::Url::parse(node).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let path = url.path().trim_end_matches('/');
    Some(format!("{}://{host}:{port}{path}", url.scheme()))
}

#[cfg(test)]
mod node_tests {
    use super::*;

    #[test]
    fn compares_node_urls() {
        assert!(same_node("http://Example.com", "http://example.com:80/"));
        assert!(same_node("https://a.b/sync/", "https://a.b:443/sync"));
        assert!(!same_node("http://a.b", "https://a.b"));
        assert!(!same_node("http://a.b:8000", "http://a.b:8001"));
        assert!(!same_node("http://a.b/x", "http://a.b/y"));
        assert!(!same_node("not a url", "not a url"));
    }
}
