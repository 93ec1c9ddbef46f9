//! `/_sim/…` routes of the Zivver simulator: mail received from an outside
//! address (which makes a guest), the admin merging a guest into an account
//! (what Zivver documents as the remedy; not an API call), the whole state
//! (SSO keys and guests included, for tests). The fault gate adds its own
//! (`crate::faults::routes`).

use super::Shared;
use super::org::Owner;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sim/zivver/receive", post(receive))
        .route("/_sim/zivver/merge-guest", post(merge_guest))
        .route("/_sim/zivver/state", get(state))
}

/// `{"to": "address"}`: Zivver mail sent to an outside address makes it a guest.
async fn receive(State(sim): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let to = body["to"].as_str().unwrap_or_default();
    let owner = sim
        .org
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .receive_mail(to);
    Json(match owner {
        Owner::Guest(id) => json!({"guest": id}),
        Owner::User(id) => json!({"user": id}),
        Owner::Group(id) => json!({"group": id}),
    })
}

/// `{"guest": "address", "into": "account id or address"}`.
async fn merge_guest(State(sim): State<Shared>, Json(body): Json<Value>) -> Response {
    let guest = body["guest"].as_str().unwrap_or_default();
    let into = body["into"].as_str().unwrap_or_default();
    let merged = sim
        .org
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .merge_guest(guest, into);
    match merged {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => (StatusCode::BAD_REQUEST, r.detail).into_response(),
    }
}

async fn state(State(sim): State<Shared>) -> Json<Value> {
    Json(sim.org.read().unwrap_or_else(|p| p.into_inner()).dump())
}
