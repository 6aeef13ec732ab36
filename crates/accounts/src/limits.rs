//! In-memory guards: the Hawk nonce cache and the failed-login counters.
//!
//! Both are bounded: past their capacity they forget the oldest entries first, which
//! weakens protection only under a flood, and say so in the log.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Entries each structure holds at most.
const CAPACITY: usize = 100_000;

/// Seen nonces with their arrival, and their arrival order.
type NonceState = (HashMap<[u8; 32], Instant>, VecDeque<[u8; 32]>);

/// Remembers (token, nonce, timestamp) triples for as long as the timestamp window.
pub(crate) struct NonceCache {
    state: Mutex<NonceState>,
    lifetime: Duration,
}

impl NonceCache {
    pub(crate) fn new(lifetime: Duration) -> Self {
        NonceCache {
            state: Mutex::new(Default::default()),
            lifetime,
        }
    }

    /// Records the request; false if the same one was seen within the window (a replay).
    pub(crate) fn check_and_insert(&self, token_id: &str, nonce: &str, ts: u64) -> bool {
        let key: [u8; 32] = Sha256::digest(format!("{token_id}\n{nonce}\n{ts}")).into();
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, order) = &mut *guard;
        while let Some(oldest) = order.front().copied() {
            let expired = seen
                .get(&oldest)
                .is_none_or(|at| now.duration_since(*at) >= self.lifetime);
            if !expired && order.len() < CAPACITY {
                break;
            }
            if !expired {
                tracing::warn!("Hawk nonce cache full: forgetting the oldest nonce");
            }
            order.pop_front();
            seen.remove(&oldest);
        }
        if seen.contains_key(&key) {
            return false;
        }
        seen.insert(key, now);
        order.push_back(key);
        true
    }
}

/// Counts failed password checks per client address and per account.
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    per_address: u32,
    per_account: u32,
    window: Duration,
}

impl LoginLimiter {
    pub(crate) fn new(per_address: u32, per_account: u32, window: Duration) -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            per_address,
            per_account,
            window,
        }
    }

    fn keys(address: Option<IpAddr>, account: &str) -> [(Option<String>, u32); 2] {
        [
            (address.map(|a| format!("address:{a}")), 0),
            (Some(format!("account:{account}")), 1),
        ]
    }

    /// `Err(seconds to wait)` if the address or the account used up its failures.
    pub(crate) fn check(&self, address: Option<IpAddr>, account: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, which) in Self::keys(address, account) {
            let Some(key) = key else { continue };
            let limit = if which == 0 {
                self.per_address
            } else {
                self.per_account
            };
            if let Some(times) = failures.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= limit as usize
                    && let Some(oldest) = times.front()
                {
                    let wait = self.window.saturating_sub(now.duration_since(*oldest));
                    return Err(wait.as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    /// Records a failed password check.
    pub(crate) fn failed(&self, address: Option<IpAddr>, account: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= CAPACITY {
            let window = self.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if failures.len() >= CAPACITY {
                tracing::warn!("login limiter full: forgetting every counter");
                failures.clear();
            }
        }
        for (key, _) in Self::keys(address, account) {
            if let Some(key) = key {
                failures.entry(key).or_default().push_back(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once() {
        let cache = NonceCache::new(Duration::from_secs(60));
        assert!(cache.check_and_insert("id", "n1", 1));
        assert!(!cache.check_and_insert("id", "n1", 1));
        assert!(cache.check_and_insert("id", "n2", 1));
        assert!(cache.check_and_insert("other", "n1", 1));
    }

    #[test]
    fn failures_block_the_account_and_the_address() {
        let limiter = LoginLimiter::new(3, 2, Duration::from_secs(60));
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        let there: IpAddr = "192.0.2.2".parse().unwrap();
        limiter.failed(Some(here), "a@example.com");
        assert!(limiter.check(Some(here), "a@example.com").is_ok());
        limiter.failed(Some(here), "a@example.com");
        let wait = limiter.check(Some(there), "a@example.com").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.check(Some(here), "b@example.com").is_ok());
        limiter.failed(Some(here), "b@example.com");
        assert!(
            limiter.check(Some(here), "c@example.com").is_err(),
            "address"
        );
        assert!(limiter.check(Some(there), "c@example.com").is_ok());
    }
}
