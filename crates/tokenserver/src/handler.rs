//! `GET /1.0/{application}/{version}`: verify the caller, find or assign their node, and
//! mint a token for it.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sync_proto::token::{self, TokenPayload};
use tokenserver_store::{UserKeys, UserState};

use crate::credentials::{bearer_token, client_state_header, format_key_id, key_headers};
use crate::error::TokenServerError;
use crate::rules::{Claimed, updated, validate};
use crate::state::TokenServerState;

/// A retired user (deleted account) has this generation and no node.
const RETIRED_GENERATION: i64 = i64::MAX;

/// The success body, with the reference's fields.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    id: String,
    key: String,
    uid: u64,
    api_endpoint: String,
    duration: u64,
    hashed_fxa_uid: String,
    hashalg: &'static str,
    node_type: String,
}

/// The token endpoint.
pub async fn get_token(
    State(state): State<TokenServerState>,
    Path((application, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, TokenServerError> {
    if application != "sync" {
        return Err(TokenServerError::unsupported(
            "application",
            "Unsupported application",
        ));
    }
    if version != "1.5" {
        return Err(TokenServerError::unsupported(
            &version,
            "Unsupported application version",
        ));
    }
    let bearer = bearer_token(&headers)?;
    let header_state = client_state_header(&headers)?;
    let verified = state.verifier.verify(bearer).await?;
    let keys = key_headers(&headers, header_state.as_deref())?;
    let settings = &state.settings;
    let duration = requested_duration(query.as_deref(), settings.token_duration);
    let email = format!("{}@{}", verified.subject, settings.email_domain);
    let claimed = Claimed {
        generation: verified.generation,
        keys_changed_at: keys.keys_changed_at,
        client_state: keys.client_state,
    };

    let user = current_user(&state, &email, &claimed).await?;
    validate(&user, &claimed)?;
    let update = updated(&user, &claimed);
    let record = if claimed.client_state != user.current.client_state {
        // New keys: a new uid, hence an empty storage bucket, on a freshly chosen node.
        let keys = UserKeys {
            email: email.clone(),
            generation: update.generation,
            client_state: claimed.client_state.clone(),
            keys_changed_at: update.keys_changed_at,
        };
        let record = state.store.allocate_user(&keys, now_ms()).await?;
        tracing::info!(
            uid = record.uid,
            old_uid = user.current.uid,
            "client state changed: user moved to a new uid"
        );
        record
    } else {
        if update.generation != user.current.generation
            || update.keys_changed_at != user.current.keys_changed_at
        {
            state
                .store
                .update_user(user.current.uid, update.generation, update.keys_changed_at)
                .await?;
        }
        user.current
    };
    let node = record
        .node
        .clone()
        .ok_or_else(|| TokenServerError::internal("user record has no node"))?;

    let hashed_fxa_uid = metrics_hash(&settings.metrics_hash_secret, &verified.subject);
    let mut payload = TokenPayload::new(record.uid, &node, duration);
    payload.fxa_uid = Some(verified.subject.clone());
    payload.fxa_kid = Some(format_key_id(
        update.keys_changed_at.unwrap_or(update.generation),
        &claimed.client_state,
    ));
    payload.hashed_device_id = Some(metrics_hash(
        &settings.metrics_hash_secret,
        &format!("{hashed_fxa_uid}none"),
    ));
    payload.hashed_fxa_uid = Some(hashed_fxa_uid.clone());
    let minted = token::mint(&settings.master_secret, &payload);
    let body = TokenResponse {
        id: minted.id,
        key: minted.key,
        uid: record.uid,
        api_endpoint: format!("{node}/1.5/{}", record.uid),
        duration,
        hashed_fxa_uid,
        hashalg: "sha256",
        node_type: settings.node_type.clone(),
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    if let Ok(now) = HeaderValue::from_str(&(now_ms() / 1000).to_string()) {
        headers.insert("x-timestamp", now);
    }
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// The user's record, creating one for a new user and re-assigning a user whose record was
/// replaced or whose node is gone.
async fn current_user(
    state: &TokenServerState,
    email: &str,
    claimed: &Claimed,
) -> Result<UserState, TokenServerError> {
    let existing = state.store.get_user(email).await?;
    let keys_from = |generation: i64, client_state: &str, keys_changed_at: Option<i64>| UserKeys {
        email: email.to_owned(),
        generation,
        client_state: client_state.to_owned(),
        keys_changed_at,
    };
    match existing {
        None => {
            if !state.settings.allow_new_users {
                return Err(TokenServerError::new_users_disabled());
            }
            let keys = keys_from(
                claimed.generation.unwrap_or(0),
                &claimed.client_state,
                claimed.keys_changed_at,
            );
            let current = state.store.allocate_user(&keys, now_ms()).await?;
            tracing::info!(
                uid = current.uid,
                node = current.node.as_deref().unwrap_or(""),
                "new user assigned"
            );
            Ok(UserState {
                current,
                old_client_states: Vec::new(),
            })
        }
        Some(user) if user.current.replaced_at.is_some() || user.current.node.is_none() => {
            let old = &user.current;
            if old.generation == RETIRED_GENERATION {
                return Err(TokenServerError::internal("retired user asked for a token"));
            }
            let keys = keys_from(old.generation, &old.client_state, old.keys_changed_at);
            let current = state.store.allocate_user(&keys, now_ms()).await?;
            tracing::info!(
                uid = current.uid,
                old_uid = old.uid,
                "user re-assigned to a new node"
            );
            Ok(UserState {
                current,
                old_client_states: user.old_client_states,
            })
        }
        Some(user) => Ok(user),
    }
}

/// `?duration=N` when it parses and does not exceed the configured duration; otherwise the
/// configured duration, silently, as the reference does.
fn requested_duration(query: Option<&str>, default: u64) -> u64 {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(key, _)| key == "duration")
        .last()
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .filter(|d| *d <= default)
        .unwrap_or(default)
}

/// First 32 hex characters of HMAC-SHA256(secret, value), as the reference hashes uids for
/// metrics.
pub fn metrics_hash(secret: &[u8], value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(value.as_bytes());
    let mut hex = hex::encode(mac.finalize().into_bytes());
    hex.truncate(32);
    hex
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_the_reference() {
        assert_eq!(requested_duration(Some("duration=12"), 3600), 12);
        assert_eq!(requested_duration(Some("duration=4000"), 3600), 3600);
        assert_eq!(requested_duration(Some("duration=lolwut"), 3600), 3600);
        assert_eq!(requested_duration(Some("duration=-1"), 3600), 3600);
        assert_eq!(requested_duration(None, 3600), 3600);
    }

    #[test]
    fn hashes_are_32_hex() {
        let hash = metrics_hash(b"secret", "uid");
        assert_eq!(hash.len(), 32);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(hash, metrics_hash(b"other", "uid"));
    }
}
