//! `cargo xtask bench serve [MAILBOXES]`: one ranked pipeline (3 ranks)
//! applied by `roster serve`, by one node and by three nodes, on the
//! machine's PostgreSQL (a database per round, dropped after), against the
//! simulator pair started afresh each round. Two targets:
//!
//! - **latency-bound**: Zivver answers after 200 ms and has no budget; what
//!   limits a node is waiting for answers, so three nodes are faster;
//! - **budget-bound**: Zivver allows 50 requests per 10 s per API key (its
//!   documented budget), and the connector's grant says so; every node uses
//!   the one key, so the budget is the nodes' together: three nodes may not
//!   be faster, and must not draw more 429s than one.
//!
//! Times from the first node's start until every rank's run has ended, and
//! Zivver's request and 429 counts (`/_sim/stats`).

use crate::bench::{Binaries, Pair, pipeline_with, sim_call, work_dir};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Round {
    nodes: usize,
    target: &'static str,
    wall: Duration,
    requests: u64,
    throttled: u64,
    applied: u64,
}

fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([url, "-tA", "-c", sql])
        .output()?;
    if !out.status.success() {
        bail!("psql: {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn round(root: &Path, b: &Binaries, mailboxes: usize, nodes: usize, budget: bool) -> Result<Round> {
    let target = if budget {
        "budget-bound"
    } else {
        "latency-bound"
    };
    let faults = if budget {
        r#"{"throttle": {"budget": 50, "window_ms": 10000, "retry_after": true, "headers": true}}"#
    } else {
        r#"{"latency_ms": 200}"#
    };
    let pair = Pair::start(
        &b.sim,
        mailboxes,
        &["--in-sync", "0", "--zivver-faults", faults],
    )?;
    let work = work_dir(root, &format!("serve/{nodes}-{target}"))?;
    let limits = if budget {
        "\n[connectors.zivver.limits]\nrate_limit = { requests = 50, per_seconds = 10.0 }\n"
    } else {
        ""
    };
    let pipeline = pipeline_with(&pair, limits).replacen(
        "[[stages]]",
        "[apply]\nbatch_size = 25\nranks = 3\n\n[[stages]]",
        1,
    );
    std::fs::write(work.join("pipeline.toml"), pipeline)?;
    let base = std::env::var("ROSTER_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("roster_bench_serve_{}", std::process::id());
    psql(
        &base,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    psql(&base, &format!("CREATE DATABASE {name}"))?;
    let (server, _) = base.rsplit_once('/').context("a database URL")?;
    let db = format!("{server}/{name}");
    let measured = (|| -> Result<Round> {
        let started = Instant::now();
        let mut children = Nodes(vec![]);
        for n in 0..nodes {
            let config = format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\nnode = \"n{n}\"\nworkers = 1\nheartbeat_secs = 5\n\n[[pipelines]]\nfile = \"pipeline.toml\"\nevery = \"24h\"\n",
                free_port()?
            );
            let file = format!("serve-{n}.toml");
            std::fs::write(work.join(&file), config)?;
            let child = crate::bench::roster(b, &work, &["serve", &file])
                .env("ROSTER_DATABASE_URL", &db)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(work.join(format!("n{n}.log")))?)
                .spawn()?;
            children.0.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let ended = psql(
                &db,
                "SELECT count(*) FROM roster_serve.runs WHERE status <> 'running'",
            )
            .unwrap_or_default();
            if ended == "3" {
                break;
            }
            if Instant::now() > deadline {
                bail!("the ranks did not end within an hour");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let wall = started.elapsed();
        let statuses = psql(&db, "SELECT string_agg(status, ',') FROM roster_serve.runs")?;
        if statuses.split(',').any(|s| s != "applied") {
            bail!("runs ended {statuses}");
        }
        let applied: u64 = psql(&db, "SELECT sum(applied) FROM roster_serve.runs")?.parse()?;
        let stats = sim_call(&pair.zivver, "GET", "/_sim/stats", "")?;
        Ok(Round {
            nodes,
            target,
            wall,
            requests: stats["requests"].as_u64().unwrap_or(0),
            throttled: stats["throttled"].as_u64().unwrap_or(0),
            applied,
        })
    })();
    let _ = psql(
        &base,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    measured
}

pub fn serve(root: &Path, b: &Binaries, mailboxes: usize) -> Result<()> {
    let mut rounds = vec![];
    for budget in [false, true] {
        for nodes in [1, 3] {
            let r = round(root, b, mailboxes, nodes, budget)?;
            eprintln!(
                "{} node(s), {}: {:.1} s, {} changes, {} Zivver requests, {} answered 429",
                r.nodes,
                r.target,
                r.wall.as_secs_f64(),
                r.applied,
                r.requests,
                r.throttled
            );
            rounds.push(r);
        }
    }
    let mut table = String::from(
        "| target | nodes | wall | changes | Zivver requests | 429 | 429 share |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &rounds {
        table.push_str(&format!(
            "| {} | {} | {:.1} s | {} | {} | {} | {:.1} % |\n",
            r.target,
            r.nodes,
            r.wall.as_secs_f64(),
            r.applied,
            r.requests,
            r.throttled,
            100.0 * r.throttled as f64 / r.requests.max(1) as f64
        ));
    }
    for pair in rounds.chunks(2) {
        table.push_str(&format!(
            "\n{}: three nodes took {:.2}x the time of one.",
            pair[0].target,
            pair[1].wall.as_secs_f64() / pair[0].wall.as_secs_f64()
        ));
    }
    println!("{table}");
    let out = root.join("target/bench/serve");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("report.md"), &table)?;
    Ok(())
}
