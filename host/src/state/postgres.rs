//! The shared state on PostgreSQL, for several `roster` processes (and
//! nodes) on one state: the same tables as the SQLite file, one schema per
//! pipeline, created and brought up to date by versioned migrations
//! (`host/migrations/postgres/`, sqlx's migrator, which holds an advisory
//! lock while it runs, so nodes starting together migrate once).
//!
//! The [`StateStore`] trait is synchronous (the SQLite store blocks too);
//! sqlx is asynchronous. Each call runs on this store's own small runtime
//! and the caller waits for it, so the store works from inside the CLI's
//! runtime and from plain threads alike.

use super::link_row::{self, LinkRow};
use super::*;
use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, Transaction};
use std::future::Future;
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgStore {
    runtime: Worker,
    pool: PgPool,
    schema: String,
}

/// The store's own small runtime. A runtime may not be dropped (it blocks)
/// inside another one, as any error path in the CLI would: it is shut down
/// in the background instead.
struct Worker(Option<tokio::runtime::Runtime>);

impl Worker {
    fn start(name: &str) -> anyhow::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .context("starting the state store's runtime")?;
        Ok(Worker(Some(runtime)))
    }

    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("a runtime until dropped")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Where a pipeline's state lives on a server: the URL without its
/// `schema` parameter, and the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgLocation {
    pub url: String,
    pub schema: String,
}

impl PgLocation {
    /// `postgres://…[?schema=NAME]`; without `schema`, `default_schema`.
    /// The URL may hold a password: it is never shown ([`Self::shown`]).
    pub fn parse(url: &str, default_schema: &str) -> anyhow::Result<PgLocation> {
        let mut parsed = reqwest::Url::parse(url).context("not a URL")?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            anyhow::bail!("scheme `{}` is not postgres://", parsed.scheme());
        }
        let mut schema = None;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| match k.as_ref() {
                "schema" => {
                    schema = Some(v.into_owned());
                    None
                }
                _ => Some((k.into_owned(), v.into_owned())),
            })
            .collect();
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
        let schema = schema.unwrap_or_else(|| schema_name(default_schema));
        if schema.is_empty()
            || schema.len() > 63
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            anyhow::bail!("schema `{schema}` must be 1–63 characters of a–z, 0–9 and _");
        }
        Ok(PgLocation {
            url: parsed.to_string(),
            schema,
        })
    }

    pub fn has_password(&self) -> bool {
        reqwest::Url::parse(&self.url).is_ok_and(|u| u.password().is_some())
    }

    /// Registers the URL's password (if any) with `redactor`: it never
    /// shows in an error or a log.
    pub fn redact_password(&self, redactor: &crate::runtime::Redactor) {
        if let Some(password) = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.password().map(str::to_string))
        {
            redactor.add(&password);
            if let Ok(decoded) = urlencoding_decode(&password) {
                redactor.add(&decoded);
            }
        }
    }

    /// The URL as it may be shown: no user or password.
    pub fn shown(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                format!("{u} (schema {})", self.schema)
            }
            Err(_) => format!("postgres (schema {})", self.schema),
        }
    }
}

/// A percent-encoded URL part, decoded.
fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match u8::from_str_radix(&String::from_utf8_lossy(hex), 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// A pipeline name as a schema name: `roster_` and the name's letters and
/// digits, lower case, other characters as `_`.
pub fn schema_name(pipeline: &str) -> String {
    let body: String = pipeline
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .take(55)
        .collect();
    format!("roster_{body}")
}

fn store_error(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError(e.into())
}

impl PgStore {
    /// Connects, creates the schema if needed and runs the migrations.
    pub fn open(location: &PgLocation) -> Result<PgStore> {
        let runtime = Worker::start("roster-state")?;
        let shown = location.shown();
        let options = PgConnectOptions::from_str(&location.url)
            .map_err(|e| anyhow::anyhow!("state {shown}: {e}"))?;
        let schema = location.schema.clone();
        let opened = wait(runtime.get(), async move {
            // One connection first, not a pool: a server that refuses is
            // said at once rather than retried until a timeout.
            use sqlx::Connection;
            let mut setup = sqlx::PgConnection::connect_with(&options).await?;
            // Several processes may open a new state at once (the ranks of
            // a pipeline under `roster serve`): CREATE SCHEMA IF NOT EXISTS
            // is not safe against itself, so one at a time sets it up.
            let setup_key = lock_key(&format!("setup {schema}"));
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(setup_key)
                .execute(&mut setup)
                .await?;
            let prepared = async {
                // The name was checked to be [a-z0-9_]{1,63} (PgLocation::parse).
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
                )))
                .execute(&mut setup)
                .await?;
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(std::time::Duration::from_secs(30))
                    .connect_with(options.options([("search_path", schema.as_str())]))
                    .await?;
                MIGRATOR.run(&pool).await?;
                Ok::<_, anyhow::Error>(pool)
            }
            .await;
            // Closing the session releases the lock.
            setup.close().await?;
            prepared
        });
        let pool = opened
            .and_then(|r| r)
            .with_context(|| format!("opening state {shown}"))?;
        Ok(PgStore {
            runtime,
            pool,
            schema: location.schema.clone(),
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs `f` with the pool on the store's runtime and waits for it.
    pub(super) fn run<T, F>(&self, f: impl FnOnce(PgPool) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        wait(self.runtime.get(), f(self.pool.clone()))
            .map_err(store_error)?
            .map_err(|e| store_error(anyhow::Error::from(e).context("the state database")))
    }

    /// Drops this pipeline's schema with everything in it (tests, and
    /// `state migrate` onto a schema it just made).
    pub fn drop_schema(self) -> Result<()> {
        let schema = self.schema.clone();
        self.run(|pool| async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&pool)
            .await?;
            Ok(())
        })
    }
}

/// Waits for `future` on `runtime` from any thread, inside another runtime
/// or not.
fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> anyhow::Result<T> {
    let handle = runtime.spawn(future);
    futures::executor::block_on(handle)
        .map_err(|e| anyhow::anyhow!("the state store's worker stopped: {e}"))
}

fn link_row(r: &PgRow) -> Result<(LinkRow, Option<String>), sqlx::Error> {
    Ok((
        LinkRow {
            source_key: r.try_get(0)?,
            source_email: r.try_get(1)?,
            target_id: r.try_get(2)?,
            how: r.try_get(3)?,
            options: r.try_get(4)?,
            updated_at_ms: r.try_get(5)?,
            overrides: r.try_get(6)?,
        },
        r.try_get(7)?,
    ))
}

/// Links in two statements, however many (a batch of creates, or one).
async fn upsert_links(
    tx: &mut Transaction<'static, sqlx::Postgres>,
    links: &[StoredLink],
) -> Result<(), sqlx::Error> {
    if links.is_empty() {
        return Ok(());
    }
    let rows: Vec<LinkRow> = links.iter().map(LinkRow::of).collect();
    let text = |f: fn(&LinkRow) -> String| -> Vec<String> { rows.iter().map(f).collect() };
    // The last edit of a source in the batch wins, as one by one would.
    sqlx::query(
        "INSERT INTO links (source_key, source_email, target_id, how, options, updated_at_ms, overrides, checksum)
         SELECT DISTINCT ON (k) k, e, t, h, o, u, v, c
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
              WITH ORDINALITY AS r(k, e, t, h, o, u, v, c, n)
         ORDER BY k, n DESC
         ON CONFLICT (source_key) DO UPDATE SET source_email = excluded.source_email, target_id = excluded.target_id,
         how = excluded.how, options = excluded.options, updated_at_ms = excluded.updated_at_ms,
         overrides = excluded.overrides, checksum = excluded.checksum",
    )
    .bind(text(|r| r.source_key.clone()))
    .bind(text(|r| r.source_email.clone()))
    .bind(text(|r| r.target_id.clone()))
    .bind(text(|r| r.how.clone()))
    .bind(text(|r| r.options.clone()))
    .bind(rows.iter().map(|r| r.updated_at_ms).collect::<Vec<i64>>())
    .bind(text(|r| r.overrides.clone()))
    .bind(text(|r| r.checksum()))
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM unlinked WHERE source_key = ANY($1)")
        .bind(text(|r| r.source_key.clone()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_memo(
    tx: &mut Transaction<'static, sqlx::Postgres>,
    connector: &str,
    writes: &[MemoWrite],
) -> Result<(), sqlx::Error> {
    let now = now_ms() as i64;
    for (key, value) in writes {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO memo (connector, key, value, updated_at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
                )
                .bind(connector)
                .bind(key)
                .bind(v)
                .bind(now)
                .execute(&mut **tx)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM memo WHERE connector = $1 AND key = $2")
                    .bind(connector)
                    .bind(key)
                    .execute(&mut **tx)
                    .await?
            }
        };
    }
    Ok(())
}

/// What a `record` writes, owned, to move onto the store's runtime.
struct OwnedOutcome {
    plan_id: String,
    key: String,
    account: String,
    status: JournalStatus,
    target_id: Option<String>,
    error: Option<String>,
}

impl StateStore for PgStore {
    fn links_as_stored(&self) -> Result<(Vec<StoredLink>, Vec<String>)> {
        let rows = self.run(|pool| async move {
            let rows = sqlx::query("SELECT source_key, source_email, target_id, how, options, updated_at_ms, overrides, checksum FROM links ORDER BY source_email")
            .fetch_all(&pool)
            .await?;
            rows.iter().map(link_row).collect::<Result<Vec<_>, _>>()
        })?;
        Ok(link_row::checked(rows)?)
    }

    fn accept_link_edits(&mut self) -> Result<Vec<String>> {
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query("SELECT source_key, source_email, target_id, how, options, updated_at_ms, overrides, checksum FROM links")
                .fetch_all(&mut *tx)
                .await?;
            let mut accepted = Vec::new();
            for r in &rows {
                let (row, stored) = link_row(r)?;
                if let Some(sum) = row.reseal(stored.as_deref()) {
                    sqlx::query("UPDATE links SET checksum = $1 WHERE source_key = $2")
                        .bind(&sum)
                        .bind(&row.source_key)
                        .execute(&mut *tx)
                        .await?;
                    accepted.push(row.source_email);
                }
            }
            tx.commit().await?;
            Ok(accepted)
        })
    }

    fn upsert_link(&mut self, link: &StoredLink) -> Result<()> {
        let link = link.clone();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            upsert_links(&mut tx, std::slice::from_ref(&link)).await?;
            tx.commit().await
        })
    }

    fn remove_link(&mut self, source_key: &str) -> Result<()> {
        let key = source_key.to_string();
        self.run(|pool| async move {
            sqlx::query("DELETE FROM links WHERE source_key = $1")
                .bind(key)
                .execute(&pool)
                .await?;
            Ok(())
        })
    }

    fn begin_run(&mut self, command: &str, plan_id: &str) -> Result<i64> {
        let (command, plan_id) = (command.to_string(), plan_id.to_string());
        self.run(|pool| async move {
            sqlx::query_scalar(
                "INSERT INTO runs (command, plan_id, started_at_ms) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(command)
            .bind(plan_id)
            .bind(now_ms() as i64)
            .fetch_one(&pool)
            .await
        })
    }

    fn finish_run(&mut self, run: i64, applied: u64, failed: u64, outcome: &str) -> Result<()> {
        let outcome = outcome.to_string();
        self.run(|pool| async move {
            sqlx::query(
                "UPDATE runs SET finished_at_ms = $2, applied = $3, failed = $4, outcome = $5 WHERE id = $1",
            )
            .bind(run)
            .bind(now_ms() as i64)
            .bind(applied as i64)
            .bind(failed as i64)
            .bind(outcome)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT id, command, plan_id, started_at_ms, finished_at_ms, applied, failed, outcome FROM runs ORDER BY id DESC LIMIT $1",
            )
            .bind(limit as i64)
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(RunRecord {
                        id: r.try_get(0)?,
                        command: r.try_get(1)?,
                        plan_id: r.try_get(2)?,
                        started_at_ms: r.try_get::<i64, _>(3)? as u64,
                        finished_at_ms: r.try_get::<Option<i64>, _>(4)?.map(|v| v as u64),
                        applied: r.try_get::<i64, _>(5)? as u64,
                        failed: r.try_get::<i64, _>(6)? as u64,
                        outcome: r.try_get(7)?,
                    })
                })
                .collect()
        })
    }

    fn end_abandoned_runs(&mut self) -> Result<usize> {
        self.run(|pool| async move {
            let done = sqlx::query(
                "UPDATE runs SET outcome = 'interrupted', finished_at_ms = $1,
                    applied = (SELECT count(*) FROM journal j WHERE j.plan_id = runs.plan_id AND j.status = 'applied'),
                    failed = (SELECT count(*) FROM journal j WHERE j.plan_id = runs.plan_id AND j.status = 'failed')
                 WHERE outcome = 'running'",
            )
            .bind(now_ms() as i64)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() as usize)
        })
    }

    fn identity(&self) -> Result<Option<PipelineIdentity>> {
        self.run(|pool| async move {
            let row = sqlx::query("SELECT name, source, target FROM pipeline WHERE one = 1")
                .fetch_optional(&pool)
                .await?;
            row.map(|r| {
                Ok(PipelineIdentity {
                    name: r.try_get(0)?,
                    source: r.try_get(1)?,
                    target: r.try_get(2)?,
                })
            })
            .transpose()
        })
    }

    fn set_identity(&mut self, id: &PipelineIdentity) -> Result<()> {
        let id = id.clone();
        self.run(|pool| async move {
            sqlx::query(
                "INSERT INTO pipeline (one, name, source, target) VALUES (1, $1, $2, $3)
                 ON CONFLICT (one) DO UPDATE SET name = $1, source = $2, target = $3",
            )
            .bind(id.name)
            .bind(id.source)
            .bind(id.target)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn is_fresh(&self) -> Result<bool> {
        let used: i64 = self.run(|pool| async move {
            sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM links) + (SELECT count(*) FROM link_edits)",
            )
            .fetch_one(&pool)
            .await
        })?;
        Ok(used == 0 && self.identity()?.is_none())
    }

    fn journal_open(&mut self, plan_id: &str, keys: &[(&str, &str)]) -> Result<()> {
        let plan_id = plan_id.to_string();
        let (k, a): (Vec<String>, Vec<String>) = keys
            .iter()
            .map(|(k, a)| (k.to_string(), a.to_string()))
            .unzip();
        self.run(|pool| async move {
            sqlx::query(
                "INSERT INTO journal (plan_id, key, account, status, updated_at_ms)
                 SELECT $1, k, a, 'pending', $4 FROM UNNEST($2::text[], $3::text[]) AS t(k, a)
                 ON CONFLICT (plan_id, key) DO NOTHING",
            )
            .bind(plan_id)
            .bind(k)
            .bind(a)
            .bind(now_ms() as i64)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn journal(&self, plan_id: &str) -> Result<HashMap<String, JournalEntry>> {
        let plan_id = plan_id.to_string();
        self.run(|pool| async move {
            let rows = sqlx::query("SELECT key, status, target_id FROM journal WHERE plan_id = $1")
                .bind(plan_id)
                .fetch_all(&pool)
                .await?;
            let mut out = HashMap::new();
            for r in rows {
                let status: String = r.try_get(1)?;
                let status = JournalStatus::parse(&status).unwrap_or(JournalStatus::Pending);
                out.insert(
                    r.try_get(0)?,
                    JournalEntry {
                        status,
                        target_id: r.try_get(2)?,
                    },
                );
            }
            Ok(out)
        })
    }

    fn journal_rows(&self, plan_id: &str, account: Option<&str>) -> Result<Vec<JournalRow>> {
        let plan_id = plan_id.to_string();
        let account = account.map(str::to_string);
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT key, account, status, target_id, error FROM journal WHERE plan_id = $1 \
                 AND ($2::text IS NULL OR lower(account) = lower($2)) ORDER BY key COLLATE \"C\"",
            )
            .bind(plan_id)
            .bind(account)
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get(2)?;
                    Ok(JournalRow {
                        key: r.try_get(0)?,
                        account: r.try_get(1)?,
                        status: JournalStatus::parse(&status).unwrap_or(JournalStatus::Pending),
                        target_id: r.try_get(3)?,
                        error: r.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn record(
        &mut self,
        outcomes: &[Outcome],
        links: &[StoredLink],
        memo: Option<MemoUpdate>,
    ) -> Result<()> {
        let outcomes: Vec<OwnedOutcome> = outcomes
            .iter()
            .map(|o| OwnedOutcome {
                plan_id: o.plan_id.to_string(),
                key: o.key.to_string(),
                account: o.account.to_string(),
                status: o.status,
                target_id: o.target_id.map(str::to_string),
                error: o.error.map(str::to_string),
            })
            .collect();
        let links = links.to_vec();
        let memo = memo.map(|m| (m.connector.to_string(), m.writes.to_vec()));
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let now = now_ms() as i64;
            // One statement per kind of write, not per outcome: a batch is
            // a few round trips to the server whatever its size.
            let column = |f: fn(&OwnedOutcome) -> Option<String>| -> Vec<Option<String>> {
                outcomes.iter().map(f).collect()
            };
            sqlx::query(
                "INSERT INTO journal (plan_id, key, account, status, target_id, error, updated_at_ms)
                 SELECT p, k, a, s, t, e, $7
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(p, k, a, s, t, e)
                 ON CONFLICT (plan_id, key) DO UPDATE SET status = excluded.status, target_id = excluded.target_id,
                 error = excluded.error, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(column(|o| Some(o.plan_id.clone())))
            .bind(column(|o| Some(o.key.clone())))
            .bind(column(|o| Some(o.account.clone())))
            .bind(column(|o| Some(o.status.as_str().to_string())))
            .bind(column(|o| o.target_id.clone()))
            .bind(column(|o| o.error.clone()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // Each account's last error: set by a failure, cleared by success
            // (the last outcome of an account in the batch decides).
            let mut last: HashMap<&str, &OwnedOutcome> = HashMap::new();
            for o in &outcomes {
                last.insert(o.account.as_str(), o);
            }
            let (mut failed, mut keys, mut messages, mut cleared) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for o in last.values() {
                match (o.status, &o.error) {
                    (JournalStatus::Failed | JournalStatus::Skipped, Some(e)) => {
                        failed.push(o.account.clone());
                        keys.push(o.key.clone());
                        messages.push(e.clone());
                    }
                    (JournalStatus::Applied, _) => cleared.push(o.account.clone()),
                    _ => {}
                }
            }
            sqlx::query(
                "INSERT INTO account_errors (account, change_key, message, at_ms)
                 SELECT a, k, m, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(a, k, m)
                 ON CONFLICT (account) DO UPDATE SET change_key = excluded.change_key, message = excluded.message, at_ms = excluded.at_ms",
            )
            .bind(failed)
            .bind(keys)
            .bind(messages)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM account_errors WHERE account = ANY($1)")
                .bind(cleared)
                .execute(&mut *tx)
                .await?;
            upsert_links(&mut tx, &links).await?;
            if let Some((connector, writes)) = &memo {
                write_memo(&mut tx, connector, writes).await?;
            }
            tx.commit().await
        })
    }

    fn mark_sent(&mut self, plan_id: &str, keys: &[&str]) -> Result<()> {
        let plan_id = plan_id.to_string();
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        self.run(|pool| async move {
            sqlx::query(
                "UPDATE journal SET status = 'sent', updated_at_ms = $3 WHERE plan_id = $1 AND key = ANY($2)",
            )
            .bind(plan_id)
            .bind(keys)
            .bind(now_ms() as i64)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn link_edits(&self) -> Result<Vec<LinkEdit>> {
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT source, target_id, options, staged_at_ms, options_only FROM link_edits ORDER BY source",
            )
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let options: String = r.try_get(2)?;
                    Ok(LinkEdit {
                        source: r.try_get(0)?,
                        target_id: r.try_get(1)?,
                        options: serde_json::from_str(&options).unwrap_or_default(),
                        staged_at_ms: r.try_get::<i64, _>(3)? as u64,
                        options_only: r.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn stage_link_edit(&mut self, edit: &LinkEdit) -> Result<()> {
        let edit = edit.clone();
        let options = serde_json::to_string(&edit.options)?;
        self.run(|pool| async move {
            sqlx::query(
                "INSERT INTO link_edits (source, target_id, options, staged_at_ms, options_only) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (source) DO UPDATE SET target_id = excluded.target_id, options = excluded.options,
                 staged_at_ms = excluded.staged_at_ms, options_only = excluded.options_only",
            )
            .bind(edit.source)
            .bind(edit.target_id)
            .bind(options)
            .bind(edit.staged_at_ms as i64)
            .bind(edit.options_only)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn unstage_link_edit(&mut self, source: &str) -> Result<bool> {
        let source = source.to_string();
        self.run(|pool| async move {
            let done = sqlx::query("DELETE FROM link_edits WHERE source = $1")
                .bind(source)
                .execute(&pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn unlinked(&self) -> Result<Vec<Unlinked>> {
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT source_key, source_email, target_id, at_ms FROM unlinked ORDER BY source_email",
            )
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Unlinked {
                        source_key: r.try_get(0)?,
                        source_email: r.try_get(1)?,
                        target_id: r.try_get(2)?,
                        at_ms: r.try_get::<i64, _>(3)? as u64,
                    })
                })
                .collect()
        })
    }

    fn carry_out_link_edits(
        &mut self,
        links: &[StoredLink],
        unlinks: &[Unlinked],
        edits_done: &[String],
    ) -> Result<()> {
        let (links, unlinks, edits_done) = (links.to_vec(), unlinks.to_vec(), edits_done.to_vec());
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            upsert_links(&mut tx, &links).await?;
            for u in &unlinks {
                sqlx::query("DELETE FROM links WHERE source_key = $1")
                    .bind(&u.source_key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO unlinked (source_key, source_email, target_id, at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (source_key) DO UPDATE SET source_email = excluded.source_email,
                     target_id = excluded.target_id, at_ms = excluded.at_ms",
                )
                .bind(&u.source_key)
                .bind(&u.source_email)
                .bind(&u.target_id)
                .bind(u.at_ms as i64)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM link_edits WHERE source = ANY($1)")
                .bind(&edits_done)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
    }

    fn account_errors(&self) -> Result<Vec<AccountError>> {
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT account, change_key, message, at_ms FROM account_errors ORDER BY account",
            )
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AccountError {
                        account: r.try_get(0)?,
                        change: r.try_get(1)?,
                        message: r.try_get(2)?,
                        at_ms: r.try_get::<i64, _>(3)? as u64,
                    })
                })
                .collect()
        })
    }

    fn memo(&self, connector: &str) -> Result<BTreeMap<String, String>> {
        let connector = connector.to_string();
        self.run(|pool| async move {
            let rows = sqlx::query("SELECT key, value FROM memo WHERE connector = $1")
                .bind(connector)
                .fetch_all(&pool)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    fn save_memo(&mut self, memo: MemoUpdate) -> Result<()> {
        if memo.writes.is_empty() {
            return Ok(());
        }
        let (connector, writes) = (memo.connector.to_string(), memo.writes.to_vec());
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            write_memo(&mut tx, &connector, &writes).await?;
            tx.commit().await
        })
    }

    fn source_snapshot(
        &self,
        connector: &str,
        fingerprint: &str,
    ) -> Result<Option<SourceSnapshot>> {
        let (connector, fingerprint) = (connector.to_string(), fingerprint.to_string());
        let found = self.run(|pool| async move {
            let watermark: Option<String> = sqlx::query_scalar(
                "SELECT watermark FROM source_reads WHERE connector = $1 AND fingerprint = $2",
            )
            .bind(&connector)
            .bind(&fingerprint)
            .fetch_optional(&pool)
            .await?;
            let Some(watermark) = watermark else {
                return Ok(None);
            };
            let accounts: Vec<String> =
                sqlx::query_scalar("SELECT account FROM source_accounts WHERE connector = $1")
                    .bind(&connector)
                    .fetch_all(&pool)
                    .await?;
            Ok(Some((watermark, accounts)))
        })?;
        let Some((watermark, rows)) = found else {
            return Ok(None);
        };
        Ok(Some(SourceSnapshot::parse(watermark, rows)?))
    }

    fn save_source_snapshot(
        &mut self,
        connector: &str,
        fingerprint: &str,
        watermark: Option<&str>,
        change: SnapshotChange,
    ) -> Result<()> {
        let (replace, upserts, removed) = match change {
            SnapshotChange::Replace(all) => (true, all, &[][..]),
            SnapshotChange::Patch { upserts, removed } => (false, upserts, removed),
        };
        let (ids, bodies): (Vec<String>, Vec<String>) = upserts
            .iter()
            .map(|a| Ok((a.id.clone(), serde_json::to_string(a)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?
            .into_iter()
            .unzip();
        let removed = removed.to_vec();
        let (connector, fingerprint) = (connector.to_string(), fingerprint.to_string());
        let watermark = watermark.map(str::to_string);
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let Some(watermark) = watermark else {
                for forget in [
                    "DELETE FROM source_reads WHERE connector = $1",
                    "DELETE FROM source_accounts WHERE connector = $1",
                ] {
                    sqlx::query(forget).bind(&connector).execute(&mut *tx).await?;
                }
                return tx.commit().await;
            };
            if replace {
                sqlx::query("DELETE FROM source_accounts WHERE connector = $1")
                    .bind(&connector)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO source_accounts (connector, id, account)
                 SELECT $1, i, a FROM UNNEST($2::text[], $3::text[]) AS t(i, a)
                 ON CONFLICT (connector, id) DO UPDATE SET account = excluded.account",
            )
            .bind(&connector)
            .bind(ids)
            .bind(bodies)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM source_accounts WHERE connector = $1 AND id = ANY($2)")
                .bind(&connector)
                .bind(removed)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO source_reads (connector, fingerprint, watermark, updated_at_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (connector) DO UPDATE SET fingerprint = excluded.fingerprint,
                 watermark = excluded.watermark, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(&connector)
            .bind(fingerprint)
            .bind(watermark)
            .bind(now_ms() as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }
}

/// A pipeline's run lock on the server: a session advisory lock held on a
/// connection of its own, so the server releases it when this process ends
/// (or its node dies and the connection drops), however it ends.
pub struct ServerLock {
    runtime: Worker,
    conn: Option<sqlx::PgConnection>,
}

/// The advisory lock's key: from the schema, so each pipeline has its own.
fn lock_key(schema: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("roster run lock {schema}").as_bytes());
    i64::from_be_bytes(d[..8].try_into().unwrap_or_default())
}

impl ServerLock {
    /// Takes the lock of the state at `at`, opened before (every caller
    /// holds the store it is about to write).
    /// With `rank`, the state's lock is taken shared (other ranks may hold
    /// it too; a whole apply may not) and the rank's own exclusively.
    pub fn acquire(
        at: &PgLocation,
        me: &super::lock::Holder,
        rank: Option<u32>,
    ) -> Result<ServerLock, super::lock::LockError> {
        use super::lock::{Holder, LockError};
        use sqlx::Connection;
        let failed = |e: anyhow::Error| LockError::Server {
            at: at.shown(),
            message: format!("{e:#}"),
        };
        // The schema and its run_lock table exist: the caller opened the
        // store (which migrates) before asking for its lock.
        let runtime = Worker::start("roster-lock").map_err(failed)?;
        let options = PgConnectOptions::from_str(&at.url)
            .map_err(|e| failed(e.into()))?
            .options([("search_path", at.schema.as_str())]);
        let key = lock_key(&at.schema);
        let rank_key = rank.map(|r| lock_key(&format!("{}#rank{r}", at.schema)));
        let (pid, host, since) = (me.pid.clone(), me.host.clone(), me.since_ms as i64);
        let taken = wait(runtime.get(), async move {
            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
            let got: bool = match rank_key {
                None => {
                    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                        .bind(key)
                        .fetch_one(&mut conn)
                        .await?
                }
                Some(own) => {
                    sqlx::query_scalar(
                        "SELECT pg_try_advisory_lock_shared($1) AND pg_try_advisory_lock($2)",
                    )
                    .bind(key)
                    .bind(own)
                    .fetch_one(&mut conn)
                    .await?
                }
            };
            if !got {
                let holder = sqlx::query("SELECT pid, host, since_ms FROM run_lock WHERE one = 1")
                    .fetch_optional(&mut conn)
                    .await?;
                let holder = match holder {
                    Some(r) => Holder {
                        pid: r.try_get(0)?,
                        host: r.try_get(1)?,
                        since_ms: r.try_get::<i64, _>(2)? as u64,
                    },
                    None => Holder {
                        pid: "?".into(),
                        host: "?".into(),
                        since_ms: 0,
                    },
                };
                return Ok::<_, sqlx::Error>(Err(holder));
            }
            sqlx::query(
                "INSERT INTO run_lock (one, pid, host, since_ms) VALUES (1, $1, $2, $3)
                 ON CONFLICT (one) DO UPDATE SET pid = excluded.pid, host = excluded.host, since_ms = excluded.since_ms",
            )
            .bind(pid)
            .bind(host)
            .bind(since)
            .execute(&mut conn)
            .await?;
            Ok(Ok(conn))
        })
        .map_err(failed)?
        .map_err(|e| failed(e.into()))?;
        match taken {
            Ok(conn) => Ok(ServerLock {
                runtime,
                conn: Some(conn),
            }),
            Err(holder) => Err(LockError::Held(holder)),
        }
    }
}

impl Drop for ServerLock {
    fn drop(&mut self) {
        // Closing the session releases the advisory lock.
        if let Some(conn) = self.conn.take() {
            let _ = wait(self.runtime.get(), async move {
                use sqlx::Connection;
                conn.close().await
            });
        }
    }
}
