//! Hawk request signing as Sync uses it (header scheme, SHA-256, no bewit).
//!
//! Both sides live here so that the server's verification and the clients' signing can
//! never drift apart: a normalized string is built the same way for both. The server-side
//! freshness checks (timestamp window, nonce cache) belong to the server; this module only
//! knows the wire format and the MAC.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The attributes of a Hawk `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HawkHeader {
    /// The credentials id (a tokenlib token).
    pub id: String,
    /// The client's timestamp, in seconds.
    pub ts: u64,
    /// A random value unique per request.
    pub nonce: String,
    /// The request MAC (standard base64).
    pub mac: String,
    /// The payload hash, when the client sent one.
    pub hash: Option<String>,
    /// Application-specific data covered by the MAC.
    pub ext: Option<String>,
}

/// Why a Hawk header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HawkParseError {
    /// The header does not start with `Hawk `.
    #[error("not a Hawk authorization header")]
    NotHawk,
    /// An attribute is not `name="value"`, or repeats.
    #[error("malformed Hawk attribute list")]
    Malformed,
    /// One of `id`, `ts`, `nonce`, `mac` is missing.
    #[error("missing Hawk attribute {0}")]
    Missing(&'static str),
    /// `ts` is not an integer.
    #[error("invalid Hawk timestamp")]
    BadTimestamp,
}

impl HawkHeader {
    /// Parses an `Authorization` header value.
    pub fn parse(header: &str) -> Result<Self, HawkParseError> {
        let rest = header
            .strip_prefix("Hawk ")
            .ok_or(HawkParseError::NotHawk)?;
        let mut attributes = BTreeMap::new();
        let mut remaining = rest.trim_start();
        while !remaining.is_empty() {
            let (name, after_name) = remaining
                .split_once("=\"")
                .ok_or(HawkParseError::Malformed)?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(HawkParseError::Malformed);
            }
            let (value, after_value) = after_name
                .split_once('"')
                .ok_or(HawkParseError::Malformed)?;
            if attributes
                .insert(name.to_owned(), value.to_owned())
                .is_some()
            {
                return Err(HawkParseError::Malformed);
            }
            remaining = after_value.trim_start();
            if let Some(next) = remaining.strip_prefix(',') {
                remaining = next.trim_start();
            } else if !remaining.is_empty() {
                return Err(HawkParseError::Malformed);
            }
        }
        let mut take = |name: &'static str| attributes.remove(name);
        let id = take("id").ok_or(HawkParseError::Missing("id"))?;
        let ts = take("ts").ok_or(HawkParseError::Missing("ts"))?;
        let nonce = take("nonce").ok_or(HawkParseError::Missing("nonce"))?;
        let mac = take("mac").ok_or(HawkParseError::Missing("mac"))?;
        Ok(HawkHeader {
            id,
            ts: ts.parse().map_err(|_| HawkParseError::BadTimestamp)?,
            nonce,
            mac,
            hash: take("hash"),
            ext: take("ext"),
        })
    }

    /// Renders the header value.
    pub fn to_header_value(&self) -> String {
        let mut value = format!(
            "Hawk id=\"{}\", ts=\"{}\", nonce=\"{}\"",
            self.id, self.ts, self.nonce
        );
        if let Some(hash) = &self.hash {
            value.push_str(&format!(", hash=\"{hash}\""));
        }
        if let Some(ext) = &self.ext {
            value.push_str(&format!(", ext=\"{ext}\""));
        }
        value.push_str(&format!(", mac=\"{}\"", self.mac));
        value
    }
}

/// What a request's MAC covers besides the header's own attributes.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// Path and query string exactly as the client sent them.
    pub path_and_query: &'a str,
    /// Host name, without port.
    pub host: &'a str,
    /// Port (explicit, or the scheme's default).
    pub port: u16,
}

/// A request as a server received it, for [`verify_mac_behind`].
#[derive(Debug, Clone, Copy)]
pub struct ReceivedRequest<'a> {
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// Path and query as routed (after a proxy may have stripped a prefix).
    pub path_and_query: &'a str,
    /// Path and query before any nesting in the server's own router.
    pub original_path_and_query: &'a str,
    /// The `Host` header, if any.
    pub host_header: Option<&'a str>,
}

impl<'a> ReceivedRequest<'a> {
    /// The request as an HTTP server received it: `parts.uri` as routed, and `original`, the
    /// URI as the client sent it when the server's own router stripped a prefix (axum's
    /// `OriginalUri`), so that every service reads a request for Hawk the same way.
    pub fn from_parts(parts: &'a http::request::Parts, original: Option<&'a http::Uri>) -> Self {
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        ReceivedRequest {
            method: parts.method.as_str(),
            path_and_query,
            original_path_and_query: original
                .and_then(|uri| uri.path_and_query())
                .map_or(path_and_query, |pq| pq.as_str()),
            host_header: parts
                .headers
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok()),
        }
    }
}

/// Checks the MAC of a request that a client may have signed for the server's public URL
/// (host, port and path prefix, when a reverse proxy publishes it) or for the address it
/// reached directly: the public URL is tried first, then the request as received.
pub fn verify_mac_behind(
    key: &[u8],
    header: &HawkHeader,
    public_url: &url::Url,
    request: &ReceivedRequest<'_>,
) -> bool {
    let prefix = public_url.path().trim_end_matches('/');
    let public_path = format!("{prefix}{}", request.path_and_query);
    if let (Some(host), Some(port)) = (public_url.host_str(), public_url.port_or_known_default()) {
        let target = RequestTarget {
            method: request.method,
            path_and_query: &public_path,
            host,
            port,
        };
        if verify_mac(key, header, &target) {
            return true;
        }
    }
    let Some(host_header) = request.host_header else {
        return false;
    };
    let default_port = if public_url.scheme() == "https" {
        443
    } else {
        80
    };
    let (host, port) = match host_header.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => return false,
        },
        _ => (host_header, default_port),
    };
    let target = RequestTarget {
        method: request.method,
        path_and_query: request.original_path_and_query,
        host,
        port,
    };
    verify_mac(key, header, &target)
}

/// Builds the normalized string that the MAC signs.
pub fn normalized_string(header: &HawkHeader, target: &RequestTarget<'_>) -> String {
    format!(
        "hawk.1.header\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        header.ts,
        header.nonce,
        target.method.to_ascii_uppercase(),
        target.path_and_query,
        target.host.to_ascii_lowercase(),
        target.port,
        header.hash.as_deref().unwrap_or(""),
        header.ext.as_deref().unwrap_or(""),
    )
}

/// The MAC of a request under `key` (the ASCII bytes of the token's derived key).
pub fn compute_mac(key: &[u8], header: &HawkHeader, target: &RequestTarget<'_>) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(normalized_string(header, target).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a request's MAC in constant time.
pub fn verify_mac(key: &[u8], header: &HawkHeader, target: &RequestTarget<'_>) -> bool {
    let Ok(given) = STANDARD.decode(header.mac.as_bytes()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(normalized_string(header, target).as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The Hawk payload hash of a body with the given content type (parameters dropped).
pub fn payload_hash(content_type: &str, body: &[u8]) -> String {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut hasher = Sha256::new();
    hasher.update(b"hawk.1.payload\n");
    hasher.update(media_type.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.update(b"\n");
    STANDARD.encode(hasher.finalize())
}

/// Compares a payload hash in constant time.
pub fn payload_hash_matches(expected: &str, content_type: &str, body: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let actual = payload_hash(content_type, body);
    actual.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The `tsm` of a stale-timestamp challenge: the server's time MACed with the client's key,
/// so the client can trust the time it is told to adjust to.
pub fn timestamp_mac(key: &[u8], now: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("hawk.1.ts\n{now}\n").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs a request as a client: a fresh nonce and the current time every call.
///
/// `payload` is `(content type, body)` when the client wants the body covered by the MAC.
pub fn sign_request(
    id: &str,
    key: &[u8],
    target: &RequestTarget<'_>,
    payload: Option<(&str, &[u8])>,
) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sign_request_at(id, key, target, payload, ts)
}

/// As [`sign_request`], at a chosen client time (for tests of the timestamp window).
pub fn sign_request_at(
    id: &str,
    key: &[u8],
    target: &RequestTarget<'_>,
    payload: Option<(&str, &[u8])>,
    ts: u64,
) -> String {
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    let mut header = HawkHeader {
        id: id.to_owned(),
        ts,
        nonce: STANDARD.encode(nonce),
        mac: String::new(),
        hash: payload.map(|(content_type, body)| payload_hash(content_type, body)),
        ext: None,
    };
    header.mac = compute_mac(key, &header, target);
    header.to_header_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_request_reads_the_routed_and_the_original_uri() {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/1.5/7/storage/forms?batch=true")
            .header(http::header::HOST, "sync.example:8000")
            .body(())
            .unwrap()
            .into_parts();
        let sent: http::Uri = "/sync/1.5/7/storage/forms?batch=true".parse().unwrap();
        let nested = ReceivedRequest::from_parts(&parts, Some(&sent));
        assert_eq!(nested.method, "POST");
        assert_eq!(nested.path_and_query, "/1.5/7/storage/forms?batch=true");
        assert_eq!(
            nested.original_path_and_query,
            "/sync/1.5/7/storage/forms?batch=true"
        );
        assert_eq!(nested.host_header, Some("sync.example:8000"));
        let direct = ReceivedRequest::from_parts(&parts, None);
        assert_eq!(direct.original_path_and_query, direct.path_and_query);
    }

    fn target() -> RequestTarget<'static> {
        RequestTarget {
            method: "GET",
            path_and_query: "/1.5/1/info/collections?x=1",
            host: "Example.com",
            port: 8000,
        }
    }

    #[test]
    fn parses_what_it_signs() {
        let header = sign_request("tok", b"key", &target(), Some(("application/json", b"[]")));
        let parsed = HawkHeader::parse(&header).unwrap();
        assert_eq!(parsed.id, "tok");
        assert!(parsed.hash.is_some());
        assert!(verify_mac(b"key", &parsed, &target()));
        assert!(!verify_mac(b"other", &parsed, &target()));
        let moved = RequestTarget {
            path_and_query: "/1.5/2/info/collections?x=1",
            ..target()
        };
        assert!(!verify_mac(b"key", &parsed, &moved));
    }

    /// The example of the Hawk specification (its README), which fixes the normalized string
    /// and the MAC for credentials `dh37fgj492je` / `werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn`.
    #[test]
    fn hawk_specification_example() {
        let header = HawkHeader {
            id: "dh37fgj492je".into(),
            ts: 1353832234,
            nonce: "j4h3g2".into(),
            mac: String::new(),
            hash: None,
            ext: Some("some-app-ext-data".into()),
        };
        let target = RequestTarget {
            method: "GET",
            path_and_query: "/resource/1?b=1&a=2",
            host: "example.com",
            port: 8000,
        };
        let mac = compute_mac(
            b"werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn",
            &header,
            &target,
        );
        assert_eq!(mac, "6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE=");
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "Basic abc",
            "Hawk id=\"a\"",
            "Hawk id=\"a\", ts=\"x\", nonce=\"n\", mac=\"m\"",
            "Hawk id=\"a\" ts=\"1\", nonce=\"n\", mac=\"m\"",
            "Hawk id=\"a\", id=\"b\", ts=\"1\", nonce=\"n\", mac=\"m\"",
            "Hawk id=\"a, ts=\"1\"",
        ] {
            assert!(HawkHeader::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_hash_ignores_content_type_parameters() {
        assert_eq!(
            payload_hash("Application/JSON; charset=utf-8", b"{}"),
            payload_hash("application/json", b"{}")
        );
        assert!(payload_hash_matches(
            &payload_hash("text/plain", b"x"),
            "text/plain",
            b"x"
        ));
        assert!(!payload_hash_matches(
            &payload_hash("text/plain", b"x"),
            "text/plain",
            b"y"
        ));
    }
}
