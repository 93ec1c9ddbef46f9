//! `roster test-connection`: each connector's own connection check, and
//! optionally one account read through it with the checks a plan would
//! make for it (the Riva Manager's "Test Connection" tab).

use super::render::{self, Out};
use super::{Global, connector_named, kept_memo};
use crate::error::Failure;
use crate::model::ConnectionReport;
use crate::pipeline::Pipeline;
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
            let mut instance = session.start(&name).await?;
            instance.remember(kept_memo(&session.pipeline, &name)?);
            let mut report = instance.test_connection(self.account.clone()).await?;
            if name == session.pipeline.source {
                required_delegate(&session.pipeline, &mut report)?;
            }
            reports.push((name, report));
        }
        render::connection(&out, &reports);
        Ok(ExitCode::SUCCESS)
    }
}

/// The sync stage's `require_delegate`, for the one source account a
/// `test-connection --account` read: the same check the plan makes.
pub(crate) fn required_delegate(
    pipeline: &Pipeline,
    report: &mut ConnectionReport,
) -> Result<(), Failure> {
    let (Some(holder), Some(a)) = (
        pipeline
            .stages
            .sync
            .as_ref()
            .and_then(|s| s.require_delegate.as_ref()),
        &report.account,
    ) else {
        return Ok(());
    };
    match a.delegates.iter().any(|d| d.eq_ignore_ascii_case(holder)) {
        true => {
            report
                .checks
                .push(format!("{holder} holds FullAccess on {}", a.email));
            Ok(())
        }
        false => Err(Failure::Input(format!(
            "{holder} holds no FullAccess on {}, and {} syncs only mailboxes it does: grant it in Exchange (`Add-MailboxPermission -Identity {} -User {holder} -AccessRights FullAccess -AutoMapping $false`)",
            a.email, pipeline.target, a.email
        ))),
    }
}
