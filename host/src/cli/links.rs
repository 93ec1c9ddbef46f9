//! `roster links`: what is linked to what and how, and link changes staged
//! by hand for the next apply. Staging touches only the state file; the plan
//! shows each staged change before an apply carries it out, so a link
//! removed by mistake is seen (and unstaged) before anything is lost.

use super::render;
use crate::pipeline::Pipeline;
use crate::session::Failure;
use crate::state::{LinkEdit, SqliteStore, StateStore, now_ms};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum LinksAction {
    /// Link a source account to a target account by hand (staged for the next apply).
    Add {
        /// The source account: its primary address, external key or id.
        source: String,
        /// The target account's id.
        target: String,
        /// Options for this link, on top of the pipeline's defaults: `diary=true,task=false`.
        #[arg(long = "options", value_name = "KEY=VALUE,…")]
        options: Vec<String>,
    },
    /// Unlink a source account (staged for the next apply); the target account is left as it is.
    Remove { source: String },
    /// Drop a staged link change before it is applied.
    Unstage { source: String },
}

pub fn run(path: &Path, action: Option<LinksAction>, json: bool) -> Result<ExitCode, Failure> {
    let pipeline = Pipeline::load_unresolved(path)?;
    let Some(action) = action else {
        return list(&pipeline, json);
    };
    let mut state = SqliteStore::open(&pipeline.state_path)?;
    let message = match action {
        LinksAction::Add {
            source,
            target,
            options,
        } => {
            let options = parse_options(&options)?;
            let edit = edit(&source, Some(target.trim().to_string()), options)?;
            state.stage_link_edit(&edit)?;
            format!(
                "staged: link {} → {}; `roster plan` shows it, the next apply makes it",
                edit.source,
                edit.target_id.as_deref().unwrap_or_default()
            )
        }
        LinksAction::Remove { source } => {
            let edit = edit(&source, None, BTreeMap::new())?;
            state.stage_link_edit(&edit)?;
            format!(
                "staged: unlink {}; `roster plan` shows it, the next apply makes it (undo with `roster links {} unstage {}`)",
                edit.source,
                path.display(),
                edit.source
            )
        }
        LinksAction::Unstage { source } => {
            let source = normalize(&source)?;
            if !state.unstage_link_edit(&source)? {
                return Err(Failure::Input(format!(
                    "no staged link change for {source}"
                )));
            }
            format!("unstaged: {source}")
        }
    };
    if !json {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(pipeline: &Pipeline, json: bool) -> Result<ExitCode, Failure> {
    let (links, edits, unlinked) = if pipeline.state_path.exists() {
        let state = SqliteStore::open(&pipeline.state_path)?;
        (state.links()?, state.link_edits()?, state.unlinked()?)
    } else {
        Default::default()
    };
    render::links(json, &links, &edits, &unlinked);
    Ok(ExitCode::SUCCESS)
}

/// Addresses are compared case-insensitively; keys and ids are kept as typed.
fn normalize(source: &str) -> Result<String, Failure> {
    let source = source.trim();
    if source.is_empty() {
        return Err(Failure::Input("the source account is empty".into()));
    }
    Ok(if source.contains('@') {
        source.to_ascii_lowercase()
    } else {
        source.to_string()
    })
}

fn edit(
    source: &str,
    target_id: Option<String>,
    options: BTreeMap<String, String>,
) -> Result<LinkEdit, Failure> {
    if target_id.as_deref() == Some("") {
        return Err(Failure::Input("the target account id is empty".into()));
    }
    Ok(LinkEdit {
        source: normalize(source)?,
        target_id,
        options,
        staged_at_ms: now_ms(),
    })
}

/// `--options diary=true,task=false` (repeatable).
fn parse_options(values: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut options = BTreeMap::new();
    for part in values.iter().flat_map(|v| v.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(Failure::Input(format!(
                "--options: `{part}` is not KEY=VALUE"
            )));
        };
        if k.trim().is_empty() {
            return Err(Failure::Input(format!("--options: `{part}` has no key")));
        }
        options.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(options)
}
