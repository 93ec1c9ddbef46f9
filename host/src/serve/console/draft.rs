//! Link changes an admin makes in the console's Links page, kept with the
//! session until **Save** stages them for the next apply (as the seed's
//! "Save Added Users" does): link one pair, new options for a link, a
//! rank, an unlink. One entry per source account; a later change to the
//! same account replaces the earlier.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Drafts(pub BTreeMap<String, BTreeMap<String, Draft>>);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Draft {
    /// The target account; `None` unlinks.
    pub target: Option<String>,
    pub options: BTreeMap<String, String>,
    /// New options for a link as it is: it keeps how it was made.
    pub options_only: bool,
}

impl Draft {
    /// A link of the source account to `target` (by hand), with `options`.
    pub fn link(target: &str, options: BTreeMap<String, String>) -> Draft {
        Draft {
            target: Some(target.to_string()),
            options,
            options_only: false,
        }
    }

    pub fn what(&self) -> String {
        let options = crate::plan::options_text(&self.options);
        match (&self.target, self.options_only) {
            (None, _) => "unlink".into(),
            (Some(_), true) => format!("options: {options}"),
            (Some(t), false) if options.is_empty() => format!("link to {t}"),
            (Some(t), false) => format!("link to {t} ({options})"),
        }
    }
}

impl Drafts {
    pub fn of(&self, pipeline: &str) -> Option<&BTreeMap<String, Draft>> {
        self.0.get(pipeline).filter(|d| !d.is_empty())
    }

    pub fn put(&mut self, pipeline: &str, source: String, draft: Draft) {
        self.0
            .entry(pipeline.to_string())
            .or_default()
            .insert(source, draft);
    }

    pub fn take(&mut self, pipeline: &str) -> BTreeMap<String, Draft> {
        self.0.remove(pipeline).unwrap_or_default()
    }
}
