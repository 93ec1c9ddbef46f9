//! Why a source account is not synced. Every account the plan leaves alone
//! (dropped by a filter, outside the claimed domains, or in scope but not
//! changed for a reason) is named in the plan with a reason code a script
//! can count and a detail a person can act on: `plan --show-skipped`,
//! `explain`, and the summary's counts by reason.

use serde::{Deserialize, Serialize};

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum SkipReason {
    /// A filter stage's rule dropped it (`rule` names the rule).
    Filtered,
    /// Its primary address is outside the claimed domains.
    Unclaimed,
    /// A guest in the source: guests are merged into accounts, not synced.
    Guest,
    /// Linked to a target account of another kind.
    KindMismatch,
    /// The target says its account cannot be changed.
    Blocked,
    /// The mailbox grants no FullAccess to `sync.require_delegate`.
    NoDelegateGrant,
    /// No licence seat is left for it.
    NoSeat,
    /// The target lets no account be created at all.
    CreatesRefused,
    /// Another target account holds its address; creating it would clash.
    NearMiss,
    /// Disabled in the source, and the pipeline does not create disabled accounts.
    Disabled,
    /// The pipeline does not create accounts of its kind.
    NotCreated,
    /// The pipeline does not update accounts of its kind.
    NotUpdated,
    /// Unlinked with `roster links remove`: left alone until linked again.
    Unlinked,
    /// Its target account is claimed by another source account too.
    Conflict,
    /// Its manual link names a target account that does not exist.
    MissingTarget,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Filtered or outside the claimed domains: not in scope at all.
    pub fn out_of_scope(self) -> bool {
        matches!(self, SkipReason::Filtered | SkipReason::Unclaimed)
    }
}

/// One account the plan leaves alone, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Skipped {
    /// The account's primary address in the source.
    pub account: String,
    pub reason: SkipReason,
    /// The filter rule that dropped it (`include_domains`, `kinds`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub detail: String,
}

impl Skipped {
    /// The key the summary counts it under: the reason, and for a filter
    /// its rule (`filtered:include_domains`).
    pub fn count_key(&self) -> String {
        match &self.rule {
            Some(rule) => format!("{}:{rule}", self.reason.as_str()),
            None => self.reason.as_str().to_string(),
        }
    }
}
