//! `roster check`: the pipeline parsed, its plugins loaded, every URL in a
//! connector's configuration granted by its `allowed_hosts`, and each
//! connector configured once (where a connector checks its own settings),
//! then what each connector is granted.

use super::Global;
use super::render::{self, Out};
use crate::error::Failure;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Check {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
    #[arg(long)]
    pub(super) json: bool,
}

impl Check {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let session = global.open(&self.pipeline).await?;
        let ungranted = session.ungranted_urls();
        if !ungranted.is_empty() {
            return Err(crate::pipeline::Diagnostics(ungranted).into());
        }
        for name in session.pipeline.connectors.keys() {
            session.start(name).await?;
        }
        let out = Out::new(self.json, &session.redactor);
        render::check(&out, &session);
        Ok(ExitCode::SUCCESS)
    }
}
