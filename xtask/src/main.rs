//! Project tasks, so a fresh machine needs two commands:
//!
//! - `cargo xtask demo`: builds the host, the simulators and every connector
//!   component, then runs the Exchange Online → Zivver pipeline end to end
//!   against the simulators (check, test-connection, plan, apply, plan again, status).
//! - `cargo xtask test`: builds the components, then runs every test.
//!
//! `cargo xtask soak` runs the long part of the reliability suite (kills,
//! injected faults, concurrent applies, fuzzing at volume; figures in
//! docs/reliability.md).
//!
//! Also `cargo xtask plugins` (build the components into `target/plugins/`)
//! and `cargo xtask bench plan [1000,10000,100000] | apply [300|5000] | incremental`
//! (whole-run benchmarks, release) and `cargo xtask bench host` (criterion).

mod bench;
mod bench_serve;
mod bench_state;
mod dist;
mod soak;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Connector crates built as components: (crate directory, plugin name).
const COMPONENTS: &[(&str, &str)] = &[
    ("plugins/csv", "csv"),
    ("plugins/exchange-online", "exchange-online"),
    ("plugins/zivver", "zivver"),
    ("plugins/scim", "scim"),
    ("plugins/superoffice", "superoffice"),
    ("plugins/riva-crm", "riva-crm"),
    ("tests/components/misbehave", "misbehave"),
];

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = root()?;
    match task.as_str() {
        "plugins" => build_plugins(&root).map(|_| ()),
        "demo" => demo(&root),
        "test" => test(&root, std::env::args().skip(2).collect()),
        "bench" => bench_task(&root, std::env::args().skip(2).collect()),
        "dist" => dist::dist(&root),
        "soak" => soak_task(&root, std::env::args().skip(2).collect()),
        _ => bail!(
            "usage: cargo xtask <demo | test | soak [--rounds N] [--mailboxes N] [--fuzz-tries N] | plugins | dist | bench (plan [SIZES] | apply [300|5000] | incremental | state [N] | host)>"
        ),
    }
}

fn root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

fn run(mut c: Command) -> Result<()> {
    let shown = format!("{c:?}");
    let status = c.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

const WASM_TARGET: &str = "wasm32-wasip2";

/// Whether `rustup target list --installed` printed the wasm target.
fn lists_wasm_target(installed: &str) -> bool {
    installed.lines().any(|l| l.trim() == WASM_TARGET)
}

/// Components build for wasm32-wasip2: the target is added with rustup when
/// it is missing (rust-toolchain.toml does not add it everywhere), or the
/// task stops with the one command that would.
fn ensure_wasm_target(root: &Path) -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root)
        .output();
    let Ok(listed) = listed else {
        bail!(
            "the {WASM_TARGET} target is needed and rustup is not on PATH: install it with `rustup target add {WASM_TARGET}`"
        );
    };
    if lists_wasm_target(&String::from_utf8_lossy(&listed.stdout)) {
        return Ok(());
    }
    eprintln!("adding the {WASM_TARGET} target (rustup target add {WASM_TARGET})");
    let added = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .current_dir(root)
        .status()?;
    if !added.success() {
        bail!(
            "could not add the {WASM_TARGET} target: run `rustup target add {WASM_TARGET}` and try again"
        );
    }
    Ok(())
}

/// Builds every component for wasm32-wasip2 and copies it to `target/plugins/NAME.wasm`.
fn build_plugins(root: &Path) -> Result<PathBuf> {
    ensure_wasm_target(root)?;
    // One cargo call for all components: package names from the manifests.
    let mut c = cargo(root);
    c.args([
        "build",
        "--quiet",
        "--target",
        WASM_TARGET,
        "--profile",
        "plugin",
    ]);
    for (dir, _) in COMPONENTS {
        c.args(["-p", &package_name(root, dir)?]);
    }
    run(c)?;
    let out = root.join("target/plugins");
    std::fs::create_dir_all(&out)?;
    for (dir, name) in COMPONENTS {
        let file = format!("{}.wasm", package_name(root, dir)?.replace('-', "_"));
        let built = root.join("target/wasm32-wasip2/plugin").join(&file);
        std::fs::copy(&built, out.join(format!("{name}.wasm")))
            .with_context(|| format!("copying {}", built.display()))?;
    }
    Ok(out)
}

fn package_name(root: &Path, dir: &str) -> Result<String> {
    let manifest = std::fs::read_to_string(root.join(dir).join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| {
            l.strip_prefix("name = \"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .map(String::from)
        .with_context(|| format!("no package name in {dir}/Cargo.toml"))
}

/// Builds `roster` and `roster-sim` (debug or release); their paths.
fn build_host(root: &Path, release: bool) -> Result<(PathBuf, PathBuf)> {
    let mut c = cargo(root);
    c.args(["build", "--quiet"]);
    if release {
        c.arg("--release");
    }
    c.args([
        "-p",
        "roster-host",
        "--bin",
        "roster",
        "-p",
        "roster-sim",
        "--bin",
        "roster-sim",
    ]);
    run(c)?;
    let dir = root.join(if release {
        "target/release"
    } else {
        "target/debug"
    });
    Ok((dir.join("roster"), dir.join("roster-sim")))
}

/// A simulator process; it stops when its stdin closes (on drop).
struct Simulator(std::process::Child);

impl Simulator {
    fn start(sim: &Path, args: &[&str]) -> Result<Simulator> {
        use std::io::BufRead;
        let mut child = Command::new(sim)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", sim.display()))?;
        let out = child.stdout.take().context("simulator stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        if !line.starts_with("listening") {
            let _ = child.kill();
            bail!(
                "simulator `{}` did not start (is its port free?)",
                args.join(" ")
            );
        }
        println!("  simulator: {}", line.trim());
        Ok(Simulator(child))
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The seed scenario: Exchange Online mailboxes into Zivver, against the
/// bundled simulators, on a fresh SQLite state.
fn demo(root: &Path) -> Result<()> {
    let plugins = build_plugins(root)?;
    let (roster, sim) = build_host(root, false)?;
    let example = root.join("examples/exchange-to-zivver");
    let work = root.join("target/demo");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let pipeline = work.join("exchange-to-zivver.toml");
    std::fs::copy(example.join("exchange-to-zivver.toml"), &pipeline)?;
    println!("starting the simulators (Microsoft 365 on :18401, Zivver on :18402)");
    let seed = |rel: &str| example.join(rel).to_string_lossy().into_owned();
    let _m365 = Simulator::start(
        &sim,
        &[
            "m365",
            "--seed",
            &seed("m365/tenant.json"),
            "--port",
            "18401",
        ],
    )?;
    let _zivver = Simulator::start(
        &sim,
        &[
            "zivver",
            "--seed",
            &seed("zivver/org.json"),
            "--port",
            "18402",
        ],
    )?;
    let step = |title: &str, args: &[&str]| -> Result<std::process::ExitStatus> {
        println!("\n$ roster {}    # {title}", args.join(" "));
        let mut c = Command::new(&roster);
        c.args(args)
            .env("ROSTER_PLUGINS_DIR", &plugins)
            .env("ROSTER_CACHE_DIR", work.join("cache"))
            .env("EXCHANGE_CLIENT_SECRET", "sim-client-secret")
            .env("ZIVVER_API_KEY", "zivver-demo-api-key");
        Ok(c.status()?)
    };
    let p = pipeline.to_str().context("non-UTF-8 path")?;
    let zivver_wasm = plugins.join("zivver.wasm");
    step(
        "describe a connector component",
        &["plugins", "inspect", zivver_wasm.to_str().unwrap_or("")],
    )?;
    must(step(
        "validate the pipeline and show the grants",
        &["check", p],
    )?)?;
    must(step(
        "the tenant, the Graph and Exchange permissions, one mailbox",
        &[
            "test-connection",
            p,
            "--connector",
            "exchange",
            "--account",
            "teamtangerine@zivvertest.onmicrosoft.com",
        ],
    )?)?;
    must(step("what would change", &["plan", p])?)?;
    must(step("make the changes", &["apply", p, "--yes"])?)?;
    must(step(
        "a second plan proposes nothing (an incremental read)",
        &["plan", p],
    )?)?;
    must(step("what the state store remembers", &["status", p])?)?;
    println!(
        "\ndemo done: state in {}",
        work.join("exchange-to-zivver.state.sqlite").display()
    );
    Ok(())
}

fn must(status: std::process::ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("demo step failed with {status}")
    }
}

/// The independent SCIM server the zivver tests run against, and the SCIM
/// conformance checker run against the Zivver simulator, in a virtualenv.
const SCIM_PEER: &[&str] = &[
    "scim2-server==0.8.3",
    "scim2-cli==0.6.0",
    "scim2-tester==0.5.2",
];

fn install_scim_peer(root: &Path) -> Result<()> {
    let venv = root.join("target/venv-scim");
    if venv.join("bin/scim2-server").is_file() && venv.join("bin/scim2").is_file() {
        return Ok(());
    }
    println!(
        "installing {} into {}",
        SCIM_PEER.join(", "),
        venv.display()
    );
    let mut c = Command::new("python3");
    c.args(["-m", "venv"]).arg(&venv);
    run(c)?;
    let mut c = Command::new(venv.join("bin/pip"));
    c.args(["install", "--quiet", "--disable-pip-version-check"])
        .args(SCIM_PEER);
    run(c)
}

/// The console's browser tests need Debian's Chromium (never a downloaded
/// browser) and the npm packages in console-tests/ (Playwright's
/// playwright-core, axe-core), installed here from the lockfile. Without
/// Chromium they are skipped, and this says so.
fn install_console_tests(root: &Path) -> Result<()> {
    const CHROMIUM: &str = "/usr/bin/chromium";
    if !Path::new(CHROMIUM).exists() {
        println!(
            "browser tests: SKIPPED, {CHROMIUM} not found (apt-get install chromium chromium-driver to run them)"
        );
        return Ok(());
    }
    let dir = root.join("console-tests");
    if dir.join("node_modules/playwright-core").is_dir()
        && dir.join("node_modules/axe-core").is_dir()
    {
        return Ok(());
    }
    println!(
        "installing the console's browser test packages into {}",
        dir.join("node_modules").display()
    );
    let mut c = Command::new("npm");
    c.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir);
    run(c)
}

fn test(root: &Path, extra: Vec<String>) -> Result<()> {
    install_scim_peer(root)?;
    install_console_tests(root)?;
    let plugins = build_plugins(root)?;
    let mut c = cargo(root);
    c.args(["test", "--workspace"])
        .args(extra)
        .env("ROSTER_PLUGINS_DIR", &plugins);
    run(c)
}

fn bench_task(root: &Path, args: Vec<String>) -> Result<()> {
    let plugins = build_plugins(root)?;
    if args.first().map(String::as_str) == Some("host") {
        let mut c = cargo(root);
        c.args([
            "bench",
            "-p",
            "roster-benches",
            "--bench",
            "host",
            "--bench",
            "parse",
        ])
        .args(&args[1..])
        .env("ROSTER_PLUGINS_DIR", &plugins);
        return run(c);
    }
    let (roster, sim) = build_host(root, true)?;
    let b = bench::Binaries {
        roster,
        sim,
        plugins,
    };
    match args.first().map(String::as_str) {
        Some("plan") => {
            let sizes: Vec<usize> = match args.get(1) {
                Some(list) => list
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .context("sizes: numbers separated by commas")
                    })
                    .collect::<Result<_>>()?,
                None => vec![1_000, 10_000, 100_000],
            };
            bench::plan(root, &b, &sizes)
        }
        Some("apply") => {
            let only = args
                .get(1)
                .map(|n| {
                    n.parse()
                        .context("apply: a number of mailboxes (300 or 5000)")
                })
                .transpose()?;
            bench::apply(root, &b, only)
        }
        Some("incremental") => bench::incremental(root, &b, 100_000),
        Some("state") => {
            let n = match args.get(1) {
                Some(n) => n.parse().context("state: a number of accounts")?,
                None => 100_000,
            };
            bench_state::state(root, &b, n)
        }
        Some("serve") => {
            let n = match args.get(1) {
                Some(n) => n.parse().context("serve: a number of mailboxes")?,
                None => 600,
            };
            bench_serve::serve(root, &b, n)
        }
        _ => bail!(
            "usage: cargo xtask bench plan [SIZES] | apply [300|5000] | incremental | state [N] | serve [MAILBOXES] | host"
        ),
    }
}

/// The long part of the reliability suite, on debug builds (its figures are
/// counts, not timings).
fn soak_task(root: &Path, args: Vec<String>) -> Result<()> {
    let options = soak::Options::parse(&args)?;
    let plugins = build_plugins(root)?;
    let (roster, sim) = build_host(root, false)?;
    let b = bench::Binaries {
        roster,
        sim,
        plugins: plugins.clone(),
    };
    soak::soak(root, &b, &options, |tries| {
        let mut c = cargo(root);
        c.args([
            "test",
            "-q",
            "-p",
            "roster-host",
            "--test",
            "reliability",
            "mutated_pipelines_never_panic",
        ])
        .env("ROSTER_FUZZ_TRIES", tries.to_string())
        .env("ROSTER_PLUGINS_DIR", &plugins);
        run(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasm_target_is_found_only_when_listed() {
        assert!(lists_wasm_target(
            "wasm32-wasip2\nx86_64-unknown-linux-gnu\n"
        ));
        assert!(!lists_wasm_target(
            "x86_64-unknown-linux-gnu\nwasm32-wasip1\n"
        ));
        assert!(!lists_wasm_target(""));
    }
}
