//! What exactly is signed for a Remote Settings collection.
//!
//! The signature covers the collection's live records and their timestamp, not the HTTP
//! response they arrive in, so that a client can re-check what it has stored at any time,
//! whatever mix of full fetches and incremental diffs produced it. The steps, identical in
//! the reference server and every client:
//!
//! 1. drop tombstones (`"deleted": true`): deleted records are not part of the content;
//! 2. sort by `id`, so the order records were stored or sent in does not matter;
//! 3. wrap them as `{"data": [...], "last_modified": "<timestamp>"}`, the timestamp as a
//!    decimal *string* (including it stops an old, validly signed record set from being
//!    replayed as newer);
//! 4. write that object as [canonical JSON](crate::canonical);
//! 5. prefix it with [`PREFIX`], so a content signature can never be confused with a
//!    signature its key made over some other kind of data.
//!
//! Records are taken as given: a client must first remove its local-only fields (Firefox
//! strips `_status`, application-services a `null` `attachment`), the server signs records
//! as stored.

use serde_json::Value;

use crate::CanonicalError;
use crate::canonical::canonical_json;

/// Prepended to the payload before signing: `Content-Signature:` and a NUL byte, 19 bytes.
pub const PREFIX: &[u8] = b"Content-Signature:\x00";

/// Builds the canonical JSON payload for `records` at collection `timestamp`.
///
/// Tombstones are dropped and the rest sorted by `id` (code-point order, which matches
/// the server and Firefox for the ASCII ids Remote Settings uses). Fails if a record is not
/// an object with a string `id`, or contains a float.
pub fn signed_payload(records: &[Value], timestamp: u64) -> Result<String, CanonicalError> {
    signed_payload_of(records, timestamp)
}

/// [`signed_payload`] over any collection of borrowed records (a map's values, say), so a
/// caller holding many records does not copy them to sign or verify.
pub fn signed_payload_of<'a>(
    records: impl IntoIterator<Item = &'a Value>,
    timestamp: u64,
) -> Result<String, CanonicalError> {
    let mut live: Vec<(&str, &Value)> = Vec::new();
    for record in records {
        let object = record
            .as_object()
            .ok_or_else(|| CanonicalError::BadRecord("not a JSON object".into()))?;
        if object.get("deleted") == Some(&Value::Bool(true)) {
            continue;
        }
        let id = object
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| CanonicalError::BadRecord("missing string id".into()))?;
        live.push((id, record));
    }
    live.sort_by(|a, b| a.0.cmp(b.0));

    // The canonical form of {"data": [...], "last_modified": "<ts>"}, written piecewise:
    // the two keys are already in sorted order, and each record is canonicalized alone.
    let mut payload = String::from("{\"data\":[");
    for (index, (_, record)) in live.into_iter().enumerate() {
        if index > 0 {
            payload.push(',');
        }
        payload.push_str(&canonical_json(record)?);
    }
    payload.push_str("],\"last_modified\":\"");
    payload.push_str(&timestamp.to_string());
    payload.push_str("\"}");
    Ok(payload)
}

/// The bytes a content signature covers: [`PREFIX`] followed by the UTF-8 `payload` (as
/// returned by [`signed_payload`]).
pub fn signed_message(payload: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(PREFIX.len() + payload.len());
    message.extend_from_slice(PREFIX);
    message.extend_from_slice(payload.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prefix_is_nineteen_bytes_with_nul() {
        assert_eq!(PREFIX.len(), 19);
        assert_eq!(PREFIX.last(), Some(&0));
    }

    #[test]
    fn empty_collection() {
        let payload = signed_payload(&[], 1603992731957).unwrap();
        assert_eq!(payload, r#"{"data":[],"last_modified":"1603992731957"}"#);
        assert_eq!(
            signed_message(&payload),
            b"Content-Signature:\x00{\"data\":[],\"last_modified\":\"1603992731957\"}"
        );
    }

    #[test]
    fn tombstones_dropped_and_sorted_by_id() {
        let records = [
            json!({"id": "c", "last_modified": 3, "x": 1}),
            json!({"id": "a", "last_modified": 1, "deleted": true}),
            json!({"id": "b", "last_modified": 2, "deleted": false}),
        ];
        assert_eq!(
            signed_payload(&records, 42).unwrap(),
            concat!(
                r#"{"data":[{"deleted":false,"id":"b","last_modified":2},"#,
                r#"{"id":"c","last_modified":3,"x":1}],"last_modified":"42"}"#
            )
        );
    }

    #[test]
    fn bad_records_are_refused() {
        assert!(matches!(
            signed_payload(&[json!("a")], 1),
            Err(CanonicalError::BadRecord(_))
        ));
        assert!(matches!(
            signed_payload(&[json!({"id": 5})], 1),
            Err(CanonicalError::BadRecord(_))
        ));
        assert!(matches!(
            signed_payload(&[json!({"id": "a", "n": 0.5})], 1),
            Err(CanonicalError::Float(_))
        ));
        // A tombstone is dropped before it is looked at, as the reference server does.
        assert!(signed_payload(&[json!({"deleted": true, "n": 0.5})], 1).is_ok());
    }
}
