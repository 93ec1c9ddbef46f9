//! `roster explain`: why one account is (or is not) synced, each stage's
//! decision in order, from a fresh plan; nothing is touched.

use super::Global;
use super::render::{self, Out};
use crate::error::Failure;
use crate::operation::{self, PlanOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Explain {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// The account's address in the source or the target (primary or alias).
    address: String,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
    #[arg(long)]
    pub(super) json: bool,
    /// Use this state although it belongs to another pipeline.
    #[arg(long)]
    new_state: bool,
    /// Read every source account, even where an incremental read is possible.
    #[arg(long)]
    full: bool,
}

impl Explain {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let session = global.open(&self.pipeline).await?;
        let mut state = session.pipeline.open_state()?;
        let progress = render::Progress::new(self.json);
        let options = PlanOptions {
            full_read: self.full,
            new_state: self.new_state,
            rank: None,
        };
        let explained =
            operation::explain(&session, &mut *state, &options, &progress, &self.address).await?;
        render::explanation(&Out::new(self.json, &session.redactor), &explained);
        Ok(ExitCode::SUCCESS)
    }
}
