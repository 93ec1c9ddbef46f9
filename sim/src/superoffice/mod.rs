//! A SuperOffice CRM tenant behind its REST API (`/api/v1`), written from
//! SuperOffice's REST reference (SuperOfficeDocs): users listed through the
//! `AllUsers` archive (`GET User`), associates by id
//! (`POST Agents/Associate/GetAssociateList`), person cards (`Person`),
//! licences (`GET License`) and users made with the User agent
//! (`GET User/Default`, `POST User`, `GET User/{id}`). On SuperOffice Online
//! the User agent is closed to partner apps ("User management is not allowed
//! for partner apps", `v1User_PostUser.md`): with `online` set it answers 403.
//! Auth is a bearer token or a ticket, plus `SO-AppToken` when the tenant
//! has one. Every other route answers 404 (`/Associate`,
//! `Agents/Preference/SetPreferences` included). `docs/connectors/superoffice.md`
//! lists each route with its source; where the reference is silent (error
//! texts, the archive's value types) the behaviour is marked *assumption*.

pub mod crm;
pub mod seed;

pub use crm::Crm;

use crate::faults::{FaultGate, Faults, inject};
use crate::server::{Running, spawn};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crm::{Outcome, Refusal};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub struct Sim {
    pub crm: RwLock<Crm>,
    pub faults: Arc<FaultGate>,
}

pub type Shared = Arc<Sim>;

const BASE: &str = "/api/v1";

fn throttle_body(_: &crate::Throttle) -> String {
    json!({"Error": "Too many requests", "ErrorType": "Throttled"}).to_string()
}

pub fn router(crm: Crm, faults: Faults) -> (Router, Shared) {
    let gate = FaultGate::new(faults, throttle_body);
    let sim = Arc::new(Sim {
        crm: RwLock::new(crm),
        faults: gate.clone(),
    });
    let user_agent: Router<Shared> = Router::new()
        .route(&format!("{BASE}/User/Default"), get(default_user))
        .route(&format!("{BASE}/User/{{id}}"), get(get_user))
        .route(&format!("{BASE}/User"), post(create_user))
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            not_online,
        ));
    let api = Router::new()
        .route(&format!("{BASE}/User"), get(list_users))
        .merge(user_agent)
        .route(
            &format!("{BASE}/Agents/Associate/GetAssociateList"),
            post(associate_list),
        )
        .route(&format!("{BASE}/Person"), post(create_person))
        .route(
            &format!("{BASE}/Person/{{id}}"),
            get(get_person).put(update_person).delete(delete_person),
        )
        .route(&format!("{BASE}/License"), get(licence))
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), inject));
    let router = api
        .merge(crate::faults::routes(gate))
        .route("/_sim/superoffice/state", get(state))
        .with_state(sim.clone());
    (router, sim)
}

/// Starts a simulated tenant on `127.0.0.1:port` (0: any free port); its
/// API base is `{url}/api/v1/`.
pub fn start(crm: Crm, faults: Faults, port: u16) -> anyhow::Result<(Running, Shared)> {
    let (router, sim) = router(crm, faults);
    Ok((spawn(router, port)?, sim))
}

fn crm(sim: &Shared) -> std::sync::RwLockReadGuard<'_, Crm> {
    sim.crm.read().unwrap_or_else(|p| p.into_inner())
}

fn crm_mut(sim: &Shared) -> std::sync::RwLockWriteGuard<'_, Crm> {
    sim.crm.write().unwrap_or_else(|p| p.into_inner())
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"Error": message, "ErrorType": "SoException"})),
    )
        .into_response()
}

fn answer(outcome: Outcome, status: StatusCode) -> Response {
    match outcome {
        Ok(v) => (status, Json(v)).into_response(),
        Err(Refusal(code, message)) => error(code, &message),
    }
}

fn json_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| error(400, &format!("malformed JSON: {e}")))
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Authorization: Bearer <token>` or `SOTicket <ticket>`, and `SO-AppToken` where required.
async fn authenticate(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let (token, ticket, app) = {
        let c = crm(&sim);
        (c.token.clone(), c.ticket.clone(), c.app_token.clone())
    };
    let auth = header(&request, "authorization").unwrap_or_default();
    let app_given = header(&request, "so-apptoken");
    let ok = auth.strip_prefix("Bearer ") == Some(token.as_str())
        || ticket.is_some_and(|t| auth.strip_prefix("SOTicket ") == Some(t.as_str()));
    if !ok {
        return error(401, "Authentication failed: invalid token or ticket");
    }
    if let Some(app) = app
        && app_given.as_deref() != Some(app.as_str())
    {
        return error(401, "Missing or invalid SO-AppToken");
    }
    next.run(request).await
}

/// The User agent on SuperOffice Online: closed to partner apps (*assumption*: 403 and the text).
async fn not_online(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let online = crm(&sim).online;
    match online {
        true => error(
            403,
            "The User agent is not available in Online: user management is not allowed for partner apps",
        ),
        false => next.run(request).await,
    }
}

type Q = Query<HashMap<String, String>>;

/// `GET User`: the AllUsers archive, OData style.
async fn list_users(State(sim): State<Shared>, Query(q): Q) -> Response {
    let number = |k: &str, default: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let top = number("$top", 1000).clamp(1, 5000);
    let skip = number("$skip", 0);
    let select = q.get("$select").map(String::as_str);
    answer(
        crm(&sim).users_archive(select, top, skip, &format!("{BASE}/User")),
        StatusCode::OK,
    )
}

/// `POST Agents/Associate/GetAssociateList` with `{"AssociateIds": [...]}`
/// (agent methods take their parameters as one object; *assumption*: the
/// property's case).
async fn associate_list(State(sim): State<Shared>, body: Bytes) -> Response {
    let b = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ids = b
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("AssociateIds"))
                .map(|(_, v)| v)
        })
        .and_then(Value::as_array);
    match ids {
        Some(ids) => {
            let ids: Vec<i64> = ids.iter().filter_map(Value::as_i64).collect();
            Json(crm(&sim).associate_list(&ids)).into_response()
        }
        None => error(400, "AssociateIds is required"),
    }
}

async fn default_user(State(sim): State<Shared>, Query(q): Q) -> Response {
    let user_type = q
        .get("userType")
        .map(String::as_str)
        .unwrap_or("InternalAssociate");
    let person_id = q.get("personId").and_then(|p| p.parse().ok()).unwrap_or(0);
    answer(crm(&sim).default_user(user_type, person_id), StatusCode::OK)
}

async fn get_user(State(sim): State<Shared>, Path(id): Path<i64>) -> Response {
    answer(crm(&sim).user(id), StatusCode::OK)
}

async fn create_user(State(sim): State<Shared>, body: Bytes) -> Response {
    match json_body(&body) {
        Ok(b) => answer(crm_mut(&sim).create_user(&b), StatusCode::CREATED),
        Err(r) => r,
    }
}

async fn create_person(State(sim): State<Shared>, body: Bytes) -> Response {
    match json_body(&body) {
        Ok(b) => answer(crm_mut(&sim).create_person(&b), StatusCode::CREATED),
        Err(r) => r,
    }
}

async fn get_person(State(sim): State<Shared>, Path(id): Path<i64>) -> Response {
    answer(crm(&sim).person(id), StatusCode::OK)
}

async fn update_person(State(sim): State<Shared>, Path(id): Path<i64>, body: Bytes) -> Response {
    match json_body(&body) {
        Ok(b) => answer(crm_mut(&sim).update_person(id, &b), StatusCode::OK),
        Err(r) => r,
    }
}

async fn delete_person(State(sim): State<Shared>, Path(id): Path<i64>) -> Response {
    match crm_mut(&sim).delete_person(id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(Refusal(code, message)) => error(code, &message),
    }
}

async fn licence(State(sim): State<Shared>) -> Response {
    Json(crm(&sim).licence()).into_response()
}

async fn state(State(sim): State<Shared>) -> Json<Value> {
    Json(crm(&sim).dump())
}
