//! A run as a library call, as Terraform's `Context.Plan`: read both sides,
//! take the links and staged edits from the state, build the plan; apply a
//! plan through the target connector with a journal. The CLI, a scheduler
//! or a server call these and render what comes back; progress is told
//! through the [`Progress`] callbacks, not drawn here.
//!
//! Reading writes two things to the state, even for `plan`: the source's
//! snapshot behind an incremental read (a delta's watermark is only good
//! once: without the snapshot, the next read would have to be a full one)
//! and what a connector put in its memo while reading (facts the service
//! will not tell again). Neither is a decision: links, runs and the journal
//! are written only by [`apply`].

mod connection;
mod identity;
pub mod links;
mod read;

pub use connection::{start_reading, test_connection};
pub use read::{PAGE_SIZE, SourceRead, read_accounts, read_groups};

use crate::apply::ApplyReport;
use crate::error::Failure;
use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::model::{Account, ErrorKind, Group};
use crate::pipeline::Pipeline;
use crate::plan::{Explanation, Plan, PlanInput, build};
use crate::plugins::Session;
use crate::runtime::{CallError, ConnectorInstance};
use crate::state::lock::RunLock;
use crate::state::{MemoUpdate, StateStore};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What a run tells as it goes; every method does nothing by default.
pub trait Progress {
    /// `count` accounts read so far from `connector`.
    fn reading(&self, connector: &str, count: usize) {
        let _ = (connector, count);
    }
    /// `connector` has been read.
    fn read(&self, connector: &str) {
        let _ = connector;
    }
    /// `done` of `total` changes sent and answered.
    fn applying(&self, done: usize, total: usize) {
        let _ = (done, total);
    }
}

/// Tells nothing.
pub struct Quiet;

impl Progress for Quiet {}

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Read every source account, even where an incremental read is possible.
    pub full_read: bool,
    /// Use this state although it belongs to another pipeline, or start a
    /// new one although a state of this pipeline lies beside it.
    pub new_state: bool,
    /// Plan and apply only this rank (1..=the pipeline's `ranks`), beside
    /// the other ranks' applies.
    pub rank: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Apply a plan a safety rule refused (`--allow-removals`).
    pub allow_removals: bool,
    /// Set to stop the apply after the batch in flight (SIGINT, SIGTERM).
    pub stop: Arc<AtomicBool>,
}

/// A plan, and the target connector that will carry it out (the one that
/// read the target for it, or a fresh one for a saved plan), with the
/// state's lock held from before the read until the apply ends.
pub struct Ready {
    pub plan: Plan,
    target: ConnectorInstance,
    _lock: RunLock,
}

/// Takes the state's lock for an apply; runs a dead process left marked
/// running are recorded as interrupted. A state of another pipeline (or a
/// new state while this pipeline's lies elsewhere) is refused unless
/// `new_state`; the state then records this pipeline as its own.
fn lock(
    session: &Session,
    state: &mut dyn StateStore,
    new_state: bool,
    rank: Option<u32>,
) -> Result<RunLock, Failure> {
    let p = &session.pipeline;
    let lock = p.lock_state_for(rank)?;
    if let Some(problem) = identity::problem(p, state)?
        && !new_state
    {
        return Err(Failure::Input(problem));
    }
    state.set_identity(&identity::of(p))?;
    // Other ranks' runs may be running beside this one: only a whole apply
    // knows that every run still marked running was left by a dead process.
    if rank.is_some() {
        return Ok(lock);
    }
    let ended = state.end_abandoned_runs()?;
    if ended > 0 {
        tracing::warn!("{ended} earlier run(s) ended without finishing; recorded as interrupted");
    }
    Ok(lock)
}

/// Makes the plan: changes nothing in either system.
pub async fn plan(
    session: &Session,
    state: &mut dyn StateStore,
    options: &PlanOptions,
    progress: &dyn Progress,
) -> Result<Plan, Failure> {
    let sides = read_to_plan(session, state, options, progress).await?;
    Ok(sides.plan(session))
}

/// Both sides read for a plan that is only shown: a state that looks like
/// another pipeline's is a warning here (an apply refuses it), and the
/// target connector's memory goes before the plan is built.
async fn read_to_plan(
    session: &Session,
    state: &mut dyn StateStore,
    options: &PlanOptions,
    progress: &dyn Progress,
) -> Result<Sides, Failure> {
    if let Some(problem) = identity::problem(&session.pipeline, state)?
        && !options.new_state
    {
        tracing::warn!("{problem}");
    }
    let (sides, target) = read_sides(session, state, options, progress).await?;
    drop(target);
    Ok(sides)
}

/// Plans, and explains what the plan does with the account that holds
/// `address` (`roster explain`): changes nothing in either system.
pub async fn explain(
    session: &Session,
    state: &mut dyn StateStore,
    options: &PlanOptions,
    progress: &dyn Progress,
    address: &str,
) -> Result<Explanation, Failure> {
    let sides = read_to_plan(session, state, options, progress).await?;
    let input = sides.input(session);
    let plan = build(&input);
    Ok(crate::plan::explain(&input, &plan, address))
}

/// Makes the plan an apply will carry out, keeping the target connector.
pub async fn plan_to_apply(
    session: &Session,
    state: &mut dyn StateStore,
    options: &PlanOptions,
    progress: &dyn Progress,
) -> Result<Ready, Failure> {
    let lock = lock(session, state, options.new_state, options.rank)?;
    let (sides, target) = read_sides(session, state, options, progress).await?;
    let mut plan = sides.plan(session);
    if let Some(rank) = options.rank {
        let ranks = session.pipeline.ranks;
        if !(1..=ranks).contains(&rank) {
            return Err(Failure::Input(format!(
                "rank {rank}: the pipeline has ranks 1 to {ranks} (apply.ranks)"
            )));
        }
        plan = plan.only_rank(rank, ranks);
    }
    Ok(Ready {
        plan,
        target,
        _lock: lock,
    })
}

/// A plan saved with `plan --out`, checked against the pipeline, ready to apply.
pub async fn saved_plan(
    session: &Session,
    state: &mut dyn StateStore,
    file: &Path,
    new_state: bool,
) -> Result<Ready, Failure> {
    let plan = read_plan_file(file, &session.pipeline)?;
    let lock = lock(session, state, new_state, None)?;
    let name = &session.pipeline.target;
    let mut target = session.start(name).await?;
    target.remember(state.memo(name)?);
    Ok(Ready {
        plan,
        target,
        _lock: lock,
    })
}

/// Carries out a plan, recording the run and each outcome; a plan a safety
/// rule refused is not touched unless `allow_removals`. An empty plan
/// records no run.
pub async fn apply(
    session: &Session,
    state: &mut dyn StateStore,
    ready: &mut Ready,
    options: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, Failure> {
    let Ready { plan, target, .. } = ready;
    if let Some(reason) = &plan.refused
        && !options.allow_removals
    {
        return Err(Failure::Refused(reason.clone()));
    }
    if plan.is_empty() {
        return Ok(ApplyReport::default());
    }
    let run = state.begin_run("apply", &plan.id)?;
    let total = plan.changes.len();
    let batch = session.pipeline.batch_size as usize;
    // Every log line of the run says which pipeline and run it belongs to
    // (fields of each JSON line with --log-format json), for a collector
    // that gathers many pipelines' logs.
    let span = tracing::info_span!("run", pipeline = %session.pipeline.name, run, plan = %plan.id);
    let report = tracing::Instrument::instrument(
        crate::apply::apply(plan, target, state, batch, &options.stop, |n| {
            progress.applying(n, total)
        }),
        span,
    )
    .await?;
    state.finish_run(run, report.applied, report.failed, report.outcome())?;
    Ok(report)
}

/// A plan file written by `plan --out`, refused when it was made from
/// another version of the pipeline or in another format.
pub fn read_plan_file(path: &Path, pipeline: &Pipeline) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("cannot read plan {}: {e}", path.display())))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        Failure::Input(format!(
            "{}:{}:{}: not a roster plan: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if plan.format != crate::plan::FORMAT {
        return Err(Failure::Input(format!(
            "{}: plan format {} is not {}",
            path.display(),
            plan.format,
            crate::plan::FORMAT
        )));
    }
    if plan.pipeline_fingerprint != pipeline.fingerprint {
        return Err(Failure::Input(format!(
            "{}: the plan was made from a different version of {}; plan again",
            path.display(),
            pipeline.path.display()
        )));
    }
    Ok(plan)
}

/// What a plan is made from: both sides read, and the links kept so far.
struct Sides {
    source: SourceRead,
    groups: Vec<Group>,
    target_accounts: Vec<Account>,
    free_seats: Option<u32>,
    creates_refused: Option<String>,
    links: Vec<StoredLink>,
    link_edits: Vec<LinkEdit>,
    unlinked: Vec<Unlinked>,
}

impl Sides {
    fn plan(self, session: &Session) -> Plan {
        build(&self.input(session))
    }

    fn input<'a>(&'a self, session: &'a Session) -> PlanInput<'a> {
        let p = &session.pipeline;
        PlanInput {
            pipeline: p,
            source: &self.source.accounts,
            source_read: self.source.mode,
            source_groups: &self.groups,
            target: &self.target_accounts,
            target_descriptor: &session.plugins[&p.target].descriptor,
            links: &self.links,
            link_edits: &self.link_edits,
            unlinked: &self.unlinked,
            free_seats: self.free_seats,
            creates_refused: self.creates_refused.clone(),
        }
    }
}

/// Reads the source and the target at once; the target's instance comes
/// back too, for an apply to write with.
async fn read_sides(
    session: &Session,
    state: &mut dyn StateStore,
    options: &PlanOptions,
    progress: &dyn Progress,
) -> Result<(Sides, ConnectorInstance), Failure> {
    let p = &session.pipeline;
    let (source_memo, target_memo) = (state.memo(&p.source)?, state.memo(&p.target)?);
    let links = state.links()?;
    let link_edits = state.link_edits()?;
    let unlinked = state.unlinked()?;
    let source_side = async {
        let mut source = session.start(&p.source).await?;
        source.remember(source_memo);
        let read = read::read_source(session, &mut source, state, options.full_read, |n| {
            progress.reading(&p.source, n)
        })
        .await?;
        let groups = match p.stages.filters.iter().any(|f| !f.member_of.is_empty()) {
            true => read_groups(&mut source).await?,
            false => vec![],
        };
        progress.read(&p.source);
        Ok::<_, Failure>((read, groups, source.memo_written()))
    };
    let target_side = async {
        let mut target = session.start(&p.target).await?;
        target.remember(target_memo);
        let accounts = read_accounts(&mut target, |n| progress.reading(&p.target, n)).await?;
        progress.read(&p.target);
        // `unauthorized`: the target lets no account be created here at all.
        let seats = match target.seats().await {
            Ok(free) => (free, None),
            Err(CallError::Answered { error, .. }) if error.kind == ErrorKind::Unauthorized => {
                (Some(0), Some(error.message))
            }
            Err(e) => return Err(e.into()),
        };
        Ok::<_, Failure>((target, accounts, seats))
    };
    let (source_side, target_side) = tokio::join!(source_side, target_side);
    let (source, groups, source_memo) = source_side?;
    let (mut target, target_accounts, (free_seats, creates_refused)) = target_side?;
    // What either connector learned while reading is kept now.
    for (connector, writes) in [(&p.source, source_memo), (&p.target, target.memo_written())] {
        state.save_memo(MemoUpdate {
            connector,
            writes: &writes,
        })?;
    }
    let sides = Sides {
        source,
        groups,
        target_accounts,
        free_seats,
        creates_refused,
        links,
        link_edits,
        unlinked,
    };
    Ok((sides, target))
}
