//! `roster state migrate`: a pipeline's whole state, table by table, from
//! its SQLite file into PostgreSQL (an empty schema), in one transaction on
//! the server, then counted again on both sides. Links keep their
//! checksums, runs their ids, the journal its statuses.

use super::postgres::{PgLocation, PgStore};
use anyhow::Context;
use rusqlite::Connection;
use std::path::Path;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Int,
    /// An integer 0/1 in SQLite, a boolean on PostgreSQL.
    Bool,
}

use Kind::{Bool, Int, Text};

/// Every table of the state (schema 6) with its columns, in an order that
/// copies as it is.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "links",
        &[
            ("source_key", Text),
            ("source_email", Text),
            ("target_id", Text),
            ("how", Text),
            ("options", Text),
            ("updated_at_ms", Int),
            ("overrides", Text),
            ("checksum", Text),
        ],
    ),
    (
        "link_edits",
        &[
            ("source", Text),
            ("target_id", Text),
            ("options", Text),
            ("staged_at_ms", Int),
            ("options_only", Bool),
        ],
    ),
    (
        "unlinked",
        &[
            ("source_key", Text),
            ("source_email", Text),
            ("target_id", Text),
            ("at_ms", Int),
        ],
    ),
    (
        "runs",
        &[
            ("id", Int),
            ("command", Text),
            ("plan_id", Text),
            ("started_at_ms", Int),
            ("finished_at_ms", Int),
            ("applied", Int),
            ("failed", Int),
            ("outcome", Text),
        ],
    ),
    (
        "journal",
        &[
            ("plan_id", Text),
            ("key", Text),
            ("account", Text),
            ("status", Text),
            ("target_id", Text),
            ("error", Text),
            ("updated_at_ms", Int),
        ],
    ),
    (
        "account_errors",
        &[
            ("account", Text),
            ("change_key", Text),
            ("message", Text),
            ("at_ms", Int),
        ],
    ),
    (
        "source_reads",
        &[
            ("connector", Text),
            ("fingerprint", Text),
            ("watermark", Text),
            ("updated_at_ms", Int),
        ],
    ),
    (
        "source_accounts",
        &[("connector", Text), ("id", Text), ("account", Text)],
    ),
    (
        "memo",
        &[
            ("connector", Text),
            ("key", Text),
            ("value", Text),
            ("updated_at_ms", Int),
        ],
    ),
    (
        "pipeline",
        &[
            ("one", Int),
            ("name", Text),
            ("source", Text),
            ("target", Text),
        ],
    ),
];

#[derive(Clone, Debug)]
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

/// Rows copied per table.
pub type Counts = Vec<(&'static str, u64)>;

/// One table's name, columns and rows, as read from the file.
type TableRows = (
    &'static str,
    &'static [(&'static str, Kind)],
    Vec<Vec<Cell>>,
);

/// Copies the state in `file` into `to`, which must hold no state yet.
/// Returns the rows copied per table, as counted again on the server.
pub fn sqlite_to_postgres(file: &Path, to: &PgLocation) -> anyhow::Result<Counts> {
    // Opened as a store first: checked (not damaged) and at schema 6.
    drop(super::SqliteStore::open(file).map_err(|e| e.0)?);
    let conn = Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", file.display()))?;
    let mut tables = Vec::new();
    for (table, columns) in TABLES {
        tables.push((*table, *columns, read(&conn, table, columns)?));
    }
    let store = PgStore::open(to).map_err(|e| e.0)?;
    if !super::StateStore::is_fresh(&store).map_err(|e| e.0)? {
        anyhow::bail!(
            "state {} already holds a state (runs, links or staged edits): migrate only into an empty schema",
            to.shown()
        );
    }
    let expected: Counts = tables
        .iter()
        .map(|(t, _, rows)| (*t, rows.len() as u64))
        .collect();
    let counted = store.copy_in(tables).map_err(|e| e.0)?;
    if counted != expected {
        anyhow::bail!("copied {counted:?}, but the file holds {expected:?}");
    }
    Ok(counted)
}

fn read(
    conn: &Connection,
    table: &str,
    columns: &[(&str, Kind)],
) -> anyhow::Result<Vec<Vec<Cell>>> {
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let mut stmt = conn.prepare(&format!("SELECT {} FROM {table}", names.join(", ")))?;
    let rows = stmt.query_map([], |r| {
        columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                Ok(match kind {
                    Text => Cell::Text(r.get(i)?),
                    Int => Cell::Int(r.get(i)?),
                    Bool => Cell::Bool(r.get::<_, Option<i64>>(i)?.map(|v| v != 0)),
                })
            })
            .collect::<rusqlite::Result<Vec<Cell>>>()
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl PgStore {
    /// Inserts the rows of each table in one transaction; counts each
    /// table again before committing.
    fn copy_in(&self, tables: Vec<TableRows>) -> super::Result<Counts> {
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let mut counts = Vec::new();
            for (table, columns, rows) in tables {
                let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
                // Table and column names come from TABLES above, not from input.
                let insert = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                );
                for row in rows {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
                    for cell in row {
                        q = match cell {
                            Cell::Text(v) => q.bind(v),
                            Cell::Int(v) => q.bind(v),
                            Cell::Bool(v) => q.bind(v),
                        };
                    }
                    q.execute(&mut *tx).await?;
                }
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM {table}"
                )))
                .fetch_one(&mut *tx)
                .await?;
                counts.push((table, n as u64));
            }
            // Runs made after the copy number on from the copied ones.
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('runs', 'id'), GREATEST((SELECT max(id) FROM runs), 1))",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(counts)
        })
    }
}
