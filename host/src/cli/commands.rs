//! What each subcommand does.

use super::render::{self, Out};
use super::{Cli, Command, Global, PluginsCommand};
use crate::apply::{ApplyReport, apply};
use crate::error::Failure;
use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::pipeline::Pipeline;
use crate::plan::{Plan, PlanInput, build};
use crate::runtime::cache::CompiledCache;
use crate::runtime::{ConnectorInstance, Runtime};
use crate::session::{self, Session};
use crate::state::{MemoUpdate, SqliteStore, StateStore};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(cli: Cli) -> ExitCode {
    let global = cli.global.clone();
    let outcome = match cli.command {
        Command::Check { pipeline, json } => check(&global, &pipeline, json).await,
        Command::Plugins(PluginsCommand::List { json }) => plugins_list(&global, json).await,
        Command::Plugins(PluginsCommand::Inspect { file, json }) => {
            plugins_inspect(&global, &file, json).await
        }
        Command::TestConnection {
            pipeline,
            connector,
            account,
            json,
        } => test_connection(&global, &pipeline, connector, account, json).await,
        Command::Read {
            pipeline,
            connector,
            groups,
            json,
        } => read(&global, &pipeline, connector, groups, json).await,
        Command::Plan {
            pipeline,
            json,
            out,
            full,
        } => plan(&global, &pipeline, json, out.as_deref(), full).await,
        Command::Apply {
            pipeline,
            plan,
            yes,
            allow_removals,
            json,
            full,
        } => {
            let how = ApplyHow {
                plan_file: plan.as_deref(),
                yes,
                allow_removals,
                json,
                full,
            };
            apply_cmd(&global, &pipeline, how).await
        }
        Command::Status { pipeline, json } => status(&pipeline, json),
        Command::Links {
            pipeline,
            action,
            json,
        } => super::links::run(&pipeline, action, json, cache_dir(&global)).await,
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn cache_dir(global: &Global) -> Option<std::path::PathBuf> {
    if global.no_cache {
        None
    } else {
        global.cache_dir.clone().or_else(CompiledCache::default_dir)
    }
}

async fn open(global: &Global, path: &Path) -> Result<Session, Failure> {
    let pipeline = Pipeline::load(path)?;
    Session::open(pipeline, cache_dir(global)).await
}

async fn check(global: &Global, path: &Path, json: bool) -> Result<ExitCode, Failure> {
    let session = open(global, path).await?;
    // Configure each connector once: that is where a connector checks its own settings.
    for name in session.pipeline.connectors.keys() {
        session.start(name).await?;
    }
    let out = Out::new(json, &session.redactor);
    render::check(&out, &session);
    Ok(ExitCode::SUCCESS)
}

async fn plugins_list(global: &Global, json: bool) -> Result<ExitCode, Failure> {
    let dirs = session::plugin_dirs(None);
    let runtime = Runtime::new(cache_dir(global)).map_err(Failure::bad_input)?;
    let mut found = Vec::new();
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        for file in files {
            let described = describe(&runtime, &file).await;
            found.push((file, described));
        }
    }
    render::plugins_list(json, &dirs, &found);
    Ok(ExitCode::SUCCESS)
}

/// One component's contract and descriptor; a broken file is reported, not fatal.
async fn describe(runtime: &Runtime, file: &Path) -> render::Described {
    let component = runtime.load(file).map_err(|e| format!("{e:#}"))?;
    let redactor = crate::runtime::Redactor::global().clone();
    let mut probe = runtime
        .instantiate("list", &component, &Default::default(), &redactor)
        .await
        .map_err(|e| e.to_string())?;
    let descriptor = probe.describe().await.map_err(|e| e.to_string())?;
    Ok((component.contract.as_str().to_string(), descriptor))
}

async fn plugins_inspect(global: &Global, file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let runtime = Runtime::new(cache_dir(global)).map_err(Failure::bad_input)?;
    let component = runtime.load(file).map_err(Failure::bad_input)?;
    let redactor = crate::runtime::Redactor::global().clone();
    // `describe` runs with nothing granted: no configuration, network or files.
    let mut probe = runtime
        .instantiate("inspect", &component, &Default::default(), &redactor)
        .await
        .map_err(Failure::bad_input)?;
    let descriptor = probe.describe().await?;
    render::inspect(json, &component, &descriptor);
    Ok(ExitCode::SUCCESS)
}

async fn test_connection(
    global: &Global,
    path: &Path,
    connector: Option<String>,
    account: Option<String>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let session = open(global, path).await?;
    let names: Vec<String> = match connector {
        Some(name) if session.pipeline.connectors.contains_key(&name) => vec![name],
        Some(name) => {
            let known: Vec<&String> = session.pipeline.connectors.keys().collect();
            return Err(Failure::Input(format!(
                "--connector {name}: no such connector in this pipeline (known: {known:?})"
            )));
        }
        None => vec![
            session.pipeline.source.clone(),
            session.pipeline.target.clone(),
        ],
    };
    let out = Out::new(json, &session.redactor);
    let mut reports = Vec::new();
    for name in names {
        let mut instance = session.start(&name).await?;
        instance.remember(kept_memo(&session.pipeline, &name)?);
        let mut report = instance.test_connection(account.clone()).await?;
        if name == session.pipeline.source {
            required_delegate(&session.pipeline, &mut report)?;
        }
        reports.push((name, report));
    }
    render::connection(&out, &reports);
    Ok(ExitCode::SUCCESS)
}

/// The sync stage's `require_delegate`, for the one source account a
/// `test-connection --account` read: the same check the plan makes.
fn required_delegate(
    pipeline: &Pipeline,
    report: &mut crate::model::ConnectionReport,
) -> Result<(), Failure> {
    let (Some(holder), Some(a)) = (
        pipeline
            .sync_stage()
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

async fn read(
    global: &Global,
    path: &Path,
    connector: Option<String>,
    with_groups: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    let session = open(global, path).await?;
    let name = connector.unwrap_or_else(|| session.pipeline.source.clone());
    if !session.pipeline.connectors.contains_key(&name) {
        let known: Vec<&String> = session.pipeline.connectors.keys().collect();
        return Err(Failure::Input(format!(
            "--connector {name}: no such connector in this pipeline (known: {known:?})"
        )));
    }
    let mut instance = session.start(&name).await?;
    instance.remember(kept_memo(&session.pipeline, &name)?);
    let progress = render::Progress::new(json);
    let bar = progress.counter(&format!("reading {name}"));
    let accounts = session::read_accounts(&mut instance, |n| bar.set(n)).await?;
    bar.finish();
    let groups = match with_groups {
        true => session::read_groups(&mut instance).await?,
        false => vec![],
    };
    let out = Out::new(json, &session.redactor);
    render::accounts(&out, &name, &accounts, &groups);
    Ok(ExitCode::SUCCESS)
}

/// What `connector` keeps in its memo, for a command that only reads: no
/// state is made where there is none, and nothing it learns is kept.
fn kept_memo(
    pipeline: &Pipeline,
    connector: &str,
) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    match pipeline.state_path.exists() {
        true => Ok(SqliteStore::open(&pipeline.state_path)?.memo(connector)?),
        false => Ok(Default::default()),
    }
}

/// What a plan is made from: both sides read, and the links kept so far.
struct Sides {
    source: session::SourceRead,
    groups: Vec<crate::model::Group>,
    target_accounts: Vec<crate::model::Account>,
    free_seats: Option<u32>,
    creates_refused: Option<String>,
    links: Vec<StoredLink>,
    link_edits: Vec<LinkEdit>,
    unlinked: Vec<Unlinked>,
}

impl Sides {
    fn plan(&self, session: &Session) -> Plan {
        let p = &session.pipeline;
        build(&PlanInput {
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
        })
    }
}

/// Reads the source and the target at once; the target's instance comes
/// back too, for an apply to write with.
async fn read_sides(
    session: &Session,
    quiet: bool,
    full: bool,
) -> Result<(Sides, ConnectorInstance, SqliteStore), Failure> {
    let p = &session.pipeline;
    let progress = render::Progress::new(quiet);
    let mut state = SqliteStore::open(&p.state_path)?;
    let (source_memo, target_memo) = (state.memo(&p.source)?, state.memo(&p.target)?);
    let source_side = async {
        let mut source = session.start(&p.source).await?;
        source.remember(source_memo);
        let bar = progress.counter(&format!("reading {}", p.source));
        let read =
            session::read_source(session, &mut source, &mut state, full, |n| bar.set(n)).await?;
        let groups = if p.filters().any(|f| !f.member_of.is_empty()) {
            session::read_groups(&mut source).await?
        } else {
            vec![]
        };
        bar.finish();
        Ok::<_, Failure>((read, groups, source.memo_written()))
    };
    let target_side = async {
        let mut target = session.start(&p.target).await?;
        target.remember(target_memo);
        let bar = progress.counter(&format!("reading {}", p.target));
        let accounts = session::read_accounts(&mut target, |n| bar.set(n)).await?;
        bar.finish();
        // `unauthorized`: the target lets no account be created here at all.
        let seats = match target.seats().await {
            Ok(free) => (free, None),
            Err(crate::runtime::CallError::Answered { error, .. })
                if error.kind == crate::model::ErrorKind::Unauthorized =>
            {
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
        links: state.links()?,
        link_edits: state.link_edits()?,
        unlinked: state.unlinked()?,
    };
    Ok((sides, target, state))
}

async fn plan(
    global: &Global,
    path: &Path,
    json: bool,
    out_file: Option<&Path>,
    full: bool,
) -> Result<ExitCode, Failure> {
    let session = open(global, path).await?;
    let (sides, target, state) = read_sides(&session, json, full).await?;
    // Only an apply writes: the target connector's memory goes before the
    // plan is built, and what was read before the plan is written out.
    drop((target, state));
    let plan = sides.plan(&session);
    drop(sides);
    let out = Out::new(json, &session.redactor);
    match out_file {
        Some(file) => {
            // Serialised once, for the file and for `--json`.
            let text = session.redactor.redact_owned(
                serde_json::to_string_pretty(&plan).map_err(|e| Failure::Input(e.to_string()))?,
            );
            write_atomic(file, text.as_bytes())?;
            match json {
                true => out.json_text(&text),
                false => render::plan(&out, &plan),
            }
        }
        None => render::plan(&out, &plan),
    }
    if let Some(reason) = &plan.refused {
        return Err(Failure::Refused(reason.clone()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::Input(format!("cannot write {}: {e}", path.display())))
}

fn load_plan(path: &Path, pipeline: &Pipeline) -> Result<Plan, Failure> {
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

/// The flags of `roster apply`.
struct ApplyHow<'a> {
    plan_file: Option<&'a Path>,
    yes: bool,
    allow_removals: bool,
    json: bool,
    full: bool,
}

async fn apply_cmd(global: &Global, path: &Path, how: ApplyHow<'_>) -> Result<ExitCode, Failure> {
    let ApplyHow {
        plan_file,
        yes,
        allow_removals,
        json,
        full,
    } = how;
    let session = open(global, path).await?;
    let (plan, mut target, mut state) = match plan_file {
        None => {
            let (sides, target, state) = read_sides(&session, json, full).await?;
            (sides.plan(&session), target, state)
        }
        Some(file) => {
            let plan = load_plan(file, &session.pipeline)?;
            let state = SqliteStore::open(&session.pipeline.state_path)?;
            let mut target = session.start(&session.pipeline.target).await?;
            target.remember(state.memo(&session.pipeline.target)?);
            (plan, target, state)
        }
    };
    let out = Out::new(json, &session.redactor);
    if !json {
        render::plan(&out, &plan);
    }
    if let Some(reason) = &plan.refused
        && !allow_removals
    {
        return Err(Failure::Refused(reason.clone()));
    }
    if plan.is_empty() {
        if json {
            render::apply(&out, &plan, &ApplyReport::default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !yes && !confirm(&plan, &session.pipeline.target)? {
        eprintln!("nothing applied");
        return Ok(ExitCode::SUCCESS);
    }
    let run = state.begin_run("apply", &plan.id)?;
    let progress = render::Progress::new(json);
    let bar = progress.bar("applying", plan.changes.len());
    let report = apply(
        &plan,
        &mut target,
        &mut state,
        session.pipeline.batch_size as usize,
        |n| bar.set(n),
    )
    .await?;
    bar.finish();
    let outcome = if report.stopped.is_some() {
        "stopped"
    } else if report.failed > 0 {
        "partial"
    } else {
        "done"
    };
    state.finish_run(run, report.applied, report.failed, outcome)?;
    render::apply(&out, &plan, &report);
    Ok(
        if report.failed > 0 || report.skipped > 0 || report.stopped.is_some() {
            ExitCode::from(crate::error::EXIT_PARTIAL)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn confirm(plan: &Plan, target: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Input(
            "apply needs confirmation: run it on a terminal, or pass --yes".into(),
        ));
    }
    eprint!("Apply {} changes to `{target}`? [y/N] ", plan.changes.len());
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::Input(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn status(path: &Path, json: bool) -> Result<ExitCode, Failure> {
    let pipeline = Pipeline::load_unresolved(path)?;
    if !pipeline.state_path.exists() {
        return Err(Failure::Input(format!(
            "no state yet at {}: run `roster apply` first",
            pipeline.state_path.display()
        )));
    }
    let state = SqliteStore::open(&pipeline.state_path)?;
    let runs = state.recent_runs(10)?;
    let links = state.links()?;
    let errors = state.account_errors()?;
    render::status(json, &runs, &links, &errors);
    Ok(ExitCode::SUCCESS)
}
