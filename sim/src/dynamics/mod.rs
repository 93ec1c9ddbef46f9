//! Dynamics 365 (the Dataverse Web API), written from Microsoft's Web API
//! reference: the `systemusers` entity set (`internalemailaddress`,
//! `domainname`, `isdisabled`, `accessmode`, `islicensed`, `applicationid`,
//! …; a `$select` of a property the entity does not have is refused as
//! Dataverse does), paged by `Prefer: odata.maxpagesize` with
//! `@odata.nextLink`; the bound function
//! `systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`
//! (`RolePrivileges` of the user's security roles); behind an Entra
//! client-credentials token whose scope is the organisation's URL. Seeded
//! from Web API list bodies and security roles (`seed.rs`).

pub mod seed;

use crate::entra::{self, Directory, TokenForm};
use crate::faults::{FaultGate, Faults, inject};
use crate::server::{Running, spawn};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A Dataverse organisation: its app registration and its users.
pub struct Org {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// `systemusers` rows in Web API shape, in `systemuserid` order.
    pub users: Vec<Value>,
    /// Security roles: name → privilege names (`prvReadContact`, …).
    pub roles: HashMap<String, Vec<String>>,
    /// Each user's security roles, by `systemuserid`.
    pub user_roles: HashMap<String, Vec<String>>,
}

/// The `systemuser` properties a `$select` may name (Web API reference,
/// systemuser EntityType; the ones a client of this simulator may ask for).
const SYSTEMUSER: &[&str] = &[
    "systemuserid",
    "fullname",
    "firstname",
    "lastname",
    "internalemailaddress",
    "domainname",
    "isdisabled",
    "accessmode",
    "islicensed",
    "applicationid",
    "azureactivedirectoryobjectid",
    "caltype",
    "userlicensetype",
    "_businessunitid_value",
];

pub struct Sim {
    pub org: RwLock<Org>,
    pub faults: Arc<FaultGate>,
    /// The one access token issued (the simulator does not expire it).
    token: String,
}

pub type Shared = Arc<Sim>;

const BASE: &str = "/api/data/v9.2";

/// What the token endpoint says a token lives (the simulator does not expire it).
const TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3599);

fn throttle_body(_: &crate::Throttle) -> String {
    json!({"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}).to_string()
}

pub fn router(org: Org, faults: Faults) -> (Router, Shared) {
    let gate = FaultGate::new(faults, throttle_body);
    let sim = Arc::new(Sim {
        org: RwLock::new(org),
        faults: gate.clone(),
        token: format!("dataverse-{:x}", fastrand_like()),
    });
    let api = Router::new()
        .route(&format!("{BASE}/systemusers"), get(systemusers))
        .route(&format!("{BASE}/WhoAmI"), get(who_am_i))
        .route(&format!("{BASE}/{{*rest}}"), get(bound_function))
        .layer(axum::middleware::from_fn_with_state(sim.clone(), bearer))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), inject));
    let router = api
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .merge(crate::faults::routes(gate))
        .route("/_sim/dynamics/users", post(upsert_users))
        .with_state(sim.clone());
    (router, sim)
}

/// A token that differs between runs without a random-number dependency.
fn fastrand_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Starts a simulated organisation on `127.0.0.1:port` (0: any free port);
/// its Web API base is `{url}/api/data/v9.2/`, its token endpoint `{url}/{tenant}/oauth2/v2.0/token`.
pub fn start(org: Org, faults: Faults, port: u16) -> anyhow::Result<(Running, Shared)> {
    let (router, sim) = router(org, faults);
    Ok((spawn(router, port)?, sim))
}

fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn bearer(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if given.as_deref() != Some(sim.token.as_str()) {
        return odata_error(
            StatusCode::UNAUTHORIZED,
            "0x80040220",
            "The user is not authenticated: the bearer token is missing or invalid.",
        );
    }
    next.run(request).await
}

async fn token(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let org = sim.org.read().unwrap_or_else(|p| p.into_inner());
    let secret_of =
        |client_id: &str| (client_id == org.client_id).then_some(org.client_secret.as_str());
    let serves = |scope: &str| scope.ends_with("/.default");
    let directory = Directory {
        id: tenant
            .eq_ignore_ascii_case(&org.tenant)
            .then_some(org.tenant.as_str()),
        secret_of: &secret_of,
        serves: &serves,
    };
    match entra::check(&tenant, &directory, form) {
        Ok(_) => entra::issued(&sim.token, TOKEN_LIFETIME),
        Err(refused) => refused,
    }
}

async fn who_am_i() -> Json<Value> {
    Json(
        json!({"@odata.context": "…/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", "UserId": "00000000-0000-0000-0000-0000000000aa"}),
    )
}

/// `systemusers`, `$select` honoured, paged by `Prefer: odata.maxpagesize`.
async fn systemusers(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let org = sim.org.read().unwrap_or_else(|p| p.into_inner());
    let size = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(5000)
        .clamp(1, 5000);
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let select: Option<Vec<&str>> = q
        .get("$select")
        .map(|s| s.split(',').map(str::trim).collect());
    if let Some(bad) = select.iter().flatten().find(|f| !SYSTEMUSER.contains(f)) {
        return odata_error(
            StatusCode::BAD_REQUEST,
            "0x0",
            &format!(
                "Could not find a property named '{bad}' on type 'Microsoft.Dynamics.CRM.systemuser'."
            ),
        );
    }
    let page: Vec<Value> = org
        .users
        .iter()
        .skip(skip)
        .take(size)
        .map(|u| match &select {
            None => u.clone(),
            Some(fields) => {
                let mut row = serde_json::Map::new();
                for f in fields.iter().chain(["systemuserid"].iter()) {
                    row.insert(f.to_string(), u.get(*f).cloned().unwrap_or(Value::Null));
                }
                Value::Object(row)
            }
        })
        .collect();
    let mut body =
        json!({"@odata.context": format!("{BASE}/$metadata#systemusers"), "value": page});
    if skip + size < org.users.len() {
        let mut next = format!("{BASE}/systemusers?$skiptoken={}", skip + size);
        if let Some(s) = q.get("$select") {
            next.push_str(&format!("&$select={s}"));
        }
        body["@odata.nextLink"] = next.into();
    }
    Json(body).into_response()
}

/// `systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`:
/// the privileges of the user's security roles, as `RolePrivileges`
/// (`Depth`, `PrivilegeId`, `BusinessUnitId`, `PrivilegeName`). Any other
/// path is no resource (404).
async fn bound_function(State(sim): State<Shared>, Path(rest): Path<String>) -> Response {
    let not_found = || {
        odata_error(
            StatusCode::NOT_FOUND,
            "0x80060888",
            &format!("Resource not found for the segment '{rest}'."),
        )
    };
    let Some(id) = rest
        .strip_prefix("systemusers(")
        .and_then(|r| r.strip_suffix(")/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"))
    else {
        return not_found();
    };
    let org = sim.org.read().unwrap_or_else(|p| p.into_inner());
    if !org.users.iter().any(|u| u["systemuserid"] == id) {
        return odata_error(
            StatusCode::NOT_FOUND,
            "0x80040217",
            &format!("systemuser With Id = {id} Does Not Exist"),
        );
    }
    let mut names: Vec<&String> = org
        .user_roles
        .get(id)
        .into_iter()
        .flatten()
        .filter_map(|r| org.roles.get(r))
        .flatten()
        .collect();
    names.sort();
    names.dedup();
    let privileges: Vec<Value> = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "Depth": "Global",
                "PrivilegeId": format!("00000000-0000-4000-8000-{i:012}"),
                "BusinessUnitId": "00000000-0000-4000-8000-00000000b0b0",
                "PrivilegeName": n,
            })
        })
        .collect();
    Json(json!({
        "@odata.context": format!("{BASE}/$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse"),
        "RolePrivileges": privileges,
    }))
    .into_response()
}

/// `/_sim/dynamics/users`: upserts rows by `systemuserid` (tests change the CRM with it).
async fn upsert_users(State(sim): State<Shared>, Json(rows): Json<Vec<Value>>) -> Json<Value> {
    let mut org = sim.org.write().unwrap_or_else(|p| p.into_inner());
    for row in rows {
        org.upsert(row);
    }
    Json(json!({"users": org.users.len()}))
}

impl Org {
    pub fn upsert(&mut self, row: Value) {
        match self
            .users
            .iter_mut()
            .find(|u| u["systemuserid"] == row["systemuserid"])
        {
            Some(u) => {
                if let (Some(u), Some(r)) = (u.as_object_mut(), row.as_object()) {
                    u.extend(r.clone());
                }
            }
            None => self.users.push(row),
        }
    }
}
