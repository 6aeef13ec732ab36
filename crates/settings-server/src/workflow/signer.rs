//! The signing key with its certificate chain, and what a signature looks like in a
//! collection's metadata.
//!
//! The chain is published as an x5u URL whose file name follows Autograph's
//! `<signer name>-<notAfter YYYY-MM-DD-HH-MM-SS>.chain`, so a new certificate always gets a
//! new URL: a CDN can cache a chain forever, and a client holding an old signature still
//! finds the chain it was made with.

use content_signature::{Signer, signed_message, signed_payload};
use serde_json::{Map, Value, json};

/// Why a key or chain cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// A file could not be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key or the chain is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// A signing key and the chain that certifies it.
pub struct ChainSigner {
    signer: Signer,
    /// The x5u chain, PEM, signer first.
    pub chain_pem: String,
    /// The chain's file name under the x5u base URL.
    pub chain_name: String,
    /// The chain's URL.
    pub x5u: String,
    /// When the signing certificate expires (Unix seconds).
    pub not_after: i64,
}

impl std::fmt::Debug for ChainSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSigner")
            .field("signer", &self.signer)
            .field("x5u", &self.x5u)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ChainSigner {
    /// Loads a key and its chain (PEM). The chain's first certificate must hold the key
    /// and be issued for `signer_name`; `x5u_base` is where the chain is published.
    pub fn from_pem(
        key_pem: &str,
        chain_pem: &str,
        signer_name: &str,
        x5u_base: &str,
    ) -> Result<ChainSigner, SignerError> {
        let invalid = |m: String| SignerError::Invalid(m);
        let signer = Signer::from_pem(key_pem).map_err(|e| invalid(format!("signing key: {e}")))?;
        let first = x509_parser::pem::Pem::iter_from_buffer(chain_pem.as_bytes())
            .next()
            .ok_or_else(|| invalid("the chain holds no certificate".into()))?
            .map_err(|e| invalid(format!("chain PEM: {e}")))?;
        let cert = first
            .parse_x509()
            .map_err(|e| invalid(format!("signing certificate: {e}")))?;
        let names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some((*dns).to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !names.iter().any(|n| n.eq_ignore_ascii_case(signer_name)) {
            return Err(invalid(format!(
                "the signing certificate is for {names:?}, not the signer name {signer_name:?}"
            )));
        }
        // A key that does not belong to the certificate would publish signatures no client
        // accepts: check it by signing once.
        let probe = b"Content-Signature:\x00syncstack key check";
        content_signature::verify_signature(probe, &signer.sign(probe), &first.contents).map_err(
            |_| invalid("the signing key does not match the chain's certificate".into()),
        )?;
        let not_after = cert.validity().not_after.timestamp();
        let chain_name = format!("{signer_name}-{}.chain", chain_date(not_after));
        let base = if x5u_base.ends_with('/') {
            x5u_base.to_owned()
        } else {
            format!("{x5u_base}/")
        };
        Ok(ChainSigner {
            signer,
            chain_pem: chain_pem.to_owned(),
            x5u: format!("{base}{chain_name}"),
            chain_name,
            not_after,
        })
    }

    /// The signature object of `records` (tombstones are dropped) at records `timestamp`,
    /// as stored in a collection's metadata.
    pub fn sign(&self, records: &[Value], timestamp: i64) -> Result<Value, String> {
        let payload =
            signed_payload(records, timestamp.max(0) as u64).map_err(|e| e.to_string())?;
        let signature = self.signer.sign(&signed_message(&payload));
        Ok(json!({
            "mode": "p384ecdsa",
            "signature": signature,
            "x5u": self.x5u,
        }))
    }

    /// Seconds until the certificate expires (negative once it has).
    pub fn expires_in(&self, now_unix: i64) -> i64 {
        self.not_after - now_unix
    }
}

/// Sets `signature` and `signatures` in collection metadata, or removes them when there
/// is nothing to sign with (an old signature would only fail verification).
pub fn store_signature(metadata: &mut Map<String, Value>, signature: Option<Value>) {
    match signature {
        Some(signature) => {
            metadata.insert("signatures".into(), Value::Array(vec![signature.clone()]));
            metadata.insert("signature".into(), signature);
        }
        None => {
            metadata.remove("signature");
            metadata.remove("signatures");
        }
    }
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now as the reference writes tracking dates (Python's `isoformat()` in UTC):
/// `2024-05-01T12:34:56.123456+00:00`.
pub fn now_iso() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil(now.as_secs() as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}+00:00",
        now.subsec_micros()
    )
}

/// Autograph's date in chain file names: `YYYY-MM-DD-HH-MM-SS`.
pub fn chain_date(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}")
}

/// A Unix time for people: `2027-01-31 12:00:00 UTC`.
pub fn utc_date(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// UTC calendar date and time of a Unix time (Howard Hinnant's days-to-civil).
fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, (secs % 3600) / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NAME: &str = "remote-settings.content-signature.mozilla.org";

    #[test]
    fn dates() {
        assert_eq!(chain_date(0), "1970-01-01-00-00-00");
        assert_eq!(chain_date(1_445_412_480), "2015-10-21-07-28-00");
        assert_eq!(chain_date(951_782_400), "2000-02-29-00-00-00");
        assert_eq!(utc_date(1_445_412_480), "2015-10-21 07:28:00 UTC");
        let iso = now_iso();
        assert_eq!(iso.len(), "2024-05-01T12:34:56.123456+00:00".len());
        assert!(iso.ends_with("+00:00"));
    }

    #[test]
    fn loads_checks_and_signs() {
        let now = now_unix() as u64;
        let pki =
            content_signature::init_dev_pki(NAME, Duration::from_secs(30 * 86_400), now).unwrap();
        let signer = ChainSigner::from_pem(
            &pki.signer_key_pem,
            &pki.chain_pem,
            NAME,
            "https://example.com/certs",
        )
        .unwrap();
        assert!(
            signer
                .x5u
                .starts_with(&format!("https://example.com/certs/{NAME}-"))
        );
        assert!(signer.x5u.ends_with(".chain"));
        assert!((signer.expires_in(now as i64) - 30 * 86_400).abs() < 5);
        let records = vec![json!({"id": "a", "last_modified": 5})];
        let signature = signer.sign(&records, 5).unwrap();
        assert_eq!(signature["mode"], "p384ecdsa");
        content_signature::verify(
            &records,
            5,
            signature["signature"].as_str().unwrap(),
            &pki.chain_pem,
            &pki.root_sha256_bytes(),
            NAME,
            now,
        )
        .unwrap();

        // Another name, or a key of another chain, is refused.
        assert!(
            ChainSigner::from_pem(&pki.signer_key_pem, &pki.chain_pem, "other.example", "x")
                .is_err()
        );
        let other =
            content_signature::init_dev_pki(NAME, Duration::from_secs(86_400), now).unwrap();
        let error =
            ChainSigner::from_pem(&other.signer_key_pem, &pki.chain_pem, NAME, "x").unwrap_err();
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn signatures_in_metadata() {
        let mut metadata = Map::new();
        store_signature(&mut metadata, Some(json!({"signature": "s"})));
        assert_eq!(metadata["signature"], json!({"signature": "s"}));
        assert_eq!(metadata["signatures"], json!([{"signature": "s"}]));
        store_signature(&mut metadata, None);
        assert!(metadata.is_empty());
    }
}
