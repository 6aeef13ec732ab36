//! Readable listings of the common record formats (storage format 5 object formats).
//!
//! Each listing reads only the fields it shows and tolerates records that lack them: other
//! clients write these records, and a listing must never fail on one odd record.

use serde_json::Value;
use sync_client::session::Record;

fn text<'a>(record: &'a Value, field: &str) -> &'a str {
    record.get(field).and_then(Value::as_str).unwrap_or("")
}

/// One line per record, in the order given; tombstones are skipped.
pub fn render(collection: &str, records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| !r.is_tombstone())
        .map(|r| line(collection, &r.cleartext))
        .collect()
}

fn line(collection: &str, r: &Value) -> String {
    match collection {
        "bookmarks" => match text(r, "type") {
            "folder" => format!(
                "[folder] {}  ({} children)",
                text(r, "title"),
                r.get("children")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            "separator" => "----".to_owned(),
            "query" => format!("[query] {}  {}", text(r, "title"), text(r, "bmkUri")),
            _ => format!("{}  {}", text(r, "title"), text(r, "bmkUri")),
        },
        "passwords" => format!(
            "{}  user {:?}  password {}",
            text(r, "hostname"),
            text(r, "username"),
            "*".repeat(text(r, "password").chars().count().min(12))
        ),
        "tabs" => {
            let mut out = format!("{}:", text(r, "clientName"));
            for tab in r
                .get("tabs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let url = tab
                    .get("urlHistory")
                    .and_then(Value::as_array)
                    .and_then(|h| h.first())
                    .and_then(Value::as_str)
                    .unwrap_or("");
                out.push_str(&format!("\n  {}  {url}", text(tab, "title")));
            }
            out
        }
        "history" => {
            let visits = r.get("visits").and_then(Value::as_array);
            let last = visits
                .and_then(|v| {
                    v.iter()
                        .filter_map(|visit| visit.get("date").and_then(Value::as_u64))
                        .max()
                })
                .map(|micros| format!("last visit {} s", micros / 1_000_000))
                .unwrap_or_default();
            format!(
                "{}  {}  ({} visits{}{last})",
                text(r, "title"),
                text(r, "histUri"),
                visits.map_or(0, Vec::len),
                if last.is_empty() { "" } else { ", " }
            )
        }
        _ => r.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sync_proto::SyncTimestamp;

    fn record(value: Value) -> Record {
        Record {
            id: "x".into(),
            modified: SyncTimestamp::ZERO,
            cleartext: value,
            sortindex: None,
        }
    }

    #[test]
    fn renders_the_common_formats() {
        let lines = render(
            "bookmarks",
            &[
                record(
                    json!({"id": "a", "type": "bookmark", "title": "Rust", "bmkUri": "https://rust-lang.org"}),
                ),
                record(json!({"id": "b", "type": "folder", "title": "Menu", "children": ["a"]})),
                record(json!({"id": "c", "deleted": true})),
            ],
        );
        assert_eq!(
            lines,
            ["Rust  https://rust-lang.org", "[folder] Menu  (1 children)"]
        );
        let passwords = render(
            "passwords",
            &[record(
                json!({"id": "p", "hostname": "https://x", "username": "me", "password": "hunter2"}),
            )],
        );
        assert_eq!(passwords, ["https://x  user \"me\"  password *******"]);
        assert!(!passwords[0].contains("hunter2"));
        let tabs = render(
            "tabs",
            &[record(
                json!({"id": "t", "clientName": "laptop", "tabs": [{"title": "T", "urlHistory": ["https://a", "https://b"]}]}),
            )],
        );
        assert_eq!(tabs, ["laptop:\n  T  https://a"]);
        let history = render(
            "history",
            &[record(
                json!({"id": "h", "title": "H", "histUri": "https://h", "visits": [{"date": 3_000_000u64, "type": 1}]}),
            )],
        );
        assert_eq!(history, ["H  https://h  (1 visits, last visit 3 s)"]);
        // Odd records never fail.
        assert_eq!(render("bookmarks", &[record(json!({"id": "z"}))]), ["  "]);
    }
}
