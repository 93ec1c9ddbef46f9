//! Zivver's SCIM 2.0 routes under `/api/scim/v2`: Users and Groups (list
//! with `filter=userName eq "…"` and startIndex/count paging, get, create,
//! full PUT, PATCH for groups, delete), the Guests resource (list, merge),
//! and Zivver's answers: 400 for unknown ids, its error texts, 415 for a
//! PATCH without `application/scim+json`.

use super::Shared;
use super::org::{Org, Refusal};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn scim_error(status: u16, detail: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/scim+json")],
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.to_string(),
            "detail": detail,
        })
        .to_string(),
    )
        .into_response()
}

fn refused(r: Refusal) -> Response {
    scim_error(r.status, &r.detail)
}

fn ok(status: StatusCode, v: Value) -> Response {
    (
        status,
        [("content-type", "application/scim+json")],
        v.to_string(),
    )
        .into_response()
}

fn authorized(sim: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let key = sim
        .org
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .api_key
        .clone();
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(k) if k == key => Ok(()),
        _ => Err(scim_error(401, "Unauthorized")),
    }
}

fn body_json(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| scim_error(400, &format!("Invalid JSON: {e}")))
}

/// `userName eq "x"` / `externalId eq "x"` / `displayName eq "x"`.
fn filter_of(q: &HashMap<String, String>) -> Option<(String, String)> {
    let f = q.get("filter")?;
    let (attr, rest) = f.trim().split_once(' ')?;
    let (op, value) = rest.trim().split_once(' ')?;
    (op.eq_ignore_ascii_case("eq"))
        .then(|| (attr.to_string(), value.trim().trim_matches('"').to_string()))
}

/// One page of `items` (a clonable iterator, so only the page is copied).
fn list<'a>(items: impl Iterator<Item = &'a Value> + Clone, q: &HashMap<String, String>) -> Value {
    let total = items.clone().count();
    let start = q
        .get("startIndex")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let count = q
        .get("count")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(total)
        .min(1000);
    let page: Vec<Value> = items.skip(start - 1).take(count).cloned().collect();
    // Zivver's list answers carry no `schemas` and no itemsPerPage (see the fixtures).
    json!({"Resources": page, "totalResults": total})
}

fn matches(resource: &Value, filter: &Option<(String, String)>) -> bool {
    match filter {
        None => true,
        Some((attr, value)) => resource[attr]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(value)),
    }
}

fn org(sim: &Shared) -> std::sync::RwLockReadGuard<'_, Org> {
    sim.org.read().unwrap_or_else(|p| p.into_inner())
}

fn org_mut(sim: &Shared) -> std::sync::RwLockWriteGuard<'_, Org> {
    sim.org.write().unwrap_or_else(|p| p.into_inner())
}

type Q = Query<HashMap<String, String>>;

pub async fn list_users(State(sim): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let filter = filter_of(&q);
    let o = org(&sim);
    let items = o.users.values().filter(|u| matches(u, &filter));
    ok(StatusCode::OK, list(items, &q))
}

pub async fn get_user(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    match org(&sim).user(&id) {
        Ok(u) => ok(StatusCode::OK, u.clone()),
        Err(r) => refused(r),
    }
}

pub async fn create_user(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match org_mut(&sim).put_user(None, body) {
        Ok(u) => ok(StatusCode::CREATED, u),
        Err(r) => refused(r),
    }
}

pub async fn replace_user(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match org_mut(&sim).put_user(Some(&id), body) {
        Ok(u) => ok(StatusCode::OK, u),
        Err(r) => refused(r),
    }
}

pub async fn delete_user(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    match org_mut(&sim).delete_user(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

pub async fn list_groups(State(sim): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let filter = filter_of(&q);
    let o = org(&sim);
    let items = o.groups.values().filter(|g| matches(g, &filter));
    ok(StatusCode::OK, list(items, &q))
}

pub async fn get_group(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    match org(&sim).group(&id) {
        Ok(g) => ok(StatusCode::OK, g.clone()),
        Err(r) => refused(r),
    }
}

pub async fn create_group(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match org_mut(&sim).put_group(None, body) {
        Ok(g) => ok(StatusCode::CREATED, g),
        Err(r) => refused(r),
    }
}

pub async fn replace_group(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match org_mut(&sim).put_group(Some(&id), body) {
        Ok(g) => ok(StatusCode::OK, g),
        Err(r) => refused(r),
    }
}

pub async fn patch_group(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let scim_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/scim+json"));
    if !scim_json {
        return scim_error(415, "Unsupported Media Type: use application/scim+json");
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ops = body["Operations"].as_array().cloned().unwrap_or_default();
    match org_mut(&sim).patch_group(&id, &ops) {
        Ok(g) => ok(StatusCode::OK, g),
        Err(r) => refused(r),
    }
}

pub async fn delete_group(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    match org_mut(&sim).delete_group(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

pub async fn list_guests(State(sim): State<Shared>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let o = org(&sim);
    let items: Vec<Value> = o
        .guests
        .iter()
        .map(|(id, a)| json!({"id": id, "userName": a, "meta": {"resourceType": "Guest"}}))
        .collect();
    ok(StatusCode::OK, list(items.iter(), &q))
}

pub async fn merge_guest(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&sim, &headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let into = body["into"].as_str().unwrap_or_default().to_string();
    match org_mut(&sim).merge_guest(&id, &into) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}
