//! Query strings of collection requests.
//!
//! Parsed by hand from the raw query rather than through a derived `Deserialize`, so that
//! each bad value gets its own log reason, a repeated key keeps its last value, `full` counts
//! by presence alone, and unknown parameters are ignored, all as on Mozilla's server.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sync_proto::bso::{MAX_IDS_PER_REQUEST, is_valid_bso_id};
use sync_proto::{SyncTimestamp, WeaveError};
use syncstorage_store::{BsoQuery, Cursor, Sort};

use crate::error::ApiError;
use crate::state::AppState;

/// What a POST asks of batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchMode {
    /// A plain POST (also `batch=true&commit=true`).
    None,
    /// `batch=true`: open a batch.
    Start,
    /// `batch=ID`: add to a batch.
    Append(String),
    /// `batch=ID&commit=true`: add and commit.
    Commit(String),
}

/// The parameters of a collection GET, POST or DELETE.
#[derive(Debug, Clone)]
pub struct CollectionQuery {
    /// The listing the GET asks for (`ids=` included).
    pub listing: BsoQuery,
    /// What the POST asks of batches.
    pub batch: BatchMode,
}

/// Only the `ids` parameter (DELETE of a collection).
#[derive(Debug, Clone)]
pub struct IdsQuery(pub Option<Vec<String>>);

fn bad(reason: String) -> ApiError {
    ApiError::bad_request(WeaveError::Unknown, reason)
}

fn parse_ids(value: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(bad(format!(
            "{} ids, at most {MAX_IDS_PER_REQUEST} allowed",
            ids.len()
        )));
    }
    if let Some(id) = ids.iter().find(|id| !is_valid_bso_id(id)) {
        return Err(bad(format!("invalid id {id:?} in ids")));
    }
    Ok(ids)
}

fn is_true(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}

/// Parses a raw query string against the node's limits.
pub fn parse(query: &str, max_page: u64) -> Result<CollectionQuery, ApiError> {
    let mut listing = BsoQuery {
        limit: u32::try_from(max_page).unwrap_or(u32::MAX),
        ..BsoQuery::default()
    };
    let mut ids = None;
    let mut batch = None;
    let mut commit = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "ids" => ids = Some(parse_ids(&value)?),
            "newer" => {
                listing.newer = Some(
                    SyncTimestamp::parse_seconds(&value).map_err(|e| bad(format!("newer: {e}")))?,
                )
            }
            "older" => {
                listing.older = Some(
                    SyncTimestamp::parse_seconds(&value).map_err(|e| bad(format!("older: {e}")))?,
                )
            }
            "full" => listing.full = true,
            "limit" => {
                let limit: u32 = value
                    .parse()
                    .map_err(|_| bad(format!("limit {value:?} is not a count")))?;
                listing.limit = limit.min(listing.limit.max(1));
            }
            "offset" => {
                listing.cursor = Some(
                    value
                        .parse::<Cursor>()
                        .map_err(|_| bad(format!("offset {value:?} was not issued here")))?,
                )
            }
            "sort" => {
                listing.sort = match value.as_ref() {
                    "newest" | "none" => Sort::Newest,
                    "oldest" => Sort::Oldest,
                    "index" => Sort::Index,
                    other => return Err(bad(format!("unknown sort {other:?}"))),
                }
            }
            "batch" => batch = Some(value.into_owned()),
            "commit" => commit = Some(value.into_owned()),
            _ => {}
        }
    }
    listing.ids = ids;
    let batch = match (batch, commit) {
        (None, None) => BatchMode::None,
        (None, Some(_)) => return Err(bad("commit without batch".into())),
        (Some(_), Some(commit)) if !is_true(&commit) => {
            return Err(bad(format!("commit={commit:?}: only \"true\" is allowed")));
        }
        (Some(b), commit) if b.is_empty() || is_true(&b) => {
            if commit.is_some() {
                BatchMode::None
            } else {
                BatchMode::Start
            }
        }
        (Some(b), commit) => {
            if b.len() > 64
                || !b
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'='))
            {
                return Err(bad(format!("invalid batch id {b:?}")));
            }
            if commit.is_some() {
                BatchMode::Commit(b)
            } else {
                BatchMode::Append(b)
            }
        }
    };
    Ok(CollectionQuery { listing, batch })
}

impl FromRequestParts<AppState> for CollectionQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        parse(
            parts.uri.query().unwrap_or(""),
            state.settings.limits.max_total_records,
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdsQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut ids = None;
        for (key, value) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        {
            if key == "ids" {
                ids = Some(parse_ids(&value)?);
            }
        }
        Ok(IdsQuery(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listing_parameters() {
        let q = parse(
            "ids=a,%20b,,c&newer=1.5&full=&limit=2&sort=index&unknown=1",
            10_000,
        )
        .unwrap();
        assert_eq!(
            q.listing.ids,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(q.listing.newer, Some(SyncTimestamp::from_millis(1500)));
        assert!(q.listing.full);
        assert_eq!(q.listing.limit, 2);
        assert_eq!(q.listing.sort, Sort::Index);
        assert_eq!(q.batch, BatchMode::None);
    }

    #[test]
    fn caps_the_page_at_the_limit() {
        assert_eq!(parse("", 100).unwrap().listing.limit, 100);
        assert_eq!(parse("limit=500", 100).unwrap().listing.limit, 100);
    }

    #[test]
    fn refuses_bad_values() {
        let many = (0..101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        for bad in [
            "newer=abc".to_owned(),
            "older=-1".to_owned(),
            "limit=-1".to_owned(),
            "limit=x".to_owned(),
            "offset=garbage.!".to_owned(),
            "sort=sideways".to_owned(),
            format!("ids={many}"),
            "ids=a%09b".to_owned(),
            "commit=true".to_owned(),
            "batch=true&commit=yes".to_owned(),
            "batch=%2F%2F".to_owned(),
        ] {
            assert!(parse(&bad, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_batch_modes() {
        assert_eq!(parse("batch=true", 1).unwrap().batch, BatchMode::Start);
        assert_eq!(parse("batch=", 1).unwrap().batch, BatchMode::Start);
        assert_eq!(
            parse("batch=TRUE&commit=true", 1).unwrap().batch,
            BatchMode::None
        );
        assert_eq!(
            parse("batch=abc", 1).unwrap().batch,
            BatchMode::Append("abc".into())
        );
        assert_eq!(
            parse("batch=abc&commit=True", 1).unwrap().batch,
            BatchMode::Commit("abc".into())
        );
    }
}
