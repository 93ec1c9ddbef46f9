//! `roster status`: recent runs, linked accounts and the last error per
//! account, from the state alone (no plugin is loaded, no secret resolved).

use super::render;
use crate::error::Failure;
use crate::pipeline::Pipeline;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Status {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
    #[arg(long)]
    pub(super) json: bool,
}

impl Status {
    pub fn run(self) -> Result<ExitCode, Failure> {
        let pipeline = Pipeline::load_unresolved(&self.pipeline)?;
        if !pipeline.state_exists() {
            return Err(Failure::Input(format!(
                "no state yet at {}: run `roster apply` first",
                pipeline.state_shown()
            )));
        }
        let mut state = pipeline.open_state()?;
        // A run marked running whose apply holds no lock has died: shown
        // (and recorded) as interrupted, never as running.
        if let Ok(_free) = pipeline.lock_state() {
            state.end_abandoned_runs()?;
        }
        let runs = state.recent_runs(10)?;
        let links = state.links()?;
        let errors = state.account_errors()?;
        render::status(self.json, &runs, &links, &errors);
        Ok(ExitCode::SUCCESS)
    }
}
