//! What every backend decides the same way: object URIs, the next timestamp of a list, the
//! precondition check and the bounds of a subtree. Pure functions, so the backends only
//! read and write rows.

use crate::{Kind, Object, Precondition, StoreError};

/// The URI of an object: its parent's URI, its kind and its id (`/buckets/b` for a bucket,
/// whose parent is `""`).
pub fn uri(kind: Kind, parent: &str, id: &str) -> String {
    format!("{parent}/{}/{id}", kind.plural())
}

/// The timestamp after `previous` (the list's): `max(now, previous + 1)`, or `forced` when
/// it is newer than `previous` (Kinto ignores a forced value that is not).
pub fn next_timestamp(previous: i64, now: i64, forced: Option<i64>) -> Result<i64, StoreError> {
    match forced {
        Some(forced) if forced > previous => Ok(forced),
        _ => previous
            .checked_add(1)
            .map(|bumped| bumped.max(now))
            .ok_or_else(|| StoreError::Backend("list timestamp overflow".into())),
    }
}

/// Checks `precondition` against the current live object.
pub fn check(precondition: Precondition, current: Option<&Object>) -> Result<(), StoreError> {
    let holds = match precondition {
        Precondition::None => true,
        Precondition::IfMatch(ts) => current.is_some_and(|o| o.last_modified == ts),
        Precondition::IfExists => current.is_some(),
        Precondition::IfAbsent => current.is_none(),
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::PreconditionFailed {
            existing: current.cloned(),
        })
    }
}

/// The bounds for "`uri` and every URI under it": `(uri, uri + "/", uri + "0")`. A text
/// `t` is `uri` or starts with `uri/` exactly when `uri <= t < uri0` and (`t = uri` or
/// `t >= uri/`) when text compares bytewise (SQLite's default; the PostgreSQL columns are
/// `COLLATE "C"`), and `0` is the byte after `/`.
pub fn under(uri: &str) -> (&str, String, String) {
    (uri, format!("{uri}/"), format!("{uri}0"))
}

#[cfg(test)]
mod tests {
    use super::next_timestamp;

    #[test]
    fn next_timestamp_follows_kinto() {
        // The clock when it is ahead, else one past the list.
        assert_eq!(next_timestamp(10, 50, None), Ok(50));
        assert_eq!(next_timestamp(50, 50, None), Ok(51));
        assert_eq!(next_timestamp(80, 50, None), Ok(81));
        // A forced value only when newer than the list, even if behind the clock.
        assert_eq!(next_timestamp(10, 50, Some(20)), Ok(20));
        assert_eq!(next_timestamp(10, 50, Some(10)), Ok(50));
        assert_eq!(next_timestamp(80, 50, Some(5)), Ok(81));
        assert!(next_timestamp(i64::MAX, 50, None).is_err());
    }
}
