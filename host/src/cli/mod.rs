//! The `roster` command line: quiet by default, precise errors, `--json` for
//! machines. Exit codes are listed in [`crate::error`].

mod apply;
mod check;
mod completions;
mod explain;
mod init;
mod links;
mod markdown;
pub mod output;
mod plan;
mod plugins;
mod read;
mod render;
mod serve;
mod state;
mod status;
mod test_connection;

use crate::error::Failure;
use crate::pipeline::Pipeline;
use crate::plugins::Session;
use crate::runtime::cache::CompiledCache;
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "Keep users and groups in sync between a mail platform and the systems that depend on it",
    after_help = format!("{EXAMPLES}\n\n{}", crate::error::EXIT_CODES_HELP)
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Examples and the environment, under `roster --help` (before the exit codes).
const EXAMPLES: &str = "\
Examples:
  roster init --source exchange-online --target zivver   # a first pipeline file
  roster check pipeline.toml                            # plugins, configuration, grants
  roster plan pipeline.toml --show-skipped              # what would change, and what is left alone
  roster explain pipeline.toml ann@example.com          # why this account is (not) synced
  roster apply pipeline.toml --yes                      # make the changes (one apply per state)

Environment:
  ROSTER_PLUGINS_DIR   where plugin names are looked up (also plugins/ beside the binary)
  ROSTER_CACHE_DIR     the compiled components' cache (default ~/.cache/roster)
  NO_COLOR             no colour in the logs
  RUST_LOG             exactly which logs to show (overrides -v)";

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// More log output (-v info, -vv debug); also RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Where compiled components are cached (default: ~/.cache/roster).
    #[arg(long, global = true, env = "ROSTER_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components every time instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Logs on stderr as text, or as one JSON object per line (for a log
    /// collector).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Colour in the logs: only on a terminal without NO_COLOR (auto), always, or never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Global {
    fn cache_dir(&self) -> Option<PathBuf> {
        match self.no_cache {
            true => None,
            false => self.cache_dir.clone().or_else(CompiledCache::default_dir),
        }
    }

    /// The pipeline at `path`, with its plugins loaded and configuration checked.
    async fn open(&self, path: &Path) -> Result<Session, Failure> {
        let pipeline = Pipeline::load(path)?;
        Session::open(pipeline, self.cache_dir()).await
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a first pipeline file from two plugins' descriptors.
    Init(init::Init),
    /// Validate a pipeline, load its plugins and show what each connector is granted.
    Check(check::Check),
    /// List or inspect connector plugins.
    #[command(subcommand)]
    Plugins(plugins::Plugins),
    /// Check a connector's connection, and optionally one account.
    TestConnection(test_connection::TestConnection),
    /// Read a connector's accounts (and groups) as the pipeline would see them; changes nothing.
    Read(read::Read),
    /// Show every change an apply would make; touches nothing.
    Plan(plan::PlanCmd),
    /// Make the changes, recording each outcome in the state store.
    Apply(apply::ApplyCmd),
    /// Why one account is (not) synced: each stage's decision for its address.
    Explain(explain::Explain),
    /// List linked accounts (how each was linked, its options); `add`, `remove`
    /// and `unstage` stage link changes for the next apply.
    #[command(
        args_conflicts_with_subcommands = false,
        subcommand_precedence_over_arg = false
    )]
    Links(links::Links),
    /// Recent runs, linked accounts and the last error per account.
    Status(status::Status),
    /// Move a pipeline's state: `state migrate --from FILE --to postgres://…`.
    #[command(subcommand)]
    State(state::StateAction),
    /// Run pipelines on schedules as a service node (docs/service.md);
    /// `serve token create` makes an API token.
    Serve(serve::Serve),
    /// Approve a plan that waits in the service: a node applies it if the
    /// pipeline still plans exactly it.
    Approve(serve::Decide),
    /// Reject a plan that waits in the service.
    Reject(serve::Decide),
    /// Shell completions on stdout: `roster completions bash > /etc/bash_completion.d/roster`.
    Completions(completions::Completions),
    /// The man page (roff) on stdout: `roster man > roster.1`.
    Man,
}

impl Command {
    async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        match self {
            Command::Init(c) => c.run(global).await,
            Command::Check(c) => c.run(global).await,
            Command::Plugins(c) => c.run(global).await,
            Command::TestConnection(c) => c.run(global).await,
            Command::Read(c) => c.run(global).await,
            Command::Plan(c) => c.run(global).await,
            Command::Apply(c) => c.run(global).await,
            Command::Explain(c) => c.run(global).await,
            Command::Links(c) => c.run(global).await,
            Command::Status(c) => c.run(),
            Command::State(c) => c.run(),
            Command::Serve(c) => c.run(global).await,
            Command::Approve(c) => c.run(true).await,
            Command::Reject(c) => c.run(false).await,
            Command::Completions(c) => c.run(),
            Command::Man => completions::man(),
        }
    }
}

impl Command {
    /// Whether the command was asked for a `--json` document.
    fn json(&self) -> bool {
        match self {
            Command::Check(c) => c.json,
            Command::Plugins(plugins::Plugins::List { json })
            | Command::Plugins(plugins::Plugins::Inspect { json, .. }) => *json,
            Command::TestConnection(c) => c.json,
            Command::Read(c) => c.json,
            Command::Plan(c) => c.json(),
            Command::Apply(c) => c.json,
            Command::Explain(c) => c.json,
            Command::Links(c) => c.json,
            Command::Status(c) => c.json,
            Command::State(c) => c.json(),
            Command::Approve(c) | Command::Reject(c) => c.json,
            Command::Init(_) | Command::Serve(_) | Command::Completions(_) | Command::Man => false,
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let json = cli.command.json();
    match cli.command.run(&cli.global).await {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {failure}");
            if let Some(hint) = failure.hint() {
                eprintln!("hint: {hint}");
            }
            if json {
                // A script asked for JSON gets JSON, also when nothing ran.
                let doc = output::Failed::of(&failure);
                let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
                println!("{}", crate::runtime::Redactor::global().redact(&text));
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

/// The pipeline's connector called `name`, or an error listing those it has.
fn connector_named<'a>(pipeline: &'a Pipeline, name: &str) -> Result<&'a str, Failure> {
    match pipeline.connectors.get_key_value(name) {
        Some((name, _)) => Ok(name),
        None => {
            let known: Vec<&String> = pipeline.connectors.keys().collect();
            Err(Failure::Input(format!(
                "--connector {name}: no such connector in this pipeline (known: {known:?})"
            )))
        }
    }
}

/// Writes a file whole or not at all.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = path.with_extension("tmp");
    crate::runtime::cache::write_private(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::Input(format!("cannot write {}: {e}", path.display())))
}

pub fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a closed pipe (`roster plan … | head`) would
    // make the next print panic; with the default action the process ends
    // quietly, as `cat` or `grep` do.
    // SAFETY: called first in main, before any thread or handler exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.global.log_format, cli.global.color);
    // One thread: connectors' calls and their HTTP interleave at await
    // points, with no hand-over between threads per request. Measured on the
    // 100,000-mailbox plan (docs/performance.md): about a sixth less CPU and
    // wall time than the multi-threaded runtime.
    let mut builder = tokio::runtime::Builder::new_current_thread();
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

fn init_tracing(verbose: u8, format: LogFormat, color: Color) {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let redactor = crate::runtime::Redactor::global().clone();
    // By default colour only for a person at a terminal, and never with NO_COLOR set.
    let ansi = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let writer = move || crate::runtime::redact::RedactingStderr::new(redactor.clone());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi && format == LogFormat::Text)
        .with_target(false);
    // One layer type either way: JSON lines or text, chosen at run time.
    let layer = match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer.boxed(),
    };
    // RUST_LOG, when set, says exactly what to show. Otherwise dependencies
    // stay at warn: their debug output is noise to an admin (and wasmtime's
    // echoes guest output, which the redacting writer masks all the same).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG") {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init();
        return;
    }
    let own = match verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        _ => Level::DEBUG,
    };
    let filter = Targets::new()
        .with_default(Level::WARN)
        .with_target("roster", own);
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .init();
}
