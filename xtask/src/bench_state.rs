//! `cargo xtask bench state [N]`: the same csv → csv pipeline applied with
//! its state in the SQLite file and in PostgreSQL (the machine's server),
//! in one run, so the ratio is what the store costs: a first apply of N
//! creates (journal, links, snapshot writes), then a plan with nothing to
//! do (reading N links). Release binary; wall, roster's own CPU, peak RSS.

use crate::bench::{Binaries, measure_with, work_dir};
use anyhow::{Result, bail};
use std::path::Path;

const HEADER: &str = "id,kind,email,aliases,display_name,given_name,family_name,enabled,org_unit,external_key,delegates,groups\n";

fn pipeline(batch: usize) -> String {
    format!(
        r#"name = "bench-state"
source = "src"
target = "dst"

[connectors.src]
plugin = "csv"
directory = "src"

[connectors.dst]
plugin = "csv"
directory = "dst"
limits = {{ call_timeout_secs = 3600 }}

[apply]
batch_size = {batch}

[[stages]]
type = "link"

[[stages]]
type = "sync"
"#
    )
}

fn setup(root: &Path, name: &str, n: usize) -> Result<std::path::PathBuf> {
    let work = work_dir(root, name)?;
    std::fs::create_dir_all(work.join("src"))?;
    std::fs::create_dir_all(work.join("dst"))?;
    let mut rows = String::from(HEADER);
    for i in 0..n {
        rows.push_str(&format!(
            "u{i},person,user{i:06}@bench.example,,User {i},,,true,,k{i},,\n"
        ));
    }
    std::fs::write(work.join("src/accounts.csv"), rows)?;
    std::fs::write(work.join("dst/accounts.csv"), HEADER)?;
    std::fs::write(work.join("pipeline.toml"), pipeline(500))?;
    Ok(work)
}

pub fn state(root: &Path, b: &Binaries, n: usize) -> Result<()> {
    let pg = std::env::var("ROSTER_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("roster_bench_state_{}", std::process::id());
    let url = format!("{pg}?schema={schema}");
    println!(
        "| state | apply {n} creates: wall (s) | CPU (s) | peak RSS (MB) | plan, nothing to do: wall (s) | CPU (s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut walls = Vec::new();
    for (label, env) in [
        ("SQLite file", vec![]),
        ("PostgreSQL", vec![("ROSTER_STATE_URL", url.as_str())]),
    ] {
        let work = setup(
            root,
            &format!(
                "state-{}",
                if env.is_empty() { "sqlite" } else { "postgres" }
            ),
            n,
        )?;
        measure_with(b, &work, &["check", "pipeline.toml"], &env)?;
        let apply = measure_with(
            b,
            &work,
            &["apply", "pipeline.toml", "--yes", "--json"],
            &env,
        )?;
        let plan = measure_with(b, &work, &["plan", "pipeline.toml", "--json"], &env)?;
        if !apply.ok || !plan.ok {
            bail!("{label}: roster failed (logs in {})", work.display());
        }
        println!(
            "| {label} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} |",
            apply.wall.as_secs_f64(),
            apply.cpu.as_secs_f64(),
            apply.peak_rss_mb,
            plan.wall.as_secs_f64(),
            plan.cpu.as_secs_f64()
        );
        walls.push((apply.wall.as_secs_f64(), plan.wall.as_secs_f64()));
    }
    println!(
        "\nPostgreSQL / SQLite: apply {:.2}×, plan {:.2}×",
        walls[1].0 / walls[0].0,
        walls[1].1 / walls[0].1
    );
    let dropped = std::process::Command::new("psql")
        .args([
            pg.as_str(),
            "-qc",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .status();
    if !dropped.is_ok_and(|s| s.success()) {
        eprintln!("note: could not drop schema {schema} (psql); drop it by hand");
    }
    Ok(())
}
