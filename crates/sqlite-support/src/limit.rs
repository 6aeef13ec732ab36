//! Row limits in SQL text.

/// ` LIMIT n`, written into the statement's text rather than bound as a parameter.
///
/// SQLite (the bundled 3.50, as its `sqlite3ExprIsInteger` shows) reads a bound `LIMIT`
/// value while planning, and marks the prepared statement so that binding that parameter
/// again throws the plan away: every run of a cached statement with `LIMIT ?` was parsed
/// and planned anew (a tenth of the storage node's listing CPU, measured with `perf`). A
/// literal keeps the statement reusable; each distinct limit is one more entry in the
/// connection's statement cache.
pub fn limit_clause(rows: u64) -> String {
    format!(" LIMIT {rows}")
}

/// ` OFFSET n`, written into the text for the same reason as [`limit_clause`].
pub fn offset_clause(rows: u64) -> String {
    format!(" OFFSET {rows}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, StatementStatus};

    /// The reason these exist: a bound LIMIT makes SQLite prepare the statement again on
    /// every run, a literal one does not.
    #[test]
    fn a_literal_limit_is_not_prepared_again_and_a_bound_one_is() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);")
            .unwrap();
        let reprepared = |sql: &str, bind: bool| {
            let mut stmt = conn.prepare(sql).unwrap();
            for _ in 0..3 {
                let rows: Vec<i64> = if bind {
                    stmt.query_map([2], |r| r.get(0))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect()
                } else {
                    stmt.query_map([], |r| r.get(0))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect()
                };
                assert_eq!(rows, [1, 2]);
            }
            stmt.get_status(StatementStatus::RePrepare)
        };
        assert!(reprepared("SELECT x FROM t ORDER BY x LIMIT ?1", true) > 0);
        let literal = format!("SELECT x FROM t ORDER BY x{}", limit_clause(2));
        assert_eq!(reprepared(&literal, false), 0);
    }
}
