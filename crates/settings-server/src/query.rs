//! Listing parameters: filters, sorting, fields, limit and pagination, applied to the
//! objects of one list.
//!
//! The store returns a whole list; these rules run here so that every backend filters and
//! sorts the same way. Remote Settings lists are thousands of objects, not millions, and
//! the hot read paths are served from cached bodies anyway.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use settings_store::{Object, RawObject};

use crate::error::KintoError;

/// A field filter.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Min,
    Max,
    Lt,
    Gt,
    Not,
    In,
    Exclude,
    Like,
    Has,
    Contains,
    ContainsAny,
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    op: Op,
    field: String,
    value: Value,
}

/// Parsed listing parameters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    filters: Vec<Filter>,
    sort: Vec<(String, bool)>,
    /// `_fields`, when given.
    pub fields: Option<Vec<String>>,
    /// `_limit`, when given.
    pub limit: Option<usize>,
    /// Position of the page (from `_token`).
    pub offset: usize,
    /// Whether tombstones belong in the answer (`_since` / `_before` / a `last_modified` filter).
    pub include_deleted: bool,
}

/// The pagination token: where the next page starts.
#[derive(Serialize, Deserialize)]
struct Token {
    offset: usize,
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// `_since` / `_before` accept a quoted value (as an ETag) and `null`.
fn parse_timestamp(name: &str, text: &str) -> Result<Option<i64>, KintoError> {
    let bare = text.trim_matches('"');
    if bare == "null" || bare.is_empty() {
        return Ok(None);
    }
    bare.parse::<i64>().map(Some).map_err(|_| {
        KintoError::invalid_parameter("querystring", name, "must be an integer timestamp")
    })
}

impl ListQuery {
    /// Parses a query string.
    pub fn parse(query: &str) -> Result<ListQuery, KintoError> {
        let mut parsed = ListQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "_since" | "_to" => {
                    if let Some(ts) = parse_timestamp(key, value)? {
                        parsed.filters.push(Filter {
                            op: Op::Gt,
                            field: "last_modified".into(),
                            value: ts.into(),
                        });
                        parsed.include_deleted = true;
                    }
                }
                "_before" => {
                    if let Some(ts) = parse_timestamp(key, value)? {
                        parsed.filters.push(Filter {
                            op: Op::Lt,
                            field: "last_modified".into(),
                            value: ts.into(),
                        });
                        parsed.include_deleted = true;
                    }
                }
                "_sort" => {
                    parsed.sort = value
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(|f| match f.strip_prefix('-') {
                            Some(name) => (name.to_owned(), true),
                            None => (f.to_owned(), false),
                        })
                        .collect();
                }
                "_fields" => {
                    parsed.fields = Some(
                        value
                            .split(',')
                            .filter(|f| !f.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                "_limit" => {
                    parsed.limit = Some(value.parse().map_err(|_| {
                        KintoError::invalid_parameter(
                            "querystring",
                            "_limit",
                            "must be a positive integer",
                        )
                    })?)
                }
                "_token" => {
                    let token: Token = URL_SAFE_NO_PAD
                        .decode(value)
                        .ok()
                        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                        .ok_or_else(|| {
                            KintoError::invalid_parameter(
                                "querystring",
                                "_token",
                                "invalid pagination token",
                            )
                        })?;
                    parsed.offset = token.offset;
                }
                key if key.starts_with('_') => {}
                key => {
                    let (op, field) = match key.split_once('_') {
                        Some(("min", f)) => (Op::Min, f),
                        Some(("max", f)) => (Op::Max, f),
                        Some(("lt", f)) => (Op::Lt, f),
                        Some(("gt", f)) => (Op::Gt, f),
                        Some(("not", f)) => (Op::Not, f),
                        Some(("in", f)) => (Op::In, f),
                        Some(("exclude", f)) => (Op::Exclude, f),
                        Some(("like", f)) => (Op::Like, f),
                        Some(("has", f)) => (Op::Has, f),
                        Some(("contains", f)) if !f.starts_with("any_") => (Op::Contains, f),
                        Some(("contains", f)) => (Op::ContainsAny, &f[4..]),
                        _ => (Op::Eq, key),
                    };
                    let value = match op {
                        Op::In | Op::Exclude => {
                            Value::Array(value.split(',').map(parse_value).collect())
                        }
                        _ => parse_value(value),
                    };
                    if field == "last_modified" {
                        parsed.include_deleted = true;
                    }
                    parsed.filters.push(Filter {
                        op,
                        field: field.to_owned(),
                        value,
                    });
                }
            }
        }
        Ok(parsed)
    }

    /// Filters and sorts `objects` (tombstones only match `id`/`last_modified` filters).
    pub fn apply(&self, objects: Vec<Object>) -> Vec<Object> {
        let pairs = objects
            .into_iter()
            .map(|o| {
                let json = o.to_json();
                (o, json)
            })
            .collect();
        self.filter_and_sort(pairs)
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    }

    /// Whether the query looks at nothing but `id`, `last_modified` and `deleted` (no
    /// `_fields`, filters and sorting on those alone): then stored objects can be
    /// answered as stored, without parsing them ([`ListQuery::apply_raw`]).
    pub fn needs_only_metadata(&self) -> bool {
        let metadata = |field: &str| matches!(field, "id" | "last_modified" | "deleted");
        self.fields.is_none()
            && self.filters.iter().all(|f| metadata(&f.field))
            && self.sort.iter().all(|(field, _)| metadata(field))
    }

    /// Filters and sorts unparsed objects, by their metadata (only meaningful when
    /// [`ListQuery::needs_only_metadata`]). The sort compares the metadata where it lies,
    /// by the same rules as [`compare`]: it is most of the work of a large list answered
    /// uncached, and building a JSON object per record only to look fields up in it cost
    /// more than copying the records.
    pub fn apply_raw(&self, objects: Vec<RawObject>) -> Vec<RawObject> {
        let mut matching: Vec<RawObject> = if self.filters.is_empty() {
            objects
        } else {
            objects
                .into_iter()
                .filter(|o| {
                    let meta = metadata_json(o);
                    self.filters.iter().all(|f| f.matches(&meta))
                })
                .collect()
        };
        matching.sort_by(|a, b| self.order(|field| Meta::of(a, field).cmp(&Meta::of(b, field))));
        matching
    }

    /// Filters and sorts JSON entries that are not stored objects (the permissions
    /// endpoint's), by the same rules.
    pub fn apply_json(&self, entries: Vec<Value>) -> Vec<Value> {
        let pairs = entries.into_iter().map(|v| ((), v)).collect();
        self.filter_and_sort(pairs)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    fn filter_and_sort<T>(&self, pairs: Vec<(T, Value)>) -> Vec<(T, Value)> {
        let mut matching: Vec<(T, Value)> = pairs
            .into_iter()
            .filter(|(_, json)| self.filters.iter().all(|f| f.matches(json)))
            .collect();
        matching.sort_by(|(_, a), (_, b)| {
            self.order(|field| compare(lookup(a, field), lookup(b, field)))
        });
        matching
    }

    /// Kinto's order of two objects, given how they compare on one field: the `_sort`
    /// fields in turn, a `-` field reversed, newest first when no `_sort` was given.
    fn order(&self, mut on_field: impl FnMut(&str) -> Ordering) -> Ordering {
        if self.sort.is_empty() {
            return on_field("last_modified").reverse();
        }
        for (field, descending) in &self.sort {
            let ordering = on_field(field);
            let ordering = if *descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// The token of the page after one that ended at `offset`.
    pub fn next_token(offset: usize) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Token { offset }).expect("a token serializes"))
    }

    /// Keeps only `_fields` (plus `id` and `last_modified`) of an object's JSON.
    pub fn project(&self, value: Value) -> Value {
        let (Some(fields), Value::Object(map)) = (&self.fields, &value) else {
            return value;
        };
        let mut out = serde_json::Map::new();
        for (key, field) in map {
            let root = |f: &String| f.split('.').next() == Some(key.as_str());
            if key == "id" || key == "last_modified" || key == "deleted" || fields.iter().any(root)
            {
                out.insert(key.clone(), field.clone());
            }
        }
        Value::Object(out)
    }
}

/// What filters of an unparsed object see: its metadata as JSON.
fn metadata_json(o: &RawObject) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("id".into(), Value::String(o.id.clone()));
    meta.insert("last_modified".into(), o.last_modified.into());
    if o.deleted {
        meta.insert("deleted".into(), Value::Bool(true));
    }
    Value::Object(meta)
}

/// A metadata field of an unparsed object, ordered as [`compare`] orders its JSON: absent
/// first, then booleans (true first), numbers, strings.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Meta<'a> {
    Absent,
    Bool(std::cmp::Reverse<bool>),
    Number(i64),
    Text(&'a str),
}

impl<'a> Meta<'a> {
    fn of(o: &'a RawObject, field: &str) -> Meta<'a> {
        match field {
            "id" => Meta::Text(&o.id),
            "last_modified" => Meta::Number(o.last_modified),
            "deleted" if o.deleted => Meta::Bool(std::cmp::Reverse(true)),
            _ => Meta::Absent,
        }
    }
}

fn lookup<'a>(value: &'a Value, field: &str) -> Option<&'a Value> {
    field
        .split('.')
        .try_fold(value, |current, part| current.get(part))
}

/// Kinto's order: null < booleans (true first when sorting) < numbers < strings < others.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => y.cmp(x),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        let field = lookup(object, &self.field);
        match self.op {
            Op::Has => {
                let wanted = !matches!(self.value, Value::Bool(false)) && self.value != 0;
                field.is_some() == wanted
            }
            _ if field.is_none()
                && object.get("deleted").is_some()
                && self.field != "last_modified"
                && self.field != "id" =>
            {
                false
            }
            Op::Eq => field == Some(&self.value),
            Op::Not => field != Some(&self.value),
            Op::Min => compare(field, Some(&self.value)) != Ordering::Less && field.is_some(),
            Op::Max => compare(field, Some(&self.value)) != Ordering::Greater && field.is_some(),
            Op::Lt => field.is_some() && compare(field, Some(&self.value)) == Ordering::Less,
            Op::Gt => field.is_some() && compare(field, Some(&self.value)) == Ordering::Greater,
            Op::In => self
                .value
                .as_array()
                .is_some_and(|values| field.is_some_and(|f| values.contains(f))),
            Op::Exclude => !self
                .value
                .as_array()
                .is_some_and(|values| field.is_some_and(|f| values.contains(f))),
            Op::Like => {
                let pattern = self
                    .value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| self.value.to_string());
                field
                    .and_then(Value::as_str)
                    .is_some_and(|text| like(text, &pattern))
            }
            Op::Contains => {
                let wanted: Vec<Value> = match &self.value {
                    Value::Array(values) => values.clone(),
                    other => vec![other.clone()],
                };
                field
                    .and_then(Value::as_array)
                    .is_some_and(|have| wanted.iter().all(|w| have.contains(w)))
            }
            Op::ContainsAny => {
                let wanted: Vec<Value> = match &self.value {
                    Value::Array(values) => values.clone(),
                    other => vec![other.clone()],
                };
                field
                    .and_then(Value::as_array)
                    .is_some_and(|have| wanted.iter().any(|w| have.contains(w)))
            }
        }
    }
}

/// Kinto's `like_`: the value appears in the field, `*` standing for any run of
/// characters; case-insensitive and unanchored, as Kinto's search is.
fn like(text: &str, pattern: &str) -> bool {
    let text = text.to_lowercase();
    let mut position = 0;
    for part in pattern.to_lowercase().split('*').filter(|p| !p.is_empty()) {
        match text[position..].find(part) {
            Some(found) => position += found + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(id: &str, ts: i64, data: Value) -> Object {
        Object {
            id: id.into(),
            last_modified: ts,
            data: data.as_object().unwrap().clone(),
            deleted: false,
        }
    }

    fn ids(query: &str, objects: Vec<Object>) -> Vec<String> {
        ListQuery::parse(query)
            .unwrap()
            .apply(objects)
            .into_iter()
            .map(|o| o.id)
            .collect()
    }

    fn sample() -> Vec<Object> {
        vec![
            object(
                "a",
                1,
                json!({"n": 1, "name": "Alpha", "tags": ["x", "y"], "sub": {"k": 1}}),
            ),
            object("b", 2, json!({"n": 5, "name": "beta", "tags": ["y"]})),
            object("c", 3, json!({"n": 10, "name": "Gamma", "flag": true})),
        ]
    }

    #[test]
    fn filters() {
        assert_eq!(ids("", sample()), ["c", "b", "a"]);
        assert_eq!(ids("n=5", sample()), ["b"]);
        assert_eq!(ids("min_n=5&_sort=n", sample()), ["b", "c"]);
        assert_eq!(ids("max_n=5&_sort=n", sample()), ["a", "b"]);
        assert_eq!(ids("lt_n=5", sample()), ["a"]);
        assert_eq!(ids("gt_n=5", sample()), ["c"]);
        assert_eq!(ids("not_n=5&_sort=id", sample()), ["a", "c"]);
        assert_eq!(ids("in_id=a,c&_sort=id", sample()), ["a", "c"]);
        assert_eq!(ids("exclude_id=a,c", sample()), ["b"]);
        assert_eq!(ids("like_name=a*a", sample()), ["c", "a"]);
        assert_eq!(ids("like_name=ET", sample()), ["b"]);
        assert_eq!(ids("has_flag=true", sample()), ["c"]);
        assert_eq!(ids("has_flag=false&_sort=id", sample()), ["a", "b"]);
        assert_eq!(ids("contains_tags=y&_sort=id", sample()), ["a", "b"]);
        assert_eq!(ids("contains_any_tags=[\"x\"]", sample()), ["a"]);
        assert_eq!(ids("sub.k=1", sample()), ["a"]);
        assert_eq!(ids("_since=1&_sort=last_modified", sample()), ["b", "c"]);
        assert_eq!(ids("_since=\"1\"&_before=3", sample()), ["b"]);
        assert_eq!(ids("_sort=-name", sample()), ["b", "c", "a"]);
    }

    #[test]
    fn raw_objects_are_filtered_and_sorted_as_parsed_ones() {
        // With a tombstone, and a timestamp that ties with another object's.
        let mut objects = sample();
        objects.insert(
            1,
            Object {
                deleted: true,
                ..object("d", 2, json!({}))
            },
        );
        let raw: Vec<RawObject> = objects
            .clone()
            .into_iter()
            .map(|o| RawObject {
                data: serde_json::to_string(&o.data).unwrap(),
                id: o.id,
                last_modified: o.last_modified,
                deleted: o.deleted,
            })
            .collect();
        for query in [
            "",
            "_since=1",
            "_sort=id",
            "_before=3&_sort=-id",
            "in_id=a,c",
            "_sort=-last_modified,id",
            "_sort=deleted,-id",
            "_sort=-deleted,last_modified",
        ] {
            let parsed = ListQuery::parse(query).unwrap();
            assert!(parsed.needs_only_metadata(), "{query}");
            let ids: Vec<String> = parsed
                .apply_raw(raw.clone())
                .into_iter()
                .map(|o| o.id)
                .collect();
            assert_eq!(ids, super::tests::ids(query, objects.clone()), "{query}");
        }
        for query in ["n=5", "_sort=name", "_fields=name", "has_flag=true"] {
            assert!(
                !ListQuery::parse(query).unwrap().needs_only_metadata(),
                "{query}"
            );
        }
    }

    #[test]
    fn refuses_bad_parameters() {
        assert!(ListQuery::parse("_limit=x").is_err());
        assert!(ListQuery::parse("_since=abc").is_err());
        assert!(ListQuery::parse("_token=!!").is_err());
    }

    #[test]
    fn projects_fields() {
        let query = ListQuery::parse("_fields=name,sub.k").unwrap();
        let projected = query.project(sample()[0].to_json());
        assert_eq!(
            projected,
            json!({"id": "a", "last_modified": 1, "name": "Alpha", "sub": {"k": 1}})
        );
    }

    #[test]
    fn tokens_round_trip() {
        let token = ListQuery::next_token(20);
        assert_eq!(
            ListQuery::parse(&format!("_token={token}")).unwrap().offset,
            20
        );
    }
}
