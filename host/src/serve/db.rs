//! The service's database: its own records (runs, approvals, tokens, the
//! audit log, paused pipelines) in one schema, and apalis's job queue in
//! the `apalis` schema, both set up (and migrated) by whichever node starts
//! first. Every node, and the `roster approve` / `roster serve token`
//! commands, reach the same records here.

use crate::state::PgLocation;
use anyhow::Context;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/serve");

/// Held while one node sets the database up, so that nodes starting
/// together do not race creating the same extension and schemas.
const SETUP_LOCK: i64 = 0x726f_7374_6572_0001;

#[derive(Clone)]
pub struct ServiceDb {
    pub pool: PgPool,
    pub schema: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A run as the API and `--json` show it.
#[derive(
    Clone, Debug, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct RunRecord {
    pub id: i64,
    pub pipeline: String,
    /// The rank this run applied, for a pipeline split into ranks.
    pub rank: Option<i32>,
    pub trigger: String,
    pub tick: Option<i64>,
    pub node: String,
    pub attempt: i32,
    pub status: String,
    pub plan_id: Option<String>,
    pub changes: Option<i32>,
    pub applied: Option<i32>,
    pub failed: Option<i32>,
    pub message: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

/// How a run ended, as recorded.
#[derive(Clone, Debug, Default)]
pub struct RunEnd {
    pub status: &'static str,
    pub plan_id: Option<String>,
    pub changes: Option<i32>,
    pub applied: Option<i32>,
    pub failed: Option<i32>,
    pub message: Option<String>,
}

/// A plan kept for approval, and what became of it.
#[derive(
    Clone, Debug, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct ApprovalRecord {
    pub run_id: i64,
    pub pipeline: String,
    pub plan_id: String,
    pub status: String,
    pub created_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub comment: Option<String>,
}

/// One write through the API or the CLI.
#[derive(
    Clone, Debug, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema, sqlx::FromRow,
)]
pub struct AuditRecord {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

/// Why a decision on a plan was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("run {0} has no plan waiting for approval")]
    NotFound(i64),
    #[error("run {run}'s plan is {status}, not pending")]
    NotPending { run: i64, status: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The columns of a [`RunRecord`], times as RFC 3339 in UTC.
fn run_columns() -> String {
    format!(
        "id, pipeline, rank, trigger, tick, node, attempt, status, plan_id, changes, applied, failed, message, {}, {}",
        time("started_at"),
        time("ended_at")
    )
}

fn time(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS {column}")
}

impl ServiceDb {
    /// Connects, and sets up or migrates the service's schema and the queue's.
    pub async fn open(url: &str) -> anyhow::Result<ServiceDb> {
        let at = PgLocation::parse(url, "serve")?;
        let shown = at.shown();
        let options = PgConnectOptions::from_str(&at.url)?;
        let schema = at.schema.clone();
        let mut setup = sqlx::PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("connecting to the service database {shown}"))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut setup)
            .await?;
        let prepared = prepare(&mut setup, &options, &schema).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut setup)
            .await;
        setup.close().await.ok();
        prepared.with_context(|| format!("setting up the service database {shown}"))?;
        let search_path = format!("{schema},public");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(options.options([("search_path", search_path.as_str())]))
            .await
            .with_context(|| format!("connecting to the service database {shown}"))?;
        Ok(ServiceDb { pool, schema })
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn begin_run(
        &self,
        job: &super::job::RunJob,
        job_id: &str,
        node: &str,
        attempt: i32,
    ) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO runs (pipeline, trigger, tick, job_id, node, attempt, status, rank) \
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7) RETURNING id",
        )
        .bind(&job.pipeline)
        .bind(job.trigger.kind())
        .bind(job.trigger.tick())
        .bind(job_id)
        .bind(node)
        .bind(attempt)
        .bind(job.rank.map(|r| r as i32))
        .fetch_one(&self.pool)
        .await
    }

    pub async fn end_run(&self, id: i64, end: &RunEnd) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE runs SET status = $2, plan_id = $3, changes = $4, applied = $5, failed = $6, \
             message = $7, ended_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(end.status)
        .bind(&end.plan_id)
        .bind(end.changes)
        .bind(end.applied)
        .bind(end.failed)
        .bind(&end.message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs a dead node left `running` for this job: recorded as interrupted.
    pub async fn end_orphaned_runs(&self, job_id: &str, node: &str) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'interrupted', message = 'the node running it stopped', \
             ended_at = now() WHERE job_id = $1 AND status = 'running' AND node <> $2",
        )
        .bind(job_id)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn runs(&self, pipeline: Option<&str>, limit: i64) -> sqlx::Result<Vec<RunRecord>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM runs WHERE ($1::text IS NULL OR pipeline = $1) \
             ORDER BY id DESC LIMIT $2",
            run_columns()
        )))
        .bind(pipeline)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn run(&self, id: i64) -> sqlx::Result<Option<RunRecord>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM runs WHERE id = $1",
            run_columns()
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a plan that waits for approval; an earlier waiting plan of
    /// the pipeline is superseded (only the newest can still be applied).
    pub async fn await_approval(
        &self,
        run_id: i64,
        pipeline: &str,
        plan_id: &str,
        plan: &str,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE approvals SET status = 'superseded', decided_at = now() \
             WHERE pipeline = $1 AND status = 'pending'",
        )
        .bind(pipeline)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO approvals (run_id, pipeline, plan_id, plan) VALUES ($1, $2, $3, $4)",
        )
        .bind(run_id)
        .bind(pipeline)
        .bind(plan_id)
        .bind(plan)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The plan waiting under `run_id` with the same plan id, if any.
    pub async fn pending_plan_id(&self, pipeline: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT plan_id FROM approvals WHERE pipeline = $1 AND status = 'pending'",
        )
        .bind(pipeline)
        .fetch_optional(&self.pool)
        .await
    }

    /// Approves or rejects a waiting plan, in the audit log in the same
    /// transaction. Returns the pipeline and the approved plan's id.
    pub async fn decide(
        &self,
        run_id: i64,
        approve: bool,
        actor: &str,
        comment: Option<&str>,
    ) -> Result<(String, String), DecideError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT pipeline, plan_id, status FROM approvals WHERE run_id = $1 FOR UPDATE",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DecideError::NotFound(run_id))?;
        let (pipeline, plan_id, status): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if status != "pending" {
            return Err(DecideError::NotPending {
                run: run_id,
                status,
            });
        }
        let decided = if approve { "approved" } else { "rejected" };
        sqlx::query(
            "UPDATE approvals SET status = $2, decided_by = $3, decided_at = now(), comment = $4 \
             WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(decided)
        .bind(actor)
        .bind(comment)
        .execute(&mut *tx)
        .await?;
        let action = if approve { "approve" } else { "reject" };
        audit_in(&mut tx, actor, action, &format!("run {run_id}"), comment).await?;
        tx.commit().await?;
        Ok((pipeline, plan_id))
    }

    /// An approved plan: its pipeline and id, when it is still approved.
    pub async fn approved(&self, run_id: i64) -> sqlx::Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT pipeline, plan_id FROM approvals WHERE run_id = $1 AND status = 'approved'",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn set_approval_status(&self, run_id: i64, status: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE approvals SET status = $2 WHERE run_id = $1")
            .bind(run_id)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn approvals(&self, pending_only: bool) -> sqlx::Result<Vec<ApprovalRecord>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT run_id, pipeline, plan_id, status, {}, decided_by, {}, comment FROM approvals \
             WHERE NOT $1 OR status = 'pending' ORDER BY run_id DESC LIMIT 1000",
            time("created_at"),
            time("decided_at")
        )))
        .bind(pending_only)
        .fetch_all(&self.pool)
        .await
    }

    /// The approval record of run `run_id`, if it kept a plan.
    pub async fn approval(&self, run_id: i64) -> sqlx::Result<Option<ApprovalRecord>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT run_id, pipeline, plan_id, status, {}, decided_by, {}, comment FROM approvals WHERE run_id = $1",
            time("created_at"),
            time("decided_at")
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The plan (JSON) waiting or decided under `run_id`.
    pub async fn approval_plan(&self, run_id: i64) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT plan FROM approvals WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn create_token(&self, name: &str, role: Role, hash: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO tokens (name, role, hash) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(role.as_str())
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        audit_in(
            &mut tx,
            &cli_actor(),
            "token.create",
            name,
            Some(role.as_str()),
        )
        .await?;
        tx.commit().await
    }

    /// Adds console user `name` with `role` and the password hash `phc`.
    pub async fn create_user(&self, name: &str, role: Role, phc: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO console_users (name, role, hash) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(role.as_str())
            .bind(phc)
            .execute(&mut *tx)
            .await?;
        audit_in(
            &mut tx,
            &cli_actor(),
            "user.create",
            name,
            Some(role.as_str()),
        )
        .await?;
        tx.commit().await
    }

    /// Deletes console user `name` (its sessions go with it); whether there was one.
    pub async fn delete_user(&self, name: &str) -> sqlx::Result<bool> {
        self.delete_named("console_users", "user.delete", name)
            .await
    }

    /// The id and password hash of console user `name`.
    pub async fn user(&self, name: &str) -> sqlx::Result<Option<(i64, String)>> {
        sqlx::query_as("SELECT id, hash FROM console_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
    }

    /// Deletes token `name` (its console sessions go with it); whether there was one.
    pub async fn delete_token(&self, name: &str) -> sqlx::Result<bool> {
        self.delete_named("tokens", "token.delete", name).await
    }

    /// Deletes the row named `name` from `table` (tokens or console users;
    /// their sessions go with it), audit-logged as `action`.
    async fn delete_named(&self, table: &str, action: &str, name: &str) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE name = $1"
        )))
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if gone > 0 {
            audit_in(&mut tx, &cli_actor(), action, name, None).await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// The name and role of the token with this hash.
    pub async fn token(&self, hash: &str) -> sqlx::Result<Option<(String, Role)>> {
        let row = sqlx::query(
            "UPDATE tokens SET last_used_at = now() WHERE hash = $1 RETURNING name, role",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            let name: String = r.try_get(0).ok()?;
            let role: String = r.try_get(1).ok()?;
            Some((name, Role::parse(&role)?))
        }))
    }

    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        audit_in(&mut tx, actor, action, target, detail).await?;
        tx.commit().await
    }

    pub async fn audit_log(&self, limit: i64) -> sqlx::Result<Vec<AuditRecord>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {}, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT $1",
            time("at")
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn set_paused(&self, pipeline: &str, paused: bool, actor: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        match paused {
            true => sqlx::query(
                "INSERT INTO paused (pipeline, paused_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(pipeline)
            .bind(actor)
            .execute(&mut *tx)
            .await?,
            false => {
                sqlx::query("DELETE FROM paused WHERE pipeline = $1")
                    .bind(pipeline)
                    .execute(&mut *tx)
                    .await?
            }
        };
        let action = if paused { "pause" } else { "resume" };
        audit_in(&mut tx, actor, action, pipeline, None).await?;
        tx.commit().await
    }

    pub async fn paused(&self) -> sqlx::Result<std::collections::BTreeSet<String>> {
        let names: Vec<String> = sqlx::query_scalar("SELECT pipeline FROM paused")
            .fetch_all(&self.pool)
            .await?;
        Ok(names.into_iter().collect())
    }

    /// Forgets finished queue jobs older than `days`: a node only ever
    /// enqueues the latest tick, so older idempotency keys guard nothing,
    /// and the runs table keeps the history.
    pub async fn prune_queue(&self, queue: &str, days: i32) -> sqlx::Result<u64> {
        let done = sqlx::query(
            "DELETE FROM apalis.jobs WHERE job_type = $1 AND status IN ('Done', 'Killed') \
             AND done_at < now() - make_interval(days => $2)",
        )
        .bind(queue)
        .bind(days)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Drops the console's rows of plans decided over `days` ago (their
    /// plan stays, read whole when asked for); how many plans.
    pub async fn prune_plan_rows(&self, days: i32) -> sqlx::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let old = "SELECT run_id FROM approvals WHERE status <> 'pending' AND head IS NOT NULL \
                   AND coalesce(decided_at, created_at) < now() - make_interval(days => $1)";
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM approval_rows WHERE run_id IN ({old})"
        )))
        .bind(days)
        .execute(&mut *tx)
        .await?;
        let plans = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE approvals SET head = NULL WHERE run_id IN ({old})"
        )))
        .bind(days)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(plans.rows_affected())
    }

    /// Runs waiting in the queue (not yet claimed by a node).
    pub async fn queue_depth(&self, queue: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND (status = 'Pending' \
             OR (status = 'Failed' AND attempts < max_attempts))",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await
    }
}

/// Who a command run at this terminal acts as, in the audit log.
pub fn cli_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("cli:{user}@{host}")
}

async fn audit_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &str,
    action: &str,
    target: &str,
    detail: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO audit (actor, action, target, detail) VALUES ($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The extension, the queue's schema and migrations, then ours; each
/// `_sqlx_migrations` table lives in the schema it migrates.
async fn prepare(
    setup: &mut sqlx::PgConnection,
    options: &PgConnectOptions,
    schema: &str,
) -> anyhow::Result<()> {
    // hstore in public, so that both search paths below find its type
    // (apalis would otherwise create it in the first schema of its path).
    sqlx::query("CREATE EXTENSION IF NOT EXISTS hstore SCHEMA public")
        .execute(&mut *setup)
        .await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS apalis")
        .execute(&mut *setup)
        .await?;
    // The name was checked to be [a-z0-9_]{1,63} (PgLocation::parse).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
    )))
    .execute(&mut *setup)
    .await?;
    let mut queue = sqlx::PgConnection::connect_with(
        &options.clone().options([("search_path", "apalis,public")]),
    )
    .await?;
    apalis_postgres::PostgresStorage::migrations()
        .run(&mut queue)
        .await
        .context("the job queue's migrations")?;
    queue.close().await.ok();
    let path = format!("{schema},public");
    let mut own = sqlx::PgConnection::connect_with(
        &options.clone().options([("search_path", path.as_str())]),
    )
    .await?;
    MIGRATOR
        .run(&mut own)
        .await
        .context("the service's migrations")?;
    own.close().await.ok();
    Ok(())
}
