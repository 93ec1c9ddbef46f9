//! Planning: from what the source and target hold (and what links were made
//! before) to the list of changes an apply would make. Pure functions over
//! data, no I/O, so every rule is testable and the 100,000-account case is a
//! matter of data structures, not network.
//!
//! The JSON form of [`Plan`] is a stable, documented interface (`docs/json.md`).

mod build;
mod diff;
mod explain;
mod filter;
mod link;
mod merge;
pub mod ranks;
mod removal;
mod shape;
mod skip;
mod sync;

pub use build::{PlanInput, build};
pub use explain::{Explanation, Step, explain};
pub use filter::{Dropped, FilterOutcome, filter};
pub use link::source_key;
pub use skip::{SkipReason, Skipped};

use crate::links::LinkHow;
use crate::model::{Change, ErrorKind, Operation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The plan format version in `--json` output and plan files.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format: u32,
    pub id: String,
    pub pipeline: String,
    pub pipeline_fingerprint: String,
    pub source: String,
    pub target: String,
    pub changes: Vec<PlannedChange>,
    /// Links to record that need no change in the target.
    pub links: Vec<PlannedLink>,
    /// Links that `roster links remove` staged for removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlinks: Vec<PlannedUnlink>,
    /// Staged link edits (their sources) this plan carries out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_edits: Vec<String>,
    pub notes: Vec<Note>,
    /// Source accounts the plan leaves alone, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    pub summary: Summary,
    /// Set when a safety rule refuses the plan; nothing may be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum ReadMode {
    #[default]
    Full,
    Incremental {
        /// Accounts the source reported as new or changed.
        changed: usize,
        /// Accounts the source reported as gone.
        removed: usize,
    },
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Action {
    MergeGuest,
    Create,
    Update,
    Disable,
    Delete,
}

impl Action {
    /// What an operation does to the target account.
    pub fn of(op: &Operation) -> Action {
        match op {
            Operation::MergeGuest { .. } => Action::MergeGuest,
            Operation::Create { .. } => Action::Create,
            Operation::Update { .. } => Action::Update,
            Operation::Disable { .. } => Action::Disable,
            Operation::Delete { .. } => Action::Delete,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedChange {
    /// Stable within the plan; also the change id sent to the connector.
    pub key: String,
    pub action: Action,
    /// Changes run phase by phase: guest merges that free a primary address,
    /// creates, merges into accounts, updates, removals.
    pub phase: u8,
    /// The account's primary address, for people to read.
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    pub change: Change,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldDiff>,
    /// Keys of changes that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The key of the create whose new target id this change refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_from: Option<String>,
    /// The link to record once the change is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<PlannedLink>,
}

impl PlannedChange {
    /// Within a phase, people before functional accounts: a functional
    /// account's members (its delegates) must exist when it is created. The
    /// plan is sorted by (phase, rank) and an apply never sends two ranks in
    /// one batch, so a connector need not reorder a batch.
    pub fn rank(&self) -> u8 {
        match &self.change.op {
            Operation::Create { account } => {
                u8::from(account.kind == crate::model::AccountKind::Functional)
            }
            _ => 0,
        }
    }

    /// A change of `op` to the account with primary address `email`, run in
    /// `phase`, keyed (and sent to the connector) as `key`: nothing to wait
    /// for, no field diff, no link to record until the caller adds them.
    pub fn new(
        key: String,
        phase: u8,
        email: &str,
        source_key: Option<String>,
        op: Operation,
        options: BTreeMap<String, String>,
    ) -> Self {
        PlannedChange {
            action: Action::of(&op),
            change: Change {
                id: key.clone(),
                op,
                options,
            },
            key,
            phase,
            email: email.to_string(),
            source_key,
            diff: vec![],
            after: vec![],
            target_from: None,
            link: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FieldDiff {
    pub field: String,
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedLink {
    pub source_key: String,
    pub source_email: String,
    /// None until the create it belongs to has run.
    pub target_id: Option<String>,
    pub how: LinkHow,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// The link's own options, on top of the pipeline's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
}

/// A link to remove: the account stays as it is in the target, and is no
/// longer synced (nor linked again by address) until linked by hand.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedUnlink {
    pub source_key: String,
    pub source_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteLevel {
    Warning,
    Conflict,
    Error,
}

impl NoteLevel {
    /// Every level, the most severe first: the order a plan shows them in.
    pub const ALL: [NoteLevel; 3] = [NoteLevel::Error, NoteLevel::Conflict, NoteLevel::Warning];

    pub fn as_str(self) -> &'static str {
        match self {
            NoteLevel::Error => "error",
            NoteLevel::Conflict => "conflict",
            NoteLevel::Warning => "warning",
        }
    }
}

impl Plan {
    /// The notes of one level, in the plan's order.
    pub fn notes_at(&self, level: NoteLevel) -> Vec<&Note> {
        self.notes.iter().filter(|n| n.level == level).collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub level: NoteLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub source_accounts: usize,
    /// How the source was read: everything, or only what changed since the last read.
    #[serde(default)]
    pub source_read: ReadMode,
    pub in_scope: usize,
    pub target_accounts: usize,
    pub creates: usize,
    pub updates: usize,
    pub merges: usize,
    pub disables: usize,
    pub deletes: usize,
    pub new_links: usize,
    #[serde(default)]
    pub unlinks: usize,
    pub unchanged: usize,
    /// In scope but not synced (see `skipped_by_reason`).
    pub skipped: usize,
    /// Dropped by a filter stage or outside the claimed domains.
    #[serde(default)]
    pub filtered: usize,
    /// Skipped and filtered accounts counted by reason (and filter rule:
    /// `filtered:include_domains`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped_by_reason: BTreeMap<String, usize>,
    pub warnings: usize,
    pub conflicts: usize,
    pub errors: usize,
}

/// Per-link options as an admin reads them: `diary=true, task=false`.
pub fn options_text(options: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(", ")
}

impl Plan {
    /// Nothing to change in the target and no link to record or remove.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.links.is_empty()
            && self.unlinks.is_empty()
            && self.link_edits.is_empty()
    }
}

#[cfg(test)]
mod tests;
