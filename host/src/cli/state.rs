//! `roster state`: moving a pipeline's state between stores. The file is
//! only read; the server's schema must be empty, and is counted again
//! before the copy commits.

use crate::error::Failure;
use crate::runtime::Redactor;
use crate::state::{PgLocation, identity_of};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum StateAction {
    /// Copy a pipeline's state file (links, staged edits, runs, journal,
    /// errors, snapshots, memos) into an empty schema on PostgreSQL.
    Migrate {
        /// The SQLite state file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// `postgres://user@host/db[?schema=NAME]` (default schema: from the
        /// pipeline name the state records). A password is best given in
        /// PGPASSWORD.
        #[arg(long, value_name = "URL")]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(serde::Serialize)]
struct Migrated {
    format: u32,
    from: String,
    to: String,
    rows: std::collections::BTreeMap<&'static str, u64>,
}

impl StateAction {
    pub fn json(&self) -> bool {
        match self {
            StateAction::Migrate { json, .. } => *json,
        }
    }

    pub fn run(self) -> Result<ExitCode, Failure> {
        let StateAction::Migrate { from, to, json } = self;
        if !from.is_file() {
            return Err(Failure::Input(format!(
                "no state file at {}",
                from.display()
            )));
        }
        let pipeline = identity_of(&from).map(|id| id.name);
        let named = to.contains("schema=");
        let Some(default) = pipeline.or(named.then(String::new)) else {
            return Err(Failure::Input(format!(
                "{} records no pipeline name to name the schema after: add `?schema=NAME` to --to",
                from.display()
            )));
        };
        let at =
            PgLocation::parse(&to, &default).map_err(|e| Failure::Input(format!("--to: {e:#}")))?;
        at.redact_password(Redactor::global());
        let counts = crate::state::copy::sqlite_to_postgres(&from, &at)
            .map_err(|e| Failure::Store(e.into()))?;
        let doc = Migrated {
            format: super::output::JSON_FORMAT,
            from: from.display().to_string(),
            to: at.shown(),
            rows: counts.into_iter().collect(),
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        } else {
            for (table, n) in &doc.rows {
                println!("{table:>16}  {n}");
            }
            println!(
                "copied into {}; {} is left as it was. Point the pipeline at it: `state = \"postgres://…?schema={}\"` (password in PGPASSWORD) or ROSTER_STATE_URL",
                doc.to, doc.from, at.schema
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
