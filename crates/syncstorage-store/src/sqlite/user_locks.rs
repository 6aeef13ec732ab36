//! Orders a user's batch steps and deletes in process (ADR 0015).
//!
//! A batch's records are staged in one file and committed into another, so a commit is no
//! longer one transaction: it reads the staged records, writes them, then drops the batch.
//! Anything of the same user that touches staged batches (an append, another commit, a
//! delete of a collection or of all storage) must not run between those steps, or an
//! append could be lost or a deleted collection could get a batch's records back. SQLite
//! storage lives in one process, so an in-process lock per user is enough.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::UserId;

/// How many locks users share. Two users on one stripe only wait for each other's batch
/// steps, which are short; a fixed number keeps memory bounded whatever the user count.
const STRIPES: usize = 1024;

/// A fixed array of async mutexes, one chosen per user.
pub(super) struct UserLocks {
    stripes: Box<[Arc<Mutex<()>>]>,
}

impl UserLocks {
    pub fn new() -> UserLocks {
        UserLocks {
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }

    /// Waits for, and holds until the guard is dropped, the lock of `user`'s stripe. The
    /// guard is owned, so that a task finishing a commit's last step can keep holding it
    /// after the client has its answer.
    pub async fn lock(&self, user: UserId) -> OwnedMutexGuard<()> {
        self.stripes[(user % STRIPES as u64) as usize]
            .clone()
            .lock_owned()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_user_waits_for_itself_and_not_for_another_stripe() {
        let locks = UserLocks::new();
        let held = locks.lock(7).await;
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock(8)).await;
        assert!(other.is_ok(), "another user's stripe is free");
        drop(other);
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock(7)).await;
        assert!(same.is_err(), "the same user waits");
        drop(held);
        let again = tokio::time::timeout(Duration::from_millis(50), locks.lock(7)).await;
        assert!(again.is_ok(), "released when the guard is dropped");
    }
}
