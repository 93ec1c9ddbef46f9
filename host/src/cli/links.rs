//! `roster links`: what is linked to what and how, and link changes staged
//! by hand for the next apply. Staging touches only the state file; the plan
//! shows each staged change before an apply carries it out, so a link
//! removed by mistake is seen (and unstaged) before anything is lost.

use super::render;
use crate::error::Failure;
use crate::links::StoredLink;
use crate::model::Descriptor;
use crate::operation::links as staging;
use crate::pipeline::Pipeline;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// Spread the linked accounts over ranks 1..=N (the `rank` option, e.g.
    /// the SuperOffice Synchronizer's server rank), evenly and stably: a link
    /// keeps a rank of its own while it is within 1..=N, the others go one by
    /// one to the rank with the fewest. Staged for the next apply.
    Balance {
        #[arg(long, value_name = "N")]
        ranks: u32,
    },
    /// Write the list of linked accounts with their options (CSV: target id,
    /// source address, each option), e.g. the user list of the SuperOffice
    /// Synchronizer. To standard output, or atomically to `--out FILE`.
    Export {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Accept link rows changed outside roster (a hand edit of the state
    /// file, a partial restore), after checking them with `roster links`:
    /// until then no plan is made from them.
    AcceptEdits,
}

#[derive(clap::Args, Debug)]
pub struct Links {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    #[command(subcommand)]
    action: Option<LinksAction>,
    #[arg(long, global = true)]
    pub(super) json: bool,
}

impl Links {
    pub async fn run(self, global: &super::Global) -> Result<ExitCode, Failure> {
        run(&self.pipeline, self.action, self.json, global.cache_dir()).await
    }
}

async fn run(
    path: &Path,
    action: Option<LinksAction>,
    json: bool,
    cache_dir: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let pipeline = Pipeline::load_unresolved(path)?;
    let Some(action) = action else {
        return list(&pipeline, json);
    };
    let mut state = pipeline.open_state()?;
    let message = match action {
        LinksAction::Balance { ranks } => {
            let target = crate::plugins::describe(&pipeline, &pipeline.target, cache_dir).await?;
            target
                .check_link_option(staging::RANK, "1")
                .map_err(|e| Failure::Input(format!("balance: {e}")))?;
            let edits = staging::balance(&state.links()?, ranks)?;
            for e in &edits {
                state.stage_link_edit(e)?;
            }
            format!(
                "staged: {} of {} links to a new rank (1..={ranks}); `roster plan` shows them, the next apply keeps them",
                edits.len(),
                state.links()?.len()
            )
        }
        LinksAction::Export { out } => {
            let target = crate::plugins::describe(&pipeline, &pipeline.target, cache_dir).await?;
            let text = export(&state.links()?, &target)?;
            match out {
                Some(file) => {
                    super::write_atomic(&file, text.as_bytes())?;
                    if !json {
                        eprintln!("wrote {}", file.display());
                    }
                }
                None => print!("{text}"),
            }
            return Ok(ExitCode::SUCCESS);
        }
        LinksAction::Add {
            source,
            target,
            options,
        } => {
            let options = parse_options(&options)?;
            let target = Some(target.trim().to_string());
            let edit = staging::stage(&pipeline, &mut *state, &source, target, options, cache_dir)
                .await
                .map_err(|e| match e {
                    Failure::Input(m) if m.starts_with("options:") => {
                        Failure::Input(format!("--{m}"))
                    }
                    other => other,
                })?;
            format!(
                "staged: link {} → {}; `roster plan` shows it, the next apply makes it",
                edit.source,
                edit.target_id.as_deref().unwrap_or_default()
            )
        }
        LinksAction::Remove { source } => {
            let edit = staging::stage(&pipeline, &mut *state, &source, None, BTreeMap::new(), None)
                .await?;
            format!(
                "staged: unlink {}; `roster plan` shows it, the next apply makes it (undo with `roster links {} unstage {}`)",
                edit.source,
                path.display(),
                edit.source
            )
        }
        LinksAction::AcceptEdits => {
            let accepted = state.accept_link_edits()?;
            match accepted.len() {
                0 => "no link row was changed outside roster".to_string(),
                n => format!(
                    "accepted {n} link row(s) as they now are: {}",
                    accepted.join(", ")
                ),
            }
        }
        LinksAction::Unstage { source } => {
            let source = staging::normalize(&source)?;
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
    let (links, edits, unlinked) = if pipeline.state_exists() {
        let state = pipeline.open_state()?;
        let (links, edited) = state.links_as_stored()?;
        if !edited.is_empty() {
            eprintln!(
                "warning: changed outside roster, not used by plans until accepted (`roster links {} accept-edits`): {}",
                pipeline.path.display(),
                edited.join(", ")
            );
        }
        (links, state.link_edits()?, state.unlinked()?)
    } else {
        Default::default()
    };
    render::links(json, &links, &edits, &unlinked);
    Ok(ExitCode::SUCCESS)
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

/// The linked accounts as CSV: `target_id,source,<options>`, the options
/// the target declares (each link's value, else the declared default) or,
/// when it declares none, every option any link has.
fn export(links: &[StoredLink], target: &Descriptor) -> Result<String, Failure> {
    let declared: Vec<(String, Option<String>)> = target
        .link_options()
        .map(|(n, f)| (n.to_string(), f.default_value.clone()))
        .collect();
    let columns: Vec<(String, Option<String>)> = match declared.is_empty() {
        false => declared,
        true => {
            let mut keys: Vec<String> = links
                .iter()
                .flat_map(|l| l.options.keys().cloned())
                .collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().map(|k| (k, None)).collect()
        }
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["target_id".to_string(), "source".to_string()];
    header.extend(columns.iter().map(|(k, _)| k.clone()));
    let fail = |e: csv::Error| Failure::Input(format!("export: {e}"));
    w.write_record(&header).map_err(fail)?;
    let mut sorted: Vec<&StoredLink> = links.iter().collect();
    sorted.sort_by(|a, b| a.source_email.cmp(&b.source_email));
    for l in sorted {
        let mut row = vec![l.target_id.clone(), l.source_email.clone()];
        row.extend(columns.iter().map(|(k, default)| {
            l.options
                .get(k)
                .or(default.as_ref())
                .cloned()
                .unwrap_or_default()
        }));
        w.write_record(&row).map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Failure::Input(format!("export: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::LinkEdit;
    use crate::links::LinkHow;
    use crate::operation::links::{RANK, balance};

    fn link(email: &str, rank: Option<&str>) -> StoredLink {
        StoredLink {
            source_key: email.into(),
            source_email: email.into(),
            target_id: format!("t-{email}"),
            how: LinkHow::Primary,
            options: BTreeMap::new(),
            overrides: rank
                .map(|r| BTreeMap::from([(RANK.to_string(), r.to_string())]))
                .unwrap_or_default(),
            updated_at_ms: 0,
        }
    }

    fn ranks(edits: &[LinkEdit]) -> Vec<(String, String)> {
        edits
            .iter()
            .map(|e| (e.source.clone(), e.options[RANK].clone()))
            .collect()
    }

    #[test]
    fn balance_is_even_and_moves_nobody_who_has_a_rank() {
        let links: Vec<StoredLink> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|l| link(&format!("{l}@x"), None))
            .collect();
        let first = balance(&links, 2).unwrap();
        assert_eq!(
            ranks(&first),
            [
                ("a@x".into(), "1".into()),
                ("b@x".into(), "2".into()),
                ("c@x".into(), "1".into()),
                ("d@x".into(), "2".into()),
                ("e@x".into(), "1".into()),
            ]
        );
        // Once kept, a new link goes to the emptier rank; nobody else moves.
        let mut kept: Vec<StoredLink> = first
            .iter()
            .map(|e| link(&e.source, Some(&e.options[RANK])))
            .collect();
        kept.push(link("f@x", None));
        assert_eq!(
            ranks(&balance(&kept, 2).unwrap()),
            [("f@x".into(), "2".into())]
        );
        // Fewer ranks: only those out of range move.
        let shrunk = balance(&kept[..5], 1).unwrap();
        assert_eq!(shrunk.len(), 2);
        assert!(balance(&kept, 0).is_err());
    }
}
