//! Weave response codes: the bare JSON integers that SyncStorage error bodies carry.

/// The Weave error codes that a 1.5 storage node emits, as Mozilla's server does.
///
/// The numbering is the protocol's; codes of the 1.0/1.1 era that no 1.5 server emits are
/// left out on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WeaveError {
    /// Generic error (Mozilla's server uses it for 401, 404, conflicts and most header or
    /// query errors).
    Unknown = 0,
    /// The request body or one of its records is not a valid Basic Storage Object.
    InvalidWbo = 8,
    /// The user is over quota.
    OverQuota = 14,
    /// A size limit was exceeded.
    SizeLimitExceeded = 17,
}

impl WeaveError {
    /// The integer written as the response body.
    pub fn code(self) -> u8 {
        self as u8
    }
}
