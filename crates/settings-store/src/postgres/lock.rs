//! Named locks shared by every process on the database: session advisory locks.
//!
//! A session lock belongs to a connection, so the connection is kept out of the pool for as
//! long as the lock is held. Releasing needs a query, which `Drop` cannot await: the guard
//! spawns it, and a connection whose unlock fails (or that is dropped outside a runtime)
//! is closed instead of going back to the pool, since closing the session releases its
//! locks too. The same holds while waiting: a caller that gives up (its future dropped)
//! closes the connection, so a lock granted later is not left held by a pooled connection.

use deadpool_postgres::Object;

use super::{backend, execute};
use crate::{StoreError, StoreLock};

/// The advisory lock key of `name` (two 32-bit halves, the first naming syncstack's
/// settings locks so they do not collide with other users of advisory locks).
const KEY: &str = "hashtext('syncstack-settings-lock'), hashtext($1)";

/// Waits for the lock named `name` on `client` and returns it held.
pub async fn acquire(client: Object, name: &str) -> Result<StoreLock, StoreError> {
    let mut waiting = Held {
        client: Some(client),
        name: name.to_owned(),
        locked: false,
    };
    let client = waiting.client.as_ref().expect("client present until drop");
    execute(client, &format!("SELECT pg_advisory_lock({KEY})"), &[&name]).await?;
    waiting.locked = true;
    Ok(StoreLock::new(waiting))
}

/// A connection holding (or waiting for) a lock.
struct Held {
    client: Option<Object>,
    name: String,
    locked: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let runtime = tokio::runtime::Handle::try_current();
        match (self.locked, runtime) {
            (true, Ok(runtime)) => {
                let name = std::mem::take(&mut self.name);
                runtime.spawn(async move {
                    let sql = format!("SELECT pg_advisory_unlock({KEY})");
                    if let Err(error) = client.execute(&sql, &[&name]).await {
                        tracing::warn!(error = %backend(error), lock = %name, "closing the connection to release a settings lock");
                        drop(Object::take(client));
                    }
                });
            }
            // Still waiting (the caller gave up) or no runtime: close the session.
            _ => drop(Object::take(client)),
        }
    }
}
