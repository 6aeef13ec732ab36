//! The relay's limits. Every one is configurable; the defaults follow the reference server
//! (`keyexchange.conf`) where it had one, and are sized for a small self-hosted instance
//! where it had none.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits of the Easy Setup channel relay.
///
/// Worst-case memory is about `max_channels × max_body_bytes` for channel bodies (164 MB
/// with the defaults) plus a few dozen bytes per tracked client address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// Lifetime of a channel in seconds, counted from its creation, not from its last use,
    /// so a busy channel cannot be kept alive forever. Default 300.
    pub channel_ttl_secs: u64,
    /// Successful (200) GETs after which the channel is deleted. A full pairing needs
    /// exactly six; 304s do not count. Default 6.
    pub max_gets: u32,
    /// Characters in a channel id, from the 32-character code alphabet (5 bits each). The
    /// id only routes; the secret half of the code protects the exchange. Values below 1
    /// are treated as 1. Default 4.
    pub channel_id_length: usize,
    /// Most channels alive at once; creation answers 503 when full. Default 10_000.
    pub max_channels: usize,
    /// Largest PUT body in bytes; a larger one is refused with 413 without reading the
    /// rest. Default 16_384 (a J-PAKE message is under 3 KB).
    pub max_body_bytes: usize,
    /// Channel creations allowed per client address per minute. One more gets 403 and the
    /// address is blocked. Default 10.
    pub creations_per_minute: u32,
    /// Failed requests (404 on an unknown channel, 400, 412) allowed per client address per
    /// minute. One more gets 403 and the address is blocked; this is what makes guessing
    /// channel ids slow. Default 30.
    pub failed_requests_per_minute: u32,
    /// Seconds an address over a limit is refused with 403 on every endpoint, as the
    /// reference server's blacklist does. Default 600.
    pub block_secs: u64,
    /// Most client addresses the rate limiter remembers; the least recently seen is
    /// forgotten first, so a flood of addresses cannot exhaust memory. Values below 1 are
    /// treated as 1. Default 10_000.
    pub max_tracked_clients: usize,
    /// Take the client address from the first `X-Forwarded-For` entry instead of the peer
    /// address. Enable only behind a reverse proxy that overwrites that header (e.g. nginx
    /// `proxy_set_header X-Forwarded-For $remote_addr`): a proxy that appends leaves the
    /// first entry under the client's control. Default false.
    pub trust_forwarded_for: bool,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            channel_ttl_secs: 300,
            max_gets: 6,
            channel_id_length: 4,
            max_channels: 10_000,
            max_body_bytes: 16_384,
            creations_per_minute: 10,
            failed_requests_per_minute: 30,
            block_secs: 600,
            max_tracked_clients: 10_000,
            trust_forwarded_for: false,
        }
    }
}

impl ChannelSettings {
    /// [`Self::channel_ttl_secs`] as a duration.
    pub fn channel_ttl(&self) -> Duration {
        Duration::from_secs(self.channel_ttl_secs)
    }

    /// [`Self::block_secs`] as a duration.
    pub fn block_duration(&self) -> Duration {
        Duration::from_secs(self.block_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let settings: ChannelSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, ChannelSettings::default());
        assert_eq!(settings.channel_ttl(), Duration::from_secs(300));
        assert_eq!(settings.max_gets, 6);
        assert_eq!(settings.channel_id_length, 4);
        assert!(!settings.trust_forwarded_for);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<ChannelSettings>(r#"{"ttl": 5}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let settings: ChannelSettings =
            serde_json::from_str(r#"{"max_gets": 2, "trust_forwarded_for": true}"#).unwrap();
        assert_eq!(settings.max_gets, 2);
        assert!(settings.trust_forwarded_for);
        assert_eq!(settings.max_channels, 10_000);
    }
}
