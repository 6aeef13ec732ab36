//! The review status of a source collection and who may move it where: the reference's
//! `check_collection_status`, `check_collection_tracking` and `prevent_float_value`, with
//! the same refusals (400 errno 109 for an impossible change, 403 errno 121 for a person
//! not allowed to make it) and the same messages.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::{Errno, KintoError};

/// The `status` of a source collection (exact wire strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Edited since the last review request or signature.
    WorkInProgress,
    /// An editor asks for a review; the preview collection shows the changes.
    ToReview,
    /// A reviewer approves: the changes are published and signed.
    ToSign,
    /// Published and signed (set by the plugin only).
    Signed,
    /// Sign the published data again without changing it (the reference's `TO_REFRESH`).
    ToResign,
    /// Drop the changes: the source goes back to what is published.
    ToRollback,
}

impl Status {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::WorkInProgress => "work-in-progress",
            Status::ToReview => "to-review",
            Status::ToSign => "to-sign",
            Status::Signed => "signed",
            Status::ToResign => "to-resign",
            Status::ToRollback => "to-rollback",
        }
    }

    /// Parses a wire string.
    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::WorkInProgress,
            Status::ToReview,
            Status::ToSign,
            Status::Signed,
            Status::ToResign,
            Status::ToRollback,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Who last did what, kept in the source collection's metadata and read-only for people.
pub const TRACKING_FIELDS: [&str; 8] = [
    "last_edit_by",
    "last_edit_date",
    "last_review_request_by",
    "last_review_request_date",
    "last_review_by",
    "last_review_date",
    "last_signature_by",
    "last_signature_date",
];

/// 400 errno 109 with the reference's message.
pub fn invalid(message: impl Into<String>) -> KintoError {
    KintoError::new(StatusCode::BAD_REQUEST, Errno::InvalidPostedData, message)
}

/// 403 errno 121 with the reference's message.
pub fn forbidden(message: impl Into<String>) -> KintoError {
    KintoError::new(StatusCode::FORBIDDEN, Errno::Forbidden, message)
}

/// What is known about the person changing a source collection.
pub struct Requester<'a> {
    /// Their user id (`account:alice`).
    pub user_id: Option<&'a str>,
    /// Whether they are in the collection's editors group.
    pub is_editor: bool,
    /// Whether they are in the collection's reviewers group.
    pub is_reviewer: bool,
}

/// How review works for one collection.
pub struct ReviewRules<'a> {
    /// Whether a review by someone else is needed.
    pub to_review_enabled: bool,
    /// Whether the review requester may approve.
    pub allow_self_approval: bool,
    /// The editors group's id (for messages).
    pub editors_group: &'a str,
    /// The reviewers group's id.
    pub reviewers_group: &'a str,
}

/// Checks a write of a source collection's metadata: its status change, then its
/// tracking fields (in the reference's order).
pub fn check_collection_write(
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
    who: &Requester<'_>,
    rules: &ReviewRules<'_>,
) -> Result<(), KintoError> {
    let empty = Map::new();
    let before = before.unwrap_or(&empty);
    check_status_change(before, after, who, rules)?;
    for field in TRACKING_FIELDS {
        if before.get(field) != after.get(field) {
            return Err(invalid(format!("Cannot change '{field}'")));
        }
    }
    Ok(())
}

fn check_status_change(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    who: &Requester<'_>,
    rules: &ReviewRules<'_>,
) -> Result<(), KintoError> {
    let old = before.get("status");
    let new = after.get("status");
    if old == new {
        return Ok(());
    }
    let Some(new) = new.filter(|v| !v.is_null()) else {
        return Err(invalid("Cannot remove status"));
    };
    let old = old.and_then(Value::as_str).and_then(Status::parse);
    let invalid_status = || invalid(format!("Invalid status '{}'", display(new)));
    let new = new
        .as_str()
        .and_then(Status::parse)
        .ok_or_else(invalid_status)?;
    match new {
        Status::WorkInProgress | Status::ToResign => Ok(()),
        Status::ToReview => {
            if rules.to_review_enabled && !who.is_editor {
                return Err(forbidden(format!("Not in {} group", rules.editors_group)));
            }
            Ok(())
        }
        Status::ToSign => {
            if old == Some(Status::Signed) {
                return Err(invalid("Collection already signed"));
            }
            if rules.to_review_enabled {
                if !who.is_reviewer {
                    return Err(forbidden(format!("Not in {} group", rules.reviewers_group)));
                }
                if old != Some(Status::ToReview) {
                    return Err(invalid("Collection not under review"));
                }
                let requester = before.get("last_review_request_by").and_then(Value::as_str);
                if !rules.allow_self_approval && requester.is_some() && requester == who.user_id {
                    return Err(forbidden("Last editor cannot review"));
                }
            }
            Ok(())
        }
        Status::Signed => Err(invalid(format!("Cannot set status to '{}'", new.as_str()))),
        Status::ToRollback => {
            if old == Some(Status::Signed) {
                return Err(invalid("Collection has no work-in-progress"));
            }
            Ok(())
        }
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Refuses a record holding a floating-point number anywhere, naming its path.
pub fn refuse_floats(record: &Map<String, Value>) -> Result<(), KintoError> {
    fn scan(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::Number(n) if n.is_f64() => Some(path.to_owned()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| scan(v, &join(path, &i.to_string()))),
            Value::Object(map) => map.iter().find_map(|(k, v)| scan(v, &join(path, k))),
            _ => None,
        }
    }
    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    }
    match record.iter().find_map(|(k, v)| scan(v, k)) {
        Some(path) => Err(invalid(format!(
            "field contains float value (tip: use integer or string), '{path}'"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULES: ReviewRules<'static> = ReviewRules {
        to_review_enabled: true,
        allow_self_approval: false,
        editors_group: "cfr-editors",
        reviewers_group: "cfr-reviewers",
    };

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn check(before: Value, after: Value, who: &Requester<'_>) -> Result<(), (u16, String)> {
        check_collection_write(Some(&map(before)), &map(after), who, &RULES)
            .map_err(|e| (e.status.as_u16(), e.message))
    }

    const EDITOR: Requester<'static> = Requester {
        user_id: Some("account:ed"),
        is_editor: true,
        is_reviewer: false,
    };
    const REVIEWER: Requester<'static> = Requester {
        user_id: Some("account:rev"),
        is_editor: false,
        is_reviewer: true,
    };

    #[test]
    fn statuses_round_trip() {
        for text in [
            "work-in-progress",
            "to-review",
            "to-sign",
            "signed",
            "to-resign",
            "to-rollback",
        ] {
            assert_eq!(Status::parse(text).unwrap().as_str(), text);
        }
        assert_eq!(Status::parse("to-refresh"), None);
    }

    #[test]
    fn transitions_as_the_reference() {
        let wip = json!({"status": "work-in-progress"});
        assert_eq!(
            check(wip.clone(), json!({"status": "to-review"}), &EDITOR),
            Ok(())
        );
        assert_eq!(
            check(wip.clone(), json!({"status": "to-review"}), &REVIEWER),
            Err((403, "Not in cfr-editors group".into()))
        );
        assert_eq!(
            check(wip.clone(), json!({"status": "to-sign"}), &REVIEWER),
            Err((400, "Collection not under review".into()))
        );
        let review = json!({"status": "to-review", "last_review_request_by": "account:ed"});
        assert_eq!(
            check(
                review.clone(),
                json!({"status": "to-sign", "last_review_request_by": "account:ed"}),
                &REVIEWER
            ),
            Ok(())
        );
        assert_eq!(
            check(
                review.clone(),
                json!({"status": "to-sign", "last_review_request_by": "account:ed"}),
                &EDITOR
            ),
            Err((403, "Not in cfr-reviewers group".into()))
        );
        let both = Requester {
            user_id: Some("account:ed"),
            is_editor: true,
            is_reviewer: true,
        };
        assert_eq!(
            check(
                review.clone(),
                json!({"status": "to-sign", "last_review_request_by": "account:ed"}),
                &both
            ),
            Err((403, "Last editor cannot review".into()))
        );
        let signed = json!({"status": "signed"});
        assert_eq!(
            check(signed.clone(), json!({"status": "to-sign"}), &REVIEWER),
            Err((400, "Collection already signed".into()))
        );
        assert_eq!(
            check(signed.clone(), json!({"status": "to-rollback"}), &EDITOR),
            Err((400, "Collection has no work-in-progress".into()))
        );
        assert_eq!(
            check(wip.clone(), json!({"status": "to-rollback"}), &EDITOR),
            Ok(())
        );
        assert_eq!(
            check(signed.clone(), json!({"status": "to-resign"}), &EDITOR),
            Ok(())
        );
        assert_eq!(
            check(wip.clone(), json!({"status": "signed"}), &REVIEWER),
            Err((400, "Cannot set status to 'signed'".into()))
        );
        assert_eq!(
            check(wip.clone(), json!({"status": "in-progress"}), &EDITOR),
            Err((400, "Invalid status 'in-progress'".into()))
        );
        assert_eq!(
            check(wip.clone(), json!({}), &EDITOR),
            Err((400, "Cannot remove status".into()))
        );
        assert_eq!(
            check(
                wip.clone(),
                json!({"status": "work-in-progress", "last_edit_by": "me"}),
                &EDITOR
            ),
            Err((400, "Cannot change 'last_edit_by'".into()))
        );
    }

    #[test]
    fn without_review_anyone_with_write_publishes() {
        let rules = ReviewRules {
            to_review_enabled: false,
            ..RULES
        };
        let nobody = Requester {
            user_id: Some("account:x"),
            is_editor: false,
            is_reviewer: false,
        };
        let wip = map(json!({"status": "work-in-progress"}));
        for status in ["to-review", "to-sign"] {
            check_collection_write(Some(&wip), &map(json!({"status": status})), &nobody, &rules)
                .unwrap();
        }
    }

    #[test]
    fn self_approval_when_allowed() {
        let rules = ReviewRules {
            allow_self_approval: true,
            ..RULES
        };
        let both = Requester {
            user_id: Some("account:ed"),
            is_editor: true,
            is_reviewer: true,
        };
        let review = map(json!({"status": "to-review", "last_review_request_by": "account:ed"}));
        let sign = map(json!({"status": "to-sign", "last_review_request_by": "account:ed"}));
        check_collection_write(Some(&review), &sign, &both, &rules).unwrap();
    }

    #[test]
    fn floats_are_found_anywhere() {
        assert!(refuse_floats(&map(json!({"a": 1, "b": "1.5", "c": [1, {"d": true}]}))).is_ok());
        let error = refuse_floats(&map(json!({"a": {"b": [1, 2.5]}}))).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.errno, Errno::InvalidPostedData);
        assert_eq!(
            error.message,
            "field contains float value (tip: use integer or string), 'a.b.1'"
        );
    }
}
