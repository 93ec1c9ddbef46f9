//! Project tasks, so a fresh machine needs two commands:
//!
//! - `cargo xtask demo`: builds the host and every connector component, then
//!   runs the demo pipeline end to end (check, plan, apply, plan again, status).
//! - `cargo xtask test`: builds the components, then runs every test.
//!
//! Also `cargo xtask plugins` (build the components into `target/plugins/`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Connector crates built as components: (crate directory, plugin name).
const COMPONENTS: &[(&str, &str)] = &[
    ("plugins/csv", "csv"),
    ("plugins/exchange-online", "exchange-online"),
    ("tests/components/misbehave", "misbehave"),
];

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = root()?;
    match task.as_str() {
        "plugins" => build_plugins(&root).map(|_| ()),
        "demo" => demo(&root),
        "test" => test(&root, std::env::args().skip(2).collect()),
        _ => bail!("usage: cargo xtask <demo | test | plugins>"),
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

/// Builds every component for wasm32-wasip2 and copies it to `target/plugins/NAME.wasm`.
fn build_plugins(root: &Path) -> Result<PathBuf> {
    // One cargo call for all components: package names from the manifests.
    let mut c = cargo(root);
    c.args([
        "build",
        "--quiet",
        "--target",
        "wasm32-wasip2",
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

fn build_host(root: &Path) -> Result<PathBuf> {
    let mut c = cargo(root);
    c.args(["build", "--quiet", "-p", "roster-host", "--bin", "roster"]);
    run(c)?;
    Ok(root.join("target/debug/roster"))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn demo(root: &Path) -> Result<()> {
    let plugins = build_plugins(root)?;
    let roster = build_host(root)?;
    // A fresh copy each time, so the demo always starts from the same data.
    let work = root.join("target/demo");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    copy_dir(&root.join("examples/demo"), &work)?;
    let pipeline = work.join("demo.toml");
    let step = |title: &str, args: &[&str]| -> Result<std::process::ExitStatus> {
        println!("\n$ roster {}    # {title}", args.join(" "));
        let mut c = Command::new(&roster);
        c.args(args)
            .env("ROSTER_PLUGINS_DIR", &plugins)
            .env("DEMO_DIRECTORY_TOKEN", "demo-token-not-a-real-secret");
        Ok(c.status()?)
    };
    let p = pipeline.to_str().context("non-UTF-8 path")?;
    step(
        "describe a connector component",
        &[
            "plugins",
            "inspect",
            plugins.join("csv.wasm").to_str().unwrap_or(""),
        ],
    )?;
    must(step(
        "validate the pipeline and show the grants",
        &["check", p],
    )?)?;
    must(step("what would change", &["plan", p])?)?;
    must(step("make the changes", &["apply", p, "--yes"])?)?;
    must(step("a second plan proposes nothing", &["plan", p])?)?;
    must(step("what the state store remembers", &["status", p])?)?;
    println!(
        "\ndemo done: the target file is {}",
        work.join("directory/accounts.csv").display()
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

fn test(root: &Path, extra: Vec<String>) -> Result<()> {
    let plugins = build_plugins(root)?;
    let mut c = cargo(root);
    c.args(["test", "--workspace"])
        .args(extra)
        .env("ROSTER_PLUGINS_DIR", &plugins);
    run(c)
}
