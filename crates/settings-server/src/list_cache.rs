//! Bodies of large list answers, kept while their list is unchanged.
//!
//! A list that everyone reads the same way (a public collection's records, all of them or
//! those since a time) is answered again and again with the same body. Each body is kept
//! with the list's timestamp when it was made, and served only while the list still has
//! that timestamp, which the store reads on every request: every write to a list moves it
//! forward, in any process sharing the database, so a cached body is never stale (unlike
//! the changesets' cache, no time bound is needed). Bodies depend on nothing but the URL:
//! only callers who may read the whole list are served from here, and the caller's
//! permission is checked before.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

/// Most bytes of bodies kept; past it, the cache starts over.
const BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Cached list bodies by URL.
#[derive(Default)]
pub struct ListCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_url: HashMap<String, Entry>,
    bytes: usize,
}

struct Entry {
    timestamp: i64,
    body: Bytes,
    total: usize,
}

impl ListCache {
    /// The body cached for `url` and the number of objects it paginates, if it was made
    /// when the list's timestamp was `timestamp`.
    pub fn get(&self, url: &str, timestamp: i64) -> Option<(Bytes, usize)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .by_url
            .get(url)
            .filter(|entry| entry.timestamp == timestamp)
            .map(|entry| (entry.body.clone(), entry.total))
    }

    /// Keeps the body of `url` made at the list's `timestamp`.
    pub fn put(&self, url: String, timestamp: i64, body: Bytes, total: usize) {
        if body.len() > BUDGET_BYTES / 8 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.bytes + body.len() > BUDGET_BYTES {
            entries.by_url.clear();
            entries.bytes = 0;
        }
        entries.bytes += body.len();
        let entry = Entry {
            timestamp,
            body,
            total,
        };
        if let Some(replaced) = entries.by_url.insert(url, entry) {
            entries.bytes -= replaced.body.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_served_only_for_their_timestamp() {
        let cache = ListCache::default();
        cache.put("/a".into(), 5, Bytes::from_static(b"five"), 1);
        assert_eq!(cache.get("/a", 5), Some((Bytes::from_static(b"five"), 1)));
        assert_eq!(cache.get("/a", 6), None);
        cache.put("/a".into(), 6, Bytes::from_static(b"six!"), 2);
        assert_eq!(cache.get("/a", 5), None);
        assert_eq!(cache.entries.lock().unwrap().bytes, 4);
    }
}
