//! The root URL, the dockerflow endpoints and the test-only flush.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use crate::auth::authenticate;
use crate::error::{Errno, KintoError};
use crate::state::SettingsState;

/// Kinto's HTTP API version this server speaks.
pub const HTTP_API_VERSION: &str = "1.23";

#[derive(Serialize)]
struct Hello {
    project_name: &'static str,
    project_version: &'static str,
    http_api_version: &'static str,
    project_docs: &'static str,
    url: String,
    settings: PublicSettings,
    capabilities: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<User>,
}

#[derive(Serialize)]
struct PublicSettings {
    batch_max_requests: usize,
    readonly: bool,
    explicit_permissions: bool,
}

#[derive(Serialize)]
struct Capability {
    description: &'static str,
    url: &'static str,
}

#[derive(Serialize)]
struct AttachmentsCapability {
    description: &'static str,
    url: &'static str,
    base_url: String,
}

#[derive(Serialize)]
struct User {
    id: String,
    principals: Vec<String>,
}

/// `GET /v1/`: what this server is and can do, and who the caller is.
pub async fn hello(
    State(state): State<SettingsState>,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let caller = authenticate(state.store.as_ref(), &state.auth_cache, &headers).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let mut capabilities = BTreeMap::new();
    let accounts = Capability {
        description: "Manage user accounts.",
        url: "https://kinto.readthedocs.io/en/latest/api/1.x/accounts.html",
    };
    capabilities.insert(
        "accounts".to_owned(),
        serde_json::to_value(accounts).expect("serializes"),
    );
    if state.settings.attachment_base_path.is_some() {
        let attachments = AttachmentsCapability {
            description: "Add file attachments to records",
            url: "https://github.com/Kinto/kinto-attachment/",
            base_url: crate::attachments::base_url(&state, &headers),
        };
        capabilities.insert(
            "attachments".to_owned(),
            serde_json::to_value(attachments).expect("serializes"),
        );
    }
    // kinto-http.js and Kinto Admin call these endpoints only when the capability says so.
    if state.settings.experimental_permissions_endpoint {
        capabilities.insert(
            "permissions_endpoint".to_owned(),
            serde_json::to_value(Capability {
                description: "The permissions endpoint can be used to list all user objects permissions.",
                url: "https://kinto.readthedocs.io/en/latest/configuration/settings.html#activating-the-permissions-endpoint",
            })
            .expect("serializes"),
        );
    }
    if state.settings.flush_endpoint_enabled {
        capabilities.insert(
            "flush_endpoint".to_owned(),
            serde_json::to_value(Capability {
                description: "The __flush__ endpoint can be used to remove all data from all backends.",
                url: "https://kinto.readthedocs.io/en/latest/api/1.x/flush.html",
            })
            .expect("serializes"),
        );
    }
    if let Some(admin) = crate::admin::capability(&state).await {
        capabilities.insert("admin".to_owned(), admin);
    }
    capabilities.extend(state.hooks.capabilities());
    let hello = Hello {
        project_name: "syncstack",
        project_version: env!("CARGO_PKG_VERSION"),
        http_api_version: HTTP_API_VERSION,
        project_docs: "https://kinto.readthedocs.io/",
        url: format!("{scheme}://{host}/v1/"),
        settings: PublicSettings {
            batch_max_requests: state.settings.batch_max_requests,
            readonly: state.settings.readonly,
            explicit_permissions: true,
        },
        capabilities,
        user: caller.user_id.clone().map(|id| User {
            id,
            principals: caller.principals.clone(),
        }),
    };
    Ok(Json(hello).into_response())
}

#[derive(Serialize)]
/// Body of the heartbeat: each check by name.
pub struct Heartbeat {
    storage: bool,
    permission: bool,
    #[serde(flatten)]
    plugins: BTreeMap<String, bool>,
}

/// `GET /v1/__heartbeat__`: 503 when the database does not answer.
pub async fn heartbeat(State(state): State<SettingsState>) -> (StatusCode, Json<Heartbeat>) {
    let ok = state.store.check().await.is_ok();
    let plugins: BTreeMap<String, bool> = state.hooks.health(&state).await.into_iter().collect();
    let healthy = ok && plugins.values().all(|v| *v);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Heartbeat {
            storage: ok,
            permission: ok,
            plugins,
        }),
    )
}

/// An empty JSON object.
#[derive(Serialize)]
pub struct Empty {}

/// `GET /v1/__lbheartbeat__`.
pub async fn lbheartbeat() -> Json<Empty> {
    Json(Empty {})
}

#[derive(Serialize)]
/// Body of `__version__`.
pub struct Version {
    name: &'static str,
    version: &'static str,
    source: &'static str,
    commit: &'static str,
}

/// `GET /v1/__version__`.
pub async fn version() -> Json<Version> {
    Json(Version {
        name: "syncstack",
        version: env!("CARGO_PKG_VERSION"),
        source: env!("CARGO_PKG_REPOSITORY"),
        commit: option_env!("SYNCSTACK_COMMIT").unwrap_or("unknown"),
    })
}

/// `POST /v1/__flush__`: deletes everything, only when `flush_endpoint_enabled`.
pub async fn flush(State(state): State<SettingsState>) -> Result<StatusCode, KintoError> {
    if !state.settings.flush_endpoint_enabled {
        return Err(KintoError::new(
            StatusCode::NOT_FOUND,
            Errno::MissingResource,
            "The flush endpoint is not enabled",
        ));
    }
    state.store.flush().await?;
    tracing::warn!("flushed every bucket, collection, record and account");
    Ok(StatusCode::ACCEPTED)
}

/// Paths without the `/v1` prefix are redirected to it, as Kinto does.
pub async fn redirect_to_v1(OriginalUri(uri): OriginalUri) -> Response {
    let target = match uri.query() {
        Some(query) => format!("/v1{}?{query}", uri.path()),
        None => format!("/v1{}", uri.path()),
    };
    Redirect::temporary(&target).into_response()
}
