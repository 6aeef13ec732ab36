//! `GET|POST|DELETE /1.5/{uid}/storage/{collection}`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use sync_proto::SyncTimestamp;
use syncstorage_store::{Bso, BsoPage, WriteBsos};

use super::{SyncResponse, quota, refuse_known_bad_payload, wire};
use crate::auth::HawkUser;
use crate::error::ApiError;
use crate::extractors::{
    BatchMode, CollectionPath, CollectionQuery, DeclaredSizes, IdsQuery, OutputFormat, PostBody,
    Preconditions,
};
use crate::headers::{X_WEAVE_NEXT_OFFSET, X_WEAVE_RECORDS};
use crate::state::AppState;

/// Lists a collection, as ids or full records, in JSON or one record per line.
pub async fn get(
    State(state): State<AppState>,
    user: HawkUser,
    path: CollectionPath,
    query: CollectionQuery,
    format: OutputFormat,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let full = query.listing.full;
    let found = state
        .store
        .get_bsos(user.uid, &path.collection, query.listing, pre)
        .await?;
    let BsoPage { items, next } = found.value;
    let body = encode_listing(&items, full, format)?;
    let content_type = match format {
        OutputFormat::Json => "application/json",
        OutputFormat::Newlines => "application/newlines",
    };
    let mut response = SyncResponse::raw(body, content_type, found.last_modified)
        .with_header(X_WEAVE_RECORDS, &items.len().to_string());
    if let Some(next) = next {
        response = response.with_header(X_WEAVE_NEXT_OFFSET, &next.to_string());
    }
    Ok(response)
}

fn encode_listing(items: &[Bso], full: bool, format: OutputFormat) -> Result<Vec<u8>, ApiError> {
    let internal = |e: serde_json::Error| {
        ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            sync_proto::WeaveError::Unknown,
            e.to_string(),
        )
    };
    match (format, full) {
        (OutputFormat::Json, true) => {
            serde_json::to_vec(&items.iter().map(wire).collect::<Vec<_>>()).map_err(internal)
        }
        (OutputFormat::Json, false) => {
            serde_json::to_vec(&items.iter().map(|b| &b.id).collect::<Vec<_>>()).map_err(internal)
        }
        (OutputFormat::Newlines, _) => {
            // serde_json escapes control characters, so a record never spans two lines.
            let mut body = Vec::new();
            for bso in items {
                if full {
                    serde_json::to_writer(&mut body, &wire(bso)).map_err(internal)?;
                } else {
                    serde_json::to_writer(&mut body, &bso.id).map_err(internal)?;
                }
                body.push(b'\n');
            }
            Ok(body)
        }
    }
}

/// Body of a plain or committing POST.
#[derive(Serialize)]
struct PostResult<'a> {
    modified: SyncTimestamp,
    success: Vec<&'a str>,
    failed: &'a BTreeMap<String, String>,
}

/// Body of a POST that opens or adds to a batch.
#[derive(Serialize)]
struct BatchResult<'a> {
    batch: &'a str,
    success: Vec<&'a str>,
    failed: &'a BTreeMap<String, String>,
}

/// Writes records, directly or through a batch.
pub async fn post(
    State(state): State<AppState>,
    user: HawkUser,
    path: CollectionPath,
    query: CollectionQuery,
    _sizes: DeclaredSizes,
    Preconditions(pre): Preconditions,
    body: PostBody,
) -> Result<SyncResponse, ApiError> {
    let PostBody { valid, failed } = body;
    let success: Vec<String> = valid.iter().map(|u| u.id.clone()).collect();
    let success_refs: Vec<&str> = success.iter().map(String::as_str).collect();
    let write = WriteBsos {
        user: user.uid,
        collection: path.collection,
        items: valid,
        precondition: pre,
        quota: quota(&state),
    };
    refuse_known_bad_payload(&write)?;
    let max_records = state.settings.limits.max_total_records;
    match query.batch {
        BatchMode::None => {
            let outcome = state.store.put_bsos(write, false).await?;
            let result = PostResult {
                modified: outcome.modified,
                success: success_refs,
                failed: &failed,
            };
            Ok(SyncResponse::json(&result, outcome.modified)?.with_quota(&state, &outcome))
        }
        BatchMode::Start => {
            let opened = state.store.create_batch(write, max_records).await?;
            let result = BatchResult {
                batch: &opened.value,
                success: success_refs,
                failed: &failed,
            };
            Ok(
                SyncResponse::json(&result, opened.last_modified)?
                    .with_status(StatusCode::ACCEPTED),
            )
        }
        BatchMode::Append(batch) => {
            let last_modified = state.store.append_batch(&batch, write, max_records).await?;
            let result = BatchResult {
                batch: &batch,
                success: success_refs,
                failed: &failed,
            };
            Ok(SyncResponse::json(&result, last_modified)?.with_status(StatusCode::ACCEPTED))
        }
        BatchMode::Commit(batch) => {
            let (outcome, _all_ids) = state.store.commit_batch(&batch, write).await?;
            let result = PostResult {
                modified: outcome.modified,
                success: success_refs,
                failed: &failed,
            };
            Ok(SyncResponse::json(&result, outcome.modified)?.with_quota(&state, &outcome))
        }
    }
}

/// Deletes the collection, or only the records named by `ids`. The body is the new
/// timestamp as a bare number, as on Mozilla's server.
pub async fn delete(
    State(state): State<AppState>,
    user: HawkUser,
    path: CollectionPath,
    IdsQuery(ids): IdsQuery,
    Preconditions(pre): Preconditions,
) -> Result<SyncResponse, ApiError> {
    let modified = match ids {
        Some(ids) => {
            state
                .store
                .delete_bsos(user.uid, &path.collection, ids, pre)
                .await?
        }
        None => {
            state
                .store
                .delete_collection(user.uid, &path.collection, pre)
                .await?
        }
    };
    SyncResponse::json(&modified, modified)
}
