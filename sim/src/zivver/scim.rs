//! Zivver's SCIM 2.0 routes under `/api/scim/v2`: Users and Groups (list
//! with `filter=userName eq "…"` and startIndex/count paging, get, create,
//! full PUT, PATCH for groups, delete), and Zivver's answers: 400 for
//! unknown ids, its error texts, 415 for a PATCH without
//! `application/scim+json` and 406 for one that does not accept it
//! (CloudSync `api/do_updates.py`), 406 for an `Accept` that allows neither
//! JSON type. No other route exists (404).

use super::Shared;
use super::org::{Org, Refusal};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
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

/// The API key check, once in front of every SCIM route.
pub async fn require_api_key(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let key = org(&sim).api_key.clone();
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(k) if k == key => next.run(request).await,
        _ => scim_error(401, "Unauthorized"),
    }
}

/// Does an `Accept` header allow `media` (`type/subtype`)? No header, `*/*`
/// and `type/*` allow anything of theirs; a `q=0` refuses.
fn accepts(accept: Option<&str>, media: &str) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    let kind = media.split('/').next().unwrap_or_default();
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| p.replace(' ', "") == "q=0");
        !refused && (name == media || name == "*/*" || name == format!("{kind}/*"))
    })
}

/// Content negotiation as Zivver does it: a PATCH must accept
/// `application/scim+json` (CloudSync: "otherwise 406"); every other
/// request `application/json` (what CloudSync, HelloID and zivverscim send)
/// or `application/scim+json`.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let accept = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let accept = accept.as_deref();
    // Only groups take a PATCH; for users the method itself is refused (405).
    let patching_a_group = request.method() == "PATCH" && request.uri().path().contains("/Groups/");
    let ok = match patching_a_group {
        true => accepts(accept, "application/scim+json"),
        false => accepts(accept, "application/json") || accepts(accept, "application/scim+json"),
    };
    match ok {
        true => next.run(request).await,
        false => scim_error(406, "Not Acceptable"),
    }
}

/// 405 for a method the route does not take, with its body read first.
pub async fn method_not_allowed(body: Bytes) -> StatusCode {
    drop(body);
    StatusCode::METHOD_NOT_ALLOWED
}

/// The resource with `status`, or Zivver's refusal; 204 carries no body.
fn answer(result: Result<Value, Refusal>, status: StatusCode) -> Response {
    match result {
        Ok(_) if status == StatusCode::NO_CONTENT => status.into_response(),
        Ok(v) => ok(status, v),
        Err(r) => refused(r),
    }
}

/// A write: the JSON body handed to `op`, its outcome answered with `status`.
fn write(
    body: &Bytes,
    status: StatusCode,
    op: impl FnOnce(Value) -> Result<Value, Refusal>,
) -> Response {
    match body_json(body) {
        Ok(v) => answer(op(v), status),
        Err(r) => r,
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

pub async fn list_users(State(sim): State<Shared>, Query(q): Q) -> Response {
    let filter = filter_of(&q);
    let o = org(&sim);
    let items = o.users.values().filter(|u| matches(u, &filter));
    ok(StatusCode::OK, list(items, &q))
}

pub async fn get_user(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    answer(org(&sim).user(&id).cloned(), StatusCode::OK)
}

pub async fn create_user(State(sim): State<Shared>, body: Bytes) -> Response {
    write(&body, StatusCode::CREATED, |v| {
        org_mut(&sim).put_user(None, v)
    })
}

pub async fn replace_user(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    write(&body, StatusCode::OK, |v| {
        org_mut(&sim).put_user(Some(&id), v)
    })
}

pub async fn delete_user(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    let deleted = org_mut(&sim).delete_user(&id).map(|()| Value::Null);
    answer(deleted, StatusCode::NO_CONTENT)
}

pub async fn list_groups(State(sim): State<Shared>, Query(q): Q) -> Response {
    let filter = filter_of(&q);
    let o = org(&sim);
    let items = o.groups.values().filter(|g| matches(g, &filter));
    ok(StatusCode::OK, list(items, &q))
}

pub async fn get_group(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    answer(org(&sim).group(&id).cloned(), StatusCode::OK)
}

pub async fn create_group(State(sim): State<Shared>, body: Bytes) -> Response {
    write(&body, StatusCode::CREATED, |v| {
        org_mut(&sim).put_group(None, v)
    })
}

pub async fn replace_group(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    write(&body, StatusCode::OK, |v| {
        org_mut(&sim).put_group(Some(&id), v)
    })
}

pub async fn patch_group(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let scim_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/scim+json"));
    if !scim_json {
        return scim_error(415, "Unsupported Media Type: use application/scim+json");
    }
    write(&body, StatusCode::OK, |v| {
        let ops = v["Operations"].as_array().cloned().unwrap_or_default();
        org_mut(&sim).patch_group(&id, &ops)
    })
}

pub async fn delete_group(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    let deleted = org_mut(&sim).delete_group(&id).map(|()| Value::Null);
    answer(deleted, StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_ranges() {
        let scim = "application/scim+json";
        assert!(accepts(None, scim));
        assert!(accepts(
            Some("application/scim+json, application/json;q=0.9"),
            scim
        ));
        assert!(accepts(Some("*/*"), scim));
        assert!(accepts(Some("application/*"), scim));
        assert!(!accepts(Some("application/json"), scim));
        assert!(!accepts(Some("application/scim+json;q=0"), scim));
        assert!(!accepts(Some("text/html"), "application/json"));
    }
}
