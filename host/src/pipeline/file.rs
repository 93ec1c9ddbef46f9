//! The pipeline file's shape, as serde reads it. Every table refuses unknown
//! keys, so a typo is an error with its line, never a silently ignored line.

use crate::model::AccountKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub source: Spanned<String>,
    pub target: Spanned<String>,
    /// Where the state lives: a path to a SQLite file (relative to the
    /// pipeline file), default `<pipeline>.state.sqlite` beside it; or a
    /// PostgreSQL URL (`postgres://…[?schema=NAME]`).
    #[serde(default)]
    pub state: Option<Spanned<String>>,
    /// Where plugin names are looked up, relative to the pipeline file.
    #[serde(default)]
    pub plugins_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub apply: RawApply,
    pub connectors: BTreeMap<String, Spanned<RawConnector>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawApply {
    /// Changes sent to the target per call.
    #[serde(default)]
    pub batch_size: Option<Spanned<u32>>,
    /// Split the accounts into this many ranks, applied side by side by
    /// `roster serve` nodes (docs/service.md).
    #[serde(default)]
    pub ranks: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnector {
    /// A plugin name (looked up in the plugins directory) or a path to a `.wasm` file.
    pub plugin: Spanned<String>,
    #[serde(default)]
    pub config: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub allowed_hosts: Vec<Spanned<String>>,
    /// A directory the connector may read and write, relative to the pipeline file.
    #[serde(default)]
    pub directory: Option<Spanned<String>>,
    #[serde(default)]
    pub directory_read_only: bool,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory_mb: Option<Spanned<u64>>,
    pub call_timeout_secs: Option<Spanned<u64>>,
    pub http_timeout_secs: Option<Spanned<u64>>,
    pub retries: Option<Spanned<u32>>,
    pub max_retry_wait_secs: Option<Spanned<u64>>,
    pub concurrency: Option<Spanned<usize>>,
    pub rate_limit: Option<RawRate>,
    pub output_kb: Option<Spanned<usize>>,
    pub max_records: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub requests: Spanned<u32>,
    pub per_seconds: Spanned<f64>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilterStage {
    /// Keep only accounts whose primary address is in one of these domains.
    #[serde(default)]
    pub include_domains: Vec<String>,
    #[serde(default)]
    pub exclude_domains: Vec<String>,
    /// Keep only addresses matching one of these patterns (`*` and `?`).
    #[serde(default)]
    pub include_addresses: Vec<String>,
    #[serde(default)]
    pub exclude_addresses: Vec<String>,
    /// Keep only accounts inside one of these organizational units.
    #[serde(default)]
    pub include_ous: Vec<String>,
    #[serde(default)]
    pub exclude_ous: Vec<String>,
    #[serde(default)]
    pub kinds: Option<Vec<AccountKind>>,
    #[serde(default)]
    pub enabled_only: bool,
    /// Keep only direct members of one of these groups (by name, id or address).
    #[serde(default)]
    pub member_of: Vec<String>,
    /// The domains the target organisation owns: accounts elsewhere are left
    /// out, and so are aliases and delegates elsewhere; each with a warning.
    #[serde(default)]
    pub claimed_domains: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkBy {
    #[default]
    Primary,
    PrimaryOrAlias,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkStage {
    #[serde(default)]
    pub by: LinkBy,
    #[serde(default)]
    pub manual: Vec<ManualLink>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManualLink {
    /// The source account: its primary address, external key or id.
    pub source: String,
    /// The target account's id.
    pub target: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeMode {
    Off,
    #[default]
    AliasOnly,
    AliasOrPrimary,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MergeStage {
    #[serde(default)]
    pub mode: MergeMode,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Removal {
    /// Leave target accounts whose source account is gone.
    #[default]
    Keep,
    Disable,
    Delete,
}

/// What happens to target accounts in the claimed domains that Roster has
/// not linked and that no source account backs (accounts made by hand or by
/// another tool before Roster came).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlinkedPolicy {
    /// Leave them.
    #[default]
    Keep,
    /// A warning per account, naming it.
    Report,
    /// Disable them, behind the removal thresholds.
    Disable,
}

/// What the plan says about an enabled source account that is linked to
/// nothing and not created (creating is off for its kind).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unmatched {
    /// Nothing; it is counted as skipped.
    Ignore,
    /// A warning per account.
    #[default]
    Warn,
    /// An error per account (for targets where every mailbox must have an account).
    Error,
}

fn yes() -> bool {
    true
}

fn default_max_removals() -> u32 {
    10
}

fn default_max_removals_percent() -> f64 {
    5.0
}

fn default_percent_min_removals() -> u32 {
    4
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncStage {
    #[serde(default = "yes")]
    pub create_users: bool,
    #[serde(default = "yes")]
    pub update_users: bool,
    #[serde(default = "yes")]
    pub create_functional: bool,
    #[serde(default = "yes")]
    pub update_functional: bool,
    /// What happens to a linked target account whose source account is gone.
    #[serde(default)]
    pub removed: Removal,
    /// Refuse a plan with more removals than this...
    #[serde(default = "default_max_removals")]
    pub max_removals: u32,
    /// ...or more than this percentage of the linked accounts...
    #[serde(default = "default_max_removals_percent")]
    pub max_removals_percent: f64,
    /// ...where the percentage counts only from this many removals on, so
    /// a small organisation is not refused for one leaver.
    #[serde(default = "default_percent_min_removals")]
    pub percent_min_removals: u32,
    /// Per-link options handed to the target with every change (a manual
    /// link's own options override these).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Enabled source accounts that match no target account and are not created.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Create disabled source accounts too, as disabled accounts (they take
    /// no licence seat); off: they are left out.
    #[serde(default)]
    pub create_disabled: bool,
    /// Target people in the claimed domains that no source account backs
    /// and Roster has not linked.
    #[serde(default)]
    pub unlinked: UnlinkedPolicy,
    /// An account that must hold FullAccess on a mailbox before the target
    /// syncs it (e.g. Riva's Exchange connection account): a source person
    /// without it among its delegates gets an error naming the grant.
    #[serde(default)]
    pub require_delegate: Option<String>,
}

impl Default for SyncStage {
    fn default() -> Self {
        SyncStage {
            create_users: true,
            update_users: true,
            create_functional: true,
            update_functional: true,
            removed: Removal::Keep,
            max_removals: default_max_removals(),
            max_removals_percent: default_max_removals_percent(),
            percent_min_removals: default_percent_min_removals(),
            options: BTreeMap::new(),
            unmatched: Unmatched::Warn,
            create_disabled: false,
            unlinked: UnlinkedPolicy::Keep,
            require_delegate: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    Filter(FilterStage),
    Link(LinkStage),
    Merge(MergeStage),
    Sync(SyncStage),
}

/// The stages once parsing has checked their order (filters, link, merge,
/// sync; each of the last three at most once): what the planner reads.
#[derive(Clone, Debug, Default)]
pub struct Stages {
    pub filters: Vec<FilterStage>,
    pub link: Option<LinkStage>,
    pub merge: Option<MergeStage>,
    pub sync: Option<SyncStage>,
}

impl Stages {
    /// From stages in an order `check_order` accepted.
    pub(super) fn from_checked(stages: Vec<Stage>) -> Stages {
        let mut out = Stages::default();
        for stage in stages {
            match stage {
                Stage::Filter(f) => out.filters.push(f),
                Stage::Link(l) => out.link = Some(l),
                Stage::Merge(m) => out.merge = Some(m),
                Stage::Sync(s) => out.sync = Some(s),
            }
        }
        out
    }

    /// The stages' kinds in the order they run, as the pipeline lists them.
    pub fn kinds(&self) -> Vec<&'static str> {
        let filters = self.filters.iter().map(|_| "filter");
        let link = self.link.iter().map(|_| "link");
        let merge = self.merge.iter().map(|_| "merge");
        let sync = self.sync.iter().map(|_| "sync");
        filters.chain(link).chain(merge).chain(sync).collect()
    }

    /// How guests are merged; off without a merge stage.
    pub fn merge_mode(&self) -> MergeMode {
        self.merge.as_ref().map_or(MergeMode::Off, |m| m.mode)
    }
}

impl Stage {
    pub fn kind(&self) -> &'static str {
        match self {
            Stage::Filter(_) => "filter",
            Stage::Link(_) => "link",
            Stage::Merge(_) => "merge",
            Stage::Sync(_) => "sync",
        }
    }
}
