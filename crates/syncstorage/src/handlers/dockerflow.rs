//! Operations endpoints for load balancers and deploy tooling (Mozilla's Dockerflow
//! conventions): no authentication, no Sync headers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::state::AppState;

/// Body of `__heartbeat__`.
#[derive(Serialize)]
pub struct Heartbeat {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

/// `__heartbeat__`: 200 when the database answers, 503 when it does not.
pub async fn heartbeat(State(state): State<AppState>) -> (StatusCode, Json<Heartbeat>) {
    let version = env!("CARGO_PKG_VERSION");
    match state.store.check().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Heartbeat {
                status: "ok",
                database: "ok",
                version,
            }),
        ),
        Err(error) => {
            tracing::error!(%error, "heartbeat: database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Heartbeat {
                    status: "error",
                    database: "error",
                    version,
                }),
            )
        }
    }
}

/// Body of `__lbheartbeat__`.
#[derive(Serialize)]
pub struct LbHeartbeat {
    connections: u32,
    idle: u32,
}

/// `__lbheartbeat__`: the process is up; cheap, touches nothing.
pub async fn lbheartbeat(State(state): State<AppState>) -> Json<LbHeartbeat> {
    let pool = state.store.pool_state();
    Json(LbHeartbeat {
        connections: pool.connections,
        idle: pool.idle,
    })
}

/// Body of `__version__`.
#[derive(Serialize)]
pub struct Version {
    name: &'static str,
    version: &'static str,
    source: &'static str,
    commit: &'static str,
}

/// `__version__`: what is running.
pub async fn version() -> Json<Version> {
    Json(Version {
        name: "syncstack",
        version: env!("CARGO_PKG_VERSION"),
        source: env!("CARGO_PKG_REPOSITORY"),
        commit: option_env!("SYNCSTACK_COMMIT").unwrap_or("unknown"),
    })
}
