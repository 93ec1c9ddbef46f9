//! Connectors used outside a run (`roster read`, `roster test-connection`,
//! the service's console): started with what their memo kept from earlier
//! runs, and a connection test with the same delegate check a plan makes.

use crate::error::Failure;
use crate::model::ConnectionReport;
use crate::pipeline::Pipeline;
use crate::plugins::Session;
use crate::runtime::ConnectorInstance;

/// A configured instance of connector `name` that remembers what its memo
/// kept: no state is made where there is none, and nothing it learns is kept.
pub async fn start_reading(session: &Session, name: &str) -> Result<ConnectorInstance, Failure> {
    let mut instance = session.start(name).await?;
    let pipeline = &session.pipeline;
    if pipeline.state_exists() {
        instance.remember(pipeline.open_state()?.memo(name)?);
    }
    Ok(instance)
}

/// Connector `name`'s own connection checks, and the account holding
/// `account` read through it (the source's checked as a plan would).
pub async fn test_connection(
    session: &Session,
    name: &str,
    account: Option<String>,
) -> Result<ConnectionReport, Failure> {
    let mut instance = start_reading(session, name).await?;
    let mut report = instance.test_connection(account).await?;
    if name == session.pipeline.source {
        required_delegate(&session.pipeline, &mut report)?;
    }
    Ok(report)
}

/// The sync stage's `require_delegate`, for the one source account a
/// `test-connection --account` read: the same check the plan makes.
fn required_delegate(pipeline: &Pipeline, report: &mut ConnectionReport) -> Result<(), Failure> {
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
