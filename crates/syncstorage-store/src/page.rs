//! A listing's order and where its pages end, the same on every backend, so that both
//! list records alike and read each other's cursors.

use crate::{Bso, BsoPage, Cursor, Sort};

impl Sort {
    /// The listing's SQL `ORDER BY`, for a statement whose fifth column is the sort key.
    /// Records with equal keys order by id, so a listing has one order and a cursor one
    /// place in it.
    pub(crate) fn order_by(self) -> &'static str {
        match self {
            Sort::Newest => "modified DESC, id DESC",
            Sort::Oldest => "modified ASC, id ASC",
            Sort::Index => "5 DESC, id ASC",
        }
    }

    /// How a record that comes after a cursor compares with it: by sort key, and by id
    /// among equal keys.
    pub(crate) fn after_cursor(self) -> (&'static str, &'static str) {
        match self {
            Sort::Newest => ("<", "<"),
            Sort::Oldest => (">", ">"),
            Sort::Index => ("<", ">"),
        }
    }
}

/// Collects a listing's rows, in listing order, into one page.
///
/// A page ends at `limit` records or, whichever comes first, once it holds `max_bytes` of
/// payload, so that one request never holds gigabytes in memory (10,000 records of 2.5 MB
/// would be 25 GB); the cursor it ends with lets the client fetch the rest. A backend
/// offers rows until [`offer`](Self::offer) says the page is full: the row refused then is
/// the proof that another page follows, which is why backends read one row more than the
/// limit.
pub(crate) struct PageBuilder {
    rows: Vec<Bso>,
    last_key: i64,
    bytes: usize,
    limit: usize,
    max_bytes: usize,
    more: bool,
}

impl PageBuilder {
    pub fn new(limit: u32, max_bytes: usize) -> PageBuilder {
        PageBuilder {
            rows: Vec::new(),
            last_key: 0,
            bytes: 0,
            limit: limit as usize,
            max_bytes,
            more: false,
        }
    }

    /// Offers the next row (with its sort key); false, and the row dropped, once the page
    /// is full.
    pub fn offer(&mut self, bso: Bso, key: i64) -> bool {
        if self.is_full() {
            self.more = true;
            return false;
        }
        self.bytes += bso.payload.len();
        self.last_key = key;
        self.rows.push(bso);
        true
    }

    /// Whether the next row offered would be refused.
    pub fn is_full(&self) -> bool {
        self.more
            || self.rows.len() >= self.limit
            || (self.bytes >= self.max_bytes && !self.rows.is_empty())
    }

    /// Rows kept so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The page, with a cursor after its last row if another page follows.
    pub fn finish(self) -> BsoPage {
        let next = if self.more {
            self.rows.last().map(|bso| Cursor::After {
                key: self.last_key,
                id: bso.id.clone(),
            })
        } else {
            None
        };
        BsoPage {
            items: self.rows,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_proto::SyncTimestamp;

    fn bso(id: &str, payload: &str) -> Bso {
        Bso {
            id: id.into(),
            modified: SyncTimestamp::from_millis(0),
            payload: payload.into(),
            sortindex: None,
        }
    }

    #[test]
    fn ends_at_the_limit_with_a_cursor_after_the_last_row() {
        let mut page = PageBuilder::new(2, usize::MAX);
        assert!(page.offer(bso("a", "x"), 30));
        assert!(page.offer(bso("b", "x"), 20));
        assert!(!page.offer(bso("c", "x"), 10));
        let page = page.finish();
        assert_eq!(page.items.len(), 2);
        let after = Cursor::After {
            key: 20,
            id: "b".into(),
        };
        assert_eq!(page.next, Some(after));
    }

    #[test]
    fn ends_once_it_holds_the_byte_budget_but_never_empty() {
        let mut page = PageBuilder::new(10, 4);
        assert!(page.offer(bso("a", "123456"), 3));
        assert!(!page.offer(bso("b", "1"), 2));
        assert_eq!(page.finish().items.len(), 1);
    }

    #[test]
    fn a_listing_that_ends_has_no_cursor() {
        let mut page = PageBuilder::new(2, usize::MAX);
        assert!(page.offer(bso("a", "x"), 1));
        assert!(page.offer(bso("b", "x"), 1));
        assert_eq!(page.finish().next, None);
    }
}
