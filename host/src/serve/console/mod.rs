//! The web console (`/console`): the seed tools' workflows in a browser,
//! served by `roster serve` as HTML rendered here (maud), with no build step
//! and no asset from elsewhere. Pages read what the API reads (the same
//! library calls, `serve::reads`) and write what it writes (approvals,
//! staged links, runs, pause), audit-logged with the signed-in token's
//! name. docs/console.md walks through it.

/// The value of a guard or a read, or the answer that ends the request.
macro_rules! or_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(answer) => return answer,
        }
    };
}

mod account;
mod cache;
mod connectors;
mod draft;
mod form;
mod links;
mod login;
mod overview;
mod page;
mod plan;
mod rows;
mod runs;
mod session;

pub use cache::Cache;

use crate::serve::node::Shared;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};

pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/console", get(overview::show))
        .route("/console/", get(overview::show))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::sign_out))
        .route(
            "/console/assets/{file}",
            get(|Path(file): Path<String>| async move { page::asset(&file) }),
        )
        .route("/console/pipelines/{name}/run", post(overview::trigger))
        .route("/console/pipelines/{name}/pause", post(overview::pause))
        .route("/console/pipelines/{name}/plan", get(plan::current))
        .route(
            "/console/pipelines/{name}/plan/refresh",
            post(plan::refresh),
        )
        .route("/console/runs/{id}/plan", get(plan::kept))
        .route("/console/runs/{id}/decide", post(plan::decide))
        .route("/console/pipelines/{name}/links", get(links::show))
        .route("/console/pipelines/{name}/links/load", post(links::load))
        .route("/console/pipelines/{name}/links/auto", get(links::auto))
        .route("/console/pipelines/{name}/links/draft", post(links::draft))
        .route("/console/pipelines/{name}/links/save", post(links::save))
        .route("/console/pipelines/{name}/account", get(account::show))
        .route(
            "/console/pipelines/{name}/account/test",
            post(account::test),
        )
        .route(
            "/console/pipelines/{name}/connectors",
            get(connectors::show),
        )
        .route("/console/runs", get(runs::list))
        .route("/console/runs/{id}", get(runs::show))
        .route("/console/runs/{id}/outcomes.csv", get(runs::csv))
        .route("/console/runs/{id}/outcomes.json", get(runs::json))
        .layer(axum::middleware::map_response(headers))
        .with_state(shared)
}

/// Runs `f` (a library call that blocks: a connector, the state) on a
/// blocking thread.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::error::Failure> + Send + 'static,
) -> Result<T, crate::error::Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::error::Failure::Input(format!("the call stopped: {e}")))?
}

/// Keeps a plan that now waits for approval parsed on this node, and its
/// rows in the service database, so that any node opens it for review at
/// once.
pub fn keep_waiting_plan(shared: &Shared, run: i64, text: String) {
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = take_in(&shared, run, text).await {
            tracing::warn!("the plan of run {run} does not read: {e}");
        }
    });
}

/// Parses the plan waiting under `run` (`text`, as kept), keeps it in this
/// node's memory and its rows in the service database (once).
async fn take_in(
    shared: &Shared,
    run: i64,
    text: String,
) -> Result<std::sync::Arc<cache::Kept<crate::plan::Plan>>, crate::error::Failure> {
    let plan = off_thread(move || crate::serve::reads::parse_plan(&text)).await?;
    let kept = shared.console.keep_plan(&cache::kept_key(run), plan);
    if let Err(e) = rows::store(shared, run, &kept.value).await {
        tracing::warn!("the rows of run {run}'s plan are not kept: {e}");
    }
    Ok(kept)
}

/// Makes sure this node can open the plan waiting under `run` at once (the
/// overview asks): its rows in the database, else parsed here.
pub fn prefetch(shared: &Shared, run: i64) {
    let key = cache::kept_key(run);
    if shared.console.plan(&key).is_some() || !shared.console.start_loading(&key) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        if rows::stored(&shared, run).await.ok().flatten() != Some(true)
            && let Ok(Some(text)) = shared.db.approval_plan(run).await
        {
            let _ = take_in(&shared, run, text).await;
        }
        shared.console.done_loading(&key);
    });
}

/// What every console answer carries: no framing, no caching of pages that
/// hold account data, no referrer, nothing but the binary's own assets.
async fn headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page::CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
