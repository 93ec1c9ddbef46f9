//! `cargo xtask dist`: the release archive an admin unpacks and runs, with
//! no Rust and no environment variables: `roster` with its components in
//! `plugins/` beside it (where the binary looks), the simulators, the
//! example pipelines, the docs, shell completions and the man page. The
//! archive is unpacked again and its `roster` run before it is declared
//! done, so a layout the binary cannot use is never shipped.

use super::{build_host, build_plugins, run};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// The components shipped: the connectors, not the test component.
const SHIPPED: &[&str] = &[
    "csv",
    "exchange-online",
    "zivver",
    "scim",
    "superoffice",
    "riva-crm",
];

pub fn dist(root: &Path) -> Result<()> {
    let plugins = build_plugins(root)?;
    let (roster, sim) = build_host(root, true)?;
    let version = env!("CARGO_PKG_VERSION");
    let (arch, os) = (std::env::consts::ARCH, std::env::consts::OS);
    let name = format!("roster-{version}-{arch}-{os}");
    let out = root.join("target/dist");
    let dir = out.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    for sub in ["plugins", "completions", "man", "docs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    copy(&roster, &dir.join("roster"))?;
    copy(&sim, &dir.join("roster-sim"))?;
    for p in SHIPPED {
        copy(
            &plugins.join(format!("{p}.wasm")),
            &dir.join(format!("plugins/{p}.wasm")),
        )?;
    }
    copy(&root.join("README.md"), &dir.join("README.md"))?;
    copy_tree(&root.join("docs"), &dir.join("docs"))?;
    copy_tree(&root.join("examples"), &dir.join("examples"))?;
    // The example connector's sources are for developers; its build output is not shipped.
    let _ = std::fs::remove_dir_all(dir.join("examples/hello-connector/target"));
    for (shell, file) in [
        ("bash", "roster.bash"),
        ("zsh", "_roster"),
        ("fish", "roster.fish"),
    ] {
        let text = output(Command::new(dir.join("roster")).args(["completions", shell]))?;
        std::fs::write(dir.join("completions").join(file), text)?;
    }
    let man = output(Command::new(dir.join("roster")).arg("man"))?;
    std::fs::write(dir.join("man/roster.1"), man)?;
    let archive = out.join(format!("{name}.tar.gz"));
    let mut tar = Command::new("tar");
    tar.arg("-czf").arg(&archive).arg("-C").arg(&out).arg(&name);
    run(tar)?;
    smoke(&archive, &name)?;
    println!("{}", archive.display());
    Ok(())
}

/// Unpacks the archive elsewhere and asks its `roster` for its plugins,
/// with no ROSTER_PLUGINS_DIR: every shipped component must be found.
fn smoke(archive: &Path, name: &str) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("roster-dist-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut tar = Command::new("tar");
    tar.arg("-xzf").arg(archive).arg("-C").arg(&scratch);
    run(tar)?;
    let listed = output(
        Command::new(scratch.join(name).join("roster"))
            .args(["plugins", "list", "--json"])
            .env_remove("ROSTER_PLUGINS_DIR")
            .env("ROSTER_CACHE_DIR", scratch.join("cache")),
    )?;
    let _ = std::fs::remove_dir_all(&scratch);
    let doc: serde_json::Value = serde_json::from_str(&listed).context("plugins list --json")?;
    let found: Vec<&str> = doc["plugins"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    for p in SHIPPED {
        if !found.contains(p) {
            bail!("the unpacked archive's roster does not find plugin `{p}` (found {found:?})");
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        match entry.file_type()?.is_dir() {
            true => copy_tree(&entry.path(), &target)?,
            false => copy(&entry.path(), &target)?,
        }
    }
    Ok(())
}

/// A command's standard output, or why it failed.
fn output(c: &mut Command) -> Result<String> {
    let o = c.output().with_context(|| format!("running {c:?}"))?;
    if !o.status.success() {
        bail!(
            "{c:?} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8(o.stdout)?)
}
