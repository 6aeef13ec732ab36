//! Basic Storage Objects: names, ids and the validation of records sent by clients.
//!
//! Validation happens on a parsed `serde_json::Value` rather than through a derived
//! `Deserialize`, because a POST must report *which* record failed and why while the other
//! records are still written, and because the protocol distinguishes a field that is
//! absent (keep the stored value) from one that is `null` (reset it to the default).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::SyncTimestamp;

/// Longest TTL a record may ask for, in seconds (as Mozilla's server).
pub const MAX_TTL_SECONDS: u64 = 999_999_999;
/// Largest absolute sortindex (nine digits).
pub const MAX_SORTINDEX: i64 = 999_999_999;
/// Most ids accepted in an `ids=` query parameter.
pub const MAX_IDS_PER_REQUEST: usize = 100;

/// Whether `name` is a valid collection name: 1 to 32 of `[a-zA-Z0-9._-]`.
pub fn is_valid_collection_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `id` is a valid record id: 1 to 64 printable ASCII characters (space included).
pub fn is_valid_bso_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// A change to one stored field: keep it, reset it to its default, or set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// The field was absent: keep the stored value (or the default for a new record).
    #[default]
    Keep,
    /// The field was `null`: reset to the default.
    Reset,
    /// The field was given.
    Set(T),
}

impl<T> Patch<T> {
    /// Whether the client sent this field at all.
    pub fn is_given(&self) -> bool {
        !matches!(self, Patch::Keep)
    }

    /// Combines a later patch over this one: a later `Keep` leaves this one in force.
    pub fn then(self, later: Patch<T>) -> Patch<T> {
        match later {
            Patch::Keep => self,
            other => other,
        }
    }
}

/// A validated write of one record, as sent in a PUT or one item of a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsoUpdate {
    /// The record id.
    pub id: String,
    /// New sortindex.
    pub sortindex: Patch<i32>,
    /// New payload.
    pub payload: Patch<String>,
    /// New time-to-live in seconds from the write.
    pub ttl: Patch<u32>,
}

impl BsoUpdate {
    /// Size of the payload this update writes, in bytes (0 when it keeps the old one).
    pub fn payload_len(&self) -> usize {
        match &self.payload {
            Patch::Set(p) => p.len(),
            _ => 0,
        }
    }
}

/// Why a record was refused. The `Display` text is what a POST reports in `failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BsoError {
    /// The record is not a JSON object.
    #[error("invalid bso: not a JSON object")]
    NotAnObject,
    /// The record has no id (POST only; PUT takes it from the URL).
    #[error("invalid bso: missing id")]
    MissingId,
    /// The id is not 1–64 printable ASCII characters.
    #[error("invalid bso: invalid id")]
    InvalidId,
    /// A field has the wrong JSON type (payload not a string, sortindex or ttl not an
    /// integer, a negative ttl). Mozilla's server reports these as "invalid json".
    #[error("invalid json")]
    WrongType(&'static str),
    /// A number is outside the field's range.
    #[error("invalid bso: {0} out of range")]
    OutOfRange(&'static str),
    /// A field the protocol does not know.
    #[error("unknown field {0}")]
    UnknownField(String),
}

/// Validates one record. `url_id` is the id from the URL for a PUT; a POST passes `None`
/// and the record must carry its own id.
pub fn parse_bso(value: &Value, url_id: Option<&str>) -> Result<BsoUpdate, BsoError> {
    let object = value.as_object().ok_or(BsoError::NotAnObject)?;
    let body_id = parse_id(object)?;
    let id = match (url_id, body_id) {
        (Some(url), _) => url.to_owned(),
        (None, Some(id)) => id,
        (None, None) => return Err(BsoError::MissingId),
    };
    let mut update = BsoUpdate {
        id,
        sortindex: Patch::Keep,
        payload: Patch::Keep,
        ttl: Patch::Keep,
    };
    for (key, field) in object {
        match key.as_str() {
            "id" | "modified" | "collection" => {}
            "sortindex" => update.sortindex = parse_sortindex(field)?,
            "payload" => {
                update.payload = match field {
                    Value::Null => Patch::Reset,
                    Value::String(s) => Patch::Set(s.clone()),
                    _ => return Err(BsoError::WrongType("payload")),
                }
            }
            "ttl" => update.ttl = parse_ttl(field)?,
            other => return Err(BsoError::UnknownField(other.to_owned())),
        }
    }
    Ok(update)
}

/// Reads the record's own id, if it has one, and checks its form.
pub fn parse_id(object: &Map<String, Value>) -> Result<Option<String>, BsoError> {
    match object.get("id") {
        None => Ok(None),
        Some(Value::String(id)) if is_valid_bso_id(id) => Ok(Some(id.clone())),
        Some(_) => Err(BsoError::InvalidId),
    }
}

fn parse_sortindex(field: &Value) -> Result<Patch<i32>, BsoError> {
    match field {
        Value::Null => Ok(Patch::Reset),
        Value::Number(n) => match n.as_i64() {
            Some(v) if v.abs() <= MAX_SORTINDEX => Ok(Patch::Set(v as i32)),
            Some(_) => Err(BsoError::OutOfRange("sortindex")),
            None if n.is_u64() => Err(BsoError::OutOfRange("sortindex")),
            None => Err(BsoError::WrongType("sortindex")),
        },
        _ => Err(BsoError::WrongType("sortindex")),
    }
}

fn parse_ttl(field: &Value) -> Result<Patch<u32>, BsoError> {
    match field {
        Value::Null => Ok(Patch::Reset),
        Value::Number(n) => match n.as_u64() {
            Some(v) if v <= MAX_TTL_SECONDS => Ok(Patch::Set(v as u32)),
            Some(_) => Err(BsoError::OutOfRange("ttl")),
            None => Err(BsoError::WrongType("ttl")),
        },
        _ => Err(BsoError::WrongType("ttl")),
    }
}

/// A stored record as the server returns it: exactly `id`, `modified`, `payload` and, when
/// set, `sortindex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BsoOut<'a> {
    /// The record id.
    pub id: &'a str,
    /// When the record was last written.
    pub modified: SyncTimestamp,
    /// The (encrypted) payload.
    pub payload: &'a str,
    /// The sortindex, omitted when the record has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sortindex: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_ids() {
        assert!(is_valid_collection_name("bookmarks"));
        assert!(is_valid_collection_name("a.b_c-D9"));
        assert!(!is_valid_collection_name(""));
        assert!(!is_valid_collection_name(&"x".repeat(33)));
        assert!(!is_valid_collection_name("with space"));
        assert!(is_valid_bso_id("has space ~"));
        assert!(!is_valid_bso_id("tab\there"));
        assert!(!is_valid_bso_id(&"x".repeat(65)));
        assert!(!is_valid_bso_id(""));
        assert!(!is_valid_bso_id("é"));
    }

    #[test]
    fn absent_null_and_given_fields_differ() {
        let update = parse_bso(&json!({"id": "a", "payload": null, "sortindex": 5}), None).unwrap();
        assert_eq!(update.payload, Patch::Reset);
        assert_eq!(update.sortindex, Patch::Set(5));
        assert_eq!(update.ttl, Patch::Keep);
    }

    #[test]
    fn put_takes_the_url_id() {
        let update = parse_bso(&json!({"id": "other", "payload": "x"}), Some("url")).unwrap();
        assert_eq!(update.id, "url");
    }

    #[test]
    fn refuses_bad_fields() {
        let cases = [
            (
                json!({"id": "a", "sortindex": "2"}),
                BsoError::WrongType("sortindex"),
            ),
            (
                json!({"id": "a", "sortindex": 2.5}),
                BsoError::WrongType("sortindex"),
            ),
            (
                json!({"id": "a", "sortindex": 1_000_000_000}),
                BsoError::OutOfRange("sortindex"),
            ),
            (
                json!({"id": "a", "sortindex": -1_000_000_000}),
                BsoError::OutOfRange("sortindex"),
            ),
            (
                json!({"id": "a", "payload": 42}),
                BsoError::WrongType("payload"),
            ),
            (json!({"id": "a", "ttl": -1}), BsoError::WrongType("ttl")),
            (json!({"id": "a", "ttl": "1"}), BsoError::WrongType("ttl")),
            (
                json!({"id": "a", "ttl": 1_000_000_000u64}),
                BsoError::OutOfRange("ttl"),
            ),
            (
                json!({"id": "a", "foo": 1}),
                BsoError::UnknownField("foo".into()),
            ),
            (json!({"id": 7}), BsoError::InvalidId),
            (json!({"payload": "x"}), BsoError::MissingId),
            (json!([1]), BsoError::NotAnObject),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_bso(&value, None), Err(expected), "{value}");
        }
    }

    #[test]
    fn output_omits_missing_sortindex() {
        let out = BsoOut {
            id: "a",
            modified: SyncTimestamp::from_millis(1230),
            payload: "p",
            sortindex: None,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"id":"a","modified":1.23,"payload":"p"}"#
        );
    }
}
