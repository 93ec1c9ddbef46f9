//! `roster plan`: every change an apply would make, shown (or saved for
//! `apply --plan`); nothing in either system is touched.

use super::render::{self, Out, PlanView};
use super::{Global, write_atomic};
use crate::error::{EXIT_CHANGES_PENDING, EXIT_PLAN_ERRORS, Failure};
use crate::operation::{self, PlanOptions};
use crate::plan::Plan;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PlanCmd {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
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
    /// How to show the plan: a table, the JSON document (as --json), or
    /// Markdown for a change-approval ticket.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// List every skipped or filtered account with its reason.
    #[arg(long)]
    show_skipped: bool,
    /// Counts only (by kind of change and by reason), for large tenants.
    #[arg(long, conflicts_with = "show_skipped")]
    summary: bool,
    /// Exit 8 when the plan has changes, 0 when it has none.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Explain one account instead (as `roster explain`): each stage's
    /// decision for this address.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "out")]
    account: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

impl PlanCmd {
    /// Whether the output is the JSON document (`--json` or `--format json`).
    pub(super) fn json(&self) -> bool {
        self.json || self.format == Format::Json
    }

    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let session = global.open(&self.pipeline).await?;
        let mut state = session.pipeline.open_state()?;
        let json = self.json();
        let progress = render::Progress::new(json || self.format == Format::Markdown);
        let options = PlanOptions {
            full_read: self.full,
            new_state: self.new_state,
            rank: None,
        };
        let out = Out::new(json, &session.redactor);
        if let Some(address) = &self.account {
            let explained =
                operation::explain(&session, &mut *state, &options, &progress, address).await?;
            render::explanation(&out, &explained);
            return Ok(ExitCode::SUCCESS);
        }
        let plan = operation::plan(&session, &mut *state, &options, &progress).await?;
        let view = PlanView {
            show_skipped: self.show_skipped,
            summary_only: self.summary,
        };
        let saved = match &self.out {
            Some(file) => {
                // Serialised once, for the file and for `--json`.
                let text = serde_json::to_string_pretty(&plan)
                    .map_err(|e| Failure::Input(e.to_string()))?;
                let text = session.redactor.redact_owned(text);
                write_atomic(file, text.as_bytes())?;
                if !json {
                    eprintln!(
                        "saved to {}; next: `roster apply {} --plan {}`",
                        file.display(),
                        self.pipeline.display(),
                        file.display()
                    );
                }
                Some(text)
            }
            None => None,
        };
        match (self.format, saved) {
            (Format::Markdown, _) if !json => {
                println!("{}", session.redactor.redact(&super::markdown::plan(&plan)))
            }
            (_, Some(text)) if json => out.json_text(&text),
            _ => render::plan(&out, &plan, view),
        }
        Ok(ExitCode::from(self.exit_code(&plan)))
    }

    /// Refused (3), has errors (6), has changes with `--detailed-exitcode`
    /// (8), or 0: the first that holds. The plan is the document (also with
    /// `--json`); a refusal is also a line on stderr.
    fn exit_code(&self, plan: &Plan) -> u8 {
        if let Some(reason) = &plan.refused {
            let refused = Failure::Refused(reason.clone());
            eprintln!("error: {refused}");
            if let Some(hint) = refused.hint() {
                eprintln!("hint: {hint}");
            }
            return refused.exit_code();
        }
        if plan.summary.errors > 0 {
            let n = plan.summary.errors;
            eprintln!("the plan has {n} error(s): the accounts they name are not synced");
            return EXIT_PLAN_ERRORS;
        }
        match self.detailed_exitcode && !plan.is_empty() {
            true => EXIT_CHANGES_PENDING,
            false => 0,
        }
    }
}
