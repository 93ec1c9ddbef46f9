//! A plan as rows, each of one kind (a change by its action, a link, an
//! unlink, an account skipped), to page and search: in memory for a plan the
//! node holds, or in the service database (`approval_rows`) for a plan kept
//! for approval, so that any node opens a page of a 100,000-change plan with
//! one query instead of reading the plan whole.

use crate::plan::{Plan, PlannedChange, PlannedLink, PlannedUnlink, Skipped};
use crate::serve::node::Shared;
use sqlx::Row as _;
use std::collections::BTreeMap;

use super::page::PAGE;

/// Rows written to the database in one statement.
const CHUNK: usize = 5000;

/// A row of a plan, owned (a page of it).
#[derive(Clone, Debug)]
pub enum Row {
    Change(Box<PlannedChange>),
    Link(PlannedLink),
    Unlink(PlannedUnlink),
    Skipped(Skipped),
}

/// A row of a plan, borrowed from it.
#[derive(Clone, Copy)]
enum RowRef<'a> {
    Change(&'a PlannedChange),
    Link(&'a PlannedLink),
    Unlink(&'a PlannedUnlink),
    Skipped(&'a Skipped),
}

impl RowRef<'_> {
    fn kind(self) -> &'static str {
        match self {
            RowRef::Change(c) => c.action.as_str(),
            RowRef::Link(_) => "link",
            RowRef::Unlink(_) => "unlink",
            RowRef::Skipped(_) => "skipped",
        }
    }

    /// What a search looks in, lower case: address, key, target id.
    fn search(self) -> String {
        match self {
            RowRef::Change(c) => format!("{} {}", c.email, c.source_key.as_deref().unwrap_or("")),
            RowRef::Link(l) => format!(
                "{} {} {}",
                l.source_email,
                l.source_key,
                l.target_id.as_deref().unwrap_or("")
            ),
            RowRef::Unlink(u) => format!("{} {}", u.source_email, u.source_key),
            RowRef::Skipped(s) => s.account.clone(),
        }
        .to_lowercase()
    }

    fn body(self) -> String {
        match self {
            RowRef::Change(c) => serde_json::to_string(c),
            RowRef::Link(l) => serde_json::to_string(l),
            RowRef::Unlink(u) => serde_json::to_string(u),
            RowRef::Skipped(s) => serde_json::to_string(s),
        }
        .unwrap_or_default()
    }

    fn owned(self) -> Row {
        match self {
            RowRef::Change(c) => Row::Change(Box::new(c.clone())),
            RowRef::Link(l) => Row::Link(l.clone()),
            RowRef::Unlink(u) => Row::Unlink(u.clone()),
            RowRef::Skipped(s) => Row::Skipped(s.clone()),
        }
    }
}

impl Row {
    /// A row as `body` keeps it, read back by its kind.
    fn read(kind: &str, body: &str) -> Option<Row> {
        Some(match kind {
            "link" => Row::Link(serde_json::from_str(body).ok()?),
            "unlink" => Row::Unlink(serde_json::from_str(body).ok()?),
            "skipped" => Row::Skipped(serde_json::from_str(body).ok()?),
            _ => Row::Change(Box::new(serde_json::from_str(body).ok()?)),
        })
    }
}

/// Every row of `plan`, in plan order.
fn refs(plan: &Plan) -> impl Iterator<Item = RowRef<'_>> {
    plan.changes
        .iter()
        .map(RowRef::Change)
        .chain(plan.links.iter().map(RowRef::Link))
        .chain(plan.unlinks.iter().map(RowRef::Unlink))
        .chain(plan.skipped.iter().map(RowRef::Skipped))
}

/// One page of a plan: its head (the plan without its rows), how many rows
/// of each kind it holds (`""`: every change), the rows asked for and how
/// many match.
pub struct View {
    pub head: Plan,
    pub counts: BTreeMap<String, usize>,
    pub rows: Vec<Row>,
    pub total: usize,
}

impl View {
    /// Nothing to change and no link to record or remove.
    pub fn empty(&self) -> bool {
        let n = |k: &str| self.counts.get(k).copied().unwrap_or(0);
        n("") + n("link") + n("unlink") == 0 && self.head.link_edits.is_empty()
    }
}

fn is_change(kind: &str) -> bool {
    !matches!(kind, "link" | "unlink" | "skipped")
}

/// The plan without its rows.
fn head(plan: &Plan) -> Plan {
    Plan {
        format: plan.format,
        id: plan.id.clone(),
        pipeline: plan.pipeline.clone(),
        pipeline_fingerprint: plan.pipeline_fingerprint.clone(),
        source: plan.source.clone(),
        target: plan.target.clone(),
        changes: vec![],
        links: vec![],
        unlinks: vec![],
        link_edits: plan.link_edits.clone(),
        notes: plan.notes.clone(),
        skipped: vec![],
        summary: plan.summary.clone(),
        refused: plan.refused.clone(),
    }
}

/// Rows counted by kind, and every change together under `""`, from
/// (kind, how many) pairs.
fn counted<'a>(kinds: impl Iterator<Item = (&'a str, usize)>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (kind, n) in kinds {
        *counts.entry(kind.to_string()).or_default() += n;
        if is_change(kind) {
            *counts.entry(String::new()).or_default() += n;
        }
    }
    counts
}

/// Page `page` of the rows of `kind` (`""`: every change) that hold `q`.
pub fn in_memory(plan: &Plan, kind: &str, q: &str, page: usize) -> View {
    let q = q.trim().to_lowercase();
    let mut total = 0;
    let mut out = vec![];
    let wanted = |k: &str| match kind {
        "" => is_change(k),
        kind => k == kind,
    };
    // Only the rows of one page are cloned; the others are only counted.
    let counts = counted(refs(plan).map(|r| (r.kind(), 1)));
    for row in refs(plan) {
        if !wanted(row.kind()) || !(q.is_empty() || row.search().contains(&q)) {
            continue;
        }
        if total / PAGE == page {
            out.push(row.owned());
        }
        total += 1;
    }
    View {
        head: head(plan),
        counts,
        rows: out,
        total,
    }
}

/// Whether the rows of the plan kept under `run` are all in the service
/// database (`None`: no plan is kept under `run`).
pub async fn stored(shared: &Shared, run: i64) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar("SELECT head IS NOT NULL FROM approvals WHERE run_id = $1")
        .bind(run)
        .fetch_optional(&shared.db.pool)
        .await
}

/// Keeps the rows of the plan waiting under `run` in the service database
/// (once: a plan whose rows are in is left alone).
pub async fn store(shared: &Shared, run: i64, plan: &Plan) -> sqlx::Result<()> {
    let pool = &shared.db.pool;
    if stored(shared, run).await? != Some(false) {
        return Ok(());
    }
    let head_text = serde_json::to_string(&head(plan)).unwrap_or_default();
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM approval_rows WHERE run_id = $1")
        .bind(run)
        .execute(&mut *tx)
        .await?;
    let all: Vec<RowRef<'_>> = refs(plan).collect();
    for (chunk_no, chunk) in all.chunks(CHUNK).enumerate() {
        let seq: Vec<i32> = (0..chunk.len())
            .map(|i| (chunk_no * CHUNK + i) as i32)
            .collect();
        let kinds: Vec<&str> = chunk.iter().map(|r| r.kind()).collect();
        let search: Vec<String> = chunk.iter().map(|r| r.search()).collect();
        let bodies: Vec<String> = chunk.iter().map(|r| r.body()).collect();
        sqlx::query(
            "INSERT INTO approval_rows (run_id, seq, kind, search, body)
             SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(run)
        .bind(&seq)
        .bind(&kinds)
        .bind(&search)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE approvals SET head = $2 WHERE run_id = $1")
        .bind(run)
        .bind(head_text)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Page `page` of the rows of `kind` that hold `q`, from the service
/// database; `None` while the plan's rows are not all in.
pub async fn in_database(
    shared: &Shared,
    run: i64,
    kind: &str,
    q: &str,
    page: usize,
) -> sqlx::Result<Option<View>> {
    let pool = &shared.db.pool;
    let head: Option<Option<String>> =
        sqlx::query_scalar("SELECT head FROM approvals WHERE run_id = $1")
            .bind(run)
            .fetch_optional(pool)
            .await?;
    let Some(Some(head)) = head else {
        return Ok(None);
    };
    let Ok(head) = serde_json::from_str::<Plan>(&head) else {
        return Ok(None);
    };
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM approval_rows WHERE run_id = $1 GROUP BY kind")
            .bind(run)
            .fetch_all(pool)
            .await?;
    let all = counted(counts.iter().map(|(k, n)| (k.as_str(), *n as usize)));
    // `kind` '' is every change; `q` is matched as text (LIKE's own
    // wildcards escaped).
    let pattern = format!(
        "%{}%",
        q.trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let filter = "run_id = $1 AND ($2 = '' AND kind NOT IN ('link', 'unlink', 'skipped') OR kind = $2) AND search LIKE $3";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM approval_rows WHERE {filter}"
    )))
    .bind(run)
    .bind(kind)
    .bind(&pattern)
    .fetch_one(pool)
    .await?;
    let found = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT kind, body FROM approval_rows WHERE {filter} ORDER BY seq LIMIT $4 OFFSET $5"
    )))
    .bind(run)
    .bind(kind)
    .bind(&pattern)
    .bind(PAGE as i64)
    .bind(i64::try_from(page.saturating_mul(PAGE)).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    let rows = found
        .iter()
        .filter_map(|r| Row::read(r.get::<&str, _>(0), r.get::<&str, _>(1)))
        .collect();
    Ok(Some(View {
        head,
        counts: all,
        rows,
        total: total as usize,
    }))
}
