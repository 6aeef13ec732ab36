//! Pagination cursors (`X-Weave-Next-Offset`).
//!
//! Mozilla's server encodes offsets as row counts, so a page boundary shifts when records
//! are added or removed between two requests, and records are skipped or repeated. Here the
//! cursor names the last record returned (its sort key and id), and the next page starts
//! strictly after it: records written meanwhile never shift the boundary. Clients treat the
//! token as opaque, as the protocol requires; a bare integer is still accepted as a row
//! offset for clients that compute one.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Strictly after the record with this sort key and id.
    After {
        /// The sort key of the last record returned (modified ms, or sortindex).
        key: i64,
        /// Its id.
        id: String,
    },
    /// Skip this many records (the legacy numeric form).
    Skip(u64),
}

/// An offset that this server did not issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid offset")]
pub struct InvalidCursor;

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::After { key, id } => write!(f, "{key}.{}", URL_SAFE_NO_PAD.encode(id)),
            Cursor::Skip(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Cursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('.') {
            None => text.parse().map(Cursor::Skip).map_err(|_| InvalidCursor),
            Some((key, id)) => {
                let key = key.parse().map_err(|_| InvalidCursor)?;
                let id = URL_SAFE_NO_PAD.decode(id).map_err(|_| InvalidCursor)?;
                let id = String::from_utf8(id).map_err(|_| InvalidCursor)?;
                if !sync_proto::bso::is_valid_bso_id(&id) {
                    return Err(InvalidCursor);
                }
                Ok(Cursor::After { key, id })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for cursor in [
            Cursor::After {
                key: 1_700_000_000_120,
                id: "a b:c.d".into(),
            },
            Cursor::After {
                key: -5,
                id: "x".into(),
            },
            Cursor::Skip(20),
        ] {
            assert_eq!(cursor.to_string().parse::<Cursor>().unwrap(), cursor);
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "-1", "abc", "1.!!", "x.YQ", "1.", "1.4pY"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
