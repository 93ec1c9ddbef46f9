//! Roster's memory between runs: links, runs, the apply journal, per-account
//! errors and read watermarks. Behind a small trait so a shared server
//! database can stand in for the embedded SQLite file when several hosts
//! share one state.

pub mod copy;
mod link_row;
pub mod lock;
pub mod postgres;
mod sqlite;

use crate::links::{LinkEdit, StoredLink, Unlinked};
use crate::model::Account;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub use postgres::{PgLocation, PgStore};
pub use sqlite::{SqliteStore, identity_of, private};

/// A state store failed: the database could not be opened, read or
/// written. Kept apart from other errors so a command exits with the store's
/// own code, not as bad input.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct StoreError(#[from] anyhow::Error);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.into())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(e.into())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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
        self.into()
    }

    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub status: JournalStatus,
    pub target_id: Option<String>,
}

/// One change of a plan as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalRow {
    pub key: String,
    pub account: String,
    pub status: JournalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

/// Which pipeline a state belongs to: a renamed or copied pipeline file
/// must not silently start over with an empty state (all links lost).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineIdentity {
    pub name: String,
    pub source: String,
    pub target: String,
}

impl std::fmt::Display for PipelineIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({} → {})", self.name, self.source, self.target)
    }
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

impl SourceSnapshot {
    /// A snapshot from its stored rows (one JSON account each).
    fn parse(watermark: String, rows: impl IntoIterator<Item = String>) -> Result<Self> {
        let accounts = rows
            .into_iter()
            .map(|a| serde_json::from_str(&a))
            .collect::<Result<Vec<Account>, _>>()
            .map_err(|e| {
                StoreError(anyhow::Error::from(e).context("a stored source account is unreadable"))
            })?;
        Ok(SourceSnapshot {
            watermark,
            accounts,
        })
    }
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
    /// Every stored link; an error when a row was changed outside roster.
    fn links(&self) -> Result<Vec<StoredLink>> {
        let (links, edited) = self.links_as_stored()?;
        match edited.is_empty() {
            true => Ok(links),
            false => Err(link_row::edited_links(&edited).into()),
        }
    }
    /// Takes link rows changed outside roster as they now are; returns
    /// the accounts whose rows were accepted.
    fn accept_link_edits(&mut self) -> Result<Vec<String>>;
    /// Every stored link as it is, with the accounts whose rows were
    /// changed outside roster (for showing them before accepting).
    fn links_as_stored(&self) -> Result<(Vec<StoredLink>, Vec<String>)>;
    fn upsert_link(&mut self, link: &StoredLink) -> Result<()>;
    fn remove_link(&mut self, source_key: &str) -> Result<()>;

    fn begin_run(&mut self, command: &str, plan_id: &str) -> Result<i64>;
    fn finish_run(&mut self, run: i64, applied: u64, failed: u64, outcome: &str) -> Result<()>;
    fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>>;
    /// Runs still marked running, whose process is gone (the caller holds
    /// the state's lock): recorded as interrupted, with the counts their
    /// journal shows. How many there were.
    fn end_abandoned_runs(&mut self) -> Result<usize>;

    /// The pipeline this state belongs to, once an apply recorded it.
    fn identity(&self) -> Result<Option<PipelineIdentity>>;
    fn set_identity(&mut self, id: &PipelineIdentity) -> Result<()>;
    /// Nothing recorded yet: no run, link, staged edit or identity.
    fn is_fresh(&self) -> Result<bool>;

    /// Records the plan's changes as pending (those already journalled keep their status).
    fn journal_open(&mut self, plan_id: &str, keys: &[(&str, &str)]) -> Result<()>;
    fn journal(&self, plan_id: &str) -> Result<HashMap<String, JournalEntry>>;
    /// Every change of a plan with its account, outcome and error, in key
    /// order: what a run did, account by account (the service's API); only
    /// those of `account` (case aside) when one is given.
    fn journal_rows(&self, plan_id: &str, account: Option<&str>) -> Result<Vec<JournalRow>>;
    /// Records outcomes in one transaction, with links to store on success,
    /// each account's last error and what the target wrote to its memo
    /// while making them.
    fn record(
        &mut self,
        outcomes: &[Outcome],
        links: &[StoredLink],
        memo: Option<MemoUpdate>,
    ) -> Result<()>;
    fn mark_sent(&mut self, plan_id: &str, keys: &[&str]) -> Result<()>;

    fn link_edits(&self) -> Result<Vec<LinkEdit>>;
    /// Stages an edit; a later edit of the same source replaces it.
    fn stage_link_edit(&mut self, edit: &LinkEdit) -> Result<()>;
    /// Drops a staged edit; false when there was none.
    fn unstage_link_edit(&mut self, source: &str) -> Result<bool>;
    fn unlinked(&self) -> Result<Vec<Unlinked>>;
    /// In one transaction: stores `links`, removes the links of `unlinks` and
    /// remembers them as unlinked, and drops the staged edits now carried out.
    fn carry_out_link_edits(
        &mut self,
        links: &[StoredLink],
        unlinks: &[Unlinked],
        edits_done: &[String],
    ) -> Result<()>;

    fn account_errors(&self) -> Result<Vec<AccountError>>;

    /// Everything `connector` keeps in its memo.
    fn memo(&self, connector: &str) -> Result<BTreeMap<String, String>>;
    /// Keeps memo changes made outside an apply batch (during a read).
    fn save_memo(&mut self, memo: MemoUpdate) -> Result<()>;

    /// The source's accounts as its last read left them, when that read
    /// ended on a watermark and was made under the same `fingerprint`
    /// (plugin and configuration): what an incremental read patches.
    fn source_snapshot(&self, connector: &str, fingerprint: &str)
    -> Result<Option<SourceSnapshot>>;
    /// Records a read in one transaction; `None` as watermark forgets the
    /// snapshot, so the next read is a full one.
    fn save_source_snapshot(
        &mut self,
        connector: &str,
        fingerprint: &str,
        watermark: Option<&str>,
        change: SnapshotChange,
    ) -> Result<()>;
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests;
