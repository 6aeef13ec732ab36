//! Who is asking: Basic authentication against the accounts, and the principals that follow.
//!
//! Every request has the principal `system.Everyone`; an authenticated one adds
//! `system.Authenticated`, `account:<id>`, and the URI of every group that lists the user as
//! a member. Passwords are stored as argon2id hashes; because a hash check is deliberately
//! slow, a successful check is remembered for a short while (keyed by a SHA-256 of the
//! credentials, never the password itself), as Kinto's `account_cache_ttl_seconds` does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use settings_store::{Kind, SettingsStore};
use sha2::{Digest, Sha256};

use crate::error::{Errno, KintoError};

/// Everyone.
pub const EVERYONE: &str = "system.Everyone";
/// Anyone authenticated.
pub const AUTHENTICATED: &str = "system.Authenticated";
/// How long a verified password is remembered.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most remembered credentials.
const AUTH_CACHE_SIZE: usize = 10_000;

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `account:<id>` when authenticated.
    pub user_id: Option<String>,
    /// Every principal of the caller.
    pub principals: Vec<String>,
}

impl Caller {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Caller {
            user_id: None,
            principals: vec![EVERYONE.into()],
        }
    }

    /// Whether any of the caller's principals is in `allowed`.
    pub fn is_any_of<'a>(&self, allowed: impl IntoIterator<Item = &'a String>) -> bool {
        allowed.into_iter().any(|p| self.principals.contains(p))
    }
}

/// Remembers recently verified credentials.
#[derive(Default)]
pub struct AuthCache {
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl AuthCache {
    fn key(user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [
            user.as_bytes(),
            b"\0",
            password.as_bytes(),
            b"\0",
            hash.as_bytes(),
        ] {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    fn remembers(&self, key: &[u8; 32]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(key)
            .is_some_and(|at| at.elapsed() < AUTH_CACHE_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= AUTH_CACHE_SIZE {
            verified.retain(|_, at| at.elapsed() < AUTH_CACHE_TTL);
            if verified.len() >= AUTH_CACHE_SIZE {
                verified.clear();
            }
        }
        verified.insert(key, Instant::now());
    }
}

/// Hashes a new password (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, KintoError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| KintoError::invalid_data("password", format!("cannot be hashed: {e}")))
}

/// Reads `Authorization: Basic` and checks it against the accounts.
pub async fn authenticate(
    store: &dyn SettingsStore,
    cache: &AuthCache,
    headers: &HeaderMap,
) -> Result<Caller, KintoError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Caller::anonymous());
    };
    let refused = || KintoError::unauthorized(Errno::InvalidAuth);
    let text = value.to_str().map_err(|_| refused())?;
    let (scheme, encoded) = text.split_once(' ').ok_or_else(refused)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(refused());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| refused())?;
    let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
    let (user, password) = decoded.split_once(':').ok_or_else(refused)?;
    let account = store.get(Kind::Account, "", user).await?.ok_or_else(|| {
        tracing::info!(user, "authentication refused: no such account");
        refused()
    })?;
    let hash = account
        .data
        .get("password")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let key = AuthCache::key(user, password, &hash);
    if !cache.remembers(&key) {
        let (password, hash_text) = (password.to_owned(), hash.clone());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash_text)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !ok {
            tracing::info!(user, "authentication refused: wrong password");
            return Err(refused());
        }
        cache.remember(key);
    }
    let user_id = format!("account:{user}");
    let mut principals = vec![
        EVERYONE.to_owned(),
        AUTHENTICATED.to_owned(),
        user_id.clone(),
    ];
    principals.extend(groups_of(store, &user_id).await?);
    Ok(Caller {
        user_id: Some(user_id),
        principals,
    })
}

/// The URIs of the groups whose `members` include `principal`.
async fn groups_of(store: &dyn SettingsStore, principal: &str) -> Result<Vec<String>, KintoError> {
    let mut groups = Vec::new();
    for bucket in store.list(Kind::Bucket, "", false).await? {
        let parent = format!("/buckets/{}", bucket.id);
        for group in store.list(Kind::Group, &parent, false).await? {
            let members = group.data.get("members").and_then(|m| m.as_array());
            if members.is_some_and(|m| m.iter().any(|v| v.as_str() == Some(principal))) {
                groups.push(format!("{parent}/groups/{}", group.id));
            }
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_salted() {
        let a = hash_password("secret").unwrap();
        let b = hash_password("secret").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(!a.contains("secret"));
    }

    #[test]
    fn the_cache_forgets_nothing_it_should_not_know() {
        let cache = AuthCache::default();
        let key = AuthCache::key("u", "p", "h");
        assert!(!cache.remembers(&key));
        cache.remember(key);
        assert!(cache.remembers(&key));
        assert!(!cache.remembers(&AuthCache::key("u", "other", "h")));
    }
}
