//! The Hawk nonce cache: a request (token, nonce, timestamp) is accepted once.
//!
//! Entries live as long as the timestamp window, since a request outside the window is
//! refused anyway. Memory is bounded: when the cache is full of unexpired entries the
//! oldest are dropped first, which weakens replay protection only for the oldest requests
//! and only under a flood; the drop is logged.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Remembers recently seen nonces.
pub struct NonceCache {
    state: Mutex<State>,
    lifetime: Duration,
    capacity: usize,
}

#[derive(Default)]
struct State {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<(Instant, [u8; 32])>,
}

impl NonceCache {
    /// A cache holding entries for `lifetime`, at most `capacity` of them.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        NonceCache {
            state: Mutex::new(State::default()),
            lifetime,
            capacity: capacity.max(1),
        }
    }

    /// Records the request; returns `false` if it was seen before (a replay).
    pub fn check_and_insert(&self, token_id: &str, nonce: &str, ts: u64) -> bool {
        let mut hasher = Sha256::new();
        for part in [
            token_id.as_bytes(),
            b"\n",
            nonce.as_bytes(),
            b"\n",
            ts.to_string().as_bytes(),
        ] {
            hasher.update(part);
        }
        let key: [u8; 32] = hasher.finalize().into();
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((at, old)) = state.order.front().copied() {
            if now.duration_since(at) < self.lifetime && state.order.len() < self.capacity {
                break;
            }
            if now.duration_since(at) < self.lifetime {
                tracing::warn!("nonce cache full: dropping the oldest unexpired entry");
            }
            state.order.pop_front();
            state.seen.remove(&old);
        }
        if !state.seen.insert(key) {
            return false;
        }
        state.order.push_back((now, key));
        true
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_replays() {
        let cache = NonceCache::new(Duration::from_secs(60), 10);
        assert!(cache.check_and_insert("t", "n", 1));
        assert!(!cache.check_and_insert("t", "n", 1));
        assert!(cache.check_and_insert("t", "n", 2));
        assert!(cache.check_and_insert("u", "n", 1));
    }

    #[test]
    fn stays_bounded() {
        let cache = NonceCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            assert!(cache.check_and_insert("t", &i.to_string(), 1));
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn forgets_after_the_window() {
        let cache = NonceCache::new(Duration::from_millis(1), 10);
        assert!(cache.check_and_insert("t", "n", 1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.check_and_insert("t", "n", 1));
    }
}
