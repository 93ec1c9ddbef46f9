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
        .route("/api/v1/runs/{id}/outcomes", get(outcomes))
        .route("/api/v1/runs/{id}/approve", post(approve))
        .route("/api/v1/runs/{id}/reject", post(reject))
        .route("/api/v1/approvals", get(approvals))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/openapi.json", get(openapi))
        .route(
            "/api/v1/pipelines/{name}/links",
            get(links).post(stage_link),
        )
        .route("/api/v1/pipelines/{name}/connectors", get(connectors))
        .route("/api/v1/pipelines/{name}/plan", get(current_plan))
        .route("/api/v1/pipelines/{name}/explain", get(explain))
        .with_state(shared)
}

/// The API as an OpenAPI 3.1 document, from the handlers' annotations and
/// the body types (checked in as `docs/openapi.json`; a test compares).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Roster service API",
        description = "roster serve: pipelines, runs, approvals (docs/service.md). Every route but /healthz and /readyz wants a bearer token (`roster serve token create`)."
    ),
    paths(
        healthz, readyz, metrics, openapi, pipelines, trigger, pause, resume, runs, run, plan,
        approve, reject, approvals, audit, outcomes, links, stage_link, connectors, current_plan, explain
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "liveness, readiness, metrics"),
        (name = "pipelines", description = "the served pipelines"),
        (name = "runs", description = "runs and their plans"),
        (name = "approvals", description = "plans that wait for a person"),
        (name = "links", description = "links between source and target accounts"),
        (name = "audit", description = "who changed what")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, as served and as checked in.
pub fn openapi_json() -> String {
    use utoipa::OpenApi;
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health", responses((status = 200, description = "this document (viewer)", content_type = "application/json", body = String), Denied), security(("bearer" = [])))]
async fn openapi(State(shared): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&shared, &headers, Role::Viewer).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response())
}

/// What a route that wants a token answers before it does anything else.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Denied {
    /// no token, or an unknown one
    #[response(status = 401)]
    NoToken(ErrorBody),
    /// the token's role is too low
    #[response(status = 403)]
    TooLow(ErrorBody),
}

/// An answer that is not a success: a status and a sentence.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

/// Every answer that is not a success.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
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

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "the process is up", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "the database answers and the workers run", content_type = "text/plain", body = String), (status = 503, description = "not ready", content_type = "text/plain", body = String)))]
async fn readyz(State(shared): State<Shared>) -> Response {
    let working = shared.working.load(Ordering::Relaxed);
    match working && shared.db.ping().await {
        true => (StatusCode::OK, "ready\n").into_response(),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format (viewer)", content_type = "text/plain", body = String), Denied), security(("bearer" = [])))]
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
#[derive(Serialize, Deserialize, Debug, PartialEq, utoipa::ToSchema)]
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

#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", responses((status = 200, description = "every served pipeline (viewer)", body = Vec<PipelineView>), Denied), security(("bearer" = [])))]
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

/// A run asked for: whether a job went into the queue (false: one for
/// the same pipeline and trigger was there).
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct Queued {
    pub pipeline: String,
    pub queued: bool,
}

#[utoipa::path(post, path = "/api/v1/pipelines/{name}/runs", tag = "pipelines", params(("name" = String, Path, description = "the pipeline")), responses((status = 200, description = "queued: one job per rank (operator)", body = Queued), Denied, (status = 404, description = "no such pipeline", body = ErrorBody)), security(("bearer" = [])))]
async fn trigger(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer<Queued> {
    let caller = authorize(&shared, &headers, Role::Operator).await?;
    served(&shared, &name)?;
    let queued = queue_run(&shared, &name, &caller.name)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))?;
    Ok(Json(Queued {
        pipeline: name,
        queued,
    }))
}

/// Queues a run of pipeline `name` (one job per rank) asked for by `by`,
/// audit-logged; whether a job went in (false: one was waiting).
pub async fn queue_run(shared: &Shared, name: &str, by: &str) -> Result<bool, String> {
    let Some(served) = shared.config.pipelines.get(name) else {
        return Err(format!("no pipeline `{name}`"));
    };
    let trigger = Trigger::Manual { by: by.to_string() };
    let mut queued = false;
    for job in RunJob::per_rank(name, trigger, served.pipeline.ranks) {
        queued |= enqueue(shared, &job)
            .await
            .map_err(|e| format!("cannot enqueue: {e}"))?;
    }
    shared
        .db
        .audit(by, "run", name, None)
        .await
        .map_err(|e| format!("the service database: {e}"))?;
    Ok(queued)
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct Paused {
    pub pipeline: String,
    pub paused: bool,
}

#[utoipa::path(post, path = "/api/v1/pipelines/{name}/pause", tag = "pipelines", params(("name" = String, Path, description = "the pipeline")), responses((status = 200, description = "no longer scheduled (operator)", body = Paused), Denied, (status = 404, description = "no such pipeline", body = ErrorBody)), security(("bearer" = [])))]
async fn pause(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer<Paused> {
    set_paused(shared, headers, name, true).await
}

#[utoipa::path(post, path = "/api/v1/pipelines/{name}/resume", tag = "pipelines", params(("name" = String, Path, description = "the pipeline")), responses((status = 200, description = "scheduled again (operator)", body = Paused), Denied, (status = 404, description = "no such pipeline", body = ErrorBody)), security(("bearer" = [])))]
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

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(("pipeline" = Option<String>, Query, description = "only this pipeline's"), ("limit" = Option<i64>, Query, description = "at most this many, 1 to 1000 (100)")), responses((status = 200, description = "runs, newest first (viewer)", body = Vec<RunRecord>), Denied), security(("bearer" = [])))]
async fn runs(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> Answer<Vec<RunRecord>> {
    authorize(&shared, &headers, Role::Viewer).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(shared.db.runs(q.pipeline.as_deref(), limit).await?))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = i64, Path, description = "the run")), responses((status = 200, description = "one run (viewer)", body = RunRecord), Denied, (status = 404, description = "no such run", body = ErrorBody)), security(("bearer" = [])))]
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
#[utoipa::path(get, path = "/api/v1/runs/{id}/plan", tag = "runs", params(("id" = i64, Path, description = "the run")), responses((status = 200, description = "the plan the run keeps for approval, as `roster plan --json` prints it (docs/json.md) (viewer)", content_type = "application/json", body = String), Denied, (status = 404, description = "the run keeps no plan", body = ErrorBody)), security(("bearer" = [])))]
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
    // Masked when kept; masked again with what this node knows now.
    let plan = crate::runtime::Redactor::global()
        .redact(&plan)
        .into_owned();
    Ok(([(header::CONTENT_TYPE, "application/json")], plan).into_response())
}

/// An optional comment for the audit log.
#[derive(Deserialize, Serialize, Default, Debug, utoipa::ToSchema)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/approve", tag = "approvals", params(("id" = i64, Path, description = "the run whose plan waits")), request_body(content = Option<Decision>, description = "an optional comment"), responses((status = 200, description = "approved: a run that applies it if the pipeline still plans exactly it is queued (operator)", body = Decided), Denied, (status = 404, description = "no plan waits under this run", body = ErrorBody), (status = 409, description = "the plan is no longer waiting", body = ErrorBody)), security(("bearer" = [])))]
async fn approve(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Answer<Decided> {
    decide(shared, headers, id, true, body).await
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/reject", tag = "approvals", params(("id" = i64, Path, description = "the run whose plan waits")), request_body(content = Option<Decision>, description = "an optional comment"), responses((status = 200, description = "rejected (operator)", body = Decided), Denied, (status = 404, description = "no plan waits under this run", body = ErrorBody), (status = 409, description = "the plan is no longer waiting", body = ErrorBody)), security(("bearer" = [])))]
async fn reject(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Answer<Decided> {
    decide(shared, headers, id, false, body).await
}

/// A JSON body, read after the caller is known (so a request without a
/// token is 401 whatever its body).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body is not what this route takes: {e}"),
        )
    })
}

async fn decide(
    shared: Shared,
    headers: HeaderMap,
    id: i64,
    approve: bool,
    body: axum::body::Bytes,
) -> Answer<Decided> {
    let caller = authorize(&shared, &headers, Role::Operator).await?;
    let d: Decision = match body.iter().all(u8::is_ascii_whitespace) {
        true => Decision::default(),
        false => parse(&body)?,
    };
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

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(("pending" = Option<bool>, Query, description = "only plans still waiting")), responses((status = 200, description = "plans kept for approval, newest first (viewer)", body = Vec<ApprovalRecord>), Denied), security(("bearer" = [])))]
async fn approvals(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ApprovalsQuery>,
) -> Answer<Vec<ApprovalRecord>> {
    authorize(&shared, &headers, Role::Viewer).await?;
    Ok(Json(shared.db.approvals(q.pending).await?))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", responses((status = 200, description = "the last 1000 writes, newest first (admin)", body = Vec<AuditRecord>), Denied), security(("bearer" = [])))]
async fn audit(State(shared): State<Shared>, headers: HeaderMap) -> Answer<Vec<AuditRecord>> {
    authorize(&shared, &headers, Role::Admin).await?;
    Ok(Json(shared.db.audit_log(1000).await?))
}

/// A document as the CLI's `--json` prints it (docs/json.md).
pub struct CliDocument;

impl utoipa::PartialSchema for CliDocument {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some(
                "the JSON document the CLI prints for the same question with --json (docs/json.md)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for CliDocument {}

/// A failure of the library call behind a route, as an answer.
fn failed(e: crate::error::Failure) -> ApiError {
    use crate::error::Failure as F;
    let status = match &e {
        F::Input(_) => StatusCode::BAD_REQUEST,
        F::Connector(_) => StatusCode::BAD_GATEWAY,
        F::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        F::Busy(_) | F::Refused(_) => StatusCode::CONFLICT,
    };
    ApiError(
        status,
        crate::runtime::Redactor::global()
            .redact(&e.to_string())
            .into_owned(),
    )
}

/// A viewer's read of pipeline `name`: `read` on a blocking thread with
/// the pipeline and the compiled cache, answering its JSON document.
async fn pipeline_document(
    shared: &Shared,
    headers: &HeaderMap,
    name: &str,
    read: impl FnOnce(
        &super::config::Served,
        Option<std::path::PathBuf>,
    ) -> Result<String, crate::error::Failure>
    + Send
    + 'static,
) -> Result<Response, ApiError> {
    authorize(shared, headers, Role::Viewer).await?;
    let served = served(shared, name)?.clone();
    let cache = shared.cache_dir.clone();
    document(move || read(&served, cache)).await
}

/// Runs `f` on a blocking thread and answers its JSON document.
async fn document(
    f: impl FnOnce() -> Result<String, crate::error::Failure> + Send + 'static,
) -> Result<Response, ApiError> {
    let text = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the read stopped: {e}"),
            )
        })?
        .map_err(failed)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

#[utoipa::path(get, path = "/api/v1/pipelines/{name}/links", tag = "links", params(("name" = String, Path, description = "the pipeline")), responses((status = 200, description = "linked accounts, staged link changes, accounts unlinked on purpose, as `roster links --json` (viewer)", body = CliDocument), Denied, (status = 404, description = "no such pipeline", body = ErrorBody)), security(("bearer" = [])))]
async fn links(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    pipeline_document(&shared, &headers, &name, |served, _| {
        super::reads::links(served)
    })
    .await
}

/// A link to stage: `target` null unlinks.
#[derive(Deserialize, Serialize, Debug, utoipa::ToSchema)]
pub struct LinkChange {
    /// The source account: its primary address, external key or id.
    pub source: String,
    /// The target account's id; null to unlink the source account.
    pub target: Option<String>,
    /// Link options the target connector declares (e.g. diary, rank).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

/// A staged link change: the next plan shows it, the next apply makes it.
#[derive(Deserialize, Serialize, Debug, utoipa::ToSchema)]
pub struct StagedLink {
    pub pipeline: String,
    pub source: String,
    pub target: Option<String>,
    pub options: std::collections::BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/api/v1/pipelines/{name}/links", tag = "links", params(("name" = String, Path, description = "the pipeline")), request_body = LinkChange, responses((status = 200, description = "staged for the next apply, as `roster links add|remove` (operator)", body = StagedLink), (status = 400, description = "an unknown option, a bad value, an empty source", body = ErrorBody), Denied, (status = 404, description = "no such pipeline", body = ErrorBody)), security(("bearer" = [])))]
async fn stage_link(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer<StagedLink> {
    let caller = authorize(&shared, &headers, Role::Operator).await?;
    let change: LinkChange = parse(&body)?;
    let served = served(&shared, &name)?.clone();
    let cache = shared.cache_dir.clone();
    let LinkChange {
        source,
        target,
        options,
    } = change;
    let edit = tokio::task::spawn_blocking(move || {
        super::reads::stage(&served, cache, &source, target, options)
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("staging stopped: {e}"),
        )
    })?
    .map_err(failed)?;
    let what = match &edit.target_id {
        Some(t) => format!("{} -> {t}", edit.source),
        None => format!("unlink {}", edit.source),
    };
    shared
        .db
        .audit(&caller.name, "links.stage", &name, Some(&what))
        .await?;
    Ok(Json(StagedLink {
        pipeline: name,
        source: edit.source,
        target: edit.target_id,
        options: edit.options,
    }))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{name}/connectors", tag = "pipelines", params(("name" = String, Path, description = "the pipeline")), responses((status = 200, description = "each connector's plugin, contract and grants, as `roster check --json` (viewer)", body = CliDocument), Denied, (status = 404, description = "no such pipeline", body = ErrorBody)), security(("bearer" = [])))]
async fn connectors(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    pipeline_document(&shared, &headers, &name, super::reads::connectors).await
}

#[utoipa::path(get, path = "/api/v1/pipelines/{name}/plan", tag = "pipelines", params(("name" = String, Path, description = "the pipeline")), responses((status = 200, description = "the plan an apply would carry out now, as `roster plan --json`; reads both systems, changes neither (viewer)", body = CliDocument), Denied, (status = 404, description = "no such pipeline", body = ErrorBody), (status = 502, description = "a connector failed", body = ErrorBody)), security(("bearer" = [])))]
async fn current_plan(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    pipeline_document(&shared, &headers, &name, super::reads::plan).await
}

#[derive(Deserialize)]
struct ExplainQuery {
    address: String,
}

#[utoipa::path(get, path = "/api/v1/pipelines/{name}/explain", tag = "pipelines", params(("name" = String, Path, description = "the pipeline"), ("address" = String, Query, description = "an e-mail address (primary or alias)")), responses((status = 200, description = "each stage's decision for the account, as `roster explain --json` (viewer)", body = CliDocument), Denied, (status = 404, description = "no such pipeline", body = ErrorBody), (status = 502, description = "a connector failed", body = ErrorBody)), security(("bearer" = [])))]
async fn explain(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ExplainQuery>,
) -> Result<Response, ApiError> {
    pipeline_document(&shared, &headers, &name, move |served, cache| {
        super::reads::explain(served, cache, &q.address)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/outcomes", tag = "runs", params(("id" = i64, Path, description = "the run")), responses((status = 200, description = "each change the run's plan held: account, outcome (applied, failed, skipped, sent, pending), the target id, the vendor's error (viewer)", body = super::reads::RunOutcomes), Denied, (status = 404, description = "no such run, or it made no plan", body = ErrorBody)), security(("bearer" = [])))]
async fn outcomes(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    authorize(&shared, &headers, Role::Viewer).await?;
    let run = shared
        .db
        .run(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let plan_id = run
        .plan_id
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("run {id} made no plan")))?;
    let served = served(&shared, &run.pipeline)?.clone();
    document(move || super::reads::outcomes(&served, id, &plan_id)).await
}
