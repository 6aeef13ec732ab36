//! Server limits as published by `info/configuration`.

use serde::{Deserialize, Serialize};

/// The limits a storage node enforces and advertises.
///
/// Defaults are those of Mozilla's production server so that clients tuned against it
/// batch the same way here. `max_request_bytes` is enforced on the raw body before it is
/// parsed; the others are enforced per record or per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// Largest sum of payload bytes in one POST.
    pub max_post_bytes: u64,
    /// Most records in one POST.
    pub max_post_records: u64,
    /// Largest payload of a single record.
    pub max_record_payload_bytes: u64,
    /// Largest request body; refused with 413 before it is read.
    pub max_request_bytes: u64,
    /// Largest declared total size of a batch (`X-Weave-Total-Bytes`).
    pub max_total_bytes: u64,
    /// Most records in a batch, and the largest page of a collection GET.
    pub max_total_records: u64,
    /// Per-user storage quota in bytes (enforced only when quotas are enabled).
    pub max_quota_limit: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_post_bytes: 2_621_440,
            max_post_records: 100,
            max_record_payload_bytes: 2_621_440,
            max_request_bytes: 2_625_536,
            max_total_bytes: 262_144_000,
            max_total_records: 10_000,
            max_quota_limit: 2_097_152_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_mozillas_server() {
        let json = serde_json::to_string(&ServerLimits::default()).unwrap();
        assert_eq!(
            json,
            r#"{"max_post_bytes":2621440,"max_post_records":100,"max_record_payload_bytes":2621440,"max_request_bytes":2625536,"max_total_bytes":262144000,"max_total_records":10000,"max_quota_limit":2097152000}"#
        );
    }
}
