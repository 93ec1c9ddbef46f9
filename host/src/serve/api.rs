//! The service's HTTP API (axum). Every route but `/healthz` and `/readyz`
//! wants a bearer token (`roster serve token create`); each route names the
//! least role it needs, checked in one place ([`authorize`]); every write
//! goes to the audit log with the token's name. Bodies are the same types
//! the CLI's `--json` prints. Nothing secret is in any answer: runs carry
//! messages already masked, pipelines show their state without credentials.

pub use super::approve::Decided;
use super::db::{ApprovalRecord, AuditRecord, DecideError, Role, RunRecord};
use super::job::{RunJob, Trigger};
use super::node::{Shared, enqueue};
use super::schedule;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/pipelines", get(pipelines))
        .route("/api/v1/pipelines/{name}/runs", post(trigger))
        .route("/api/v1/pipelines/{name}/pause", post(pause))
        .route("/api/v1/pipelines/{name}/resume", post(resume))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/runs/{id}/plan", get(plan))
        .route("/api/v1/runs/{id}/approve", post(approve))
        .route("/api/v1/runs/{id}/reject", post(reject))
        .route("/api/v1/approvals", get(approvals))
        .route("/api/v1/audit", get(audit))
        .with_state(shared)
}

/// An answer that is not a success: a status and a sentence.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(ErrorBody { error: self.1 })).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!("service database: {e}");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service database is unavailable".into(),
        )
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

/// Who made a request: the token's name, as the audit log shows it.
struct Caller {
    name: String,
}

/// The one check: a known bearer token whose role is at least `least`.
async fn authorize(shared: &Shared, headers: &HeaderMap, least: Role) -> Result<Caller, ApiError> {
    let unauthorized = |m: &str| ApiError(StatusCode::UNAUTHORIZED, m.into());
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("no token: send Authorization: Bearer TOKEN"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("Authorization must be Bearer TOKEN"))?;
    let (name, role) = shared
        .db
        .token(&super::token::hash(token))
        .await?
        .ok_or_else(|| unauthorized("unknown token"))?;
    if role < least {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token `{name}` is a {}; this needs {}",
                role.as_str(),
                least.as_str()
            ),
        ));
    }
    Ok(Caller {
        name: format!("token:{name}"),
    })
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> Response {
    let working = shared.working.load(Ordering::Relaxed);
    match working && shared.db.ping().await {
        true => (StatusCode::OK, "ready\n").into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}

async fn metrics(State(shared): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&shared, &headers, Role::Viewer).await?;
    let depth = shared.db.queue_depth(&shared.config.queue).await?;
    let waiting = shared.db.approvals(true).await?.len();
    super::metrics::set_queue(depth, waiting);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response())
}

/// A served pipeline, as `GET /api/v1/pipelines` lists it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct PipelineView {
    pub name: String,
    pub file: String,
    pub source: String,
    pub target: String,
    pub schedule: String,
    pub next_run: Option<String>,
    pub approval: String,
    pub paused: bool,
    pub state: String,
    pub last_run: Option<RunRecord>,
}

async fn pipelines(State(shared): State<Shared>, headers: HeaderMap) -> Answer<Vec<PipelineView>> {
    authorize(&shared, &headers, Role::Viewer).await?;
    let paused = shared.db.paused().await?;
    let now = chrono::Utc::now();
    let mut out = vec![];
    for (name, served) in &shared.config.pipelines {
        let p = &served.pipeline;
        out.push(PipelineView {
            name: name.clone(),
            file: p.path.display().to_string(),
            source: p.source.clone(),
            target: p.target.clone(),
            schedule: served.schedule.to_string(),
            next_run: served.schedule.next(now).map(schedule::shown),
            approval: served.approval.as_str().into(),
            paused: paused.contains(name),
            state: p.state_shown(),
            last_run: shared.db.runs(Some(name), 1).await?.into_iter().next(),
        });
    }
    Ok(Json(out))
}

fn served<'a>(shared: &'a Shared, name: &str) -> Result<&'a super::config::Served, ApiError> {
    shared
        .config
        .pipelines
        .get(name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no pipeline `{name}`")))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Queued {
    pub pipeline: String,
    pub queued: bool,
}

async fn trigger(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer<Queued> {
    let caller = authorize(&shared, &headers, Role::Operator).await?;
    let ranks = served(&shared, &name)?.pipeline.ranks;
    let trigger = Trigger::Manual {
        by: caller.name.clone(),
    };
    let mut queued = false;
    for job in RunJob::per_rank(&name, trigger, ranks) {
        queued |= enqueue(&shared, &job).await.map_err(|e| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot enqueue: {e}"),
            )
        })?;
    }
    shared.db.audit(&caller.name, "run", &name, None).await?;
    Ok(Json(Queued {
        pipeline: name,
        queued,
    }))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Paused {
    pub pipeline: String,
    pub paused: bool,
}

async fn pause(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer<Paused> {
    set_paused(shared, headers, name, true).await
}

async fn resume(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer<Paused> {
    set_paused(shared, headers, name, false).await
}

async fn set_paused(
    shared: Shared,
    headers: HeaderMap,
    name: String,
    paused: bool,
) -> Answer<Paused> {
    let caller = authorize(&shared, &headers, Role::Operator).await?;
    served(&shared, &name)?;
    shared.db.set_paused(&name, paused, &caller.name).await?;
    Ok(Json(Paused {
        pipeline: name,
        paused,
    }))
}

#[derive(Deserialize)]
struct RunsQuery {
    pipeline: Option<String>,
    limit: Option<i64>,
}

async fn runs(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Answer<Vec<RunRecord>> {
    authorize(&shared, &headers, Role::Viewer).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(shared.db.runs(q.pipeline.as_deref(), limit).await?))
}

async fn run(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Answer<RunRecord> {
    authorize(&shared, &headers, Role::Viewer).await?;
    shared
        .db
        .run(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id}")))
}

/// The plan a run keeps for approval, as `roster plan --json` prints it.
async fn plan(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    authorize(&shared, &headers, Role::Viewer).await?;
    let plan = shared
        .db
        .approval_plan(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("run {id} keeps no plan")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], plan).into_response())
}

#[derive(Deserialize, Serialize, Default, Debug)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

async fn approve(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Option<Json<Decision>>,
) -> Answer<Decided> {
    decide(
        shared,
        headers,
        id,
        true,
        body.map(|b| b.0).unwrap_or_default(),
    )
    .await
}

async fn reject(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Option<Json<Decision>>,
) -> Answer<Decided> {
    decide(
        shared,
        headers,
        id,
        false,
        body.map(|b| b.0).unwrap_or_default(),
    )
    .await
}

async fn decide(
    shared: Shared,
    headers: HeaderMap,
    id: i64,
    approve: bool,
    d: Decision,
) -> Answer<Decided> {
    let caller = authorize(&shared, &headers, Role::Operator).await?;
    let decided = super::approve::decide(
        &shared.db,
        &shared.config.queue,
        id,
        approve,
        &caller.name,
        d.comment.as_deref(),
    )
    .await
    .map_err(|e| match e {
        DecideError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        DecideError::NotPending { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        DecideError::Db(e) => e.into(),
    })?;
    Ok(Json(decided))
}

#[derive(Deserialize)]
struct ApprovalsQuery {
    #[serde(default)]
    pending: bool,
}

async fn approvals(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ApprovalsQuery>,
) -> Answer<Vec<ApprovalRecord>> {
    authorize(&shared, &headers, Role::Viewer).await?;
    Ok(Json(shared.db.approvals(q.pending).await?))
}

async fn audit(State(shared): State<Shared>, headers: HeaderMap) -> Answer<Vec<AuditRecord>> {
    authorize(&shared, &headers, Role::Admin).await?;
    Ok(Json(shared.db.audit_log(1000).await?))
}
