//! Misbehaviour on demand, in front of a simulator's API routes: latency,
//! a request budget per window answered with 429 (with or without
//! `Retry-After`), 5xx answers, connections dropped mid-body and malformed
//! JSON. Every counter is deterministic (every n-th request), so a test
//! that asks for a fault gets exactly that fault.
//!
//! Routes under `/_sim` (the simulators' own control API) are never touched.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to inject; all off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every answer.
    pub latency_ms: u64,
    /// A request budget per window; requests beyond it answer 429.
    pub throttle: Option<Throttle>,
    /// Every n-th request answers `fail_status` (503 unless set).
    pub fail_every: Option<u64>,
    pub fail_status: Option<u16>,
    /// The failing requests are carried out first, then answered
    /// `fail_status`: a write that took effect although its answer says not.
    pub fail_after_effect: bool,
    /// Every n-th request's connection is dropped half-way through the body.
    pub drop_every: Option<u64>,
    /// Every n-th request answers 200 with a truncated JSON body.
    pub malformed_every: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Requests allowed per window.
    pub budget: u32,
    pub window_ms: u64,
    /// Send `Retry-After` (whole seconds until the window ends) with the 429.
    #[serde(default = "yes")]
    pub retry_after: bool,
    /// Send the RateLimit header fields (limit, remaining, reset) with every
    /// answer, as Zivver does; Microsoft Graph does not.
    #[serde(default)]
    pub headers: bool,
}

fn yes() -> bool {
    true
}

/// What the gate saw and did, for tests and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub throttled: u64,
    pub failed: u64,
    pub dropped: u64,
    pub malformed: u64,
    /// Requests per route (ids replaced by `*`), throttled ones included.
    pub routes: BTreeMap<String, u64>,
    /// Requests per method and route (`POST /api/scim/v2/Users`).
    pub methods: BTreeMap<String, u64>,
    /// Requests answered 429, per route.
    pub throttled_routes: BTreeMap<String, u64>,
    /// The budget's windows in order, while one is enforced: when each
    /// opened and how many requests it saw (throttled ones included).
    pub windows: Vec<WindowUse>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowUse {
    /// Milliseconds from the first request (since the stats were reset) to
    /// the window's opening (0 for a window that opened before it).
    pub opened_ms: u64,
    /// ... and to the window's last request.
    pub last_ms: u64,
    pub requests: u32,
}

/// The fault state of one simulator.
pub struct FaultGate {
    inner: Mutex<GateState>,
    /// The vendor's body for a 429.
    throttle_body: fn(&Throttle) -> String,
}

struct GateState {
    faults: Faults,
    stats: Stats,
    window_start: Instant,
    window_count: u32,
    first_request: Option<Instant>,
}

enum Verdict {
    /// Through; with the budget left in this window when one is enforced.
    Pass(Option<(u32, u32, u64)>),
    Throttle(Option<u64>, String),
    /// The status; whether the request is carried out first.
    Fail(u16, bool),
    Malformed,
    Drop,
}

impl FaultGate {
    pub fn new(faults: Faults, throttle_body: fn(&Throttle) -> String) -> Arc<Self> {
        Arc::new(FaultGate {
            inner: Mutex::new(GateState {
                faults,
                stats: Stats::default(),
                window_start: Instant::now(),
                window_count: 0,
                first_request: None,
            }),
            throttle_body,
        })
    }

    pub fn set(&self, faults: Faults) {
        let mut s = self.lock();
        s.faults = faults;
        s.window_start = Instant::now();
        s.window_count = 0;
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn reset_stats(&self) {
        let mut s = self.lock();
        s.stats = Stats::default();
        s.first_request = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn judge(&self, method: &str, route: String) -> (Verdict, u64) {
        let mut s = self.lock();
        s.stats.requests += 1;
        *s.stats.routes.entry(route.clone()).or_default() += 1;
        *s.stats
            .methods
            .entry(format!("{method} {route}"))
            .or_default() += 1;
        let n = s.stats.requests;
        let f = s.faults.clone();
        let every = |k: Option<u64>| k.is_some_and(|k| k > 0 && n.is_multiple_of(k));
        let mut budget = None;
        let verdict = if let Some(t) = &f.throttle {
            let window = Duration::from_millis(t.window_ms.max(1));
            let rolled = s.window_start.elapsed() >= window;
            if rolled {
                s.window_start = Instant::now();
                s.window_count = 0;
            }
            let now = Instant::now();
            let origin = *s.first_request.get_or_insert(now);
            if rolled || s.stats.windows.is_empty() {
                let opened = s.window_start.saturating_duration_since(origin);
                s.stats.windows.push(WindowUse {
                    opened_ms: opened.as_millis() as u64,
                    ..WindowUse::default()
                });
            }
            s.window_count += 1;
            if let Some(w) = s.stats.windows.last_mut() {
                w.requests += 1;
                w.last_ms = now.duration_since(origin).as_millis() as u64;
            }
            let left = window.saturating_sub(s.window_start.elapsed());
            let reset = left.as_millis().div_ceil(1000).max(1) as u64;
            if t.headers {
                budget = Some((t.budget, t.budget.saturating_sub(s.window_count), reset));
            }
            if s.window_count > t.budget {
                s.stats.throttled += 1;
                *s.stats.throttled_routes.entry(route).or_default() += 1;
                Some(Verdict::Throttle(
                    t.retry_after.then_some(reset),
                    (self.throttle_body)(t),
                ))
            } else {
                None
            }
        } else {
            None
        };
        let verdict = verdict.unwrap_or_else(|| {
            if every(f.fail_every) {
                s.stats.failed += 1;
                Verdict::Fail(f.fail_status.unwrap_or(503), f.fail_after_effect)
            } else if every(f.malformed_every) {
                s.stats.malformed += 1;
                Verdict::Malformed
            } else if every(f.drop_every) {
                s.stats.dropped += 1;
                Verdict::Drop
            } else {
                Verdict::Pass(budget)
            }
        });
        (verdict, f.latency_ms)
    }
}

/// The gate's own control routes, the same for every simulator: `GET
/// /_sim/stats`, `POST /_sim/stats/reset`, `GET|PUT /_sim/faults`.
pub fn routes<S: Clone + Send + Sync + 'static>(gate: Arc<FaultGate>) -> Router<S> {
    let (g1, g2, g3, g4) = (gate.clone(), gate.clone(), gate.clone(), gate);
    Router::new()
        .route("/_sim/stats", get(move || async move { Json(g1.stats()) }))
        .route(
            "/_sim/stats/reset",
            post(move || async move {
                g2.reset_stats();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/_sim/faults",
            get(move || async move { Json(g3.faults()) }).put(
                move |Json(f): Json<Faults>| async move {
                    g4.set(f);
                    StatusCode::NO_CONTENT
                },
            ),
        )
}

/// The middleware: `axum::middleware::from_fn_with_state(gate, inject)`.
pub async fn inject(State(gate): State<Arc<FaultGate>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let (verdict, latency) = gate.judge(request.method().as_str(), route_of(&path));
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match verdict {
        Verdict::Pass(budget) => {
            let mut r = next.run(request).await;
            // The RateLimit header fields (draft-ietf-httpapi-ratelimit-headers).
            if let Some((limit, remaining, reset)) = budget {
                let h = r.headers_mut();
                h.insert("ratelimit-limit", HeaderValue::from(limit));
                h.insert("ratelimit-remaining", HeaderValue::from(remaining));
                h.insert("ratelimit-reset", HeaderValue::from(reset));
            }
            r
        }
        Verdict::Throttle(retry_after, body) => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, json_body(body)).into_response();
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
        Verdict::Fail(status, after_effect) => {
            if after_effect {
                drop(next.run(request).await);
            }
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                json_body(
                    r#"{"error":{"code":"ServiceUnavailable","message":"injected failure"}}"#
                        .into(),
                ),
            )
                .into_response()
        }
        Verdict::Malformed => (
            StatusCode::OK,
            json_body(r#"{"value":[{"id":"trunc"#.into()),
        )
            .into_response(),
        Verdict::Drop => drop_midway(next.run(request).await).await,
    }
}

fn json_body(body: String) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// The real answer's headers and first half, then a broken connection.
async fn drop_midway(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
    parts.headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.len().max(1)),
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected drop",
        )),
    ];
    Response::from_parts(parts, Body::from_stream(futures_lite_iter(chunks)))
}

fn futures_lite_iter(
    items: Vec<Result<Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    tokio_stream::iter(items)
}

/// A path with its ids replaced by `*`, so stats group by route.
pub fn route_of(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if let Some(open) = seg.find("('") {
                format!("{}('*')", &seg[..open])
            } else if seg.len() >= 16 && seg.chars().any(|c| c.is_ascii_digit()) {
                "*".into()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_group_ids() {
        assert_eq!(
            route_of("/adminapi/beta/t/Mailbox('a@b.c')/MailboxPermission"),
            "/adminapi/beta/t/Mailbox('*')/MailboxPermission"
        );
        assert_eq!(
            route_of("/v1.0/groups/02bd9fd6-8f93-4758-87c3-1fb73740a315/members"),
            "/v1.0/groups/*/members"
        );
    }
}
