//! The simulator's own control routes (`/_sim/…`), for tests, the demo and
//! benchmarks: change the tenant (with bodies in the real shapes) and expire
//! delta tokens. The fault gate adds its own (`crate::faults::routes`).

use super::Shared;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sim/m365/users", post(change_users))
        .route("/_sim/m365/mailboxes", post(change_mailboxes))
        .route("/_sim/m365/permissions", post(change_permissions))
        .route("/_sim/m365/expire-delta", post(expire_delta))
        .route("/_sim/m365/summary", get(summary))
        .route("/_sim/m365/touch", post(touch))
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// A Graph list or delta body: each item is upserted, or removed when it
/// carries `@removed` (reason `deleted` or `changed`).
async fn change_users(State(sim): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut t = sim.tenant.write().unwrap_or_else(|p| p.into_inner());
    match t.apply_graph_changes(&body) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(e),
    }
}

/// Mailboxes keyed by primary address (the fixture's shape) or a `value` list.
async fn change_mailboxes(State(sim): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut t = sim.tenant.write().unwrap_or_else(|p| p.into_inner());
    match t.apply_mailboxes(&body) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(e),
    }
}

/// Permission lists keyed by mailbox (the fixture's shape).
async fn change_permissions(State(sim): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut t = sim.tenant.write().unwrap_or_else(|p| p.into_inner());
    match t.apply_permissions(&body) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(e),
    }
}

async fn expire_delta(State(sim): State<Shared>) -> StatusCode {
    sim.tenant
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .expire_delta_tokens();
    StatusCode::NO_CONTENT
}

/// `{"every": N}`: renames every N-th member user.
async fn touch(State(sim): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let every = body["every"].as_u64().unwrap_or(100) as usize;
    let changed = sim
        .tenant
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .touch(every);
    Json(json!({ "changed": changed }))
}

async fn summary(State(sim): State<Shared>) -> Json<Value> {
    let t = sim.tenant.read().unwrap_or_else(|p| p.into_inner());
    Json(json!({
        "tenant": t.id,
        "users": t.user_count(),
        "mailboxes": t.mailbox_count(),
        "groups": t.groups.len(),
        "seq": t.seq,
    }))
}
