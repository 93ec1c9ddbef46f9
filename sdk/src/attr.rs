//! Attribute names the contract reserves: what a target tells the host
//! about one of its accounts beyond the fields it declares. The host reads
//! them with the same names (`host/src/plan/diff.rs`).

/// A target account that cannot be changed now, with the target's reason
/// (e.g. a CRM user disabled in the CRM): the plan names it as an error
/// instead of sending changes that would fail.
pub const BLOCKED: &str = "roster:blocked";

/// Fields the target does not store (comma-separated field names, as in
/// the descriptor): the plan does not see them as differences to write.
pub const UNSTORED: &str = "roster:unstored";

/// A guest account Roster cannot merge itself, with what the admin must do
/// instead: the plan names the remedy and leaves the guest's addresses out.
pub const REMEDY: &str = "roster:remedy";
