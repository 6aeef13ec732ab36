//! The token server (Sync's Registration Service).
//!
//! A client presents an OAuth access token (a JWT from Mozilla Accounts or any trusted
//! issuer) and its key fingerprint (`X-KeyID`). The token server verifies a JWT offline
//! against the issuer's JWKS ([`verifier`]), and an opaque token at the `/v1/verify` of an
//! issuer configured with one ([`remote`]: a timeout, a short bounded cache), applies the rules that keep a user's keys moving
//! only forward ([`rules`]), finds the user's storage node or assigns one by capacity
//! (`tokenserver_store`), and mints a tokenlib-format token for that node with the secret it
//! shares with the nodes. It never talks to the nodes while answering.
//!
//! **Invariant:** nothing here knows which database holds users and nodes; the store knows
//! nothing of HTTP. Every refusal goes through [`error::TokenServerError`].
#![deny(missing_docs)]

pub mod credentials;
pub mod error;
mod handler;
pub mod purge;
pub mod remote;
pub mod rules;
pub mod state;
pub mod verifier;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub use handler::{TokenResponse, metrics_hash};
pub use state::{TokenServerSettings, TokenServerState};

/// The token server's routes: `GET /1.0/{application}/{version}`.
pub fn router(state: TokenServerState) -> Router {
    Router::new()
        .route("/1.0/{application}/{version}", get(handler::get_token))
        .with_state(state)
}

/// Dockerflow routes for a process that runs the token server without a storage node.
pub fn ops_router(state: TokenServerState) -> Router {
    Router::new()
        .route("/__heartbeat__", get(heartbeat))
        .route(
            "/__lbheartbeat__",
            get(|| async {
                Json(Status {
                    status: "ok",
                    database: None,
                })
            }),
        )
        .route("/__version__", get(version))
        .with_state(state)
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

#[derive(Serialize)]
struct Version {
    name: &'static str,
    version: &'static str,
}

async fn version() -> Json<Version> {
    Json(Version {
        name: "syncstack",
        version: env!("CARGO_PKG_VERSION"),
    })
}

async fn heartbeat(State(state): State<TokenServerState>) -> (StatusCode, Json<Status>) {
    match state.store.check().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Status {
                status: "ok",
                database: Some("ok"),
            }),
        ),
        Err(error) => {
            tracing::error!(%error, "heartbeat: token database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "error",
                    database: Some("error"),
                }),
            )
        }
    }
}
