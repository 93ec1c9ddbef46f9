//! `roster apply`: plans afresh (or takes a plan saved by `plan --out`),
//! shows it, asks, and carries it out, recording each outcome.

use super::Global;
use super::render::{self, Out};
use crate::apply::ApplyReport;
use crate::error::{EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_PLAN_ERRORS, Failure};
use crate::operation::{self, ApplyOptions, PlanOptions};
use crate::plan::Plan;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args, Debug)]
pub struct ApplyCmd {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Apply a plan saved with `plan --out` instead of planning afresh.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Allow a plan whose removals exceed the safety threshold.
    #[arg(long)]
    allow_removals: bool,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
    #[arg(long)]
    pub(super) json: bool,
    /// Use this state although it belongs to another pipeline, or start a
    /// new state although one of this pipeline lies beside it.
    #[arg(long)]
    new_state: bool,
    /// Read every source account, even where an incremental read is possible.
    #[arg(long, conflicts_with = "plan")]
    full: bool,
    /// Apply only this rank of a pipeline split into ranks (apply.ranks),
    /// beside applies of the other ranks; needs the state on PostgreSQL.
    #[arg(long, conflicts_with = "plan", value_parser = clap::value_parser!(u32).range(1..=64))]
    rank: Option<u32>,
}

impl ApplyCmd {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        // Said before anything is read or shown, not after a long plan.
        if !self.yes && !std::io::stdin().is_terminal() {
            return Err(Failure::Input(
                "apply needs confirmation: run it on a terminal, or pass --yes".into(),
            ));
        }
        let session = global.open(&self.pipeline).await?;
        let mut state = session.pipeline.open_state()?;
        let progress = render::Progress::new(self.json);
        let mut ready = match &self.plan {
            None => {
                let options = PlanOptions {
                    full_read: self.full,
                    new_state: self.new_state,
                    rank: self.rank,
                };
                operation::plan_to_apply(&session, &mut *state, &options, &progress).await?
            }
            Some(file) => {
                operation::saved_plan(&session, &mut *state, file, self.new_state).await?
            }
        };
        let out = Out::new(self.json, &session.redactor);
        let plan = &ready.plan;
        if !self.json {
            render::plan(&out, plan, render::PlanView::default());
            if plan.refused.is_some() && self.allow_removals {
                eprintln!("applying it all the same: --allow-removals");
            }
        }
        // A refused plan goes straight to the apply, which refuses it.
        if plan.refused.is_none() || self.allow_removals {
            if plan.is_empty() {
                if self.json {
                    render::apply(&out, plan, &ApplyReport::default());
                }
                return Ok(ExitCode::from(outcome_code(plan, &ApplyReport::default())));
            }
            if !self.yes && !confirm(plan, &session.pipeline.target)? {
                eprintln!("nothing applied");
                return Ok(ExitCode::SUCCESS);
            }
        }
        let options = ApplyOptions {
            allow_removals: self.allow_removals,
            stop: stop_on_signal(),
        };
        let report =
            operation::apply(&session, &mut *state, &mut ready, &options, &progress).await?;
        render::apply(&out, &ready.plan, &report);
        if report.interrupted {
            eprintln!(
                "interrupted: rerun `roster apply` to finish (nothing applied is sent again)"
            );
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Ok(ExitCode::from(outcome_code(&ready.plan, &report)))
    }
}

/// Some changes failed or were skipped (1); else the plan had errors, so
/// the accounts they name were not synced (6); else 0.
fn outcome_code(plan: &Plan, report: &ApplyReport) -> u8 {
    if report.failed > 0 || report.skipped > 0 || report.stopped.is_some() {
        return EXIT_PARTIAL;
    }
    if plan.summary.errors > 0 {
        eprintln!(
            "the plan had {} error(s): the accounts they name were not synced",
            plan.summary.errors
        );
        return EXIT_PLAN_ERRORS;
    }
    0
}

/// A flag set by the first SIGINT or SIGTERM, so the apply finishes the
/// batch in flight, records it, and stops; a second signal ends the process
/// at once (what was recorded stands; the run shows as interrupted).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        for n in 0.. {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if n > 0 {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            eprintln!("stopping after the changes in flight (again to stop at once)");
            flag.store(true, Ordering::Relaxed);
        }
    });
    stop
}

fn confirm(plan: &Plan, target: &str) -> Result<bool, Failure> {
    eprint!("Apply {} changes to `{target}`? [y/N] ", plan.changes.len());
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::Input(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
