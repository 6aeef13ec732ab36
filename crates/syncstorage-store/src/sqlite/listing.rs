//! Collection listings: one page of a collection's records in the asked order, with keyset
//! pagination (see [`Cursor`]).
//!
//! Records are ordered by their sort key, and records with the same key by id. The index
//! on `(user_id, collection_id, modified)` hands rows over in `modified` order, but many
//! records share a timestamp (every record of one upload has the same), and asking SQLite
//! for `ORDER BY modified, id` made it copy each run of equal timestamps, payloads and all,
//! into a temporary b-tree to sort it: a third of the listing's CPU under the benchmark's
//! mix (`perf`). So for `newest` and `oldest`, rows are read in index order and each run of
//! equal timestamps is sorted by id here, which gives the same order. A run too long to
//! hold (more than two pages' rows or one page's bytes) falls back to SQLite's sort.

use rusqlite::Transaction;
use rusqlite::types::Value;
use rusqlite::{Row, params_from_iter};
use sqlite_support::{limit_clause, offset_clause};

use super::backend;
use super::now_ms;
use super::read::{MISSING_SORTINDEX_KEY, ts};
use crate::page::PageBuilder;
use crate::{Bso, BsoPage, BsoQuery, Cursor, Sort, StoreError, UserId};

/// A page of a collection listing.
pub fn bsos(
    tx: &Transaction<'_>,
    user: UserId,
    collection_id: i64,
    query: &BsoQuery,
    max_page_bytes: usize,
) -> Result<BsoPage, StoreError> {
    if query.ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(BsoPage::default());
    }
    let filter = Filter::new(user, collection_id, query);
    let by_modified = matches!(query.sort, Sort::Newest | Sort::Oldest);
    let skips = matches!(query.cursor, Some(Cursor::Skip(_)));
    if by_modified
        && !skips
        && let Some(page) = ties_sorted_here(tx, &filter, query, max_page_bytes)?
    {
        return Ok(page);
    }
    sorted_by_sqlite(tx, filter, query, max_page_bytes)
}

/// The listing's `SELECT ... WHERE ...`, and the values it binds.
struct Filter {
    sql: String,
    args: Vec<Value>,
    sort_key: String,
}

impl Filter {
    fn new(user: UserId, collection_id: i64, query: &BsoQuery) -> Filter {
        let sort_key = match query.sort {
            Sort::Newest | Sort::Oldest => "modified".to_owned(),
            Sort::Index => format!("COALESCE(sortindex, {MISSING_SORTINDEX_KEY})"),
        };
        let payload = if query.full { "payload" } else { "''" };
        let mut filter = Filter {
            sql: format!(
                "SELECT id, modified, {payload}, sortindex, {sort_key} FROM bsos \
                 WHERE user_id = ?1 AND collection_id = ?2 AND expiry > ?3"
            ),
            args: vec![
                Value::Integer(user as i64),
                Value::Integer(collection_id),
                Value::Integer(now_ms()),
            ],
            sort_key,
        };
        if let Some(newer) = query.newer {
            filter.push(" AND modified > ?", newer.as_millis() as i64);
        }
        if let Some(older) = query.older {
            filter.push(" AND modified < ?", older.as_millis() as i64);
        }
        if let Some(ids) = &query.ids {
            filter.sql.push_str(" AND id IN (");
            for (i, id) in ids.iter().enumerate() {
                filter.push(if i == 0 { "?" } else { ",?" }, id.clone());
            }
            filter.sql.push(')');
        }
        if let Some(Cursor::After { key, id }) = &query.cursor {
            let (key_cmp, id_cmp) = query.sort.after_cursor();
            filter.args.push(Value::Integer(*key));
            let key_arg = filter.args.len();
            filter.args.push(Value::Text(id.clone()));
            let id_arg = filter.args.len();
            let sort_key = &filter.sort_key;
            filter.sql.push_str(&format!(
                " AND ({sort_key} {key_cmp} ?{key_arg} \
                 OR ({sort_key} = ?{key_arg} AND id {id_cmp} ?{id_arg}))"
            ));
        }
        filter
    }

    /// Appends `fragment`, whose one `?` becomes the next numbered parameter.
    fn push(&mut self, fragment: &str, value: impl Into<Value>) {
        self.args.push(value.into());
        let numbered = format!("?{}", self.args.len());
        self.sql.push_str(&fragment.replace('?', &numbered));
    }
}

fn bso_and_key(row: &Row<'_>) -> rusqlite::Result<(Bso, i64)> {
    Ok((
        Bso {
            id: row.get(0)?,
            modified: ts(row.get(1)?),
            payload: row.get(2)?,
            sortindex: row.get(3)?,
        },
        row.get(4)?,
    ))
}

/// The page, sorted entirely by SQLite: for `sort=index` (no index holds that order) and
/// for legacy numeric offsets.
fn sorted_by_sqlite(
    tx: &Transaction<'_>,
    filter: Filter,
    query: &BsoQuery,
    max_page_bytes: usize,
) -> Result<BsoPage, StoreError> {
    let mut sql = format!("{} ORDER BY {}", filter.sql, query.sort.order_by());
    // One row more than asked tells whether another page follows.
    sql.push_str(&limit_clause(u64::from(query.limit) + 1));
    if let Some(Cursor::Skip(skip)) = query.cursor {
        sql.push_str(&offset_clause(skip));
    }
    let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(filter.args), bso_and_key)
        .map_err(backend)?;
    let mut page = PageBuilder::new(query.limit, max_page_bytes);
    for row in rows {
        let (bso, key) = row.map_err(backend)?;
        if !page.offer(bso, key) {
            break;
        }
    }
    Ok(page.finish())
}

/// The page for `newest` and `oldest`, read in index order with each run of equal
/// timestamps sorted by id here; `None` if a run is too long to hold.
fn ties_sorted_here(
    tx: &Transaction<'_>,
    filter: &Filter,
    query: &BsoQuery,
    max_page_bytes: usize,
) -> Result<Option<BsoPage>, StoreError> {
    let newest_first = query.sort == Sort::Newest;
    let direction = if newest_first { "DESC" } else { "ASC" };
    let sql = format!("{} ORDER BY modified {direction}", filter.sql);
    let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
    let mut rows = stmt
        .query_map(params_from_iter(filter.args.iter()), bso_and_key)
        .map_err(backend)?;
    let mut page = PageBuilder::new(query.limit, max_page_bytes);
    let most_rows = 2 * (query.limit as usize + 1);
    let mut run: Vec<(Bso, i64)> = Vec::new();
    let mut run_bytes = 0usize;
    loop {
        let next = rows.next().transpose().map_err(backend)?;
        let run_ended = match (&next, run.first()) {
            (Some((_, key)), Some((_, run_key))) => key != run_key,
            (None, _) => true,
            (Some(_), None) => false,
        };
        if run_ended {
            run.sort_unstable_by(|(a, _), (b, _)| {
                if newest_first {
                    b.id.cmp(&a.id)
                } else {
                    a.id.cmp(&b.id)
                }
            });
            for (bso, key) in run.drain(..) {
                if !page.offer(bso, key) {
                    return Ok(Some(page.finish()));
                }
            }
            run_bytes = 0;
        }
        let Some((bso, key)) = next else {
            return Ok(Some(page.finish()));
        };
        if page.is_full() {
            // This row proves that another page follows.
            page.offer(bso, key);
            return Ok(Some(page.finish()));
        }
        run_bytes += bso.payload.len();
        run.push((bso, key));
        if page.len() + run.len() > most_rows || run_bytes > max_page_bytes {
            return Ok(None);
        }
    }
}
