//! Staging link changes (`roster links add|remove`, and the service API's
//! link routes): checked against the target connector's declared link
//! options, then kept in the state until the next apply carries them out.

use crate::error::Failure;
use crate::links::LinkEdit;
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
