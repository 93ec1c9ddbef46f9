//! Microsoft Graph: `/users` (with `$select`, `$top`, `@odata.nextLink`),
//! `/users/delta` (initial round, delta links, `$deltatoken=latest`, 410
//! once tokens expire), `/users/{id}`, `/groups` and `/groups/{id}/members`.

use super::Shared;
use super::auth::{GRAPH_SCOPE, authorize};
use super::tenant::Tenant;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const USER_ROLES: &[&str] = &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All"];
const GROUP_ROLES: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];

/// The properties Graph returns for a user when no `$select` is given.
const DEFAULT_USER_PROPS: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

type Params = Query<HashMap<String, String>>;

pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn select_of(params: &HashMap<String, String>) -> Option<Vec<String>> {
    params.get("$select").map(|s| {
        s.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

/// The user as Graph shows it under `select`: named properties only, null when unset.
fn project(props: &Map<String, Value>, select: Option<&[String]>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), props.get("id").cloned().unwrap_or(Value::Null));
    match select {
        Some(keys) => {
            for k in keys {
                out.insert(k.clone(), props.get(k).cloned().unwrap_or(Value::Null));
            }
        }
        None => {
            for k in DEFAULT_USER_PROPS {
                out.insert(k.to_string(), props.get(*k).cloned().unwrap_or(Value::Null));
            }
        }
    }
    Value::Object(out)
}

fn page_size(params: &HashMap<String, String>, default: usize) -> Result<usize, Response> {
    match params.get("$top") {
        None => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Invalid page size specified: '$top'. Must be between 1 and 999 inclusive.",
            )),
        },
    }
}

fn tenant(sim: &Shared) -> std::sync::RwLockReadGuard<'_, Tenant> {
    sim.tenant.read().unwrap_or_else(|p| p.into_inner())
}

pub async fn users(State(sim): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    if let Err(r) = authorize(&sim, &headers, GRAPH_SCOPE, USER_ROLES) {
        return r;
    }
    let top = match page_size(&q, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let select = select_of(&q);
    let after = q.get("$skiptoken").map(|t| unhex(t)).unwrap_or_default();
    let t = tenant(&sim);
    let range = t.users.range::<String, _>((
        if after.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            std::ops::Bound::Excluded(&after)
        },
        std::ops::Bound::Unbounded,
    ));
    let mut value = Vec::with_capacity(top);
    let mut last = None;
    let mut more = false;
    for (id, u) in range {
        if value.len() == top {
            more = true;
            break;
        }
        value.push(project(&u.props, select.as_deref()));
        last = Some(id.clone());
    }
    let base = base_url(&headers);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{base}/v1.0/$metadata#users").into(),
    );
    if more && let Some(last) = last {
        let mut link = format!("{base}/v1.0/users?$top={top}&$skiptoken={}", hex(&last));
        if let Some(s) = q.get("$select") {
            link.push_str(&format!("&$select={s}"));
        }
        body.insert("@odata.nextLink".into(), link.into());
    }
    body.insert("value".into(), Value::Array(value));
    Json(Value::Object(body)).into_response()
}

pub async fn user(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    if let Err(r) = authorize(&sim, &headers, GRAPH_SCOPE, USER_ROLES) {
        return r;
    }
    let t = tenant(&sim);
    let found = t.users.get(&id).or_else(|| {
        t.users.values().find(|u| {
            u.props
                .get("userPrincipalName")
                .and_then(Value::as_str)
                .is_some_and(|upn| upn.eq_ignore_ascii_case(&id))
        })
    });
    match found {
        Some(u) => Json(project(&u.props, select_of(&q).as_deref())).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        ),
    }
}

/// What a delta or skip token carries (hex-encoded JSON: opaque to clients).
#[derive(Serialize, Deserialize)]
struct DeltaState {
    /// Token generation; tokens of an older one answer 410.
    e: u64,
    /// Changes after this sequence number are delivered.
    since: u64,
    /// The sequence number when this round started: the next round's `since`.
    upto: u64,
    /// Users up to this id were delivered already.
    after: Option<String>,
    /// Users delivered; removals follow.
    removals: bool,
    sel: Option<Vec<String>>,
}

fn encode(s: &DeltaState) -> String {
    hex(&serde_json::to_string(s).unwrap_or_default())
}

fn decode(token: &str) -> Option<DeltaState> {
    serde_json::from_str(&unhex(token)).ok()
}

fn gone() -> Response {
    error(
        StatusCode::GONE,
        "SyncStateNotFound",
        "The sync state is not found or has expired. Please restart the sync from the beginning.",
    )
}

pub async fn delta(State(sim): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    if let Err(r) = authorize(&sim, &headers, GRAPH_SCOPE, USER_ROLES) {
        return r;
    }
    let t = tenant(&sim);
    let base = base_url(&headers);
    let state = if let Some(tok) = q.get("$deltatoken") {
        if tok == "latest" {
            let s = DeltaState {
                e: t.epoch,
                since: t.seq,
                upto: t.seq,
                after: None,
                removals: false,
                sel: select_of(&q),
            };
            return Json(json!({
                "@odata.context": format!("{base}/v1.0/$metadata#users"),
                "@odata.deltaLink": format!("{base}/v1.0/users/delta?$deltatoken={}", encode(&s)),
                "value": [],
            }))
            .into_response();
        }
        match decode(tok) {
            Some(s) => DeltaState {
                since: s.upto,
                upto: t.seq,
                after: None,
                removals: false,
                ..s
            },
            None => return gone(),
        }
    } else if let Some(tok) = q.get("$skiptoken") {
        match decode(tok) {
            Some(s) => s,
            None => return gone(),
        }
    } else {
        DeltaState {
            e: t.epoch,
            since: 0,
            upto: t.seq,
            after: None,
            removals: false,
            sel: select_of(&q),
        }
    };
    if state.e != t.epoch {
        return gone();
    }
    let size = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("odata.maxpagesize=").nth(1))
        .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(200usize)
        .clamp(1, 999);
    let (value, next) = delta_page(&t, &state, size);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{base}/v1.0/$metadata#users").into(),
    );
    match next {
        Some(next) => body.insert(
            "@odata.nextLink".into(),
            format!("{base}/v1.0/users/delta?$skiptoken={}", encode(&next)).into(),
        ),
        None => {
            let done = DeltaState {
                e: state.e,
                since: state.upto,
                upto: state.upto,
                after: None,
                removals: false,
                sel: state.sel.clone(),
            };
            body.insert(
                "@odata.deltaLink".into(),
                format!("{base}/v1.0/users/delta?$deltatoken={}", encode(&done)).into(),
            )
        }
    };
    body.insert("value".into(), Value::Array(value));
    Json(Value::Object(body)).into_response()
}

/// One page of a delta round and the state of the next page, if any.
fn delta_page(t: &Tenant, s: &DeltaState, size: usize) -> (Vec<Value>, Option<DeltaState>) {
    let mut value = Vec::new();
    if !s.removals {
        let mut last = None;
        let start = match &s.after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        for (id, u) in t
            .users
            .range::<String, _>((start, std::ops::Bound::Unbounded))
        {
            if u.changed <= s.since {
                continue;
            }
            if value.len() == size {
                let next = DeltaState {
                    e: s.e,
                    since: s.since,
                    upto: s.upto,
                    after: last,
                    removals: false,
                    sel: s.sel.clone(),
                };
                return (value, Some(next));
            }
            value.push(project(&u.props, s.sel.as_deref()));
            last = Some(id.clone());
        }
    }
    value.extend(
        t.removed
            .iter()
            .filter(|r| r.seq > s.since)
            .map(|r| json!({"id": r.id, "@removed": {"reason": r.reason}})),
    );
    (value, None)
}

pub async fn groups(State(sim): State<Shared>, headers: HeaderMap, Query(q): Params) -> Response {
    if let Err(r) = authorize(&sim, &headers, GRAPH_SCOPE, GROUP_ROLES) {
        return r;
    }
    let top = match page_size(&q, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let select = select_of(&q);
    let after = q.get("$skiptoken").map(|t| unhex(t));
    let t = tenant(&sim);
    let start = match &after {
        Some(a) => std::ops::Bound::Excluded(a),
        None => std::ops::Bound::Unbounded,
    };
    let all: Vec<(&String, &Value)> = t
        .groups
        .range::<String, _>((start, std::ops::Bound::Unbounded))
        .take(top + 1)
        .collect();
    let more = all.len() > top;
    let value: Vec<Value> = all
        .iter()
        .take(top)
        .map(|(_, g)| match &select {
            Some(keys) => {
                let mut o = Map::new();
                o.insert("id".into(), g["id"].clone());
                for k in keys {
                    o.insert(k.clone(), g.get(k).cloned().unwrap_or(Value::Null));
                }
                Value::Object(o)
            }
            None => (*g).clone(),
        })
        .collect();
    let base = base_url(&headers);
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#groups"),
        "value": value,
    });
    if more && let Some((last, _)) = all.get(top - 1) {
        let mut link = format!("{base}/v1.0/groups?$top={top}&$skiptoken={}", hex(last));
        if let Some(s) = q.get("$select") {
            link.push_str(&format!("&$select={s}"));
        }
        body["@odata.nextLink"] = link.into();
    }
    Json(body).into_response()
}

pub async fn members(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    member_page(&sim, &headers, &id, &q, false)
}

/// `/groups/{id}/members/microsoft.graph.user`: the members that are users
/// (the documented OData cast; fixture `graph-group-members-cast-users.json`).
pub async fn member_users(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    member_page(&sim, &headers, &id, &q, true)
}

fn member_page(
    sim: &Shared,
    headers: &HeaderMap,
    id: &str,
    q: &HashMap<String, String>,
    users_only: bool,
) -> Response {
    if let Err(r) = authorize(sim, headers, GRAPH_SCOPE, GROUP_ROLES) {
        return r;
    }
    let top = match page_size(q, 100) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let t = tenant(sim);
    let Some(members) = t.members.get(id) else {
        return error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    const USER: &str = "#microsoft.graph.user";
    let typed: Vec<Value> = members
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m.get("@odata.type").is_none() {
                m["@odata.type"] = USER.into();
            }
            m
        })
        .filter(|m| !users_only || m["@odata.type"] == USER)
        .collect();
    let offset: usize = q
        .get("$skiptoken")
        .and_then(|s| unhex(s).parse().ok())
        .unwrap_or(0);
    let end = (offset + top).min(typed.len());
    let value = typed[offset.min(end)..end].to_vec();
    let base = base_url(headers);
    let (path, context) = match users_only {
        true => ("members/microsoft.graph.user", "users"),
        false => ("members", "directoryObjects"),
    };
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#{context}"),
        "value": value,
    });
    if end < typed.len() {
        body["@odata.nextLink"] = format!(
            "{base}/v1.0/groups/{id}/{path}?$top={top}&$skiptoken={}",
            hex(&end.to_string())
        )
        .into();
    }
    Json(body).into_response()
}

pub(crate) fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes).unwrap_or_default()
}
