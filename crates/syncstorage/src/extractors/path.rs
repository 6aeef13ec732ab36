//! Path parameters: collection names and record ids.
//!
//! Mozilla's server matches names in its route regexes, so a bad collection name is a 404
//! (the route does not exist) while a bad record id, checked after URL-decoding, is a 400.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use sync_proto::WeaveError;
use sync_proto::bso::{is_valid_bso_id, is_valid_collection_name};

use crate::error::ApiError;

/// `/1.5/{uid}/storage/{collection}`.
#[derive(Debug, Clone)]
pub struct CollectionPath {
    /// The collection name, validated.
    pub collection: String,
}

/// `/1.5/{uid}/storage/{collection}/{bso}`.
#[derive(Debug, Clone)]
pub struct BsoPath {
    /// The collection name, validated.
    pub collection: String,
    /// The record id, validated.
    pub id: String,
}

async fn params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<HashMap<String, String>, ApiError> {
    Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|Path(params)| params)
        .map_err(|e| ApiError::not_found(format!("bad path: {e}")))
}

fn collection(params: &HashMap<String, String>) -> Result<String, ApiError> {
    let name = params.get("collection").cloned().unwrap_or_default();
    if !is_valid_collection_name(&name) {
        return Err(ApiError::not_found(format!(
            "invalid collection name {name:?}"
        )));
    }
    Ok(name)
}

impl<S: Send + Sync> FromRequestParts<S> for CollectionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = params(parts, state).await?;
        Ok(CollectionPath {
            collection: collection(&params)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BsoPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = params(parts, state).await?;
        let collection = collection(&params)?;
        let id = params.get("bso").cloned().unwrap_or_default();
        if !is_valid_bso_id(&id) {
            return Err(ApiError::bad_request(
                WeaveError::Unknown,
                format!("invalid record id {id:?}"),
            ));
        }
        Ok(BsoPath { collection, id })
    }
}
