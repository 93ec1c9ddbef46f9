//! `cargo xtask soak`: the long part of the reliability suite
//! (docs/reliability.md), too slow for every CI run. The real `roster`
//! binary against the simulator pair (a generated Exchange tenant and a
//! Zivver organisation) on loopback:
//!
//! - **kills**: `kill -9` at a random moment of an apply of a saved plan,
//!   then a resume of that plan (even rounds) or a fresh apply (odd rounds),
//!   then an apply to finish: no account twice, nothing left to do;
//! - **faults**: writes answered 503 after they took effect, 503 and 500
//!   before, dropped connections, truncated JSON, a tight rate limit: two
//!   applies converge with no account twice;
//! - **concurrency**: two applies started together: one runs, one is refused;
//! - **fuzz**: many more seeded pipeline mutations than the quick suite.
//!
//! Prints a Markdown table of figures and writes it to
//! `target/bench/soak/report.md`.

use crate::bench::{Binaries, Pair, pipeline_with, sim_call, work_dir};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Options {
    pub rounds: usize,
    pub mailboxes: usize,
    pub fuzz_tries: usize,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            rounds: 12,
            mailboxes: 1000,
            fuzz_tries: 1500,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag}: a number"))?;
            match flag.as_str() {
                "--rounds" => o.rounds = value,
                "--mailboxes" => o.mailboxes = value,
                "--fuzz-tries" => o.fuzz_tries = value,
                other => bail!("unknown flag {other} (--rounds N, --mailboxes N, --fuzz-tries N)"),
            }
        }
        Ok(o)
    }
}

/// One row of the report.
struct Row {
    probe: String,
    tries: String,
    outcome: String,
    seen: String,
    held: bool,
}

/// The bench's `roster` command, without the caller's RUST_LOG.
fn roster(b: &Binaries, work: &Path, args: &[&str]) -> Command {
    let mut c = crate::bench::roster(b, work, args);
    c.env_remove("RUST_LOG");
    c
}

/// Runs roster to the end: exit code and its JSON document (if any).
fn run_json(b: &Binaries, work: &Path, args: &[&str]) -> Result<(i32, serde_json::Value)> {
    let out = roster(b, work, args).stderr(Stdio::null()).output()?;
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    Ok((out.status.code().unwrap_or(-1), doc))
}

/// Zivver's users by userName (lower case): how many of each.
fn zivver_users(pair: &Pair) -> Result<BTreeMap<String, usize>> {
    let state = sim_call(&pair.zivver, "GET", "/_sim/zivver/state", "")?;
    let mut count = BTreeMap::new();
    for u in state["users"]
        .as_array()
        .context("zivver state has no users")?
    {
        let name = u["userName"].as_str().unwrap_or_default().to_lowercase();
        *count.entry(name).or_insert(0) += 1;
    }
    Ok(count)
}

fn duplicates(users: &BTreeMap<String, usize>) -> usize {
    users.values().filter(|n| **n > 1).count()
}

/// A fresh pair (none in sync) and its pipeline in a fresh work dir.
fn scenario(
    root: &Path,
    b: &Binaries,
    name: &str,
    mailboxes: usize,
    faults: &str,
) -> Result<(Pair, std::path::PathBuf)> {
    let mut extra = vec!["--in-sync", "0"];
    if !faults.is_empty() {
        extra.extend(["--zivver-faults", faults]);
    }
    let pair = Pair::start(&b.sim, mailboxes, &extra)?;
    let work = work_dir(root, &format!("soak/{name}"))?;
    let pipeline = pipeline_with(&pair, "").replace(
        "[[stages]]\ntype = \"filter\"",
        "[apply]\nbatch_size = 25\n\n[[stages]]\ntype = \"filter\"",
    );
    std::fs::write(work.join("pipeline.toml"), pipeline)?;
    Ok((pair, work))
}

/// After the probe: one more apply, then the plan must be empty.
fn converges(b: &Binaries, work: &Path) -> Result<bool> {
    run_json(b, work, &["apply", "pipeline.toml", "--yes", "--json"])?;
    let (code, plan) = run_json(b, work, &["plan", "pipeline.toml", "--json"])?;
    Ok(code == 0 && plan["changes"].as_array().is_some_and(|c| c.is_empty()))
}

fn errors_with(report: &serde_json::Value, text: &str) -> usize {
    report["report"]["outcomes"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter(|o| o["error"].as_str().is_some_and(|e| e.contains(text)))
                .count()
        })
        .unwrap_or(0)
}

fn kills(root: &Path, b: &Binaries, o: &Options) -> Result<Row> {
    let (reference, work) = scenario(root, b, "kill-reference", o.mailboxes, "")?;
    run_json(b, &work, &["apply", "pipeline.toml", "--yes"])?;
    let expected = zivver_users(&reference)?.len();
    drop(reference);
    let mut rng = fastrand::Rng::with_seed(15);
    let (mut dup, mut diverged, mut already, mut in_doubt, mut early) = (0, 0, 0, 0, 0);
    let mut at_kill = Vec::new();
    for round in 0..o.rounds {
        let latency = r#"{"latency_ms": 15}"#;
        let (pair, work) = scenario(root, b, "kill", o.mailboxes, latency)?;
        let (code, _) = run_json(b, &work, &["plan", "pipeline.toml", "--out", "plan.json"])?;
        if code != 0 && code != 8 {
            bail!("round {round}: plan exited {code}");
        }
        let mut child = roster(
            b,
            &work,
            &["apply", "pipeline.toml", "--plan", "plan.json", "--yes"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
        // Killed once a random share (5–95 %) of the accounts is made.
        let target = expected * rng.usize(5..96) / 100;
        let start = Instant::now();
        while child.try_wait()?.is_none() && zivver_users(&pair)?.len() < target {
            std::thread::sleep(Duration::from_millis(15));
        }
        let delay = start.elapsed();
        if child.try_wait()?.is_some() {
            early += 1;
        }
        child.kill().ok();
        child.wait()?;
        at_kill.push(zivver_users(&pair)?.len());
        let resume: Vec<&str> = match round % 2 {
            0 => vec![
                "apply",
                "pipeline.toml",
                "--plan",
                "plan.json",
                "--yes",
                "--json",
            ],
            _ => vec!["apply", "pipeline.toml", "--yes", "--json"],
        };
        let (_, report) = run_json(b, &work, &resume)?;
        already += errors_with(&report, "already");
        in_doubt += errors_with(&report, "in doubt");
        if !converges(b, &work)? {
            diverged += 1;
        }
        let users = zivver_users(&pair)?;
        dup += duplicates(&users);
        if users.len() != expected {
            diverged += 1;
        }
        eprintln!(
            "kill {round}: killed after {delay:?} with {} users; resumed {}; {} users at the end (clean run: {expected})",
            at_kill.last().unwrap(),
            if round % 2 == 0 {
                "the saved plan"
            } else {
                "with a fresh plan"
            },
            users.len()
        );
    }
    let (lo, hi) = (
        at_kill.iter().min().copied().unwrap_or(0),
        at_kill.iter().max().copied().unwrap_or(0),
    );
    Ok(Row {
        probe: format!(
            "`kill -9` mid-apply of a saved plan ({} mailboxes, batches of 25, 15 ms latency), resumed alternately with `--plan` and fresh",
            o.mailboxes
        ),
        tries: o.rounds.to_string(),
        outcome: format!(
            "{dup} duplicates; {diverged} rounds not equal to the clean run; {already} \"already exists\" on resume; {in_doubt} creates held as in doubt; {early} finished before the kill"
        ),
        seen: format!(
            "killed with {lo}–{hi} users made; a resume of the saved plan reports the in-flight creates as failed \"in doubt\" (exit 1) and the next apply links or creates them"
        ),
        held: dup == 0 && diverged == 0 && already == 0,
    })
}

fn faults(root: &Path, b: &Binaries) -> Result<Vec<Row>> {
    let cases = [
        (
            "writes carried out, then answered 503 (every 3rd)",
            r#"{"fail_every": 3, "fail_after_effect": true}"#,
        ),
        ("503 before the handler (every 5th)", r#"{"fail_every": 5}"#),
        (
            "500 before the handler (every 4th)",
            r#"{"fail_every": 4, "fail_status": 500}"#,
        ),
        (
            "connection dropped mid-answer (every 7th)",
            r#"{"drop_every": 7}"#,
        ),
        (
            "truncated JSON answer (every 9th)",
            r#"{"malformed_every": 9}"#,
        ),
        (
            "rate limit 20 per second with RateLimit headers",
            r#"{"throttle": {"budget": 20, "window_ms": 1000, "headers": true}}"#,
        ),
    ];
    let mut rows = Vec::new();
    for (i, (what, spec)) in cases.iter().enumerate() {
        let (pair, work) = scenario(root, b, &format!("fault-{i}"), 300, spec)?;
        let (code, first) = run_json(b, &work, &["apply", "pipeline.toml", "--yes", "--json"])?;
        let applied = first["report"]["applied"].as_u64().unwrap_or(0);
        let failed = first["report"]["failed"].as_u64().unwrap_or(0);
        sim_call(&pair.zivver, "PUT", "/_sim/faults", "{}")?;
        let converged = converges(b, &work)?;
        let dup = duplicates(&zivver_users(&pair)?);
        eprintln!(
            "fault {what}: exit {code}, applied {applied}, failed {failed}; converged {converged}, {dup} duplicates"
        );
        rows.push(Row {
            probe: format!("Zivver: {what}"),
            tries: "1 apply of 300 mailboxes, then 1 clean".into(),
            outcome: format!("{dup} duplicates; converged: {converged}"),
            seen: format!("first apply exit {code}: applied {applied}, failed {failed}"),
            held: dup == 0 && converged,
        });
    }
    Ok(rows)
}

fn concurrency(root: &Path, b: &Binaries, o: &Options) -> Result<Row> {
    let (pair, work) = scenario(root, b, "concurrent", o.mailboxes, r#"{"latency_ms": 5}"#)?;
    let spawn = || {
        roster(b, &work, &["apply", "pipeline.toml", "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    let (mut one, mut two) = (spawn()?, spawn()?);
    let codes = [one.wait()?.code(), two.wait()?.code()];
    let converged = converges(b, &work)?;
    let dup = duplicates(&zivver_users(&pair)?);
    let refused = codes.iter().filter(|c| **c == Some(5)).count();
    Ok(Row {
        probe: "two applies started together on one state".into(),
        tries: "1".into(),
        outcome: format!("exit codes {codes:?}; {dup} duplicates; converged: {converged}"),
        seen: "the second: exit 5, \"another apply is running on this state (pid …)\"".into(),
        held: refused == 1 && dup == 0 && converged,
    })
}

pub fn soak(
    root: &Path,
    b: &Binaries,
    o: &Options,
    fuzz: impl FnOnce(usize) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let mut rows = vec![kills(root, b, o)?];
    rows.extend(faults(root, b)?);
    rows.push(concurrency(root, b, o)?);
    let fuzzed = fuzz(o.fuzz_tries);
    rows.push(Row {
        probe: "seeded random mutations of a pipeline file (`roster check`)".into(),
        tries: o.fuzz_tries.to_string(),
        outcome: match &fuzzed {
            Ok(()) => "0 panics, 0 signals".into(),
            Err(e) => format!("failed: {e:#}"),
        },
        seen: "a located error (file:line:column) or a valid pipeline".into(),
        held: fuzzed.is_ok(),
    });
    let mut report = String::from(
        "| probe | tries | outcome | what the operator sees | held |\n|---|---|---|---|---|\n",
    );
    for r in &rows {
        report.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.probe,
            r.tries,
            r.outcome,
            r.seen,
            if r.held { "yes" } else { "**no**" }
        ));
    }
    report.push_str(&format!(
        "\n{} probes in {:.0} s (debug build).\n",
        rows.len(),
        started.elapsed().as_secs_f64()
    ));
    println!("{report}");
    let out = root.join("target/bench/soak/report.md");
    std::fs::write(&out, &report)?;
    eprintln!("wrote {}", out.display());
    if rows.iter().any(|r| !r.held) {
        bail!("a soak probe did not hold");
    }
    Ok(())
}
