//! `roster-sim`: runs a simulator as a process, for the demo and the
//! benchmarks. Prints `listening <url> tenant=<id>` once ready; stops on
//! Ctrl-C or when its stdin closes (so a parent that dies takes it along),
//! or with `--foreground` only on SIGINT/SIGTERM (for `nohup`, `&` or a
//! service manager, where stdin is closed from the start).

use anyhow::Context;
use clap::{Parser, Subcommand};
use roster_sim::{Faults, m365, zivver};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roster-sim",
    about = "Simulated vendor APIs for Roster's tests, demo and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    sim: Sim,
    /// Run until SIGINT or SIGTERM, whatever happens to stdin (by default
    /// the simulator stops when its stdin closes).
    #[arg(long, global = true)]
    foreground: bool,
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
    /// SuperOffice CRM: associates, persons, licences and preferences at `/api/v1/`.
    Superoffice {
        /// A tenant manifest (`tenant.json`) to seed from.
        #[arg(long)]
        seed: PathBuf,
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long)]
        faults: Option<String>,
    },
    /// Dynamics 365 (Dataverse Web API): `systemusers` at `/api/data/v9.2/`, tokens at `/{tenant}/oauth2/v2.0/token`.
    Dynamics {
        /// An organisation manifest (`org.json`) to seed from.
        #[arg(long)]
        seed: PathBuf,
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long)]
        faults: Option<String>,
    },
    /// Zivver: SCIM 2.0 Users and Groups (functional accounts) at `/api/scim/v2/`.
    Zivver {
        /// An organisation manifest (`org.json`) to seed from.
        #[arg(long)]
        seed: PathBuf,
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Enforce the real budget of 50 requests per 10 s.
        #[arg(long)]
        real_budget: bool,
        /// Faults to inject, as JSON (see `roster_sim::Faults`).
        #[arg(long)]
        faults: Option<String>,
    },
    /// A generated Microsoft 365 tenant and a Zivver organisation that goes
    /// with it (part of it in sync), for benchmarks.
    Pair {
        #[arg(long)]
        mailboxes: usize,
        #[arg(long, default_value_t = 1)]
        rng_seed: u64,
        /// Share of the mailboxes already in Zivver and in sync.
        #[arg(long, default_value_t = 0.5)]
        in_sync: f64,
        #[arg(long, default_value_t = 0)]
        m365_port: u16,
        #[arg(long, default_value_t = 0)]
        zivver_port: u16,
        /// Faults for the Zivver side, as JSON (latency, throttle budget …).
        #[arg(long)]
        zivver_faults: Option<String>,
    },
}

fn faults_of(json: Option<String>) -> anyhow::Result<Faults> {
    match json {
        Some(json) => serde_json::from_str(&json).context("--faults"),
        None => Ok(Faults::default()),
    }
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
            let (running, _) = m365::start(tenant, faults_of(faults)?, port)?;
            println!("listening {} tenant={id}", running.url());
            running
        }
        Sim::Zivver {
            seed,
            port,
            real_budget,
            faults,
        } => {
            let org = zivver::seed::load(&seed)?;
            let mut faults = faults_of(faults)?;
            if real_budget {
                faults.throttle = Some(zivver::real_budget());
            }
            let (running, _) = zivver::start(org, faults, port)?;
            println!("listening {}/api/scim/v2/", running.url());
            running
        }
        Sim::Superoffice { seed, port, faults } => {
            let crm = roster_sim::superoffice::seed::load(&seed)?;
            let (running, _) = roster_sim::superoffice::start(crm, faults_of(faults)?, port)?;
            println!("listening {}/api/v1/", running.url());
            running
        }
        Sim::Dynamics { seed, port, faults } => {
            let org = roster_sim::dynamics::seed::load(&seed)?;
            let (running, _) = roster_sim::dynamics::start(org, faults_of(faults)?, port)?;
            println!("listening {}/api/data/v9.2/", running.url());
            running
        }
        Sim::Pair {
            mailboxes,
            rng_seed,
            in_sync,
            m365_port,
            zivver_port,
            zivver_faults,
        } => {
            let tenant = m365::generate::tenant(&m365::generate::Spec::new(mailboxes, rng_seed));
            let org = zivver::generate::from_tenant(&tenant, in_sync, rng_seed, "bench-api-key");
            let (z, _) = zivver::start(org, faults_of(zivver_faults)?, zivver_port)?;
            let (m, _) = m365::start(tenant, Faults::default(), m365_port)?;
            println!("listening {} {}", m.url(), z.url());
            std::io::stdout().flush()?;
            wait(cli.foreground);
            drop((m, z));
            return Ok(());
        }
    };
    std::io::stdout().flush()?;
    wait(cli.foreground);
    drop(running);
    Ok(())
}

/// Until stdin closes (the parent holds the pipe), or with `foreground`
/// until a signal ends the process.
fn wait(foreground: bool) {
    if foreground {
        loop {
            std::thread::park();
        }
    }
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}
