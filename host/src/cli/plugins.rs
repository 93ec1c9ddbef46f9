//! `roster plugins list|inspect`: the components found in the plugin
//! directories, and one component described without running its logic
//! (`describe` runs with nothing granted: no configuration, network or files).

use super::Global;
use super::render;
use crate::error::Failure;
use crate::runtime::{Redactor, Runtime};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Plugins {
    /// List the plugins found in the plugin directories.
    List {
        /// Print one JSON document on stdout (docs/json.md), also on failure.
        #[arg(long)]
        json: bool,
    },
    /// Describe a component: name, version, contract, capabilities, config fields, hosts.
    Inspect {
        file: PathBuf,
        /// Print one JSON document on stdout (docs/json.md), also on failure.
        #[arg(long)]
        json: bool,
    },
}

impl Plugins {
    pub async fn run(self, global: &Global) -> Result<ExitCode, Failure> {
        let runtime = Runtime::new(global.cache_dir()).map_err(Failure::bad_input)?;
        match self {
            Plugins::List { json } => list(&runtime, json).await,
            Plugins::Inspect { file, json } => inspect(&runtime, &file, json).await,
        }
    }
}

async fn list(runtime: &Runtime, json: bool) -> Result<ExitCode, Failure> {
    let dirs = crate::plugins::plugin_dirs(None);
    let mut found = Vec::new();
    for dir in &dirs {
        for file in crate::plugins::wasm_files(dir) {
            let described = describe(runtime, &file).await;
            found.push((file, described));
        }
    }
    render::plugins_list(json, &dirs, &found);
    Ok(ExitCode::SUCCESS)
}

/// One component's contract and descriptor; a broken file is reported, not fatal.
async fn describe(runtime: &Runtime, file: &Path) -> render::Described {
    let component = runtime.load(file).map_err(|e| format!("{e:#}"))?;
    let descriptor =
        crate::plugins::describe_component(runtime, "list", &component, Redactor::global())
            .await
            .map_err(|e| e.to_string())?;
    Ok((component.contract.as_str().to_string(), descriptor))
}

async fn inspect(runtime: &Runtime, file: &Path, json: bool) -> Result<ExitCode, Failure> {
    let component = runtime.load(file).map_err(Failure::bad_input)?;
    let descriptor =
        crate::plugins::describe_component(runtime, "inspect", &component, Redactor::global())
            .await?;
    render::inspect(json, &component, &descriptor);
    Ok(ExitCode::SUCCESS)
}
