//! Canonical JSON: the one text a JSON value is hashed as.
//!
//! A content signature covers bytes, yet the server stores, and clients receive, JSON
//! *values*: keys get reordered, whitespace and escapes vary between serializers. Both
//! sides therefore re-serialize the value with the same fixed rules before hashing, and
//! those rules have to match the reference implementations exactly (the server's
//! canonicaljson-rs and Firefox's `CanonicalJSON`), or signatures made by one will not
//! verify in the other:
//!
//! - object keys sorted by Unicode code point (explicitly here, so the result does not
//!   depend on how `serde_json::Map` happens to be compiled: its `preserve_order` feature
//!   can be switched on by any crate in the build, and once was in Mozilla's own crate);
//! - no whitespace at all;
//! - strings escape `"` and `\`, use `\b \f \n \r \t`, write every other character outside
//!   printable ASCII (other C0 controls, DEL and all non-ASCII) as `\uXXXX` with lowercase
//!   hex, astral characters as a UTF-16 surrogate pair; `/` is not escaped;
//! - integers in plain decimal; floats are refused (see [`CanonicalError::Float`]).
//!
//! DEL (U+007F) is not named in the Remote Settings rules but both reference
//! implementations escape it (Rust's `escape_default` and `jsesc` each treat it as
//! non-printable), so we do too.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use crate::CanonicalError;

/// Serializes `value` as canonical JSON.
///
/// Fails with [`CanonicalError::Float`] if the value contains a number that is not an
/// integer in the `i64`/`u64` range. Implementations write floats differently (exponent
/// form on the server, shortest decimal in Firefox), so no signature over one could be
/// verified everywhere; the reference server refuses them in records for that reason.
/// Note that `serde_json` parses `-0` as a float, so it is refused as well.
pub fn canonical_json(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // `str`'s ordering compares UTF-8 bytes, which is the same as comparing code points.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item)?;
    }
    out.push('}');
    Ok(())
}

fn write_number(out: &mut String, n: &Number) -> Result<(), CanonicalError> {
    if let Some(i) = n.as_i64() {
        write!(out, "{i}").expect("writing to a String cannot fail");
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}").expect("writing to a String cannot fail");
    } else {
        return Err(CanonicalError::Float(n.to_string()));
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(out, "\\u{unit:04x}").expect("writing to a String cannot fail");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(value: Value, expected: &str) {
        assert_eq!(canonical_json(&value).unwrap(), expected);
    }

    #[test]
    fn scalars() {
        check(json!(null), "null");
        check(json!(true), "true");
        check(json!(false), "false");
        check(json!(""), r#""""#);
        check(json!([]), "[]");
        check(json!({}), "{}");
    }

    #[test]
    fn integers() {
        check(json!(0), "0");
        check(json!(123), "123");
        check(json!(-123), "-123");
        check(json!(i64::MIN), "-9223372036854775808");
        check(json!(u64::MAX), "18446744073709551615");
        check(json!(1603992731957u64), "1603992731957");
    }

    #[test]
    fn floats_are_refused() {
        for v in [json!(1.5), json!(1.0), json!(-0.0), json!({"a": [1, 2.5]})] {
            assert!(matches!(canonical_json(&v), Err(CanonicalError::Float(_))));
        }
        // Floats written as JSON text are refused too, whatever their spelling.
        for text in ["1e3", "2.0", "-0"] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert!(canonical_json(&v).is_err(), "{text} accepted");
        }
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        check(
            json!({"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": 3}, "A": null}),
            r#"{"A":null,"a":{"c":3,"d":[{"y":2,"z":1}]},"b":1}"#,
        );
        // Arrays keep their order.
        check(json!(["b", "a", "c"]), r#"["b","a","c"]"#);
    }

    #[test]
    fn keys_are_sorted_by_code_point() {
        // U+00E9 sorts after 'z' (0x7A) but before U+FB01 and the astral U+1F600; a UTF-16
        // sort would put U+1F600 (0xD83D…) before U+FB01.
        check(
            json!({"\u{1F600}": 4, "\u{FB01}": 3, "é": 2, "z": 1}),
            r#"{"z":1,"\u00e9":2,"\ufb01":3,"\ud83d\ude00":4}"#,
        );
    }

    #[test]
    fn keys_are_sorted_even_when_inserted_out_of_order() {
        // Build the map by hand so the test holds whatever Map's backing type is.
        let mut map = Map::new();
        map.insert("last_modified".into(), json!(2));
        map.insert("id".into(), json!("x"));
        map.insert("foo".into(), json!("bar"));
        check(
            Value::Object(map),
            r#"{"foo":"bar","id":"x","last_modified":2}"#,
        );
    }

    #[test]
    fn string_escapes() {
        check(json!("a\"b\\c"), r#""a\"b\\c""#);
        check(json!("\u{08}\u{0c}\n\r\t"), r#""\b\f\n\r\t""#);
        check(
            json!("\u{0}\u{1}\u{1f}\u{7f}"),
            r#""\u0000\u0001\u001f\u007f""#,
        );
        check(json!("image/jpeg </script>"), r#""image/jpeg </script>""#);
        check(json!("it's ~ fine"), r#""it's ~ fine""#);
    }

    #[test]
    fn non_ascii_is_escaped_lowercase() {
        check(json!("é"), r#""\u00e9""#);
        check(json!("I ❤ testing"), r#""I \u2764 testing""#);
        check(json!("\u{FFFF}"), r#""\uffff""#);
        check(json!({"é": "ę"}), r#"{"\u00e9":"\u0119"}"#);
    }

    #[test]
    fn astral_chars_are_surrogate_pairs() {
        check(json!("😀"), r#""\ud83d\ude00""#);
        check(json!("𝄞"), r#""\ud834\udd1e""#);
        check(
            json!("\u{10000} \u{10FFFF}"),
            r#""\ud800\udc00 \udbff\udfff""#,
        );
    }

    #[test]
    fn a_record_set() {
        let records = json!({
            "last_modified": "1603992731957",
            "data": [
                {"id": "b", "last_modified": 2, "name": "Zoë", "tags": ["x", "y"], "meta": null},
                {"last_modified": 1, "id": "a", "enabled": true, "filter_expression": "env.version|versionCompare('90') >= 0"},
            ],
        });
        check(
            records,
            concat!(
                r#"{"data":[{"id":"b","last_modified":2,"meta":null,"name":"Zo\u00eb","tags":["x","y"]},"#,
                r#"{"enabled":true,"filter_expression":"env.version|versionCompare('90') >= 0","id":"a","last_modified":1}],"#,
                r#""last_modified":"1603992731957"}"#,
            ),
        );
    }

    #[test]
    fn output_parses_back_to_the_same_value() {
        let value = json!({"k\u{1}ey": ["\u{1F600}", -5, {"n": "\\/\""}], "": false});
        let text = canonical_json(&value).unwrap();
        assert!(text.is_ascii());
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
