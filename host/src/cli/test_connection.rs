//! `roster test-connection`: each connector's own connection check, and
//! optionally one account read through it with the checks a plan would
//! make for it (the Riva Manager's "Test Connection" tab).

use super::render::{self, Out};
use super::{Global, connector_named};
use crate::error::Failure;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct TestConnection {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// The connector to test (default: source and target).
    #[arg(long)]
    connector: Option<String>,
    /// An address whose account must be readable.
    #[arg(long)]
    account: Option<String>,
    /// Print one JSON document on stdout (docs/json.md), also on failure.
    #[arg(long)]
    pub(super) json: bool,
}

impl TestConnection {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let session = global.open(&self.pipeline).await?;
        let names: Vec<String> = match self.connector {
            Some(name) => vec![connector_named(&session.pipeline, &name)?.to_string()],
            None => vec![
                session.pipeline.source.clone(),
                session.pipeline.target.clone(),
            ],
        };
        let out = Out::new(self.json, &session.redactor);
        let mut reports = Vec::new();
        for name in names {
            let report =
                crate::operation::test_connection(&session, &name, self.account.clone()).await?;
            reports.push((name, report));
        }
        render::connection(&out, &reports);
        Ok(ExitCode::SUCCESS)
    }
}
