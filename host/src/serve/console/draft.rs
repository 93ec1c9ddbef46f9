//! Link changes an admin makes in the console's Links page, kept with the
//! session until **Save** stages them for the next apply (as the seed's
//! "Save Added Users" does): link one pair, new options for a link, a
//! rank, an unlink. Each is the state's own `LinkEdit`, not yet staged; one
//! per source account, a later change to the same account replacing the
//! earlier.

use crate::links::LinkEdit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Drafts(pub BTreeMap<String, BTreeMap<String, LinkEdit>>);

/// A change of `source` (normalized): to `target` (`None` unlinks) with
/// `options`; `options_only` keeps how the link was made.
pub fn edit(
    source: String,
    target: Option<String>,
    options: BTreeMap<String, String>,
    options_only: bool,
) -> LinkEdit {
    LinkEdit {
        source,
        target_id: target,
        options,
        staged_at_ms: crate::state::now_ms(),
        options_only,
    }
}

/// A link change as an admin reads it.
pub fn what(e: &LinkEdit) -> String {
    let options = crate::plan::options_text(&e.options);
    match (&e.target_id, e.options_only) {
        (None, _) => "unlink".into(),
        (Some(_), true) => format!("options: {options}"),
        (Some(t), false) if options.is_empty() => format!("link to {t}"),
        (Some(t), false) => format!("link to {t} ({options})"),
    }
}

impl Drafts {
    pub fn of(&self, pipeline: &str) -> Option<&BTreeMap<String, LinkEdit>> {
        self.0.get(pipeline).filter(|d| !d.is_empty())
    }

    pub fn put(&mut self, pipeline: &str, edit: LinkEdit) {
        self.0
            .entry(pipeline.to_string())
            .or_default()
            .insert(edit.source.clone(), edit);
    }

    /// The drafts of `pipeline`, gone from the session.
    pub fn take(&mut self, pipeline: &str) -> Vec<LinkEdit> {
        self.0
            .remove(pipeline)
            .unwrap_or_default()
            .into_values()
            .collect()
    }
}
