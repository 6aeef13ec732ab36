//! The rules every backend applies the same way: which node a new user goes to, how an
//! account's rows are read, and when an allocation reuses a row a concurrent request just
//! made. They are pure functions over rows, so each backend only fetches and stores.

use std::cmp::Reverse;

use crate::{UserKeys, UserRecord, UserState};

/// How many times capacity is released before giving up on finding a node.
pub const RELEASE_ROUNDS: usize = 5;

/// A node URL as stored: without a trailing slash, so that `https://a/` and `https://a` are
/// one node and `{node}/1.5/{uid}` never has a double slash.
pub fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The node a new user goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub url: String,
    pub current_load: i64,
    pub capacity: i64,
}

/// The best of the candidates: empty first, then the lowest `fullness`, then the lowest id.
pub fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates.into_iter().min_by(|a, b| {
        fullness(a.current_load, a.capacity)
            .total_cmp(&fullness(b.current_load, b.capacity))
            .then(a.id.cmp(&b.id))
    })
}

/// `ln(load) / ln(capacity)`, or -1 for an empty node (whose logarithm is undefined). A
/// candidate has `capacity > load`, so a loaded candidate has `capacity >= 2` and a positive
/// denominator.
pub(crate) fn fullness(load: i64, capacity: i64) -> f64 {
    if load <= 0 {
        -1.0
    } else {
        (load as f64).ln() / (capacity as f64).ln()
    }
}

/// What `get_user` learns from an account's rows.
#[derive(Debug)]
pub struct Summary {
    pub state: UserState,
    /// Rows other than the current one that are not marked replaced.
    pub unreplaced: Vec<u64>,
}

/// Picks the current row (highest generation, then newest; the query's order, newest first
/// and then highest uid, breaks remaining ties) and collects what the other rows say.
pub fn summarize(mut rows: Vec<UserRecord>) -> Option<Summary> {
    // Stable, so rows equal in both keys keep the query's order.
    rows.sort_by_key(|row| Reverse((row.generation, row.created_at)));
    let mut rows = rows.into_iter();
    let current = rows.next()?;
    let mut old_client_states: Vec<String> = Vec::new();
    let mut unreplaced = Vec::new();
    for row in rows {
        if row.client_state != current.client_state
            && !old_client_states.contains(&row.client_state)
        {
            old_client_states.push(row.client_state);
        }
        if row.replaced_at.is_none() {
            unreplaced.push(row.uid);
        }
    }
    Some(Summary {
        state: UserState {
            current,
            old_client_states,
        },
        unreplaced,
    })
}

/// The row an allocation of `keys` may return instead of creating one: the account's
/// current row when it is unreplaced, still on a node and has the same client state.
///
/// The token server allocates only when the account has no usable row or its client state
/// changed, so such a row exists only when a concurrent request for the same account
/// allocated it after this request read the account. Returning it (with its generation and
/// `keys_changed_at` moved forward, as `update_user` would) gives both requests one uid,
/// instead of a second row that would replace the first and strand whatever the first
/// client wrote under it.
pub fn reusable(state: &UserState, keys: &UserKeys) -> Option<UserRecord> {
    let current = &state.current;
    if current.replaced_at.is_some()
        || current.node.is_none()
        || current.client_state != keys.client_state
    {
        return None;
    }
    let keys_changed_at = match (current.keys_changed_at, keys.keys_changed_at) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    };
    Some(UserRecord {
        generation: current.generation.max(keys.generation),
        keys_changed_at,
        ..current.clone()
    })
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    /// Whether `pick` prefers `a` over `b`.
    fn order(a: &Candidate, b: &Candidate) -> Ordering {
        match pick(vec![a.clone(), b.clone()]) {
            Some(best) if best == *a => Ordering::Less,
            _ => Ordering::Greater,
        }
    }

    fn node(id: i64, current_load: i64, capacity: i64) -> Candidate {
        Candidate {
            id,
            url: format!("https://n{id}"),
            current_load,
            capacity,
        }
    }

    #[test]
    fn an_empty_node_comes_first() {
        assert_eq!(order(&node(2, 0, 10), &node(1, 1, 1000)), Ordering::Less);
        assert_eq!(order(&node(1, 1, 1000), &node(2, 0, 10)), Ordering::Greater);
    }

    #[test]
    fn fullness_is_measured_on_a_log_scale() {
        // ln 10 / ln 100 = 0.5 and ln 20 / ln 1000 ≈ 0.43: the bigger node wins although
        // it holds more users.
        assert_eq!(order(&node(2, 20, 1000), &node(1, 10, 100)), Ordering::Less);
        // A node with one user (ln 1 = 0) beats any node with more.
        assert_eq!(
            order(&node(2, 1, 2), &node(1, 2, 1_000_000)),
            Ordering::Less
        );
    }

    #[test]
    fn ties_go_to_the_lowest_id() {
        assert_eq!(order(&node(1, 10, 100), &node(2, 10, 100)), Ordering::Less);
        assert_eq!(order(&node(2, 0, 100), &node(1, 0, 5)), Ordering::Greater);
        assert_eq!(pick(vec![]), None);
    }

    #[test]
    fn urls_lose_trailing_slashes() {
        assert_eq!(normalize("https://a.example/"), "https://a.example");
        assert_eq!(normalize("https://a.example//"), "https://a.example");
        assert_eq!(normalize("https://a.example"), "https://a.example");
    }

    fn keys(email: &str, generation: i64, client_state: &str) -> UserKeys {
        UserKeys {
            email: email.into(),
            generation,
            client_state: client_state.into(),
            keys_changed_at: None,
        }
    }

    fn row(uid: u64, generation: i64, client_state: &str, created_at: i64) -> UserRecord {
        UserRecord {
            uid,
            email: "a@x".into(),
            generation,
            client_state: client_state.into(),
            keys_changed_at: None,
            created_at,
            replaced_at: Some(created_at + 1),
            node: None,
            node_id: 1,
        }
    }

    #[test]
    fn the_highest_generation_is_current_even_if_older() {
        // Rows arrive newest first, as the query returns them.
        let rows = vec![
            row(3, 1, "cc", 300),
            row(2, 5, "bb", 200),
            row(1, 1, "aa", 100),
        ];
        let summary = summarize(rows).unwrap();
        assert_eq!(summary.state.current.uid, 2);
        assert_eq!(summary.state.old_client_states, vec!["cc", "aa"]);
    }

    #[test]
    fn old_client_states_are_distinct_and_exclude_the_current_one() {
        let rows = vec![
            row(4, 3, "cc", 400),
            row(3, 2, "aa", 300),
            row(2, 1, "cc", 200),
            row(1, 1, "aa", 100),
        ];
        let summary = summarize(rows).unwrap();
        assert_eq!(summary.state.current.uid, 4);
        assert_eq!(summary.state.old_client_states, vec!["aa"]);
        assert!(summary.unreplaced.is_empty());
        assert!(summarize(vec![]).is_none());
    }

    fn state(current: UserRecord) -> UserState {
        UserState {
            current,
            old_client_states: vec![],
        }
    }

    #[test]
    fn only_a_live_row_with_the_same_client_state_is_reused() {
        let live = UserRecord {
            replaced_at: None,
            node: Some("https://n".into()),
            keys_changed_at: Some(5),
            ..row(1, 3, "aa", 100)
        };
        let reused = reusable(&state(live.clone()), &keys("a@x", 2, "aa")).unwrap();
        // Moved forward, never back: generation stays 3, keys_changed_at stays 5.
        assert_eq!(
            (reused.uid, reused.generation, reused.keys_changed_at),
            (1, 3, Some(5))
        );
        let newer = UserKeys {
            keys_changed_at: Some(9),
            ..keys("a@x", 7, "aa")
        };
        let reused = reusable(&state(live.clone()), &newer).unwrap();
        assert_eq!((reused.generation, reused.keys_changed_at), (7, Some(9)));
        assert_eq!(reusable(&state(live.clone()), &keys("a@x", 9, "bb")), None);
        let replaced = UserRecord {
            replaced_at: Some(200),
            ..live.clone()
        };
        assert_eq!(reusable(&state(replaced), &keys("a@x", 3, "aa")), None);
        let orphan = UserRecord { node: None, ..live };
        assert_eq!(reusable(&state(orphan), &keys("a@x", 3, "aa")), None);
    }
}
