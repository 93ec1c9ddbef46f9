//! `/_sim/…` routes of the Zivver simulator: mail received from an outside
//! address (which makes a guest), the whole state (SSO keys included, for
//! tests). The fault gate adds its own (`crate::faults::routes`).

use super::Shared;
use super::org::Owner;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/_sim/zivver/receive", post(receive))
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

async fn state(State(sim): State<Shared>) -> Json<Value> {
    Json(sim.org.read().unwrap_or_else(|p| p.into_inner()).dump())
}
