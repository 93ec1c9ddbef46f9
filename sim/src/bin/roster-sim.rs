//! `roster-sim`: runs a simulator as a process, for the demo and the
//! benchmarks. Prints `listening <url> tenant=<id>` once ready; stops on
//! Ctrl-C or when its stdin closes (so a parent that dies takes it along).

use anyhow::Context;
use clap::{Parser, Subcommand};
use roster_sim::{Faults, m365};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roster-sim",
    about = "Simulated vendor APIs for Roster's tests, demo and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    sim: Sim,
}

#[derive(Subcommand)]
enum Sim {
    /// Microsoft 365: Entra tokens, Graph users/groups/delta, Exchange admin mailboxes.
    M365 {
        /// A tenant manifest (`tenant.json`) to seed from.
        #[arg(long, conflicts_with = "generate")]
        seed: Option<PathBuf>,
        /// Generate a tenant of this many mailboxes instead.
        #[arg(long)]
        generate: Option<usize>,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        rng_seed: u64,
        /// Domain of a generated tenant.
        #[arg(long, default_value = "bench.example")]
        domain: String,
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Faults to inject, as JSON (see `roster_sim::Faults`).
        #[arg(long)]
        faults: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let running = match cli.sim {
        Sim::M365 {
            seed,
            generate,
            rng_seed,
            domain,
            port,
            faults,
        } => {
            let tenant = match (seed, generate) {
                (Some(path), _) => m365::seed::load(&path)?,
                (None, Some(n)) => m365::generate::tenant(&m365::generate::Spec {
                    mailboxes: n,
                    seed: rng_seed,
                    domain,
                }),
                (None, None) => anyhow::bail!("give --seed FILE or --generate N"),
            };
            let id = tenant.id.clone();
            let faults: Faults = match faults {
                Some(json) => serde_json::from_str(&json).context("--faults")?,
                None => Faults::default(),
            };
            let (running, _) = m365::start(tenant, faults, port)?;
            println!("listening {} tenant={id}", running.url());
            running
        }
    };
    std::io::stdout().flush()?;
    // Until stdin closes: the parent holds the pipe.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    drop(running);
    Ok(())
}
