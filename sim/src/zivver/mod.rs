//! A Zivver organisation behind its SCIM 2.0 API, written from what the
//! vendor documents and what its own sync tool (CloudSync) and other real
//! clients send: `docs/connectors/zivver.md` lists each route with its
//! source (see `org.rs` for the rules, `scim.rs` for the routes). Seeded
//! from Zivver's list responses (`seed.rs`).
//!
//! Guests are not part of the API: an outside address becomes a guest when
//! it "receives mail" (`POST /_sim/zivver/receive`), and a guest only shows
//! as the error a write meets (`Error creating alias: Alias is a guest: …`).
//! The admin's remedy that Zivver documents (the Synctool's "merge guest
//! accounts into primary account" profile) is `POST /_sim/zivver/merge-guest`.
//! Anything else, `/Guests` included, answers 404.

mod control;
pub mod generate;
pub mod org;
mod scim;
pub mod seed;

pub use org::Org;

use crate::faults::{FaultGate, Faults, Throttle, inject};
use crate::server::{Running, spawn};
use axum::Router;
use axum::routing::get;
use std::sync::{Arc, RwLock};

pub struct Sim {
    pub org: RwLock<Org>,
    pub faults: Arc<FaultGate>,
}

pub type Shared = Arc<Sim>;

/// Zivver's 429 body (the fixture `zivver-429.example.json`), with the budget in force.
fn throttle_body(t: &Throttle) -> String {
    serde_json::json!({
        "code": 429,
        "message": "Too Many Requests",
        "emptiedBucketDetails": {
            "limiterId": "cab",
            "budget": t.budget,
            "windowSeconds": t.window_ms / 1000,
        },
        "reference": "https://tools.ietf.org/html/draft-polli-ratelimit-headers-02",
    })
    .to_string()
}

/// The real service's budget: 50 requests per 10 seconds.
pub fn real_budget() -> Throttle {
    Throttle {
        budget: 50,
        window_ms: 10_000,
        retry_after: true,
        headers: true,
    }
}

pub fn router(org: Org, faults: Faults) -> (Router, Shared) {
    let gate = FaultGate::new(faults, throttle_body);
    let sim = Arc::new(Sim {
        org: RwLock::new(org),
        faults: gate.clone(),
    });
    let base = "/api/scim/v2";
    let router = Router::new()
        .route(
            &format!("{base}/Users"),
            get(scim::list_users).post(scim::create_user),
        )
        .route(
            &format!("{base}/Users/{{id}}"),
            get(scim::get_user)
                .put(scim::replace_user)
                .delete(scim::delete_user),
        )
        .route(
            &format!("{base}/Groups"),
            get(scim::list_groups).post(scim::create_group),
        )
        .route(
            &format!("{base}/Groups/{{id}}"),
            get(scim::get_group)
                .put(scim::replace_group)
                .patch(scim::patch_group)
                .delete(scim::delete_group),
        )
        // A method a route does not take (PATCH on a user) is refused after
        // its body is read: refused unread, the connection could not be
        // reused, and a client's next request on it would fail.
        .method_not_allowed_fallback(scim::method_not_allowed)
        .layer(axum::middleware::from_fn(scim::negotiate))
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            scim::require_api_key,
        ))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), inject))
        .merge(crate::faults::routes(gate))
        .merge(control::routes())
        .with_state(sim.clone());
    (router, sim)
}

/// Starts a simulated organisation on `127.0.0.1:port` (0: any free port).
/// Its SCIM base URL is `{url}/api/scim/v2/`.
pub fn start(org: Org, faults: Faults, port: u16) -> anyhow::Result<(Running, Shared)> {
    let (router, sim) = router(org, faults);
    Ok((spawn(router, port)?, sim))
}
