//! Whole-run benchmarks (`cargo xtask bench plan|incremental`): the release
//! `roster` binary against the simulators on loopback, timed from outside
//! with each run's own peak RSS (from `wait4`), so the figures are what an
//! admin would see. Criterion micro-benchmarks live in `benches/`.

use anyhow::{Context, Result, bail};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Binaries {
    pub roster: PathBuf,
    pub sim: PathBuf,
    pub plugins: PathBuf,
}

/// The simulator pair (Microsoft 365 and Zivver) for a generated tenant.
pub(crate) struct Pair {
    child: Child,
    pub(crate) m365: String,
    pub(crate) zivver: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pair {
    pub(crate) fn start(sim: &Path, mailboxes: usize, extra: &[&str]) -> Result<Pair> {
        let mut child = Command::new(sim)
            .args(["pair", "--mailboxes", &mailboxes.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting roster-sim pair")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [_, m365, zivver] = parts[..] else {
            bail!("roster-sim pair said `{line}`");
        };
        Ok(Pair {
            m365: m365.into(),
            zivver: zivver.into(),
            child,
        })
    }
}

/// The benchmark pipeline: generated Exchange tenant into a generated Zivver organisation.
fn pipeline(pair: &Pair) -> String {
    // The connectors' default grants (256 MiB each) hold 100,000 accounts.
    pipeline_with(pair, "")
}

pub(crate) fn pipeline_with(pair: &Pair, zivver_limits: &str) -> String {
    format!(
        r#"name = "bench"
source = "exchange"
target = "zivver"

[connectors.exchange]
plugin = "exchange-online"
allowed_hosts = ["{m}"]
[connectors.exchange.config]
tenant_id = "bench.example"
client_id = "roster-sim-client"
client_secret = "${{env:EXCHANGE_CLIENT_SECRET}}"
login_url = "{m}"
graph_url = "{m}"
admin_url = "{m}"

[connectors.zivver]
plugin = "zivver"
allowed_hosts = ["{z}"]
[connectors.zivver.config]
base_url = "{z}/api/scim/v2/"
api_key = "${{env:ZIVVER_API_KEY}}"
{zivver_limits}

[[stages]]
type = "filter"
claimed_domains = ["bench.example"]

[[stages]]
type = "link"

[[stages]]
type = "merge"
mode = "alias-only"

[[stages]]
type = "sync"
"#,
        m = pair.m365,
        z = pair.zivver
    )
}

/// A simulator's `/_sim/stats`.
fn sim_stats(base: &str) -> Result<serde_json::Value> {
    sim_call(base, "GET", "/_sim/stats", "")
}

/// A call to a simulator's control route, over plain HTTP/1.0.
pub(crate) fn sim_call(
    base: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<serde_json::Value> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr)?;
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .context("no body in the answer")?;
    Ok(serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// After a full apply of a generated tenant, 1 % of its users renamed in
/// Exchange: the next plan's wall time and requests, against the full plan's.
pub fn incremental(root: &Path, b: &Binaries, mailboxes: usize) -> Result<()> {
    let pair = Pair::start(&b.sim, mailboxes, &[])?;
    let work = work_dir(root, &format!("incremental-{mailboxes}"))?;
    std::fs::write(work.join("pipeline.toml"), pipeline(&pair))?;
    measure(b, &work, &["check", "pipeline.toml"])?;
    let full = measure(
        b,
        &work,
        &["plan", "pipeline.toml", "--json", "--out", "full.json"],
    )?;
    let full_requests = sim_stats(&pair.m365)?["requests"].as_u64().unwrap_or(0);
    let apply = measure(
        b,
        &work,
        &[
            "apply",
            "pipeline.toml",
            "--plan",
            "full.json",
            "--yes",
            "--json",
        ],
    )?;
    let touched = sim_call(&pair.m365, "POST", "/_sim/m365/touch", r#"{"every": 100}"#)?;
    let before = sim_stats(&pair.m365)?["requests"].as_u64().unwrap_or(0);
    let delta = measure(
        b,
        &work,
        &["plan", "pipeline.toml", "--json", "--out", "delta.json"],
    )?;
    let delta_requests = sim_stats(&pair.m365)?["requests"].as_u64().unwrap_or(0) - before;
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("delta.json"))?)?;
    println!("| run | wall (s) | roster CPU (s) | Exchange requests | peak RSS (MB) |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| full plan, {mailboxes} mailboxes | {:.2} | {:.2} | {full_requests} | {:.0} |",
        full.wall.as_secs_f64(),
        full.cpu.as_secs_f64(),
        full.peak_rss_mb
    );
    println!(
        "| apply of it | {:.2} | {:.2} | 0 | {:.0} |",
        apply.wall.as_secs_f64(),
        apply.cpu.as_secs_f64(),
        apply.peak_rss_mb
    );
    println!(
        "| plan after {} users renamed | {:.2} | {:.2} | {delta_requests} | {:.0} |",
        touched["changed"],
        delta.wall.as_secs_f64(),
        delta.cpu.as_secs_f64(),
        delta.peak_rss_mb
    );
    println!(
        "source read: {}; {} changes planned",
        plan["summary"]["source_read"],
        plan["changes"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

/// Creates into a throttled Zivver with 20 ms per request: throughput against
/// the budget's bound, and the share of requests answered 429. The plan is
/// made first (its reads of Exchange are not the service's pace), then the
/// window left to run out, then the apply of that plan is timed.
pub fn apply(root: &Path, b: &Binaries, only: Option<usize>) -> Result<()> {
    const LATENCY_MS: u64 = 20;
    let mut windows_seen = Vec::new();
    println!(
        "| mailboxes | budget | Zivver requests | answered 429 | apply wall (s) | at Zivver (s) | bound (s) | throughput / bound |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for (mailboxes, budget, window_ms) in [(300usize, 50u32, 10_000u64), (5_000, 500, 1_000)] {
        if only.is_some_and(|n| n != mailboxes) {
            continue;
        }
        let faults = format!(
            r#"{{"latency_ms": {LATENCY_MS}, "throttle": {{"budget": {budget}, "window_ms": {window_ms}, "retry_after": true, "headers": true}}}}"#
        );
        let pair = Pair::start(
            &b.sim,
            mailboxes,
            &["--in-sync", "0", "--zivver-faults", &faults],
        )?;
        let work = work_dir(root, &format!("apply-{mailboxes}"))?;
        std::fs::write(
            work.join("pipeline.toml"),
            pipeline_with(&pair, "\n[connectors.zivver.limits]\nconcurrency = 32\n"),
        )?;
        measure(b, &work, &["check", "pipeline.toml"])?;
        measure(b, &work, &["plan", "pipeline.toml", "--out", "plan.json"])?;
        std::thread::sleep(Duration::from_millis(window_ms));
        sim_call(&pair.zivver, "POST", "/_sim/stats/reset", "")?;
        let m = measure(
            b,
            &work,
            &[
                "apply",
                "pipeline.toml",
                "--plan",
                "plan.json",
                "--yes",
                "--json",
            ],
        )?;
        let stats = sim_stats(&pair.zivver)?;
        let requests = stats["requests"].as_u64().unwrap_or(0);
        let throttled = stats["throttled"].as_u64().unwrap_or(0);
        // From the first request reaching Zivver to the last answer.
        let at_zivver = stats["windows"]
            .as_array()
            .and_then(|w| w.last())
            .and_then(|w| w["last_ms"].as_u64())
            .unwrap_or(0)
            + LATENCY_MS;
        // The fastest the budget allows: whole windows before the last
        // request, and that request's answer.
        let bound = (requests.saturating_sub(1)) / budget as u64 * window_ms + LATENCY_MS;
        println!(
            "| {mailboxes} | {budget} per {} s | {requests} | {throttled} ({:.2} %) | {:.2} | {:.2} | {:.2} | {:.1} % |",
            window_ms / 1000,
            100.0 * throttled as f64 / requests.max(1) as f64,
            m.wall.as_secs_f64(),
            at_zivver as f64 / 1000.0,
            bound as f64 / 1000.0,
            100.0 * bound as f64 / at_zivver.max(1) as f64,
        );
        if !m.ok {
            println!("(the apply reported failures: see {})", work.display());
        }
        windows_seen.push((mailboxes, budget, window_ms, stats["windows"].clone()));
    }
    for (mailboxes, budget, window_ms, windows) in windows_seen {
        println!(
            "\n{mailboxes} mailboxes, {budget} per {window_ms} ms: {}",
            window_use(&windows, window_ms)
        );
    }
    Ok(())
}

/// How the run used the service's windows: requests in each, and the time
/// between one window's end and the next one's first request (idle budget).
fn window_use(windows: &serde_json::Value, window_ms: u64) -> String {
    let list: Vec<(u64, u64)> = windows
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| {
                    (
                        w["opened_ms"].as_u64().unwrap_or(0),
                        w["requests"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let counts: Vec<String> = list.iter().map(|(_, n)| n.to_string()).collect();
    let gaps: Vec<String> = list
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0 + window_ms).to_string())
        .collect();
    format!(
        "{} windows; requests per window [{}]; ms idle between windows [{}]",
        list.len(),
        counts.join(", "),
        gaps.join(", ")
    )
}

pub struct Measured {
    pub wall: Duration,
    /// CPU time of `roster` alone (user + system): the simulators share the
    /// machine, so this is the figure they do not blur.
    pub cpu: Duration,
    pub peak_rss_mb: f64,
    pub ok: bool,
}

/// `roster ARGS` in `work` with the built plugins, a cache of its own and
/// the simulators' credentials.
pub(crate) fn roster(b: &Binaries, work: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(&b.roster);
    c.args(args)
        .current_dir(work)
        .env("ROSTER_PLUGINS_DIR", &b.plugins)
        .env("ROSTER_CACHE_DIR", work.join("cache"))
        .env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
        .env("ZIVVER_API_KEY", "bench-api-key");
    c
}

/// Runs `roster ARGS` and measures it alone: wall time and its own peak RSS.
pub fn measure(b: &Binaries, work: &Path, args: &[&str]) -> Result<Measured> {
    measure_with(b, work, args, &[])
}

/// [`measure`] with more environment variables.
pub fn measure_with(
    b: &Binaries,
    work: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Measured> {
    let log = std::fs::File::create(work.join(format!("{}.log", args[0])))?;
    let start = Instant::now();
    let child = roster(b, work, args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let (status, usage) = wait4(child.id() as i32)?;
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Measured {
        wall: start.elapsed(),
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        ok: status == 0,
    })
}

/// The child's exit code and its resource use.
fn wait4(pid: i32) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and usage outlive the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage))
}

pub(crate) fn work_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join("target/bench").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `roster plan` for generated tenants of each size: wall time and peak RSS.
pub fn plan(root: &Path, b: &Binaries, sizes: &[usize]) -> Result<()> {
    println!(
        "| mailboxes | accounts read | wall (s) | roster CPU (s) | peak RSS (MB) | wall s per 10k |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let pair = Pair::start(&b.sim, n, &[])?;
        let work = work_dir(root, &format!("plan-{n}"))?;
        std::fs::write(work.join("pipeline.toml"), pipeline(&pair))?;
        // Compile the components once, outside the measurement.
        measure(b, &work, &["check", "pipeline.toml"])?;
        let m = measure(
            b,
            &work,
            &["plan", "pipeline.toml", "--json", "--out", "plan.json"],
        )?;
        if !m.ok {
            bail!(
                "roster plan failed for {n} mailboxes (run it in {} to see why)",
                work.display()
            );
        }
        let plan: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(work.join("plan.json"))?)?;
        let secs = m.wall.as_secs_f64();
        println!(
            "| {n} | {} | {secs:.2} | {:.2} | {:.0} | {:.2} |",
            plan["summary"]["source_accounts"],
            m.cpu.as_secs_f64(),
            m.peak_rss_mb,
            secs / (n as f64 / 10_000.0)
        );
    }
    Ok(())
}
