//! The embedded state store: one SQLite file in WAL mode. Each batch's
//! outcomes, links and errors are written in one transaction, so a killed
//! apply leaves the journal consistent with what was recorded.

use super::link_row::{self, LinkRow};
use super::*;
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// The schema, step by step: each version's changes to the one before, run
/// in order on open (in one transaction) from the version the file records
/// (`PRAGMA user_version`), as the PostgreSQL store runs
/// `host/migrations/postgres/`.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE links (
            source_key TEXT PRIMARY KEY,
            source_email TEXT NOT NULL,
            target_id TEXT NOT NULL,
            how TEXT NOT NULL,
            options TEXT NOT NULL,
            updated_at_ms INTEGER NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,
            plan_id TEXT NOT NULL,
            started_at_ms INTEGER NOT NULL,
            finished_at_ms INTEGER,
            applied INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL DEFAULT 'running'
        );
        CREATE TABLE journal (
            plan_id TEXT NOT NULL,
            key TEXT NOT NULL,
            account TEXT NOT NULL,
            status TEXT NOT NULL,
            target_id TEXT,
            error TEXT,
            updated_at_ms INTEGER NOT NULL,
            PRIMARY KEY (plan_id, key)
        );
        CREATE TABLE account_errors (
            account TEXT PRIMARY KEY,
            change_key TEXT NOT NULL,
            message TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        );",
    ),
    // Source snapshots for incremental reads.
    (
        2,
        "CREATE TABLE source_reads (
            connector TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            watermark TEXT NOT NULL,
            updated_at_ms INTEGER NOT NULL
        );
        CREATE TABLE source_accounts (
            connector TEXT NOT NULL,
            id TEXT NOT NULL,
            account TEXT NOT NULL,
            PRIMARY KEY (connector, id)
        );",
    ),
    // Per-link option overrides, staged link edits, accounts unlinked on purpose.
    (
        3,
        "ALTER TABLE links ADD COLUMN overrides TEXT NOT NULL DEFAULT '{}';
        CREATE TABLE link_edits (
            source TEXT PRIMARY KEY,
            target_id TEXT,
            options TEXT NOT NULL,
            staged_at_ms INTEGER NOT NULL
        );
        CREATE TABLE unlinked (
            source_key TEXT PRIMARY KEY,
            source_email TEXT NOT NULL,
            target_id TEXT,
            at_ms INTEGER NOT NULL
        );",
    ),
    // Connectors' memos; staged edits that change a link's options only.
    (
        4,
        "CREATE TABLE memo (
            connector TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            PRIMARY KEY (connector, key)
        );
        ALTER TABLE link_edits ADD COLUMN options_only INTEGER NOT NULL DEFAULT 0;",
    ),
    // The pipeline the state belongs to.
    (
        5,
        "CREATE TABLE pipeline (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            target TEXT NOT NULL
        );",
    ),
    // Each link row's checksum (rows are sealed after this step).
    (6, "ALTER TABLE links ADD COLUMN checksum TEXT;"),
];

/// The newest schema version ([`MIGRATIONS`]).
const VERSION: i64 = 6;

/// The tables a state of each schema version has; one missing means the
/// file was damaged or edited, never that the state is new.
const TABLES: &[(i64, &str)] = &[
    (1, "links"),
    (1, "runs"),
    (1, "journal"),
    (1, "account_errors"),
    (3, "link_edits"),
    (3, "unlinked"),
    (4, "memo"),
    (5, "pipeline"),
];

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        refuse_empty(path)?;
        if !path.exists() {
            create(path).with_context(|| format!("creating state {}", path.display()))?;
        }
        let conn =
            Connection::open(path).with_context(|| format!("opening state {}", path.display()))?;
        for file in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(file);
            if Path::new(&name).exists() {
                private(Path::new(&name));
            }
        }
        let version =
            prepare(&conn).with_context(|| format!("opening state {}", path.display()))?;
        check_integrity(&conn, version).map_err(|e| {
            anyhow::anyhow!(
                "state {} is damaged: {e:#}. Nothing was changed. Restore the file from a backup; or, to start afresh (links made by hand, staged edits and run history are lost), move it aside",
                path.display()
            )
        })?;
        if version > VERSION {
            return Err(anyhow::anyhow!(
                "state {} was written by a newer roster (schema {version}, this one knows {VERSION})",
                path.display()
            )
            .into());
        }
        migrate(&conn, version)
            .with_context(|| format!("upgrading the schema in {}", path.display()))?;
        Ok(SqliteStore { conn })
    }
}

impl StateStore for SqliteStore {
    fn links_as_stored(&self) -> Result<(Vec<StoredLink>, Vec<String>)> {
        let mut stmt = self
            .conn
            .prepare("SELECT source_key, source_email, target_id, how, options, updated_at_ms, overrides, checksum FROM links ORDER BY source_email")?;
        let rows = stmt
            .query_map([], |r| Ok((read_link_row(r)?, r.get(7)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(link_row::checked(rows)?)
    }

    fn accept_link_edits(&mut self) -> Result<Vec<String>> {
        Ok(seal_links(&self.conn, true)?)
    }

    fn upsert_link(&mut self, link: &StoredLink) -> Result<()> {
        Ok(upsert_link(&self.conn, link)?)
    }

    fn remove_link(&mut self, source_key: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM links WHERE source_key = ?1", [source_key])?;
        Ok(())
    }

    fn begin_run(&mut self, command: &str, plan_id: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (command, plan_id, started_at_ms) VALUES (?1, ?2, ?3)",
            params![command, plan_id, now_ms() as i64],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn finish_run(&mut self, run: i64, applied: u64, failed: u64, outcome: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at_ms = ?2, applied = ?3, failed = ?4, outcome = ?5 WHERE id = ?1",
            params![run, now_ms() as i64, applied as i64, failed as i64, outcome],
        )?;
        Ok(())
    }

    fn identity(&self) -> Result<Option<PipelineIdentity>> {
        Ok(read_identity(&self.conn)?)
    }

    fn set_identity(&mut self, id: &PipelineIdentity) -> Result<()> {
        self.conn.execute(
            "INSERT INTO pipeline (one, name, source, target) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (one) DO UPDATE SET name = ?1, source = ?2, target = ?3",
            params![id.name, id.source, id.target],
        )?;
        Ok(())
    }

    fn is_fresh(&self) -> Result<bool> {
        let used: i64 = self.conn.query_row(
            "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM links) + (SELECT count(*) FROM link_edits)",
            [],
            |r| r.get(0),
        )?;
        Ok(used == 0 && read_identity(&self.conn)?.is_none())
    }

    fn end_abandoned_runs(&mut self) -> Result<usize> {
        let n = self.conn.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at_ms = ?1,
                applied = (SELECT count(*) FROM journal j WHERE j.plan_id = runs.plan_id AND j.status = 'applied'),
                failed = (SELECT count(*) FROM journal j WHERE j.plan_id = runs.plan_id AND j.status = 'failed')
             WHERE outcome = 'running'",
            params![now_ms() as i64],
        )?;
        Ok(n)
    }

    fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, command, plan_id, started_at_ms, finished_at_ms, applied, failed, outcome FROM runs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(RunRecord {
                id: r.get(0)?,
                command: r.get(1)?,
                plan_id: r.get(2)?,
                started_at_ms: r.get::<_, i64>(3)? as u64,
                finished_at_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                applied: r.get::<_, i64>(5)? as u64,
                failed: r.get::<_, i64>(6)? as u64,
                outcome: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn journal_open(&mut self, plan_id: &str, keys: &[(&str, &str)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR IGNORE INTO journal (plan_id, key, account, status, updated_at_ms) VALUES (?1, ?2, ?3, 'pending', ?4)",
            )?;
            let now = now_ms() as i64;
            for (key, account) in keys {
                stmt.execute(params![plan_id, key, account, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn journal(&self, plan_id: &str) -> Result<HashMap<String, JournalEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, status, target_id FROM journal WHERE plan_id = ?1")?;
        let rows = stmt.query_map([plan_id], |r| {
            let status: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                status,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (key, status, target_id) = row?;
            let status = JournalStatus::parse(&status).unwrap_or(JournalStatus::Pending);
            out.insert(key, JournalEntry { status, target_id });
        }
        Ok(out)
    }

    fn journal_rows(&self, plan_id: &str, account: Option<&str>) -> Result<Vec<JournalRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, account, status, target_id, error FROM journal WHERE plan_id = ?1 \
             AND (?2 IS NULL OR lower(account) = lower(?2)) ORDER BY key",
        )?;
        let rows = stmt.query_map(params![plan_id, account], |r| {
            let status: String = r.get(2)?;
            Ok(JournalRow {
                key: r.get(0)?,
                account: r.get(1)?,
                status: JournalStatus::parse(&status).unwrap_or(JournalStatus::Pending),
                target_id: r.get(3)?,
                error: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn mark_sent(&mut self, plan_id: &str, keys: &[&str]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare("UPDATE journal SET status = 'sent', updated_at_ms = ?3 WHERE plan_id = ?1 AND key = ?2")?;
            let now = now_ms() as i64;
            for key in keys {
                stmt.execute(params![plan_id, key, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn record(
        &mut self,
        outcomes: &[Outcome],
        links: &[StoredLink],
        memo: Option<MemoUpdate>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now = now_ms() as i64;
        {
            let mut journal = tx.prepare(
                "INSERT INTO journal (plan_id, key, account, status, target_id, error, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (plan_id, key) DO UPDATE SET status = excluded.status, target_id = excluded.target_id,
                 error = excluded.error, updated_at_ms = excluded.updated_at_ms",
            )?;
            let mut set_error = tx.prepare(
                "INSERT INTO account_errors (account, change_key, message, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account) DO UPDATE SET change_key = excluded.change_key, message = excluded.message, at_ms = excluded.at_ms",
            )?;
            let mut clear_error = tx.prepare("DELETE FROM account_errors WHERE account = ?1")?;
            for o in outcomes {
                journal.execute(params![
                    o.plan_id,
                    o.key,
                    o.account,
                    o.status.as_str(),
                    o.target_id,
                    o.error,
                    now
                ])?;
                match (o.status, o.error) {
                    (JournalStatus::Failed | JournalStatus::Skipped, Some(e)) => {
                        set_error.execute(params![o.account, o.key, e, now])?;
                    }
                    (JournalStatus::Applied, _) => {
                        clear_error.execute([o.account])?;
                    }
                    _ => {}
                }
            }
        }
        for link in links {
            upsert_link(&tx, link)?;
        }
        if let Some(memo) = memo {
            write_memo(&tx, memo)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn memo(&self, connector: &str) -> Result<BTreeMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM memo WHERE connector = ?1")?;
        let rows = stmt.query_map([connector], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn save_memo(&mut self, memo: MemoUpdate) -> Result<()> {
        if memo.writes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        write_memo(&tx, memo)?;
        Ok(tx.commit()?)
    }

    fn link_edits(&self) -> Result<Vec<LinkEdit>> {
        let mut stmt = self.conn.prepare(
            "SELECT source, target_id, options, staged_at_ms, options_only FROM link_edits ORDER BY source",
        )?;
        let rows = stmt.query_map([], |r| {
            let options: String = r.get(2)?;
            Ok(LinkEdit {
                source: r.get(0)?,
                target_id: r.get(1)?,
                options: serde_json::from_str(&options).unwrap_or_default(),
                staged_at_ms: r.get::<_, i64>(3)? as u64,
                options_only: r.get::<_, i64>(4)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn stage_link_edit(&mut self, edit: &LinkEdit) -> Result<()> {
        self.conn.execute(
            "INSERT INTO link_edits (source, target_id, options, staged_at_ms, options_only) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source) DO UPDATE SET target_id = excluded.target_id, options = excluded.options,
             staged_at_ms = excluded.staged_at_ms, options_only = excluded.options_only",
            params![
                edit.source,
                edit.target_id,
                serde_json::to_string(&edit.options)?,
                edit.staged_at_ms as i64,
                edit.options_only as i64
            ],
        )?;
        Ok(())
    }

    fn unstage_link_edit(&mut self, source: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM link_edits WHERE source = ?1", [source])?
            > 0)
    }

    fn unlinked(&self) -> Result<Vec<Unlinked>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_key, source_email, target_id, at_ms FROM unlinked ORDER BY source_email",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Unlinked {
                source_key: r.get(0)?,
                source_email: r.get(1)?,
                target_id: r.get(2)?,
                at_ms: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn carry_out_link_edits(
        &mut self,
        links: &[StoredLink],
        unlinks: &[Unlinked],
        edits_done: &[String],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for link in links {
            upsert_link(&tx, link)?;
        }
        for u in unlinks {
            tx.execute("DELETE FROM links WHERE source_key = ?1", [&u.source_key])?;
            tx.execute(
                "INSERT INTO unlinked (source_key, source_email, target_id, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source_key) DO UPDATE SET source_email = excluded.source_email,
                 target_id = excluded.target_id, at_ms = excluded.at_ms",
                params![u.source_key, u.source_email, u.target_id, u.at_ms as i64],
            )?;
        }
        for source in edits_done {
            tx.execute("DELETE FROM link_edits WHERE source = ?1", [source])?;
        }
        Ok(tx.commit()?)
    }

    fn account_errors(&self) -> Result<Vec<AccountError>> {
        let mut stmt = self.conn.prepare(
            "SELECT account, change_key, message, at_ms FROM account_errors ORDER BY account",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AccountError {
                account: r.get(0)?,
                change: r.get(1)?,
                message: r.get(2)?,
                at_ms: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn source_snapshot(
        &self,
        connector: &str,
        fingerprint: &str,
    ) -> Result<Option<SourceSnapshot>> {
        let watermark: Option<String> = self
            .conn
            .query_row(
                "SELECT watermark FROM source_reads WHERE connector = ?1 AND fingerprint = ?2",
                [connector, fingerprint],
                |r| r.get(0),
            )
            .optional()?;
        let Some(watermark) = watermark else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare("SELECT account FROM source_accounts WHERE connector = ?1")?;
        let rows = stmt
            .query_map([connector], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(SourceSnapshot::parse(watermark, rows)?))
    }

    fn save_source_snapshot(
        &mut self,
        connector: &str,
        fingerprint: &str,
        watermark: Option<&str>,
        change: SnapshotChange,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let Some(watermark) = watermark else {
            tx.execute("DELETE FROM source_reads WHERE connector = ?1", [connector])?;
            tx.execute(
                "DELETE FROM source_accounts WHERE connector = ?1",
                [connector],
            )?;
            return Ok(tx.commit()?);
        };
        let (upserts, removed): (&[Account], &[String]) = match change {
            SnapshotChange::Replace(all) => {
                tx.execute(
                    "DELETE FROM source_accounts WHERE connector = ?1",
                    [connector],
                )?;
                (all, &[])
            }
            SnapshotChange::Patch { upserts, removed } => (upserts, removed),
        };
        {
            let mut put = tx.prepare(
                "INSERT INTO source_accounts (connector, id, account) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connector, id) DO UPDATE SET account = excluded.account",
            )?;
            for a in upserts {
                put.execute(params![connector, a.id, serde_json::to_string(a)?])?;
            }
            let mut gone =
                tx.prepare("DELETE FROM source_accounts WHERE connector = ?1 AND id = ?2")?;
            for id in removed {
                gone.execute(params![connector, id])?;
            }
        }
        tx.execute(
            "INSERT INTO source_reads (connector, fingerprint, watermark, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector) DO UPDATE SET fingerprint = excluded.fingerprint,
             watermark = excluded.watermark, updated_at_ms = excluded.updated_at_ms",
            params![connector, fingerprint, watermark, now_ms() as i64],
        )?;
        Ok(tx.commit()?)
    }
}

fn read_identity(conn: &Connection) -> rusqlite::Result<Option<PipelineIdentity>> {
    conn.query_row(
        "SELECT name, source, target FROM pipeline WHERE one = 1",
        [],
        |r| {
            Ok(PipelineIdentity {
                name: r.get(0)?,
                source: r.get(1)?,
                target: r.get(2)?,
            })
        },
    )
    .optional()
}

/// The pipeline another state file belongs to, read without changing that
/// file (no schema upgrade, no lock); `None` when it says none or is no
/// readable state.
pub fn identity_of(path: &Path) -> Option<PipelineIdentity> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = Connection::open_with_flags(path, flags).ok()?;
    read_identity(&conn).ok().flatten()
}

/// Settings for every connection; the schema version found.
fn prepare(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn write_memo(conn: &Connection, memo: MemoUpdate) -> anyhow::Result<()> {
    let mut put = conn.prepare(
        "INSERT INTO memo (connector, key, value, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
    )?;
    let mut gone = conn.prepare("DELETE FROM memo WHERE connector = ?1 AND key = ?2")?;
    let now = now_ms() as i64;
    for (key, value) in memo.writes {
        match value {
            Some(v) => put.execute(params![memo.connector, key, v, now])?,
            None => gone.execute(params![memo.connector, key])?,
        };
    }
    Ok(())
}

fn upsert_link(conn: &Connection, link: &StoredLink) -> anyhow::Result<()> {
    let row = LinkRow::of(link);
    conn.execute(
        "INSERT INTO links (source_key, source_email, target_id, how, options, updated_at_ms, overrides, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (source_key) DO UPDATE SET source_email = excluded.source_email, target_id = excluded.target_id,
         how = excluded.how, options = excluded.options, updated_at_ms = excluded.updated_at_ms, overrides = excluded.overrides,
         checksum = excluded.checksum",
        params![
            row.source_key,
            row.source_email,
            row.target_id,
            row.how,
            row.options,
            row.updated_at_ms,
            row.overrides,
            row.checksum()
        ],
    )?;
    // A link made (again) ends an earlier unlinking of the account.
    conn.execute(
        "DELETE FROM unlinked WHERE source_key = ?1",
        [&link.source_key],
    )?;
    Ok(())
}

/// A link row as the SQLite store selects it (columns in `links` order).
fn read_link_row(r: &rusqlite::Row) -> rusqlite::Result<LinkRow> {
    Ok(LinkRow {
        source_key: r.get(0)?,
        source_email: r.get(1)?,
        target_id: r.get(2)?,
        how: r.get(3)?,
        options: r.get(4)?,
        updated_at_ms: r.get(5)?,
        overrides: r.get(6)?,
    })
}

/// Writes every link row's checksum; with `only_changed`, returns the
/// accounts whose rows did not match (those accepted).
fn seal_links(conn: &Connection, only_changed: bool) -> anyhow::Result<Vec<String>> {
    let tx = conn.unchecked_transaction()?;
    let mut changed = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT source_key, source_email, target_id, how, options, updated_at_ms, overrides, checksum FROM links",
        )?;
        let rows: Vec<(LinkRow, Option<String>)> = stmt
            .query_map([], |r| Ok((read_link_row(r)?, r.get(7)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut put = tx.prepare("UPDATE links SET checksum = ?1 WHERE source_key = ?2")?;
        for (row, stored) in rows {
            if let Some(sum) = row.reseal(stored.as_deref()) {
                put.execute(params![sum, row.source_key])?;
                if only_changed {
                    changed.push(row.source_email);
                }
            }
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Runs the steps after `from`, and seals link rows when checksums are
/// new, in one transaction: a failed upgrade leaves the file as it was.
fn migrate(conn: &Connection, from: i64) -> anyhow::Result<()> {
    if from >= VERSION {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.execute_batch(sql)
            .with_context(|| format!("step {version}"))?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    if from >= 1 {
        seal_links(conn, false)?;
    }
    Ok(())
}

/// A new state is made whole under another name and renamed into place, so
/// no crash leaves an empty file behind (which would be refused as a
/// truncated state).
fn create(path: &Path) -> anyhow::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".new-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(name);
    {
        let conn = Connection::open(&tmp)?;
        private(&tmp);
        prepare(&conn)?;
        migrate(&conn, 0)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A state file that exists but is empty was truncated: SQLite writes its
/// header with the first table, and a state is never without tables.
fn refuse_empty(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => Err(anyhow::anyhow!(
            "state {} is empty (0 bytes): a state file never is, so it was truncated or overwritten. Nothing was changed. Restore it from a backup; or, to start afresh (links made by hand, staged edits and run history are lost), delete it",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// SQLite's own page and index check, then the tables the schema version
/// promises. Costs one read of the file (measured in docs/reliability.md).
fn check_integrity(conn: &Connection, version: i64) -> anyhow::Result<()> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if version == 0 {
        if !tables.is_empty() {
            anyhow::bail!(
                "it holds tables ({}) but no roster schema version: it is not a roster state",
                tables.join(", ")
            );
        }
        return Ok(());
    }
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if problems.first().map(String::as_str) != Some("ok") {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        anyhow::bail!("SQLite's check found: {}", shown.join("; "));
    }
    let missing: Vec<&str> = TABLES
        .iter()
        .filter(|(since, name)| *since <= version && !tables.iter().any(|t| t == name))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("table(s) {} are missing", missing.join(", "));
    }
    Ok(())
}

/// State, plans and caches hold addresses, names and who delegates to whom:
/// readable by their owner only, whatever the umask.
#[cfg(unix)]
pub fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::debug!(path = %path.display(), error = %e, "could not make the file private");
    }
}

#[cfg(not(unix))]
pub fn private(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::LinkHow;

    fn link(email: &str, target: &str) -> StoredLink {
        StoredLink {
            source_key: format!("id:{email}"),
            source_email: email.into(),
            target_id: target.into(),
            how: LinkHow::Primary,
            options: BTreeMap::new(),
            overrides: BTreeMap::new(),
            updated_at_ms: 1,
        }
    }

    #[test]
    fn a_schema_5_state_is_sealed_on_open_and_keeps_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for (_, step) in MIGRATIONS.iter().filter(|(v, _)| *v <= 5) {
                conn.execute_batch(step).unwrap();
            }
            conn.execute(
                "INSERT INTO links (source_key, source_email, target_id, how, options, updated_at_ms) VALUES ('id:a', 'a@x', 't1', 'primary', '{}', 1)",
                [],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 5).unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let links = store.links().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].target_id, "t1");
        assert_eq!(store.accept_link_edits().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn an_edited_link_row_is_refused_until_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let mut store = SqliteStore::open(&path).unwrap();
        store.upsert_link(&link("a@x", "t1")).unwrap();
        store.upsert_link(&link("b@x", "t2")).unwrap();
        store
            .conn
            .execute(
                "UPDATE links SET options = '{\"rank\":\"9\"}' WHERE source_email = 'b@x'",
                [],
            )
            .unwrap();
        let err = store.links().unwrap_err().to_string();
        assert!(
            err.contains("the stored link of b@x was changed outside roster"),
            "{err}"
        );
        let (links, edited) = store.links_as_stored().unwrap();
        assert_eq!((links.len(), edited), (2, vec!["b@x".to_string()]));
        assert_eq!(store.accept_link_edits().unwrap(), ["b@x"]);
        let links = store.links().unwrap();
        assert_eq!(links[1].options["rank"], "9");
        // Written by roster again: sealed again.
        store.upsert_link(&link("b@x", "t3")).unwrap();
        assert_eq!(store.links().unwrap()[1].target_id, "t3");
    }

    #[test]
    fn a_new_state_never_leaves_an_empty_file_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".new-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::write(&path, b"").unwrap();
        let err = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("is empty (0 bytes)"), "{err}");
    }
}

#[cfg(test)]
mod upgrades {
    use super::*;

    /// A state at each older schema version opens, is brought to the
    /// newest in order, and keeps its link.
    #[test]
    fn every_older_schema_is_upgraded_step_by_step() {
        for from in 1..VERSION {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("old.sqlite");
            {
                let conn = Connection::open(&path).unwrap();
                for (_, step) in MIGRATIONS.iter().filter(|(v, _)| *v <= from) {
                    conn.execute_batch(step).unwrap();
                }
                conn.execute(
                    "INSERT INTO links (source_key, source_email, target_id, how, options, updated_at_ms) VALUES ('id:a', 'a@x', 't1', 'primary', '{}', 1)",
                    [],
                )
                .unwrap();
                conn.pragma_update(None, "user_version", from).unwrap();
            }
            let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("from {from}: {e}"));
            let links = store.links().unwrap();
            assert_eq!(links[0].target_id, "t1", "from {from}");
            assert!(store.link_edits().unwrap().is_empty());
            assert!(store.memo("x").unwrap().is_empty());
            assert_eq!(store.identity().unwrap(), None);
            let version: i64 = store
                .conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, VERSION);
        }
    }
}
