//! Removals, part of the sync stage: linked target accounts whose source
//! account is gone are disabled or deleted, and (per `sync.unlinked`) target
//! people in the claimed domains that nobody backs are reported or
//! disabled; either way behind the safety thresholds, so a source that
//! reads empty by mistake cannot empty the target.

use super::build::{Builder, PHASE_REMOVE};
use super::diff::BLOCKED;
use super::link::{TargetIndex, source_key};
use super::*;
use crate::model::{Account, AccountKind, Operation};
use crate::pipeline::{Removal, UnlinkedPolicy};
use std::collections::{BTreeMap, HashSet};

impl Builder<'_> {
    /// Linked target accounts whose source account is gone from the source
    /// altogether (not merely filtered out), behind the safety threshold.
    pub(super) fn removals(&mut self, index: &TargetIndex) -> Option<String> {
        if self.sync.removed == Removal::Keep {
            return None;
        }
        let present: HashSet<String> = self.input.source.iter().map(source_key).collect();
        let mut count = 0u32;
        for link in self.input.links {
            if present.contains(&link.source_key) {
                continue;
            }
            let Some(t) = index.get(&link.target_id) else {
                continue;
            };
            let (action, op, key) = match self.sync.removed {
                Removal::Disable if t.enabled => (
                    Action::Disable,
                    Operation::Disable { id: t.id.clone() },
                    format!("disable:{}", t.id),
                ),
                Removal::Delete => (
                    Action::Delete,
                    Operation::Delete { id: t.id.clone() },
                    format!("delete:{}", t.id),
                ),
                _ => continue,
            };
            count += 1;
            match action {
                Action::Disable => self.summary.disables += 1,
                _ => self.summary.deletes += 1,
            }
            self.changes.push(PlannedChange::new(
                key,
                PHASE_REMOVE,
                &t.email,
                Some(link.source_key.clone()),
                op,
                link.options.clone(),
            ));
        }
        let linked = self.input.links.len();
        let (percent, threshold) = self.above_threshold(count, linked)?;
        Some(format!(
            "the plan removes {} ({percent:.1}% of {linked} linked), above the safety threshold of {threshold}; check the source, then pass --allow-removals to apply it",
            accounts(count)
        ))
    }

    /// The share `count` removals are of `base` accounts, and the
    /// threshold they pass, when they pass one: more than `max_removals`,
    /// or (from `percent_min_removals` removals on) more than
    /// `max_removals_percent`.
    fn above_threshold(&self, count: u32, base: usize) -> Option<(f64, String)> {
        let s = &self.sync;
        let percent = f64::from(count) * 100.0 / base.max(1) as f64;
        let by_percent = count >= s.percent_min_removals && percent > s.max_removals_percent;
        (count > 0 && (count > s.max_removals || by_percent)).then(|| {
            let threshold = format!(
                "{} or {}% (from {} on)",
                accounts(s.max_removals),
                s.max_removals_percent,
                s.percent_min_removals
            );
            (percent, threshold)
        })
    }

    /// Target people in the claimed domains, enabled, that Roster has not
    /// linked, that no source account matched in this plan, and whose
    /// addresses no source account holds (not even one filtered out):
    /// accounts made before Roster, with nobody behind them. Kept, named
    /// with a warning, or disabled behind the removal thresholds (counted
    /// against the people in the claimed domains), per `sync.unlinked`.
    /// Accounts outside the claimed domains are never touched.
    pub(super) fn unbacked(&mut self, claimed: &HashSet<String>) -> Option<String> {
        let policy = self.sync.unlinked;
        if policy == UnlinkedPolicy::Keep || claimed.is_empty() {
            return None;
        }
        let in_claimed = |address: &str| {
            address
                .rsplit_once('@')
                .is_some_and(|(_, d)| claimed.contains(&d.to_ascii_lowercase()))
        };
        let linked: HashSet<&str> = self
            .input
            .links
            .iter()
            .map(|l| l.target_id.as_str())
            .collect();
        let backed: HashSet<String> = self
            .input
            .source
            .iter()
            .flat_map(|s| s.addresses().map(str::to_ascii_lowercase))
            .collect();
        let people: Vec<&Account> = self
            .input
            .target
            .iter()
            .filter(|t| t.kind == AccountKind::Person && in_claimed(&t.email))
            .collect();
        let unbacked: Vec<&Account> = people
            .iter()
            .copied()
            .filter(|t| t.enabled && !t.attributes.contains_key(BLOCKED))
            .filter(|t| !linked.contains(t.id.as_str()) && !self.matched.contains(&t.id))
            .filter(|t| {
                !t.addresses()
                    .any(|a| backed.contains(&a.to_ascii_lowercase()))
            })
            .collect();
        for t in &unbacked {
            match policy {
                UnlinkedPolicy::Report => {
                    let msg = format!(
                        "target account {} is in a claimed domain, and no source account backs it; `unlinked = \"disable\"` in the sync stage would disable it",
                        t.id
                    );
                    self.note(NoteLevel::Warning, &t.email, None, msg);
                }
                _ => {
                    let key = format!("disable:{}", t.id);
                    self.summary.disables += 1;
                    let op = Operation::Disable { id: t.id.clone() };
                    let disable =
                        PlannedChange::new(key, PHASE_REMOVE, &t.email, None, op, BTreeMap::new());
                    self.changes.push(disable);
                }
            }
        }
        let count = match policy {
            UnlinkedPolicy::Disable => unbacked.len() as u32,
            _ => 0,
        };
        let (percent, threshold) = self.above_threshold(count, people.len())?;
        Some(format!(
            "the plan disables {count} target {} that no source account backs ({percent:.1}% of the {} people in the claimed domains), above the safety threshold of {threshold}; check them in the plan, then pass --allow-removals to apply it",
            if count == 1 { "account" } else { "accounts" },
            people.len()
        ))
    }
}

/// "1 account", "3 accounts".
fn accounts(n: u32) -> String {
    match n {
        1 => "1 account".to_string(),
        n => format!("{n} accounts"),
    }
}
