//! What both backends' batch uploads share: how a batch is named, how a staged field is
//! stored, and how several updates of one record combine.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sync_proto::{BsoUpdate, Patch};

/// A new batch id: 128 random bits, URL-safe, so that one user cannot guess another's
/// batch (the owner is checked too) and ids never collide across nodes.
pub(crate) fn new_batch_id() -> String {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// How a staged field's patch is stored beside its value: 0 keep, 1 reset, 2 set.
pub(crate) fn patch_op<T>(patch: &Patch<T>) -> i16 {
    match patch {
        Patch::Keep => 0,
        Patch::Reset => 1,
        Patch::Set(_) => 2,
    }
}

/// The patch a stored op code and value stand for (see [`patch_op`]).
pub(crate) fn patch_from<T>(op: i16, value: Option<T>) -> Patch<T> {
    match (op, value) {
        (2, Some(v)) => Patch::Set(v),
        (0, _) => Patch::Keep,
        _ => Patch::Reset,
    }
}

/// Folds updates of the same id into one, in the order of their first appearance, as if
/// they had been applied one after the other (a later field that was not sent leaves the
/// earlier one in force). PostgreSQL needs this because one statement writes all records
/// and cannot change a row twice; SQLite, because a batch's commit writes its staged
/// records and the commit's own as one write.
pub(crate) fn merge_updates(items: Vec<BsoUpdate>) -> Vec<BsoUpdate> {
    let mut merged: Vec<BsoUpdate> = Vec::with_capacity(items.len());
    let mut position = HashMap::with_capacity(items.len());
    for item in items {
        match position.get(&item.id) {
            Some(&at) => {
                let existing: &mut BsoUpdate = &mut merged[at];
                existing.sortindex = std::mem::take(&mut existing.sortindex).then(item.sortindex);
                existing.payload = std::mem::take(&mut existing.payload).then(item.payload);
                existing.ttl = std::mem::take(&mut existing.ttl).then(item.ttl);
            }
            None => {
                position.insert(item.id.clone(), merged.len());
                merged.push(item);
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, payload: Patch<String>, sortindex: Patch<i32>) -> BsoUpdate {
        BsoUpdate {
            id: id.into(),
            sortindex,
            payload,
            ttl: Patch::Keep,
        }
    }

    #[test]
    fn merging_applies_later_updates_on_top_in_first_seen_order() {
        let merged = merge_updates(vec![
            update("a", Patch::Set("1".into()), Patch::Set(3)),
            update("b", Patch::Set("b".into()), Patch::Keep),
            update("a", Patch::Keep, Patch::Reset),
            update("a", Patch::Set("2".into()), Patch::Keep),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].id, "a");
        assert_eq!(merged[0].payload, Patch::Set("2".into()));
        assert_eq!(merged[0].sortindex, Patch::Reset);
        assert_eq!(merged[1].id, "b");
    }

    #[test]
    fn a_stored_patch_reads_back_as_itself() {
        for patch in [Patch::Keep, Patch::Reset, Patch::Set(7)] {
            let value = match patch {
                Patch::Set(v) => Some(v),
                _ => None,
            };
            assert_eq!(patch_from(patch_op(&patch), value), patch);
        }
    }
}
