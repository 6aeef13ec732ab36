//! The rules that keep a user's generation, keys_changed_at and client state moving only
//! forward, in the reference's order (Mozilla's tokenserver, "validate" then "update_user").
//!
//! A client state is the fingerprint of the account's sync keys. Going back to an older one,
//! or changing it without the account's generation or keys_changed_at moving, means a
//! client with stale keys, which would upload data nobody else can decrypt; these requests
//! are refused. The rules are pure functions over the stored record and the request, so each
//! is tested on its own.

use tokenserver_store::UserState;

use crate::error::TokenServerError;

/// What the request says about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The access token's generation (None when absent or 0).
    pub generation: Option<i64>,
    /// The X-KeyID keys_changed_at (None when 0).
    pub keys_changed_at: Option<i64>,
    /// The X-KeyID client state, lowercase hex.
    pub client_state: String,
}

/// True when both are present and `op` holds.
fn both<T: Copy>(left: Option<T>, right: Option<T>, op: impl Fn(T, T) -> bool) -> bool {
    matches!((left, right), (Some(l), Some(r)) if op(l, r))
}

/// Refuses a request whose keys go backwards or change without the account changing.
pub fn validate(user: &UserState, claimed: &Claimed) -> Result<(), TokenServerError> {
    let current = &user.current;
    let user_generation = Some(current.generation);
    let user_kca = current.keys_changed_at;
    let changed_state = claimed.client_state != current.client_state;

    // Keys that changed must come with a generation at least as new (a server without
    // keys_changed_at support may already have stored the new generation).
    if both(claimed.keys_changed_at, user_kca, |c, u| c > u)
        && both(claimed.generation, claimed.keys_changed_at, |g, k| g < k)
    {
        return Err(TokenServerError::invalid_keys_changed_at(
            "keys_changed_at greater than generation",
        ));
    }
    if !current.client_state.is_empty() && claimed.client_state.is_empty() {
        return Err(TokenServerError::unacceptable_client_state("empty string"));
    }
    if user.old_client_states.contains(&claimed.client_state) {
        return Err(TokenServerError::unacceptable_client_state("stale value"));
    }
    if changed_state && both(claimed.generation, user_generation, |c, u| c <= u) {
        return Err(TokenServerError::unacceptable_client_state(
            "new value with no generation change",
        ));
    }
    if changed_state && both(claimed.keys_changed_at, user_kca, |c, u| c <= u) {
        return Err(TokenServerError::unacceptable_client_state(
            "new value with no keys_changed_at change",
        ));
    }
    if both(user_generation, claimed.generation, |u, c| u > c) {
        return Err(TokenServerError::invalid_generation(
            "generation older than the one on record",
        ));
    }
    if both(user_kca, claimed.keys_changed_at, |u, c| u > c) {
        return Err(TokenServerError::invalid_keys_changed_at(
            "keys_changed_at older than the one on record",
        ));
    }
    if claimed.keys_changed_at.is_none() && matches!(user_kca, Some(k) if k != 0) {
        return Err(TokenServerError::invalid_keys_changed_at(
            "no keys_changed_at for a user who sent one before",
        ));
    }
    Ok(())
}

/// The generation and keys_changed_at to store after a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated {
    /// New generation.
    pub generation: i64,
    /// New keys_changed_at.
    pub keys_changed_at: Option<i64>,
}

/// Computes the values to store; call only after [`validate`] accepted the request.
pub fn updated(user: &UserState, claimed: &Claimed) -> Updated {
    let current = &user.current;
    let keys_changed_at = match (claimed.keys_changed_at, current.keys_changed_at) {
        (Some(c), Some(u)) => Some(c.max(u)),
        (Some(c), None) => Some(c),
        (None, Some(_)) => Some(0),
        (None, None) => None,
    };
    let generation = match claimed.generation {
        Some(c) => c.max(current.generation),
        None => match (claimed.keys_changed_at, current.keys_changed_at) {
            (Some(c), Some(u)) if c > u && c > current.generation => c,
            (Some(c), None) if c > current.generation => c,
            _ => current.generation,
        },
    };
    Updated {
        generation,
        keys_changed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenserver_store::UserRecord;

    fn user(generation: i64, kca: Option<i64>, state: &str, old: &[&str]) -> UserState {
        UserState {
            current: UserRecord {
                uid: 1,
                email: "a@b".into(),
                generation,
                client_state: state.into(),
                keys_changed_at: kca,
                created_at: 0,
                replaced_at: None,
                node: Some("http://n".into()),
                node_id: 1,
            },
            old_client_states: old.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn claim(generation: Option<i64>, kca: Option<i64>, state: &str) -> Claimed {
        Claimed {
            generation,
            keys_changed_at: kca,
            client_state: state.into(),
        }
    }

    fn status(user: &UserState, claimed: &Claimed) -> &'static str {
        validate(user, claimed)
            .map(|_| "ok")
            .unwrap_or_else(|e| e.status_text)
    }

    #[test]
    fn same_or_newer_values_pass() {
        let u = user(10, Some(10), "aaaa", &[]);
        assert_eq!(status(&u, &claim(Some(10), Some(10), "aaaa")), "ok");
        assert_eq!(status(&u, &claim(Some(20), Some(20), "bbbb")), "ok");
        assert_eq!(status(&u, &claim(None, Some(10), "aaaa")), "ok");
    }

    #[test]
    fn each_rule_in_order() {
        let u = user(10, Some(10), "aaaa", &["cccc"]);
        // 1. keys changed but the generation lags behind them.
        assert_eq!(
            status(&u, &claim(Some(15), Some(20), "bbbb")),
            "invalid-keysChangedAt"
        );
        // 2. empty client state where one is known.
        assert_eq!(
            validate(&u, &claim(Some(10), Some(10), ""))
                .unwrap_err()
                .description,
            "Unacceptable client-state value empty string"
        );
        // 3. a client state used before.
        assert_eq!(
            validate(&u, &claim(Some(30), Some(30), "cccc"))
                .unwrap_err()
                .description,
            "Unacceptable client-state value stale value"
        );
        // 4. a new client state without a generation change.
        assert_eq!(
            validate(&u, &claim(Some(10), Some(10), "bbbb"))
                .unwrap_err()
                .description,
            "Unacceptable client-state value new value with no generation change"
        );
        // 5. a new client state without a keys_changed_at change.
        assert_eq!(
            validate(&u, &claim(Some(20), Some(10), "bbbb"))
                .unwrap_err()
                .description,
            "Unacceptable client-state value new value with no keys_changed_at change"
        );
        // 6. generation going backwards.
        assert_eq!(
            status(&u, &claim(Some(9), Some(10), "aaaa")),
            "invalid-generation"
        );
        // 7. keys_changed_at going backwards.
        assert_eq!(
            status(&u, &claim(Some(10), Some(9), "aaaa")),
            "invalid-keysChangedAt"
        );
        // 8. keys_changed_at missing after one was seen.
        assert_eq!(
            status(&u, &claim(Some(10), None, "aaaa")),
            "invalid-keysChangedAt"
        );
    }

    #[test]
    fn updates_only_move_forward() {
        let u = user(10, Some(10), "aaaa", &[]);
        assert_eq!(
            updated(&u, &claim(Some(12), Some(11), "aaaa")),
            Updated {
                generation: 12,
                keys_changed_at: Some(11)
            }
        );
        // No generation in the token: a newer keys_changed_at stands in for it.
        assert_eq!(
            updated(&u, &claim(None, Some(20), "aaaa")),
            Updated {
                generation: 20,
                keys_changed_at: Some(20)
            }
        );
        let fresh = user(0, None, "", &[]);
        assert_eq!(
            updated(&fresh, &claim(None, Some(5), "aaaa")),
            Updated {
                generation: 5,
                keys_changed_at: Some(5)
            }
        );
        assert_eq!(
            updated(&fresh, &claim(None, None, "aaaa")),
            Updated {
                generation: 0,
                keys_changed_at: None
            }
        );
    }
}
