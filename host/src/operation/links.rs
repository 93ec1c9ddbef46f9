//! Staging link changes (`roster links add|remove`, and the service API's
//! link routes): checked against the target connector's declared link
//! options, then kept in the state until the next apply carries them out.

use crate::error::Failure;
use crate::links::{LinkEdit, StoredLink};
use crate::model::Descriptor;
use crate::pipeline::Pipeline;
use crate::state::{StateStore, now_ms};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Addresses are compared case-insensitively; keys and ids are kept as typed.
pub fn normalize(source: &str) -> Result<String, Failure> {
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

/// Stages a link of `source` to `target_id` with `options` (checked
/// against the options the target connector declares), or with no target
/// an unlink. Errors about an option start with `options:`.
pub async fn stage(
    pipeline: &Pipeline,
    state: &mut dyn StateStore,
    source: &str,
    target_id: Option<String>,
    options: BTreeMap<String, String>,
    cache_dir: Option<PathBuf>,
) -> Result<LinkEdit, Failure> {
    if target_id.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(Failure::Input("the target account id is empty".into()));
    }
    if !options.is_empty() {
        let d = crate::plugins::describe(pipeline, &pipeline.target, cache_dir).await?;
        for (k, v) in &options {
            d.check_link_option(k, v)
                .map_err(|e| Failure::Input(format!("options: {e}")))?;
        }
    }
    let edit = LinkEdit {
        source: normalize(source)?,
        target_id: target_id.map(|t| t.trim().to_string()),
        options,
        staged_at_ms: now_ms(),
        options_only: false,
    };
    state.stage_link_edit(&edit)?;
    Ok(edit)
}

/// Stages `edits` whole: every option of each is checked against what the
/// target connector declares first, and none is staged if one is wrong.
pub fn stage_all(
    state: &mut dyn StateStore,
    edits: &[LinkEdit],
    target: &Descriptor,
) -> Result<(), Failure> {
    for e in edits {
        for (k, v) in &e.options {
            target
                .check_link_option(k, v)
                .map_err(|why| Failure::Input(format!("{}: options: {why}", e.source)))?;
        }
    }
    for e in edits {
        state.stage_link_edit(e)?;
    }
    Ok(())
}

/// The option `balance` sets.
pub const RANK: &str = "rank";

/// The staged edits that spread `links` over ranks 1..=`ranks`: a link with
/// a rank of its own within range keeps it; the others, in address order,
/// each go to the rank with the fewest links so far (the lowest on a tie).
/// Adding a link moves no other.
pub fn balance(links: &[StoredLink], ranks: u32) -> Result<Vec<LinkEdit>, Failure> {
    if ranks == 0 {
        return Err(Failure::Input("--ranks must be at least 1".into()));
    }
    let own = |l: &StoredLink| {
        l.overrides
            .get(RANK)
            .and_then(|r| r.parse::<u32>().ok())
            .filter(|r| (1..=ranks).contains(r))
    };
    let mut load = vec![0usize; ranks as usize];
    for r in links.iter().filter_map(own) {
        load[r as usize - 1] += 1;
    }
    let mut moved: Vec<&StoredLink> = links.iter().filter(|l| own(l).is_none()).collect();
    moved.sort_by(|a, b| a.source_email.cmp(&b.source_email));
    let mut edits = Vec::new();
    for link in moved {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, n)| (**n, *i))
            .expect("at least one rank");
        load[i] += 1;
        let mut options = link.overrides.clone();
        options.insert(RANK.into(), (i + 1).to_string());
        edits.push(LinkEdit {
            source: link.source_email.to_ascii_lowercase(),
            target_id: Some(link.target_id.clone()),
            options,
            staged_at_ms: now_ms(),
            options_only: true,
        });
    }
    Ok(edits)
}
