//! Roster's memory between runs: links, runs, the apply journal, per-account
//! errors and read watermarks. Behind a small trait so a shared server
//! database can stand in for the embedded SQLite file when several hosts
//! share one state.

mod sqlite;

use crate::model::Account;
use crate::plan::LinkHow;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub use sqlite::SqliteStore;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalStatus {
    /// Recorded before anything was sent.
    Pending,
    /// Sent to the target; no answer recorded (an interrupted apply).
    Sent,
    Applied,
    Failed,
    /// Not attempted because a change it depends on failed.
    Skipped,
}

impl JournalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalStatus::Pending => "pending",
            JournalStatus::Sent => "sent",
            JournalStatus::Applied => "applied",
            JournalStatus::Failed => "failed",
            JournalStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JournalStatus::Pending,
            "sent" => JournalStatus::Sent,
            "applied" => JournalStatus::Applied,
            "failed" => JournalStatus::Failed,
            "skipped" => JournalStatus::Skipped,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub status: JournalStatus,
    pub target_id: Option<String>,
}

/// One change's outcome, as the apply records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<'a> {
    pub plan_id: &'a str,
    pub key: &'a str,
    pub account: &'a str,
    pub status: JournalStatus,
    pub target_id: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub plan_id: String,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub applied: u64,
    pub failed: u64,
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountError {
    pub account: String,
    pub change: String,
    pub message: String,
    pub at_ms: u64,
}

/// One change to a connector's memo: a value kept, or (`None`) a key removed.
pub type MemoWrite = (String, Option<String>);

/// A connector's memo changes, to keep with the state write they belong to.
#[derive(Clone, Copy, Debug)]
pub struct MemoUpdate<'a> {
    pub connector: &'a str,
    pub writes: &'a [MemoWrite],
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceSnapshot {
    pub watermark: String,
    pub accounts: Vec<Account>,
}

/// What a read did to the source's snapshot.
pub enum SnapshotChange<'a> {
    /// A full read: these are all the accounts.
    Replace(&'a [Account]),
    /// An incremental read: these changed (or are new), those are gone.
    Patch {
        upserts: &'a [Account],
        removed: &'a [String],
    },
}

pub trait StateStore {
    fn links(&self) -> anyhow::Result<Vec<StoredLink>>;
    fn upsert_link(&mut self, link: &StoredLink) -> anyhow::Result<()>;
    fn remove_link(&mut self, source_key: &str) -> anyhow::Result<()>;

    fn begin_run(&mut self, command: &str, plan_id: &str) -> anyhow::Result<i64>;
    fn finish_run(
        &mut self,
        run: i64,
        applied: u64,
        failed: u64,
        outcome: &str,
    ) -> anyhow::Result<()>;
    fn recent_runs(&self, limit: usize) -> anyhow::Result<Vec<RunRecord>>;

    /// Records the plan's changes as pending (those already journalled keep their status).
    fn journal_open(&mut self, plan_id: &str, keys: &[(&str, &str)]) -> anyhow::Result<()>;
    fn journal(&self, plan_id: &str) -> anyhow::Result<HashMap<String, JournalEntry>>;
    /// Records outcomes in one transaction, with links to store on success,
    /// each account's last error and what the target wrote to its memo
    /// while making them.
    fn record(
        &mut self,
        outcomes: &[Outcome],
        links: &[StoredLink],
        memo: Option<MemoUpdate>,
    ) -> anyhow::Result<()>;
    fn mark_sent(&mut self, plan_id: &str, keys: &[&str]) -> anyhow::Result<()>;

    fn link_edits(&self) -> anyhow::Result<Vec<LinkEdit>>;
    /// Stages an edit; a later edit of the same source replaces it.
    fn stage_link_edit(&mut self, edit: &LinkEdit) -> anyhow::Result<()>;
    /// Drops a staged edit; false when there was none.
    fn unstage_link_edit(&mut self, source: &str) -> anyhow::Result<bool>;
    fn unlinked(&self) -> anyhow::Result<Vec<Unlinked>>;
    /// In one transaction: stores `links`, removes the links of `unlinks` and
    /// remembers them as unlinked, and drops the staged edits now carried out.
    fn carry_out_link_edits(
        &mut self,
        links: &[StoredLink],
        unlinks: &[Unlinked],
        edits_done: &[String],
    ) -> anyhow::Result<()>;

    fn account_errors(&self) -> anyhow::Result<Vec<AccountError>>;

    /// Everything `connector` keeps in its memo.
    fn memo(&self, connector: &str) -> anyhow::Result<BTreeMap<String, String>>;
    /// Keeps memo changes made outside an apply batch (during a read).
    fn save_memo(&mut self, memo: MemoUpdate) -> anyhow::Result<()>;

    /// The source's accounts as its last read left them, when that read
    /// ended on a watermark and was made under the same `fingerprint`
    /// (plugin and configuration): what an incremental read patches.
    fn source_snapshot(
        &self,
        connector: &str,
        fingerprint: &str,
    ) -> anyhow::Result<Option<SourceSnapshot>>;
    /// Records a read in one transaction; `None` as watermark forgets the
    /// snapshot, so the next read is a full one.
    fn save_source_snapshot(
        &mut self,
        connector: &str,
        fingerprint: &str,
        watermark: Option<&str>,
        change: SnapshotChange,
    ) -> anyhow::Result<()>;
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
