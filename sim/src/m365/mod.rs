//! A Microsoft 365 tenant as Roster's `exchange-online` connector sees it:
//! the Entra token endpoint, Microsoft Graph (users with `$select`,
//! paging and delta; groups and members) and the Exchange Online admin API
//! (`Mailbox`, `Mailbox('…')/MailboxPermission`).
//!
//! Seeded from JSON in the real shapes (see `seed.rs`) or generated at any
//! size (`generate.rs`); changed through `/_sim/…` control routes, which take
//! Graph delta-shaped bodies.

mod admin;
mod auth;
mod control;
pub mod generate;
mod graph;
pub mod seed;
mod tenant;

pub use tenant::{App, Tenant};

use crate::faults::{FaultGate, Faults, Throttle, inject};
use crate::server::{Running, spawn};
use axum::Router;
use axum::routing::{get, post};
use std::sync::{Arc, RwLock};

/// Shared by every route of one simulated tenant.
pub struct Sim {
    pub tenant: RwLock<Tenant>,
    pub tokens: auth::Tokens,
    pub faults: Arc<FaultGate>,
}

pub type Shared = Arc<Sim>;

fn throttle_body(_: &Throttle) -> String {
    r#"{"error":{"code":"TooManyRequests","message":"Too many requests. Please try again later.","innerError":{"code":"ApplicationThrottled"}}}"#.into()
}

pub fn router(tenant: Tenant, faults: Faults) -> (Router, Shared) {
    let gate = FaultGate::new(faults, throttle_body);
    let sim = Arc::new(Sim {
        tenant: RwLock::new(tenant),
        tokens: auth::Tokens::default(),
        faults: gate.clone(),
    });
    let router = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route("/v1.0/users", get(graph::users))
        .route("/v1.0/users/delta", get(graph::delta))
        .route("/v1.0/users/{id}", get(graph::user))
        .route("/v1.0/groups", get(graph::groups))
        .route("/v1.0/groups/{id}/members", get(graph::members))
        .route(
            "/v1.0/groups/{id}/members/microsoft.graph.user",
            get(graph::member_users),
        )
        .route("/adminapi/beta/{tenant}/{*rest}", get(admin::dispatch))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), inject))
        .merge(crate::faults::routes(gate))
        .merge(control::routes())
        .with_state(sim.clone());
    (router, sim)
}

/// Starts a simulated tenant on `127.0.0.1:port` (0: any free port).
pub fn start(tenant: Tenant, faults: Faults, port: u16) -> anyhow::Result<(Running, Shared)> {
    let (router, sim) = router(tenant, faults);
    Ok((spawn(router, port)?, sim))
}
