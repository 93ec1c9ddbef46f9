//! `roster init`: a first pipeline file written from the two plugins' own
//! descriptors (their settings with descriptions, secrets as `${env:…}`,
//! the hosts they declare as `allowed_hosts`), with the stages an admin
//! starts from. Nothing is read or sent; an existing file is never
//! overwritten.

use super::Global;
use crate::error::Failure;
use crate::model::Descriptor;
use crate::runtime::{Redactor, Runtime};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Init {
    /// The source plugin: a name in the plugin directories, or a .wasm file.
    #[arg(long)]
    source: String,
    /// The target plugin: a name in the plugin directories, or a .wasm file.
    #[arg(long)]
    target: String,
    /// The pipeline's name (default: SOURCE-to-TARGET).
    #[arg(long)]
    name: Option<String>,
    /// Where to write it (default: NAME.toml).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Init {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let runtime = Runtime::new(global.cache_dir()).map_err(Failure::bad_input)?;
        let source = described(&runtime, &self.source).await?;
        let target = described(&runtime, &self.target).await?;
        for (role, (plugin, d), ok) in [
            ("source", &source, source.1.source),
            ("target", &target, target.1.target),
        ] {
            if !ok {
                return Err(Failure::Input(format!(
                    "plugin `{plugin}` ({}) cannot be a {role}; it can be a {}",
                    d.name,
                    if d.source { "source" } else { "target" }
                )));
            }
        }
        let (source_name, target_name) = match source.1.name == target.1.name {
            true => (
                format!("{}-source", source.1.name),
                format!("{}-target", target.1.name),
            ),
            false => (source.1.name.clone(), target.1.name.clone()),
        };
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{source_name}-to-{target_name}"));
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.toml")));
        let text = pipeline(&name, (&source_name, &source), (&target_name, &target));
        write_new(&out, &text)?;
        eprintln!(
            "wrote {}: fill in the values marked FILL IN and the claimed domains, set the environment variables it names, then `roster check {}` and `roster test-connection {}`",
            out.display(),
            out.display(),
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// How the pipeline names the plugin (as typed), and its descriptor.
type Described = (String, Descriptor);

async fn described(runtime: &Runtime, plugin: &str) -> Result<Described, Failure> {
    let path = match plugin.ends_with(".wasm") || plugin.contains('/') {
        true => PathBuf::from(plugin),
        false => {
            let dirs = crate::plugins::plugin_dirs(None);
            crate::plugins::find_plugin(plugin, &dirs).ok_or_else(|| {
                Failure::Input(format!(
                    "no plugin `{plugin}` found (`roster plugins list` shows those there are)"
                ))
            })?
        }
    };
    let component = runtime.load(&path).map_err(Failure::bad_input)?;
    let descriptor =
        crate::plugins::describe_component(runtime, "init", &component, Redactor::global()).await?;
    Ok((plugin.to_string(), descriptor))
}

fn pipeline(name: &str, source: (&str, &Described), target: (&str, &Described)) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `roster init`; docs/pipeline.md describes every key.\nname = \"{name}\"\nsource = \"{}\"\ntarget = \"{}\"",
        source.0, target.0
    );
    connector(&mut t, source.0, source.1);
    connector(&mut t, target.0, target.1);
    t.push_str(STAGES);
    t
}

fn connector(t: &mut String, name: &str, (plugin, d): &Described) {
    let _ = writeln!(t, "\n# {} {}: {}", d.name, d.version, d.description);
    let _ = writeln!(t, "[connectors.{name}]\nplugin = \"{plugin}\"");
    let hosts: Vec<String> = d.hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let _ = writeln!(
        t,
        "# The only hosts it may reach (the plugin declares these).\nallowed_hosts = [{}]",
        hosts.join(", ")
    );
    let _ = writeln!(
        t,
        "# directory = \"data\"              # a directory it may use, if it keeps files"
    );
    let settings: Vec<_> = d.settings().collect();
    if settings.is_empty() {
        return;
    }
    let _ = writeln!(t, "\n[connectors.{name}.config]");
    for f in settings {
        let _ = writeln!(t, "# {}", f.description);
        let line = if f.secret {
            format!("{} = \"${{env:{}}}\"", f.name, env_name(name, &f.name))
        } else if let Some(default) = &f.default_value {
            format!("# {} = \"{default}\"", f.name)
        } else if f.required {
            format!("{} = \"FILL IN\"", f.name)
        } else {
            format!("# {} = \"\"", f.name)
        };
        let _ = writeln!(t, "{line}");
    }
}

/// `ZIVVER_API_KEY` for the key `api_key` of connector `zivver`.
fn env_name(connector: &str, key: &str) -> String {
    format!("{connector}_{key}")
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_uppercase(),
            false => '_',
        })
        .collect()
}

const STAGES: &str = r#"
[[stages]]
type = "filter"
# The domains the target owns: accounts, aliases and delegates elsewhere are left out.
claimed_domains = []
kinds = ["person", "functional"]

[[stages]]
type = "link"
by = "primary"

[[stages]]
type = "merge"
mode = "alias-only"

[[stages]]
type = "sync"
removed = "keep"          # keep | disable | delete, behind max_removals
"#;

/// Writes `text` to a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Failure::Input(format!(
                "{} exists already; roster init never overwrites (pass --out)",
                path.display()
            )),
            _ => Failure::Input(format!("cannot write {}: {e}", path.display())),
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| Failure::Input(format!("cannot write {}: {e}", path.display())))
}
