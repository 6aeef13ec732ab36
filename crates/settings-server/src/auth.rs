//! Who is asking: Basic authentication against the accounts, and the principals that follow.
//!
//! Every request has the principal `system.Everyone`; an authenticated one adds
//! `system.Authenticated`, `account:<id>`, and the URI of every group that lists the user as
//! a member. Passwords are stored as argon2id hashes; because a hash check is deliberately
//! slow, a successful check is remembered for a short while (keyed by a SHA-256 of the
//! credentials, never the password itself), as Kinto's `account_cache_ttl_seconds` does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use settings_store::{Kind, SettingsStore};
use sha2::{Digest, Sha256};

use crate::error::KintoError;

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

/// Remembers recently verified credentials, and makes concurrent requests with the same
/// credentials wait for one argon2 check instead of each running its own: an argon2 check
/// costs about 19 MiB and tens of milliseconds, so a burst of requests arriving when an
/// entry expired used to cost hundreds of megabytes at once. An entry lives
/// [`AUTH_CACHE_TTL`] after its last use (Kinto refreshes its cached logins on use), and at
/// most [`AUTH_CACHE_SIZE`] are kept, so memory stays flat.
///
/// Checks of different credentials also wait for one another beyond one per CPU, so even a
/// crowd of users logging in at once costs at most that many checks' memory.
pub struct AuthCache {
    slots: Mutex<HashMap<[u8; 32], Arc<Slot>>>,
    checks: AtomicU64,
    running: tokio::sync::Semaphore,
}

impl Default for AuthCache {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        AuthCache {
            slots: Mutex::default(),
            checks: AtomicU64::default(),
            running: tokio::sync::Semaphore::new(cpus),
        }
    }
}

/// One set of credentials: the outcome of its check (set once), and when it was last used.
#[derive(Default)]
struct Slot {
    verified: tokio::sync::OnceCell<bool>,
    used: Mutex<Option<Instant>>,
}

impl Slot {
    fn fresh(&self) -> bool {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.is_none_or(|at| at.elapsed() < AUTH_CACHE_TTL)
    }

    fn touch(&self) {
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
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

    /// How many argon2 checks ran since the server started.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The slot of `key`: the current one while it is fresh, else a new one.
    fn slot(&self, key: [u8; 32]) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get(&key)
            && slot.fresh()
        {
            return slot.clone();
        }
        if slots.len() >= AUTH_CACHE_SIZE {
            slots.retain(|_, slot| slot.fresh());
            if slots.len() >= AUTH_CACHE_SIZE {
                slots.clear();
            }
        }
        let slot = Arc::new(Slot::default());
        slots.insert(key, slot.clone());
        slot
    }

    fn forget(&self, key: &[u8; 32], slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            slots.remove(key);
        }
    }

    /// Whether `password` matches `hash`: remembered, or checked once for every request
    /// asking at the same time.
    async fn verify(&self, user: &str, password: &str, hash: &str) -> bool {
        let key = Self::key(user, password, hash);
        let slot = self.slot(key);
        let ok = *slot
            .verified
            .get_or_init(|| async {
                let _turn = self.running.acquire().await;
                self.checks.fetch_add(1, Ordering::Relaxed);
                let (password, hash) = (password.to_owned(), hash.to_owned());
                tokio::task::spawn_blocking(move || {
                    PasswordHash::new(&hash)
                        .map(|parsed| {
                            Argon2::default()
                                .verify_password(password.as_bytes(), &parsed)
                                .is_ok()
                        })
                        .unwrap_or(false)
                })
                .await
                .unwrap_or(false)
            })
            .await;
        if ok {
            slot.touch();
        } else {
            // A wrong password is not remembered: the next attempt is checked again.
            self.forget(&key, &slot);
        }
        ok
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

/// Reads `Authorization: Basic` and checks it against the accounts. As in Kinto, anything
/// that does not authenticate (no header, another scheme, `Authorization: undefined` as
/// Kinto Admin sends while logged out, an unknown account, a wrong password) makes an
/// anonymous caller: a 401 comes later, only where the request needs more than that, and
/// an account can be created with the credentials it is about to have.
pub async fn authenticate(
    store: &dyn SettingsStore,
    cache: &AuthCache,
    headers: &HeaderMap,
) -> Result<Caller, KintoError> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Ok(Caller::anonymous());
    };
    let Some(account) = store.get(Kind::Account, "", &user).await? else {
        tracing::info!(user, "credentials ignored: no such account");
        return Ok(Caller::anonymous());
    };
    let hash = account
        .data
        .get("password")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !cache.verify(&user, &password, hash).await {
        tracing::info!(user, "credentials ignored: wrong password");
        return Ok(Caller::anonymous());
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

/// The user and password of an `Authorization: Basic` header, if it is one.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let text = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
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

    #[tokio::test]
    async fn the_cache_remembers_right_passwords_only() {
        let cache = AuthCache::default();
        let hash = hash_password("right").unwrap();
        assert!(cache.verify("u", "right", &hash).await);
        assert!(cache.verify("u", "right", &hash).await);
        assert_eq!(cache.checks(), 1, "the second check is remembered");
        assert!(!cache.verify("u", "wrong", &hash).await);
        assert!(!cache.verify("u", "wrong", &hash).await);
        assert_eq!(cache.checks(), 3, "wrong passwords are checked every time");
        let other = hash_password("right").unwrap();
        assert!(cache.verify("u", "right", &other).await);
        assert_eq!(cache.checks(), 4, "a new hash is a new check");
    }

    #[test]
    fn reads_basic_credentials_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers), None);
        for value in ["undefined", "Bearer abc", "Basic !!!", "Basic dXNlcg=="] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(basic_credentials(&headers), None, "{value}");
        }
        headers.insert(header::AUTHORIZATION, "basic dTpwOnE=".parse().unwrap());
        assert_eq!(
            basic_credentials(&headers),
            Some(("u".to_owned(), "p:q".to_owned()))
        );
    }
}
