//! What the API reads and stages in a pipeline itself: its links, its
//! connectors and their grants, the plan it would carry out now, `explain`
//! for one address, and staged link changes. Each is the library call the
//! CLI makes, on a blocking thread (a connector runs on a runtime of its
//! own), answering the same JSON document as the CLI's `--json`
//! (`cli::output`, `plan::Plan`, `plan::Explanation`), masked as the CLI's.

use super::config::Served;
use super::job::on_own_runtime;
use crate::error::Failure;
use crate::operation::{self, PlanOptions, Quiet};
use crate::plan::Plan;
use crate::plugins::Session;
use crate::runtime::Redactor;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A JSON document, with every known secret masked.
fn masked<T: serde::Serialize>(doc: &T) -> Result<String, Failure> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| Failure::Input(e.to_string()))?;
    Ok(Redactor::global().redact(&text).into_owned())
}

/// `roster links PIPELINE --json`.
pub fn links(served: &Served) -> Result<String, Failure> {
    let state = served.pipeline.open_state()?;
    let (links, _edited) = state.links_as_stored()?;
    let edits = state.link_edits()?;
    let unlinked = state.unlinked()?;
    masked(&crate::cli::output::Links::of(&links, &edits, &unlinked))
}

/// `roster check PIPELINE --json`: the connectors, their plugins and grants.
pub fn connectors(served: &Served, cache_dir: Option<PathBuf>) -> Result<String, Failure> {
    Ok(connectors_declaring(served, cache_dir)?.0)
}

/// The same document, and the hosts each connector's plugin declares (from
/// the plugins loaded for it, not loaded again).
pub fn connectors_declaring(
    served: &Served,
    cache_dir: Option<PathBuf>,
) -> Result<(String, BTreeMap<String, Vec<String>>), Failure> {
    on_own_runtime(async {
        let session = Session::open(served.pipeline.clone(), cache_dir).await?;
        let declared = session
            .plugins
            .iter()
            .map(|(name, p)| (name.clone(), p.descriptor.hosts.clone()))
            .collect();
        Ok((masked(&crate::cli::output::Check::of(&session))?, declared))
    })
}

/// `roster plan PIPELINE --json`: what an apply would do now; changes
/// nothing in either system.
pub fn plan(served: &Served, cache_dir: Option<PathBuf>) -> Result<String, Failure> {
    masked(&unmasked_plan(served, cache_dir)?)
}

fn unmasked_plan(served: &Served, cache_dir: Option<PathBuf>) -> Result<Plan, Failure> {
    on_own_runtime(async {
        let session = Session::open(served.pipeline.clone(), cache_dir).await?;
        let mut state = session.pipeline.open_state()?;
        operation::plan(&session, &mut *state, &PlanOptions::default(), &Quiet).await
    })
}

/// The plan an apply would carry out now, with every known secret masked
/// (for the console, which renders it rather than sending the document).
pub fn masked_plan(served: &Served, cache_dir: Option<PathBuf>) -> Result<Plan, Failure> {
    parse_plan(&plan(served, cache_dir)?)
}

/// A plan document (as kept for approval), masked again with what this
/// node knows now.
pub fn parse_plan(text: &str) -> Result<Plan, Failure> {
    serde_json::from_str(&Redactor::global().redact(text))
        .map_err(|e| Failure::Input(format!("the plan does not read: {e}")))
}

/// `roster explain PIPELINE ADDRESS --json`.
pub fn explain(
    served: &Served,
    cache_dir: Option<PathBuf>,
    address: &str,
) -> Result<String, Failure> {
    on_own_runtime(async {
        let session = Session::open(served.pipeline.clone(), cache_dir).await?;
        let mut state = session.pipeline.open_state()?;
        let options = PlanOptions::default();
        let e = operation::explain(&session, &mut *state, &options, &Quiet, address).await?;
        masked(&e)
    })
}

/// `roster links PIPELINE add|remove`: staged for the next apply.
pub fn stage(
    served: &Served,
    cache_dir: Option<PathBuf>,
    source: &str,
    target: Option<String>,
    options: BTreeMap<String, String>,
) -> Result<crate::links::LinkEdit, Failure> {
    on_own_runtime(async {
        let pipeline = &served.pipeline;
        let mut state = pipeline.open_state()?;
        operation::links::stage(pipeline, &mut *state, source, target, options, cache_dir).await
    })
}

/// What a run did, account by account: the journal of its plan.
#[derive(serde::Serialize, serde::Deserialize, Debug, utoipa::ToSchema)]
pub struct RunOutcomes {
    pub run: i64,
    pub pipeline: String,
    pub plan_id: String,
    #[schema(value_type = Vec<Object>)]
    pub outcomes: Vec<crate::state::JournalRow>,
}

pub fn outcomes(served: &Served, run: i64, plan_id: &str) -> Result<String, Failure> {
    let state = served.pipeline.open_state()?;
    masked(&RunOutcomes {
        run,
        pipeline: served.pipeline.name.clone(),
        plan_id: plan_id.to_string(),
        outcomes: state.journal_rows(plan_id, None)?,
    })
}

/// Both systems' accounts, read through the pipeline's connectors as
/// `roster read` reads them (the console's "Load external users").
pub fn accounts(
    served: &Served,
    cache_dir: Option<PathBuf>,
) -> Result<(Vec<crate::model::Account>, Vec<crate::model::Account>), Failure> {
    on_own_runtime(async {
        let session = Session::open(served.pipeline.clone(), cache_dir).await?;
        let mut sides = vec![];
        for name in [&session.pipeline.source, &session.pipeline.target] {
            let mut instance = operation::start_reading(&session, name).await?;
            sides.push(operation::read_accounts(&mut instance, |_| {}).await?);
        }
        let target = sides.pop().unwrap_or_default();
        Ok((sides.pop().unwrap_or_default(), target))
    })
}

/// What the target connector declares (its link options), nothing started.
pub fn describe_target(
    served: &Served,
    cache_dir: Option<PathBuf>,
) -> Result<crate::model::Descriptor, Failure> {
    on_own_runtime(async {
        let p = &served.pipeline;
        crate::plugins::describe(p, &p.target, cache_dir).await
    })
}

/// One connector's connection test: its checks, or its error (masked).
pub type Tested = (String, Result<Vec<String>, String>);

/// `roster test-connection PIPELINE [--account ADDRESS]`: each connector's
/// checks, or its error (masked).
pub fn test_connection(
    served: &Served,
    cache_dir: Option<PathBuf>,
    address: Option<String>,
) -> Result<Vec<Tested>, Failure> {
    on_own_runtime(async {
        let session = Session::open(served.pipeline.clone(), cache_dir).await?;
        let p = &session.pipeline;
        let mut out = vec![];
        for name in [p.source.clone(), p.target.clone()] {
            let account = match name == p.source {
                true => address.clone(),
                false => None,
            };
            let tested = operation::test_connection(&session, &name, account)
                .await
                .map(|report| report.checks)
                .map_err(|e| Redactor::global().redact(&e.to_string()).into_owned());
            out.push((name, tested));
        }
        Ok(out)
    })
}
