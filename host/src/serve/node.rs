//! One `roster serve` node: the scheduler that enqueues each pipeline's
//! ticks, the workers that claim runs from the shared queue, and the HTTP
//! API, until SIGTERM. Any number of nodes share one database: a tick is
//! enqueued once (its idempotency key), a run is claimed by one worker
//! (apalis locks it to that worker), and a run whose node stops sending
//! heartbeats goes back to the queue for another node, which plans afresh
//! from the target and the pipeline's journal, so nothing applied is sent
//! twice and nothing is lost.

use super::config::{Event, ServeConfig};
use super::db::{RunEnd, ServiceDb};
use super::job::{self, RunJob, Trigger};
use super::notify::{self, Notice};
use crate::error::Failure;
use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What every worker, the scheduler and the API share.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<ServeConfig>,
    pub db: ServiceDb,
    pub cache_dir: Option<PathBuf>,
    /// Set on SIGTERM: applies finish their batch and stop.
    pub stop: Arc<AtomicBool>,
    pub http: reqwest::Client,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Whether this node's workers are claiming runs (for /readyz).
    pub working: Arc<AtomicBool>,
    /// What the web console keeps between requests (parsed plans, loaded accounts).
    pub console: Arc<super::console::Cache>,
}

/// A run is tried this many times (a node that dies counts as a try).
const MAX_ATTEMPTS: usize = 5;

/// Runs the node until SIGTERM or SIGINT.
pub async fn serve(mut config: ServeConfig, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    place_states(&mut config)?;
    let db = ServiceDb::open(&config.database)
        .await
        .map_err(|e| Failure::Input(format!("{e:#}")))?;
    let metrics = super::metrics::install()?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(super::tls::config(cert, key).map_err(Failure::Input)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Failure::Input(format!("cannot listen on {}: {e}", config.listen)))?;
    let shared = Shared {
        config: Arc::new(config),
        db,
        cache_dir,
        stop: Arc::new(AtomicBool::new(false)),
        http: http_client()?,
        metrics,
        working: Arc::new(AtomicBool::new(false)),
        console: Default::default(),
    };
    let (quit, quitting) = watch::channel(false);
    let node = shared.config.node.clone();
    tracing::info!(node, listen = %shared.config.listen, pipelines = shared.config.pipelines.len(), "serving");
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "roster serve: node {node}, {} pipeline(s), API on {scheme}://{listen}, console on {scheme}://{listen}/console",
        shared.config.pipelines.len(),
        listen = shared.config.listen
    );
    let api = {
        let mut quitting = quitting.clone();
        let router =
            super::api::router(shared.clone()).merge(super::console::router(shared.clone()));
        tokio::spawn(async move {
            let stopped = async move {
                let _ = quitting.wait_for(|q| *q).await;
            };
            match tls {
                Some(tls) => {
                    let listener = super::tls::TlsListener::new(listener, tls)?;
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                }
                None => {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stopped)
                        .await
                }
            }
        })
    };
    let scheduler = tokio::spawn(schedule(shared.clone(), quitting.clone()));
    let mut workers = vec![];
    for n in 0..shared.config.workers {
        workers.push(tokio::spawn(work(shared.clone(), n, quitting.clone())));
    }
    shared.working.store(true, Ordering::Relaxed);
    wait_for_signal(&shared).await;
    shared.working.store(false, Ordering::Relaxed);
    let _ = quit.send(true);
    for w in workers {
        let _ = w.await;
    }
    scheduler.abort();
    let _ = api.await;
    eprintln!("roster serve: node {node} stopped");
    Ok(())
}

/// The client notifications are sent with (no redirects followed).
fn http_client() -> Result<reqwest::Client, Failure> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::Input(format!("cannot make an HTTP client: {e}")))
}

/// Pipelines that name no state keep theirs on the service's database (a
/// schema each); a state in a file would not be shared between nodes.
fn place_states(config: &mut ServeConfig) -> Result<(), Failure> {
    for served in config.pipelines.values_mut() {
        let p = &mut served.pipeline;
        if p.state_url.is_some() {
            continue;
        }
        if p.state_named {
            return Err(Failure::Input(format!(
                "{}: the state is a file ({}), which other nodes cannot share: remove `state` to keep it on the service's database, or give a postgres:// URL",
                p.path.display(),
                p.state_path.display()
            )));
        }
        let at = crate::state::PgLocation::parse(&config.database, &p.name)
            .map_err(|e| Failure::Input(format!("{e:#}")))?;
        // The service's own schema is in the URL; each pipeline gets its own.
        let schema = crate::state::postgres::schema_name(&p.name);
        p.state_url = Some(crate::state::PgLocation { schema, ..at });
    }
    Ok(())
}

/// The first SIGTERM or SIGINT stops claiming runs and lets the runs in
/// flight finish their batch; a second ends the process at once.
async fn wait_for_signal(shared: &Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!(
        "roster serve: stopping: no new runs; runs in flight finish their batch (again to stop at once)"
    );
    shared.stop.store(true, Ordering::Relaxed);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
    });
}

fn storage(shared: &Shared) -> PostgresStorage<RunJob> {
    let config = &shared.config;
    let queue = Config::default()
        .queue(&config.queue)
        .batch_size(1)
        .heartbeat_interval(config.heartbeat)
        .missed_heartbeats(config.missed_heartbeats as usize);
    PostgresStorage::new(&shared.db.pool).with_config(queue)
}

/// One worker: claims a run at a time; restarted (under a new name, as
/// the old one may still look alive) if the database goes away.
async fn work(shared: Shared, n: u32, quitting: watch::Receiver<bool>) {
    for generation in 0.. {
        if *quitting.borrow() {
            return;
        }
        let name = format!("{}-w{n}-{generation}", shared.config.node);
        let backend = storage(&shared)
            .with_pubsub()
            .poll_with_strategy(Strategy::new().interval(Duration::from_secs(1)));
        // One run at a time per worker: a node runs at most `workers`.
        let worker = WorkerBuilder::new(name.as_str())
            .backend(backend)
            .concurrency(1)
            .data(shared.clone())
            .build(handle);
        let rx = quitting.clone();
        let ran = worker
            .run_with_ctx(move |ctx| {
                let mut rx = rx.clone();
                async move {
                    let _ = rx.wait_for(|q| *q).await;
                    ctx.stop()
                }
            })
            .await;
        if *quitting.borrow() {
            return;
        }
        if let Err(e) = ran {
            tracing::error!(worker = name, "worker stopped: {e}; starting again in 2 s");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A run claimed from the queue.
async fn handle(
    job: RunJob,
    shared: Data<Shared>,
    id: TaskId,
    attempt: Attempt,
) -> Result<String, BoxDynError> {
    let node = shared.config.node.clone();
    let Some(served) = shared.config.pipelines.get(&job.pipeline).cloned() else {
        // Nodes should share one configuration; while they do not (a
        // rolling change), the run goes back for a node that serves it.
        tracing::warn!(
            pipeline = job.pipeline,
            "a run of a pipeline this node does not serve: back to the queue"
        );
        return Err(format!("{} is not served by node {node}", job.pipeline).into());
    };
    let job_id = id.to_string();
    let ended = shared.db.end_orphaned_runs(&job_id, &node).await?;
    if ended > 0 {
        tracing::warn!(pipeline = job.pipeline, "resuming a run whose node stopped");
    }
    let approved = match &job.trigger {
        Trigger::Approval { run } => match shared.db.approved(*run).await? {
            Some((_, plan_id)) => Some(plan_id),
            None => return Ok(format!("run {run}'s plan is no longer approved")),
        },
        _ => None,
    };
    let run_id = shared
        .db
        .begin_run(&job, &job_id, &node, attempt.current().max(1) as i32)
        .await?;
    // Every log line of the run says its pipeline, node and rank (0: the
    // pipeline is not split), as fields of each JSON line.
    let rank = job.rank.unwrap_or(0);
    tracing::info!(pipeline = %job.pipeline, node = %node, rank, service_run = run_id, trigger = job.trigger.kind(), "run started");
    let started = Instant::now();
    let cx = job::Context {
        cache_dir: shared.cache_dir.clone(),
        stop: shared.stop.clone(),
        approved: approved.clone(),
        rank: job.rank,
        database: shared.config.database.clone(),
    };
    let (served2, job2, node2) = (served.clone(), job.clone(), node.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let span = tracing::info_span!("run", pipeline = %job2.pipeline, node = %node2, rank, service_run = run_id);
        span.in_scope(|| job::execute(&served2, cx))
    })
    .await?;
    let mut end = outcome.end;
    if let Some((plan_id, plan)) = &outcome.waiting {
        match shared.db.pending_plan_id(&job.pipeline).await? {
            Some(same) if same == *plan_id => {
                end.message = Some("the same plan already waits for approval".into());
            }
            _ => {
                shared
                    .db
                    .await_approval(run_id, &job.pipeline, plan_id, plan)
                    .await?;
                super::console::keep_waiting_plan(&shared, run_id, plan.clone());
            }
        }
    }
    if let Trigger::Approval { run } = &job.trigger {
        let status = match end.status {
            "stale" => Some("stale"),
            "applied" | "partial" | "no-changes" => Some("applied"),
            _ => None,
        };
        if let Some(status) = status {
            shared.db.set_approval_status(*run, status).await?;
        }
    }
    shared.db.end_run(run_id, &end).await?;
    super::metrics::record_run(&job.pipeline, &end, started.elapsed());
    if let Some(summary) = &outcome.summary {
        super::metrics::record_accounts(&job.pipeline, summary);
    }
    super::metrics::record_changes(&job.pipeline, &outcome.changes);
    tracing::info!(pipeline = %job.pipeline, node = %node, rank, service_run = run_id, status = end.status, "run ended");
    if let Some(event) = outcome.event {
        notify_about(&shared, &served.notify, event, run_id, &job.pipeline, &end);
    }
    if outcome.interrupted {
        // Back to the queue: another node (or this one, restarted) goes on.
        return Err(format!("run {run_id} of {} interrupted by shutdown", job.pipeline).into());
    }
    Ok(end.status.to_string())
}

fn notify_about(
    shared: &Shared,
    names: &[String],
    event: Event,
    run: i64,
    pipeline: &str,
    end: &RunEnd,
) {
    let targets: Vec<_> = names
        .iter()
        .filter_map(|n| shared.config.notify.get(n).cloned())
        .collect();
    if targets.is_empty() {
        return;
    }
    let notice = Notice {
        format: 1,
        event,
        pipeline: pipeline.to_string(),
        run,
        status: end.status.to_string(),
        node: shared.config.node.clone(),
        plan_id: end.plan_id.clone(),
        changes: end.changes,
        failed: end.failed,
        message: end.message.clone(),
    };
    let client = shared.http.clone();
    tokio::spawn(async move { notify::send(&client, &targets, notice).await });
}

/// Enqueues each pipeline's latest tick once: every node does, and the
/// queue's idempotency key keeps one job per tick. A tick missed while
/// every node was down is run once when one comes back, not once per
/// missed tick.
async fn schedule(shared: Shared, quitting: watch::Receiver<bool>) {
    let mut enqueued: BTreeMap<String, i64> = BTreeMap::new();
    let mut pruned = Instant::now() - Duration::from_secs(24 * 3600);
    while !*quitting.borrow() {
        if pruned.elapsed() >= Duration::from_secs(24 * 3600) {
            pruned = Instant::now();
            match shared.db.prune_queue(&shared.config.queue, 30).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("forgot {n} queue job(s) finished over 30 days ago"),
                Err(e) => tracing::warn!("cannot prune the queue: {e}"),
            }
            if let Err(e) = shared.db.prune_plan_rows(30).await {
                tracing::warn!("cannot prune the console's plan rows: {e}");
            }
        }
        let paused = shared.db.paused().await.unwrap_or_default();
        let now = chrono::Utc::now();
        for (name, served) in &shared.config.pipelines {
            let Some(tick) = served.schedule.latest(now) else {
                continue;
            };
            if paused.contains(name) || enqueued.get(name) == Some(&tick) {
                continue;
            }
            let jobs = RunJob::per_rank(name, Trigger::Schedule { tick }, served.pipeline.ranks);
            let mut all = true;
            for job in &jobs {
                if let Err(e) = enqueue(&shared, job).await {
                    tracing::warn!(pipeline = name, "cannot enqueue the tick: {e}");
                    all = false;
                }
            }
            if all {
                enqueued.insert(name.clone(), tick);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a job went into the queue (false: one with its key was there).
pub async fn enqueue(shared: &Shared, job: &RunJob) -> Result<bool, anyhow::Error> {
    enqueue_on(&shared.db, &shared.config.queue, job).await
}

pub async fn enqueue_on(db: &ServiceDb, queue: &str, job: &RunJob) -> Result<bool, anyhow::Error> {
    let args = serde_json::to_vec(job)?;
    let mut task = TaskBuilder::new(args).max_attempts(MAX_ATTEMPTS);
    if let Some(key) = job.key() {
        task = task.idempotency_key(key);
    }
    let mut conn = db.pool.acquire().await?;
    match apalis_postgres::queries::push_tasks(&mut *conn, queue, vec![task.build()]).await {
        Ok(()) => Ok(true),
        Err(apalis_postgres::Error::Database(sqlx::Error::Database(e)))
            if e.code().as_deref() == Some("23505") =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
