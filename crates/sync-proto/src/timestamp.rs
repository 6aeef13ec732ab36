//! Sync timestamps: milliseconds since the epoch, truncated to 10 ms, written as seconds
//! with exactly two decimals.
//!
//! Clients compare timestamps as strings in places (and Mozilla's integration tests check
//! the raw body for `<digits>.<2 digits>`), so the two decimals are part of the protocol,
//! not cosmetics. Parsing is done on the decimal text itself rather than through `f64`,
//! because `1388635807.41 * 1000.0` is `1388635807409.9998` and would truncate to the
//! wrong 10 ms bucket.

use std::fmt;

use serde::{Serialize, Serializer};

/// A server timestamp in milliseconds, always a multiple of 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SyncTimestamp(u64);

/// Why a timestamp given by a client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected a non-negative decimal number of seconds")]
pub struct InvalidTimestamp(pub String);

impl SyncTimestamp {
    /// The zero timestamp, used for resources that were never written.
    pub const ZERO: SyncTimestamp = SyncTimestamp(0);

    /// Builds a timestamp from milliseconds, truncating to 10 ms.
    pub fn from_millis(ms: u64) -> Self {
        SyncTimestamp(ms - ms % 10)
    }

    /// The current wall-clock time, truncated to 10 ms.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::from_millis(ms)
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn as_seconds(self) -> u64 {
        self.0 / 1000
    }

    /// The next timestamp after this one (10 ms later).
    pub fn next(self) -> Self {
        SyncTimestamp(self.0 + 10)
    }

    /// Parses the decimal seconds form used by `newer`, `older`, `X-If-Modified-Since` and
    /// `X-If-Unmodified-Since`. Negative values, NaN and anything that is not a number are
    /// refused; precision beyond 10 ms is truncated.
    pub fn parse_seconds(text: &str) -> Result<Self, InvalidTimestamp> {
        let invalid = || InvalidTimestamp(text.to_owned());
        let trimmed = text.trim();
        let (int_part, frac_part) = match trimmed.split_once('.') {
            Some((i, f)) => (i, f),
            None => (trimmed, ""),
        };
        let plain_decimal = !int_part.is_empty()
            && int_part.bytes().all(|b| b.is_ascii_digit())
            && frac_part.bytes().all(|b| b.is_ascii_digit());
        if plain_decimal {
            let seconds: u64 = int_part.parse().map_err(|_| invalid())?;
            let mut millis = 0u64;
            for (i, digit) in frac_part.bytes().take(3).enumerate() {
                millis += u64::from(digit - b'0') * 10u64.pow(2 - i as u32);
            }
            let total = seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(millis))
                .ok_or_else(invalid)?;
            return Ok(Self::from_millis(total));
        }
        // Rare forms such as exponents: accept what `f64` reads, refusing NaN, infinities
        // and negatives.
        let value: f64 = trimmed.parse().map_err(|_| invalid())?;
        if !value.is_finite() || !(0.0..=1e15).contains(&value) {
            return Err(invalid());
        }
        Ok(Self::from_millis((value * 1000.0).round() as u64))
    }
}

impl fmt::Display for SyncTimestamp {
    /// Seconds with exactly two decimals, e.g. `1388635807.41`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 1000, (self.0 % 1000) / 10)
    }
}

impl Serialize for SyncTimestamp {
    /// Serializes as a JSON number that keeps both decimals (`1.50`, not `1.5`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals_without_float_error() {
        let ts = SyncTimestamp::parse_seconds("1388635807.41").unwrap();
        assert_eq!(ts.as_millis(), 1_388_635_807_410);
        assert_eq!(ts.to_string(), "1388635807.41");
    }

    #[test]
    fn truncates_to_ten_milliseconds() {
        assert_eq!(
            SyncTimestamp::parse_seconds("1.239").unwrap().as_millis(),
            1230
        );
        assert_eq!(SyncTimestamp::parse_seconds("7").unwrap().as_millis(), 7000);
        assert_eq!(
            SyncTimestamp::parse_seconds("1e3").unwrap().as_millis(),
            1_000_000
        );
    }

    #[test]
    fn refuses_negative_and_garbage() {
        for bad in ["-1", "abc", "", "NaN", "inf", "1.2.3", "-0.5"] {
            assert!(SyncTimestamp::parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_two_decimals_in_json() {
        let ts = SyncTimestamp::from_millis(1_500);
        assert_eq!(serde_json::to_string(&ts).unwrap(), "1.50");
        assert_eq!(serde_json::to_string(&SyncTimestamp::ZERO).unwrap(), "0.00");
    }
}
