//! The route table, and what every handler shares: JSON bodies, parameters, responses.
//!
//! Mozilla runs the auth server, the OAuth server and the profile server on three hosts,
//! each with its own `/v1`. syncstack serves them on its one origin as `/auth/v1` (auth and
//! OAuth, as Mozilla's auth server now does) and `/profile/v1`, which keeps them clear of
//! Remote Settings' `/v1`; `/.well-known/fxa-client-configuration` tells clients where.
//! Each OAuth path is also served under the name PyFxA's OAuth client uses (`/v1/token`,
//! `/v1/destroy`, `/v1/verify`, `/v1/jwks`, `/v1/client/{id}`).

mod account;
mod devices;
mod oauth;
mod password;

use axum::Router;
use axum::body::Bytes;
use axum::http::Uri;
use axum::routing::{any, get, post};
use serde::de::DeserializeOwned;

use crate::{AccountsService, ApiError};

/// The accounts service's routes, with `service` as their state.
pub fn router(service: AccountsService) -> Router {
    Router::new()
        .route(
            "/.well-known/fxa-client-configuration",
            get(oauth::client_configuration),
        )
        .route(
            "/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route("/auth/v1/account/create", post(account::create))
        .route("/auth/v1/account/login", post(account::login))
        .route("/auth/v1/account/keys", get(account::keys))
        .route("/auth/v1/account/status", get(account::status))
        .route("/auth/v1/account/destroy", post(account::destroy))
        .route(
            "/auth/v1/account/scoped-key-data",
            post(account::scoped_key_data),
        )
        .route("/auth/v1/recovery_email/status", get(account::email_status))
        .route("/auth/v1/session/status", get(account::session_status))
        .route("/auth/v1/session/destroy", post(account::session_destroy))
        .route("/auth/v1/password/change/start", post(password::start))
        .route("/auth/v1/password/change/finish", post(password::finish))
        .route("/auth/v1/account/device", post(devices::register))
        .route("/auth/v1/account/devices", get(devices::list))
        .route(
            "/auth/v1/account/attached_clients",
            get(devices::attached_clients),
        )
        .route("/auth/v1/account/device/destroy", post(devices::destroy))
        .route("/auth/v1/account/device/commands", get(devices::commands))
        .route("/auth/v1/account/devices/notify", post(devices::notify))
        .route(
            "/auth/v1/account/devices/invoke_command",
            post(devices::invoke_command),
        )
        .route("/auth/v1/oauth/authorization", post(oauth::authorization))
        .route("/auth/v1/oauth/token", post(oauth::token))
        .route("/auth/v1/token", post(oauth::token))
        .route("/auth/v1/oauth/destroy", post(oauth::destroy))
        .route("/auth/v1/destroy", post(oauth::destroy))
        .route("/auth/v1/oauth/verify", post(oauth::verify))
        .route("/auth/v1/verify", post(oauth::verify))
        .route("/auth/v1/oauth/jwks", get(oauth::jwks))
        .route("/auth/v1/jwks", get(oauth::jwks))
        .route("/auth/v1/client/{id}", get(oauth::client_info))
        .route("/auth/v1/oauth/client/{id}", get(oauth::client_info))
        .route("/profile/v1/profile", get(devices::profile))
        .merge(crate::pages::routes())
        // Clients expect JSON even for a path or method this server does not know.
        .route("/auth/v1/{*rest}", any(unknown_endpoint))
        .route("/profile/v1/{*rest}", any(unknown_endpoint))
        .method_not_allowed_fallback(unknown_endpoint)
        .with_state(service)
}

async fn unknown_endpoint() -> ApiError {
    ApiError::UnknownEndpoint
}

/// Parses a JSON object body (an empty body is `{}`): 106 if it is not JSON or not an
/// object, 107 if a field has the wrong type.
pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let value: serde_json::Value = if body.trim_ascii().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|_| ApiError::InvalidJson)?
    };
    if !value.is_object() {
        return Err(ApiError::InvalidJson);
    }
    serde_json::from_value(value).map_err(|error| ApiError::InvalidParameter(error.to_string()))
}

/// A required parameter: 108 when absent.
pub(crate) fn required<T>(value: Option<T>, name: &'static str) -> Result<T, ApiError> {
    value.ok_or(ApiError::MissingParameter(name))
}

/// 32 bytes as 64 hex characters: 107 otherwise.
pub(crate) fn hex32(value: &str, name: &str) -> Result<[u8; 32], ApiError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out)
        .map_err(|_| ApiError::InvalidParameter(format!("{name} must be 64 hex characters")))?;
    Ok(out)
}

/// Whether the query asks for keys (`?keys=true`).
pub(crate) fn wants_keys(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "keys=true"))
}
