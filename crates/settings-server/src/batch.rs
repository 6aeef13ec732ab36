//! `POST /v1/batch`: several requests in one, each run through the same routes as if sent
//! alone (with the batch's credentials), answered in order. As in Kinto, a batch is not a
//! transaction: each subrequest succeeds or fails on its own.

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower::ServiceExt;

use crate::error::KintoError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    defaults: Option<SubRequest>,
    requests: Vec<SubRequest>,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct SubRequest {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct BatchResponse {
    responses: Vec<SubResponse>,
}

#[derive(Serialize)]
struct SubResponse {
    status: u16,
    path: String,
    body: Value,
    headers: Map<String, Value>,
}

/// Reads a whole subresponse body (small JSON documents made by this server).
async fn collect(body: Body) -> Bytes {
    axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default()
}

fn merge(defaults: &Option<SubRequest>, request: SubRequest) -> SubRequest {
    let Some(defaults) = defaults else {
        return request;
    };
    let mut headers = defaults.headers.clone().unwrap_or_default();
    headers.extend(request.headers.unwrap_or_default());
    SubRequest {
        method: request.method.or_else(|| defaults.method.clone()),
        path: request.path.or_else(|| defaults.path.clone()),
        body: match (request.body, &defaults.body) {
            (Some(Value::Object(mut own)), Some(Value::Object(base))) => {
                for (k, v) in base {
                    own.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Some(Value::Object(own))
            }
            (Some(own), _) => Some(own),
            (None, base) => base.clone(),
        },
        headers: Some(headers),
    }
}

/// Runs a batch against `api` (the server's routes, without the batch route itself).
pub async fn run(
    api: Router,
    batch_max_requests: usize,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, KintoError> {
    let batch: BatchBody = serde_json::from_slice(&bytes)
        .map_err(|e| KintoError::invalid_data("body", format!("Invalid batch: {e}")))?;
    if batch.requests.len() > batch_max_requests {
        return Err(KintoError::invalid_parameter(
            "body",
            "requests",
            format!("Number of requests is limited to {batch_max_requests}"),
        ));
    }
    let mut responses = Vec::with_capacity(batch.requests.len());
    for request in batch.requests {
        let request = merge(&batch.defaults, request);
        let path = request
            .path
            .clone()
            .ok_or_else(|| KintoError::invalid_data("requests.path", "is required"))?;
        let path = if path.starts_with("/v1/") || path == "/v1" {
            path
        } else {
            format!("/v1{path}")
        };
        if path.starts_with("/v1/batch") {
            return Err(KintoError::invalid_data(
                "requests.path",
                "a batch cannot contain a batch",
            ));
        }
        let method: Method = request
            .method
            .as_deref()
            .unwrap_or("GET")
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| KintoError::invalid_data("requests.method", "is not an HTTP method"))?;
        let mut builder = Request::builder().method(method).uri(&path);
        // The subrequests act with the batch's credentials.
        if let Some(authorization) = headers.get(header::AUTHORIZATION) {
            builder = builder.header(header::AUTHORIZATION, authorization);
        }
        if let Some(host) = headers.get(header::HOST) {
            builder = builder.header(header::HOST, host);
        }
        let mut typed = false;
        for (name, value) in request.headers.unwrap_or_default() {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                typed |= name == header::CONTENT_TYPE;
                builder = builder.header(name, value);
            }
        }
        let body = match &request.body {
            Some(body) => {
                // A subrequest may name its own type (a JSON Patch, a merge patch).
                if !typed {
                    builder = builder.header(header::CONTENT_TYPE, "application/json");
                }
                Body::from(serde_json::to_vec(body).expect("JSON serializes"))
            }
            None => Body::empty(),
        };
        let sub = builder
            .body(body)
            .map_err(|e| KintoError::invalid_data("requests", e.to_string()))?;
        let answer = api
            .clone()
            .oneshot(sub)
            .await
            .expect("routing is infallible");
        let status = answer.status().as_u16();
        let mut answer_headers = Map::new();
        for (name, value) in answer.headers() {
            if let Ok(text) = value.to_str() {
                answer_headers.insert(name.to_string(), Value::String(text.to_owned()));
            }
        }
        let bytes = collect(answer.into_body()).await;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        responses.push(SubResponse {
            status,
            path,
            body,
            headers: answer_headers,
        });
    }
    Ok(Json(BatchResponse { responses }).into_response())
}
