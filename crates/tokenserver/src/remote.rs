//! Verification of opaque access tokens at their issuer's `/v1/verify`, as Mozilla's token
//! server does for Mozilla accounts.
//!
//! Mozilla accounts hands most clients opaque access tokens (random hex, not JWTs) that only
//! the issuer can check. For an issuer configured with a `verify_url`, such a token is
//! POSTed there as `{"token": ...}`; a 2xx answer names the account (`user`), the scopes
//! (`scope`, a list) and the `generation`. JWTs never go there: they are verified offline
//! against the JWKS ([`crate::verifier`]), so a token server trusting only JWT issuers
//! still calls nobody.
//!
//! Three things keep an issuer's trouble from becoming the token server's: every call has
//! a timeout (an unreachable or slow issuer is a 401 saying so, never a hung request), and
//! the issuer's definite answers (valid or invalid) are kept for a short time in a cache
//! bounded in size, keyed by the token's SHA-256, so a client retrying does not call again
//! and the cache never holds a usable token. Failures to reach the issuer are not cached.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::TokenServerError;
use crate::verifier::{SYNC_SCOPE, Scope, VerifiedToken};

/// The longest response body read from the issuer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How a remote issuer is called.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// How long one call may take, connection included.
    pub timeout: Duration,
    /// How long an answer is reused.
    pub cache_ttl: Duration,
    /// How many answers are kept at most.
    pub cache_entries: usize,
}

impl Default for RemoteSettings {
    /// 5 s per call, answers kept 60 s, at most 10 000 of them (about a megabyte).
    fn default() -> Self {
        RemoteSettings {
            timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(60),
            cache_entries: 10_000,
        }
    }
}

/// An issuer whose opaque tokens are verified by calling it.
pub struct RemoteIssuer {
    /// The issuer's name (its `iss`), for logs and [`VerifiedToken::issuer`].
    pub issuer: String,
    /// The `/v1/verify` URL.
    pub verify_url: String,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for RemoteIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteIssuer")
            .field("issuer", &self.issuer)
            .field("verify_url", &self.verify_url)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct VerifyRequest<'a> {
    token: &'a str,
}

#[derive(Deserialize)]
struct VerifyAnswer {
    user: String,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    generation: Option<i64>,
}

/// The issuer's definite answer: the token's owner, or why it was refused.
type Answer = Result<VerifiedToken, String>;

impl RemoteIssuer {
    /// An issuer verified at `verify_url`, called as `settings` say.
    pub fn new(issuer: &str, verify_url: &str, settings: &RemoteSettings) -> Result<Self, String> {
        let parsed = url::Url::parse(verify_url)
            .map_err(|e| format!("verify_url {verify_url:?} of {issuer}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "verify_url {verify_url:?} of {issuer} is not http(s)"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| format!("an HTTP client for {issuer}: {e}"))?;
        Ok(RemoteIssuer {
            issuer: issuer.to_owned(),
            verify_url: verify_url.to_owned(),
            http,
            cache: Mutex::new(Cache::new(settings.cache_ttl, settings.cache_entries)),
        })
    }

    /// Verifies an opaque `token`, from the cache or by asking the issuer.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenServerError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.cache().get(&key);
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = self.ask(token).await?;
                self.cache().put(key, answer.clone());
                answer
            }
        };
        answer.map_err(|reason| {
            TokenServerError::invalid_credentials(format!("{}: {reason}", self.issuer))
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One call to the issuer: its answer, or an error if it could not be had.
    async fn ask(&self, token: &str) -> Result<Answer, TokenServerError> {
        let unreachable = |reason: String| {
            TokenServerError::issuer_unreachable(format!(
                "{} at {}: {reason}",
                self.issuer, self.verify_url
            ))
        };
        let response = self
            .http
            .post(&self.verify_url)
            .json(&VerifyRequest { token })
            .send()
            .await
            .map_err(|e| unreachable(describe(&e)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unreachable(format!("answered {status}")));
        }
        let body = read_bounded(response)
            .await
            .map_err(|e| unreachable(describe(&e)))?;
        if !status.is_success() {
            return Ok(Err(format!("the issuer refused the token ({status})")));
        }
        let Ok(answer) = serde_json::from_slice::<VerifyAnswer>(&body) else {
            return Ok(Err("the issuer's answer has no user".into()));
        };
        if !answer.scope.contains(SYNC_SCOPE) {
            return Ok(Err(format!("token lacks the scope {SYNC_SCOPE}")));
        }
        if answer.user.is_empty() {
            return Ok(Err("the issuer's answer has an empty user".into()));
        }
        Ok(Ok(VerifiedToken {
            subject: answer.user,
            generation: answer.generation.filter(|g| *g != 0),
            issuer: self.issuer.clone(),
        }))
    }
}

/// Reads a body of at most [`MAX_ANSWER_BYTES`].
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            body.truncate(MAX_ANSWER_BYTES);
            break;
        }
    }
    Ok(body)
}

/// A transport error in words, with "timed out" named as such.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        error.to_string()
    }
}

/// Answers by token hash, each kept `ttl`, at most `capacity` of them; the oldest goes
/// first when full (all live equally long, so it is also the first to expire).
struct Cache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<[u8; 32], (Instant, Answer)>,
    order: VecDeque<([u8; 32], Instant)>,
}

impl Cache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Cache {
            ttl,
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&mut self, key: &[u8; 32]) -> Option<Answer> {
        self.expire(Instant::now());
        self.entries.get(key).map(|(_, answer)| answer.clone())
    }

    fn put(&mut self, key: [u8; 32], answer: Answer) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        self.expire(now);
        while self.entries.len() >= self.capacity {
            let Some((oldest, stored)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&oldest)
                .is_some_and(|(at, _)| *at == stored)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (now, answer));
        self.order.push_back((key, now));
    }

    /// Drops the answers older than the TTL (the queue is in insertion order).
    fn expire(&mut self, now: Instant) {
        while let Some(&(key, stored)) = self.order.front() {
            if now.duration_since(stored) < self.ttl {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|(at, _)| *at == stored) {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(user: &str) -> Answer {
        Ok(VerifiedToken {
            subject: user.into(),
            generation: None,
            issuer: "i".into(),
        })
    }

    #[test]
    fn the_cache_stays_within_its_capacity_dropping_the_oldest() {
        let mut cache = Cache::new(Duration::from_secs(60), 2);
        cache.put([1; 32], answer("a"));
        cache.put([2; 32], answer("b"));
        cache.put([3; 32], answer("c"));
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.get(&[1; 32]).is_none());
        assert_eq!(cache.get(&[3; 32]).unwrap().unwrap().subject, "c");
    }

    #[test]
    fn answers_expire() {
        let mut cache = Cache::new(Duration::from_millis(1), 10);
        cache.put([1; 32], answer("a"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.order.is_empty());
    }

    #[test]
    fn a_replaced_answer_is_not_dropped_by_its_older_queue_entry() {
        let mut cache = Cache::new(Duration::from_secs(60), 2);
        cache.put([1; 32], answer("a"));
        std::thread::sleep(Duration::from_millis(2));
        cache.put([1; 32], answer("a2"));
        cache.put([2; 32], answer("b"));
        // Full: the stale queue entry of [1] is skipped, then its live answer (the oldest)
        // goes.
        cache.put([3; 32], answer("c"));
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.get(&[1; 32]).is_none());
        assert_eq!(cache.get(&[2; 32]).unwrap().unwrap().subject, "b");
    }

    #[test]
    fn a_zero_capacity_caches_nothing() {
        let mut cache = Cache::new(Duration::from_secs(60), 0);
        cache.put([1; 32], answer("a"));
        assert!(cache.get(&[1; 32]).is_none());
    }
}
