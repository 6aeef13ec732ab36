//! What every SQLite database of syncstack shares: how it is opened (WAL, full
//! durability, a busy timeout, no silent creation of a mistyped path) and how its schema is
//! migrated. Stores with other needs (the storage node's reader pool, the accounts file's
//! mode) use [`migrate`] alone.

mod migrate;
mod open;

pub use migrate::migrate;
pub use open::{BUSY_TIMEOUT_MS, OpenError, open_migrated};
