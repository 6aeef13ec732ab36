//! What every SQLite database of syncstack shares: how it is opened (WAL, full
//! durability, a busy timeout, no silent creation of a mistyped path), how its schema is
//! migrated, and how row limits are written into statements ([`limit_clause`]). Stores
//! with other needs (the storage node's reader pool, the accounts file's mode) use
//! [`migrate`] alone.

mod limit;
mod migrate;
mod open;

pub use limit::{limit_clause, offset_clause};
pub use migrate::migrate;
pub use open::{BUSY_TIMEOUT_MS, OpenError, open_migrated};
