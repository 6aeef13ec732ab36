//! The list endpoints (`GET`, `HEAD` and `DELETE` of `/buckets`, `.../collections`,
//! `.../records`, ...), with Kinto's rules for who may list what:
//!
//! - a caller who may read the container (write it, for `DELETE`) gets every object;
//! - otherwise, the objects shared with the caller one by one (a record readable by them,
//!   their own account, the buckets they may write);
//! - a caller with none, who may still create objects there, gets an empty list (an
//!   authenticated user lists `/buckets` before creating their first one);
//! - anyone else is refused: 401 when anonymous, so clients know to ask for credentials.

use std::collections::HashSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use settings_store::{Kind, Object};

use crate::access::{Action, allowed, can_read_container};
use crate::error::KintoError;
use crate::handlers::{
    Context, ListResponse, context, ensure_parent, etag, http_date, is_admin, may_create,
    not_modified, refuse_if_readonly, shown,
};
use crate::hooks::{PendingWrite, WriteEvent};
use crate::query::ListQuery;
use crate::resource::Resource;
use crate::state::SettingsState;

/// Whether the caller may see (`Action::Read`) or delete (`Action::Write`) every object
/// of the list.
async fn whole_list(ctx: &Context, action: Action) -> Result<bool, KintoError> {
    if ctx.resource.kind == Kind::Account && is_admin(ctx) {
        return Ok(true);
    }
    let store = ctx.state.store.as_ref();
    let container = Resource {
        id: None,
        ..ctx.resource.clone()
    };
    match action {
        Action::Read => can_read_container(store, &ctx.caller, &ctx.resource).await,
        _ => allowed(store, &ctx.caller, &container.permission_chain(), action).await,
    }
}

/// For a caller who may not see the whole list: the ids of the live objects shared with
/// them one by one, or the refusal when there are none and they may not create one.
async fn shared_ids<'a>(
    ctx: &Context,
    candidates: impl Iterator<Item = (&'a str, bool)>,
    action: Action,
) -> Result<HashSet<String>, KintoError> {
    let store = ctx.state.store.as_ref();
    let mut shared = HashSet::new();
    for (id, deleted) in candidates {
        let uri = ctx.resource.with_id(id).uri();
        if !deleted && allowed(store, &ctx.caller, &[uri], action).await? {
            shared.insert(id.to_owned());
        }
    }
    // Anyone may create an account, but only the authenticated may list them (their own).
    let may_create_here = ctx.resource.kind != Kind::Account || ctx.caller.user_id.is_some();
    if !shared.is_empty() || (may_create_here && may_create(ctx).await?) {
        Ok(shared)
    } else {
        Err(KintoError::denied(&ctx.caller))
    }
}

/// The objects of the list the caller may see or delete (`whole`: all of them).
async fn permitted(
    ctx: &Context,
    mut objects: Vec<Object>,
    whole: bool,
    action: Action,
) -> Result<Vec<Object>, KintoError> {
    if !whole {
        let ids = objects.iter().map(|o| (o.id.as_str(), o.deleted));
        let shared = shared_ids(ctx, ids, action).await?;
        objects.retain(|o| shared.contains(&o.id));
    }
    Ok(objects)
}

/// The list's timestamp for `ETag` and `Last-Modified`. A list never written has none
/// (0); it answers the time just before now, which any later write is newer than (a write
/// takes `max(now, previous + 1)`), so `_since` with it misses nothing and no client sees
/// a 1970 date. Kinto stores the time of that first read instead.
/// Also says whether it is the stored one.
async fn list_timestamp(ctx: &Context) -> Result<(i64, bool), KintoError> {
    let stored = ctx
        .state
        .store
        .timestamp(ctx.resource.kind, &ctx.resource.parent)
        .await?;
    if stored > 0 {
        return Ok((stored, true));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(1);
    Ok((now - 1, false))
}

fn next_page_url(uri: &Uri, headers: &HeaderMap, token: &str) -> Option<HeaderValue> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let mut query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k != "_token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    query.push(("_token".into(), token.into()));
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    HeaderValue::from_str(&format!("{scheme}://{host}{}?{encoded}", uri.path())).ok()
}

/// The page size of a list answer.
fn page_size(ctx: &Context, query: &ListQuery) -> usize {
    let settings = &ctx.state.settings;
    query
        .limit
        .or(settings.paginate_by)
        .unwrap_or(settings.storage_max_fetch_size)
        .min(settings.storage_max_fetch_size)
        .max(1)
}

/// `GET` of a list: filtered, sorted, paginated. When the query looks at nothing but ids
/// and timestamps (the common case: all records, or those since a time), the stored JSON
/// of each object is copied into the answer as it is, never parsed.
pub async fn get_list(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    ensure_parent(&ctx).await?;
    let query = ListQuery::parse(uri.query().unwrap_or(""))?;
    let store = ctx.state.store.as_ref();
    let (timestamp, stored) = list_timestamp(&ctx).await?;
    let whole = whole_list(&ctx, Action::Read).await?;
    let unchanged = || {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag(timestamp));
        response
    };
    if whole && not_modified(&headers, timestamp) {
        return Ok(unchanged());
    }
    let (kind, parent) = (ctx.resource.kind, &ctx.resource.parent);
    let page = page_size(&ctx, &query);
    let as_stored = kind != Kind::Account && query.needs_only_metadata();
    // Whole lists answered as stored are the same for every caller: cached while unchanged.
    let cache_key = (as_stored && whole && stored)
        .then(|| format!("{}?{}", uri.path(), uri.query().unwrap_or("")));
    let cached = cache_key
        .as_deref()
        .and_then(|key| ctx.state.lists.get(key, timestamp));
    let (body, total) = if let Some((body, total)) = cached {
        (body, total)
    } else if as_stored {
        let mut objects = store.list_raw(kind, parent, query.include_deleted).await?;
        if !whole {
            let ids = objects.iter().map(|o| (o.id.as_str(), o.deleted));
            let shared = shared_ids(&ctx, ids, Action::Read).await?;
            objects.retain(|o| shared.contains(&o.id));
        }
        let objects = query.apply_raw(objects);
        let shown = objects.iter().skip(query.offset).take(page);
        let size: usize = shown.clone().map(|o| o.data.len() + 64).sum();
        let mut body = Vec::with_capacity(size + 16);
        body.extend_from_slice(b"{\"data\":[");
        for (i, object) in shown.enumerate() {
            if i > 0 {
                body.push(b',');
            }
            object.write_json(&mut body);
        }
        body.extend_from_slice(b"]}");
        let body = Bytes::from(body);
        if let Some(key) = cache_key {
            ctx.state
                .lists
                .put(key, timestamp, body.clone(), objects.len());
        }
        (body, objects.len())
    } else {
        let objects = store.list(kind, parent, query.include_deleted).await?;
        let objects = query.apply(permitted(&ctx, objects, whole, Action::Read).await?);
        let data = objects
            .iter()
            .skip(query.offset)
            .take(page)
            .map(|o| query.project(shown(kind, o)))
            .collect();
        let body = serde_json::to_vec(&ListResponse { data }).expect("JSON serialises");
        (Bytes::from(body), objects.len())
    };
    if !whole && not_modified(&headers, timestamp) {
        return Ok(unchanged());
    }
    let mut response = (StatusCode::OK, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response_headers.insert(header::ETAG, etag(timestamp));
    if let Some(date) = http_date(timestamp) {
        response_headers.insert(header::LAST_MODIFIED, date);
    }
    if query.offset + page < total
        && let Some(next) =
            next_page_url(&uri, &headers, &ListQuery::next_token(query.offset + page))
    {
        response_headers.insert("next-page", next);
    }
    Ok(response)
}

/// `HEAD` of a list: the count in `Total-Objects` (and the older `Total-Records`).
pub async fn head_list(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    ensure_parent(&ctx).await?;
    let query = ListQuery::parse(uri.query().unwrap_or(""))?;
    let store = ctx.state.store.as_ref();
    let (timestamp, _) = list_timestamp(&ctx).await?;
    let whole = whole_list(&ctx, Action::Read).await?;
    let objects = store
        .list(
            ctx.resource.kind,
            &ctx.resource.parent,
            query.include_deleted,
        )
        .await?;
    let total = query
        .apply(permitted(&ctx, objects, whole, Action::Read).await?)
        .len()
        .to_string();
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(header::ETAG, etag(timestamp));
    for name in ["total-objects", "total-records"] {
        h.insert(
            name,
            HeaderValue::from_str(&total).expect("a number is a header value"),
        );
    }
    Ok(response)
}

/// `DELETE` of a list (with filters): deletes what the caller may write (every bucket they
/// own, for `DELETE /buckets`) and answers the tombstones.
pub async fn delete_list(
    State(state): State<SettingsState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, KintoError> {
    let ctx = context(state, &uri, &headers).await?;
    refuse_if_readonly(&ctx)?;
    ensure_parent(&ctx).await?;
    let store = ctx.state.store.as_ref();
    let query = ListQuery::parse(uri.query().unwrap_or(""))?;
    let live = store
        .list(ctx.resource.kind, &ctx.resource.parent, false)
        .await?;
    let whole = whole_list(&ctx, Action::Write).await?;
    let objects = query.apply(permitted(&ctx, live, whole, Action::Write).await?);
    for object in &objects {
        let resource = ctx.resource.with_id(&object.id);
        let pending = PendingWrite {
            caller: &ctx.caller,
            resource: &resource,
            before: Some(object),
            data: None,
        };
        ctx.state.hooks.check(&ctx.state, &pending).await?;
    }
    let ids = objects.iter().map(|o| o.id.clone()).collect();
    let tombstones = store
        .delete_many(ctx.resource.kind, &ctx.resource.parent, Some(ids))
        .await?;
    for tombstone in &tombstones {
        let resource = ctx.resource.with_id(&tombstone.id);
        let before = objects.iter().find(|o| o.id == tombstone.id);
        let event = WriteEvent {
            caller: &ctx.caller,
            resource: &resource,
            before,
            after: tombstone,
        };
        ctx.state.hooks.written(&ctx.state, &event).await?;
    }
    for object in &objects {
        match ctx.resource.kind {
            Kind::Record => crate::attachments::remove_file(&ctx.state, object).await,
            Kind::Collection | Kind::Bucket => {
                crate::attachments::remove_tree(&ctx.state, &ctx.resource.with_id(&object.id)).await
            }
            _ => {}
        }
    }
    Ok(Json(ListResponse {
        data: tombstones.iter().map(Object::to_json).collect(),
    })
    .into_response())
}
