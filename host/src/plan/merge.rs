//! The merge stage: guest accounts in the target that hold an address of a
//! source account are merged into the account that address belongs to (the
//! mode says which addresses count), before the addresses are written; a
//! guest the target says cannot be merged by Roster (it carries a remedy)
//! is named with that remedy instead, and its addresses are left out.

use super::NoteLevel;
use super::PlannedChange;
use super::build::Builder;
use super::diff::REMEDY;
use super::link::{TargetIndex, source_key};
use crate::model::{Account, AccountRef, ErrorKind, Operation};
use crate::pipeline::MergeMode;
use std::collections::{BTreeMap, HashSet};

impl<'a> Builder<'a> {
    /// Guests holding this account's addresses, per the merge mode; a guest
    /// the target says Roster cannot merge (it carries a remedy) never is.
    pub(super) fn guests_to_merge(
        &self,
        s: &Account,
        index: &TargetIndex<'a>,
    ) -> Vec<(&'a Account, bool)> {
        let mode = self.input.pipeline.stages.merge_mode();
        let mut out = Vec::new();
        for (i, address) in s.addresses().enumerate() {
            let is_primary = i == 0;
            let Some(guest) = index.guests.get(&address.to_ascii_lowercase()) else {
                continue;
            };
            if guest.attributes.contains_key(REMEDY) {
                continue;
            }
            match mode {
                MergeMode::AliasOnly | MergeMode::AliasOrPrimary if !is_primary => {
                    out.push((*guest, false))
                }
                MergeMode::AliasOrPrimary => out.push((*guest, true)),
                _ => {}
            }
        }
        out.dedup_by(|a, b| a.0.id == b.0.id);
        out
    }

    /// Aliases of `s` that a guest holds and no planned merge frees: writing
    /// them would fail, so they are left out of the account (lower case),
    /// each with a warning saying what frees it. A guest holding the primary
    /// address is only warned about.
    pub(super) fn held_by_guests(
        &mut self,
        s: &Account,
        index: &TargetIndex,
        merging: &HashSet<String>,
    ) -> HashSet<String> {
        let mut held = HashSet::new();
        for (i, address) in s.addresses().enumerate() {
            let Some(guest) = index.guests.get(&address.to_ascii_lowercase()) else {
                continue;
            };
            if merging.contains(&guest.id) {
                continue;
            }
            let remedy = match guest.attributes.get(REMEDY) {
                Some(r) => r.clone(),
                None => "add a merge stage (mode alias-only or alias-or-primary) to merge the guest into this account".to_string(),
            };
            let msg = match i {
                0 => format!(
                    "{address} is a guest account ({}) in the target, so writing it may fail; {remedy}",
                    guest.id
                ),
                _ => {
                    held.insert(address.to_ascii_lowercase());
                    format!(
                        "alias {address} is held by a guest account in the target, so it is left out for now: {remedy}"
                    )
                }
            };
            self.note(NoteLevel::Warning, &s.email, Some(ErrorKind::Conflict), msg);
        }
        held
    }

    pub(super) fn merge_change(
        &mut self,
        s: &Account,
        guest: &Account,
        into_id: Option<String>,
        phase: u8,
        after: Vec<String>,
        target_from: Option<String>,
    ) -> String {
        let key = format!("merge-guest:{}", guest.id);
        let op = Operation::MergeGuest {
            guest: AccountRef {
                id: Some(guest.id.clone()),
                email: guest.email.clone(),
            },
            into: AccountRef {
                id: into_id,
                email: s.email.clone(),
            },
        };
        let merge = PlannedChange::new(
            key.clone(),
            phase,
            &s.email,
            Some(source_key(s)),
            op,
            BTreeMap::new(),
        );
        self.changes.push(PlannedChange {
            after,
            target_from,
            ..merge
        });
        self.summary.merges += 1;
        key
    }
}
