//! "Why is this account (not) synced?": each stage's decision for one
//! address, in order, as Entra's provision-on-demand shows it. Read from
//! what the plan was made of and the plan itself, so the explanation and
//! the plan can never disagree: the plan names every skipped account with
//! its reason, every note and change with its account.

use super::link::source_key;
use super::*;
use crate::model::Account;
use serde::Serialize;

/// The explanation document's version (`explain --json`).
pub const EXPLAIN_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Explanation {
    pub format: u32,
    pub pipeline: String,
    pub address: String,
    /// The source account the address belongs to, as primary or alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Found>,
    /// The target accounts that hold the address.
    pub target: Vec<Found>,
    /// Each stage's decision, in the order the stages run.
    pub steps: Vec<Step>,
    /// The plan's changes for this account.
    pub changes: Vec<PlannedChange>,
    /// The plan's warnings, conflicts and errors for this account.
    pub notes: Vec<Note>,
    /// What the plan does with the account, in one line.
    pub outcome: String,
}

/// An account that holds the address.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Found {
    pub id: String,
    pub email: String,
    pub kind: crate::model::AccountKind,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_unit: Option<String>,
    /// `primary` or `alias`: how it holds the address.
    pub holds: &'static str,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Step {
    /// source, filter, claimed-domains, link, merge, sync.
    pub stage: &'static str,
    pub decision: String,
}

fn found(a: &Account, address: &str) -> Found {
    Found {
        id: a.id.clone(),
        email: a.email.clone(),
        kind: a.kind,
        enabled: a.enabled,
        org_unit: a.org_unit.clone(),
        holds: match a.email.eq_ignore_ascii_case(address) {
            true => "primary",
            false => "alias",
        },
    }
}

fn holds(a: &Account, address: &str) -> bool {
    a.has_address(address)
}

/// Explains `address` in `plan`, which was built from `input`.
pub fn explain(input: &PlanInput, plan: &Plan, address: &str) -> Explanation {
    let address = address.trim();
    // The primary address first: an alias another account also holds names
    // the account whose primary it is.
    let source = input
        .source
        .iter()
        .filter(|a| holds(a, address))
        .min_by_key(|a| !a.email.eq_ignore_ascii_case(address));
    let target: Vec<Found> = input
        .target
        .iter()
        .filter(|a| holds(a, address))
        .map(|a| found(a, address))
        .collect();
    let mut e = Explanation {
        format: EXPLAIN_FORMAT,
        pipeline: plan.pipeline.clone(),
        address: address.to_string(),
        source: source.map(|a| found(a, address)),
        target,
        steps: vec![],
        changes: vec![],
        notes: vec![],
        outcome: String::new(),
    };
    match source {
        Some(s) => e.explain_source(input, plan, s),
        None => e.explain_target_only(input, plan),
    }
    e
}

impl Explanation {
    fn step(&mut self, stage: &'static str, decision: impl Into<String>) {
        self.steps.push(Step {
            stage,
            decision: decision.into(),
        });
    }

    fn explain_source(&mut self, input: &PlanInput, plan: &Plan, s: &Account) {
        let how = match s.email.eq_ignore_ascii_case(&self.address) {
            true => "its primary address",
            false => "an alias",
        };
        let state = match s.enabled {
            true => "enabled",
            false => "disabled",
        };
        self.step(
            "source",
            format!(
                "{} account {} ({}, {state}) in `{}` has it as {how}",
                s.kind.as_str(),
                s.id,
                s.email,
                plan.source
            ),
        );
        let mine = |account: &str| account.eq_ignore_ascii_case(&s.email);
        self.notes = plan
            .notes
            .iter()
            .filter(|n| n.account.as_deref().is_some_and(mine))
            .cloned()
            .collect();
        let key = source_key(s);
        self.changes = plan
            .changes
            .iter()
            .filter(|c| c.source_key.as_deref() == Some(key.as_str()) || mine(&c.email))
            .cloned()
            .collect();
        let skipped: Vec<&Skipped> = plan.skipped.iter().filter(|k| mine(&k.account)).collect();
        let filters = input.pipeline.stages.filters.len();
        if let Some(k) = skipped.iter().find(|k| k.reason == SkipReason::Filtered) {
            self.step("filter", format!("dropped: {}", k.detail));
            self.outcome = format!("not synced: filtered out ({})", k.detail);
            return;
        }
        self.step(
            "filter",
            match filters {
                0 => "kept: the pipeline has no filter stage".to_string(),
                1 => "kept by the filter stage".to_string(),
                n => format!("kept by all {n} filter stages"),
            },
        );
        if let Some(k) = skipped.iter().find(|k| k.reason == SkipReason::Unclaimed) {
            self.step("claimed-domains", format!("left out: {}", k.detail));
            self.outcome = "not synced: outside the claimed domains".to_string();
            return;
        }
        let claimed: Vec<&String> = input
            .pipeline
            .stages
            .filters
            .iter()
            .flat_map(|f| &f.claimed_domains)
            .collect();
        if !claimed.is_empty() {
            let left_out: Vec<&Note> = self
                .notes
                .iter()
                .filter(|n| n.message.contains("outside the claimed domains"))
                .collect();
            let decision = match left_out.len() {
                0 => "its addresses are in the claimed domains".to_string(),
                _ => left_out
                    .iter()
                    .map(|n| n.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            self.step("claimed-domains", decision);
        }
        if let Some(k) = skipped.iter().find(|k| k.reason == SkipReason::Guest) {
            self.step("link", k.detail.clone());
            self.outcome = "not synced: a guest in the source".to_string();
            return;
        }
        self.explain_link(input, plan, s, &key, &skipped);
        self.explain_merge();
        self.explain_sync(input, plan, &skipped);
    }

    fn explain_link(
        &mut self,
        input: &PlanInput,
        plan: &Plan,
        s: &Account,
        key: &str,
        skipped: &[&Skipped],
    ) {
        let candidates: Vec<String> = input
            .target
            .iter()
            .filter(|t| s.addresses().any(|a| t.has_address(a)))
            .map(|t| {
                let role = match s.addresses().any(|a| t.email.eq_ignore_ascii_case(a)) {
                    true => "primary",
                    false => "alias",
                };
                format!("{} ({}, {} by {role})", t.id, t.email, t.kind.as_str())
            })
            .collect();
        let candidates = match candidates.is_empty() {
            true => "no target account holds its addresses".to_string(),
            false => format!("candidates: {}", candidates.join(", ")),
        };
        let stored = input.links.iter().find(|l| l.source_key == key);
        let new = plan.links.iter().find(|l| l.source_key == key);
        let created = self
            .changes
            .iter()
            .any(|c| c.action == Action::Create && c.link.is_some());
        let unlink = plan.unlinks.iter().find(|u| u.source_key == key);
        let problem = skipped.iter().find(|k| {
            matches!(
                k.reason,
                SkipReason::Unlinked
                    | SkipReason::Conflict
                    | SkipReason::MissingTarget
                    | SkipReason::NearMiss
                    | SkipReason::KindMismatch
            )
        });
        let decision = if let Some(u) = unlink {
            let to = u.target_id.as_deref().unwrap_or("(none)");
            format!("unlinked from {to}: a `roster links remove` staged it")
        } else if let Some(k) = problem {
            format!("not linked: {}", k.detail)
        } else if let Some(l) = new {
            let to = l.target_id.as_deref().unwrap_or("(new)");
            match stored {
                Some(old) if old.target_id != to => format!(
                    "linked to {to} ({}), was {} ({})",
                    l.how.as_str(),
                    old.target_id,
                    old.how.as_str()
                ),
                Some(_) => format!("linked to {to} ({}); its link is updated", l.how.as_str()),
                None => format!("links to {to} ({}) with this plan", l.how.as_str()),
            }
        } else if let Some(l) = stored {
            format!(
                "linked to {} ({}), recorded by an earlier run",
                l.target_id,
                l.how.as_str()
            )
        } else if created {
            "no target account matches: a new one is created and linked".to_string()
        } else {
            "not linked: no target account matches".to_string()
        };
        self.step("link", format!("{decision}; {candidates}"));
    }

    fn explain_merge(&mut self) {
        let merges: Vec<String> = self
            .changes
            .iter()
            .filter_map(|c| match &c.change.op {
                crate::model::Operation::MergeGuest { guest, .. } => {
                    let id = guest.id.as_deref().unwrap_or("?");
                    Some(format!("guest {} ({id})", guest.email))
                }
                _ => None,
            })
            .collect();
        let held: Vec<&str> = self
            .notes
            .iter()
            .filter(|n| n.message.contains("guest account"))
            .map(|n| n.message.as_str())
            .collect();
        if merges.is_empty() && held.is_empty() {
            return;
        }
        let mut decision = match merges.is_empty() {
            true => String::new(),
            false => format!("merged into it first: {}", merges.join(", ")),
        };
        for h in held {
            if !decision.is_empty() {
                decision.push_str("; ");
            }
            decision.push_str(h);
        }
        self.step("merge", decision);
    }

    fn explain_sync(&mut self, input: &PlanInput, plan: &Plan, skipped: &[&Skipped]) {
        if input.pipeline.stages.sync.is_none() {
            self.step("sync", "the pipeline has no sync stage");
            self.outcome = "not synced: the pipeline has no sync stage".to_string();
            return;
        }
        let problems: Vec<&str> = self
            .notes
            .iter()
            .filter(|n| n.level != NoteLevel::Warning || n.kind == Some(ErrorKind::Licence))
            .map(|n| n.message.as_str())
            .collect();
        if let Some(k) = skipped.iter().find(|k| !k.reason.out_of_scope()) {
            let mut decision = format!("skipped ({}): {}", k.reason.as_str(), k.detail);
            if !problems.is_empty() {
                decision = format!("{decision}; {}", problems.join("; "));
            }
            self.step("sync", decision);
            self.outcome = format!("not synced: {}", k.reason.as_str());
            return;
        }
        let writes: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.action != Action::MergeGuest)
            .map(|c| match c.diff.is_empty() {
                true => c.action.as_str().to_string(),
                false => {
                    let fields: Vec<&str> = c.diff.iter().map(|d| d.field.as_str()).collect();
                    format!("{} ({})", c.action.as_str(), fields.join(", "))
                }
            })
            .collect();
        if !writes.is_empty() {
            self.step("sync", format!("planned: {}", writes.join(", ")));
            self.outcome = format!("{} in `{}`", writes.join(", "), plan.target);
            return;
        }
        let linked = self
            .steps
            .last()
            .is_some_and(|s| s.decision.starts_with("linked") || s.decision.starts_with("links"));
        match linked {
            true => {
                self.step("sync", "unchanged: the target account already matches");
                self.outcome = "in sync: nothing to change".to_string();
            }
            false => {
                self.step("sync", "nothing planned");
                self.outcome = "not synced: nothing planned (see the notes)".to_string();
            }
        }
    }

    /// An address no source account holds: what the target holds, and
    /// whether the plan removes it.
    fn explain_target_only(&mut self, input: &PlanInput, plan: &Plan) {
        self.step(
            "source",
            format!(
                "no account in `{}` has this address ({} read)",
                plan.source,
                input.source.len()
            ),
        );
        let ids: Vec<&str> = self.target.iter().map(|t| t.id.as_str()).collect();
        self.changes = plan
            .changes
            .iter()
            .filter(|c| {
                c.email.eq_ignore_ascii_case(&self.address)
                    || match &c.change.op {
                        crate::model::Operation::Disable { id }
                        | crate::model::Operation::Delete { id } => ids.contains(&id.as_str()),
                        _ => false,
                    }
            })
            .cloned()
            .collect();
        self.notes = plan
            .notes
            .iter()
            .filter(|n| {
                n.account
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&self.address))
            })
            .cloned()
            .collect();
        if self.target.is_empty() {
            self.step(
                "link",
                format!("no account in `{}` has it either", plan.target),
            );
            self.outcome = "unknown address: in neither system".to_string();
            return;
        }
        let linked: Vec<String> = input
            .links
            .iter()
            .filter(|l| ids.contains(&l.target_id.as_str()))
            .map(|l| {
                format!(
                    "{} is linked to source {} ({})",
                    l.target_id, l.source_email, l.source_key
                )
            })
            .collect();
        let decision = match linked.is_empty() {
            true => format!(
                "target account {} is linked to no source account",
                ids.join(", ")
            ),
            false => linked.join("; "),
        };
        self.step("link", decision);
        let removals: Vec<&str> = self.changes.iter().map(|c| c.action.as_str()).collect();
        match removals.is_empty() {
            true => {
                self.step("sync", "left alone: no source account backs it, and nothing removes it (see the sync stage's `unlinked` and `removal`)");
                self.outcome = "only in the target: left alone".to_string();
            }
            false => {
                self.step("sync", format!("planned: {}", removals.join(", ")));
                self.outcome = format!("only in the target: {}", removals.join(", "));
            }
        }
    }
}
