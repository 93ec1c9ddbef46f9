//! `roster read`: a connector's accounts (and groups) as the pipeline would
//! see them. Changes nothing, and keeps nothing the connector learns.

use super::render::{self, Out};
use super::{Global, connector_named};
use crate::error::Failure;
use crate::operation;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Read {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// The connector to read (default: the source).
    #[arg(long)]
    connector: Option<String>,
    /// Also read groups and their members.
    #[arg(long)]
    groups: bool,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
    #[arg(long)]
    pub(super) json: bool,
}

impl Read {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let session = global.open(&self.pipeline).await?;
        let name = match &self.connector {
            Some(name) => connector_named(&session.pipeline, name)?.to_string(),
            None => session.pipeline.source.clone(),
        };
        let mut instance = operation::start_reading(&session, &name).await?;
        let progress = render::Progress::new(self.json);
        let bar = progress.counter(&format!("reading {name}"));
        let accounts = operation::read_accounts(&mut instance, |n| bar.set(n)).await?;
        bar.finish();
        let groups = match self.groups {
            true => operation::read_groups(&mut instance).await?,
            false => vec![],
        };
        let out = Out::new(self.json, &session.redactor);
        render::accounts(&out, &name, &accounts, &groups);
        Ok(ExitCode::SUCCESS)
    }
}
