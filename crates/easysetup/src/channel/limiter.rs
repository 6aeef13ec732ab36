//! Per-address rate limits with bounded memory.
//!
//! Each address has two fixed one-minute windows (channel creations, failed requests).
//! Going over either blocks the address for `block_secs`, during which every request is
//! answered 403, like the reference server's blacklist. A fixed window needs two numbers
//! per counter whatever the configured limit; it admits at most twice the limit across a
//! window boundary, which is enough to make guessing 20-bit channel ids hopeless.
//!
//! Only addresses that created a channel or failed a request are remembered, at most
//! `max_tracked_clients` of them; the least recently seen is forgotten first.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::error::ChannelError;
use super::settings::ChannelSettings;

/// Length of a counting window.
const WINDOW: Duration = Duration::from_secs(60);

/// Who a limit applies to: an IPv4 address, or the /64 network of an IPv6 address, because
/// one IPv6 host commonly owns a whole /64 and could otherwise rotate through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    pub(crate) fn new(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(network.into()))
            }
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The rate limiter shared by all requests.
pub(crate) struct RateLimiter {
    clients: Mutex<Clients>,
    creations_per_minute: u32,
    failures_per_minute: u32,
    block: Duration,
    max_tracked: usize,
}

#[derive(Default)]
struct Clients {
    records: HashMap<ClientKey, Record>,
    /// Records by last use: the first entry is the least recently seen.
    by_use: BTreeMap<u64, ClientKey>,
    /// Source of `last_use` stamps; strictly increasing, so stamps never collide.
    clock: u64,
}

struct Record {
    creations: Window,
    failures: Window,
    blocked_until: Option<Instant>,
    last_use: u64,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            start: now,
            count: 0,
        }
    }

    /// Counts one event; true if that puts the window over `limit`.
    fn hit(&mut self, now: Instant, limit: u32) -> bool {
        if now.saturating_duration_since(self.start) >= WINDOW {
            *self = Window::new(now);
        }
        self.count = self.count.saturating_add(1);
        self.count > limit
    }
}

/// The two things that are counted.
#[derive(Debug, Clone, Copy)]
enum Counter {
    Creation,
    Failure,
}

impl RateLimiter {
    pub(crate) fn new(settings: &ChannelSettings) -> Self {
        RateLimiter {
            clients: Mutex::new(Clients::default()),
            creations_per_minute: settings.creations_per_minute,
            failures_per_minute: settings.failed_requests_per_minute,
            block: settings.block_duration(),
            max_tracked: settings.max_tracked_clients,
        }
    }

    /// Refuses a blocked address. Does not remember new addresses.
    pub(crate) fn check(&self, key: ClientKey, now: Instant) -> Result<(), ChannelError> {
        let mut clients = self.lock();
        let Some(record) = clients.records.get_mut(&key) else {
            return Ok(());
        };
        let result = match record.blocked_until {
            Some(until) if until > now => Err(blocked("address is blocked", until, now)),
            Some(_) => {
                // The block is over: start again with clean counters.
                record.blocked_until = None;
                record.creations = Window::new(now);
                record.failures = Window::new(now);
                Ok(())
            }
            None => Ok(()),
        };
        clients.touch(key);
        result
    }

    /// Counts a channel creation; over the limit, blocks the address and refuses.
    pub(crate) fn record_creation(&self, key: ClientKey, now: Instant) -> Result<(), ChannelError> {
        self.record(key, now, Counter::Creation)
    }

    /// Counts a failed request; over the limit, blocks the address and refuses.
    pub(crate) fn record_failure(&self, key: ClientKey, now: Instant) -> Result<(), ChannelError> {
        self.record(key, now, Counter::Failure)
    }

    fn record(&self, key: ClientKey, now: Instant, counter: Counter) -> Result<(), ChannelError> {
        let mut clients = self.lock();
        let record = clients.entry(key, now, self.max_tracked);
        let (window, limit, reason) = match counter {
            Counter::Creation => (
                &mut record.creations,
                self.creations_per_minute,
                "too many channel creations",
            ),
            Counter::Failure => (
                &mut record.failures,
                self.failures_per_minute,
                "too many failed requests",
            ),
        };
        if !window.hit(now, limit) {
            return Ok(());
        }
        let until = now + self.block;
        record.blocked_until = Some(until);
        tracing::info!(client = %key, reason, block_secs = self.block.as_secs(), "client address blocked");
        Err(blocked(reason, until, now))
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        let clients = self.lock();
        assert_eq!(clients.records.len(), clients.by_use.len());
        clients.records.len()
    }

    /// The records, even if a panic poisoned the lock: at worst a counter is off by one.
    fn lock(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clients {
    /// The record of `key`, created if needed (forgetting the least recently seen address
    /// when full), and marked as just used.
    fn entry(&mut self, key: ClientKey, now: Instant, max_tracked: usize) -> &mut Record {
        if self.records.contains_key(&key) {
            self.touch(key);
        } else {
            while self.records.len() >= max_tracked {
                let Some((_, oldest)) = self.by_use.pop_first() else {
                    break;
                };
                self.records.remove(&oldest);
            }
            let last_use = self.next_stamp();
            self.by_use.insert(last_use, key);
            self.records.insert(
                key,
                Record {
                    creations: Window::new(now),
                    failures: Window::new(now),
                    blocked_until: None,
                    last_use,
                },
            );
        }
        self.records
            .get_mut(&key)
            .expect("the record was just found or inserted")
    }

    fn touch(&mut self, key: ClientKey) {
        let stamp = self.next_stamp();
        if let Some(record) = self.records.get_mut(&key) {
            self.by_use.remove(&record.last_use);
            record.last_use = stamp;
            self.by_use.insert(stamp, key);
        }
    }

    fn next_stamp(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

fn blocked(reason: &'static str, until: Instant, now: Instant) -> ChannelError {
    // Round up so that a client retrying after Retry-After is never still blocked.
    let remaining = until.saturating_duration_since(now);
    let retry_after_secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    ChannelError::Blocked {
        reason,
        retry_after_secs,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(last: u8) -> ClientKey {
        ClientKey::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn limiter(settings: ChannelSettings) -> RateLimiter {
        RateLimiter::new(&settings)
    }

    #[test]
    fn over_the_creation_limit_blocks_for_block_secs() {
        let limits = limiter(ChannelSettings::default());
        let t0 = Instant::now();
        for _ in 0..10 {
            limits.record_creation(v4(1), t0).unwrap();
        }
        let refused = limits.record_creation(v4(1), t0).unwrap_err();
        assert!(matches!(
            refused,
            ChannelError::Blocked {
                retry_after_secs: 600,
                ..
            }
        ));
        assert!(limits.check(v4(1), t0 + Duration::from_secs(599)).is_err());
        assert!(
            limits.check(v4(2), t0).is_ok(),
            "other addresses are not affected"
        );
        limits.check(v4(1), t0 + Duration::from_secs(600)).unwrap();
        limits
            .record_creation(v4(1), t0 + Duration::from_secs(600))
            .unwrap();
    }

    #[test]
    fn windows_restart_after_a_minute() {
        let limits = limiter(ChannelSettings::default());
        let t0 = Instant::now();
        for _ in 0..30 {
            limits.record_failure(v4(1), t0).unwrap();
        }
        for _ in 0..30 {
            limits.record_failure(v4(1), t0 + WINDOW).unwrap();
        }
        assert!(limits.record_failure(v4(1), t0 + WINDOW).is_err());
    }

    #[test]
    fn max_tracked_clients_bounds_memory_and_forgets_the_least_recently_seen() {
        let limits = limiter(ChannelSettings {
            max_tracked_clients: 3,
            creations_per_minute: 0,
            ..ChannelSettings::default()
        });
        let now = Instant::now();
        // Three blocked addresses fill the table.
        for last in 1..=3 {
            assert!(limits.record_creation(v4(last), now).is_err());
        }
        assert_eq!(limits.tracked(), 3);
        // Seeing 1 again makes 2 the least recently seen.
        assert!(limits.check(v4(1), now).is_err());
        for last in 4..=100 {
            let _ = limits.record_failure(v4(last), now);
            assert!(limits.tracked() <= 3);
        }
        assert_eq!(limits.tracked(), 3);
        assert!(limits.check(v4(2), now).is_ok(), "forgotten");
        assert!(limits.check(v4(100), now).is_ok(), "tracked, not blocked");
    }

    #[test]
    fn zero_max_tracked_clients_still_tracks_one() {
        let limits = limiter(ChannelSettings {
            max_tracked_clients: 0,
            ..ChannelSettings::default()
        });
        let now = Instant::now();
        limits.record_failure(v4(1), now).unwrap();
        limits.record_failure(v4(2), now).unwrap();
        assert_eq!(limits.tracked(), 1);
    }

    #[test]
    fn ipv6_addresses_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::new(a.into()), ClientKey::new(b.into()));
        assert_ne!(ClientKey::new(a.into()), ClientKey::new(c.into()));
        assert_eq!(ClientKey::new(a.into()).to_string(), "2001:db8:1:2::/64");
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ClientKey::new(mapped.into()), v4(7));
    }
}
