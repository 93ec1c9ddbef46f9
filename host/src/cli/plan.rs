//! `roster plan`: every change an apply would make, shown (or saved for
//! `apply --plan`); nothing in either system is touched.

use super::render::{self, Out};
use super::{Global, write_atomic};
use crate::error::Failure;
use crate::operation::{self, PlanOptions};
use crate::state::SqliteStore;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PlanCmd {
    pipeline: PathBuf,
    #[arg(long)]
    pub(super) json: bool,
    /// Save the plan to a file for `apply --plan`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use this state although it belongs to another pipeline, or start a
    /// new state although one of this pipeline lies beside it.
    #[arg(long)]
    new_state: bool,
    /// Read every source account, even where an incremental read is possible.
    #[arg(long)]
    full: bool,
}

impl PlanCmd {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let session = global.open(&self.pipeline).await?;
        let mut state = SqliteStore::open(&session.pipeline.state_path)?;
        let progress = render::Progress::new(self.json);
        let options = PlanOptions {
            full_read: self.full,
            new_state: self.new_state,
        };
        let plan = operation::plan(&session, &mut state, &options, &progress).await?;
        let out = Out::new(self.json, &session.redactor);
        match &self.out {
            Some(file) => {
                // Serialised once, for the file and for `--json`.
                let text = serde_json::to_string_pretty(&plan)
                    .map_err(|e| Failure::Input(e.to_string()))?;
                let text = session.redactor.redact_owned(text);
                write_atomic(file, text.as_bytes())?;
                match self.json {
                    true => out.json_text(&text),
                    false => render::plan(&out, &plan),
                }
            }
            None => render::plan(&out, &plan),
        }
        // The plan is the document (also with --json): the refusal is its
        // `refused` field, the exit code and a line on stderr.
        if let Some(reason) = &plan.refused {
            let refused = Failure::Refused(reason.clone());
            eprintln!("error: {refused}");
            return Ok(ExitCode::from(refused.exit_code()));
        }
        Ok(ExitCode::SUCCESS)
    }
}
