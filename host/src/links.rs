//! The links between source and target accounts, in every form they take:
//! how a link was made, a link as the state keeps it, a link change staged
//! by an admin, and an account unlinked on purpose. Both the planner (which
//! decides links) and the state (which keeps them) speak this vocabulary,
//! so neither needs the other.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum LinkHow {
    /// Named in the pipeline's link stage.
    Manual,
    /// Same primary address.
    Primary,
    /// An address of one is an alias of the other.
    Alias,
    /// Roster created the target account.
    Created,
    /// Linked in an earlier run.
    Stored,
}

impl LinkHow {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredLink {
    pub source_key: String,
    pub source_email: String,
    pub target_id: String,
    pub how: LinkHow,
    /// The options sent with the last change: the pipeline's defaults with
    /// the link's own overrides on top.
    pub options: BTreeMap<String, String>,
    /// This link's own options (from a manual link or `roster links add`),
    /// kept apart so a changed default in the pipeline still reaches it.
    pub overrides: BTreeMap<String, String>,
    pub updated_at_ms: u64,
}

/// A link change staged with `roster links add|remove`, carried out by the
/// next apply (and shown in the plan before it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkEdit {
    /// The source account: its address (lower case), external key or id.
    pub source: String,
    /// The target account to link to; `None` unlinks.
    pub target_id: Option<String>,
    pub options: BTreeMap<String, String>,
    pub staged_at_ms: u64,
    /// New options for a link as it is (e.g. `roster links balance`): the
    /// link keeps how it was made; otherwise it becomes a link by hand.
    #[serde(default)]
    pub options_only: bool,
}

/// A source account unlinked on purpose: neither linked by address again
/// nor created until it is linked by hand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unlinked {
    pub source_key: String,
    pub source_email: String,
    /// The target account it was linked to, for the record.
    pub target_id: Option<String>,
    pub at_ms: u64,
}
