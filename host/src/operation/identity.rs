//! Which pipeline a state belongs to. A renamed or copied pipeline file
//! gets a new state file by default (`<stem>.state.sqlite`), which would
//! silently start over: every link gone, auto-link from scratch. So a state
//! records its pipeline (name, source, target) at the first apply; a state
//! of another pipeline, or a fresh state while a state of the same pipeline
//! lies beside it, is a warning for `plan` and a refusal for `apply` unless
//! `--new-state` says starting afresh is meant.

use crate::error::Failure;
use crate::pipeline::Pipeline;
use crate::state::{PipelineIdentity, StateStore, identity_of};
use std::path::{Path, PathBuf};

pub fn of(p: &Pipeline) -> PipelineIdentity {
    PipelineIdentity {
        name: p.name.clone(),
        source: p.source.clone(),
        target: p.target.clone(),
    }
}

/// What is wrong with using `state` for `p`, if anything.
pub fn problem(p: &Pipeline, state: &dyn StateStore) -> Result<Option<String>, Failure> {
    let mine = of(p);
    let at = p.state_shown();
    Ok(match state.identity()? {
        Some(id) if id == mine => None,
        Some(other) => Some(format!(
            "the state {at} belongs to pipeline {other}, not {mine}: point `state =` at this pipeline's own state, or pass --new-state to use this one for {mine}"
        )),
        // A state from before identities were kept: taken as this pipeline's.
        None if !state.is_fresh()? => None,
        None => known_elsewhere(p, &mine).map(|other| {
            // As `state =` takes it: relative to the pipeline file.
            let relative = other.strip_prefix(&p.dir).unwrap_or(&other);
            format!(
                "no state yet at {at}, but {} holds the state of pipeline {mine} (a renamed or copied pipeline file?): set `state = \"{}\"` in the pipeline to keep its links, or pass --new-state to start afresh",
                other.display(),
                relative.display()
            )
        }),
    })
}

/// Another state file beside the pipeline (or its state) that belongs to
/// the same pipeline.
fn known_elsewhere(p: &Pipeline, mine: &PipelineIdentity) -> Option<PathBuf> {
    if p.state_url.is_some() {
        // On a server, the schema follows the pipeline's name, not its file.
        return None;
    }
    let dirs = [Some(p.dir.as_path()), p.state_path.parent()];
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in dirs.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|f| is_state_file(f) && !same_file(f, &p.state_path))
            .filter(|f| !seen.contains(f))
            .collect();
        files.sort();
        for f in files {
            if identity_of(&f).as_ref() == Some(mine) {
                return Some(f);
            }
            seen.push(f);
        }
    }
    None
}

fn is_state_file(f: &Path) -> bool {
    f.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".sqlite"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
