//! Easy Setup: pairing two devices by a short code.
#![deny(missing_docs)]

pub mod channel;
pub mod jpake;
pub mod pairing;
