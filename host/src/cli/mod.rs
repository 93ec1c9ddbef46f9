//! The `roster` command line: quiet by default, precise errors, `--json` for
//! machines. Exit codes are listed in [`crate::error`].

mod commands;
mod links;
mod render;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "Keep users and groups in sync between a mail platform and the systems that depend on it"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a pipeline, load its plugins and show what each connector is granted.
    Check {
        pipeline: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List or inspect connector plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Check a connector's connection, and optionally one account.
    TestConnection {
        pipeline: PathBuf,
        /// The connector to test (default: source and target).
        #[arg(long)]
        connector: Option<String>,
        /// An address whose account must be readable.
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Read a connector's accounts (and groups) as the pipeline would see them; changes nothing.
    Read {
        pipeline: PathBuf,
        /// The connector to read (default: the source).
        #[arg(long)]
        connector: Option<String>,
        /// Also read groups and their members.
        #[arg(long)]
        groups: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show every change an apply would make; touches nothing.
    Plan {
        pipeline: PathBuf,
        #[arg(long)]
        json: bool,
        /// Save the plan to a file for `apply --plan`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Read every source account, even where an incremental read is possible.
        #[arg(long)]
        full: bool,
    },
    /// Make the changes, recording each outcome in the state store.
    Apply {
        pipeline: PathBuf,
        /// Apply a plan saved with `plan --out` instead of planning afresh.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow a plan whose removals exceed the safety threshold.
        #[arg(long)]
        allow_removals: bool,
        #[arg(long)]
        json: bool,
        /// Read every source account, even where an incremental read is possible.
        #[arg(long, conflicts_with = "plan")]
        full: bool,
    },
    /// List linked accounts (how each was linked, its options); `add`, `remove`
    /// and `unstage` stage link changes for the next apply.
    #[command(
        args_conflicts_with_subcommands = false,
        subcommand_precedence_over_arg = false
    )]
    Links {
        pipeline: PathBuf,
        #[command(subcommand)]
        action: Option<links::LinksAction>,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Recent runs, linked accounts and the last error per account.
    Status {
        pipeline: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// List the plugins found in the plugin directories.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Describe a component: name, version, contract, capabilities, config fields, hosts.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
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
    runtime.block_on(commands::run(cli))
}

fn init_tracing(verbose: u8) {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let redactor = crate::runtime::Redactor::global().clone();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || crate::runtime::redact::RedactingStderr::new(redactor.clone()))
        .with_target(false);
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
